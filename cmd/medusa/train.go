package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners"
	"github.com/medusa-ml/medusa/learners/monitor"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/spf13/pflag"
)

// trainConfig is what "medusa train" runs. Numeric settings left at 0 on
// the command line are resolved to the learner's and task's defaults by
// resolve.
type trainConfig struct {
	runFlags
	learner        string
	task           string
	iters          int
	metaBatch      int
	ways           int
	shots          int
	query          int
	innerSteps     int
	innerLR        float64
	metaLR         float64
	filters        int
	blocks         int
	anneal         int // Reptile's annealing horizon
	data           string
	evalTasks      int
	evalSteps      int
	evalQuery      int
	evalBatch      int // test tasks adapted at once (budgetMeta sets it)
	valEvery       int
	valTasks       int
	backbone       string // convnet or resnet12, for images
	imageSize      int    // --image-size, for folders
	augment        bool
	stepRates      bool // MAML++'s options
	stepNorm       bool
	multiStep      int
	firstOrderFor  int
	gradCheckpoint bool         // --grad-checkpoint
	dataSeed       uint64       // seeds generated data (DoubleMNIST's images): the run's seed, kept by eval --seed
	dev            graph.Device // the device opened for it; nil: the CPU

	flags map[string]string // every flag's value, recorded in checkpoints
	given []string          // the flags set on the command line
}

// The meta-learners and task distributions "medusa train" knows.
var (
	metaLearners = []string{"maml", "mamlpp", "fomaml", "anil", "metasgd", "reptile", "protonet", "r2d2"}
	metaTasks    = tasks.BenchmarkNames
)

// images reports whether the task is N-way K-shot image classification.
func (c *trainConfig) images() bool { return c.benchmark().Images() }

// classify reports whether the task is a classification.
func (c *trainConfig) classify() bool { return c.task != "sinusoid" }

// valMetric shows a validation score (higher is better) as what it is.
func (c *trainConfig) valMetric(score float64) monitor.Value {
	if c.classify() {
		return monitor.Value{Name: "val accuracy", Value: score}
	}
	return monitor.Value{Name: "val MSE", Value: -score}
}

// metric reports whether the learner classifies by embeddings, with no
// inner loop: protonet, r2d2.
func (c *trainConfig) metric() bool { return c.learner == "protonet" || c.learner == "r2d2" }

// resolve replaces the settings left at 0 by the defaults of the learner
// and the task: the MAML paper's for sinusoids and Omniglot-style images
// (inner step 0.4, one step, Adam 10⁻³), Reptile's paper's for Reptile
// (inner Adam 10⁻³, 5 steps, outer step 1 annealed to 0, 50 steps at test).
func (c *trainConfig) resolve() {
	b := c.benchmark().WithDefaults()
	c.ways, c.shots, c.query, c.evalQuery = b.Ways, b.Shots, b.Query, b.TestQuery
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	deff := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	batch, lr := 4, 0.4 // images
	switch {
	case c.learner == "reptile" && c.images():
		lr = 0.001 // Adam's step, not SGD's
	case c.task == "sinusoid":
		batch, lr = 25, 0.01
	case c.task == "classification":
		batch, lr = 25, 0.1
	}
	def(&c.metaBatch, batch)
	deff(&c.innerLR, lr)
	if c.learner == "reptile" {
		def(&c.innerSteps, 5)
		def(&c.evalSteps, 50)
		deff(&c.metaLR, 1)
	}
	def(&c.innerSteps, 1)
	if !c.metric() { // a metric learner adapts nothing: one row of figures unless asked
		def(&c.evalSteps, 10)
	}
	deff(&c.metaLR, 1e-3)
	def(&c.filters, 64)
	def(&c.blocks, 4)
	if c.learner == "mamlpp" { // MAML++: every option, the annealings over the first tenth of the run
		c.stepRates, c.stepNorm = true, c.images()
		def(&c.multiStep, max(c.iters/10, 1))
		def(&c.firstOrderFor, max(c.iters/10, 1))
		// Recorded as set, so that a resumed run with a larger --iters keeps them.
		c.flags["multi-step"], c.flags["first-order-for"] = strconv.Itoa(c.multiStep), strconv.Itoa(c.firstOrderFor)
	}
}

