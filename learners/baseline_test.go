package learners

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/medusa-ml/medusa/learners/tasks"
)

func TestPooledBaseline(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	d := tasks.Classification{Classes: 2}
	train, err := d.Pooled(rng, 100, 20)
	if err != nil {
		t.Fatal(err)
	}
	test, err := d.Sample(rng, 3, 5, 10)
	if err != nil {
		t.Fatal(err)
	}
	acc, f1, err := PooledBaseline(context.Background(), train, []*tasks.Batch{test, test}, rng)
	if err != nil {
		t.Fatal(err)
	}
	if len(acc) != 6 || len(f1) != 6 {
		t.Fatalf("%d accuracies and %d F1 scores; want one per test task, 6", len(acc), len(f1))
	}
	// The scores of this seed, fractions of the 20 query examples a task:
	// a pooled model is near chance on each new problem, good on some and
	// bad on others.
	if want := []float64{0.8, 0.2, 0.45}; acc[0] != want[0] || acc[1] != want[1] || acc[2] != want[2] {
		t.Errorf("accuracies %v; want %v for this seed", acc[:3], want)
	}
	for i := range acc {
		if acc[i] < 0 || acc[i] > 1 || f1[i] < 0 || f1[i] > 1 || acc[i] != acc[(i+3)%6] {
			t.Errorf("task %d: accuracy %v, F1 %v; want scores in [0, 1], the same for the same task", i, acc[i], f1[i])
		}
	}
	reg := &tasks.Table{N: 1, In: 1, Targets: []tasks.Target{{Name: "y", Kind: tasks.Regression}}, X: []float64{0}, Y: [][]float64{{0}}}
	if _, _, err := PooledBaseline(context.Background(), reg, nil, rng); err == nil {
		t.Error("PooledBaseline of a regression table: no error")
	}
	wide, err := tasks.Classification{Classes: 3}.Sample(rng, 1, 5, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := PooledBaseline(context.Background(), train, []*tasks.Batch{wide}, rng); err == nil {
		t.Error("PooledBaseline on test tasks of 3 classes, trained on 2: no error")
	}
}
