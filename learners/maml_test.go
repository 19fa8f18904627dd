package learners

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// Central differences with h = 1e-5 on float64 objectives of unit scale
// have error ≈ 1e-10; a missing second-order term changes the
// meta-gradient by O(α) ≈ 1e-2 relative, so 1e-6 separates the two.
const (
	fdStep  = 1e-5
	fdTol   = 1e-6
	fdFloor = 1e-3
)

// randomBatch draws a batch with Gaussian inputs; regression targets are
// Gaussian, classification targets one-hot of a random class.
func randomBatch(rng *rand.Rand, nTasks, support, query, in, out int, classify bool) *tasks.Batch {
	b := &tasks.Batch{Tasks: nTasks, Support: support, Query: query, In: in, Out: out}
	fill := func(n, width int, onehot bool) []float64 {
		d := make([]float64, n*width)
		for r := 0; r < n; r++ {
			if onehot {
				d[r*width+rng.IntN(width)] = 1
				continue
			}
			for j := 0; j < width; j++ {
				d[r*width+j] = rng.NormFloat64()
			}
		}
		return d
	}
	b.SupportX = fill(nTasks*support, in, false)
	b.SupportY = fill(nTasks*support, out, classify)
	b.QueryX = fill(nTasks*query, in, false)
	b.QueryY = fill(nTasks*query, out, classify)
	return b
}

func newMAML(t *testing.T, model nets.MLP, loss Loss, steps int, firstOrder bool, seed uint64) *MAML {
	t.Helper()
	p, err := model.Init(rand.New(rand.NewPCG(seed, 1)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	return &MAML{Model: model, Params: p, Loss: loss, InnerLR: 0.1, InnerSteps: steps, FirstOrder: firstOrder}
}

// objective returns L_query(θ′(θ)) for flat parameters θ, computed by a
// forward-only graph.
func objective(t *testing.T, m *MAML, b *tasks.Batch) func([]float64) float64 {
	return func(x []float64) float64 {
		if err := m.Params.SetFlat(x); err != nil {
			t.Fatal(err)
		}
		l, err := m.Evaluate(b, m.innerSteps())
		if err != nil {
			t.Fatal(err)
		}
		last := l[len(l)-1]
		s := 0.0
		for _, v := range last {
			s += v
		}
		return s / float64(len(last))
	}
}

func flat(g [][]float64) []float64 {
	var out []float64
	for _, r := range g {
		out = append(out, r...)
	}
	return out
}

func TestMAMLMetaGradientFiniteDifferences(t *testing.T) {
	cases := []struct {
		name     string
		model    nets.MLP
		loss     Loss
		classify bool
	}{
		{"relu", nets.MLP{In: 2, Out: 1, Hidden: []int{6, 5}, Activation: nets.ReLU}, MSE, false},
		{"tanh", nets.MLP{In: 2, Out: 1, Hidden: []int{6, 5}, Activation: nets.Tanh}, MSE, false},
		{"sigmoid", nets.MLP{In: 2, Out: 1, Hidden: []int{6, 5}, Activation: nets.Sigmoid}, MSE, false},
		{"softmax classifier", nets.MLP{In: 3, Out: 3, Hidden: []int{5}, Activation: nets.Tanh}, CrossEntropy, true},
	}
	for _, c := range cases {
		for _, steps := range []int{1, 2, 3} {
			t.Run(c.name+"/steps="+string(rune('0'+steps)), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(7, uint64(steps)))
				b := randomBatch(rng, 3, 4, 5, c.model.In, c.model.Out, c.classify)
				m := newMAML(t, c.model, c.loss, steps, false, 11)
				grads, _, err := m.MetaGradient(b)
				if err != nil {
					t.Fatal(err)
				}
				got := flat(grads)
				x := m.Params.Flatten()
				want := graph.NumGrad(objective(t, m, b), x, fdStep)
				if e := graph.RelErr(got, want, fdFloor); e > fdTol {
					t.Errorf("meta-gradient rel err %.3g > %g\n got  %.6v\n want %.6v", e, fdTol, got, want)
				}

				fo := newMAML(t, c.model, c.loss, steps, true, 11)
				fgrads, _, err := fo.MetaGradient(b)
				if err != nil {
					t.Fatal(err)
				}
				fgot := flat(fgrads)
				if e := graph.RelErr(fgot, want, fdFloor); e < 1e-4 {
					t.Errorf("first-order meta-gradient equals the exact one (rel diff %.3g): the second-order term is missing from MAML", e)
				}
				fwant := firstOrderFormula(t, fo, b)
				if e := graph.RelErr(fgot, fwant, fdFloor); e > fdTol {
					t.Errorf("first-order meta-gradient rel err %.3g > %g against mean_t ∇L_query,t(θ′_t)\n got  %.6v\n want %.6v", e, fdTol, fgot, fwant)
				}
			})
		}
	}
}

