package learners

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
)

// softmaxRegression is a linear softmax classifier computed here in
// float64: logits = Wx + b with W [c, d].
type softmaxRegression struct {
	w, b []float64
	c, d int
}

// probs returns the softmax of row r of x.
func (s softmaxRegression) probs(x []float64, r int) []float64 {
	z := make([]float64, s.c)
	top := math.Inf(-1)
	for i := range z {
		z[i] = s.b[i]
		for j := 0; j < s.d; j++ {
			z[i] += s.w[i*s.d+j] * x[r*s.d+j]
		}
		top = math.Max(top, z[i])
	}
	sum := 0.0
	for i := range z {
		z[i] = math.Exp(z[i] - top)
		sum += z[i]
	}
	for i := range z {
		z[i] /= sum
	}
	return z
}

// lossAccuracy returns the mean cross-entropy and the accuracy over n
// rows of x with one-hot targets y.
func (s softmaxRegression) lossAccuracy(x, y []float64, n int) (loss, acc float64) {
	for r := 0; r < n; r++ {
		p := s.probs(x, r)
		label := slices.Index(y[r*s.c:(r+1)*s.c], 1)
		loss -= math.Log(p[label]) / float64(n)
		best := 0
		for i, v := range p {
			if v > p[best] {
				best = i
			}
		}
		if best == label {
			acc += 1 / float64(n)
		}
	}
	return loss, acc
}

// step returns the classifier after one gradient step of size lr on the
// mean cross-entropy, whose gradient is (1/n)Σ(p − y)x̃ᵀ.
func (s softmaxRegression) step(x, y []float64, n int, lr float64) softmaxRegression {
	next := softmaxRegression{w: slices.Clone(s.w), b: slices.Clone(s.b), c: s.c, d: s.d}
	for r := 0; r < n; r++ {
		p := s.probs(x, r)
		for i := range p {
			e := (p[i] - y[r*s.c+i]) / float64(n)
			next.b[i] -= lr * e
			for j := 0; j < s.d; j++ {
				next.w[i*s.d+j] -= lr * e * x[r*s.d+j]
			}
		}
	}
	return next
}

// TestEvaluateClassifierClosedForm checks MAML's per-task query loss and
// accuracy after 0..3 steps on a linear softmax classifier against the
// same adaptation written out here. The adaptation rate 2 is large enough
// that accuracies change between steps.
func TestEvaluateClassifierClosedForm(t *testing.T) {
	const d, c, steps = 3, 4, 3
	model := nets.MLP{In: d, Out: c}
	b := randomBatch(rand.New(rand.NewPCG(3, 3)), 6, 5, 7, d, c, true)
	m := newMAML(t, model, CrossEntropy, 1, false, 9)
	m.InnerLR = 2
	got, err := m.EvaluateClassifier(b, steps)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Loss) != steps+1 || len(got.Accuracy) != steps+1 {
		t.Fatalf("EvaluateClassifier(b, %d) gave %d loss rows and %d accuracy rows; want %d", steps, len(got.Loss), len(got.Accuracy), steps+1)
	}
	theta := softmaxRegression{w: graph.Float64s(m.Params.At(0).Value), b: graph.Float64s(m.Params.At(1).Value), c: c, d: d}
	changed := false
	for task := 0; task < b.Tasks; task++ {
		sx, sy := b.SupportX[task*b.Support*d:(task+1)*b.Support*d], b.SupportY[task*b.Support*c:(task+1)*b.Support*c]
		qx, qy := b.QueryX[task*b.Query*d:(task+1)*b.Query*d], b.QueryY[task*b.Query*c:(task+1)*b.Query*c]
		s := theta
		for k := 0; k <= steps; k++ {
			loss, acc := s.lossAccuracy(qx, qy, b.Query)
			if math.Abs(got.Loss[k][task]-loss) > 1e-12*math.Max(loss, 1) {
				t.Errorf("task %d loss after %d steps = %v; want %v", task, k, got.Loss[k][task], loss)
			}
			if math.Abs(got.Accuracy[k][task]-acc) > 1e-12 {
				t.Errorf("task %d accuracy after %d steps = %v; want %v", task, k, got.Accuracy[k][task], acc)
			}
			changed = changed || got.Accuracy[k][task] != got.Accuracy[0][task]
			s = s.step(sx, sy, b.Support, m.InnerLR)
		}
	}
	if !changed {
		t.Errorf("no accuracy changed with adaptation: the test does not exercise it")
	}
	losses, err := m.Evaluate(b, steps)
	if err != nil {
		t.Fatal(err)
	}
	if graph.RelErr(flat(losses), flat(got.Loss), 1) != 0 {
		t.Errorf("Evaluate = %v; EvaluateClassifier's losses %v", losses, got.Loss)
	}
}

