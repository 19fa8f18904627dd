package learners

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// affine returns A and c of one SGD step θ ← Aθ + c on the MSE of a
// linear model over the given rows of task t's examples x [n, in], y [n]:
// with features x̃ = (x, 1), L(θ) = (1/m)‖X̃θ − y‖² over the m rows, so
// θ − α∇L = (I − (2α/m)X̃ᵀX̃)θ + (2α/m)X̃ᵀy.
func affine(x, y []float64, in int, rows []int, alpha float64) ([][]float64, []float64) {
	d := in + 1
	a := make([][]float64, d)
	for i := range a {
		a[i] = make([]float64, d)
		a[i][i] = 1
	}
	c := make([]float64, d)
	k := 2 * alpha / float64(len(rows))
	for _, r := range rows {
		f := append(slices.Clone(x[r*in:(r+1)*in]), 1)
		for i := range f {
			c[i] += k * f[i] * y[r]
			for j := range f {
				a[i][j] -= k * f[i] * f[j]
			}
		}
	}
	return a, c
}

func apply(a [][]float64, c, th []float64) []float64 {
	out := make([]float64, len(th))
	for i := range out {
		out[i] = c[i]
		for j, v := range th {
			out[i] += a[i][j] * v
		}
	}
	return out
}

func allRows(n int) []int {
	r := make([]int, n)
	for i := range r {
		r[i] = i
	}
	return r
}

// reptileOuter returns θ + ε·mean_t(θ̃_t − θ).
func reptileOuter(theta []float64, adapted [][]float64, eps float64) []float64 {
	out := make([]float64, len(theta))
	for i, v := range theta {
		d := 0.0
		for _, a := range adapted {
			d += a[i] - v
		}
		out[i] = v + eps*d/float64(len(adapted))
	}
	return out
}

// taskSet returns task t's training examples: support, then query if
// withQuery.
func taskSet(b *tasks.Batch, t int, withQuery bool) (x, y []float64) {
	x = slices.Clone(b.SupportX[t*b.Support*b.In : (t+1)*b.Support*b.In])
	y = slices.Clone(b.SupportY[t*b.Support : (t+1)*b.Support])
	if withQuery {
		x = append(x, b.QueryX[t*b.Query*b.In:(t+1)*b.Query*b.In]...)
		y = append(y, b.QueryY[t*b.Query:(t+1)*b.Query]...)
	}
	return x, y
}

