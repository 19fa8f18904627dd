package learners

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
)

// TestPreLossEvery checks that measuring the query loss before adaptation
// at some steps only changes nothing else: MAML (unrolled and
// checkpointed), ANIL and MAML++ with its multi-step loss, run with
// PreLossEvery 3 and with the default side by side on the same batches,
// hold bit-identical parameters after every step and report the same
// losses, PreLoss being NaN exactly at the steps not measured.
func TestPreLossEvery(t *testing.T) {
	mlp := nets.MLP{In: 3, Out: 3, Hidden: []int{6, 5}, Activation: nets.Tanh}
	type learner interface {
		Step(context.Context, *tasks.Batch) (Stats, error)
		base() *MAML
	}
	for name, newLearner := range map[string]func() learner{
		"maml": func() learner { return newMAML(t, mlp, CrossEntropy, 2, false, 7) },
		"maml checkpointed": func() learner {
			m := newMAML(t, mlp, CrossEntropy, 2, false, 7)
			m.GradCheckpoint = true
			return m
		},
		"anil":   func() learner { return newANIL(t, mlp, CrossEntropy, 2, false, 8) },
		"mamlpp": func() learner { return newMAMLPP(t, mlp, 3, 5, 2) },
	} {
		t.Run(name, func(t *testing.T) {
			every, some := newLearner(), newLearner()
			some.base().PreLossEvery = 3
			rng := rand.New(rand.NewPCG(11, 1))
			for step := 1; step <= 7; step++ {
				b := randomBatch(rng, 3, 6, 9, 3, 3, true)
				if name == "mamlpp" {
					b = randomBatch(rng, 3, 6, 9, 3, 3, false)
				}
				want, err := every.Step(context.Background(), b)
				if err != nil {
					t.Fatal(err)
				}
				got, err := some.Step(context.Background(), b)
				if err != nil {
					t.Fatal(err)
				}
				if got.PostLoss != want.PostLoss {
					t.Errorf("step %d: PostLoss %v, want %v", step, got.PostLoss, want.PostLoss)
				}
				measured := (step-1)%3 == 0
				if measured && math.Abs(got.PreLoss-want.PreLoss) > 1e-14*math.Abs(want.PreLoss) || !measured && !math.IsNaN(got.PreLoss) {
					t.Errorf("step %d: PreLoss %v, want %v (measured: %v)", step, got.PreLoss, want.PreLoss, measured)
				}
				if !slices.Equal(some.base().Params.Flatten(), every.base().Params.Flatten()) {
					t.Fatalf("step %d: the parameters differ", step)
				}
			}
		})
	}
}
