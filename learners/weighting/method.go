package weighting

import (
	"math/rand/v2"

	"github.com/medusa-ml/medusa/graph"
)

// Needs says what a Method needs besides the task losses.
type Needs int

const (
	// LossesOnly: the method weights the losses; no per-task gradients.
	LossesOnly Needs = iota
	// SharedGrads: the method needs each task's gradient with respect to
	// the shared parameters.
	SharedGrads
)

// Input is what a Method sees at one training step.
type Input struct {
	Step   int         // 1-based training step
	Losses []float64   // each task's loss, len T
	Grads  [][]float64 // SharedGrads only: task t's gradient with respect to the shared parameters, flattened, len T × D; read-only, and valid during Combine only (the learner reuses its memory)
	Rand   *rand.Rand  // for methods with random choices (PCGrad's task order)
}

// Output is a Method's decision for one step.
type Output struct {
	// Weights[t] scales task t's loss: its head gradients are multiplied
	// by it, and, when Shared is nil, the shared gradient is Σ_t
	// Weights[t]·Grads[t].
	Weights []float64
	// HeadWeights, if not nil, scales each task's head gradients instead
	// of Weights: gradient-manipulation methods that change only the
	// shared update (MGDA and IMTL-G, following their papers and LibMTL)
	// leave the heads their own unweighted gradients.
	HeadWeights []float64
	// Shared, if not nil, is the shared-parameter gradient to apply
	// (length D), replacing Σ_t Weights[t]·Grads[t].
	Shared []float64
	// ParamGrads are the gradients of the method's own objective with
	// respect to its Learned parameters, in their order; nil for methods
	// without learned state.
	ParamGrads [][]float64
}

// Method is a multi-task weighting strategy.
type Method interface {
	// Name returns the method's command-line name ("ew", "pcgrad", ...).
	Name() string
	// Needs returns what Combine needs in its Input.
	Needs() Needs
	// Combine returns the step's weights and, for gradient-manipulation
	// methods, the combined shared gradient. It returns an error for
	// inputs of the wrong sizes or non-finite values.
	Combine(in Input) (Output, error)
}

// Learned is implemented by methods with parameters of their own, trained
// alongside the network's by the same optimiser.
type Learned interface {
	Method
	// Params returns the method's parameters; the trainer updates them in
	// place and saves them with the network's.
	Params() *graph.Params
}

// Weighter is implemented by LossesOnly methods whose weights for a step
// are fixed before that step's losses are known (equal weighting,
// uncertainty weighting, DWA). The trainer then computes the gradient of
// Σ_t w_t L_t in one backward pass instead of one per task; Combine must
// return the same weights for the step.
type Weighter interface {
	Method
	// Weights returns the weights Combine will use at the 1-based step
	// for the given number of tasks.
	Weights(step, tasks int) []float64
}

// StateMarshaler is implemented by methods that keep state between steps
// besides their Learned parameters (DWA's epoch losses, GradNorm's initial
// losses, Nash-MTL's warm start), so that a checkpoint can hold it and a
// resumed run continue exactly.
type StateMarshaler interface {
	MarshalState() ([]byte, error)
	UnmarshalState([]byte) error
}

// ones returns n weights of 1.
func ones(n int) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 1
	}
	return w
}
