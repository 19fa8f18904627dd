package learners

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// TestDeltaM: a worked case, 10% better on a regression's MSE and on a
// classification's F1 at equal accuracy, is Δm = (10 + (0 + 20)/2)/2;
// mismatched tasks and a zero baseline are errors.
func TestDeltaM(t *testing.T) {
	single := []Metrics{{Name: "r", Kind: tasks.Regression, MSE: 1}, {Name: "c", Kind: tasks.Binary, Accuracy: 0.8, F1: 0.5}}
	mtl := []Metrics{{Name: "r", Kind: tasks.Regression, MSE: 0.9, Accuracy: 7}, {Name: "c", Kind: tasks.Binary, Accuracy: 0.8, F1: 0.6, MSE: 7}}
	got, err := DeltaM(mtl, single)
	if err != nil || math.Abs(got-10) > 1e-12 {
		t.Errorf("DeltaM = %v, %v; want 10", got, err)
	}
	if got, err := DeltaM(single, single); err != nil || got != 0 {
		t.Errorf("DeltaM of the baselines themselves = %v, %v; want 0", got, err)
	}
	// A baseline F1 of 0 leaves that metric out: task c counts its
	// accuracy alone, and Δm = (10 + 0)/2.
	zeroF1 := []Metrics{single[0], {Name: "c", Kind: tasks.Binary, Accuracy: 0.8}}
	if got, err := DeltaM(mtl, zeroF1); err != nil || math.Abs(got-5) > 1e-12 {
		t.Errorf("DeltaM against a baseline F1 of 0 = %v, %v; want 5", got, err)
	}
	for _, c := range [][2][]Metrics{
		{mtl[:1], single},
		{[]Metrics{mtl[1], mtl[0]}, single},
		{mtl, []Metrics{{Name: "r", Kind: tasks.Regression}, {Name: "c", Kind: tasks.Binary}}},
	} {
		if _, err := DeltaM(c[0], c[1]); err == nil {
			t.Errorf("DeltaM(%v, %v): no error", c[0], c[1])
		}
	}
}

// TestBaseline: each target's network learns its task, the same seed
// gives the same figures, and bad settings are refused.
func TestBaseline(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	train, test := mtlTable(rng, 1024), mtlTable(rng, 256)
	b := Baseline{
		Model: func(tg tasks.Target) MultiTaskModel {
			return nets.MultiTask{Trunk: nets.Trunk{In: 4, Hidden: []int{32}}, Heads: []nets.Head{{Name: tg.Name, Out: tg.Outputs()}}}
		},
		Steps: 300, Batch: 64, LR: 3e-3, Seed: 1, Dtype: tensor.Float64,
	}
	res, err := b.Run(context.Background(), train, test)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || res[0].Name != "sum" || res[0].MSE > 0.1 || res[1].Accuracy < 0.85 || res[2].Accuracy < 0.8 {
		t.Errorf("baselines %+v: want MSE < 0.1 and accuracies above 0.85 and 0.8", res)
	}
	again, err := b.Run(context.Background(), train, test)
	if err != nil {
		t.Fatal(err)
	}
	if again[2] != res[2] || again[0] != res[0] {
		t.Errorf("a second run gave %+v, the first %+v", again, res)
	}
	// With most of a task's labels missing, its network trains on the
	// labelled rows alone, whatever its minibatches.
	sparse := *train
	sparse.Y = [][]float64{train.Y[0], slices.Clone(train.Y[1]), train.Y[2]}
	for i := range sparse.Y[1] {
		if i%8 != 0 {
			sparse.Y[1][i] = math.NaN()
		}
	}
	small := b
	small.Batch, small.Steps = 4, 50
	got, err := small.Run(context.Background(), &sparse, test)
	if err != nil {
		t.Fatal(err)
	}
	var idx []int
	for i := 0; i < sparse.N; i += 8 {
		idx = append(idx, i)
	}
	only, err := sparse.Rows(idx)
	if err != nil {
		t.Fatal(err)
	}
	want, err := small.Run(context.Background(), only, test)
	if err != nil {
		t.Fatal(err)
	}
	if got[1] != want[1] {
		t.Errorf("baseline of a sparse task %+v; trained on its labelled rows %+v", got[1], want[1])
	}
	b.LR = 0
	if _, err := b.Run(context.Background(), train, test); err == nil {
		t.Errorf("LR 0: no error")
	}
}
