package learners

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/learners/weighting"
	"github.com/medusa-ml/medusa/nets"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

var mtlTargets = []tasks.Target{
	{Name: "sum", Kind: tasks.Regression},
	{Name: "sign", Kind: tasks.Binary},
	{Name: "argmax", Kind: tasks.Multiclass, Classes: 3},
}

// mtlTable returns n rows of 4 features with three targets: the sum of
// the features, the sign of the first, and the index of the largest of
// the first three.
func mtlTable(rng *rand.Rand, n int) *tasks.Table {
	tb := &tasks.Table{N: n, In: 4, Targets: mtlTargets, Y: make([][]float64, 3)}
	for range n {
		x := make([]float64, 4)
		s := 0.0
		for j := range x {
			x[j] = rng.NormFloat64()
			s += x[j]
		}
		tb.X = append(tb.X, x...)
		tb.Y[0] = append(tb.Y[0], s/2)
		sign := 0.0
		if x[0] > 0 {
			sign = 1
		}
		tb.Y[1] = append(tb.Y[1], sign)
		arg := 0
		for j := 1; j < 3; j++ {
			if x[j] > x[arg] {
				arg = j
			}
		}
		tb.Y[2] = append(tb.Y[2], float64(arg))
	}
	return tb
}

func mtlModel() nets.MultiTask {
	return nets.MultiTask{
		Trunk: nets.Trunk{In: 4, Hidden: []int{6, 5}, Activation: nets.Tanh},
		Heads: []nets.Head{{Name: "sum", Out: 1}, {Name: "sign", Out: 1}, {Name: "argmax", Out: 3, Hidden: []int{4}}},
	}
}

func newMTL(t *testing.T, m MultiTaskModel, seed uint64, dt tensor.Dtype) *MTL {
	t.Helper()
	p, err := m.Init(rand.New(rand.NewPCG(seed, 1)), dt)
	if err != nil {
		t.Fatal(err)
	}
	return &MTL{Model: m, Params: p, Targets: mtlTargets}
}

// taskGrads returns each task's gradient with respect to every parameter
// (zero where the task does not reach it), flattened, computed on the
// trainer's one per-task graph.
func taskGrads(t *testing.T, m *MTL, b *tasks.Table) [][]float64 {
	t.Helper()
	p, err := m.program(b.N, b.In, modePerTask)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.run(m.Params, b); err != nil {
		t.Fatal(err)
	}
	out := make([][]float64, len(m.Targets))
	for k := range m.Targets {
		for i := 0; i < m.Params.Len(); i++ {
			if n := p.taskGrads[k][i]; n != nil {
				g, err := p.plan.ReadFloat64s(n)
				if err != nil {
					t.Fatal(err)
				}
				out[k] = append(out[k], g...)
			} else {
				out[k] = append(out[k], make([]float64, m.Params.At(i).Value.Shape().TotalSize())...)
			}
		}
	}
	return out
}

// separateGrad builds a graph holding task k's loss alone and returns its
// gradient with respect to every parameter, flattened.
func separateGrad(t *testing.T, m *MTL, b *tasks.Table, k int) []float64 {
	t.Helper()
	solo := &MTL{Model: m.Model, Params: m.Params, Targets: m.Targets}
	p, err := solo.build(mtlKey{b.N, b.In, modeEval, false})
	if err != nil {
		t.Fatal(err)
	}
	grads, err := graph.Grad(p.losses[k], p.params...)
	if err != nil {
		t.Fatal(err)
	}
	if p.plan, err = graph.Compile(p.x.Graph(), grads...); err != nil {
		t.Fatal(err)
	}
	if err := p.run(m.Params, b); err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, n := range grads {
		g, err := p.plan.ReadFloat64s(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, g...)
	}
	return out
}

