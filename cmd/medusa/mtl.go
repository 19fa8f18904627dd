package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/medusa-ml/medusa/learners"
	"github.com/medusa-ml/medusa/learners/monitor"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/learners/weighting"
	"github.com/medusa-ml/medusa/nets"
	"github.com/spf13/pflag"
	"gorgonia.org/tensor"
)

// mtlConfig is what "medusa mtl" runs.
type mtlConfig struct {
	runFlags
	task      string
	weighting string
	arch      string
	experts   int
	taskExp   int // --task-experts (cgc, ple)
	levels    int // --levels (ple)
	k         int // --k (dselect-k)
	repGrad   bool
	steps     int
	batch     int
	lr        float64
	trainRows int
	testRows  int
	data      string
	csv       string
	targets   []tasks.Target
	testFrac  float64
	baseline  string // "single": also train single-task baselines and report Δm

	flags map[string]string // every flag's value, recorded in checkpoints
	given []string          // the flags set on the command line
}

func parseMTL(args []string, stderr io.Writer) (*mtlConfig, error) {
	fs := newFlags("medusa mtl")
	learner := fs.String("learner", "mtl", "mtl (recorded by earlier checkpoints)")
	fs.MarkHidden("learner")
	task := fs.String("task", "synthetic", "data: synthetic (generated: 2 regressions, 1 binary), multimnist (MNIST digit pairs: left, right), csv (--csv FILE)")
	wname := fs.String("weighting", "ew", "task weighting: "+strings.Join(weighting.Names(), ", ")+"; settings follow the name, NAME:key=value[:key=value...] (see the README)")
	arch := fs.String("arch", "hps", "architecture: hps (shared trunk + heads), mmoe (multi-gate mixture of experts), cgc or ple (shared and task experts, 1 or --levels extraction layers), cross-stitch (a column per task, mixed after each layer) or dselect-k (experts chosen by --k differentiable selectors per task)")
	experts := fs.Int("experts", 4, "experts (mmoe, dselect-k), or shared experts per layer (cgc, ple)")
	taskExperts := fs.Int("task-experts", 1, "cgc, ple: each task's own experts per layer")
	levels := fs.Int("levels", 2, "ple: extraction layers")
	k := fs.Int("k", 2, "dselect-k: experts a task's gate selects")
	repGrad := fs.Bool("rep-grad", false, "gradient methods: combine the tasks' gradients with respect to the trunk's output (the representation) instead of its parameters (hps only)")
	steps := fs.Int("steps", 2000, "training steps (minibatches)")
	batch := fs.Int("batch", 256, "rows per minibatch")
	lr := fs.Float64("lr", 1e-3, "Adam learning rate")
	var run runFlags
	run.add(fs, "steps", "steps", "128,128", "trunk (or expert) layer widths, comma-separated")
	trainRows := fs.Int("train-rows", 0, "training rows to generate (synthetic: default 50000; multimnist: default 60000)")
	testRows := fs.Int("test-rows", 0, "held-out rows to generate (synthetic: default 10000; multimnist: default 10000)")
	data := fs.String("data", "", "MNIST directory (IDX .gz files) for multimnist; default: the copy in the GoMNIST Go module")
	csvPath := fs.String("csv", "", "CSV table for --task csv (header row; all non-target columns are features)")
	targets := fs.String("targets", "", "csv target columns: name:kind[,name:kind...] with kind regression, binary or multiclass:N")
	testFrac := fs.Float64("test-frac", 0.2, "csv: fraction of rows held out for evaluation")
	baseline := fs.String("baseline", "", "single: also train one network per task alone (same architecture, steps and batch) and report Δm, the mean relative change of the metrics against them")
	bad, ok, err := parseFlags(fs, args, stderr, `Usage: medusa mtl [flags]

Trains one network on several tasks at once: a shared trunk (or MMoE
experts) with one head per task, the tasks' losses and gradients combined
by a weighting method. Prints progress with each task's loss and weight,
then each task's metrics on held-out rows.

Flags:
`)
	if !ok {
		return nil, err
	}
	if *learner != "mtl" {
		return nil, bad("--learner %q: meta-learners are trained by medusa train", *learner)
	}
	c := &mtlConfig{runFlags: run, task: *task, weighting: *wname, arch: *arch, experts: *experts, taskExp: *taskExperts, levels: *levels, k: *k,
		repGrad: *repGrad, steps: *steps, batch: *batch,
		lr: *lr, baseline: *baseline, trainRows: *trainRows, testRows: *testRows, data: *data, csv: *csvPath, testFrac: *testFrac, flags: flagValues(fs)}
	if err := c.check(); err != nil {
		return nil, bad("%v", err)
	}
	fs.Visit(func(f *pflag.Flag) { c.given = append(c.given, f.Name) })
	if c.baseline != "" && c.baseline != "single" {
		return nil, bad("--baseline %q: want single (or nothing)", c.baseline)
	}
	switch c.task {
	case "synthetic", "multimnist":
		if c.csv != "" || *targets != "" {
			return nil, bad("--csv and --targets are for --task csv")
		}
	case "csv":
		if c.csv == "" {
			return nil, bad("--task csv needs --csv FILE")
		}
		if c.targets, err = tasks.ParseTargets(*targets); err != nil {
			return nil, bad("--targets %q: %v", *targets, err)
		}
	default:
		return nil, bad("--task %q: want synthetic, multimnist or csv", c.task)
	}
	ntasks := map[string]int{"synthetic": 3, "multimnist": 2, "csv": len(c.targets)}[c.task]
	method, err := weighting.Parse(c.weighting, ntasks)
	if err != nil {
		return nil, bad("--weighting %s", strings.TrimPrefix(err.Error(), "weighting: "))
	}
	name := method.Name()
	if !slices.Contains(mtlArchs, c.arch) {
		return nil, bad("--arch %q: want %s", c.arch, strings.Join(mtlArchs, ", "))
	}
	if c.repGrad && c.arch != "hps" {
		return nil, bad("--rep-grad takes the gradients of the shared trunk's output: --arch hps only")
	}
	if c.repGrad && method.Needs() != weighting.SharedGrads {
		return nil, bad("--rep-grad is for the methods that combine the tasks' gradients, not %s, which weighs their losses", name)
	}
	if c.repGrad && (name == "dbmtl" || name == "moco") {
		return nil, bad("--rep-grad with --weighting %s: its averages of the gradients need gradients of one size, and a representation's grows with the minibatch", name)
	}
	if err := checkInts(intFlag{"steps", c.steps, 1, maxSteps}, intFlag{"batch", c.batch, 1, maxRows},
		intFlag{"experts", c.experts, 1, maxExperts}, intFlag{"task-experts", c.taskExp, 1, maxExperts}, intFlag{"levels", c.levels, 1, 16},
		intFlag{"k", c.k, 1, maxExperts}, intFlag{"train-rows", c.trainRows, 0, maxRows},
		intFlag{"test-rows", c.testRows, 0, maxRows}); err != nil {
		return nil, bad("%v", err)
	}
	if math.IsNaN(c.lr) || math.IsInf(c.lr, 0) || c.lr <= 0 {
		return nil, bad("--lr %v: must be a positive finite number", c.lr)
	}
	if !(c.testFrac > 0 && c.testFrac < 1) {
		return nil, bad("--test-frac %v: must lie strictly between 0 and 1", c.testFrac)
	}
	if c.arch != "hps" && len(c.hidden) == 0 {
		return nil, bad("--hidden: %s needs at least one layer", c.arch)
	}
	if c.arch == "dselect-k" && (c.experts < 2 || c.k > c.experts) {
		return nil, bad("--arch dselect-k: --experts %d and --k %d: want at least 2 experts and k at most --experts", c.experts, c.k)
	}
	return c, nil
}

