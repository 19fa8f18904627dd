package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners"
	"github.com/medusa-ml/medusa/learners/monitor"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
)

// metaLearner is what every meta-learner of "medusa train" offers.
type metaLearner interface {
	Step(ctx context.Context, b *tasks.Batch) (learners.Stats, error)
	Steps() int
	Evaluate(b *tasks.Batch, steps int) ([][]float64, error)
	EvaluateClassifier(b *tasks.Batch, steps int) (learners.Evaluation, error)
	Placement() graph.Placement
	PrepareStep(s tasks.Shape) (int64, error)
	PrepareEvaluate(s tasks.Shape, steps int) (int64, error)
	Close() error
	graph.Stateful
}

// paramCounter is a network that says how many parameters it has.
type paramCounter interface{ ParamCount() int64 }

// metaRun is a meta-learning run built from a trainConfig.
type metaRun struct {
	src     *tasks.Source
	model   learners.Model
	params  *graph.Params
	m       metaLearner
	rng     *rand.Rand        // the tasks' stream, after the initialisation
	streams []learners.Stream // the tasks' and the learner's streams
	lift    func()            // lifts the memory limit
}

// newMetaRun loads c's tasks and builds its network and learner, restored
// from ck (named ckName in errors) when given (with the random streams when train is set: a
// resumed run), and compiles and budgets the graphs of training (when
// train is set) and of the evaluation. Close the learner and call lift
// when done.
func newMetaRun(c *trainConfig, ck *graph.Checkpoint, ckName string, train bool, stderr io.Writer) (*metaRun, error) {
	r := &metaRun{lift: func() {}}
	var err error
	if r.src, err = c.benchmark().Load(); err != nil {
		return nil, err
	}
	src, lsrc := rand.NewPCG(c.seed, 0x6d656475), rand.NewPCG(c.seed, 0x6c6561726e)
	r.rng, r.streams = rand.New(src), []learners.Stream{{Name: "tasks", Src: src}, {Name: "learner", Src: lsrc}}
	r.model = newModel(c, r.src)
	mem := learners.NewBudget(c.maxMemory)
	count := r.model.(paramCounter).ParamCount()
	if c.learner == "metasgd" {
		count *= 2 // a learned inner rate per parameter
	}
	mem.Add("model", learners.ModelBytes(count, int(c.dtype.Size())))
	if err := mem.Check(); err != nil {
		return nil, err
	}
	if r.params, err = r.model.Init(r.rng, c.dtype); err != nil {
		return nil, err
	}
	r.m = newLearner(c, r.model, r.params, rand.New(lsrc))
	if ck != nil && c.task == "omniglot" && ck.Meta["omniglot_split"] != "seeded" {
		r.m.Close()
		return nil, fmt.Errorf("%s: trained on the first 1,200 Omniglot characters, a split medusa no longer makes", ckName)
	}
	if ck != nil {
		streams := r.streams
		if !train {
			streams = nil // the parameters and the learner's state (Meta-SGD's rates) only
		}
		if err := learners.Resume(ck, r.params, r.m, streams); err != nil {
			r.m.Close()
			return nil, fmt.Errorf("%s: the checkpoint does not fit the run it records: %v", ckName, err)
		}
	}
	if err := budgetMeta(mem, r.m, c, r.src, train); err != nil {
		r.m.Close()
		return nil, err
	}
	if r.lift, err = enforce(mem, stderr); err != nil {
		r.m.Close()
		return nil, err
	}
	return r, nil
}

// budgetMeta adds to mem what meta-training and evaluating with m take:
// the training batch and the graph of a step, the test batches and the
// graph of their adaptation, and the evaluation's results, and sets
// c.evalBatch. The graphs are compiled now, before any batch is drawn.
func budgetMeta(mem *learners.Budget, m metaLearner, c *trainConfig, src *tasks.Source, train bool) error {
	shape := func(tasks_, query int) tasks.Shape {
		return tasks.Shape{Tasks: tasks_, Support: c.ways * c.shots, Query: c.ways * query, In: src.In, Out: src.Out}
	}
	if train {
		if err := mem.PlanStep(m, shape(c.metaBatch, c.query)); err != nil {
			return err
		}
	}
	if c.evalTasks == 0 && c.valEvery == 0 {
		return mem.Check()
	}
	if src.Pooled != nil { // the test batches are kept for the baseline
		mem.Add("evaluation", int64(c.evalTasks)*shape(1, c.evalQuery).Bytes())
	}
	// Learners that adapt images in their graph adapt fewer test tasks at
	// once when memory is short.
	batch, _ := evalChunk(c)
	n := c.evalTasks
	if c.valEvery > 0 {
		n = max(n, c.valTasks)
	}
	a := learners.Assessment{Tasks: n, Steps: c.evalSteps, Batch: batch}
	err := mem.PlanAssess(m, &a, shape(0, c.evalQuery), c.images() && c.learner != "reptile")
	c.evalBatch = a.Batch
	return err
}

