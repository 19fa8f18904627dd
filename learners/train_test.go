package learners

import (
	"context"
	"errors"
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

// countingTrainer records the batches it is given and fails at step
// failAt (1-based) with err.
type countingTrainer struct {
	seen   []int
	failAt int
	err    error
}

func (c *countingTrainer) Step(ctx context.Context, b int) (int, error) {
	if len(c.seen)+1 == c.failAt {
		return 0, c.err
	}
	c.seen = append(c.seen, b)
	return 10 * b, nil
}
func (c *countingTrainer) Steps() int                                { return len(c.seen) }
func (c *countingTrainer) SaveState(string, *graph.Checkpoint) error { return nil }
func (c *countingTrainer) LoadState(string, *graph.Checkpoint) error { return nil }

// TestTrainLoop: Train takes the steps from the learner's count to Steps,
// records each, saves at the cadence asked but not after the last step,
// and on a failed step says which it was and how many were done.
func TestTrainLoop(t *testing.T) {
	src := rand.NewPCG(1, 2)
	rng := rand.New(src)
	var recorded []int
	var saves []int
	l := &countingTrainer{}
	run := Run[int, int]{
		Steps:   9,
		Batch:   func(n int) (int, error) { rng.Uint64(); return n, nil },
		Streams: []Stream{{Name: "s", Src: src}},
		Record: func(n, st int) error {
			if st != 10*n {
				t.Errorf("step %d recorded %d, want %d", n, st, 10*n)
			}
			recorded = append(recorded, n)
			return nil
		},
		Every: 3,
	}
	run.Save = func() error { saves = append(saves, l.Steps()); return nil }
	if err := Train(context.Background(), l, run); err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(l.seen, want) || !slices.Equal(recorded, want) {
		t.Errorf("batches %v, recorded %v, want %v", l.seen, recorded, want)
	}
	if !slices.Equal(saves, []int{3, 6}) {
		t.Errorf("saved after steps %v, want 3 and 6 (not 9, the last)", saves)
	}

	// A run resumed after 4 steps goes on at step 5; step 7 fails.
	boom := errors.New("boom")
	l = &countingTrainer{seen: []int{1, 2, 3, 4}, failAt: 7, err: boom}
	run.Record, run.Save = nil, nil
	err := Train(context.Background(), l, run)
	var se *StepError
	if !errors.As(err, &se) || !errors.Is(err, boom) || se.Step != 7 || se.Done != 6 {
		t.Fatalf("Train = %v, want a StepError at step 7 after 6, wrapping boom", err)
	}
	if !slices.Equal(l.seen, []int{1, 2, 3, 4, 5, 6}) {
		t.Errorf("batches %v", l.seen)
	}

	// An interrupt before a step fails it with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l = &countingTrainer{}
	if err := Train(ctx, l, run); !errors.As(err, &se) || !errors.Is(err, context.Canceled) || se.Done != 0 {
		t.Errorf("Train with a cancelled context = %v, want a StepError wrapping context.Canceled", err)
	}
}

// TestTrainRewinds checks the rewind exactly: after a failure at step 3,
// the stream gives step 3's batch again.
func TestTrainRewinds(t *testing.T) {
	src := rand.NewPCG(5, 6)
	rng := rand.New(src)
	var drawn []uint64
	run := Run[int, int]{
		Steps:   5,
		Batch:   func(n int) (int, error) { drawn = append(drawn, rng.Uint64()); return n, nil },
		Streams: []Stream{{Name: "s", Src: src}},
	}
	l := &countingTrainer{failAt: 3, err: errors.New("fail")}
	if err := Train(context.Background(), l, run); err == nil {
		t.Fatal("no error")
	}
	l.failAt = 0
	if err := Train(context.Background(), l, run); err != nil {
		t.Fatal(err)
	}
	// Steps 1, 2, 3 (failed), then 3, 4, 5: the retried step drew the same.
	if len(drawn) != 6 || drawn[2] != drawn[3] || drawn[3] == drawn[4] {
		t.Errorf("draws %v: want step 3's draw repeated after the failure", drawn)
	}
}

// TestEpochBatches: every epoch covers every row once, in an order that
// depends on the seed and the epoch alone, whatever steps were asked
// before.
func TestEpochBatches(t *testing.T) {
	tab, err := tasks.SyntheticMTL{Seed: 1}.Generate(rand.New(rand.NewPCG(1, 1)), 23)
	if err != nil {
		t.Fatal(err)
	}
	batches, err := EpochBatches(tab, 5, 9)
	if err != nil {
		t.Fatal(err)
	}
	// 23 rows in batches of 5: 5 steps an epoch, the last of 3 rows.
	firstRow := func(b *tasks.Table) float64 { return b.X[0] }
	seq := map[int]float64{}
	seen := map[float64]int{}
	for n := 1; n <= 10; n++ {
		b, err := batches(n)
		if err != nil {
			t.Fatal(err)
		}
		if want := []int{5, 5, 5, 5, 3}[(n-1)%5]; b.N != want {
			t.Errorf("step %d: %d rows, want %d", n, b.N, want)
		}
		seq[n] = firstRow(b)
		if n <= 5 {
			for r := 0; r < b.N; r++ {
				seen[b.X[r*b.In]]++
			}
		}
	}
	if len(seen) != 23 {
		t.Errorf("the first epoch covered %d distinct rows, want 23", len(seen))
	}
	again, err := EpochBatches(tab, 5, 9)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{7, 2, 10} {
		b, err := again(n)
		if err != nil {
			t.Fatal(err)
		}
		if firstRow(b) != seq[n] {
			t.Errorf("step %d asked out of order gives another batch", n)
		}
	}
	if _, err := EpochBatches(tab, 0, 1); err == nil {
		t.Error("batch size 0: no error")
	}
	if _, err := batches(0); err == nil {
		t.Error("step 0: no error")
	}
}

// TestResumeExact: a MAML run checkpointed after 3 steps and resumed in
// a fresh learner reaches the parameters of an uninterrupted 6-step run,
// bit for bit; a checkpoint without a stream's state is refused.
func TestResumeExact(t *testing.T) {
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{8}}
	newRun := func(steps int) (*MAML, *graph.Params, Run[*tasks.Batch, Stats]) {
		p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
		if err != nil {
			t.Fatal(err)
		}
		src := rand.NewPCG(2, 2)
		rng := rand.New(src)
		m := &MAML{Model: model, Params: p}
		return m, p, Run[*tasks.Batch, Stats]{
			Steps: steps,
			Batch: func(int) (*tasks.Batch, error) {
				b, _, err := tasks.Sinusoid{}.Sample(rng, 3, 5, 5)
				return b, err
			},
			Streams: []Stream{{Name: "tasks", Src: src}},
		}
	}
	ctx := context.Background()
	m, straight, run := newRun(6)
	if err := Train(ctx, m, run); err != nil {
		t.Fatal(err)
	}
	m, p, run := newRun(3)
	if err := Train(ctx, m, run); err != nil {
		t.Fatal(err)
	}
	ck, err := Checkpoint(p, m, run.Streams)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "run.safetensors")
	if err := graph.SaveCheckpoint(path, ck); err != nil {
		t.Fatal(err)
	}
	if ck, err = graph.LoadCheckpoint(path); err != nil {
		t.Fatal(err)
	}
	m, resumed, run := newRun(6)
	if err := Resume(ck, resumed, m, run.Streams); err != nil {
		t.Fatal(err)
	}
	if m.Steps() != 3 {
		t.Fatalf("resumed at %d steps, want 3", m.Steps())
	}
	if err := Train(ctx, m, run); err != nil {
		t.Fatal(err)
	}
	a, b := straight.Flatten(), resumed.Flatten()
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			t.Fatalf("parameter %d: %v resumed, %v straight", i, b[i], a[i])
		}
	}
	if err := Resume(ck, resumed, m, []Stream{{Name: "other", Src: rand.NewPCG(0, 0)}}); err == nil {
		t.Error("Resume with a stream the checkpoint lacks: no error")
	}
}