// firstOrderFormula computes mean_t ∇L_query,t(θ′_t), θ′_t from InnerSteps
// plain gradient steps on task t's support loss, every gradient by central
// differences of a forward-only graph.
func firstOrderFormula(t *testing.T, m *MAML, b *tasks.Batch) []float64 {
	t.Helper()
	theta := m.Params.Flatten()
	defer m.Params.SetFlat(theta)
	loss := func(x, y []float64, n int) func([]float64) float64 {
		one := &tasks.Batch{Tasks: 1, Support: n, Query: n, In: b.In, Out: b.Out, SupportX: x, SupportY: y, QueryX: x, QueryY: y}
		return func(p []float64) float64 {
			if err := m.Params.SetFlat(p); err != nil {
				t.Fatal(err)
			}
			l, err := m.Evaluate(one, 0)
			if err != nil {
				t.Fatal(err)
			}
			return l[0][0]
		}
	}
	mean := make([]float64, len(theta))
	for task := 0; task < b.Tasks; task++ {
		sx := b.SupportX[task*b.Support*b.In : (task+1)*b.Support*b.In]
		sy := b.SupportY[task*b.Support*b.Out : (task+1)*b.Support*b.Out]
		qx := b.QueryX[task*b.Query*b.In : (task+1)*b.Query*b.In]
		qy := b.QueryY[task*b.Query*b.Out : (task+1)*b.Query*b.Out]
		p := append([]float64(nil), theta...)
		for s := 0; s < m.innerSteps(); s++ {
			g := graph.NumGrad(loss(sx, sy, b.Support), p, fdStep)
			for i := range p {
				p[i] -= m.innerLR() * g[i]
			}
		}
		g := graph.NumGrad(loss(qx, qy, b.Query), p, fdStep)
		for i := range mean {
			mean[i] += g[i] / float64(b.Tasks)
		}
	}
	return mean
}

