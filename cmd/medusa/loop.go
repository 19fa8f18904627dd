package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners"
	"github.com/medusa-ml/medusa/learners/monitor"
	"github.com/medusa-ml/medusa/nets"
	"github.com/spf13/pflag"
	"gorgonia.org/tensor"
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
	// valMetric is how a validation score is shown and logged.
	valMetric func(score float64) monitor.Value
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
	sel := run.Select
	// write saves ck with the run's description and flags.
	write := func(path string, ck *graph.Checkpoint, steps int) error {
		maps.Copy(ck.Meta, l.meta)
		ck.Meta[l.unit+"s"] = fmt.Sprint(steps)
		flags, err := json.Marshal(l.flags)
		if err != nil {
			return err
		}
		ck.Meta[flagsKey] = string(flags)
		return graph.SaveCheckpoint(path, ck)
	}
	// save writes the checkpoint, and beside it the best snapshot of
	// validation if it is not there yet, so that the two always agree;
	// with why set it says so on stderr.
	bestAt := map[string]int{} // the step of the best snapshot written beside each checkpoint
	save := func(path, why string) error {
		ck, err := learners.Checkpoint(l.params, m, run.Streams)
		if err != nil {
			return err
		}
		if sel != nil && sel.Best != nil {
			sel.RecordBest(ck)
			if bestAt[path] != sel.BestStep {
				if err := write(learners.BestPath(path), sel.Best, sel.BestStep); err != nil {
					return err
				}
				bestAt[path] = sel.BestStep
			}
		}
		if err := write(path, ck, m.Steps()); err != nil {
			return err
		}
		if why != "" {
			fmt.Fprintf(stderr, "saved %s parameters after %d %ss to %s\n", why, m.Steps(), l.unit, path)
		}
		return nil
	}
	if sel != nil {
		sel.Scored = func(_ int, score float64, _ bool) error { rec.Note(l.valMetric(score)); return nil }
	}
	if l.out != "" {
		run.Save = func() error { return save(l.out, "") }
	}
	run.Begin = stepBegins
	err := learners.Train(ctx, m, run)
	prog.Done()
	if err != nil {
		if ferr := rec.Flush(); ferr != nil {
			fmt.Fprintf(stderr, "medusa: the log's last record: %v\n", ferr)
		}
		return l.failed(ctx, err, run.Steps, save, stderr)
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

// failed turns the error of learners.Train into the run's: after an
// interrupt it saves the last completed step and says how to resume; after
// a NaN or infinity it saves the last good step and names what was not
// finite; after any other failed step it saves the last completed one.
// Errors other than a failed step are returned as they are. The
// checkpoint goes to --out, or to a file in the working directory.
func (l loop[S]) failed(ctx context.Context, err error, total int, save func(path, why string) error, stderr io.Writer) error {
	var se *learners.StepError
	if !errors.As(err, &se) {
		return err
	}
	path, done := l.out, se.Done
	if path == "" {
		path = "medusa-interrupted.safetensors"
	}
	if ctx.Err() != nil && done >= total { // the last step's validation was interrupted
		if err := save(path, "the trained"); err != nil {
			return err
		}
		return fmt.Errorf("interrupted while validating %s %d, the last: the parameters it trained are saved to %s", l.unit, done, path)
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "interrupted before %s %d\n", l.unit, done+1)
		if done == 0 {
			return fmt.Errorf("training interrupted after 0 of %d %ss", total, l.unit)
		}
		if err := save(path, "the last completed"); err != nil {
			return err
		}
		cmd := map[string]string{"iteration": "train", "step": "mtl"}[l.unit]
		return fmt.Errorf("training interrupted after %d of %d %ss; resume with: medusa %s --resume %s", done, total, l.unit, cmd, path)
	}
	var nf *learners.NonFiniteError
	if errors.As(se.Err, &nf) {
		fmt.Fprintf(stderr, "stopped at %s %d: %s; keeping the parameters of %s %d\n", l.unit, nf.Step, nf.What, l.unit, nf.Step-1)
		if err := save(path, "the last good"); err != nil {
			return err
		}
		return fmt.Errorf("%w (%s)", se.Err, l.hint)
	}
	if done > 0 { // what was trained before the failed step is kept
		if err := save(path, "the last completed"); err != nil {
			return fmt.Errorf("%w; saving %s %d failed too: %v", se.Err, l.unit, done, err)
		}
	}
	return se.Err
}

// runFlags are the flags train and mtl share: the network's hidden
// layers and activation, the number type, the device, the seed, and the
// run's files and cadences.
type runFlags struct {
	hidden           []int
	activation       nets.Activation
	dtype            tensor.Dtype
	device           string
	seed             uint64
	out, resume, log string
	every, logEvery  int   // --checkpoint-every, --log-every
	maxMemory        int64 // 0: none

	hiddenArg, activationArg, dtypeArg, memoryArg string // as given
}

// add registers r's flags on fs; unit names a step ("iterations" or
// "steps") and total the flag that sets their number.
func (r *runFlags) add(fs *pflag.FlagSet, unit, total, hidden, hiddenHelp string) {
	fs.StringVar(&r.hiddenArg, "hidden", hidden, hiddenHelp)
	fs.StringVar(&r.activationArg, "activation", "relu", "hidden activation: relu, tanh or sigmoid")
	fs.StringVar(&r.dtypeArg, "dtype", "float32", "floating-point type: float32 or float64")
	fs.StringVar(&r.device, "device", "auto", deviceHelp)
	fs.Uint64Var(&r.seed, "seed", 1, "random seed: the same seed gives the same numbers")
	fs.StringVar(&r.out, "out", "", "write the trained parameters and training state to this safetensors file")
	fs.StringVar(&r.resume, "resume", "", "continue the run saved in this checkpoint (its settings are kept; --"+total+" sets the new total)")
	fs.IntVar(&r.every, "checkpoint-every", 0, "also write the checkpoint every N "+unit+" (0: at the end, on interrupt and on NaN only)")
	fs.StringVar(&r.log, "log", "", "write a JSON-lines training log here (appended to on --resume; draw it with medusa plot)")
	fs.IntVar(&r.logEvery, "log-every", 0, "print progress every N "+unit+" (0: about 20 lines per run)")
	fs.StringVar(&r.memoryArg, "max-memory", "", memoryHelp)
}

// check parses and checks r's values.
func (r *runFlags) check() error {
	if err := checkDevice(r.device); err != nil {
		return err
	}
	var err error
	if r.maxMemory, err = parseMemory(r.memoryArg); err != nil {
		return fmt.Errorf("--max-memory %q: %v", r.memoryArg, err)
	}
	if r.hidden, err = parseWidths(r.hiddenArg); err != nil {
		return fmt.Errorf("--hidden %q: %v", r.hiddenArg, err)
	}
	if r.activation, err = nets.ParseActivation(r.activationArg); err != nil || r.activation == nets.Identity {
		return fmt.Errorf("--activation %q: want relu, tanh or sigmoid", r.activationArg)
	}
	var ok bool
	if r.dtype, ok = map[string]tensor.Dtype{"float32": tensor.Float32, "float64": tensor.Float64}[r.dtypeArg]; !ok {
		return fmt.Errorf("--dtype %q: want float32 or float64", r.dtypeArg)
	}
	if err := checkInts(intFlag{"log-every", r.logEvery, 0, maxSteps}, intFlag{"checkpoint-every", r.every, 0, maxSteps}); err != nil {
		return err
	}
	return checkOutputs("out", r.out, "log", r.log)
}