// newSelection returns the validation of c's run: the mean score of m on
// c.valTasks tasks of src's validation split, the same tasks every time,
// after c.evalSteps inner steps.
func newSelection(ctx context.Context, c *trainConfig, m metaLearner, src *tasks.Source, params *graph.Params) (*learners.Selection, error) {
	if src.Val == nil {
		return nil, fmt.Errorf("--val-every: --task %s has no validation classes for these episodes (%s)", c.task, src.About)
	}
	chunk, draw := evalChunk(c)
	if c.evalBatch > 0 {
		chunk = c.evalBatch
	}
	return &learners.Selection{Every: c.valEvery, Params: params, Validate: func(int) (float64, error) {
		rng := rand.New(rand.NewPCG(c.seed, 0x76616c))
		return learners.Score(ctx, m, learners.Assessment{Tasks: c.valTasks, Steps: c.evalSteps, Classify: c.classify(),
			Draw: func(n int) (*tasks.Batch, error) { return src.Val(rng, n) }, DrawUnit: draw, Batch: chunk})
	}}, nil
}

// evalChunk is the most test tasks evaluateMeta adapts at once, and how
// many it draws at a time. Learners that adapt images in their graph drew
// two at a time when they adapted two at a time, and still do, so that
// their published figures reproduce.
func evalChunk(c *trainConfig) (adapt, draw int) {
	switch {
	case c.task == "sinusoid":
		return 100, 100
	case c.images() && c.learner != "reptile":
		return 25, 2
	}
	return 25, 25
}

// benchmark is the task distribution of c.
func (c *trainConfig) benchmark() tasks.Benchmark {
	b := tasks.Benchmark{Name: c.task, Ways: c.ways, Shots: c.shots, Query: c.query, TestQuery: c.evalQuery, Data: c.data, Seed: c.dataSeed, Side: c.imageSize}
	if c.augment { // as Lee et al. 2019 (8 pixels of padding for 84×84)
		b.Augment = tasks.Augment{Pad: max(cmp.Or(c.imageSize, 84)/10, 1), Flip: true, Jitter: 0.4}
	}
	return b
}

// newModel returns the network of c: a ConvNet or a ResNet-12 for
// images, an MLP otherwise. A ProtoNet's ends in an embedding as wide as
// its last layer (the filters or last width, the last hidden width)
// instead of one output per class.
func newModel(c *trainConfig, src *tasks.Source) learners.Model {
	out := src.Out
	if c.images() && c.backbone == "resnet12" {
		f := c.filters
		widths := [4]int{f, f * 5 / 2, f * 5, f * 10}
		if c.metric() {
			out = widths[3]
		}
		return nets.ResNet12{Side: src.Side, Channels: src.Channels, Widths: widths, Out: out}
	}
	if c.images() {
		if c.metric() {
			out = c.filters
		}
		return nets.ConvNet{Side: src.Side, Channels: src.Channels, Filters: c.filters, Blocks: c.blocks, Out: out}
	}
	if c.metric() {
		out = src.In
		if len(c.hidden) > 0 {
			out = c.hidden[len(c.hidden)-1]
		}
	}
	return nets.MLP{In: src.In, Out: out, Hidden: c.hidden, Activation: c.activation}
}

// newLearner returns the meta-learner of c over params.
func newLearner(c *trainConfig, model learners.Model, params *graph.Params, rng *rand.Rand) metaLearner {
	loss := learners.MSE
	if c.classify() {
		loss = learners.CrossEntropy
	}
	maml := learners.MAML{Model: model, Params: params, Loss: loss, InnerLR: c.innerLR, InnerSteps: c.innerSteps,
		FirstOrder: c.learner == "fomaml", GradCheckpoint: c.gradCheckpoint, Optimizer: &learners.Adam{LR: c.metaLR}, Device: c.dev,
		// The loss before adaptation, which only the progress line and the
		// log report, on a tenth of the steps of each of their intervals.
		PreLossEvery: max(1, monitor.Cadence(c.iters, c.logEvery)/10)}
	switch c.learner {
	case "anil":
		return &learners.ANIL{MAML: maml}
	case "metasgd":
		return &learners.MetaSGD{MAML: maml}
	case "protonet":
		return &learners.ProtoNet{Model: model, Params: params, Optimizer: &learners.Adam{LR: c.metaLR}, Device: c.dev}
	case "mamlpp", "maml":
		if c.plusPlus() {
			return &learners.MAMLPP{MAML: maml, StepRates: c.stepRates, PerStepNorm: c.stepNorm, MultiStep: c.multiStep, FirstOrderFor: c.firstOrderFor}
		}
	case "r2d2":
		return &learners.R2D2{ProtoNet: learners.ProtoNet{Model: model, Params: params, Optimizer: &learners.Adam{LR: c.metaLR}, Device: c.dev}}
	case "reptile":
		return &learners.Reptile{Model: model, Params: params, Loss: loss, InnerLR: c.innerLR, InnerSteps: c.innerSteps,
			InnerAdam: c.images(), OuterLR: c.metaLR, AnnealSteps: c.anneal, Rand: rng, Device: c.dev}
	}
	return &maml
}