// TestMAMLLinearClosedForm checks the one-step meta-gradient of a linear
// regression model against its closed form. With features x̃ = (x, 1),
// L(θ) = (1/n)‖X̃θ − y‖², ∇L = (2/n)X̃ᵀ(X̃θ − y), H = (2/n)X̃ᵀX̃, so
// ∇_θ L_q(θ − α∇L_s(θ)) = (I − αH_s) ∇L_q(θ′).
func TestMAMLLinearClosedForm(t *testing.T) {
	model := nets.MLP{In: 3, Out: 1}
	rng := rand.New(rand.NewPCG(5, 5))
	b := randomBatch(rng, 4, 6, 7, 3, 1, false)
	m := newMAML(t, model, MSE, 1, false, 3)
	grads, _, err := m.MetaGradient(b)
	if err != nil {
		t.Fatal(err)
	}
	got := flat(grads) // weight (3), bias (1): the same layout as θ = (w, b)
	theta := m.Params.Flatten()
	d := 4
	alpha := m.innerLR()
	want := make([]float64, d)
	feat := func(x []float64, r int) []float64 { return []float64{x[r*3], x[r*3+1], x[r*3+2], 1} }
	gradH := func(x, y []float64, n int, th []float64) (g []float64, h [][]float64) {
		g = make([]float64, d)
		h = make([][]float64, d)
		for i := range h {
			h[i] = make([]float64, d)
		}
		for r := 0; r < n; r++ {
			f := feat(x, r)
			e := -y[r]
			for i := range f {
				e += f[i] * th[i]
			}
			for i := range f {
				g[i] += 2 / float64(n) * f[i] * e
				for j := range f {
					h[i][j] += 2 / float64(n) * f[i] * f[j]
				}
			}
		}
		return g, h
	}
	for task := 0; task < b.Tasks; task++ {
		sx, sy := b.SupportX[task*18:(task+1)*18], b.SupportY[task*6:(task+1)*6]
		qx, qy := b.QueryX[task*21:(task+1)*21], b.QueryY[task*7:(task+1)*7]
		gs, hs := gradH(sx, sy, 6, theta)
		adapted := make([]float64, d)
		for i := range adapted {
			adapted[i] = theta[i] - alpha*gs[i]
		}
		gq, _ := gradH(qx, qy, 7, adapted)
		for i := 0; i < d; i++ {
			v := gq[i]
			for j := 0; j < d; j++ {
				v -= alpha * hs[i][j] * gq[j]
			}
			want[i] += v / float64(b.Tasks)
		}
	}
	if e := graph.RelErr(got, want, 1e-6); e > 1e-12 {
		t.Errorf("linear one-step meta-gradient = %v; closed form %v (rel err %.3g)", got, want, e)
	}
}

func TestMAMLDeterministic(t *testing.T) {
	run := func() []float64 {
		model := nets.MLP{In: 1, Out: 1, Hidden: []int{16, 16}}
		p, err := model.Init(rand.New(rand.NewPCG(1, 2)), tensor.Float32)
		if err != nil {
			t.Fatal(err)
		}
		m := &MAML{Model: model, Params: p}
		rng := rand.New(rand.NewPCG(3, 4))
		for i := 0; i < 5; i++ {
			b, _, err := tasks.Sinusoid{}.Sample(rng, 4, 5, 5)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Step(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}
		return p.Flatten()
	}
	a, b := run(), run()
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			t.Fatalf("parameter %d differs between two runs with one seed: %v vs %v", i, a[i], b[i])
		}
	}
}

func TestMAMLNonFinite(t *testing.T) {
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{4}}
	m := newMAML(t, model, MSE, 1, false, 1)
	m.InnerLR = 1e200 // adaptation overflows
	rng := rand.New(rand.NewPCG(1, 1))
	b := randomBatch(rng, 2, 3, 3, 1, 1, false)
	before := m.Params.Flatten()
	_, err := m.Step(context.Background(), b)
	var nf *NonFiniteError
	if !errors.As(err, &nf) || !errors.Is(err, ErrNonFinite) || nf.Step != 1 {
		t.Fatalf("Step with a diverging inner rate: err = %v; want *NonFiniteError at step 1", err)
	}
	after := m.Params.Flatten()
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("parameters changed by a failed step")
		}
	}
}