// plusPlus reports whether c sets any of MAML++'s options.
func (c *trainConfig) plusPlus() bool {
	return c.stepRates || c.stepNorm || c.multiStep > 0 || c.firstOrderFor > 0
}

func parseTrain(args []string, stderr io.Writer) (*trainConfig, error) {
	fs := newFlags("medusa train")
	learner := fs.String("learner", "maml", "maml (exact second order), mamlpp (MAML++: maml with --step-rates, --step-norm, --multi-step and --first-order-for), fomaml (first order), anil (inner loop adapts the head only), metasgd (learned per-parameter inner rates), reptile, protonet (prototypical networks) or r2d2 (a ridge-regression head); the last two for classification, with no inner loop")
	task := fs.String("task", "sinusoid", "task distribution: sinusoid (Finn et al. 2017), classification (synthetic, make_classification-style), mnist (digits 0-4 train, 5-9 test), doublemnist (100 two-digit classes, 64/16/20 split), omniglot (--data DIR: alphabet/character/*.png), folder (--data DIR: miniImageNet's images/ and train/val/test.csv, train/val/test class folders, or class folders)")
	backbone := fs.String("backbone", "convnet", "network for image tasks: convnet (4 blocks of --filters) or resnet12 (widths --filters × 1, 2.5, 5, 10)")
	imageSize := fs.Int("image-size", 0, "folder: side the images are resized to (0: 84)")
	augment := fs.Bool("augment", false, "folder: augment the meta-training images (random crop with padding, flip, colour jitter 0.4)")
	stepRates := fs.Bool("step-rates", false, "maml: learn the inner step size of each parameter tensor at each inner step (MAML++)")
	stepNorm := fs.Bool("step-norm", false, "maml on images: batch normalisation weights of their own for each inner step, not adapted (MAML++)")
	multiStep := fs.Int("multi-step", 0, "maml: over the first N iterations meta-train on the query losses after every inner step, annealed to the last's (MAML++; mamlpp: a tenth of --iters)")
	firstOrderFor := fs.Int("first-order-for", 0, "maml: take the first N iterations first-order, then second order (MAML++; mamlpp: a tenth of --iters)")
	iters := fs.Int("iters", 10000, "meta-iterations (outer updates); the MAML paper uses 70000 for sinusoids")
	metaBatch := fs.Int("meta-batch", 0, "tasks per meta-iteration (0: 25, or 4 for image tasks)")
	ways := fs.Int("ways", 0, "N: classes per task (0: 2 for classification, 5 for images)")
	shots := fs.Int("shots", 0, "K: support examples per task (sinusoid, default 10) or per class (classification 5, images 1)")
	query := fs.Int("query", 0, "query examples per task (sinusoid: K) or per class (15) in training")
	innerSteps := fs.Int("inner-steps", 0, "inner gradient steps during meta-training (0: 1, Reptile 5)")
	innerLR := fs.Float64("inner-lr", 0, "inner (adaptation) step size (0: 0.01 sinusoid, 0.1 classification, 0.4 images; Reptile on images: Adam 0.001)")
	gradCheckpoint := fs.Bool("grad-checkpoint", false, "maml, anil, metasgd: keep only the parameters after each inner step and recompute the rest in the meta-gradient (memory that does not grow with --inner-steps, for more compute)")
	metaLR := fs.Float64("meta-lr", 0, "outer learning rate (0: Adam 0.001; Reptile: outer step 1, annealed linearly to 0)")
	filters := fs.Int("filters", 0, "filters of each ConvNet block for image tasks (0: 64)")
	anneal := fs.Int("anneal-steps", 0, "Reptile: iterations over which the outer step falls linearly to 0 (0: 100000, as in the paper)")
	blocks := fs.Int("blocks", 0, "ConvNet blocks (0: 4)")
	data := fs.String("data", "", "data directory: MNIST IDX files (mnist, doublemnist; default the GoMNIST module's copy) or Omniglot roots, comma-separated (omniglot)")
	var run runFlags
	run.add(fs, "iterations", "iters", "40,40", "hidden layer widths of the MLP (sinusoid, classification), comma-separated (empty for a linear model)")
	evalTasks := fs.Int("eval-tasks", 600, "fresh test tasks (episodes of the test classes) for the final evaluation (0 to skip)")
	evalSteps := fs.Int("eval-steps", 0, "most inner steps in the final evaluation, reported with 0 and 1 (0: 10, Reptile 50)")
	evalQuery := fs.Int("eval-query", 0, "query examples per test task (sinusoid, default 100) or per class (15)")
	valEvery := fs.Int("val-every", 0, "validate every N iterations (and after the last) on episodes of the validation classes (doublemnist; fresh tasks for sinusoid and classification), keep the best parameters in --out's .best sibling and test those (0: off)")
	valTasks := fs.Int("val-tasks", 100, "validation tasks, the same at every validation, scored after --eval-steps inner steps")
	bad, ok, err := parseFlags(fs, args, stderr, `Usage: medusa train [flags]

Meta-trains a network on a task distribution, prints progress, then
adapts to fresh test tasks (of classes never seen in training) and reports
the query error, or accuracy, after 0, 1 and --eval-steps inner steps
(mean and 95% interval). Numeric flags left at 0 take the defaults of the
learner and task, given in brackets.

Flags:
`)
	if !ok {
		return nil, err
	}
	c := &trainConfig{runFlags: run, learner: *learner, task: *task, iters: *iters, metaBatch: *metaBatch, ways: *ways, shots: *shots,
		query: *query, innerSteps: *innerSteps, innerLR: *innerLR, metaLR: *metaLR, filters: *filters, blocks: *blocks, anneal: *anneal,
		data: *data, evalTasks: *evalTasks, evalSteps: *evalSteps, evalQuery: *evalQuery, valEvery: *valEvery, valTasks: *valTasks,
		backbone: *backbone, imageSize: *imageSize, augment: *augment, stepRates: *stepRates, stepNorm: *stepNorm, multiStep: *multiStep, firstOrderFor: *firstOrderFor,
		gradCheckpoint: *gradCheckpoint, flags: flagValues(fs)}
	if err := c.check(); err != nil {
		return nil, bad("%v", err)
	}
	c.dataSeed = c.seed
	fs.Visit(func(f *pflag.Flag) { c.given = append(c.given, f.Name) })
	if !slices.Contains(metaLearners, c.learner) {
		if c.learner == "mtl" {
			return nil, bad("--learner mtl: multi-task learning is a command of its own: medusa mtl (see medusa mtl --help)")
		}
		return nil, bad("--learner %q: want %s", c.learner, strings.Join(metaLearners, ", "))
	}
	if !slices.Contains(metaTasks, c.task) {
		return nil, bad("--task %q: want %s", c.task, strings.Join(metaTasks, ", "))
	}
	if c.metric() && !c.classify() {
		return nil, bad("--learner %s is for classification tasks, not %s", c.learner, c.task)
	}
	if c.metric() && (c.innerSteps != 0 || c.innerLR != 0) { // before the defaults
		return nil, bad("--inner-steps and --inner-lr are for learners with an inner loop, not %s", c.learner)
	}
	if c.gradCheckpoint && (c.learner == "fomaml" || c.learner == "reptile" || c.learner == "mamlpp" || c.metric() || c.plusPlus()) {
		return nil, bad("--grad-checkpoint applies to second-order learners (maml, anil, metasgd) without MAML++'s options, not %s", c.learner)
	}
	if c.plusPlus() && c.learner != "maml" && c.learner != "mamlpp" {
		return nil, bad("--step-rates, --step-norm, --multi-step and --first-order-for are options of --learner maml (--learner mamlpp sets them all)")
	}
	if c.stepNorm && !c.images() {
		return nil, bad("--step-norm is for image tasks, whose networks normalise")
	}
	if c.backbone != "convnet" && c.backbone != "resnet12" {
		return nil, bad("--backbone %q: want convnet or resnet12", c.backbone)
	}
	if (c.imageSize != 0 || c.augment) && c.task != "folder" {
		return nil, bad("--image-size and --augment are for --task folder")
	}
	if c.task == "omniglot" && c.data == "" {
		return nil, bad("--task omniglot needs --data: the directory holding the alphabets (images_background, images_evaluation)")
	}
	if c.task == "folder" && c.data == "" {
		return nil, bad("--task folder needs --data: the dataset's directory")
	}
	if c.task == "sinusoid" && c.ways != 0 {
		return nil, bad("--ways is for classification tasks")
	}
	if err := checkInts(intFlag{"iters", c.iters, 1, maxSteps}, intFlag{"meta-batch", c.metaBatch, 0, maxTasks},
		intFlag{"ways", c.ways, 0, maxClasses}, intFlag{"shots", c.shots, 0, maxExamples}, intFlag{"query", c.query, 0, maxExamples},
		intFlag{"inner-steps", c.innerSteps, 0, maxInner}, intFlag{"filters", c.filters, 0, maxWidth}, intFlag{"blocks", c.blocks, 0, 8},
		intFlag{"anneal-steps", c.anneal, 0, maxSteps}, intFlag{"eval-tasks", c.evalTasks, 0, maxEvalSets},
		intFlag{"eval-steps", c.evalSteps, 0, maxInner}, intFlag{"eval-query", c.evalQuery, 0, maxExamples},
		intFlag{"val-every", c.valEvery, 0, maxSteps}, intFlag{"val-tasks", c.valTasks, 1, maxEvalSets}, intFlag{"image-size", c.imageSize, 0, 1024},
		intFlag{"multi-step", c.multiStep, 0, maxSteps}, intFlag{"first-order-for", c.firstOrderFor, 0, maxSteps}); err != nil {
		return nil, bad("%v", err)
	}
	if c.ways == 1 && c.classify() {
		return nil, bad("--ways 1: a classification task needs at least 2 classes")
	}
	if c.task == "classification" && c.ways > maxSyntheticClasses {
		return nil, bad("--ways %d: synthetic classification takes at most %d classes", c.ways, maxSyntheticClasses)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"inner-lr", c.innerLR}, {"meta-lr", c.metaLR}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return nil, bad("--%s %v: must be a positive finite number (or 0 for the default)", f.name, f.v)
		}
	}
	c.resolve()
	return c, nil
}

