package learners

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/medusa-ml/medusa/graph"
)

// Selection chooses a run's parameters by validation, as few-shot papers
// report the test score of the checkpoint that did best on episodes of
// held-out validation classes: every Every steps, and after the last,
// Train calls Validate and keeps a snapshot of the parameters and the
// learner's state (Meta-SGD's rates, optimiser moments) whenever the score
// beats every earlier one. Validation draws nothing from the run's
// streams, so a run trains the same with or without it.
type Selection struct {
	// Every is the number of steps between validations; required.
	Every int
	// Validate returns the score of the learner after step n: higher is
	// better (an accuracy, a negated loss). It must not change the
	// learner. A score that is not finite is an error.
	Validate func(n int) (float64, error)
	// Params are the run's parameters, the snapshot's source.
	Params *graph.Params
	// Found, if set, is called when step n's score is the best so far,
	// with the snapshot: to write it to a file, say.
	Found func(n int, score float64, best *graph.Checkpoint) error
	// Scored, if set, is called after every validation with the score
	// and whether it is the best so far: for logs and progress.
	Scored func(n int, score float64, best bool) error

	// Best is the snapshot of the best step so far, BestStep its step (0
	// before any validation) and BestScore its score. Train sets them;
	// a resumed run sets them from the snapshot it wrote (SetBest).
	Best      *graph.Checkpoint
	BestStep  int
	BestScore float64
}

// SetBest restores the best snapshot of a run that is being resumed: the
// checkpoint Found was given at step (its score, score), as read back
// from a file.
func (s *Selection) SetBest(step int, score float64, best *graph.Checkpoint) error {
	if step <= 0 || best == nil || !finite(score) {
		return fmt.Errorf("learners: Selection.SetBest: step %d, score %g, snapshot %v: want a positive step, a finite score and a snapshot", step, score, best != nil)
	}
	s.Best, s.BestStep, s.BestScore = best, step, score
	return nil
}

// Restore puts the best snapshot's parameters into s.Params and its state
// into l, the learner it was taken from: the run's chosen model. Without
// a snapshot it returns an error and changes nothing.
func (s *Selection) Restore(l graph.Stateful) error {
	if s.Best == nil {
		return fmt.Errorf("learners: Selection.Restore: no step has been validated")
	}
	return Resume(s.Best, s.Params, l, nil)
}

// due reports whether step n of a run of total steps is validated.
func (s *Selection) due(n, total int) bool {
	return n%s.Every == 0 || n == total
}

// check reports a Selection that Train cannot use.
func (s *Selection) check() error {
	if s.Every <= 0 || s.Validate == nil || s.Params == nil {
		return fmt.Errorf("learners: Train: a Selection needs Every > 0 (got %d), Validate and Params", s.Every)
	}
	return nil
}

// validate scores the learner after step n and keeps a snapshot if the
// score is the best so far.
func (s *Selection) validate(n int, l graph.Stateful) error {
	score, err := s.Validate(n)
	if err != nil {
		return fmt.Errorf("learners: validation after step %d: %w", n, err)
	}
	if !finite(score) {
		return fmt.Errorf("learners: validation after step %d scored %g: %w", n, score, ErrNonFinite)
	}
	best := s.BestStep == 0 || score > s.BestScore
	if best {
		snap, err := Checkpoint(s.Params.Clone(), l, nil)
		if err != nil {
			return err
		}
		snap.State = snap.State.Clone() // a learner may save its live tensors
		s.Best, s.BestStep, s.BestScore = snap, n, score
		s.RecordBest(snap) // the snapshot says which step it is
		if s.Found != nil {
			if err := s.Found(n, score, snap); err != nil {
				return err
			}
		}
	}
	if s.Scored != nil {
		return s.Scored(n, score, best)
	}
	return nil
}

// Checkpoint metadata written by RecordBest and read by LoadBest.
const (
	bestStepKey  = "train.val_best_step"
	bestScoreKey = "train.val_best_score"
)

// BestPath is where a run that validates keeps its best snapshot, beside
// its checkpoint at path: run.safetensors → run.best.safetensors.
func BestPath(path string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + ".best" + ext
}

// ErrBestLost is wrapped by LoadBest's error when the best snapshot a
// checkpoint records is missing, or is not the one it records (a later
// best written after the checkpoint): the best so far is lost, and a
// caller may go on with the Selection as it is.
var ErrBestLost = errors.New("the best snapshot is lost")

// RecordBest records s's best step and score in the metadata of ck, a
// checkpoint of the run, so that LoadBest can find the best snapshot when
// the run is resumed from it. It does nothing before the first
// validation. The snapshots Train keeps record their own step this way.
func (s *Selection) RecordBest(ck *graph.Checkpoint) {
	if s.Best != nil {
		ck.Meta[bestStepKey], ck.Meta[bestScoreKey] = strconv.Itoa(s.BestStep), strconv.FormatFloat(s.BestScore, 'g', -1, 64)
	}
}

// LoadBest restores the best snapshot of a run resumed from ck, read from
// path: the step and score that RecordBest recorded in ck, the snapshot
// from BestPath(path), which must record the same step. A checkpoint that
// records none leaves s as it is. A missing snapshot file, or one of
// another step, is an error wrapping ErrBestLost.
func (s *Selection) LoadBest(ck *graph.Checkpoint, path string) error {
	step, ok := ck.Meta[bestStepKey]
	if !ok {
		return nil
	}
	n, err := strconv.Atoi(step)
	score, err2 := strconv.ParseFloat(ck.Meta[bestScoreKey], 64)
	if err != nil || err2 != nil {
		return fmt.Errorf("learners: %s: the best validation step and score %q, %q are not numbers", path, step, ck.Meta[bestScoreKey])
	}
	bp := BestPath(path)
	if _, err := os.Stat(bp); err != nil {
		return fmt.Errorf("learners: %v: %w", err, ErrBestLost)
	}
	best, err := graph.LoadCheckpoint(bp)
	if err != nil {
		return err
	}
	if got := best.Meta[bestStepKey]; got != step {
		return fmt.Errorf("learners: %s holds the best of step %q, %s records step %s: %w", bp, got, path, step, ErrBestLost)
	}
	return s.SetBest(n, score, best)
}