func TestMAMLBadInput(t *testing.T) {
	model := nets.MLP{In: 2, Out: 1, Hidden: []int{4}}
	m := newMAML(t, model, MSE, 1, false, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	wrongIn := randomBatch(rng, 2, 3, 3, 3, 1, false)
	if _, err := m.Step(context.Background(), wrongIn); !errors.Is(err, graph.ErrShape) {
		t.Errorf("Step with 3 input features for a 2-input model: err = %v; want ErrShape", err)
	}
	short := randomBatch(rng, 2, 3, 3, 2, 1, false)
	short.QueryY = short.QueryY[1:]
	if _, err := m.Step(context.Background(), short); err == nil {
		t.Errorf("Step with a short QueryY: no error")
	}
	nan := randomBatch(rng, 2, 3, 3, 2, 1, false)
	nan.SupportX[4] = math.NaN()
	if _, err := m.Step(context.Background(), nan); err == nil {
		t.Errorf("Step with NaN input: no error")
	}
	neg := newMAML(t, model, MSE, 1, false, 1)
	neg.InnerSteps = -1
	if _, err := neg.Step(context.Background(), randomBatch(rng, 2, 3, 3, 2, 1, false)); err == nil {
		t.Errorf("Step with InnerSteps -1: no error")
	}
	if _, err := m.Step(context.Background(), nil); err == nil {
		t.Errorf("Step with a nil batch: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Step(ctx, randomBatch(rng, 2, 3, 3, 2, 1, false)); !errors.Is(err, context.Canceled) {
		t.Errorf("Step with a cancelled context: err = %v; want context.Canceled", err)
	}
}

func TestOptimizerStateMismatch(t *testing.T) {
	small, _ := nets.MLP{In: 1, Out: 1, Hidden: []int{2}}.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
	big, _ := nets.MLP{In: 1, Out: 1, Hidden: []int{3}}.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
	grads := func(p *graph.Params) [][]float64 {
		out := make([][]float64, p.Len())
		for i := range out {
			out[i] = make([]float64, p.At(i).Value.Shape().TotalSize())
		}
		return out
	}
	for _, opt := range []Optimizer{&Adam{}, &SGD{Momentum: 0.9}} {
		if err := opt.Update(small, grads(small)); err != nil {
			t.Fatal(err)
		}
		if err := opt.Update(big, grads(big)); err == nil {
			t.Errorf("%T.Update with parameters of another shape: no error", opt)
		}
		if err := opt.Update(small, grads(big)); err == nil {
			t.Errorf("%T.Update with gradients of the wrong size: no error", opt)
		}
	}
}

// TestAdamFirstStep: Adam's first step moves every coordinate by lr·sign(g)
// (bias correction makes m̂ = g and v̂ = g², so the step is lr·g/(|g|+ε)).
func TestAdamFirstStep(t *testing.T) {
	p, _ := nets.MLP{In: 1, Out: 1}.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
	before := p.Flatten()
	g := [][]float64{{0.5}, {-2}}
	if err := (&Adam{LR: 0.1}).Update(p, g); err != nil {
		t.Fatal(err)
	}
	after := p.Flatten()
	want := []float64{before[0] - 0.1*0.5/(0.5+1e-8), before[1] + 0.1*2/(2+1e-8)}
	if graph.RelErr(after, want, 1) > 1e-15 {
		t.Errorf("Adam first step = %v; want %v", after, want)
	}
}

// TestMAMLSettingsChange: changing a setting between steps rebuilds the
// graph, so the result equals that of a learner built with the new setting.
func TestMAMLSettingsChange(t *testing.T) {
	model := nets.MLP{In: 2, Out: 1, Hidden: []int{4}, Activation: nets.Tanh}
	b := randomBatch(rand.New(rand.NewPCG(4, 4)), 2, 3, 3, 2, 1, false)
	m := newMAML(t, model, MSE, 1, false, 1)
	before, _, err := m.MetaGradient(b)
	if err != nil {
		t.Fatal(err)
	}
	m.InnerLR, m.FirstOrder = 0.5, true
	after, _, err := m.MetaGradient(b)
	if err != nil {
		t.Fatal(err)
	}
	fresh := newMAML(t, model, MSE, 1, true, 1)
	fresh.InnerLR = 0.5
	want, _, err := fresh.MetaGradient(b)
	if err != nil {
		t.Fatal(err)
	}
	if graph.RelErr(flat(after), flat(want), 1e-12) != 0 {
		t.Errorf("meta-gradient after changing InnerLR and FirstOrder = %v; want %v", flat(after), flat(want))
	}
	if graph.RelErr(flat(before), flat(after), 1e-12) == 0 {
		t.Errorf("changing InnerLR and FirstOrder did not change the meta-gradient")
	}
}

// TestMAMLStepAllocations: once compiled, a float32 MAML meta-iteration
// on the sinusoid protocol (MLP 1-40-40-1, 25 tasks, one inner step, on
// one CPU) reuses its buffers: fewer than 100 allocations, where building
// its values anew would take thousands.
func TestMAMLStepAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops buffers: allocation counts are not meaningful")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{40, 40}, Activation: nets.ReLU}
	p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	m := &MAML{Model: model, Params: p}
	b, _, err := tasks.Sinusoid{}.Sample(rand.New(rand.NewPCG(2, 2)), 25, 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.Step(ctx, b); err != nil { // compiles
		t.Fatal(err)
	}
	var stepErr error
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := m.Step(ctx, b); err != nil {
			stepErr = err
		}
	})
	if stepErr != nil {
		t.Fatal(stepErr)
	}
	if allocs >= 100 {
		t.Errorf("a meta-iteration makes %v allocations, want fewer than 100", allocs)
	}
	t.Logf("%v allocations per meta-iteration", allocs)
}

