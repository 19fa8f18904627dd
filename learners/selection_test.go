package learners

import (
	"context"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// TestSelection: a run validated every 2 of 7 steps is validated after
// steps 2, 4, 6 and 7; its best snapshot holds the parameters and the
// learned rates of the best step, as a run stopped there has them; the
// run itself trains as it does without validation; Restore brings the
// snapshot back.
func TestSelection(t *testing.T) {
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{6}, Activation: nets.Tanh}
	start := func() (*MetaSGD, Run[*tasks.Batch, Stats]) {
		p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
		if err != nil {
			t.Fatal(err)
		}
		src := rand.NewPCG(2, 2)
		rng := rand.New(src)
		return &MetaSGD{MAML: MAML{Model: model, Params: p, InnerSteps: 1, Optimizer: &Adam{LR: 0.01}}},
			Run[*tasks.Batch, Stats]{
				Batch: func(int) (*tasks.Batch, error) {
					b, _, err := tasks.Sinusoid{}.Sample(rng, 3, 5, 5)
					return b, err
				},
				Streams: []Stream{{Name: "tasks", Src: src}},
			}
	}
	trained := func(steps int) *MetaSGD {
		m, run := start()
		run.Steps = steps
		if err := Train(context.Background(), m, run); err != nil {
			t.Fatal(err)
		}
		return m
	}

	m, run := start()
	run.Steps = 7
	scores := map[int]float64{2: -3, 4: -1, 6: -2, 7: -1} // step 7 ties step 4: not better
	var scored, found []int
	sel := &Selection{Every: 2, Params: m.Params,
		Validate: func(n int) (float64, error) { return scores[n], nil },
		Found:    func(n int, _ float64, _ *graph.Checkpoint) error { found = append(found, n); return nil },
		Scored: func(n int, score float64, best bool) error {
			if score != scores[n] || best != slices.Contains(found, n) {
				t.Errorf("Scored(%d, %g, %v): want score %g, best only when found", n, score, best, scores[n])
			}
			scored = append(scored, n)
			return nil
		},
	}
	run.Select = sel
	if err := Train(context.Background(), m, run); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(scored, []int{2, 4, 6, 7}) || !slices.Equal(found, []int{2, 4}) {
		t.Errorf("validated after %v, best found at %v; want 2 4 6 7 and 2 4", scored, found)
	}
	if sel.BestStep != 4 || sel.BestScore != -1 {
		t.Errorf("best step %d score %g, want 4 and -1", sel.BestStep, sel.BestScore)
	}
	plain := trained(7)
	sameBits(t, "parameters with validation", plain.Params.Flatten(), m.Params.Flatten())
	sameBits(t, "rates with validation", plain.LRs.Flatten(), m.LRs.Flatten())

	at4 := trained(4)
	sameBits(t, "best snapshot", at4.Params.Flatten(), sel.Best.Params.Flatten())
	if err := sel.Restore(m); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "restored parameters", at4.Params.Flatten(), m.Params.Flatten())
	sameBits(t, "restored rates", at4.LRs.Flatten(), m.LRs.Flatten())

	// SetBest takes a snapshot back, as a resumed run does; bad ones are
	// refused.
	var again Selection
	if err := again.SetBest(4, -1, sel.Best); err != nil || again.BestStep != 4 {
		t.Errorf("SetBest = %v, step %d", err, again.BestStep)
	}
	for _, c := range []struct {
		step  int
		score float64
		snap  *graph.Checkpoint
	}{{0, 1, sel.Best}, {3, math.NaN(), sel.Best}, {3, 1, nil}} {
		if err := again.SetBest(c.step, c.score, c.snap); err == nil {
			t.Errorf("SetBest(%d, %g, %v): no error", c.step, c.score, c.snap != nil)
		}
	}
	if err := (&Selection{Params: m.Params}).Restore(m); err == nil {
		t.Errorf("Restore with no snapshot: no error")
	}

	// RecordBest and LoadBest: a resumed run finds the best snapshot beside
	// its checkpoint, and refuses one of another step.
	ck := graph.NewCheckpoint(m.Params)
	var none Selection
	none.RecordBest(ck)
	if len(ck.Meta) != 0 {
		t.Errorf("Mark before any validation wrote %v", ck.Meta)
	}
	sel.RecordBest(ck)
	path := filepath.Join(t.TempDir(), "run.safetensors")
	var back Selection
	if err := back.LoadBest(ck, path); !errors.Is(err, ErrBestLost) || back.Best != nil {
		t.Errorf("LoadBest without the snapshot file = %v, want ErrBestLost", err)
	}
	if err := graph.SaveCheckpoint(BestPath(path), sel.Best); err != nil {
		t.Fatal(err)
	}
	if err := back.LoadBest(ck, path); err != nil || back.BestStep != 4 || back.BestScore != -1 {
		t.Fatalf("Recall = %v, step %d score %g; want step 4, score -1", err, back.BestStep, back.BestScore)
	}
	sameBits(t, "recalled snapshot", at4.Params.Flatten(), back.Best.Params.Flatten())
	if err := back.LoadBest(graph.NewCheckpoint(m.Params), path); err != nil || back.BestStep != 4 {
		t.Errorf("Recall of a checkpoint that records no best = %v, step %d; want nothing changed", err, back.BestStep)
	}
	stale := graph.NewCheckpoint(m.Params)
	maps.Copy(stale.Meta, ck.Meta)
	stale.Meta[bestStepKey] = "2"
	if err := back.LoadBest(stale, path); !errors.Is(err, ErrBestLost) {
		t.Errorf("LoadBest of a snapshot of step 4 for a checkpoint recording step 2 = %v, want ErrBestLost", err)
	}
	ck.Meta[bestScoreKey] = "high"
	if err := back.LoadBest(ck, path); err == nil {
		t.Errorf("Recall of a score %q: no error", ck.Meta[bestScoreKey])
	}
}

