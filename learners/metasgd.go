package learners

import (
	"context"
	"fmt"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
)

// LRPrefix begins the name of every learned inner rate of MetaSGD: the
// rates of parameter "layers.0.weight" are "lr.layers.0.weight".
const LRPrefix = "lr."

// MetaSGD is Meta-SGD (Li, Zhou, Chen and Li 2017): MAML whose inner step
// θ′ = θ − α ⊙ ∇L_support(θ) takes a learned rate for every element of θ.
// The rates α have θ's shapes and are meta-trained with θ by the same
// Optimizer, through the exact second-order meta-gradient (FirstOrder
// treats the inner gradients as constants; α still gets its gradient
// −∇L_support ⊙ ∂L_query/∂θ′ through the product).
//
// MetaSGD is MAML with a different inner step: the embedded MAML's fields
// keep their meaning and defaults, except that InnerLR (default 0.01) is
// the value every rate starts at. LRs holds the rates, one tensor per
// parameter of θ, named LRPrefix + the parameter's name; nil means they
// are created on first use with every element InnerLR, in θ's dtype.
// Model and Params must be set. MetaSGD is not safe for concurrent use.
type MetaSGD struct {
	MAML
	LRs *graph.Params
}

var _ graph.Stateful = (*MetaSGD)(nil)

// prepare creates the rates if needed, checks them against θ and hands
// them to the inner loop.
func (s *MetaSGD) prepare() error {
	if s.Params == nil || s.Params.Len() == 0 {
		return fmt.Errorf("learners: MetaSGD needs a Model and its Params")
	}
	if s.LRs == nil {
		lrs, err := constantRates(s.Params, s.innerLR())
		if err != nil {
			return err
		}
		s.LRs = lrs
	}
	if err := sameLayout(s.Params, s.LRs); err != nil {
		return fmt.Errorf("learners: MetaSGD.LRs: %v", err)
	}
	for i := 0; i < s.Params.Len(); i++ {
		if want, got := LRPrefix+s.Params.At(i).Name, s.LRs.At(i).Name; got != want {
			return fmt.Errorf("learners: MetaSGD.LRs[%d] is %q, want %q", i, got, want)
		}
	}
	s.MAML.inner = innerRule{rates: s.LRs}
	return nil
}

// constantRates returns one tensor of p's shape and dtype per parameter,
// named LRPrefix + its name, with every element lr.
func constantRates(p *graph.Params, lr float64) (*graph.Params, error) {
	out := new(graph.Params)
	for i := 0; i < p.Len(); i++ {
		q := p.At(i)
		v := make([]float64, q.Value.Shape().TotalSize())
		for j := range v {
			v[j] = lr
		}
		t, err := graph.NewTensor(q.Value.Dtype(), []int(q.Value.Shape()), v)
		if err != nil {
			return nil, err
		}
		if err := out.Add(LRPrefix+q.Name, t); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Step runs one outer update of θ and α. On error (including a non-finite
// loss or gradient, reported as *NonFiniteError) neither is changed.
func (s *MetaSGD) Step(ctx context.Context, b *tasks.Batch) (Stats, error) {
	if err := s.prepare(); err != nil {
		return Stats{}, err
	}
	return s.MAML.Step(ctx, b)
}

// MetaGradient returns the gradient of the mean query loss after
// adaptation with respect to each parameter of θ, then each tensor of
// rates α, in the order of Params then LRs.
func (s *MetaSGD) MetaGradient(b *tasks.Batch) ([][]float64, Stats, error) {
	if err := s.prepare(); err != nil {
		return nil, Stats{}, err
	}
	return s.MAML.MetaGradient(b)
}

// Evaluate adapts to each task of b with up to steps inner steps with the
// learned rates and returns the query loss of every task after each:
// losses[s][t].
func (s *MetaSGD) Evaluate(b *tasks.Batch, steps int) ([][]float64, error) {
	if err := s.prepare(); err != nil {
		return nil, err
	}
	return s.MAML.Evaluate(b, steps)
}

// Predict is MAML.Predict with the learned rates.
func (s *MetaSGD) Predict(b *tasks.Batch, steps int) ([][]float64, error) {
	if err := s.prepare(); err != nil {
		return nil, err
	}
	return s.MAML.Predict(b, steps)
}

// EvaluateClassifier is MAML.EvaluateClassifier with the learned rates.
func (s *MetaSGD) EvaluateClassifier(b *tasks.Batch, steps int) (Evaluation, error) {
	if err := s.prepare(); err != nil {
		return Evaluation{}, err
	}
	return s.MAML.EvaluateClassifier(b, steps)
}

// PrepareStep is MAML.PrepareStep for Meta-SGD's graph.
func (s *MetaSGD) PrepareStep(sh tasks.Shape) (int64, error) {
	if err := s.prepare(); err != nil {
		return 0, err
	}
	return s.MAML.PrepareStep(sh)
}

// PrepareEvaluate is MAML.PrepareEvaluate for Meta-SGD's graph.
func (s *MetaSGD) PrepareEvaluate(sh tasks.Shape, steps int) (int64, error) {
	if err := s.prepare(); err != nil {
		return 0, err
	}
	return s.MAML.PrepareEvaluate(sh, steps)
}