// evaluateMeta adapts to c.evalTasks fresh test tasks and prints the query
// MSE, or accuracy (and, for synthetic classification, macro F1, with the
// pooled baseline beside it), after 0, 1 and c.evalSteps inner steps, or
// with every set after each number of steps up to c.evalSteps. It returns
// the mean and 95% interval's half-width of the figure after each number
// of steps.
func evaluateMeta(ctx context.Context, m metaLearner, src *tasks.Source, c *trainConfig, every bool, stdout io.Writer) (means, halves []float64, err error) {
	// Test tasks are drawn a few at a time and adapted a batch at a time.
	chunk, draw := evalChunk(c)
	if c.evalBatch > 0 {
		chunk = c.evalBatch
	}
	rng := rand.New(rand.NewPCG(c.seed, 0x74657374))
	var batches []*tasks.Batch
	ev, err := learners.Assess(ctx, m, learners.Assessment{
		Tasks: c.evalTasks, Steps: c.evalSteps, Classify: c.classify(),
		Draw:     func(n int) (*tasks.Batch, error) { return src.Test(rng, n) },
		DrawUnit: draw, Batch: chunk,
		Each: func(b *tasks.Batch) {
			if src.Pooled != nil {
				batches = append(batches, b)
			}
		},
	})
	if errors.Is(err, learners.ErrNonFinite) {
		return nil, nil, fmt.Errorf("%w (the inner step size is %g)", err, c.innerLR)
	}
	if err != nil {
		return nil, nil, err
	}
	per, what := ev.Loss, "test MSE"
	if c.classify() {
		per, what = ev.Accuracy, "test accuracy"
	}
	rate := map[bool]string{false: fmt.Sprintf(", inner step size %g", c.innerLR), true: ""}[c.metric()]
	if c.stepRates || c.learner == "metasgd" {
		rate = ", learned inner step sizes"
	}
	fmt.Fprintf(stdout, "%s on %d fresh tasks (%s)%s:\n", what, c.evalTasks, evalShape(c), rate)
	header := fmt.Sprintf("  %5s  %8s  %s", "steps", "mean", "95% interval")
	if src.Pooled != nil {
		header += fmt.Sprintf("   %8s  %s", "macro F1", "95% interval")
	}
	fmt.Fprintln(stdout, header)
	means, halves = make([]float64, len(per)), make([]float64, len(per))
	for s := range per {
		means[s], halves[s] = learners.MeanCI(per[s])
		if !every && s != 0 && s != 1 && s != c.evalSteps {
			continue
		}
		line := fmt.Sprintf("  %5d  %8.4f  ±%.4f", s, means[s], halves[s])
		if src.Pooled != nil {
			fm, fh := learners.MeanCI(ev.F1[s])
			line += fmt.Sprintf("   %8.4f  ±%.4f", fm, fh)
		}
		fmt.Fprintln(stdout, line)
	}
	if src.Pooled == nil {
		return means, halves, nil
	}
	prng := rand.New(rand.NewPCG(c.seed, 0x706f6f6c))
	data, err := src.Pooled(prng, 20000)
	if err != nil {
		return nil, nil, err
	}
	acc, f1, err := learners.PooledBaseline(ctx, data, batches, prng)
	if err != nil {
		return nil, nil, err
	}
	am, ah := learners.MeanCI(acc)
	fm, fh := learners.MeanCI(f1)
	fmt.Fprintf(stdout, "one logistic regression trained on %d examples pooled from %d tasks, not adapted:\n  accuracy %.4f ±%.4f   macro F1 %.4f ±%.4f\n",
		data.N, data.N/20, am, ah, fm, fh)
	return means, halves, nil
}

func evalShape(c *trainConfig) string {
	if c.task == "sinusoid" {
		return fmt.Sprintf("K=%d support, %d query points", c.shots, c.evalQuery)
	}
	return fmt.Sprintf("%d-way %d-shot, %d query examples per class", c.ways, c.shots, c.evalQuery)
}