// maxClasses and maxExperts bound what a command line can ask for, so
// that a typo is an error rather than an out-of-memory crash.
const (
	maxClasses = 1 << 16
	maxExperts = 1024
)

// Bounds of the numeric flags. They are far beyond what papers use; what
// fits in memory within them is for the memory estimate to say.
const (
	maxSteps    = 1_000_000_000 // training iterations or steps
	maxExamples = 100_000       // shots, query examples, per task or class
	maxTasks    = 10_000        // tasks per meta-batch
	maxEvalSets = 100_000       // test tasks of an evaluation
	maxInner    = 1_000         // inner steps: each adds its nodes to the graph
	maxRows     = 10_000_000    // rows of a minibatch or a generated table

	maxSyntheticClasses = 1024 // tasks.Classification's bound
)

// intFlag is an integer flag's value and the range it must lie in.
type intFlag struct {
	name     string
	v        int
	min, max int
}

// checkInts returns an error naming the first flag out of its range.
func checkInts(flags ...intFlag) error {
	for _, f := range flags {
		if f.v < f.min {
			return fmt.Errorf("--%s %d: must be at least %d", f.name, f.v, f.min)
		}
		if f.v > f.max {
			return fmt.Errorf("--%s %d: must be at most %d", f.name, f.v, f.max)
		}
	}
	return nil
}

// tables is the data set of c.
func (c *mtlConfig) tables() tasks.TableBenchmark {
	b := tasks.TableBenchmark{Name: c.task, TrainRows: c.trainRows, TestRows: c.testRows, Data: c.data,
		CSV: c.csv, CSVOptions: tasks.CSVOptions{Targets: c.targets}, TestFrac: c.testFrac, Seed: c.seed}
	if c.dtype == tensor.Float32 {
		b.CSVOptions.MaxAbs = math.MaxFloat32 // larger values would be infinite in training
	}
	return b
}

