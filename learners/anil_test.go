package learners

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// finalLoss returns x ↦ the mean over tasks of the last row of eval's
// losses with p set to x: the meta-objective as a function of p.
func finalLoss(t *testing.T, p *graph.Params, eval func() ([][]float64, error)) func([]float64) float64 {
	return func(x []float64) float64 {
		if err := p.SetFlat(x); err != nil {
			t.Fatal(err)
		}
		l, err := eval()
		if err != nil {
			t.Fatal(err)
		}
		return average(l[len(l)-1])
	}
}

func newANIL(t *testing.T, model nets.MLP, loss Loss, steps int, firstOrder bool, seed uint64) *ANIL {
	t.Helper()
	return &ANIL{MAML: *newMAML(t, model, loss, steps, firstOrder, seed)}
}

// features replaces every input of b by the hidden layer of a one-hidden-
// layer MLP with parameters p (layers.0.weight [h, in], layers.0.bias
// [h]), computed here in float64: the trunk as a constant feature map.
func features(b *tasks.Batch, p *graph.Params, act nets.Activation) *tasks.Batch {
	w, bias := graph.Float64s(p.At(0).Value), graph.Float64s(p.At(1).Value)
	h := len(bias)
	phi := func(x []float64) []float64 {
		rows := len(x) / b.In
		out := make([]float64, rows*h)
		for r := 0; r < rows; r++ {
			for j := 0; j < h; j++ {
				z := bias[j]
				for k := 0; k < b.In; k++ {
					z += w[j*b.In+k] * x[r*b.In+k]
				}
				switch act {
				case nets.Tanh:
					z = math.Tanh(z)
				case nets.ReLU:
					z = math.Max(z, 0)
				}
				out[r*h+j] = z
			}
		}
		return out
	}
	f := *b
	f.In = h
	f.SupportX, f.QueryX = phi(b.SupportX), phi(b.QueryX)
	return &f
}

// headMAML returns MAML on a linear model whose parameters are a copy of
// the last two of p (the head of a one-hidden-layer MLP).
func headMAML(t *testing.T, a *ANIL, hidden, out int) *MAML {
	t.Helper()
	head := new(graph.Params)
	for i, name := range []string{"layers.0.weight", "layers.0.bias"} {
		if err := head.Add(name, a.Params.At(2+i).Value.Clone().(*tensor.Dense)); err != nil {
			t.Fatal(err)
		}
	}
	return &MAML{Model: nets.MLP{In: hidden, Out: out}, Params: head, Loss: a.Loss, InnerLR: a.InnerLR, InnerSteps: a.InnerSteps, FirstOrder: a.FirstOrder}
}

// TestANILHeadGradientIsMAMLOnFeatures checks the defining property of
// ANIL: with the trunk φ held fixed, adapting only the head is MAML on the
// head of a model whose input is φ(x). So ANIL's meta-gradient with
// respect to the head equals the meta-gradient of MAML on a linear model
// (the head alone) fed with the trunk's features, computed here outside
// the graph. Both graphs do the same arithmetic in another order, so they
// agree to rounding (1e-12 relative); adapting the trunk too would change
// the head's gradient by O(α) ≈ 1e-2 relative.
func TestANILHeadGradientIsMAMLOnFeatures(t *testing.T) {
	const hidden = 5
	cases := []struct {
		name     string
		act      nets.Activation
		loss     Loss
		out      int
		classify bool
	}{
		{"tanh regression", nets.Tanh, MSE, 2, false},
		{"relu regression", nets.ReLU, MSE, 1, false},
		{"tanh classifier", nets.Tanh, CrossEntropy, 3, true},
	}
	for _, c := range cases {
		for _, steps := range []int{1, 3} {
			for _, fo := range []bool{false, true} {
				name := c.name + "/steps=" + string(rune('0'+steps))
				if fo {
					name += "/first-order"
				}
				t.Run(name, func(t *testing.T) {
					model := nets.MLP{In: 3, Out: c.out, Hidden: []int{hidden}, Activation: c.act}
					b := randomBatch(rand.New(rand.NewPCG(8, uint64(steps))), 3, 4, 5, 3, c.out, c.classify)
					a := newANIL(t, model, c.loss, steps, fo, 21)
					grads, st, err := a.MetaGradient(b)
					if err != nil {
						t.Fatal(err)
					}
					got := flat(grads[2:])
					m := headMAML(t, a, hidden, c.out)
					fb := features(b, a.Params, c.act)
					want, mst, err := m.MetaGradient(fb)
					if err != nil {
						t.Fatal(err)
					}
					if e := graph.RelErr(got, flat(want), 1e-6); e > 1e-12 {
						t.Errorf("ANIL head meta-gradient = %.8v; MAML on trunk features %.8v (rel err %.3g)", got, flat(want), e)
					}
					if e := graph.RelErr([]float64{st.PostLoss}, []float64{mst.PostLoss}, 1e-6); e > 1e-12 {
						t.Errorf("ANIL post-adaptation loss %v; MAML on features %v", st.PostLoss, mst.PostLoss)
					}
				})
			}
		}
	}
}

