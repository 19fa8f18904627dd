package learners

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/learners/weighting"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// roundTrip writes c to a file and reads it back, as a resumed run does.
func roundTrip(t *testing.T, c *graph.Checkpoint) *graph.Checkpoint {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.safetensors")
	if err := graph.SaveCheckpoint(path, c); err != nil {
		t.Fatal(err)
	}
	back, err := graph.LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := back.Resumable(path); err != nil {
		t.Fatal(err)
	}
	return back
}

func sameBits(t *testing.T, what string, a, b []float64) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d values vs %d", what, len(a), len(b))
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			t.Fatalf("%s: value %d differs: %v (straight) vs %v (resumed)", what, i, a[i], b[i])
		}
	}
}

// TestMAMLResume checks that N steps, a checkpoint written to disk and
// read back, then M steps give bit-identical parameters to N+M steps
// straight through, for second-order MAML with Adam and with SGD with
// momentum.
func TestMAMLResume(t *testing.T) {
	const n, m = 4, 3
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{8}, Activation: nets.Tanh}
	for _, opt := range []string{"adam", "sgd"} {
		t.Run(opt, func(t *testing.T) {
			newOpt := func() Optimizer {
				if opt == "sgd" {
					return &SGD{LR: 0.01, Momentum: 0.9}
				}
				return &Adam{LR: 0.01}
			}
			start := func() (*MAML, *rand.PCG) {
				p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
				if err != nil {
					t.Fatal(err)
				}
				return &MAML{Model: model, Params: p, InnerSteps: 2, Optimizer: newOpt()}, rand.NewPCG(2, 2)
			}
			steps := func(mm *MAML, src *rand.PCG, k int) {
				rng := rand.New(src)
				for range k {
					b, _, err := tasks.Sinusoid{}.Sample(rng, 3, 5, 5)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := mm.Step(context.Background(), b); err != nil {
						t.Fatal(err)
					}
				}
			}
			straight, src := start()
			steps(straight, src, n+m)

			first, src1 := start()
			steps(first, src1, n)
			c := graph.NewCheckpoint(first.Params.Clone())
			if err := first.SaveState("", c); err != nil {
				t.Fatal(err)
			}
			rngState, err := src1.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			back := roundTrip(t, c)

			resumed := &MAML{Model: model, Params: back.Params, InnerSteps: 2, Optimizer: newOpt()}
			if err := resumed.LoadState("", back); err != nil {
				t.Fatal(err)
			}
			src2 := new(rand.PCG)
			if err := src2.UnmarshalBinary(rngState); err != nil {
				t.Fatal(err)
			}
			steps(resumed, src2, m)
			if resumed.Steps() != n+m {
				t.Errorf("resumed Steps() = %d; want %d", resumed.Steps(), n+m)
			}
			sameBits(t, "parameters", straight.Params.Flatten(), resumed.Params.Flatten())
		})
	}
}

// TestMTLResume does the same for the multi-task trainer with every
// weighting method that keeps state: learned parameters (uncertainty,
// GradNorm), epoch losses (DWA), a warm start (Nash-MTL), a random task
// order (PCGrad).
func TestMTLResume(t *testing.T) {
	const n, m = 5, 4
	data := mtlTable(rand.New(rand.NewPCG(3, 3)), 16*(n+m))
	batches, err := data.Batches(nil, 16)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"uw", "gradnorm", "dwa", "nash", "pcgrad", "gradvac", "famo", "rlw", "dbmtl", "stch", "moco"} {
		t.Run(name, func(t *testing.T) {
			start := func() (*MTL, *rand.PCG) {
				w, err := weighting.New(name, 3)
				if err != nil {
					t.Fatal(err)
				}
				if d, ok := w.(*weighting.DWA); ok {
					d.EpochSteps = 2
				}
				src := rand.NewPCG(4, 4)
				mm := newMTL(t, mtlModel(), 5, tensor.Float64)
				mm.Weighting, mm.Optimizer, mm.Rand = w, &Adam{LR: 0.01}, rand.New(src)
				return mm, src
			}
			steps := func(mm *MTL, from, to int) {
				for _, b := range batches[from:to] {
					if _, err := mm.Step(context.Background(), b); err != nil {
						t.Fatal(err)
					}
				}
			}
			straight, _ := start()
			steps(straight, 0, n+m)

			first, src := start()
			steps(first, 0, n)
			c := graph.NewCheckpoint(first.Params.Clone())
			if err := first.SaveState("mtl.", c); err != nil {
				t.Fatal(err)
			}
			rngState, err := src.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			back := roundTrip(t, c)

			resumed, src2 := start()
			if err := resumed.Params.CopyFrom(back.Params); err != nil {
				t.Fatal(err)
			}
			if err := resumed.LoadState("mtl.", back); err != nil {
				t.Fatal(err)
			}
			if err := src2.UnmarshalBinary(rngState); err != nil {
				t.Fatal(err)
			}
			steps(resumed, n, n+m)
			sameBits(t, "parameters", straight.Params.Flatten(), resumed.Params.Flatten())
			if l, ok := straight.Weighting.(weighting.Learned); ok {
				sameBits(t, name+" parameters", l.Params().Flatten(), resumed.Weighting.(weighting.Learned).Params().Flatten())
			}
		})
	}
}

func TestLoadStateErrors(t *testing.T) {
	c := graph.NewCheckpoint(new(graph.Params))
	if err := (&Adam{}).LoadState("optim.", c); err == nil {
		t.Error("Adam.LoadState from an empty checkpoint: no error")
	}
	a := &Adam{}
	a.m, a.v, a.step = [][]float64{{1, 2}}, [][]float64{{3, 4}}, 7
	if err := a.SaveState("optim.", c); err != nil {
		t.Fatal(err)
	}
	if err := (&SGD{}).LoadState("optim.", c); err == nil {
		t.Error("SGD.LoadState of Adam state: no error")
	}
	v, _ := c.State.Get("optim.exp_avg_sq.0")
	v.Data().([]float64)[1] = math.NaN()
	if err := (&Adam{}).LoadState("optim.", c); err == nil {
		t.Error("Adam.LoadState with a NaN moment: no error")
	}
	mm := newMTL(t, mtlModel(), 1, tensor.Float64)
	if err := mm.SaveState("", graph.NewCheckpoint(mm.Params)); err != nil {
		t.Fatal(err)
	}
	saved := graph.NewCheckpoint(mm.Params)
	if err := mm.SaveState("", saved); err != nil {
		t.Fatal(err)
	}
	other := newMTL(t, mtlModel(), 1, tensor.Float64)
	other.Weighting = weighting.PCGrad{}
	if err := other.LoadState("", saved); err == nil {
		t.Error("loading an ew checkpoint into a pcgrad trainer: no error")
	}
}