// trainMTL is "medusa mtl".
func trainMTL(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ckpt, err := loadResume(flagArg(args, "resume"), "mtl")
	if err != nil {
		return err
	}
	c, err := parseMTL(args, stderr)
	if err != nil || c == nil {
		return err
	}
	if ckpt != nil {
		if c, err = resumeConfig(c, c.given, c.resume, "mtl", ckpt, args, stderr, parseMTL); err != nil || c == nil {
			return err
		}
	}
	dev, release, err := begin(c.out, c.log, c.device, stderr, fileFlag{"csv", c.csv}, fileFlag{"resume", c.resume})
	if err != nil {
		return err
	}
	defer release()
	rng := rand.New(rand.NewPCG(c.seed, 0x6d656475))
	mem := learners.NewBudget(c.maxMemory)
	n, err := c.tables().GeneratedBytes()
	if err != nil {
		return err
	}
	mem.Add("data", n)
	if err := mem.Check(); err != nil {
		return err
	}
	train, test, floors, err := c.tables().Load(rng)
	if err != nil {
		return err
	}
	mem = learners.NewBudget(c.maxMemory)
	model, heads := c.model(train.In, train.Targets)
	mem.Add("model", learners.ModelBytes(model.(paramCounter).ParamCount(), int(c.dtype.Size())))
	if err := mem.Check(); err != nil {
		return err
	}
	params, err := model.Init(rng, c.dtype)
	if err != nil {
		return err
	}
	method, err := weighting.Parse(c.weighting, len(heads))
	if err != nil {
		return err
	}
	epochSteps := (train.N + c.batch - 1) / c.batch
	switch m := method.(type) { // the methods that count in epochs
	case *weighting.DWA:
		m.EpochSteps = epochSteps
	case *weighting.STCH:
		m.EpochSteps = epochSteps
	}
	wsrc := rand.NewPCG(c.seed, 0x77656967)
	m := &learners.MTL{Model: model, Params: params, Targets: train.Targets, Weighting: method, RepGrad: c.repGrad,
		Optimizer: &learners.Adam{LR: c.lr}, Rand: rand.New(wsrc), Device: dev}
	defer m.Close()
	if err := mem.PlanMTL(m, train, test, c.batch); err != nil {
		return err
	}
	lift, err := enforce(mem, stderr)
	if err != nil {
		return err
	}
	defer lift()
	streams := []learners.Stream{{Name: "weighting", Src: wsrc}}
	if ckpt != nil {
		if err := learners.Resume(ckpt, params, m, streams); err != nil {
			return fmt.Errorf("--resume %s: %v", c.resume, err)
		}
		if m.Steps() >= c.steps {
			return fmt.Errorf("--resume %s: the run has done %d steps already; give a larger --steps", c.resume, m.Steps())
		}
	}
	names := make([]string, len(heads))
	for i, h := range heads {
		names[i] = h.Name
	}
	verb := "mtl"
	if ckpt != nil {
		verb = fmt.Sprintf("resuming mtl at step %d", m.Steps()+1)
	}
	fmt.Fprintf(stdout, "%s on %s (%d train rows, %d held out, %d features; tasks %s): %s, %s %d-%s, %d steps of %d rows, Adam %g, %v, seed %d\n",
		verb, c.task, train.N, test.N, train.In, strings.Join(names, ", "), c.weighting, c.arch, train.In, joinInts(c.hidden),
		c.steps, min(c.batch, train.N), c.lr, c.dtype, c.seed) // a batch holds at most every row

	meta := map[string]string{
		"learner": "mtl", "task": c.task, "weighting": c.weighting, "arch": c.arch, "hidden": joinInts(c.hidden),
		"activation": c.activation.String(), "tasks": strings.Join(names, ","), "seed": fmt.Sprint(c.seed),
	}
	// What predict needs to rebuild the network without the data.
	for key, v := range map[string]any{tablesKey: tableLayout{Features: train.FeatureNames(), Targets: train.Targets}} {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		meta[key] = string(b)
	}
	// Epoch e's row order depends on the seed and e alone, so a resumed
	// run takes the same minibatches as an uninterrupted one.
	batches, err := learners.EpochBatches(train, c.batch, c.seed^0x62617463)
	if err != nil {
		return err
	}
	run := learners.Run[*tasks.Table, learners.MTLStats]{Steps: c.steps, Batch: batches, Streams: streams, Every: c.every}
	err = trainLoop(ctx, m, run, loop[learners.MTLStats]{unit: "step", out: c.out, log: c.log, logEvery: c.logEvery,
		resumed: ckpt != nil, lr: c.lr, hint: "try a smaller --lr", dev: dev, params: params, meta: meta, flags: c.flags,
		values: func(st learners.MTLStats) (losses, weights []monitor.Value) {
			for i, n := range names {
				losses = append(losses, monitor.Value{Name: n, Value: st.Losses[i]})
				weights = append(weights, monitor.Value{Name: n, Value: st.Weights[i]})
			}
			return losses, weights
		},
		detail: func(losses, weights []monitor.Value) string {
			parts := make([]string, len(losses))
			for i := range losses {
				parts[i] = fmt.Sprintf("%s %.4f (w %.3g)", losses[i].Name, losses[i].Value, weights[i].Value)
			}
			return strings.Join(parts, "  ")
		},
	}, stdout, stderr)
	if err != nil {
		return err
	}
	res, err := printMetrics(ctx, m, test, floors, stdout)
	if err != nil || c.baseline == "" {
		return err
	}
	b := learners.Baseline{Steps: c.steps, Batch: c.batch, LR: c.lr, Seed: c.seed, Dtype: c.dtype, Device: dev,
		Model: func(tg tasks.Target) learners.MultiTaskModel { m, _ := c.model(train.In, []tasks.Target{tg}); return m }}
	single, err := b.Run(ctx, train, test)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "single-task baselines (the same network with one head, %d steps each):\n", c.steps)
	printRows(single, nil, stdout)
	dm, err := learners.DeltaM(res, single)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Δm %+.2f%% (the multi-task model's metrics against the baselines'; higher is better)\n", dm)
	return nil
}