func taskLosses(t *testing.T, m *MTL, b *tasks.Table) []float64 {
	t.Helper()
	p, err := m.program(b.N, b.In, modeEval)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.run(m.Params, b); err != nil {
		t.Fatal(err)
	}
	l, err := p.readLosses(0, m.Targets)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestMTLTaskGradients checks the per-task gradients the trainer takes
// from one graph: they equal those of graphs holding one task's loss each
// (to rounding), and central differences of each task's loss (h = 1e-6 in
// float64; 1e-6 relative).
func TestMTLTaskGradients(t *testing.T) {
	for _, c := range []struct {
		name  string
		model MultiTaskModel
	}{
		{"multitask", mtlModel()},
		{"mmoe", nets.MMoE{In: 4, Experts: 2, ExpertHidden: []int{5}, Activation: nets.Tanh,
			Heads: []nets.Head{{Name: "sum", Out: 1}, {Name: "sign", Out: 1}, {Name: "argmax", Out: 3}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newMTL(t, c.model, 3, tensor.Float64)
			b := mtlTable(rand.New(rand.NewPCG(5, 5)), 7)
			got := taskGrads(t, m, b)
			x := m.Params.Flatten()
			for k, tg := range m.Targets {
				if e := graph.RelErr(got[k], separateGrad(t, m, b, k), 1e-12); e > 1e-12 {
					t.Errorf("task %s: one-graph gradient differs from its own graph's by %.3g", tg.Name, e)
				}
				f := func(v []float64) float64 {
					if err := m.Params.SetFlat(v); err != nil {
						t.Fatal(err)
					}
					return taskLosses(t, m, b)[k]
				}
				num := graph.NumGrad(f, slices.Clone(x), 1e-6)
				if err := m.Params.SetFlat(x); err != nil {
					t.Fatal(err)
				}
				if e := graph.RelErr(got[k], num, 1e-4); e > 1e-6 {
					t.Errorf("task %s: gradient rel err %.3g against central differences", tg.Name, e)
				}
			}
		})
	}
}

// TestMTLWeightedGradient checks that the one-pass gradient of Σ_t w_t L_t
// equals Σ_t w_t g_t from the per-task gradients.
func TestMTLWeightedGradient(t *testing.T) {
	m := newMTL(t, mtlModel(), 4, tensor.Float64)
	b := mtlTable(rand.New(rand.NewPCG(6, 6)), 9)
	per := taskGrads(t, m, b)
	w := []float64{0.3, 1.7, 0.9}
	p, err := m.program(b.N, b.In, modeWeighted)
	if err != nil {
		t.Fatal(err)
	}
	for k := range w {
		if err := p.plan.Let(p.weights[k].Name(), scalar(tensor.Float64, w[k])); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.run(m.Params, b); err != nil {
		t.Fatal(err)
	}
	var got []float64
	for _, n := range p.grads {
		g, _ := p.plan.ReadFloat64s(n)
		got = append(got, g...)
	}
	want := make([]float64, len(got))
	for k := range w {
		for i, v := range per[k] {
			want[i] += w[k] * v
		}
	}
	if e := graph.RelErr(got, want, 1e-12); e > 1e-12 {
		t.Errorf("weighted gradient differs from Σ w g by %.3g", e)
	}
}

// TestMTLTrains trains the three toy tasks with every weighting method
// and checks each reaches a held-out score that an untrained network
// cannot (MSE below a tenth of the target variance 1, accuracies above
// 85%).
func TestMTLTrains(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	train, test := mtlTable(rng, 2048), mtlTable(rng, 512)
	// Noise on the regression's labels, a floor of 0.01 under its MSE:
	// a loss that can reach 0 is not what the methods that divide by the
	// losses (FAMO) are made for.
	for _, tab := range []*tasks.Table{train, test} {
		for i := range tab.Y[0] {
			tab.Y[0][i] += 0.1 * rng.NormFloat64()
		}
	}
	for _, name := range weighting.Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w, err := weighting.New(name, len(mtlTargets))
			if err != nil {
				t.Fatal(err)
			}
			m := newMTL(t, nets.MultiTask{
				Trunk: nets.Trunk{In: 4, Hidden: []int{32, 32}},
				Heads: []nets.Head{{Name: "sum", Out: 1}, {Name: "sign", Out: 1}, {Name: "argmax", Out: 3}},
			}, 1, tensor.Float64)
			m.Weighting, m.Optimizer, m.Rand = w, &Adam{LR: 3e-3}, rand.New(rand.NewPCG(1, 2))
			if d, ok := w.(*weighting.DWA); ok {
				d.EpochSteps = 32
			}
			ctx := context.Background()
			brng := rand.New(rand.NewPCG(8, 8))
			for epoch := 0; epoch < 10; epoch++ {
				batches, err := train.Batches(brng, 64)
				if err != nil {
					t.Fatal(err)
				}
				for _, b := range batches {
					if _, err := m.Step(ctx, b); err != nil {
						t.Fatal(err)
					}
				}
			}
			res, err := m.Evaluate(ctx, test)
			if err != nil {
				t.Fatal(err)
			}
			if res[0].MSE > 0.1 || res[1].Accuracy < 0.85 || res[2].Accuracy < 0.85 {
				t.Errorf("%s: held-out MSE %.3f, accuracies %.3f and %.3f; want MSE < 0.1, accuracies > 0.85", name, res[0].MSE, res[1].Accuracy, res[2].Accuracy)
			}
		})
	}
}