// TestPredictMatchesEvaluate: the predictions after each inner step give
// the query losses that Evaluate reports, and the steps move them.
func TestPredictMatchesEvaluate(t *testing.T) {
	for _, act := range []nets.Activation{nets.ReLU, nets.Tanh} {
		t.Run(act.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 6))
			model := nets.MLP{In: 1, Out: 1, Hidden: []int{8, 8}, Activation: act}
			params, err := model.Init(rng, tensor.Float64)
			if err != nil {
				t.Fatal(err)
			}
			// A step size of 0.05 moves the fits visibly in 3 steps.
			const lr, steps = 0.05, 3
			b, _, err := tasks.Sinusoid{}.Sample(rng, 4, 5, 7)
			if err != nil {
				t.Fatal(err)
			}
			m := &MAML{Model: model, Params: params, InnerLR: lr}
			losses, err := m.Evaluate(b, steps)
			if err != nil {
				t.Fatal(err)
			}
			preds, err := m.Predict(b, steps)
			if err != nil {
				t.Fatal(err)
			}
			if len(preds) != steps+1 {
				t.Fatalf("%d sets of predictions; want %d", len(preds), steps+1)
			}
			for s := range preds {
				for task := 0; task < b.Tasks; task++ {
					var mse float64
					for k := 0; k < b.Query; k++ {
						d := preds[s][task*b.Query+k] - b.QueryY[task*b.Query+k]
						mse += d * d
					}
					mse /= float64(b.Query)
					if want := losses[s][task]; math.Abs(mse-want) > 1e-9*max(1, want) {
						t.Errorf("step %d task %d: MSE of the predictions = %.15g; Evaluate gives %.15g", s, task, mse, want)
					}
				}
			}
			moved := 0.0
			for i := range preds[0] {
				moved = max(moved, math.Abs(preds[steps][i]-preds[0][i]))
			}
			if moved < 1e-3 {
				t.Errorf("%d inner steps moved the predictions by at most %g; the comparison tests nothing", steps, moved)
			}
		})
	}
}

// TestMetaGradientKept checks that the gradients MetaGradient returns are
// the caller's: later steps, which read their gradients into buffers the
// learner keeps, do not overwrite them.
func TestMetaGradientKept(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{5}}
	m := newMAML(t, model, MSE, 1, false, 2)
	b := randomBatch(rng, 3, 4, 5, 1, 1, false)
	grads, _, err := m.MetaGradient(b)
	if err != nil {
		t.Fatal(err)
	}
	kept := flat(grads)
	for range 3 {
		if _, err := m.Step(context.Background(), randomBatch(rng, 3, 4, 5, 1, 1, false)); err != nil {
			t.Fatal(err)
		}
	}
	if got := flat(grads); !slices.Equal(got, kept) {
		t.Errorf("MetaGradient's result changed under later steps:\n got  %v\n want %v", got, kept)
	}
}