func newReptile(t *testing.T, model nets.MLP, seed uint64) *Reptile {
	t.Helper()
	p, err := model.Init(rand.New(rand.NewPCG(seed, 1)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	return &Reptile{Model: model, Params: p}
}

// TestReptileLinearClosedForm checks two outer updates of Reptile with
// plain SGD on a linear model with the MSE loss, where each inner step is
// the affine map of affine, so θ̃_t is an explicit affine function of θ;
// the second update uses the annealed ε. Agreement is to rounding.
func TestReptileLinearClosedForm(t *testing.T) {
	cases := []struct {
		name     string
		tasks    int
		steps    int
		useQuery bool
		batch    int
	}{
		{"one task, full batch", 1, 3, false, 0},
		{"three tasks, support and query", 3, 2, true, 0},
		{"two tasks, mini-batches", 2, 4, true, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			const in = 3
			r := newReptile(t, nets.MLP{In: in, Out: 1}, 3)
			r.InnerLR, r.InnerSteps, r.UseQuery, r.InnerBatch = 0.05, c.steps, c.useQuery, c.batch
			r.OuterLR, r.FinalOuterLR, r.AnnealSteps = 0.7, 0.1, 2
			if c.batch > 0 {
				r.Rand = rand.New(rand.NewPCG(9, 9))
			}
			draws := rand.New(rand.NewPCG(9, 9)) // the same stream as r.Rand
			rng := rand.New(rand.NewPCG(5, 6))
			theta := r.Params.Flatten() // (w, b): the layout of x̃ = (x, 1)
			for outer, eps := range []float64{0.7, 0.4} {
				if got := r.OuterRate(); math.Abs(got-eps) > 1e-15 {
					t.Errorf("OuterRate() before step %d = %v; want %v", outer+1, got, eps)
				}
				b := randomBatch(rng, c.tasks, 4, 3, in, 1, false)
				if _, err := r.Step(context.Background(), b); err != nil {
					t.Fatal(err)
				}
				adapted := make([][]float64, c.tasks)
				for task := range adapted {
					x, y := taskSet(b, task, c.useQuery)
					n := len(y)
					var batches [][]int
					if c.batch > 0 {
						batches = miniBatches(draws, n, c.batch, c.steps)
					}
					th := theta
					for s := 0; s < c.steps; s++ {
						rows := allRows(n)
						if batches != nil {
							rows = batches[s]
						}
						a, cc := affine(x, y, in, rows, r.InnerLR)
						th = apply(a, cc, th)
					}
					adapted[task] = th
				}
				theta = reptileOuter(theta, adapted, eps)
				if got := r.Params.Flatten(); graph.RelErr(got, theta, 1e-3) > 1e-12 {
					t.Fatalf("θ after step %d = %v; closed form %v (rel err %.3g)", outer+1, got, theta, graph.RelErr(got, theta, 1e-3))
				}
			}
			if r.Steps() != 2 {
				t.Errorf("Steps() = %d; want 2", r.Steps())
			}
		})
	}
}

// TestReptileInnerAdam checks Reptile with the inner Adam against the same
// computation written out here (exact linear-model gradients, Adam with
// β1 = 0, β2 = 0.999, ε = 1e-8), over two outer steps so that the moments
// carried between steps (averaged over tasks) matter.
func TestReptileInnerAdam(t *testing.T) {
	const in, nTasks, k = 2, 3, 3
	r := newReptile(t, nets.MLP{In: in, Out: 1}, 4)
	r.InnerLR, r.InnerSteps, r.InnerAdam, r.OuterLR = 0.01, k, true, 0.5
	rng := rand.New(rand.NewPCG(7, 7))
	theta := r.Params.Flatten()
	d := len(theta)
	var mc, vc []float64 // carried moments
	step := 0
	for outer := 0; outer < 2; outer++ {
		b := randomBatch(rng, nTasks, 5, 3, in, 1, false)
		eps := r.OuterRate()
		if _, err := r.Step(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		adapted := make([][]float64, nTasks)
		mSum, vSum := make([]float64, d), make([]float64, d)
		for task := range adapted {
			x, y := taskSet(b, task, false)
			th := slices.Clone(theta)
			m, v := make([]float64, d), make([]float64, d)
			if mc != nil {
				m, v = slices.Clone(mc), slices.Clone(vc)
			}
			for s := 1; s <= k; s++ {
				a, c := affine(x, y, in, allRows(len(y)), 1) // θ − ∇L = Aθ + c
				next := apply(a, c, th)
				c2 := 1 - math.Pow(0.999, float64(step+s))
				for i := range th {
					g := th[i] - next[i]
					m[i] = g
					v[i] = 0.999*v[i] + 0.001*g*g
					th[i] -= r.InnerLR * m[i] / (math.Sqrt(v[i]/c2) + 1e-8)
				}
			}
			adapted[task] = th
			for i := range m {
				mSum[i] += m[i] / nTasks
				vSum[i] += v[i] / nTasks
			}
		}
		mc, vc, step = mSum, vSum, step+k
		theta = reptileOuter(theta, adapted, eps)
		if got := r.Params.Flatten(); graph.RelErr(got, theta, 1e-3) > 1e-12 {
			t.Fatalf("θ after step %d = %v; want %v (rel err %.3g)", outer+1, got, theta, graph.RelErr(got, theta, 1e-3))
		}
	}
	if r.adam == nil || r.adam.step != 2*k || graph.RelErr(flat(r.adam.v), vc, 1e-12) > 1e-12 {
		t.Errorf("carried inner Adam state = %+v; want step %d, second moments %v", r.adam, 2*k, vc)
	}
}

// TestMiniBatches checks the reference code's scheme: batches of the
// given size, consecutive runs of n indices each a permutation of 0..n−1.
func TestMiniBatches(t *testing.T) {
	const n, size, count = 5, 3, 7
	got := miniBatches(rand.New(rand.NewPCG(1, 2)), n, size, count)
	if len(got) != count {
		t.Fatalf("miniBatches(5, 3, 7) gave %d batches; want 7", len(got))
	}
	var all []int
	for _, b := range got {
		if len(b) != size {
			t.Fatalf("miniBatches batch %v has %d indices; want %d", b, len(b), size)
		}
		all = append(all, b...)
	}
	for e := 0; e+n <= len(all); e += n {
		p := slices.Clone(all[e : e+n])
		slices.Sort(p)
		if !slices.Equal(p, allRows(n)) {
			t.Errorf("indices %d..%d = %v are not a permutation of 0..%d", e, e+n-1, all[e:e+n], n-1)
		}
	}
	if slices.Equal(all[:n], allRows(n)) && slices.Equal(all[n:2*n], allRows(n)) {
		t.Errorf("miniBatches did not shuffle: %v", all)
	}
}

// TestReptileAnnealing: ε falls linearly from OuterLR to FinalOuterLR over
// AnnealSteps steps and then stays; with ε = 0 a Step leaves θ as it was.
func TestReptileAnnealing(t *testing.T) {
	r := newReptile(t, nets.MLP{In: 1, Out: 1, Hidden: []int{3}}, 1)
	r.InnerLR, r.InnerSteps, r.OuterLR, r.AnnealSteps = 0.1, 1, 0.8, 4
	rng := rand.New(rand.NewPCG(1, 1))
	for i, want := range []float64{0.8, 0.6, 0.4, 0.2, 0, 0} {
		if got := r.OuterRate(); math.Abs(got-want) > 1e-15 {
			t.Errorf("OuterRate() after %d steps = %v; want %v", i, got, want)
		}
		before := r.Params.Flatten()
		if _, err := r.Step(context.Background(), randomBatch(rng, 2, 3, 3, 1, 1, false)); err != nil {
			t.Fatal(err)
		}
		if moved := !slices.Equal(before, r.Params.Flatten()); moved != (want != 0) {
			t.Errorf("step %d with ε = %v moved θ: %v", i+1, want, moved)
		}
	}
	d := &Reptile{}
	if got := d.OuterRate(); got != 1 {
		t.Errorf("default OuterRate() = %v; want 1", got)
	}
	d.steps = 50000
	if got := d.OuterRate(); got != 0.5 {
		t.Errorf("default OuterRate() after 50,000 of 100,000 steps = %v; want 0.5", got)
	}
}

// TestReptileEvaluateIsMAMLs: with SGD, adapting on the support set is
// MAML's inner loop, so the evaluations agree (to rounding); Evaluate
// changes neither θ nor the inner Adam state.
func TestReptileEvaluateIsMAMLs(t *testing.T) {
	model := nets.MLP{In: 3, Out: 4, Hidden: []int{5}, Activation: nets.Tanh}
	b := randomBatch(rand.New(rand.NewPCG(2, 5)), 4, 5, 6, 3, 4, true)
	r := newReptile(t, model, 7)
	r.Loss, r.InnerLR = CrossEntropy, 0.3
	m := &MAML{Model: model, Params: r.Params, Loss: CrossEntropy, InnerLR: 0.3}
	got, err := r.EvaluateClassifier(b, 3)
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.EvaluateClassifier(b, 3)
	if err != nil {
		t.Fatal(err)
	}
	for s := range want.Loss {
		if e := graph.RelErr(got.Loss[s], want.Loss[s], 1e-6); e > 1e-12 {
			t.Errorf("Reptile loss after %d steps = %v; MAML's %v", s, got.Loss[s], want.Loss[s])
		}
		if !slices.Equal(got.Accuracy[s], want.Accuracy[s]) {
			t.Errorf("Reptile accuracy after %d steps = %v; MAML's %v", s, got.Accuracy[s], want.Accuracy[s])
		}
	}
	losses, err := r.Evaluate(b, 3)
	if err != nil {
		t.Fatal(err)
	}
	if graph.RelErr(flat(losses), flat(got.Loss), 1) != 0 {
		t.Errorf("Evaluate = %v; EvaluateClassifier's losses %v", losses, got.Loss)
	}

	r.InnerAdam = true
	if _, err := r.Step(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	theta, state := r.Params.Flatten(), *r.adam
	if _, err := r.Evaluate(b, 2); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(theta, r.Params.Flatten()) || state.step != r.adam.step || !slices.Equal(flat(state.v), flat(r.adam.v)) {
		t.Errorf("Evaluate changed θ or the inner Adam state")
	}
}

func TestReptileNonFinite(t *testing.T) {
	r := newReptile(t, nets.MLP{In: 1, Out: 1, Hidden: []int{4}}, 1)
	r.InnerLR = 1e200 // adaptation overflows
	before := r.Params.Flatten()
	_, err := r.Step(context.Background(), randomBatch(rand.New(rand.NewPCG(1, 1)), 2, 3, 3, 1, 1, false))
	var nf *NonFiniteError
	if !errors.As(err, &nf) || !errors.Is(err, ErrNonFinite) || nf.Step != 1 {
		t.Fatalf("Step with a diverging inner rate: err = %v; want *NonFiniteError at step 1", err)
	}
	if !slices.Equal(before, r.Params.Flatten()) || r.Steps() != 0 {
		t.Errorf("a failed step changed θ or the step count")
	}
}

func TestReptileBadInput(t *testing.T) {
	model := nets.MLP{In: 2, Out: 1, Hidden: []int{4}}
	rng := rand.New(rand.NewPCG(1, 1))
	good := randomBatch(rng, 2, 3, 3, 2, 1, false)
	for name, set := range map[string]func(r *Reptile){
		"InnerBatch without Rand": func(r *Reptile) { r.InnerBatch = 2 },
		"negative InnerSteps":     func(r *Reptile) { r.InnerSteps = -1 },
		"negative InnerBatch":     func(r *Reptile) { r.InnerBatch = -1; r.Rand = rng },
		"NaN InnerLR":             func(r *Reptile) { r.InnerLR = math.NaN() },
		"infinite OuterLR":        func(r *Reptile) { r.OuterLR = math.Inf(1) },
		"negative FinalOuterLR":   func(r *Reptile) { r.FinalOuterLR = -1 },
		"negative AnnealSteps":    func(r *Reptile) { r.AnnealSteps = -1 },
		"no Params":               func(r *Reptile) { r.Params = nil },
	} {
		r := newReptile(t, model, 1)
		set(r)
		if _, err := r.Step(context.Background(), good); err == nil {
			t.Errorf("Step with %s: no error", name)
		}
	}
	r := newReptile(t, model, 1)
	if _, err := r.Step(context.Background(), randomBatch(rng, 2, 3, 3, 3, 1, false)); !errors.Is(err, graph.ErrShape) {
		t.Errorf("Step with 3 input features for a 2-input model: err = %v; want ErrShape", err)
	}
	if _, err := r.Step(context.Background(), nil); err == nil {
		t.Errorf("Step with a nil batch: no error")
	}
	if _, err := r.Evaluate(good, -1); err == nil {
		t.Errorf("Evaluate with -1 steps: no error")
	}
	if _, err := r.EvaluateClassifier(good, 1); err == nil {
		t.Errorf("EvaluateClassifier of a regression batch: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Step(ctx, good); !errors.Is(err, context.Canceled) {
		t.Errorf("Step with a cancelled context: err = %v; want context.Canceled", err)
	}
}

// TestReptileResume checks that N steps, a checkpoint written to disk and
// read back, then M steps give bit-identical parameters to N+M steps
// straight through, with the inner Adam state and mini-batches drawn from
// the saved random stream.
func TestReptileResume(t *testing.T) {
	const n, m = 4, 3
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{8}, Activation: nets.Tanh}
	for _, adam := range []bool{false, true} {
		name := "sgd"
		if adam {
			name = "adam"
		}
		t.Run(name, func(t *testing.T) {
			start := func(p *graph.Params, src *rand.PCG) *Reptile {
				return &Reptile{Model: model, Params: p, InnerLR: 0.01, InnerSteps: 3, InnerBatch: 4, InnerAdam: adam,
					UseQuery: true, OuterLR: 0.9, AnnealSteps: 10, Rand: rand.New(src)}
			}
			init := func() *graph.Params {
				p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			steps := func(r *Reptile, k int) {
				for range k {
					b, _, err := tasks.Sinusoid{}.Sample(r.Rand, 3, 5, 5)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := r.Step(context.Background(), b); err != nil {
						t.Fatal(err)
					}
				}
			}
			straight := start(init(), rand.NewPCG(2, 2))
			steps(straight, n+m)

			src1 := rand.NewPCG(2, 2)
			first := start(init(), src1)
			steps(first, n)
			c := graph.NewCheckpoint(first.Params.Clone())
			if err := first.SaveState("reptile.", c); err != nil {
				t.Fatal(err)
			}
			rngState, err := src1.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			back := roundTrip(t, c)
			src2 := new(rand.PCG)
			if err := src2.UnmarshalBinary(rngState); err != nil {
				t.Fatal(err)
			}
			resumed := start(back.Params, src2)
			if err := resumed.LoadState("reptile.", back); err != nil {
				t.Fatal(err)
			}
			if resumed.OuterRate() != first.OuterRate() {
				t.Errorf("resumed OuterRate() = %v; want %v", resumed.OuterRate(), first.OuterRate())
			}
			steps(resumed, m)
			if resumed.Steps() != n+m {
				t.Errorf("resumed Steps() = %d; want %d", resumed.Steps(), n+m)
			}
			sameBits(t, "parameters", straight.Params.Flatten(), resumed.Params.Flatten())
			if adam {
				sameBits(t, "inner Adam second moments", flat(straight.adam.v), flat(resumed.adam.v))
			}
		})
	}
}

func TestReptileLoadStateErrors(t *testing.T) {
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{3}}
	r := newReptile(t, model, 1)
	r.InnerAdam = true
	if _, err := r.Step(context.Background(), randomBatch(rand.New(rand.NewPCG(1, 1)), 2, 3, 3, 1, 1, false)); err != nil {
		t.Fatal(err)
	}
	c := graph.NewCheckpoint(r.Params)
	if err := r.SaveState("", c); err != nil {
		t.Fatal(err)
	}
	other := newReptile(t, nets.MLP{In: 1, Out: 1, Hidden: []int{4}}, 1)
	if err := other.LoadState("", c); err == nil {
		t.Error("loading inner Adam state into a model of other sizes: no error")
	}
	if err := newReptile(t, model, 1).LoadState("x.", c); err == nil {
		t.Error("LoadState under a prefix that was not saved: no error")
	}
	v, _ := c.State.Get("inner_adam.exp_avg_sq.0")
	v.Data().([]float64)[0] = math.Inf(1)
	if err := newReptile(t, model, 1).LoadState("", c); err == nil {
		t.Error("LoadState with an infinite moment: no error")
	}
}

// ExampleReptile meta-trains a small network on sinusoid tasks with
// Reptile (SGD in the inner loop), then adapts it to fresh tasks.
func ExampleReptile() {
	rng := rand.New(rand.NewPCG(1, 2))
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{40, 40}, Activation: nets.Tanh}
	params, err := model.Init(rng, tensor.Float64)
	if err != nil {
		fmt.Println(err)
		return
	}
	r := &Reptile{Model: model, Params: params, InnerLR: 0.02, InnerSteps: 5, OuterLR: 0.5, AnnealSteps: 300}
	for i := 0; i < 300; i++ {
		b, _, _ := tasks.Sinusoid{}.Sample(rng, 5, 10, 10)
		if _, err := r.Step(context.Background(), b); err != nil {
			fmt.Println(err)
			return
		}
	}
	test, _, _ := tasks.Sinusoid{}.Sample(rng, 100, 10, 50)
	losses, err := r.Evaluate(test, 10)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("adaptation helps: %v\n", average(losses[10]) < average(losses[0]))
	// Output: adaptation helps: true
}