// checkOutputs checks each pair of flag name and path, the empty paths
// skipped, with graph.CheckWritable.
func checkOutputs(flagPaths ...string) error {
	for i := 0; i+1 < len(flagPaths); i += 2 {
		if p := flagPaths[i+1]; p != "" {
			if err := graph.CheckWritable(p); err != nil {
				return fmt.Errorf("--%s %q: %v", flagPaths[i], p, err)
			}
		}
	}
	return nil
}

// fileFlag is a flag that names a file.
type fileFlag struct{ name, path string }

// checkClobber returns an error when an output flag names the file of an
// input flag or of another output: writing it would destroy the table,
// checkpoint or log there, or what the other output wrote. Empty paths
// are skipped.
func checkClobber(outputs, inputs []fileFlag) error {
	for i, o := range outputs {
		if o.path == "" {
			continue
		}
		for _, in := range inputs {
			if in.path != "" && sameFile(o.path, in.path) {
				return fmt.Errorf("--%s %q is the file --%s reads: writing it would destroy it", o.name, o.path, in.name)
			}
		}
		for _, p := range outputs[:i] {
			if p.path != "" && sameFile(o.path, p.path) {
				return fmt.Errorf("--%s %q and --%s %q name the same file", p.name, p.path, o.name, o.path)
			}
		}
	}
	return nil
}