func TestMTLDeterministic(t *testing.T) {
	run := func() []float64 {
		m := newMTL(t, mtlModel(), 9, tensor.Float32)
		w, err := weighting.New("pcgrad", 3)
		if err != nil {
			t.Fatal(err)
		}
		m.Weighting, m.Rand = w, rand.New(rand.NewPCG(3, 3))
		rng := rand.New(rand.NewPCG(2, 2))
		for range 20 {
			if _, err := m.Step(context.Background(), mtlTable(rng, 16)); err != nil {
				t.Fatal(err)
			}
		}
		return m.Params.Flatten()
	}
	a, b := run(), run()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("parameter %d differs between runs with one seed: %v vs %v", i, a[i], b[i])
		}
	}
}

func TestMTLNonFiniteLoss(t *testing.T) {
	for _, name := range []string{"ew", "pcgrad"} {
		m := newMTL(t, mtlModel(), 1, tensor.Float64)
		w, _ := weighting.New(name, 3)
		m.Weighting = w
		// Poison the sign head's bias: only that task's loss is NaN.
		v := graph.Float64s(m.Params.At(7).Value)
		if n := m.Params.At(7).Name; n != "heads.sign.layers.0.bias" {
			t.Fatalf("parameter 7 is %s", n)
		}
		v[0] = math.NaN()
		if err := m.Params.SetFlat(flatWith(m.Params, 7, v)); err != nil {
			t.Fatal(err)
		}
		before := m.Params.Flatten()
		_, err := m.Step(context.Background(), mtlTable(rand.New(rand.NewPCG(1, 1)), 8))
		var nf *NonFiniteError
		if !errors.As(err, &nf) || !strings.Contains(nf.What, "task sign") {
			t.Fatalf("%s: Step with a NaN head: err = %v; want a NonFiniteError naming task sign", name, err)
		}
		after := m.Params.Flatten()
		for i := range before {
			if !(before[i] == after[i] || math.IsNaN(before[i]) && math.IsNaN(after[i])) {
				t.Fatalf("%s: parameter %d changed on a failed step", name, i)
			}
		}
	}
}

// flatWith returns p flattened with parameter i replaced by v.
func flatWith(p *graph.Params, i int, v []float64) []float64 {
	var out []float64
	for j := 0; j < p.Len(); j++ {
		if j == i {
			out = append(out, v...)
		} else {
			out = append(out, graph.Float64s(p.At(j).Value)...)
		}
	}
	return out
}

