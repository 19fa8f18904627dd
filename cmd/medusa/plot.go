package main

import (
	"context"
	"fmt"
	"io"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/monitor"
)

// plotConfig is what "medusa plot" runs.
type plotConfig struct {
	log    string
	out    string
	smooth int
}

func parsePlot(args []string, stderr io.Writer) (*plotConfig, error) {
	fs := newFlags("medusa plot")
	logPath := fs.String("log", "", "training log written by train --log (required)")
	out := fs.String("out", "curves.png", "PNG file to write")
	smooth := fs.Int("smooth", 1, "moving average over this many logged steps (1: none; the raw values are drawn faintly)")
	bad, ok, err := parseFlags(fs, args, stderr, `Usage: medusa plot --log FILE [flags]

Draws the training curves of a log written by "medusa train --log": a
panel of losses (log scale when all are positive), and panels of the
task weights and metrics when the log has them, against the step. Where
a resumed run repeats steps, its records replace the earlier ones.

Flags:
`)
	if !ok {
		return nil, err
	}
	c := &plotConfig{log: *logPath, out: *out, smooth: *smooth}
	if c.log == "" {
		return nil, bad("--log FILE is required")
	}
	if c.out == "" {
		return nil, bad("--out must name a file")
	}
	if c.smooth < 1 {
		return nil, bad("--smooth %d: must be at least 1", c.smooth)
	}
	if err := graph.CheckWritable(c.out); err != nil {
		return nil, bad("--out %q: %v", c.out, err)
	}
	if err := checkClobber([]fileFlag{{"out", c.out}}, []fileFlag{{"log", c.log}}); err != nil {
		return nil, bad("%v", err)
	}
	return c, nil
}

// plotCmd is "medusa plot".
func plotCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parsePlot(args, stderr)
	if err != nil || c == nil {
		return err
	}
	recs, err := monitor.ReadFile(c.log)
	if err != nil {
		return err
	}
	if err := monitor.PlotCurves(c.out, recs, c.smooth); err != nil {
		return fmt.Errorf("%s: %v", c.log, err)
	}
	fmt.Fprintf(stderr, "wrote %s (%d records, steps %d to %d)\n", c.out, len(recs), recs[0].Step, recs[len(recs)-1].Step)
	return nil
}