// sameFile reports whether a and b name one file: the same absolute
// path, or two names (links) of one existing file.
func sameFile(a, b string) bool {
	x, errA := filepath.Abs(a)
	y, errB := filepath.Abs(b)
	if errA == nil && errB == nil && x == y {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// maxWidth bounds a layer's width on the command line.
const maxWidth = 1 << 16

func parseWidths(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", f)
		}
		if n <= 0 || n > maxWidth {
			return nil, fmt.Errorf("width %d must be between 1 and %d", n, maxWidth)
		}
		out = append(out, n)
	}
	return out, nil
}

func train(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// The checkpoint first: one of medusa mtl's is sent there, whatever
	// the other flags.
	ckpt, err := loadResume(flagArg(args, "resume"), "train")
	if err != nil {
		return err
	}
	c, err := parseTrain(args, stderr)
	if err != nil || c == nil {
		return err
	}
	if ckpt != nil {
		if c, err = resumeConfig(c, c.given, c.resume, c.learner, ckpt, args, stderr, parseTrain); err != nil || c == nil {
			return err
		}
	}
	dev, release, err := begin(c.out, c.log, c.device, stderr, fileFlag{"resume", c.resume})
	if err != nil {
		return err
	}
	defer release()
	c.dev = dev
	r, err := newMetaRun(c, ckpt, "--resume "+c.resume, true, stderr)
	if err != nil {
		return err
	}
	defer r.m.Close()
	defer r.lift()
	data, model, params, m, rng, streams := r.src, r.model, r.params, r.m, r.rng, r.streams
	if m.Steps() >= c.iters {
		return fmt.Errorf("--resume %s: the run has done %d iterations already; give a larger --iters", c.resume, m.Steps())
	}
	verb := "meta-training"
	if ckpt != nil {
		verb = fmt.Sprintf("resuming at iteration %d of", m.Steps()+1)
	}
	outer := fmt.Sprintf("Adam %g", c.metaLR)
	if c.learner == "reptile" {
		outer = fmt.Sprintf("outer step %g annealed to 0", c.metaLR)
	}
	inner := cmp.Or(map[string]string{"protonet": "support prototypes", "r2d2": "a ridge-regression head"}[c.learner], fmt.Sprintf("%d inner step(s) of %g", c.innerSteps, c.innerLR))
	if c.stepRates || c.learner == "metasgd" {
		inner = fmt.Sprintf("%d inner step(s) of learned sizes from %g", c.innerSteps, c.innerLR)
	}
	fmt.Fprintf(stdout, "%s %s on %s (%s): %d iterations, meta-batch %d, %s, %s, %s, %s, %v, seed %d\n",
		verb, c.learner, c.task, data.About, c.iters, c.metaBatch, evalShape(c), inner, outer, model, c.dtype, c.seed)
	meta := map[string]string{
		"learner": c.learner, "task": c.task, "hidden": joinInts(c.hidden), "activation": c.activation.String(),
		"inner_lr": fmt.Sprint(c.innerLR), "inner_steps": fmt.Sprint(c.innerSteps), "seed": fmt.Sprint(c.seed),
		"model": fmt.Sprint(model),
	}
	if c.classify() {
		meta["ways"], meta["shots"] = fmt.Sprint(c.ways), fmt.Sprint(c.shots)
	}
	if c.task == "omniglot" {
		meta["omniglot_split"] = "seeded" // earlier runs took the first 1,200 characters
	}
	lossName := "MSE"
	if c.classify() {
		lossName = "cross-entropy"
	}
	run := learners.Run[*tasks.Batch, learners.Stats]{
		Steps:   c.iters,
		Batch:   func(int) (*tasks.Batch, error) { return data.Train(rng, c.metaBatch) },
		Streams: streams,
		Every:   c.every,
	}
	if c.valEvery > 0 {
		if run.Select, err = newSelection(ctx, c, m, data, params); err != nil {
			return err
		}
		if ckpt != nil {
			if err := run.Select.LoadBest(ckpt, c.resume); errors.Is(err, learners.ErrBestLost) {
				fmt.Fprintf(stderr, "medusa: %v; validation starts afresh\n", err)
			} else if err != nil {
				return err
			}
		}
	}
	err = trainLoop(ctx, m, run, loop[learners.Stats]{unit: "iteration", out: c.out, log: c.log, logEvery: c.logEvery,
		resumed: ckpt != nil, lr: c.metaLR, hint: "try a smaller --inner-lr or --meta-lr", dev: c.dev, params: params, meta: meta, flags: c.flags,
		values: func(st learners.Stats) ([]monitor.Value, []monitor.Value) {
			return []monitor.Value{{Name: "pre", Value: st.PreLoss}, {Name: "post", Value: st.PostLoss}}, nil
		},
		detail: func(l, _ []monitor.Value) string {
			pre := fmt.Sprintf("%.4f", l[0].Value)
			if math.IsNaN(l[0].Value) { // not measured since the last line (a short interval: after a resume or a validation)
				pre = "-"
			}
			return fmt.Sprintf("query %s pre %s post %.4f", lossName, pre, l[1].Value)
		},
		valMetric: c.valMetric,
	}, stdout, stderr)
	if err != nil {
		return err
	}
	if sel := run.Select; sel != nil {
		if err := sel.Restore(m); err != nil {
			return err
		}
		v := c.valMetric(sel.BestScore)
		fmt.Fprintf(stdout, "testing the parameters of iteration %d, the best on %d validation tasks (%s %.4f)\n", sel.BestStep, c.valTasks, v.Name, v.Value)
	}
	if c.evalTasks == 0 {
		return nil
	}
	_, _, err = evaluateMeta(ctx, m, data, c, false, stdout)
	return err
}