func TestMTLBadInput(t *testing.T) {
	m := newMTL(t, mtlModel(), 1, tensor.Float64)
	ctx := context.Background()
	b := mtlTable(rand.New(rand.NewPCG(1, 1)), 4)
	wrongKind := *b
	wrongKind.Targets = []tasks.Target{mtlTargets[0], mtlTargets[0], mtlTargets[2]}
	if _, err := m.Step(ctx, &wrongKind); err == nil || !strings.Contains(err.Error(), "sign") {
		t.Errorf("Step with a regression target for the binary head: err = %v; want one naming the task", err)
	}
	wide := &tasks.Table{N: 1, In: 5, X: make([]float64, 5), Targets: mtlTargets, Y: [][]float64{{0}, {0}, {0}}}
	if _, err := m.Step(ctx, wide); !errors.Is(err, graph.ErrShape) {
		t.Errorf("Step with 5 features for a 4-input model: err = %v; want ErrShape", err)
	}
	short := &MTL{Model: m.Model, Params: m.Params, Targets: mtlTargets[:2]}
	if _, err := short.Step(ctx, b); err == nil {
		t.Error("Step with two targets for three heads: no error")
	}
	ctxDone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Step(ctxDone, b); !errors.Is(err, context.Canceled) {
		t.Errorf("Step on a cancelled context: err = %v; want context.Canceled", err)
	}
}

// TestScorer checks accuracy and F1 against counts worked by hand.
func TestScorer(t *testing.T) {
	// Binary: truths 1 1 0 0 1, predictions (logit > 0) 1 0 0 1 1:
	// TP 2, FN 1, FP 1, TN 1 → accuracy 3/5, F1 = 4/(4+1+1).
	s := newScorer(tasks.Target{Kind: tasks.Binary})
	s.add(0.5, []float64{2, -1, -3, 0.5, 1}, []float64{1, 1, 0, 0, 1})
	r := s.metrics(tasks.Target{Name: "b", Kind: tasks.Binary})
	if math.Abs(r.Accuracy-0.6) > 1e-15 || math.Abs(r.F1-4.0/6) > 1e-15 || r.Loss != 0.5 {
		t.Errorf("binary metrics = %+v; want accuracy 0.6, F1 2/3, loss 0.5", r)
	}
	// Three classes of five declared (3 and 4 never occur): truths
	// 0 1 2 2, predictions 0 2 2 1: per-class F1 1, 0, 1/2 → macro 1/2
	// over the classes that occur; accuracy 1/2.
	tg := tasks.Target{Kind: tasks.Multiclass, Classes: 5}
	s = newScorer(tg)
	s.add(1, []float64{5, 0, 0, -1, -1, 0, 1, 2, -1, -1, 0, 0, 3, -1, -1, 0, 4, 1, -1, -1}, []float64{0, 1, 2, 2})
	r = s.metrics(tg)
	if math.Abs(r.Accuracy-0.5) > 1e-15 || math.Abs(r.F1-0.5) > 1e-15 {
		t.Errorf("multi-class metrics = %+v; want accuracy 0.5, macro F1 0.5", r)
	}
	s = newScorer(tasks.Target{})
	s.add(0, []float64{1, 3}, []float64{0, 1})
	if r := s.metrics(tasks.Target{}); r.MSE != 2.5 {
		t.Errorf("regression MSE = %v; want 2.5", r.MSE)
	}
}

