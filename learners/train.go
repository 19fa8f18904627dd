package learners

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
)

// Trainer is a learner that Train drives: MAML, ANIL, MetaSGD and Reptile
// (batches of tasks, Stats) and MTL (tables of rows, MTLStats).
type Trainer[B, S any] interface {
	// Step takes one training step on a batch.
	Step(ctx context.Context, b B) (S, error)
	// Steps returns the number of steps taken, those of a resumed run
	// included.
	Steps() int
	graph.Stateful
}

// Stream is a named random generator of a run: the batches and the learner
// draw from it, a checkpoint records its state, and Train rewinds it when
// a step fails.
type Stream struct {
	Name string
	Src  *rand.PCG
}

// Run configures Train. Steps and Batch are required; every other field
// may be left zero.
type Run[B, S any] struct {
	// Steps is the step at which the run ends. A learner that has taken
	// some already (one restored by Resume) goes on from there.
	Steps int
	// Batch returns the batch of step n, counted from 1. It must depend
	// on the streams' states and n alone, so that a resumed run draws
	// what an uninterrupted one would (EpochBatches does so for tables).
	Batch func(n int) (B, error)
	// Streams are the random generators that Batch and the learner draw
	// from. When a step fails they are put back as they were before its
	// batch was drawn, so that a checkpoint written then resumes at that
	// step.
	Streams []Stream
	// Begin, if set, is called once step n's batch is drawn, before the
	// step; an error it returns fails the step.
	Begin func(n int) error
	// Record, if set, is called after each step with its number and
	// statistics: progress, logs, averages. An error it returns ends the
	// run.
	Record func(n int, st S) error
	// Save, if set, writes a checkpoint (see Checkpoint) every Every
	// steps; not after the last step, which the caller saves as it
	// chooses.
	Save  func() error
	Every int
	// Select, if set, validates the learner at its cadence and keeps the
	// best step's snapshot: after the step, before Record (which can then
	// log the score) and Save (whose checkpoint can then record it).
	Select *Selection
}

