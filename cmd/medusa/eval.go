package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/monitor"
	"github.com/medusa-ml/medusa/learners/tasks"
)

// evalConfig is what "medusa eval" runs.
type evalConfig struct {
	checkpoint string
	tasks      int
	steps      int
	shots      int // 0: the checkpoint's
	query      int
	seed       uint64
	seedGiven  bool
	out        string
	fits       string
	csv        string       // a table to score a multi-task checkpoint on
	device     string       // --device
	dev        graph.Device // the device opened for it; nil: the CPU
	maxMemory  int64        // --max-memory; 0: none
	metaGiven  []string     // the flags given that only meta-learned checkpoints take
}

func parseEval(args []string, stderr io.Writer) (*evalConfig, error) {
	fs := newFlags("medusa eval")
	checkpoint := fs.String("checkpoint", "", "checkpoint written by medusa train --out or medusa mtl --out (required)")
	csvPath := fs.String("csv", "", "multi-task checkpoints: score this CSV table (the trained feature and target columns) instead of the run's held-out rows")
	nTasks := fs.Int("tasks", 600, "fresh test tasks")
	episodes := fs.Int("episodes", 0, "the same as --tasks: test episodes of an image task")
	steps := fs.Int("eval-steps", 0, "most inner steps: the figure is reported after 0, 1, ..., this many (0: the run's --eval-steps)")
	oldSteps := fs.Int("steps", 0, "the same as --eval-steps")
	fs.MarkDeprecated("steps", "use --eval-steps")
	shots := fs.Int("shots", 0, "K: support examples per test task, or per class (0: the K the checkpoint was trained with)")
	query := fs.Int("query", 0, "query examples per test task, or per class (0: the run's --eval-query)")
	seed := fs.Uint64("seed", 0, "random seed of the test tasks (default: the checkpoint's, which repeats the evaluation train printed)")
	out := fs.String("out", "adapt.png", "PNG plot of the test error, or accuracy, against inner steps (empty: none)")
	device := fs.String("device", "auto", deviceHelp)
	maxMemory := fs.String("max-memory", "", memoryHelp)
	fits := fs.String("fits", "", "sinusoid: PNG plot of three test tasks: the truth, the K points, and the fits before and after 1 and --eval-steps steps (empty: none)")
	bad, ok, err := parseFlags(fs, args, stderr, `Usage: medusa eval --checkpoint FILE [flags]

Adapts a meta-trained model (any learner of "medusa train") to fresh
test tasks, as the end of "medusa train" does with the settings the
checkpoint records, and prints the query MSE, or accuracy, after every
number of inner steps up to --eval-steps (mean and 95% interval,
mean ± 1.96·s/√n). Plots the figure against the number of steps, and for
sinusoids with --fits the model's fits to three tasks as in Finn et al.
(2017), figure 2. On a checkpoint of "medusa mtl" it prints each task's
metrics on the run's held-out rows, or on the table of --csv.

Flags:
`)
	if !ok {
		return nil, err
	}
	c := &evalConfig{checkpoint: *checkpoint, tasks: *nTasks, steps: *steps, shots: *shots, query: *query,
		seed: *seed, seedGiven: fs.Changed("seed"), out: *out, fits: *fits, csv: *csvPath, device: *device}
	if err := checkDevice(c.device); err != nil {
		return nil, bad("%v", err)
	}
	if *episodes > 0 {
		c.tasks = *episodes
	}
	for _, f := range []string{"tasks", "episodes", "eval-steps", "steps", "shots", "query", "seed", "out", "fits"} {
		// An empty --out or --fits asks for no file: right for any checkpoint.
		if fs.Changed(f) && !((f == "out" || f == "fits") && fs.Lookup(f).Value.String() == "") {
			c.metaGiven = append(c.metaGiven, "--"+f)
		}
	}
	if fs.Changed("steps") {
		fmt.Fprintln(stderr, "medusa: eval --steps is now --eval-steps")
	}
	if fs.Changed("steps") && !fs.Changed("eval-steps") {
		c.steps = *oldSteps
	}
	if c.checkpoint == "" {
		return nil, bad("--checkpoint FILE is required")
	}
	if c.maxMemory, err = parseMemory(*maxMemory); err != nil {
		return nil, bad("--max-memory %q: %v", *maxMemory, err)
	}
	if err := checkInts(intFlag{"tasks", c.tasks, 1, maxEvalSets}, intFlag{"eval-steps", c.steps, 0, maxInner},
		intFlag{"shots", c.shots, 0, maxExamples}, intFlag{"query", c.query, 0, maxExamples}); err != nil {
		return nil, bad("%v", err)
	}
	if err := checkOutputs("out", c.out, "fits", c.fits); err != nil {
		return nil, bad("%v", err)
	}
	if err := checkClobber([]fileFlag{{"out", c.out}, {"fits", c.fits}}, []fileFlag{{"checkpoint", c.checkpoint}, {"csv", c.csv}}); err != nil {
		return nil, bad("%v", err)
	}
	return c, nil
}