// TestMTLHeadsAndLearnedUpdate checks, with SGD of step 1 so that an
// update is minus the gradient, that heads receive their own task's
// gradient scaled by the head weight (uncertainty weighting: 1/(2e^s) =
// 1/2 at s = 0; MGDA: 1, as in its paper), and that uncertainty
// weighting's log-variances move by minus their gradient
// −L_t/(2e^s) + 1/2.
func TestMTLHeadsAndLearnedUpdate(t *testing.T) {
	b := mtlTable(rand.New(rand.NewPCG(2, 9)), 12)
	for _, c := range []struct {
		name string
		head float64
	}{{"uw", 0.5}, {"mgda", 1}} {
		m := newMTL(t, mtlModel(), 6, tensor.Float64)
		w, err := weighting.New(c.name, 3)
		if err != nil {
			t.Fatal(err)
		}
		m.Weighting, m.Optimizer, m.WeightingOptimizer = w, &SGD{LR: 1}, &SGD{LR: 1}
		g := taskGrads(t, m, b)
		losses := taskLosses(t, m, b)
		before := m.Params.Flatten()
		if _, err := m.Step(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		after := m.Params.Flatten()
		off := 0
		for i, o := range m.Model.Owners() {
			n := m.Params.At(i).Value.Shape().TotalSize()
			if o >= 0 {
				for j := off; j < off+n; j++ {
					if d := after[j] - (before[j] - c.head*g[o][j]); math.Abs(d) > 1e-12 {
						t.Fatalf("%s: %s[%d] moved to %v; want %v", c.name, m.Params.At(i).Name, j-off, after[j], before[j]-c.head*g[o][j])
					}
				}
			}
			off += n
		}
		if l, ok := w.(weighting.Learned); ok {
			s := l.Params().Flatten()
			for k, v := range s {
				if want := losses[k]/2 - 0.5; math.Abs(v-want) > 1e-12 {
					t.Errorf("uw: log-variance %d = %v after one step; want %v", k, v, want)
				}
			}
		}
	}
}

// TestLogisticGradientAtZero checks the binary loss's gradient where the
// logit is exactly 0: for the head's bias it is mean(σ(0) − y) =
// 0.5 − mean(y).
func TestLogisticGradientAtZero(t *testing.T) {
	m := newMTL(t, mtlModel(), 6, tensor.Float64)
	for _, name := range []string{"heads.sign.layers.0.weight", "heads.sign.layers.0.bias"} {
		v, _ := m.Params.Get(name)
		for i := range v.Data().([]float64) {
			v.Data().([]float64)[i] = 0
		}
	}
	b := mtlTable(rand.New(rand.NewPCG(3, 9)), 10)
	g := taskGrads(t, m, b)
	off := 0
	for i := 0; i < m.Params.Len(); i++ {
		if m.Params.At(i).Name == "heads.sign.layers.0.bias" {
			break
		}
		off += m.Params.At(i).Value.Shape().TotalSize()
	}
	mean := 0.0
	for _, y := range b.Y[1] {
		mean += y / float64(b.N)
	}
	if got, want := g[1][off], 0.5-mean; math.Abs(got-want) > 1e-15 {
		t.Errorf("bias gradient at logit 0 = %v; want %v", got, want)
	}
}

// TestMTLPredict checks Predict against the model's forward pass on a
// graph of its own (logits through a sigmoid or a softmax), and its
// decisions against Evaluate's accuracies and MSE.
func TestMTLPredict(t *testing.T) {
	model := mtlModel()
	m := newMTL(t, model, 3, tensor.Float64)
	rng := rand.New(rand.NewPCG(4, 4))
	for range 30 {
		if _, err := m.Step(context.Background(), mtlTable(rng, 32)); err != nil {
			t.Fatal(err)
		}
	}
	test := mtlTable(rng, 50)
	rows := &tasks.Table{N: test.N, In: test.In, X: test.X} // no targets
	pred, err := m.Predict(context.Background(), rows)
	if err != nil {
		t.Fatal(err)
	}

	g := G.NewGraph()
	var ps G.Nodes
	for i := 0; i < m.Params.Len(); i++ {
		q := m.Params.At(i)
		ps = append(ps, G.NewTensor(g, tensor.Float64, q.Value.Dims()+1, G.WithShape(append(tensor.Shape{1}, q.Value.Shape()...)...), G.WithName(q.Name)))
	}
	x := G.NewTensor(g, tensor.Float64, 3, G.WithShape(1, test.N, test.In), G.WithName("x"))
	outs, err := model.Forward(x, ps)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := graph.Compile(g, outs...)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range ps {
		v := m.Params.At(i).Value.Clone().(*tensor.Dense)
		if err := v.Reshape(n.Shape()...); err != nil {
			t.Fatal(err)
		}
		if err := plan.Let(n.Name(), v); err != nil {
			t.Fatal(err)
		}
	}
	xv, err := graph.NewTensor(tensor.Float64, []int{1, test.N, test.In}, test.X)
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Let("x", xv); err != nil {
		t.Fatal(err)
	}
	if err := plan.Run(); err != nil {
		t.Fatal(err)
	}
	for k, tg := range mtlTargets {
		logits, err := plan.ReadFloat64s(outs[k])
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float64, len(logits))
		c := tg.Outputs()
		for r := 0; r < len(logits); r += c {
			z := logits[r : r+c]
			switch tg.Kind {
			case tasks.Regression:
				want[r] = z[0]
			case tasks.Binary:
				want[r] = 1 / (1 + math.Exp(-z[0]))
			default:
				sum := 0.0
				for _, v := range z {
					sum += math.Exp(v)
				}
				for j, v := range z {
					want[r+j] = math.Exp(v) / sum
				}
			}
		}
		if e := graph.RelErr(pred[k], want, 1e-12); e > 1e-12 {
			t.Errorf("%s: predictions differ from the forward pass by %.3g\n got  %.6v\n want %.6v", tg.Name, e, pred[k], want)
		}
	}

	res, err := m.Evaluate(context.Background(), test)
	if err != nil {
		t.Fatal(err)
	}
	sq, sign, arg := 0.0, 0, 0
	for i := range test.N {
		d := pred[0][i] - test.Y[0][i]
		sq += d * d
		if (pred[1][i] > 0.5) == (test.Y[1][i] == 1) {
			sign++
		}
		p := pred[2][3*i : 3*i+3]
		best := 0
		for j := range p {
			if p[j] > p[best] {
				best = j
			}
		}
		if best == int(test.Y[2][i]) {
			arg++
		}
	}
	n := float64(test.N)
	if math.Abs(sq/n-res[0].MSE) > 1e-12 || float64(sign)/n != res[1].Accuracy || float64(arg)/n != res[2].Accuracy {
		t.Errorf("from the predictions: MSE %v, accuracies %v and %v; Evaluate: %v, %v, %v", sq/n, float64(sign)/n, float64(arg)/n, res[0].MSE, res[1].Accuracy, res[2].Accuracy)
	}
	if _, err := m.Predict(context.Background(), &tasks.Table{N: 2, In: 3, X: make([]float64, 6)}); err == nil {
		t.Errorf("rows of 3 features for a model of 4: no error")
	}
	// An output that is not finite (here from a parameter, as from
	// features that overflow a float32 network): an error naming the
	// row and task, not NaN predictions.
	last := m.Params.At(m.Params.Len() - 1).Value.Data().([]float64)
	last[0] = math.Inf(1)
	if _, err := m.Predict(context.Background(), rows); err == nil || !strings.Contains(err.Error(), "row 1: the output of task") {
		t.Errorf("an output that is not finite: %v; want an error naming row 1", err)
	}
}