// resumeConfig returns the configuration of a resumed run: the settings
// recorded in the checkpoint at path, overridden by the few flags a
// resumed run may change (c holds the command line's, given the flags it
// sets, learner its learner). --out defaults to the checkpoint itself.
func resumeConfig[C any](c C, given []string, path, learner string, ckpt *graph.Checkpoint, args []string, stderr io.Writer, parse func([]string, io.Writer) (C, error)) (C, error) {
	var zero C
	for _, name := range given {
		if !slices.Contains(resumeFlags, name) && name != "learner" {
			may := map[bool]string{false: "--iters, --out, --checkpoint-every, --log, --log-every, --device, --max-memory and the --eval flags",
				true: "--steps, --out, --checkpoint-every, --log, --log-every, --device and --max-memory"}[learner == "mtl"]
			fmt.Fprintf(stderr, "medusa: --%s: a resumed run keeps the settings it was started with; only %s may be given\n", name, may)
			return zero, &usageError{"--" + name + " on resume"}
		}
	}
	stored, settings, err := storedArgs(ckpt, path)
	if err != nil {
		return zero, fmt.Errorf("--resume: %v", err)
	}
	// The recorded settings alone refused mean a damaged or hand-edited
	// checkpoint, not a bad command line.
	if _, err := parse(settings, io.Discard); err != nil {
		return zero, fmt.Errorf("--resume %s: the settings it records are refused: %v", path, err)
	}
	if slices.Contains(given, "learner") {
		if was, now := ckpt.Meta["learner"], learner; was != now {
			fmt.Fprintf(stderr, "medusa: --learner %s: the checkpoint was trained with --learner %s, which a resumed run keeps\n", now, was)
			return zero, &usageError{"--learner on resume"}
		}
	}
	merged := append(stored, args...)
	if !slices.Contains(given, "out") {
		merged = append(merged, "--out="+path)
	}
	return parse(merged, stderr)
}