// TestANILMetaGradientFiniteDifferences checks the whole meta-gradient,
// trunk included, against central differences of the ANIL objective (the
// tolerances of TestMAMLMetaGradientFiniteDifferences), and that it is not
// MAML's.
func TestANILMetaGradientFiniteDifferences(t *testing.T) {
	cases := []struct {
		name     string
		model    nets.MLP
		loss     Loss
		classify bool
	}{
		{"tanh", nets.MLP{In: 2, Out: 1, Hidden: []int{6, 5}, Activation: nets.Tanh}, MSE, false},
		{"relu", nets.MLP{In: 2, Out: 2, Hidden: []int{6}, Activation: nets.ReLU}, MSE, false},
		{"softmax classifier", nets.MLP{In: 3, Out: 3, Hidden: []int{5}, Activation: nets.Sigmoid}, CrossEntropy, true},
	}
	for _, c := range cases {
		for _, steps := range []int{1, 2} {
			t.Run(c.name+"/steps="+string(rune('0'+steps)), func(t *testing.T) {
				b := randomBatch(rand.New(rand.NewPCG(9, uint64(steps))), 3, 4, 5, c.model.In, c.model.Out, c.classify)
				a := newANIL(t, c.model, c.loss, steps, false, 13)
				grads, _, err := a.MetaGradient(b)
				if err != nil {
					t.Fatal(err)
				}
				got := flat(grads)
				x := a.Params.Flatten()
				want := graph.NumGrad(finalLoss(t, a.Params, func() ([][]float64, error) { return a.Evaluate(b, steps) }), x, fdStep)
				if err := a.Params.SetFlat(x); err != nil {
					t.Fatal(err)
				}
				if e := graph.RelErr(got, want, fdFloor); e > fdTol {
					t.Errorf("ANIL meta-gradient rel err %.3g > %g\n got  %.6v\n want %.6v", e, fdTol, got, want)
				}
				m := newMAML(t, c.model, c.loss, steps, false, 13)
				mg, _, err := m.MetaGradient(b)
				if err != nil {
					t.Fatal(err)
				}
				if e := graph.RelErr(got, flat(mg), fdFloor); e < 1e-4 {
					t.Errorf("ANIL meta-gradient equals MAML's (rel diff %.3g): the trunk is adapted in the inner loop", e)
				}
			})
		}
	}
}

// TestANILHead checks the choice of adapted parameters: naming every
// parameter gives MAML exactly, naming the last two is the default, and
// bad names are errors.
func TestANILHead(t *testing.T) {
	model := nets.MLP{In: 2, Out: 2, Hidden: []int{4, 3}, Activation: nets.Tanh}
	b := randomBatch(rand.New(rand.NewPCG(2, 2)), 2, 3, 4, 2, 2, false)
	gradient := func(head []string) []float64 {
		a := newANIL(t, model, MSE, 2, false, 5)
		a.Head = head
		g, _, err := a.MetaGradient(b)
		if err != nil {
			t.Fatal(err)
		}
		return flat(g)
	}
	m := newMAML(t, model, MSE, 2, false, 5)
	mg, _, err := m.MetaGradient(b)
	if err != nil {
		t.Fatal(err)
	}
	if all := gradient(m.Params.Names()); graph.RelErr(all, flat(mg), 1e-6) != 0 {
		t.Errorf("ANIL adapting every parameter = %v; want MAML's %v", all, flat(mg))
	}
	if def, named := gradient(nil), gradient([]string{"layers.2.weight", "layers.2.bias"}); graph.RelErr(def, named, 1e-6) != 0 {
		t.Errorf("ANIL with Head nil = %v; with the last layer named %v", def, named)
	}
	if def, last := gradient(nil), gradient([]string{"layers.2.bias"}); graph.RelErr(def, last, 1e-6) == 0 {
		t.Errorf("ANIL adapting only the last bias gives the same meta-gradient as adapting the last layer")
	}
	for _, head := range [][]string{{}, {"layers.9.weight"}} {
		a := newANIL(t, model, MSE, 1, false, 5)
		a.Head = head
		if _, _, err := a.MetaGradient(b); err == nil {
			t.Errorf("ANIL with Head %q: no error", head)
		}
	}
}

// TestANILEvaluateClassifier: evaluation adapts only the head, so it
// equals MAML's evaluation of the head on the trunk's features.
func TestANILEvaluateClassifier(t *testing.T) {
	model := nets.MLP{In: 3, Out: 4, Hidden: []int{6}, Activation: nets.Tanh}
	b := randomBatch(rand.New(rand.NewPCG(3, 1)), 5, 4, 8, 3, 4, true)
	a := newANIL(t, model, CrossEntropy, 1, false, 17)
	a.InnerLR = 0.5
	got, err := a.EvaluateClassifier(b, 3)
	if err != nil {
		t.Fatal(err)
	}
	want, err := headMAML(t, a, 6, 4).EvaluateClassifier(features(b, a.Params, nets.Tanh), 3)
	if err != nil {
		t.Fatal(err)
	}
	for s := range want.Loss {
		if e := graph.RelErr(got.Loss[s], want.Loss[s], 1e-6); e > 1e-12 {
			t.Errorf("ANIL loss after %d steps = %v; MAML on features %v", s, got.Loss[s], want.Loss[s])
		}
		if e := graph.RelErr(got.Accuracy[s], want.Accuracy[s], 1); e != 0 {
			t.Errorf("ANIL accuracy after %d steps = %v; MAML on features %v", s, got.Accuracy[s], want.Accuracy[s])
		}
	}
}