// TestMTLMissingLabels: a task's loss leaves out the rows without its
// label. With one task, training on a table with missing labels is
// training on its labelled rows (to rounding); with three, each task's
// loss and metrics are those of its labelled rows, under a gradient
// method too.
func TestMTLMissingLabels(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	full := mtlTable(rng, 64)
	h := *full
	holes := &h
	holes.Y = make([][]float64, 3)
	for k := range holes.Y {
		holes.Y[k] = slices.Clone(full.Y[k])
		for i := range holes.Y[k] {
			if (i+k)%3 == 0 && i%5 != 4 { // every row keeps at least one label
				holes.Y[k][i] = math.NaN()
			}
		}
	}
	for k, tg := range mtlTargets {
		t.Run("single "+tg.Name, func(t *testing.T) {
			one := &tasks.Table{N: holes.N, In: holes.In, X: holes.X, Targets: []tasks.Target{tg}, Y: [][]float64{holes.Y[k]}}
			var idx []int
			for i, v := range one.Y[0] {
				if !math.IsNaN(v) {
					idx = append(idx, i)
				}
			}
			only, err := one.Rows(idx)
			if err != nil {
				t.Fatal(err)
			}
			model := nets.MultiTask{Trunk: nets.Trunk{In: 4, Hidden: []int{6}, Activation: nets.Tanh}, Heads: []nets.Head{{Name: tg.Name, Out: tg.Outputs()}}}
			train := func(tab *tasks.Table) []float64 {
				p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
				if err != nil {
					t.Fatal(err)
				}
				m := &MTL{Model: model, Params: p, Targets: []tasks.Target{tg}}
				for range 5 {
					if _, err := m.Step(context.Background(), tab); err != nil {
						t.Fatal(err)
					}
				}
				return m.Params.Flatten()
			}
			if e := graph.RelErr(train(one), train(only), 1e-9); !(e <= 1e-12) {
				t.Errorf("trained with missing labels vs on the labelled rows only: rel diff %.3g", e)
			}
		})
	}

	m := newMTL(t, mtlModel(), 2, tensor.Float64)
	w, err := weighting.New("mgda", 3)
	if err != nil {
		t.Fatal(err)
	}
	m.Weighting = w
	res, err := m.Evaluate(context.Background(), holes)
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.Step(context.Background(), holes)
	if err != nil {
		t.Fatal(err)
	}
	for k := range mtlTargets {
		var idx []int
		for i, v := range holes.Y[k] {
			if !math.IsNaN(v) {
				idx = append(idx, i)
			}
		}
		sub, err := full.Rows(idx)
		if err != nil {
			t.Fatal(err)
		}
		m2 := newMTL(t, mtlModel(), 2, tensor.Float64)
		want, err := m2.Evaluate(context.Background(), sub)
		if err != nil {
			t.Fatal(err)
		}
		if e := graph.RelErr([]float64{res[k].Loss, res[k].MSE, res[k].Accuracy, st.Losses[k]}, []float64{want[k].Loss, want[k].MSE, want[k].Accuracy, want[k].Loss}, 1e-9); !(e <= 1e-12) {
			t.Errorf("task %d: loss, MSE, accuracy, step loss %v %v %v %v; on its labelled rows %v %v %v", k, res[k].Loss, res[k].MSE, res[k].Accuracy, st.Losses[k], want[k].Loss, want[k].MSE, want[k].Accuracy)
		}
	}
}

