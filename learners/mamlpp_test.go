package learners

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// TestMultiStepWeights: the multi-step loss starts uniform, moves weight
// to the last step linearly, keeps the sum 1 and the earlier weights at
// or above 0.03/S, and ends after MultiStep iterations.
func TestMultiStepWeights(t *testing.T) {
	m := &MAML{inner: innerRule{multiStep: 100}}
	for _, c := range []struct {
		done int
		want []float64
	}{
		{0, []float64{0.2, 0.2, 0.2, 0.2, 0.2}},
		{50, []float64{0.1, 0.1, 0.1, 0.1, 0.6}},
		{99, []float64{0.006, 0.006, 0.006, 0.006, 0.976}},
	} {
		m.steps = c.done
		w := m.multiStepWeights(5)
		sum := 0.0
		for i, v := range w {
			sum += v
			if math.Abs(v-c.want[i]) > 1e-12 {
				t.Errorf("after %d iterations: weights %v, want %v", c.done, w, c.want)
				break
			}
		}
		if math.Abs(sum-1) > 1e-12 {
			t.Errorf("after %d iterations: weights %v sum to %v", c.done, w, sum)
		}
	}
	m.steps = 100
	if w := m.multiStepWeights(5); w != nil {
		t.Errorf("after MultiStep iterations: weights %v, want none", w)
	}
	m.steps = 0
	if w := m.multiStepWeights(1); w != nil {
		t.Errorf("one inner step: weights %v, want none", w)
	}
}

