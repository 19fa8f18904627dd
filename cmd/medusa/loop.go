package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners"
	"github.com/medusa-ml/medusa/learners/monitor"
)

// loop is what train and trainMTL hand trainLoop besides the run.
type loop[S any] struct {
	unit     string // "iteration" or "step"
	out, log string // --out, --log
	logEvery int
	resumed  bool    // append to the log
	lr       float64 // logged with each record
	hint     string  // what to try after a NaN
	dev      graph.Device
	params   *graph.Params
	meta     map[string]string // the run's description, in its checkpoints
	flags    map[string]string // every flag's value, to resume with
	// values returns a step's losses, which the progress line and the
	// log average over the steps since the last record, and weights,
	// shown as they are.
	values func(st S) (losses, weights []monitor.Value)
	// detail is the progress line's text for the averages.
	detail func(losses, weights []monitor.Value) string
}

// placer is a learner that says where its last graph ran.
type placer interface{ Placement() graph.Placement }

// trainLoop runs learners.Train with a progress line on stderr, a
// training log, checkpoints to --out at the cadence asked and at the end,
// and, when a step fails, a checkpoint of the last good step.
func trainLoop[B, S any](ctx context.Context, m learners.Trainer[B, S], run learners.Run[B, S], l loop[S], stdout, stderr io.Writer) error {
	start, first := time.Now(), m.Steps()
	short := map[string]string{"iteration": "iter"}[l.unit]
	if short == "" {
		short = l.unit
	}
	prog := monitor.NewProgress(stderr, short, first, run.Steps, l.logEvery)
	var rl *monitor.Log
	if l.log != "" {
		open := monitor.Create
		if l.resumed {
			open = monitor.Append
		}
		var err error
		if rl, err = open(l.log); err != nil {
			return err
		}
		defer rl.Close()
	}
	rec := &monitor.Recorder{Progress: prog, Log: rl, LR: l.lr, Detail: l.detail}
	run.Record = func(n int, st S) error {
		if p, ok := any(m).(placer); ok && l.dev != nil && (n == first+2 || n == run.Steps && n < first+2) { // the second run is recorded
			fmt.Fprintf(stderr, "graph: %v\n", p.Placement())
		}
		losses, weights := l.values(st)
		return rec.Record(n, losses, weights)
	}
	// save writes the checkpoint; with why set it says so on stderr.
	save := func(path, why string) error {
		ck, err := learners.Checkpoint(l.params, m, run.Streams)
		if err != nil {
			return err
		}
		maps.Copy(ck.Meta, l.meta)
		ck.Meta[l.unit+"s"] = fmt.Sprint(m.Steps())
		flags, err := json.Marshal(l.flags)
		if err != nil {
			return err
		}
		ck.Meta[flagsKey] = string(flags)
		if err := graph.SaveCheckpoint(path, ck); err != nil {
			return err
		}
		if why != "" {
			fmt.Fprintf(stderr, "saved %s parameters after %d %ss to %s\n", why, m.Steps(), l.unit, path)
		}
		return nil
	}
	if l.out != "" {
		run.Save = func() error { return save(l.out, "") }
	}
	run.Begin = stepBegins
	err := learners.Train(ctx, m, run)
	prog.Done()
	if err != nil {
		return stepFailed(ctx, err, stepFailure{cmd: map[string]string{"iteration": "train", "step": "mtl"}[l.unit], unit: l.unit, total: run.Steps, path: rescuePath(l.out), save: save, hint: l.hint, stderr: stderr})
	}
	if rl != nil {
		if err := rl.Close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "trained %d %ss in %s\n", run.Steps-first, l.unit, time.Since(start).Round(time.Millisecond))
	if l.out != "" {
		return save(l.out, "trained")
	}
	return nil
}
