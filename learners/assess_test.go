package learners

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// idAssessor scores each task by the id its support input carries: loss
// id + step, accuracy id/100 + step, F1 the negated loss; NaN for the id
// nanID after step 1.
type idAssessor struct{ nanID float64 }

func (a idAssessor) Evaluate(b *tasks.Batch, steps int) ([][]float64, error) {
	e, err := a.EvaluateClassifier(b, steps)
	return e.Loss, err
}

func (a idAssessor) EvaluateClassifier(b *tasks.Batch, steps int) (Evaluation, error) {
	var e Evaluation
	for s := 0; s <= steps; s++ {
		var l, acc, f1 []float64
		for t := range b.Tasks {
			id := b.SupportX[t*b.Support*b.In]
			v := id + float64(s)
			if id == a.nanID && s > 1 {
				v = math.NaN()
			}
			l, acc, f1 = append(l, v), append(acc, id/100+float64(s)), append(f1, -v)
		}
		e.Loss, e.Accuracy, e.F1 = append(e.Loss, l), append(e.Accuracy, acc), append(e.F1, f1)
	}
	return e, nil
}

// idDraw returns a Draw function whose tasks carry the ids 0, 1, 2, ...
// in the order drawn, and records the sizes asked for.
func idDraw(sizes *[]int) func(n int) (*tasks.Batch, error) {
	next := 0
	return func(n int) (*tasks.Batch, error) {
		*sizes = append(*sizes, n)
		b := &tasks.Batch{Tasks: n, Support: 1, Query: 1, In: 1, Out: 1,
			SupportX: make([]float64, n), SupportY: make([]float64, n), QueryX: make([]float64, n), QueryY: make([]float64, n)}
		for t := range n {
			b.SupportX[t] = float64(next)
			next++
		}
		return b, nil
	}
}

// TestAssess: the scores come back task by task in the order drawn,
// whatever the batch; tasks are drawn DrawUnit at a time; Each sees every
// batch; a non-finite regression loss and an interrupt are errors.
func TestAssess(t *testing.T) {
	for _, batch := range []int{1, 3, 7, 25} {
		var sizes []int
		var seen int
		e, err := Assess(context.Background(), idAssessor{nanID: -1}, Assessment{
			Tasks: 7, Steps: 2, Classify: true, Draw: idDraw(&sizes), DrawUnit: 2, Batch: batch,
			Each: func(b *tasks.Batch) { seen += b.Tasks },
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(sizes, []int{2, 2, 2, 1}) || seen != 7 {
			t.Errorf("batch %d: drew %v, Each saw %d tasks; want draws 2, 2, 2, 1 and 7 tasks", batch, sizes, seen)
		}
		for s := range 3 {
			for id := range 7 {
				if e.Loss[s][id] != float64(id+s) || e.Accuracy[s][id] != float64(id)/100+float64(s) || e.F1[s][id] != -float64(id+s) {
					t.Fatalf("batch %d: task %d step %d: loss %v accuracy %v F1 %v", batch, id, s, e.Loss[s][id], e.Accuracy[s][id], e.F1[s][id])
				}
			}
		}
	}
	var sizes []int
	_, err := Assess(context.Background(), idAssessor{nanID: 4}, Assessment{Tasks: 7, Steps: 2, Draw: idDraw(&sizes), Batch: 3})
	if !errors.Is(err, ErrNonFinite) {
		t.Errorf("a NaN loss for task 4: err = %v, want ErrNonFinite", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Assess(ctx, idAssessor{}, Assessment{Tasks: 7, Draw: idDraw(&sizes)}); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled context: err = %v, want context.Canceled", err)
	}
	if _, err := Assess(context.Background(), idAssessor{}, Assessment{Tasks: 7}); err == nil {
		t.Error("no Draw: no error")
	}
}

// TestScore: the mean accuracy after the last step, or the mean loss
// negated.
func TestScore(t *testing.T) {
	var sizes []int
	// Tasks 0..3 after 2 steps: accuracy id/100 + 2, loss id + 2.
	s := Assessment{Tasks: 4, Steps: 2, Draw: idDraw(&sizes), Classify: true}
	if got, err := Score(context.Background(), idAssessor{nanID: -1}, s); err != nil || math.Abs(got-2.015) > 1e-12 {
		t.Errorf("Score of a classifier = %v, %v; want 2.015", got, err)
	}
	s.Classify, s.Draw = false, idDraw(&sizes)
	if got, err := Score(context.Background(), idAssessor{nanID: -1}, s); err != nil || got != -3.5 {
		t.Errorf("Score of a regression = %v, %v; want -3.5", got, err)
	}
}

// TestAssessMAML: on a real learner the scores do not depend on how many
// tasks are adapted at once.
func TestAssessMAML(t *testing.T) {
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{8}}
	p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	m := &MAML{Model: model, Params: p, InnerLR: 0.05}
	var want [][]float64
	for _, batch := range []int{5, 2, 3} {
		rng := rand.New(rand.NewPCG(7, 7))
		e, err := Assess(context.Background(), m, Assessment{Tasks: 5, Steps: 3, Batch: batch, DrawUnit: 5,
			Draw: func(n int) (*tasks.Batch, error) {
				b, _, err := tasks.Sinusoid{}.Sample(rng, n, 5, 10)
				return b, err
			}})
		if err != nil {
			t.Fatal(err)
		}
		if want == nil {
			want = e.Loss
			continue
		}
		for s := range want {
			for i := range want[s] {
				if math.Abs(e.Loss[s][i]-want[s][i]) > 1e-12*want[s][i] {
					t.Errorf("batch %d: task %d step %d: %v, batch 5: %v", batch, i, s, e.Loss[s][i], want[s][i])
				}
			}
		}
	}
}