// newMAMLPP returns MAMLPP on model with its step rates drawn from
// U[0.05, 0.3], distinct so that a mix-up of steps or parameters shows.
func newMAMLPP(t *testing.T, model nets.MLP, steps, multiStep, firstOrderFor int) *MAMLPP {
	t.Helper()
	p := &MAMLPP{MAML: *newMAML(t, model, MSE, steps, false, 29), StepRates: true, MultiStep: multiStep, FirstOrderFor: firstOrderFor}
	if err := p.prepare(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	x := make([]float64, p.LRs.Size())
	for i := range x {
		x[i] = 0.05 + 0.25*rng.Float64()
	}
	if err := p.LRs.SetFlat(x); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMAMLPPMetaGradientFiniteDifferences checks the second-order
// meta-gradient of the multi-step objective Σₛ wₛ L_query(θ′ₛ) with
// learned step rates, with respect to θ and to the rates, against central
// differences of the objective computed from Evaluate's losses; and
// without the multi-step loss, that of the last step's loss alone.
func TestMAMLPPMetaGradientFiniteDifferences(t *testing.T) {
	model := nets.MLP{In: 2, Out: 1, Hidden: []int{6, 5}, Activation: nets.Tanh}
	const steps = 3
	b := randomBatch(rand.New(rand.NewPCG(6, 7)), 3, 4, 5, model.In, model.Out, false)
	for _, multiStep := range []int{4, 0} {
		p := newMAMLPP(t, model, steps, multiStep, 0)
		p.steps = 2 // weights after 2 of 4 iterations: 1/6, 1/6, 2/3
		w := p.multiStepWeights(steps)
		if multiStep == 0 {
			w = []float64{0, 0, 1}
		} else if math.Abs(w[2]-2.0/3) > 1e-12 {
			t.Fatalf("weights %v, want 1/6, 1/6, 2/3", w)
		}
		grads, _, err := p.MetaGradient(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(grads) != p.Params.Len()+p.LRs.Len() {
			t.Fatalf("MetaGradient returned %d gradients for %d parameters and %d rates", len(grads), p.Params.Len(), p.LRs.Len())
		}
		objective := func(q *graph.Params) func([]float64) float64 {
			return func(x []float64) float64 {
				if err := q.SetFlat(x); err != nil {
					t.Fatal(err)
				}
				l, err := p.Evaluate(b, steps)
				if err != nil {
					t.Fatal(err)
				}
				sum := 0.0
				for s, ws := range w {
					for _, v := range l[s+1] {
						sum += ws * v / float64(len(l[s+1]))
					}
				}
				return sum
			}
		}
		for _, part := range []struct {
			name string
			q    *graph.Params
			got  []float64
		}{
			{"θ", p.Params, flat(grads[:p.Params.Len()])},
			{"step rates", p.LRs, flat(grads[p.Params.Len():])},
		} {
			x := part.q.Flatten()
			want := graph.NumGrad(objective(part.q), x, fdStep)
			if err := part.q.SetFlat(x); err != nil {
				t.Fatal(err)
			}
			if e := graph.RelErr(part.got, want, fdFloor); e > fdTol {
				t.Errorf("multi-step %d: meta-gradient with respect to %s: rel err %.3g > %g\n got  %.6v\n want %.6v", multiStep, part.name, e, fdTol, part.got, want)
			}
		}
	}
}

// TestMAMLPPOptionsAlone: each option off is MAML: rates all InnerLR
// give MAML's θ meta-gradient; FirstOrderFor iterations give first-order
// MAML's, then second order's.
func TestMAMLPPOptionsAlone(t *testing.T) {
	model := nets.MLP{In: 2, Out: 2, Hidden: []int{5}, Activation: nets.Tanh}
	b := randomBatch(rand.New(rand.NewPCG(4, 9)), 3, 4, 5, 2, 2, false)
	want := map[bool][][]float64{}
	for _, fo := range []bool{false, true} {
		g, _, err := newMAML(t, model, MSE, 2, fo, 23).MetaGradient(b)
		if err != nil {
			t.Fatal(err)
		}
		want[fo] = g
	}
	rates := &MAMLPP{MAML: *newMAML(t, model, MSE, 2, false, 23), StepRates: true}
	got, _, err := rates.MetaGradient(b)
	if err != nil {
		t.Fatal(err)
	}
	if e := graph.RelErr(flat(got[:rates.Params.Len()]), flat(want[false]), 1e-6); e > 1e-12 {
		t.Errorf("step rates all InnerLR: θ meta-gradient differs from MAML's by %.3g", e)
	}
	da := &MAMLPP{MAML: *newMAML(t, model, MSE, 2, false, 23), FirstOrderFor: 1}
	for it, fo := range []bool{true, false} {
		da.steps = it
		got, _, err := da.MetaGradient(b)
		if err != nil {
			t.Fatal(err)
		}
		if e := graph.RelErr(flat(got), flat(want[fo]), 1e-6); e > 1e-12 {
			t.Errorf("iteration %d: meta-gradient differs from first-order %v MAML's by %.3g", it+1, fo, e)
		}
	}
}

// TestMAMLPPResume: N iterations, a checkpoint read back, then M more give
// the bits of N+M straight through, across the ends of the multi-step
// loss and of the first-order iterations.
func TestMAMLPPResume(t *testing.T) {
	const n, m = 3, 3
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{8}, Activation: nets.Tanh}
	start := func(p *graph.Params) *MAMLPP {
		if p == nil {
			var err error
			if p, err = model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32); err != nil {
				t.Fatal(err)
			}
		}
		return &MAMLPP{MAML: MAML{Model: model, Params: p, InnerSteps: 2, Optimizer: &Adam{LR: 0.01}}, StepRates: true, MultiStep: 4, FirstOrderFor: 2}
	}
	steps := func(p *MAMLPP, src *rand.PCG, k int) {
		rng := rand.New(src)
		for range k {
			b, _, err := tasks.Sinusoid{}.Sample(rng, 3, 5, 5)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Step(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	straight, src := start(nil), rand.NewPCG(2, 2)
	steps(straight, src, n+m)

	first, src1 := start(nil), rand.NewPCG(2, 2)
	steps(first, src1, n)
	ck, err := Checkpoint(first.Params.Clone(), first, []Stream{{Name: "tasks", Src: src1}})
	if err != nil {
		t.Fatal(err)
	}
	back := roundTrip(t, ck)
	if _, ok := back.State.Get("train.lslr.1.layers.0.weight"); !ok {
		t.Errorf("checkpoint state %v lacks the rate of layers.0.weight at step 1", back.State.Names())
	}
	resumed, src2 := start(back.Params), new(rand.PCG)
	if err := Resume(back, resumed.Params, resumed, []Stream{{Name: "tasks", Src: src2}}); err != nil {
		t.Fatal(err)
	}
	steps(resumed, src2, m)
	sameBits(t, "parameters", straight.Params.Flatten(), resumed.Params.Flatten())
	sameBits(t, "step rates", straight.LRs.Flatten(), resumed.LRs.Flatten())

	plain := start(back.Params)
	plain.StepRates = false
	if err := plain.LoadState("train.", back); err == nil {
		t.Errorf("a checkpoint with step rates loaded into MAMLPP without them")
	}
	ckMAML := start(nil)
	ckMAML.GradCheckpoint = true
	if _, err := ckMAML.PrepareStep(tasks.Shape{Tasks: 1, Support: 2, Query: 2, In: 1, Out: 1}); err == nil {
		t.Errorf("GradCheckpoint with MAML++ options: no error")
	}
}

// TestMAMLPPStepRatesPerStep: each inner step takes its own rates, and
// the steps past the trained ones the last step's: with the first step's
// rates 0 the first step stays at θ and the second and third are MAML's
// first two; with the second step's 0, nothing moves after the first.
func TestMAMLPPStepRatesPerStep(t *testing.T) {
	model := nets.MLP{In: 2, Out: 1, Hidden: []int{5}, Activation: nets.Tanh}
	b := randomBatch(rand.New(rand.NewPCG(8, 1)), 2, 4, 5, 2, 1, false)
	maml, err := newMAML(t, model, MSE, 1, false, 23).Evaluate(b, 2)
	if err != nil {
		t.Fatal(err)
	}
	for zero := range 2 {
		p := &MAMLPP{MAML: *newMAML(t, model, MSE, 2, false, 23), StepRates: true}
		if err := p.prepare(); err != nil {
			t.Fatal(err)
		}
		x := p.LRs.Flatten() // every rate InnerLR
		n := p.Params.Len()
		for i := zero * n; i < (zero+1)*n; i++ {
			x[i] = 0
		}
		if err := p.LRs.SetFlat(x); err != nil {
			t.Fatal(err)
		}
		l, err := p.Evaluate(b, 3)
		if err != nil {
			t.Fatal(err)
		}
		want := [][]float64{maml[0], maml[0], maml[1], maml[2]} // step 0's rates 0
		if zero == 1 {
			want = [][]float64{maml[0], maml[1], maml[1], maml[1]}
		}
		for s := range want {
			if e := graph.RelErr(l[s], want[s], 1e-9); e > 1e-12 {
				t.Errorf("rates of step %d zero: losses after %d steps %v, want %v", zero, s, l[s], want[s])
			}
		}
	}
}

// TestMAMLPPPerStepNorm checks the second-order meta-gradient of a small
// ConvNet with per-step normalisation weights and learned step rates with
// respect to θ, the rates and the copies against central differences of
// the query loss; and that the copy for k steps serves the passes after k
// steps only: changing it leaves the losses after fewer steps as they are.
func TestMAMLPPPerStepNorm(t *testing.T) {
	net := nets.ConvNet{Side: 6, Filters: 2, Blocks: 2, Out: 3}
	b := randomBatch(rand.New(rand.NewPCG(21, 6)), 2, 6, 9, net.In(), net.Out, true)
	params, err := net.Init(rand.New(rand.NewPCG(5, 6)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	p := &MAMLPP{MAML: MAML{Model: net, Params: params, Loss: CrossEntropy, InnerLR: 0.4, InnerSteps: 3}, StepRates: true, PerStepNorm: true}
	if err := p.prepare(); err != nil {
		t.Fatal(err)
	}
	if got, want := p.Norms.Len(), 2*len(net.NormParams()); got != want {
		t.Fatalf("%d per-step copies, want %d (steps 1 and 2)", got, want)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	x := p.Norms.Flatten()
	for i := range x {
		x[i] += 0.3 * (rng.Float64() - 0.5)
	}
	if err := p.Norms.SetFlat(x); err != nil {
		t.Fatal(err)
	}
	grads, _, err := p.MetaGradient(b)
	if err != nil {
		t.Fatal(err)
	}
	n, r := p.Params.Len(), p.LRs.Len()
	eval := func() ([][]float64, error) { return p.Evaluate(b, 3) }
	for _, part := range []struct {
		name string
		q    *graph.Params
		got  []float64
	}{
		{"θ", p.Params, flat(grads[:n])},
		{"step rates", p.LRs, flat(grads[n : n+r])},
		{"normalisation copies", p.Norms, flat(grads[n+r:])},
	} {
		x := part.q.Flatten()
		want := graph.NumGrad(finalLoss(t, part.q, eval), x, fdStep)
		if err := part.q.SetFlat(x); err != nil {
			t.Fatal(err)
		}
		if e := graph.RelErr(part.got, want, fdFloor); e > fdTol {
			t.Errorf("meta-gradient with respect to the %s: rel err %.3g > %g\n got  %.6v\n want %.6v", part.name, e, fdTol, part.got, want)
		}
	}

	// Evaluated over 4 steps: copy 2 also serves the passes after 3 and 4.
	before, err := p.Evaluate(b, 4)
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= 2; k++ {
		saved := p.Norms.Flatten()
		x := slices.Clone(saved)
		half := len(x) / 2
		for i := (k - 1) * half; i < k*half; i++ {
			x[i] *= 3
		}
		if err := p.Norms.SetFlat(x); err != nil {
			t.Fatal(err)
		}
		after, err := p.Evaluate(b, 4)
		if err != nil {
			t.Fatal(err)
		}
		for s := range after {
			if same := slices.Equal(after[s], before[s]); same != (s < k) {
				t.Errorf("copy %d changed: losses after %d steps changed %v, want %v", k, s, !same, s >= k)
			}
		}
		if err := p.Norms.SetFlat(saved); err != nil {
			t.Fatal(err)
		}
	}
	if err := (&MAMLPP{MAML: *newMAML(t, nets.MLP{In: 1, Out: 1}, MSE, 2, false, 1), PerStepNorm: true}).prepare(); err == nil {
		t.Errorf("per-step normalisation of an MLP: no error")
	}
}

// TestMAMLPPPrepareStep: during the first-order iterations the budget
// holds the first-order graph and the second-order one to come, both kept
// until the switch; after it, the second-order one alone.
func TestMAMLPPPrepareStep(t *testing.T) {
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{8}, Activation: nets.Tanh}
	sh := tasks.Shape{Tasks: 2, Support: 3, Query: 3, In: 1, Out: 1}
	size := func(m interface {
		PrepareStep(tasks.Shape) (int64, error)
	}) int64 {
		n, err := m.PrepareStep(sh)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	second, first := size(newMAML(t, model, MSE, 2, false, 1)), size(newMAML(t, model, MSE, 2, true, 1))
	p := &MAMLPP{MAML: *newMAML(t, model, MSE, 2, false, 1), FirstOrderFor: 3}
	if got := size(p); got != second+first || first >= second {
		t.Errorf("during the first-order iterations: %d bytes, want %d + %d", got, second, first)
	}
	p.steps = 3
	if got := size(p); got != second {
		t.Errorf("after them: %d bytes, want %d", got, second)
	}
}