// fixedWeights is a method that combines the tasks' shared gradients
// with fixed weights: a weighted sum, on which parameter and
// representation gradients must agree.
type fixedWeights []float64

func (fixedWeights) Name() string           { return "fixed" }
func (fixedWeights) Needs() weighting.Needs { return weighting.SharedGrads }
func (w fixedWeights) Combine(in weighting.Input) (weighting.Output, error) {
	return weighting.Output{Weights: w}, nil
}

// TestMTLRepGrad: with representation gradients the update is the
// parameter mode's, to rounding, for a weighted sum of the tasks'
// gradients through any trunk, and for PCGrad and MGDA through a single
// linear layer on one row (whose parameter-space inner products are the
// representation's times ‖x‖² + 1); a model without a representation is
// refused.
func TestMTLRepGrad(t *testing.T) {
	linear := nets.MultiTask{Trunk: nets.Trunk{In: 4, Hidden: []int{5}, Activation: nets.Identity},
		Heads: []nets.Head{{Name: "sum", Out: 1}, {Name: "sign", Out: 1}, {Name: "argmax", Out: 3}}}
	for _, c := range []struct {
		name   string
		model  nets.MultiTask
		method func() weighting.Method
		rows   int
	}{
		{"weighted sum, tanh trunk", mtlModel(), func() weighting.Method { return fixedWeights{0.2, 0.3, 0.5} }, 16},
		{"pcgrad, linear layer", linear, func() weighting.Method { w, _ := weighting.New("pcgrad", 3); return w }, 1},
		{"mgda, linear layer", linear, func() weighting.Method { w, _ := weighting.New("mgda", 3); return w }, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			run := func(rep bool) []float64 {
				m := newMTL(t, c.model, 4, tensor.Float64)
				m.Weighting, m.RepGrad, m.Rand = c.method(), rep, rand.New(rand.NewPCG(1, 1))
				m.Optimizer = &SGD{LR: 0.1} // Adam would hide a gradient off by a constant factor
				rng := rand.New(rand.NewPCG(6, 6))
				for range 3 {
					if _, err := m.Step(context.Background(), mtlTable(rng, c.rows)); err != nil {
						t.Fatal(err)
					}
				}
				return m.Params.Flatten()
			}
			param, rep := run(false), run(true)
			if e := graph.RelErr(rep, param, 1e-9); !(e <= 1e-10) {
				t.Errorf("representation vs parameter gradients: rel diff %.3g", e)
			}
		})
	}
	m := newMTL(t, nets.MMoE{In: 4, Experts: 2, ExpertHidden: []int{4}, Heads: []nets.Head{{Name: "sum", Out: 1}, {Name: "sign", Out: 1}, {Name: "argmax", Out: 3}}}, 1, tensor.Float64)
	m.Weighting, m.RepGrad = fixedWeights{1, 1, 1}, true
	if _, err := m.Step(context.Background(), mtlTable(rand.New(rand.NewPCG(1, 1)), 8)); err == nil || !strings.Contains(err.Error(), "representation") {
		t.Errorf("RepGrad on MMoE: %v", err)
	}
}