func TestClassLabels(t *testing.T) {
	b := &tasks.Batch{Tasks: 1, Support: 1, Query: 3, In: 1, Out: 3,
		SupportX: []float64{0}, SupportY: []float64{1, 0, 0}, QueryX: []float64{0, 0, 0},
		QueryY: []float64{0, 0, 1, 1, 0, 0, 0, 1, 0}}
	got, err := classLabels(b)
	if err != nil || !slices.Equal(got, []int{2, 0, 1}) {
		t.Errorf("classLabels = %v, %v; want [2 0 1]", got, err)
	}
	for _, row := range [][]float64{{0, 0, 0}, {1, 1, 0}, {0.5, 0.5, 0}, {0, 2, 0}, {1, 0, -1}} {
		bad := *b
		bad.QueryY = append(slices.Clone(row), b.QueryY[3:]...)
		if _, err := classLabels(&bad); err == nil || !strings.Contains(err.Error(), "one-hot") {
			t.Errorf("classLabels with query target %v: err = %v; want a one-hot error", row, err)
		}
	}
}

// TestAccuracyTies: a tie goes to the first largest output, as
// numpy.argmax and torch.argmax break it.
func TestAccuracyTies(t *testing.T) {
	pred := []float64{1, 1, 0, 0, 2, 2}
	if got := accuracyPerTask(pred, []int{0, 2}, 2, 3); !slices.Equal(got, []float64{1, 0}) {
		t.Errorf("accuracyPerTask with ties = %v; want [1 0]", got)
	}
}

func TestEvaluateClassifierRejectsRegression(t *testing.T) {
	m := newMAML(t, nets.MLP{In: 2, Out: 2}, MSE, 1, false, 1)
	if _, err := m.EvaluateClassifier(randomBatch(rand.New(rand.NewPCG(1, 1)), 2, 3, 3, 2, 2, false), 1); err == nil {
		t.Errorf("EvaluateClassifier of a regression batch: no error")
	}
}

// TestF1PerTask checks macro F1 against counts worked by hand.
func TestF1PerTask(t *testing.T) {
	// Task 0, three classes: truths 0 1 2 2, predictions 0 2 2 1 →
	// per-class F1 1, 0, 1/2 → 1/2. Task 1: all right → 1; class 2 never
	// occurs there and is not averaged.
	pred := []float64{
		5, 0, 0, 0, 1, 2, 0, 0, 3, 0, 4, 1,
		1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0,
	}
	got := f1PerTask(pred, []int{0, 1, 2, 2, 0, 1, 0, 1}, 2, 3)
	if math.Abs(got[0]-0.5) > 1e-15 || got[1] != 1 {
		t.Errorf("f1PerTask = %v; want [0.5 1]", got)
	}
}

// TestMeanCI checks the interval behind every reported figure on known
// cases: 1..5 has mean 3 and sample deviation √2.5, so the half-width is
// 1.96·√2.5/√5 = 1.96/√2; it scales with the spread and shrinks as 1/√n.
func TestMeanCI(t *testing.T) {
	for _, c := range []struct {
		x          []float64
		mean, half float64
	}{
		{[]float64{1, 2, 3, 4, 5}, 3, 1.96 / math.Sqrt2},
		{[]float64{10, 20, 30, 40, 50}, 30, 19.6 / math.Sqrt2},
		{[]float64{2, 2, 2}, 2, 0},
		{[]float64{0, 1, 0, 1, 0, 1, 0, 1}, 0.5, 1.96 * math.Sqrt(2.0/7) / math.Sqrt(8)},
	} {
		m, h := MeanCI(c.x)
		if math.Abs(m-c.mean) > 1e-12 || math.Abs(h-c.half) > 1e-12 {
			t.Errorf("MeanCI(%v) = %v ± %v, want %v ± %v", c.x, m, h, c.mean, c.half)
		}
	}
	if m, h := MeanCI([]float64{7}); m != 7 || !math.IsNaN(h) {
		t.Errorf("MeanCI of one value = %v ± %v, want 7 ± NaN", m, h)
	}
	if m, h := MeanCI(nil); !math.IsNaN(m) || !math.IsNaN(h) {
		t.Errorf("MeanCI of none = %v ± %v, want NaN ± NaN", m, h)
	}
}