// evalCmd is "medusa eval": it rebuilds the run from the settings the
// checkpoint records and runs train's final evaluation, with eval's
// --tasks, --steps, --shots, --query and --seed, printing the figure after
// every number of inner steps.
func evalCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	e, err := parseEval(args, stderr)
	if err != nil || e == nil {
		return err
	}
	dev, release, err := openDevice(e.device, stderr)
	if err != nil {
		return err
	}
	defer release()
	ck, err := graph.LoadCheckpoint(e.checkpoint)
	if err != nil {
		return fmt.Errorf("cannot read checkpoint: %v", err)
	}
	learner := ck.Meta["learner"]
	if learner == "mtl" {
		if n := len(e.metaGiven); n > 0 {
			verb := map[bool]string{true: "is", false: "are"}[n == 1]
			return fmt.Errorf("%s %s for checkpoints of medusa train; %s is one of medusa mtl, which eval scores on held-out rows (--csv)", strings.Join(e.metaGiven, ", "), verb, e.checkpoint)
		}
		return evalMTL(ctx, e, stdout)
	}
	if e.csv != "" {
		return fmt.Errorf("--csv is for checkpoints of medusa mtl; %s is one of medusa train", e.checkpoint)
	}
	if !slices.Contains(metaLearners, learner) {
		return fmt.Errorf("%s is a checkpoint of learner %q; medusa eval evaluates the meta-learners' (%s)", e.checkpoint, learner, strings.Join(metaLearners, ", "))
	}
	_, settings, err := storedArgs(ck, e.checkpoint)
	if err != nil {
		return err
	}
	c, err := parseTrain(settings, io.Discard)
	if err != nil || c == nil {
		return fmt.Errorf("%s: the recorded settings are refused: %v", e.checkpoint, err)
	}
	if e.fits != "" && (c.task != "sinusoid" || c.learner == "reptile") {
		return fmt.Errorf("--fits draws the sinusoid fits of maml, fomaml, anil and metasgd; %s is %s on %s", e.checkpoint, c.learner, c.task)
	}
	c.evalTasks, c.dev, c.maxMemory = e.tasks, dev, e.maxMemory
	for dst, v := range map[*int]int{&c.evalSteps: e.steps, &c.evalQuery: e.query, &c.shots: e.shots} {
		if v > 0 { // 0: the run's
			*dst = v
		}
	}
	if e.seedGiven {
		c.seed = e.seed
	}
	r, err := newMetaRun(c, ck, e.checkpoint, false, stderr)
	if err != nil {
		return err
	}
	defer r.m.Close()
	defer r.lift()
	src, model, m := r.src, r.model, r.m
	fmt.Fprintf(stdout, "%s checkpoint %s: %s on %s, %v, %s iterations, seed %d\n", learner, e.checkpoint, model, c.task, c.dtype, ck.Meta["iterations"], c.seed)
	means, halves, err := evaluateMeta(ctx, m, src, c, true, stdout)
	if err != nil {
		return err
	}
	if e.out != "" {
		title := fmt.Sprintf("%s on %d fresh %s tasks, %s", learner, c.evalTasks, c.task, evalShape(c))
		label := "query MSE"
		if c.classify() {
			label = "query accuracy"
		}
		if err := monitor.PlotAdaptation(e.out, title, label, means, halves); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s\n", e.out)
	}
	if e.fits != "" {
		p, ok := m.(predictor)
		if !ok {
			return fmt.Errorf("--fits: %s does not predict", learner)
		}
		if err := plotFits(e.fits, p, rand.New(rand.NewPCG(c.seed, 0x66697473)), c.shots, c.evalSteps, c.innerLR); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s\n", e.fits)
	}
	return nil
}

// predictor is a learner that returns its adapted model's outputs.
type predictor interface {
	Predict(b *tasks.Batch, steps int) ([][]float64, error)
}

// fitGrid is the number of points at which fits are drawn over [−5, 5].
const fitGrid = 201

// plotFits draws, for three fresh tasks, the true sine, the K support
// points, and the model's fit before adaptation and after 1 and steps
// inner steps (Finn et al. 2017, figure 2).
func plotFits(path string, m predictor, rng *rand.Rand, shots, steps int, innerLR float64) error {
	const n = 3
	b, ts, err := tasks.Sinusoid{}.Sample(rng, n, shots, 1)
	if err != nil {
		return err
	}
	b.Query = fitGrid
	b.QueryX, b.QueryY = make([]float64, n*fitGrid), make([]float64, n*fitGrid)
	for t := range ts {
		for i := range fitGrid {
			x := -5 + 10*float64(i)/(fitGrid-1)
			b.QueryX[t*fitGrid+i], b.QueryY[t*fitGrid+i] = x, ts[t].F(x)
		}
	}
	preds, err := m.Predict(b, steps)
	if err != nil {
		return err
	}
	shown := []int{0, 1, steps}
	if steps == 1 {
		shown = shown[:2]
	}
	fits := make([]monitor.Fit, n)
	for t, task := range ts {
		grid := func(v []float64) []float64 { return v[t*fitGrid : (t+1)*fitGrid] }
		f := monitor.Fit{Title: fmt.Sprintf("A = %.2f, phase = %.2f", task.Amplitude, task.Phase), X: grid(b.QueryX), Truth: grid(b.QueryY),
			SupportX: b.SupportX[t*shots : (t+1)*shots], SupportY: b.SupportY[t*shots : (t+1)*shots], Steps: shown}
		for _, s := range shown {
			f.Preds = append(f.Preds, grid(preds[s]))
		}
		fits[t] = f
	}
	for _, p := range preds {
		for _, v := range p {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("the fits diverge (the inner step size is %g)", innerLR)
			}
		}
	}
	return monitor.PlotFits(path, fits)
}