// begin starts a training run: it checks that its outputs destroy none of
// its inputs (--out may be the checkpoint --resume continues), locks them,
// says which BLAS the matrix products use and opens its device (nil: the
// CPU). The returned function releases them.
func begin(out, log, device string, stderr io.Writer, inputs ...fileFlag) (graph.Device, func(), error) {
	var data []fileFlag // the inputs but the checkpoint resumed
	for _, in := range inputs {
		if in.name != "resume" {
			data = append(data, in)
		}
	}
	if err := checkClobber([]fileFlag{{"out", out}}, data); err != nil {
		return nil, nil, err
	}
	if err := checkClobber([]fileFlag{{"log", log}}, inputs); err != nil {
		return nil, nil, err
	}
	unlock, err := graph.LockFiles(out, log)
	if err != nil {
		return nil, nil, err
	}
	blas, err := graph.BLAS() // fails if the BLAS that MEDUSA_BLAS asks for cannot be loaded
	if err != nil {
		unlock()
		return nil, nil, err
	}
	fmt.Fprintf(stderr, "matrix products: %s\n", blas)
	dev, release, err := openDevice(device, stderr)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return dev, func() { release(); unlock() }, nil
}

func joinInts(x []int) string {
	return strings.ReplaceAll(strings.Trim(fmt.Sprint(x), "[]"), " ", "-")
}
