package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners"
	"github.com/medusa-ml/medusa/learners/monitor"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/learners/weighting"
)

// maxToyPoints bounds the trajectory points kept per run.
const maxToyPoints = 100000

// toyConfig is what "medusa toy" runs.
type toyConfig struct {
	methods []string
	iters   int
	lr      float64
	every   int
	seed    uint64
	out     string
	csv     string
}

// toyMethods are the names "medusa toy" accepts: "mean" (gradient descent
// on the mean loss), equal weighting and the gradient-manipulation
// methods. Uncertainty weighting, GradNorm and DWA need positive losses,
// and the toy losses are negative over much of the plane.
func toyMethods() []string {
	return []string{"mean", "ew", "pcgrad", "mgda", "cagrad", "imtl", "nash", "upgrad", "alignedmtl", "gradvac", "fairgrad", "famo", "graddrop", "moco"}
}

// newToyMethod returns the method a toy specification names: a name
// toyMethods lists, optionally with settings as weighting.Parse reads
// them ("famo:lr=0.01"). Two methods get toy defaults unless the
// specification sets them: the toy's losses go negative, below FAMO's
// default bound of 0 (its authors' toy bound is −21), and MoCo's default
// scales unit gradients by the losses (the toy uses its plain tracked
// gradients).
func newToyMethod(spec string) (weighting.Method, error) {
	name, rest, _ := strings.Cut(spec, ":")
	if name == "mean" && rest == "" {
		return weighting.EW{Mean: true}, nil
	}
	if name == "mean" {
		return nil, fmt.Errorf("toy method %q: mean takes no settings", spec)
	}
	if !slices.Contains(toyMethods(), name) {
		return nil, fmt.Errorf("unknown toy method %q (want one of %s)", spec, strings.Join(toyMethods(), ", "))
	}
	m, err := weighting.Parse(spec, 2)
	if err != nil {
		return nil, err
	}
	sets := func(key string) bool { return strings.Contains(":"+rest, ":"+key+"=") }
	switch m := m.(type) {
	case *weighting.FAMO:
		if !sets("min_losses") {
			m.MinLosses = []float64{-21, -21}
		}
	case *weighting.MoCo:
		if !sets("raw_grads") {
			m.RawGrads = true
		}
	}
	return m, nil
}

func parseToy(args []string, stderr io.Writer) (*toyConfig, error) {
	fs := newFlags("medusa toy")
	methods := fs.String("weighting", "mean,mgda,pcgrad,cagrad,imtl,nash,upgrad,alignedmtl,gradvac,fairgrad,famo,graddrop,moco", "comma-separated methods: "+strings.Join(toyMethods(), ", ")+"; settings follow a name as in medusa mtl (NAME:key=value)")
	iters := fs.Int("iters", 100000, "Adam iterations per run")
	lr := fs.Float64("lr", 1e-3, "Adam learning rate")
	every := fs.Int("every", 100, "record the trajectory every N iterations")
	seed := fs.Uint64("seed", 1, "random seed (PCGrad's task order)")
	out := fs.String("out", "toy.png", "PNG plot of the trajectories (empty: none)")
	csvPath := fs.String("csv", "toy.csv", "CSV of the trajectories (empty: none)")
	bad, ok, err := parseFlags(fs, args, stderr, `Usage: medusa toy [flags]

Runs multi-task weighting methods on the two-objective toy problem of Liu
et al. (2021, CAGrad) from its six starting points, as CAGrad's toy.py
does (unscaled losses, Adam), and reports for each run where it ended and
at which iteration it reached the Pareto set (the curve where the two
task gradients are anti-parallel, |x1| ≤ 7). Writes the trajectories as a
PNG plot and a CSV table.

Flags:
`)
	if !ok {
		return nil, err
	}
	c := &toyConfig{iters: *iters, lr: *lr, every: *every, seed: *seed, out: *out, csv: *csvPath}
	for _, m := range strings.Split(*methods, ",") {
		m = strings.TrimSpace(m)
		if _, err := newToyMethod(m); err != nil {
			return nil, bad("--weighting %s", strings.TrimPrefix(err.Error(), "weighting: "))
		}
		c.methods = append(c.methods, m)
	}
	if c.iters < 1 || c.every < 1 {
		return nil, bad("--iters %d, --every %d: both must be at least 1", c.iters, c.every)
	}
	if c.iters/c.every > maxToyPoints {
		return nil, bad("--iters %d, --every %d: more than %d trajectory points per run; raise --every", c.iters, c.every, maxToyPoints)
	}
	if math.IsNaN(c.lr) || math.IsInf(c.lr, 0) || c.lr <= 0 {
		return nil, bad("--lr %v: must be a positive finite number", c.lr)
	}
	if err := checkOutputs("out", c.out, "csv", c.csv); err != nil {
		return nil, bad("%v", err)
	}
	if err := checkClobber([]fileFlag{{"out", c.out}, {"csv", c.csv}}, nil); err != nil {
		return nil, bad("%v", err)
	}
	return c, nil
}

func toy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseToy(args, stderr)
	if err != nil || c == nil {
		return err
	}
	starts := tasks.ToyStarts()
	results := learners.RunToys(ctx, c.methods, newToyMethod, starts, learners.ToyConfig{Iters: c.iters, LR: c.lr, Every: c.every}, c.seed)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("toy runs interrupted: %w", err)
	}
	fmt.Fprintf(stdout, "two-objective toy problem, %d Adam iterations of %g from each start; Pareto set: |x1| <= 7.05, |x2 - p(x1)| < 0.05\n", c.iters, c.lr)
	fmt.Fprintf(stdout, "  %-8s %-14s %10s   %s\n", "method", "start", "reached at", "end point")
	for _, r := range results {
		st := fmt.Sprintf("(%g, %g)", r.Start[0], r.Start[1])
		if r.Err != nil {
			fmt.Fprintf(stdout, "  %-8s %-14s %10s   failed: %v\n", r.Method, st, "-", r.Err)
			continue
		}
		reached := "never"
		if r.Run.Reached >= 0 {
			reached = strconv.Itoa(r.Run.Reached)
		}
		fmt.Fprintf(stdout, "  %-8s %-14s %10s   (%.4f, %.4f)\n", r.Method, st, reached, r.Run.End[0], r.Run.End[1])
	}
	if c.csv != "" {
		if err := writeToyCSV(c.csv, results); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s\n", c.csv)
	}
	if c.out != "" {
		if err := monitor.PlotToy(c.out, results); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s\n", c.out)
	}
	return nil
}

func writeToyCSV(path string, results []learners.ToyResult) error {
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write([]string{"method", "start_x1", "start_x2", "point", "x1", "x2"})
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for _, r := range results {
		for i, p := range r.Run.Trajectory {
			w.Write([]string{r.Method, f(r.Start[0]), f(r.Start[1]), strconv.Itoa(i), f(p[0]), f(p[1])})
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return graph.WriteFileAtomic(path, []byte(b.String()))
}
