package weighting

import (
	"math"
	"math/rand/v2"
)

// RLW is random loss weighting (Lin et al. 2022, "Reasonable
// Effectiveness of Random Weighting: A Litmus Test for Multi-Task
// Learning"): at every step the weights are the softmax of T standard
// normal draws, as LibMTL's RLW draws them, so they are positive and sum
// to 1. The draws of step s come from a generator seeded with (Seed, s)
// alone, so the weights are fixed before the step's losses are known (one
// backward pass) and a resumed run draws what an uninterrupted one would.
// The zero value uses seed 0.
type RLW struct {
	Seed uint64
}

var _ Weighter = RLW{}

// Name returns "rlw".
func (RLW) Name() string { return "rlw" }

// Needs returns LossesOnly.
func (RLW) Needs() Needs { return LossesOnly }

// Combine returns the step's random weights. It returns an *InputError if
// there are no losses or one is not finite.
func (m RLW) Combine(in Input) (Output, error) {
	t, _, err := check(m.Name(), in, 0, false)
	if err != nil {
		return Output{}, err
	}
	return Output{Weights: m.Weights(in.Step, t)}, nil
}

// Weights returns the weights of the 1-based step: softmax(z), z drawn
// from N(0, I) with a generator seeded by (Seed, step).
func (m RLW) Weights(step, tasks int) []float64 {
	rng := rand.New(rand.NewPCG(m.Seed, uint64(step)))
	w := make([]float64, max(tasks, 0))
	top := math.Inf(-1)
	for i := range w {
		w[i] = rng.NormFloat64()
		top = max(top, w[i])
	}
	sum := 0.0
	for i, z := range w {
		w[i] = math.Exp(z - top)
		sum += w[i]
	}
	for i := range w {
		w[i] /= sum
	}
	return w
}
