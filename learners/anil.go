package learners

import (
	"context"
	"fmt"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
)

// ANIL is almost-no-inner-loop MAML (Raghu, Raghu, Bengio and Vinyals
// 2020, "Rapid Learning or Feature Reuse?"): MAML whose inner loop adapts
// only the network's head, while the outer loop updates every parameter,
// trunk included, through the adapted head (second order unless
// FirstOrder is set).
//
// ANIL is MAML with a different inner loop: the embedded MAML's fields
// keep their meaning and defaults, and ANIL's methods run MAML's after
// telling it which parameters to hold fixed in the inner loop. Head names
// the parameters the inner loop adapts; nil means the last two, the
// weight and bias of a final linear layer (nets.MLP's last layer,
// nets.ConvNet's head). The zero value is not usable: Model and Params
// must be set. ANIL is not safe for concurrent use.
type ANIL struct {
	MAML
	Head []string
}

var _ graph.Stateful = (*ANIL)(nil)

// headMask returns which parameters the inner loop holds fixed.
func (a *ANIL) headMask() ([]bool, error) {
	if a.Params == nil || a.Params.Len() == 0 {
		return nil, fmt.Errorf("learners: ANIL needs a Model and its Params")
	}
	n := a.Params.Len()
	frozen := make([]bool, n)
	for i := range frozen {
		frozen[i] = true
	}
	if a.Head == nil {
		for i := max(n-2, 0); i < n; i++ {
			frozen[i] = false
		}
		return frozen, nil
	}
	if len(a.Head) == 0 {
		return nil, fmt.Errorf("learners: ANIL.Head is empty; want the names of the parameters to adapt, or nil for the last two")
	}
	index := make(map[string]int, n)
	for i, name := range a.Params.Names() {
		index[name] = i
	}
	for _, name := range a.Head {
		i, ok := index[name]
		if !ok {
			return nil, fmt.Errorf("learners: ANIL.Head names %q, which is not a parameter (have %v)", name, a.Params.Names())
		}
		frozen[i] = false
	}
	return frozen, nil
}

func (a *ANIL) prepare() error {
	frozen, err := a.headMask()
	if err != nil {
		return err
	}
	a.MAML.inner = innerRule{frozen: frozen}
	return nil
}

// Step runs one outer update, as MAML.Step does.
func (a *ANIL) Step(ctx context.Context, b *tasks.Batch) (Stats, error) {
	if err := a.prepare(); err != nil {
		return Stats{}, err
	}
	return a.MAML.Step(ctx, b)
}

// MetaGradient returns the gradient of the mean query loss after
// head-only adaptation with respect to every parameter, head and trunk,
// as MAML.MetaGradient does.
func (a *ANIL) MetaGradient(b *tasks.Batch) ([][]float64, Stats, error) {
	if err := a.prepare(); err != nil {
		return nil, Stats{}, err
	}
	return a.MAML.MetaGradient(b)
}

// Evaluate adapts the head to each task of b with up to steps inner steps
// and returns the query loss of every task after each: losses[s][t].
func (a *ANIL) Evaluate(b *tasks.Batch, steps int) ([][]float64, error) {
	if err := a.prepare(); err != nil {
		return nil, err
	}
	return a.MAML.Evaluate(b, steps)
}

// Predict is MAML.Predict with head-only adaptation.
func (a *ANIL) Predict(b *tasks.Batch, steps int) ([][]float64, error) {
	if err := a.prepare(); err != nil {
		return nil, err
	}
	return a.MAML.Predict(b, steps)
}

// EvaluateClassifier is MAML.EvaluateClassifier with head-only
// adaptation.
func (a *ANIL) EvaluateClassifier(b *tasks.Batch, steps int) (Evaluation, error) {
	if err := a.prepare(); err != nil {
		return Evaluation{}, err
	}
	return a.MAML.EvaluateClassifier(b, steps)
}

// PrepareStep is MAML.PrepareStep for ANIL's graph.
func (a *ANIL) PrepareStep(s tasks.Shape) (int64, error) {
	if err := a.prepare(); err != nil {
		return 0, err
	}
	return a.MAML.PrepareStep(s)
}

// PrepareEvaluate is MAML.PrepareEvaluate for ANIL's graph.
func (a *ANIL) PrepareEvaluate(s tasks.Shape, steps int) (int64, error) {
	if err := a.prepare(); err != nil {
		return 0, err
	}
	return a.MAML.PrepareEvaluate(s, steps)
}