// TestMTLOwnersEveryArchitecture: with weights 1, a method that combines
// the tasks' gradients updates exactly as equal weighting's one backward
// pass of the sum of the losses does, for every multi-task architecture:
// each parameter a task's loss reaches gets that task's gradient, so a
// parameter Owners gives to one task must be reached by no other.
func TestMTLOwnersEveryArchitecture(t *testing.T) {
	heads := []nets.Head{{Name: "sum", Out: 1}, {Name: "sign", Out: 1}, {Name: "argmax", Out: 3}}
	for _, model := range []MultiTaskModel{
		mtlModel(),
		nets.MMoE{In: 4, Experts: 2, ExpertHidden: []int{4}, Heads: heads},
		nets.PLE{In: 4, Levels: 1, SharedExperts: 1, TaskExperts: 1, ExpertHidden: []int{4}, Heads: heads},
		nets.PLE{In: 4, Levels: 3, SharedExperts: 2, TaskExperts: 1, ExpertHidden: []int{4}, Heads: heads},
		nets.CrossStitch{In: 4, Hidden: []int{4, 3}, Heads: heads},
		nets.DSelectK{In: 4, Experts: 3, ExpertHidden: []int{4}, K: 2, Heads: heads},
	} {
		t.Run(fmt.Sprintf("%T", model), func(t *testing.T) {
			run := func(w weighting.Method) []float64 {
				m := newMTL(t, model, 5, tensor.Float64)
				m.Weighting, m.Optimizer = w, &SGD{LR: 0.5}
				rng := rand.New(rand.NewPCG(9, 9))
				for range 2 {
					if _, err := m.Step(context.Background(), mtlTable(rng, 16)); err != nil {
						t.Fatal(err)
					}
				}
				return m.Params.Flatten()
			}
			if e := graph.RelErr(run(fixedWeights{1, 1, 1}), run(weighting.EW{}), 1e-9); !(e <= 1e-12) {
				t.Errorf("per-task gradients with weights 1 vs the gradient of the sum: rel diff %.3g", e)
			}
		})
	}
}