// mtlArchs are the architectures of medusa mtl.
var mtlArchs = []string{"hps", "mmoe", "cgc", "ple", "cross-stitch", "dselect-k"}

// model returns the network of c for in features and targets, and its
// heads.
func (c *mtlConfig) model(in int, targets []tasks.Target) (learners.MultiTaskModel, []nets.Head) {
	heads := make([]nets.Head, len(targets))
	for i, tg := range targets {
		heads[i] = nets.Head{Name: tg.Name, Out: tg.Outputs()}
	}
	switch c.arch {
	case "mmoe":
		return nets.MMoE{In: in, Experts: c.experts, ExpertHidden: c.hidden, Activation: c.activation, Heads: heads}, heads
	case "cgc", "ple":
		levels := map[bool]int{true: 1, false: c.levels}[c.arch == "cgc"]
		return nets.PLE{In: in, Levels: levels, SharedExperts: c.experts, TaskExperts: c.taskExp, ExpertHidden: c.hidden, Activation: c.activation, Heads: heads}, heads
	case "cross-stitch":
		return nets.CrossStitch{In: in, Hidden: c.hidden, Activation: c.activation, Heads: heads}, heads
	case "dselect-k":
		return nets.DSelectK{In: in, Experts: c.experts, ExpertHidden: c.hidden, Activation: c.activation, K: c.k, Heads: heads}, heads
	}
	return nets.MultiTask{Trunk: nets.Trunk{In: in, Hidden: c.hidden, Activation: c.activation}, Heads: heads}, heads
}

// printMetrics evaluates m on test and prints each task's metrics, beside
// its noise floor when floors is not nil.
func printMetrics(ctx context.Context, m *learners.MTL, test *tasks.Table, floors []float64, stdout io.Writer) ([]learners.Metrics, error) {
	res, err := m.Evaluate(ctx, test)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "held-out metrics (%d rows):\n", test.N)
	printRows(res, floors, stdout)
	return res, nil
}

// printRows prints a table of each task's metrics, "-" where a metric does
// not apply, with its noise floor when floors is not nil.
func printRows(res []learners.Metrics, floors []float64, stdout io.Writer) {
	fmt.Fprintf(stdout, "  %-12s %-10s %10s %10s %10s %10s\n", "task", "kind", "loss", "MSE", "accuracy", "F1")
	for i, r := range res {
		num := func(v float64) string { // "-" where a metric is undefined: no labelled rows
			if math.IsNaN(v) {
				return "-"
			}
			return fmt.Sprintf("%.4f", v)
		}
		mse, acc, f1 := "-", "-", "-"
		if r.Kind == tasks.Regression {
			mse = num(r.MSE)
		} else {
			acc, f1 = num(r.Accuracy), num(r.F1)
		}
		line := fmt.Sprintf("  %-12s %-10s %10s %10s %10s %10s", r.Name, r.Kind, num(r.Loss), mse, acc, f1)
		if floors != nil {
			line += fmt.Sprintf("   (noise floor: %s %.4f)", map[bool]string{true: "MSE", false: "best accuracy"}[r.Kind == tasks.Regression], floors[i])
		}
		fmt.Fprintln(stdout, line)
	}
}