// StepError is a training step that failed. The run's streams are as they
// were before the step's batch was drawn, and the learner as it was after
// step Done, so that a checkpoint written now resumes at step Done+1. Err
// is the step's error; errors.Is(err, context.Canceled) and
// errors.Is(err, ErrNonFinite) tell an interrupt and a divergence apart.
type StepError struct {
	Step int // the step that failed
	Done int // the steps completed
	Err  error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("learners: step %d: %v", e.Step, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Train runs l from step l.Steps()+1 to r.Steps: it draws each step's
// batch, takes the step, validates, records it and saves checkpoints at
// the cadence asked. It returns nil when the run is complete, a
// *StepError when a step fails (an interrupt through ctx included: the
// step in progress, if any, ends early and fails; an interrupt of step n's
// validation fails step n+1, so that step n is kept but not validated),
// and the error of Batch, validation, Record or Save otherwise.
func Train[B, S any](ctx context.Context, l Trainer[B, S], r Run[B, S]) error {
	if r.Batch == nil {
		return fmt.Errorf("learners: Train: no Batch function")
	}
	if r.Select != nil {
		if err := r.Select.check(); err != nil {
			return err
		}
	}
	marks := make([]rand.PCG, len(r.Streams))
	for n := l.Steps() + 1; n <= r.Steps; n++ {
		for i, s := range r.Streams {
			marks[i] = *s.Src
		}
		rewind := func() {
			for i, s := range r.Streams {
				*s.Src = marks[i]
			}
		}
		b, err := r.Batch(n)
		if err != nil {
			rewind()
			return err
		}
		if r.Begin != nil {
			err = r.Begin(n)
		}
		var st S
		if err == nil {
			if err = ctx.Err(); err == nil {
				st, err = l.Step(ctx, b)
			}
		}
		if err != nil {
			rewind()
			return &StepError{Step: n, Done: l.Steps(), Err: err}
		}
		if r.Select != nil && r.Select.due(n, r.Steps) {
			if err := r.Select.validate(n, l); err != nil {
				if ctx.Err() != nil { // interrupted: resume after step n, unvalidated
					return &StepError{Step: n + 1, Done: l.Steps(), Err: err}
				}
				return err
			}
		}
		if r.Record != nil {
			if err := r.Record(n, st); err != nil {
				return err
			}
		}
		if r.Save != nil && r.Every > 0 && n%r.Every == 0 && n < r.Steps {
			if err := r.Save(); err != nil {
				return err
			}
		}
	}
	return nil
}

// EpochBatches returns a Batch function for Run that trains on t in
// minibatches of size rows, epoch after epoch: epoch e's rows are
// shuffled by a generator seeded with (seed, e) alone, so that a resumed
// run takes the minibatches an uninterrupted one would. The last
// minibatch of an epoch is smaller when size does not divide t.N.
func EpochBatches(t *tasks.Table, size int, seed uint64) (func(n int) (*tasks.Table, error), error) {
	if t == nil || t.N == 0 {
		return nil, fmt.Errorf("learners: EpochBatches: no rows")
	}
	if size <= 0 {
		return nil, fmt.Errorf("learners: EpochBatches: batch size %d, want positive", size)
	}
	perEpoch := (t.N + size - 1) / size
	epoch := -1
	var batches []*tasks.Table
	return func(n int) (*tasks.Table, error) {
		if n < 1 {
			return nil, fmt.Errorf("learners: EpochBatches: step %d, want 1 or more", n)
		}
		e, k := (n-1)/perEpoch, (n-1)%perEpoch
		if e != epoch {
			b, err := t.Batches(rand.New(rand.NewPCG(seed, uint64(e))), size)
			if err != nil {
				return nil, err
			}
			batches, epoch = b, e
		}
		return batches[k], nil
	}, nil
}

// Checkpoint metadata written by Checkpoint and read by Resume.
const (
	statePrefix  = "train."      // the learner's state
	streamPrefix = "medusa.rng." // + stream name: a PCG state, base64
)

// Checkpoint returns a checkpoint of a run: params, the learner's state
// (optimiser moments, step count, weighting state...) and the states of
// its random streams. The caller may add metadata to its Meta before
// saving it with graph.SaveCheckpoint; Resume restores the run from it.
func Checkpoint(params *graph.Params, l graph.Stateful, streams []Stream) (*graph.Checkpoint, error) {
	ck := graph.NewCheckpoint(params)
	if err := l.SaveState(statePrefix, ck); err != nil {
		return nil, err
	}
	for _, s := range streams {
		b, err := s.Src.MarshalBinary()
		if err != nil {
			return nil, err
		}
		ck.Meta[streamPrefix+s.Name] = base64.StdEncoding.EncodeToString(b)
	}
	return ck, nil
}

// Resume restores a run from a checkpoint that Checkpoint made: the
// parameters into params (same names and shapes), the learner's state
// and every stream's state. A stream the checkpoint does not record, or
// parameters that do not match, are an error, and params, l and the
// streams may then be partly restored.
func Resume(c *graph.Checkpoint, params *graph.Params, l graph.Stateful, streams []Stream) error {
	if err := params.CopyFrom(c.Params); err != nil {
		return err
	}
	if err := l.LoadState(statePrefix, c); err != nil {
		return err
	}
	for _, s := range streams {
		v, ok := c.Meta[streamPrefix+s.Name]
		if !ok {
			return fmt.Errorf("learners: the checkpoint has no state for the random stream %q", s.Name)
		}
		b, err := base64.StdEncoding.DecodeString(v)
		if err == nil {
			err = s.Src.UnmarshalBinary(b)
		}
		if err != nil {
			return fmt.Errorf("learners: the state of the random stream %q is not valid: %v", s.Name, err)
		}
	}
	return nil
}
