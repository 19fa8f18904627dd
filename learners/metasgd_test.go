package learners

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// newMetaSGD returns Meta-SGD on model with rates drawn from U[0.02, 0.2]
// (distinct rates, so that a mix-up of elements shows), or all InnerLR
// when random is false.
func newMetaSGD(t *testing.T, model nets.MLP, loss Loss, steps int, firstOrder, random bool, seed uint64) *MetaSGD {
	t.Helper()
	s := &MetaSGD{MAML: *newMAML(t, model, loss, steps, firstOrder, seed)}
	if err := s.prepare(); err != nil {
		t.Fatal(err)
	}
	if random {
		rng := rand.New(rand.NewPCG(seed, 2))
		x := make([]float64, s.LRs.Size())
		for i := range x {
			x[i] = 0.02 + 0.18*rng.Float64()
		}
		if err := s.LRs.SetFlat(x); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestMetaSGDMetaGradientFiniteDifferences checks the meta-gradient with
// respect to θ and to the rates α against central differences of the
// Meta-SGD objective (the tolerances of
// TestMAMLMetaGradientFiniteDifferences).
func TestMetaSGDMetaGradientFiniteDifferences(t *testing.T) {
	cases := []struct {
		name     string
		model    nets.MLP
		loss     Loss
		classify bool
	}{
		{"tanh", nets.MLP{In: 2, Out: 1, Hidden: []int{6, 5}, Activation: nets.Tanh}, MSE, false},
		{"relu", nets.MLP{In: 2, Out: 2, Hidden: []int{6}, Activation: nets.ReLU}, MSE, false},
		{"softmax classifier", nets.MLP{In: 3, Out: 3, Hidden: []int{5}, Activation: nets.Tanh}, CrossEntropy, true},
	}
	for _, c := range cases {
		for _, steps := range []int{1, 2} {
			t.Run(c.name+"/steps="+string(rune('0'+steps)), func(t *testing.T) {
				b := randomBatch(rand.New(rand.NewPCG(6, uint64(steps))), 3, 4, 5, c.model.In, c.model.Out, c.classify)
				s := newMetaSGD(t, c.model, c.loss, steps, false, true, 19)
				grads, _, err := s.MetaGradient(b)
				if err != nil {
					t.Fatal(err)
				}
				if len(grads) != 2*s.Params.Len() {
					t.Fatalf("MetaGradient returned %d gradients for %d parameters and %d rate tensors", len(grads), s.Params.Len(), s.LRs.Len())
				}
				eval := func() ([][]float64, error) { return s.Evaluate(b, steps) }
				for _, part := range []struct {
					name string
					p    *graph.Params
					got  []float64
				}{
					{"θ", s.Params, flat(grads[:s.Params.Len()])},
					{"α", s.LRs, flat(grads[s.Params.Len():])},
				} {
					x := part.p.Flatten()
					want := graph.NumGrad(finalLoss(t, part.p, eval), x, fdStep)
					if err := part.p.SetFlat(x); err != nil {
						t.Fatal(err)
					}
					if e := graph.RelErr(part.got, want, fdFloor); e > fdTol {
						t.Errorf("meta-gradient with respect to %s: rel err %.3g > %g\n got  %.6v\n want %.6v", part.name, e, fdTol, part.got, want)
					}
				}
			})
		}
	}
}

// TestMetaSGDConstantRatesIsMAML: with every rate equal to MAML's InnerLR
// the inner loop is MAML's, so the θ part of the meta-gradient is MAML's
// meta-gradient (to rounding), second and first order.
func TestMetaSGDConstantRatesIsMAML(t *testing.T) {
	model := nets.MLP{In: 2, Out: 2, Hidden: []int{5, 4}, Activation: nets.Tanh}
	b := randomBatch(rand.New(rand.NewPCG(4, 9)), 3, 4, 5, 2, 2, false)
	for _, fo := range []bool{false, true} {
		m := newMAML(t, model, MSE, 2, fo, 23)
		want, _, err := m.MetaGradient(b)
		if err != nil {
			t.Fatal(err)
		}
		s := newMetaSGD(t, model, MSE, 2, fo, false, 23)
		got, _, err := s.MetaGradient(b)
		if err != nil {
			t.Fatal(err)
		}
		if e := graph.RelErr(flat(got[:s.Params.Len()]), flat(want), 1e-6); e > 1e-12 {
			t.Errorf("first order %v: Meta-SGD θ meta-gradient with α = %v = %v; MAML's %v (rel err %.3g)", fo, m.InnerLR, flat(got[:s.Params.Len()]), flat(want), e)
		}
	}
}

// TestMetaSGDFirstOrder: after one inner step θ′ = θ − α⊙g(θ) with g
// independent of α, so ∂L/∂α = −g ⊙ ∇L_query(θ′) whether or not g is
// differentiated: the first-order and exact rate gradients agree, while
// the θ gradients differ by the dropped second-order term.
func TestMetaSGDFirstOrder(t *testing.T) {
	model := nets.MLP{In: 2, Out: 1, Hidden: []int{6}, Activation: nets.Tanh}
	b := randomBatch(rand.New(rand.NewPCG(5, 9)), 3, 4, 5, 2, 1, false)
	exact, _, err := newMetaSGD(t, model, MSE, 1, false, true, 29).MetaGradient(b)
	if err != nil {
		t.Fatal(err)
	}
	first, _, err := newMetaSGD(t, model, MSE, 1, true, true, 29).MetaGradient(b)
	if err != nil {
		t.Fatal(err)
	}
	n := len(exact) / 2
	if e := graph.RelErr(flat(first[n:]), flat(exact[n:]), 1e-6); e > 1e-12 {
		t.Errorf("one-step first-order rate gradient = %v; exact %v (rel err %.3g)", flat(first[n:]), flat(exact[n:]), e)
	}
	if e := graph.RelErr(flat(first[:n]), flat(exact[:n]), 1e-6); e < 1e-4 {
		t.Errorf("first-order θ meta-gradient equals the exact one (rel diff %.3g)", e)
	}
}

// TestMetaSGDStep: a Step with plain SGD moves θ and α by −lr times their
// meta-gradients, and the rates carry their names.
func TestMetaSGDStep(t *testing.T) {
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{3}}
	b := randomBatch(rand.New(rand.NewPCG(2, 3)), 2, 3, 3, 1, 1, false)
	s := &MetaSGD{MAML: *newMAML(t, model, MSE, 1, false, 31)}
	s.InnerLR, s.Optimizer = 0.05, &SGD{LR: 0.1}
	grads, _, err := s.MetaGradient(b)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range s.Params.Names() {
		if got := s.LRs.At(i).Name; got != "lr."+name {
			t.Errorf("rate tensor %d is named %q; want %q", i, got, "lr."+name)
		}
	}
	before := append(s.Params.Flatten(), s.LRs.Flatten()...)
	for _, v := range s.LRs.Flatten() {
		if v != 0.05 {
			t.Fatalf("initial rate %v; want InnerLR 0.05", v)
		}
	}
	if _, err := s.Step(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	after := append(s.Params.Flatten(), s.LRs.Flatten()...)
	g := flat(grads)
	for i := range before {
		if want := before[i] - 0.1*g[i]; after[i] != want {
			t.Fatalf("value %d after a Step = %v; want %v − 0.1·%v = %v", i, after[i], before[i], g[i], want)
		}
	}
	if s.Steps() != 1 {
		t.Errorf("Steps() = %d; want 1", s.Steps())
	}
}

func TestMetaSGDBadRates(t *testing.T) {
	model := nets.MLP{In: 2, Out: 1, Hidden: []int{3}}
	b := randomBatch(rand.New(rand.NewPCG(2, 3)), 2, 3, 3, 2, 1, false)
	other, _ := nets.MLP{In: 2, Out: 1, Hidden: []int{4}}.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
	wrongShape, err := constantRates(other, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	s := &MetaSGD{MAML: *newMAML(t, model, MSE, 1, false, 1)}
	wrongNames, err := constantRates(s.Params, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	renamed := new(graph.Params)
	for i := 0; i < wrongNames.Len(); i++ {
		if err := renamed.Add(strings.TrimPrefix(wrongNames.At(i).Name, LRPrefix), wrongNames.At(i).Value); err != nil {
			t.Fatal(err)
		}
	}
	for name, lrs := range map[string]*graph.Params{"shapes of another model": wrongShape, "names without the prefix": renamed} {
		s.LRs = lrs
		if _, err := s.Step(context.Background(), b); err == nil {
			t.Errorf("Step with rates of %s: no error", name)
		}
	}
}

// TestMetaSGDResume checks that N steps, a checkpoint written to disk and
// read back, then M steps give bit-identical θ and α to N+M steps straight
// through.
func TestMetaSGDResume(t *testing.T) {
	const n, m = 3, 3
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{8}, Activation: nets.Tanh}
	start := func() (*MetaSGD, *rand.PCG) {
		p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
		if err != nil {
			t.Fatal(err)
		}
		return &MetaSGD{MAML: MAML{Model: model, Params: p, InnerSteps: 2, Optimizer: &Adam{LR: 0.01}}}, rand.NewPCG(2, 2)
	}
	steps := func(s *MetaSGD, src *rand.PCG, k int) {
		rng := rand.New(src)
		for range k {
			b, _, err := tasks.Sinusoid{}.Sample(rng, 3, 5, 5)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Step(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	straight, src := start()
	steps(straight, src, n+m)

	first, src1 := start()
	steps(first, src1, n)
	c := graph.NewCheckpoint(first.Params.Clone())
	if err := first.SaveState("metasgd.", c); err != nil {
		t.Fatal(err)
	}
	rngState, err := src1.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back := roundTrip(t, c)
	if _, ok := back.State.Get("metasgd.lr.layers.0.weight"); !ok {
		t.Errorf("checkpoint state %v lacks the rates of layers.0.weight", back.State.Names())
	}

	resumed := &MetaSGD{MAML: MAML{Model: model, Params: back.Params, InnerSteps: 2, Optimizer: &Adam{LR: 0.01}}}
	if err := resumed.LoadState("metasgd.", back); err != nil {
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
	sameBits(t, "rates", straight.LRs.Flatten(), resumed.LRs.Flatten())

	fresh, _ := start()
	if err := fresh.LoadState("other.", back); err == nil {
		t.Errorf("LoadState under a prefix that was not saved: no error")
	}
}