// TestSelectionErrors: a missing field, a failed or non-finite
// validation end the run with an error naming the step; an interrupt
// while validating step n fails step n+1 with n done.
func TestSelectionErrors(t *testing.T) {
	p := new(graph.Params)
	run := Run[int, int]{Steps: 4, Batch: func(n int) (int, error) { return n, nil }}
	run.Select = &Selection{Every: 2, Params: p}
	if err := Train(context.Background(), &countingTrainer{}, run); err == nil {
		t.Errorf("a Selection without Validate: no error")
	}
	boom := errors.New("boom")
	run.Select = &Selection{Every: 2, Params: p, Validate: func(int) (float64, error) { return 0, boom }}
	if err := Train(context.Background(), &countingTrainer{}, run); !errors.Is(err, boom) {
		t.Errorf("failed validation: Train = %v, want boom", err)
	}
	run.Select = &Selection{Every: 2, Params: p, Validate: func(int) (float64, error) { return math.Inf(1), nil }}
	if err := Train(context.Background(), &countingTrainer{}, run); !errors.Is(err, ErrNonFinite) {
		t.Errorf("infinite score: Train = %v, want ErrNonFinite", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run.Select = &Selection{Every: 2, Params: p, Validate: func(int) (float64, error) { cancel(); return 0, ctx.Err() }}
	var se *StepError
	if err := Train(ctx, &countingTrainer{}, run); !errors.As(err, &se) || se.Step != 3 || se.Done != 2 || !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted validation: Train = %v, want a StepError at step 3 after 2", err)
	}
}

func TestBestPath(t *testing.T) {
	for in, want := range map[string]string{"run.safetensors": "run.best.safetensors", "d.x/run": "d.x/run.best", "a/b.c.st": "a/b.c.best.st"} {
		if got := BestPath(in); got != want {
			t.Errorf("BestPath(%q) = %q, want %q", in, got, want)
		}
	}
}
