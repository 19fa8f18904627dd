package learners

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// metaGrader is what the checkpointing tests run: MAML, ANIL or MetaSGD.
type metaGrader interface {
	MetaGradient(b *tasks.Batch) ([][]float64, Stats, error)
	base() *MAML
}

func (m *MAML) base() *MAML { return m }

// TestGradCheckpointMatchesUnrolled checks, in float64, that the
// checkpointed meta-gradient of MAML, ANIL and Meta-SGD (its rates'
// gradient included) is the unrolled graph's up to rounding, with 1, 2
// and 3 inner steps, on an MLP and a ConvNet; and that the losses
// reported are the same.
func TestGradCheckpointMatchesUnrolled(t *testing.T) {
	mlp := nets.MLP{In: 3, Out: 3, Hidden: []int{6, 5}, Activation: nets.Tanh}
	conv := nets.ConvNet{Side: 6, Filters: 2, Blocks: 2, Out: 3}
	learnersFor := map[string]func(t *testing.T, steps int) (metaGrader, *tasks.Batch){
		"maml": func(t *testing.T, steps int) (metaGrader, *tasks.Batch) {
			return newMAML(t, mlp, CrossEntropy, steps, false, 7), randomBatch(rand.New(rand.NewPCG(1, 1)), 3, 6, 9, 3, 3, true)
		},
		"anil": func(t *testing.T, steps int) (metaGrader, *tasks.Batch) {
			return newANIL(t, mlp, CrossEntropy, steps, false, 8), randomBatch(rand.New(rand.NewPCG(2, 1)), 3, 6, 9, 3, 3, true)
		},
		"metasgd": func(t *testing.T, steps int) (metaGrader, *tasks.Batch) {
			return newMetaSGD(t, mlp, CrossEntropy, steps, false, true, 9), randomBatch(rand.New(rand.NewPCG(3, 1)), 3, 6, 9, 3, 3, true)
		},
		"maml convnet": func(t *testing.T, steps int) (metaGrader, *tasks.Batch) {
			p, err := conv.Init(rand.New(rand.NewPCG(5, 6)), tensor.Float64)
			if err != nil {
				t.Fatal(err)
			}
			m := &MAML{Model: conv, Params: p, Loss: CrossEntropy, InnerLR: 0.4, InnerSteps: steps}
			return m, randomBatch(rand.New(rand.NewPCG(4, 1)), 2, 6, 9, conv.In(), 3, true)
		},
	}
	for name, newLearner := range learnersFor {
		for _, steps := range []int{1, 2, 3} {
			t.Run(fmt.Sprintf("%s/steps=%d", name, steps), func(t *testing.T) {
				l, b := newLearner(t, steps)
				want, wantSt, err := l.MetaGradient(b)
				if err != nil {
					t.Fatal(err)
				}
				l.base().GradCheckpoint = true
				got, gotSt, err := l.MetaGradient(b)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) {
					t.Fatalf("%d gradients; unrolled %d", len(got), len(want))
				}
				if e := graph.RelErr(flat(got), flat(want), 1e-12); e > 1e-10 {
					t.Errorf("checkpointed meta-gradient rel err %.3g from the unrolled one\n got  %.6v\n want %.6v", e, flat(got), flat(want))
				}
				if gotSt.PreLoss != wantSt.PreLoss || graph.RelErr([]float64{gotSt.PostLoss}, []float64{wantSt.PostLoss}, 1e-12) > 1e-12 {
					t.Errorf("losses %+v; unrolled %+v", gotSt, wantSt)
				}
			})
		}
	}
}

// TestGradCheckpointFiniteDifferences checks the checkpointed
// meta-gradient of a ConvNet after two inner steps against central
// differences of the post-adaptation query loss, at the tolerance of the
// unrolled graph's own test.
func TestGradCheckpointFiniteDifferences(t *testing.T) {
	net := nets.ConvNet{Side: 8, Channels: 2, Filters: 3, Blocks: 2, Out: 2}
	p, err := net.Init(rand.New(rand.NewPCG(5, 6)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	m := &MAML{Model: net, Params: p, Loss: CrossEntropy, InnerLR: 0.4, InnerSteps: 2, GradCheckpoint: true}
	b := randomBatch(rand.New(rand.NewPCG(21, 8)), 2, 4, 6, net.In(), net.Out, true)
	grads, _, err := m.MetaGradient(b)
	if err != nil {
		t.Fatal(err)
	}
	got := flat(grads)
	want := graph.NumGrad(objective(t, m, b), m.Params.Flatten(), fdStep)
	if e := graph.RelErr(got, want, fdFloor); e > fdTol {
		t.Errorf("meta-gradient rel err %.3g > %g\n got  %.6v\n want %.6v", e, fdTol, got, want)
	}
}

// TestGradCheckpointPrepareBounds checks that PrepareStep's figure for a
// checkpointed Step bounds what the Step holds afterwards: the graphs'
// shared pool, and the per-task parameters and adjoints bound in them.
func TestGradCheckpointPrepareBounds(t *testing.T) {
	model := nets.MLP{In: 4, Out: 2, Hidden: []int{256, 256}, Activation: nets.Tanh}
	b := randomBatch(rand.New(rand.NewPCG(3, 4)), 16, 10, 10, 4, 2, true)
	m := newMAML(t, model, CrossEntropy, 3, false, 4)
	m.GradCheckpoint = true
	before := heapInUse()
	step, err := m.PrepareStep(b.Shape())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Step(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	used := heapInUse() - before - 8*int64(m.Params.Size()) // Adam's moments
	t.Logf("prepared %d bytes, used %d", step, used)
	if used > step {
		t.Errorf("a checkpointed Step holds %d bytes; PrepareStep said %d", used, step)
	}
	runtime.KeepAlive(m)
}
