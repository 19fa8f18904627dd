package learners

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// episodeBatch is randomBatch for classification with every class in
// every task's support set: support example i is of class i mod out.
func episodeBatch(rng *rand.Rand, nTasks, support, query, in, out int) *tasks.Batch {
	b := randomBatch(rng, nTasks, support, query, in, out, true)
	clear(b.SupportY)
	for r := range nTasks * support {
		b.SupportY[r*out+r%support%out] = 1
	}
	return b
}

func newProtoNet(t *testing.T, model nets.MLP, seed uint64) *ProtoNet {
	t.Helper()
	p, err := model.Init(rand.New(rand.NewPCG(seed, 1)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	pn := &ProtoNet{Model: model, Params: p}
	t.Cleanup(func() { pn.Close() })
	return pn
}

// linearEmbed returns the embedding e = W·x + c of an MLP without hidden
// layers with parameters p, and its width.
func linearEmbed(p *graph.Params) (func(x []float64) []float64, int) {
	W, c := graph.Float64s(p.At(0).Value), graph.Float64s(p.At(1).Value)
	return func(x []float64) []float64 {
		e := make([]float64, len(c))
		for i := range c {
			e[i] = c[i]
			for j, v := range x {
				e[i] += W[i*len(x)+j] * v
			}
		}
		return e
	}, len(c)
}

// crossEntropy is the softmax cross-entropy of logits against a one-hot
// target.
func crossEntropy(logits, target []float64) float64 {
	m := slices.Max(logits)
	z := 0.0
	for _, l := range logits {
		z += math.Exp(l - m)
	}
	loss := 0.0
	for w, y := range target {
		if y == 1 {
			loss -= logits[w] - m - math.Log(z)
		}
	}
	return loss
}

// checkGradient compares the gradient of p's mean query loss on b, read
// from its graph, with central differences of the losses Evaluate gives,
// over every parameter Step trains.
func checkGradient(t *testing.T, p *ProtoNet, evaluate func(*tasks.Batch, int) ([][]float64, error), b *tasks.Batch) []float64 {
	t.Helper()
	pr, err := p.run(b, true)
	if err != nil {
		t.Fatal(err)
	}
	var got []float64
	for _, g := range pr.grads {
		v, err := pr.plan.ReadFloat64s(g)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v...)
	}
	all := p.trained()
	mean := func(x []float64) float64 {
		if err := all.SetFlat(x); err != nil {
			t.Fatal(err)
		}
		l, err := evaluate(b, 0)
		if err != nil {
			t.Fatal(err)
		}
		return average(l[0])
	}
	x := all.Flatten()
	if e := graph.RelErr(got, graph.NumGrad(mean, x, 1e-5), 1e-3); len(got) != len(x) || e > 1e-6 {
		t.Errorf("gradient of %d values (want %d) rel err %.3g against central differences", len(got), len(x), e)
	}
	return got
}

// metric is ProtoNet or R2D2, as the training test uses them.
type metric interface {
	Trainer[*tasks.Batch, Stats]
	EvaluateClassifier(b *tasks.Batch, steps int) (Evaluation, error)
	trained() *graph.Params
}

// checkTrainsAndResumes trains a learner that newLearner makes for 300
// steps on synthetic 3-way tasks, checks that its query accuracy reaches
// 0.8, and that a run checkpointed at step 150 and resumed ends with the
// same parameters.
func checkTrainsAndResumes(t *testing.T, newLearner func(model nets.MLP) (metric, *graph.Params)) {
	t.Helper()
	d := tasks.Classification{Classes: 3}
	test, err := d.Sample(rand.New(rand.NewPCG(9, 9)), 50, 5, 10)
	if err != nil {
		t.Fatal(err)
	}
	model := nets.MLP{In: 20, Out: 16, Hidden: []int{32}}
	newRun := func(steps int) (metric, *graph.Params, Run[*tasks.Batch, Stats]) {
		src := rand.NewPCG(7, 7)
		rng := rand.New(src)
		m, params := newLearner(model)
		return m, params, Run[*tasks.Batch, Stats]{Steps: steps, Streams: []Stream{{Name: "tasks", Src: src}},
			Batch: func(int) (*tasks.Batch, error) { return d.Sample(rng, 8, 5, 10) }}
	}
	ctx := context.Background()
	full, _, run := newRun(300)
	before, err := full.EvaluateClassifier(test, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := Train(ctx, full, run); err != nil {
		t.Fatal(err)
	}
	after, err := full.EvaluateClassifier(test, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := average(after.Accuracy[0]), average(before.Accuracy[0]); a < 0.8 || a < b+0.2 {
		t.Errorf("query accuracy %.3f after 300 steps, %.3f before; want 0.8 or more, 0.2 above", a, b)
	}
	half, halfParams, run := newRun(150)
	if err := Train(ctx, half, run); err != nil {
		t.Fatal(err)
	}
	ck, err := Checkpoint(halfParams, half, run.Streams)
	if err != nil {
		t.Fatal(err)
	}
	resumed, params, run := newRun(300)
	if err := Resume(ck, params, resumed, run.Streams); err != nil {
		t.Fatal(err)
	}
	if err := Train(ctx, resumed, run); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resumed.trained().Flatten(), full.trained().Flatten()) || resumed.Steps() != 300 {
		t.Errorf("resumed at step 150, the run ends elsewhere than an uninterrupted one (step %d)", resumed.Steps())
	}
}

// protoReference computes the ProtoNet loss of each task of b in plain Go
// for a linear embedding e = W·x + c (an MLP without hidden layers).
func protoReference(p *ProtoNet, b *tasks.Batch) []float64 {
	embed, d := linearEmbed(p.Params)
	var out []float64
	for t := range b.Tasks {
		proto := make([][]float64, b.Out)
		count := make([]float64, b.Out)
		for k := range b.Support {
			e := embed(b.SupportX[(t*b.Support+k)*b.In : (t*b.Support+k+1)*b.In])
			for w := range b.Out {
				if b.SupportY[(t*b.Support+k)*b.Out+w] == 1 {
					if proto[w] == nil {
						proto[w] = make([]float64, d)
					}
					for i := range d {
						proto[w][i] += e[i]
					}
					count[w]++
				}
			}
		}
		for w := range b.Out {
			if proto[w] == nil {
				proto[w] = make([]float64, d)
			}
			for i := range d {
				if count[w] > 0 {
					proto[w][i] /= count[w]
				}
			}
		}
		loss := 0.0
		for q := range b.Query {
			e := embed(b.QueryX[(t*b.Query+q)*b.In : (t*b.Query+q+1)*b.In])
			logits := make([]float64, b.Out)
			for w := range b.Out {
				for i := range d {
					logits[w] -= (e[i] - proto[w][i]) * (e[i] - proto[w][i])
				}
			}
			loss += crossEntropy(logits, b.QueryY[(t*b.Query+q)*b.Out:(t*b.Query+q+1)*b.Out])
		}
		out = append(out, loss/float64(b.Query))
	}
	return out
}

// TestProtoNetLoss checks the loss against a plain-Go computation and
// the gradient against central differences.
func TestProtoNetLoss(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := newProtoNet(t, nets.MLP{In: 3, Out: 4}, 1)
	b := episodeBatch(rng, 3, 6, 5, 3, 3)
	ev, err := p.Evaluate(b, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := protoReference(p, b)
	if len(ev) != 3 || !slices.Equal(ev[0], ev[2]) {
		t.Fatalf("Evaluate gave %d step rows, %v and %v; want 3 equal rows", len(ev), ev[0], ev[len(ev)-1])
	}
	ev[2][0] = -1
	if ev[0][0] == -1 {
		t.Error("Evaluate's rows share their memory")
	}
	if e := graph.RelErr(ev[0], want, 1e-9); e > 1e-12 {
		t.Errorf("losses %v; the plain computation gives %v (rel err %.3g)", ev[0], want, e)
	}

	// The gradient, from the graph, against central differences of the
	// mean loss, on a network with a hidden layer.
	q := newProtoNet(t, nets.MLP{In: 3, Out: 4, Hidden: []int{5}, Activation: nets.Tanh}, 2)
	checkGradient(t, q, q.Evaluate, b)
}

// TestProtoNetTrains checks that a few hundred steps on synthetic
// classification tasks lift the query accuracy well above chance, and
// that a run resumed from a checkpoint ends with the parameters of an
// uninterrupted one.
func TestProtoNetTrains(t *testing.T) {
	checkTrainsAndResumes(t, func(model nets.MLP) (metric, *graph.Params) {
		p := newProtoNet(t, model, 5)
		return p, p.Params
	})
}

func TestProtoNetBadBatch(t *testing.T) {
	p := newProtoNet(t, nets.MLP{In: 1, Out: 2}, 1)
	b, _, err := tasks.Sinusoid{}.Sample(rand.New(rand.NewPCG(1, 1)), 2, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Step(context.Background(), b); err == nil {
		t.Error("ProtoNet on regression tasks: no error")
	}
	if _, err := (&ProtoNet{}).Evaluate(b, 0); err == nil {
		t.Error("ProtoNet without a model: no error")
	}
	// Class 1 of 2 absent from task 0's support set.
	c := episodeBatch(rand.New(rand.NewPCG(1, 1)), 2, 4, 3, 1, 2)
	for i := range 4 {
		c.SupportY[2*i], c.SupportY[2*i+1] = 1, 0
	}
	if _, err := p.Evaluate(c, 0); err == nil || !strings.Contains(err.Error(), "no support example of class 1") {
		t.Errorf("a class without support examples: %v", err)
	}
	c.SupportY[1] = 1 // two ones in a row
	if _, err := p.Evaluate(c, 0); err == nil || !strings.Contains(err.Error(), "not a one-hot row") {
		t.Errorf("a support row with two ones: %v", err)
	}
}

// r2d2Reference computes R2D2's query loss of each task of b in plain Go
// for a linear embedding e = W·x + c and the head (log λ, α, β).
func r2d2Reference(r *R2D2, b *tasks.Batch) []float64 {
	lam, alpha := math.Exp(graph.Float64s(r.Head.At(0).Value)[0]), graph.Float64s(r.Head.At(1).Value)[0]
	embed, _ := linearEmbed(r.Params)
	S := b.Support
	dot := func(a, b []float64) float64 {
		s := 0.0
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	var out []float64
	for t := range b.Tasks {
		xs := make([][]float64, S)
		for i := range S {
			xs[i] = embed(b.SupportX[(t*S+i)*b.In : (t*S+i+1)*b.In])
		}
		// Solve (K + λI)·Z = Ys by Gaussian elimination.
		a := make([][]float64, S)
		for i := range S {
			a[i] = make([]float64, S+b.Out)
			for j := range S {
				a[i][j] = dot(xs[i], xs[j])
			}
			a[i][i] += lam
			copy(a[i][S:], b.SupportY[(t*S+i)*b.Out:(t*S+i+1)*b.Out])
		}
		for col := range S {
			for row := col + 1; row < S; row++ {
				f := a[row][col] / a[col][col]
				for j := col; j < S+b.Out; j++ {
					a[row][j] -= f * a[col][j]
				}
			}
		}
		z := make([][]float64, S)
		for row := S - 1; row >= 0; row-- {
			z[row] = make([]float64, b.Out)
			for w := range b.Out {
				v := a[row][S+w]
				for j := row + 1; j < S; j++ {
					v -= a[row][j] * z[j][w]
				}
				z[row][w] = v / a[row][row]
			}
		}
		loss := 0.0
		for q := range b.Query {
			e := embed(b.QueryX[(t*b.Query+q)*b.In : (t*b.Query+q+1)*b.In])
			logits := make([]float64, b.Out)
			for w := range b.Out {
				for i := range S {
					logits[w] += dot(e, xs[i]) * z[i][w]
				}
				logits[w] *= alpha
			}
			loss += crossEntropy(logits, b.QueryY[(t*b.Query+q)*b.Out:(t*b.Query+q+1)*b.Out])
		}
		out = append(out, loss/float64(b.Query))
	}
	return out
}

// TestR2D2 checks R2D2's loss against a plain computation, its gradient
// in the embedding and the head against central differences, that
// training helps, and that a resumed run ends where an uninterrupted one
// does.
func TestR2D2(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	lin := newProtoNet(t, nets.MLP{In: 3, Out: 4}, 1)
	r := &R2D2{ProtoNet: *lin}
	b := episodeBatch(rng, 3, 6, 5, 3, 3)
	ev, err := r.Evaluate(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The head, away from its start, so that it counts.
	for i, v := range []float64{math.Log(2), 1.5} {
		if err := setValues(r.Head.At(i).Value, []float64{v}); err != nil {
			t.Fatal(err)
		}
	}
	if ev, err = r.Evaluate(b, 0); err != nil {
		t.Fatal(err)
	}
	if want := r2d2Reference(r, b); graph.RelErr(ev[0], want, 1e-9) > 1e-10 {
		t.Errorf("losses %v; the plain computation gives %v", ev[0], want)
	}

	hid := newProtoNet(t, nets.MLP{In: 3, Out: 4, Hidden: []int{5}, Activation: nets.Tanh}, 2)
	q := &R2D2{ProtoNet: *hid}
	if _, err := q.Evaluate(b, 0); err != nil { // creates the head
		t.Fatal(err)
	}
	got := checkGradient(t, &q.ProtoNet, q.Evaluate, b)
	if tail := got[len(got)-2:]; tail[0] == 0 || tail[1] == 0 {
		t.Errorf("the head's gradient %v has a zero", tail)
	}

	checkTrainsAndResumes(t, func(model nets.MLP) (metric, *graph.Params) {
		r := &R2D2{ProtoNet: *newProtoNet(t, model, 5)}
		return r, r.Params
	})
}

// TestR2D2FromUsedProtoNet: an R2D2 made from a ProtoNet value that has
// compiled graphs compiles its own, and leaves the ProtoNet's working.
func TestR2D2FromUsedProtoNet(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	p := newProtoNet(t, nets.MLP{In: 3, Out: 4}, 1)
	b := episodeBatch(rng, 2, 4, 3, 3, 2)
	if _, err := p.Evaluate(b, 0); err != nil {
		t.Fatal(err)
	}
	r := &R2D2{ProtoNet: *p}
	if _, err := r.Evaluate(b, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Evaluate(b, 0); err != nil {
		t.Fatalf("the ProtoNet after an R2D2 was made of it: %v", err)
	}
	r.Close()
}
