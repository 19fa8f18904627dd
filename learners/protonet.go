package learners

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ProtoNet is the prototypical network of Snell, Swersky and Zemel (2017)
// for N-way classification tasks: Model embeds every example; a class's
// prototype is the mean embedding of its support examples; a query
// example's logits are its negative squared Euclidean distances to the
// prototypes, and the loss is their softmax cross-entropy. Step trains
// the embedding by gradient descent on the mean query loss of a
// meta-batch, with no inner loop, so no second derivatives.
//
// A task's support and query examples go through Model in one pass, so
// that a network with batch normalisation (nets.ConvNet) normalises them
// together, as the reference code does. Any Model whose Forward maps
// [tasks, n, in] to [tasks, n, d] is an embedding: a ConvNet's head is a
// learned projection of its features to d = Out dimensions.
//
// Model and Params must be set; Optimizer nil means Adam with learning
// rate 1e-3. Batches carry one-hot labels (tasks.Episodes makes them); the
// number of classes is the batch's Out. Fields may be changed between
// calls; the compiled graphs are rebuilt when they are. A ProtoNet is not
// safe for concurrent use.
type ProtoNet struct {
	Model     Model
	Params    *graph.Params
	Optimizer Optimizer
	// Device, when set, runs the ops of the compiled graphs that it
	// supports (graph.CompileOn); nil means the CPU.
	Device graph.Device

	steps    int
	programs map[protoKey]*protoProgram
	built    string
	last     *graph.Plan
	ridge    *graph.Params // R2D2's head, when p is an R2D2's
}

// protoData names the inputs of a ProtoNet graph: every example of a
// task (support, then query), the support targets (for prototypes, divided
// by their class's count: the weights that average the support embeddings;
// zero rows for the queries), and the query targets (zero rows for the
// support examples).
var protoData = [3]string{"examples", "support targets", "query targets"}

type protoKey struct {
	tasks, support, query, in, ways int
	grads                           bool // Step's program; evaluations run the forward pass alone
}

type protoProgram struct {
	plan   *graph.Plan
	losses *G.Node // [tasks] mean query cross-entropy
	logits *G.Node // [tasks, support+query, ways]
	grads  G.Nodes // ∂ mean loss / ∂ each parameter
	theta  G.Nodes // the parameters' inputs
}

func (p *protoProgram) machine() *graph.Plan { return p.plan }

// Steps returns the number of successful Steps taken.
func (p *ProtoNet) Steps() int { return p.steps }

// trained returns the parameters Step trains: the model's, and an R2D2's
// head after them.
func (p *ProtoNet) trained() *graph.Params {
	if p.ridge == nil {
		return p.Params
	}
	all := new(graph.Params)
	for _, ps := range []*graph.Params{p.Params, p.ridge} {
		for i := 0; i < ps.Len(); i++ {
			all.Add(ps.At(i).Name, ps.At(i).Value) // the names differ: R2D2.prepare checks
		}
	}
	return all
}

func (p *ProtoNet) check() error {
	if p.Model == nil || p.Params == nil || p.Params.Len() == 0 {
		return fmt.Errorf("learners: ProtoNet needs a Model and Params")
	}
	return nil
}

// checkBatch reports whether b is a batch of classification tasks.
func (p *ProtoNet) checkBatch(b *tasks.Batch) error {
	if err := b.Validate(); err != nil {
		return err
	}
	if b.Out < 2 || b.Support == 0 || b.Query == 0 {
		return fmt.Errorf("learners: ProtoNet: tasks of %d classes, %d support and %d query examples; want 2 classes or more and examples of both", b.Out, b.Support, b.Query)
	}
	if _, err := classLabels(b); err != nil {
		return err
	}
	for t := range b.Tasks {
		count := make([]int, b.Out)
		for i := range b.Support {
			row := b.SupportY[(t*b.Support+i)*b.Out : (t*b.Support+i+1)*b.Out]
			ones, zeros := 0, 0
			for j, v := range row {
				switch v {
				case 1:
					ones++
					count[j]++
				case 0:
					zeros++
				}
			}
			if ones != 1 || zeros != b.Out-1 {
				return fmt.Errorf("learners: support target %d of task %d is %v, not a one-hot row", i, t, row)
			}
		}
		if c := slices.Index(count, 0); c >= 0 {
			return fmt.Errorf("learners: task %d has no support example of class %d: no prototype", t, c)
		}
	}
	return nil
}

// Step takes one optimiser step on the mean query loss of the tasks of b
// and returns it (PreLoss and PostLoss alike: nothing is adapted).
func (p *ProtoNet) Step(ctx context.Context, b *tasks.Batch) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	pr, err := p.run(b, true)
	if err != nil {
		return Stats{}, err
	}
	losses, err := pr.plan.ReadFloat64s(pr.losses)
	if err != nil {
		return Stats{}, err
	}
	step := p.steps + 1
	all := p.trained()
	loss := average(losses)
	if !finite(loss) {
		return Stats{}, &NonFiniteError{Step: step, What: "query loss"}
	}
	grads := make([][]float64, len(pr.grads))
	for i, g := range pr.grads {
		if grads[i], err = pr.plan.ReadFloat64s(g); err != nil {
			return Stats{}, err
		}
		for _, v := range grads[i] {
			if !finite(v) {
				return Stats{}, &NonFiniteError{Step: step, What: "gradient of " + all.At(i).Name}
			}
		}
	}
	if p.Optimizer == nil {
		p.Optimizer = &Adam{}
	}
	if err := p.Optimizer.Update(all, grads); err != nil {
		return Stats{}, err
	}
	p.steps++
	return Stats{PreLoss: loss, PostLoss: loss}, nil
}

// Evaluate returns each task's query loss "after 0, 1, ..., steps inner
// steps": the same figures for every count, since a ProtoNet adapts to a
// task by its prototypes alone. It has the form of MAML's Evaluate so
// that Assess serves both.
func (p *ProtoNet) Evaluate(b *tasks.Batch, steps int) ([][]float64, error) {
	e, err := p.evaluate(b, steps, false)
	return e.Loss, err
}

// EvaluateClassifier is Evaluate with the query accuracy and macro F1.
func (p *ProtoNet) EvaluateClassifier(b *tasks.Batch, steps int) (Evaluation, error) {
	return p.evaluate(b, steps, true)
}

func (p *ProtoNet) evaluate(b *tasks.Batch, steps int, scores bool) (Evaluation, error) {
	if steps < 0 {
		return Evaluation{}, fmt.Errorf("learners: Evaluate: %d steps", steps)
	}
	pr, err := p.run(b, false)
	if err != nil {
		return Evaluation{}, err
	}
	loss, err := pr.plan.ReadFloat64s(pr.losses)
	if err != nil {
		return Evaluation{}, err
	}
	var e Evaluation
	for range steps + 1 {
		e.Loss = append(e.Loss, slices.Clone(loss))
	}
	if !scores {
		return e, nil
	}
	logits, err := pr.plan.ReadFloat64s(pr.logits)
	if err != nil {
		return Evaluation{}, err
	}
	// The query rows of every task, in order.
	n, w := b.Support+b.Query, b.Out
	pred := make([]float64, 0, b.Tasks*b.Query*w)
	for t := range b.Tasks {
		pred = append(pred, logits[(t*n+b.Support)*w:(t+1)*n*w]...)
	}
	labels, err := classLabels(b)
	if err != nil {
		return Evaluation{}, err
	}
	acc, f1 := accuracyPerTask(pred, labels, b.Tasks, w), f1PerTask(pred, labels, b.Tasks, w)
	for range steps + 1 {
		e.Accuracy, e.F1 = append(e.Accuracy, slices.Clone(acc)), append(e.F1, slices.Clone(f1))
	}
	return e, nil
}

// run binds b to the program of its shape, with the gradients or not,
// and runs it.
func (p *ProtoNet) run(b *tasks.Batch, grads bool) (*protoProgram, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	if err := p.checkBatch(b); err != nil {
		return nil, err
	}
	pr, err := p.program(protoKey{b.Tasks, b.Support, b.Query, b.In, b.Out, grads})
	if err != nil {
		return nil, err
	}
	dt := p.Params.At(0).Value.Dtype()
	all := p.trained()
	for i, th := range pr.theta {
		if err := pr.plan.Let(th.Name(), all.At(i).Value); err != nil {
			return nil, err
		}
	}
	x, a, y := protoInputs(b, p.ridge == nil)
	n := b.Support + b.Query
	for i, d := range [3][]float64{x, a, y} {
		width := b.Out
		if i == 0 {
			width = b.In
		}
		t, err := graph.NewTensor(dt, []int{b.Tasks, n, width}, d)
		if err != nil {
			return nil, fmt.Errorf("learners: %s: %w", protoData[i], err)
		}
		if err := pr.plan.Let(protoData[i], t); err != nil {
			return nil, err
		}
	}
	if err := pr.plan.Run(); err != nil {
		return nil, err
	}
	p.last = pr.plan
	return pr, nil
}

// protoInputs lays b out for the graph: every task's support then query
// examples; the support targets, one-hot, divided by their class's count
// when average is set (zero rows for the queries); and the query targets
// (zero rows for the support examples).
func protoInputs(b *tasks.Batch, average bool) (x, a, y []float64) {
	n, w := b.Support+b.Query, b.Out
	x = make([]float64, 0, b.Tasks*n*b.In)
	a = make([]float64, b.Tasks*n*w)
	y = make([]float64, b.Tasks*n*w)
	for t := range b.Tasks {
		x = append(x, b.SupportX[t*b.Support*b.In:(t+1)*b.Support*b.In]...)
		x = append(x, b.QueryX[t*b.Query*b.In:(t+1)*b.Query*b.In]...)
		count := make([]float64, w)
		sy := b.SupportY[t*b.Support*w : (t+1)*b.Support*w]
		for i, v := range sy {
			count[i%w] += v
		}
		for i, v := range sy {
			if v != 0 && average {
				v /= count[i%w]
			}
			a[t*n*w+i] = v
		}
		copy(y[(t*n+b.Support)*w:(t+1)*n*w], b.QueryY[t*b.Query*w:(t+1)*b.Query*w])
	}
	return x, a, y
}

// program returns the compiled graph for shape k, rebuilding every graph
// when the settings have changed.
// One graph, with the gradients, serves Step and the evaluations.
func (p *ProtoNet) program(k protoKey) (*protoProgram, error) {
	s := fmt.Sprintf("%#v|%s|ridge %v|", p.Model, deviceName(p.Device), p.ridge != nil)
	for i := 0; i < p.Params.Len(); i++ {
		q := p.Params.At(i)
		s += q.Name + fmt.Sprint(q.Value.Shape()) + q.Value.Dtype().String() + ";"
	}
	if s != p.built {
		closePlans(p.programs)
		p.programs, p.built, p.last = nil, s, nil
	}
	return cached(&p.programs, k, p.build)
}

// build declares, for every task, the embeddings of its examples, its
// prototypes, the negative squared distances of its queries to them and
// its mean query cross-entropy, and the gradient of the tasks' mean loss.
func (p *ProtoNet) build(k protoKey) (pr *protoProgram, err error) {
	defer func() {
		if e := recover(); e != nil {
			err = fmt.Errorf("learners: building the ProtoNet graph: %v", e)
		}
	}()
	g := G.NewGraph()
	pr = &protoProgram{}
	dt := p.Params.At(0).Value.Dtype()
	n := k.support + k.query
	all := p.trained()
	var batched G.Nodes // the model's parameters broadcast over the tasks
	for i := 0; i < all.Len(); i++ {
		q := all.At(i)
		th := G.NewTensor(g, dt, q.Value.Dims(), G.WithShape(q.Value.Shape()...), G.WithName(q.Name))
		pr.theta = append(pr.theta, th)
		if i >= p.Params.Len() {
			continue // the head's
		}
		bt, err := graph.Broadcast(th, 0, k.tasks)
		if err != nil {
			return nil, err
		}
		batched = append(batched, bt)
	}
	x := G.NewTensor(g, dt, 3, G.WithShape(k.tasks, n, k.in), G.WithName(protoData[0]))
	a := G.NewTensor(g, dt, 3, G.WithShape(k.tasks, n, k.ways), G.WithName(protoData[1]))
	y := G.NewTensor(g, dt, 3, G.WithShape(k.tasks, n, k.ways), G.WithName(protoData[2]))
	e, err := forward(p.Model, x, batched) // [tasks, n, d]
	if err != nil {
		return nil, err
	}
	if e.Dims() != 3 || e.Shape()[0] != k.tasks || e.Shape()[1] != n {
		return nil, &graph.ShapeError{Op: "ProtoNet embedding", Want: fmt.Sprintf("[%d, %d, d]", k.tasks, n), Got: fmt.Sprint(e.Shape())}
	}
	if p.ridge != nil {
		pr.logits, err = ridgeLogits(e, a, pr.theta[p.Params.Len():], k)
	} else {
		pr.logits, err = protoLogits(e, a, k)
	}
	if err != nil {
		return nil, err
	}
	lp, err := graph.LogSoftmax(pr.logits)
	if err != nil {
		return nil, err
	}
	ce, err := G.HadamardProd(lp, y)
	if err != nil {
		return nil, fmt.Errorf("learners: ProtoNet loss: %v", err)
	}
	if ce, err = graph.SumAxis(ce, 2); err != nil {
		return nil, err
	}
	if ce, err = graph.SumAxis(ce, 1); err != nil {
		return nil, err
	}
	if pr.losses, err = graph.Scale(ce, -1/float64(k.query)); err != nil {
		return nil, err
	}
	total, err := graph.SumAxis(pr.losses, 0)
	if err != nil {
		return nil, err
	}
	if total, err = graph.Scale(total, 1/float64(k.tasks)); err != nil {
		return nil, err
	}
	outputs := G.Nodes{pr.losses, pr.logits}
	if k.grads {
		if pr.grads, err = graph.Grad(total, pr.theta...); err != nil {
			return nil, err
		}
		outputs = append(outputs, pr.grads...)
	}
	if pr.plan, err = graph.CompileOn(p.Device, g, outputs...); err != nil {
		return nil, err
	}
	return pr, nil
}

// Placement reports where the ops of the graph last run ran.
func (p *ProtoNet) Placement() graph.Placement { return placement(p.last) }

// PrepareStep compiles the graph that Step runs on batches of shape s and
// returns the memory it needs besides the batch, in bytes: the graph's
// buffers, the gradients and the batch laid out for it.
func (p *ProtoNet) PrepareStep(s tasks.Shape) (int64, error) {
	if err := p.check(); err != nil {
		return 0, err
	}
	if err := s.Validate(); err != nil {
		return 0, err
	}
	return p.prepare(s, true)
}

// prepare compiles the program for batches of shape s, with the gradients
// or not, and returns its memory, the gradients' and the batch's as laid
// out for it.
func (p *ProtoNet) prepare(s tasks.Shape, grads bool) (int64, error) {
	if err := p.check(); err != nil {
		return 0, err
	}
	if err := s.Validate(); err != nil {
		return 0, err
	}
	pr, err := p.program(protoKey{s.Tasks, s.Support, s.Query, s.In, s.Out, grads})
	if err != nil {
		return 0, err
	}
	dt := int64(p.Params.At(0).Value.Dtype().Size())
	n := int64(s.Tasks) * int64(s.Support+s.Query)
	return pr.plan.Bytes() + int64(p.trained().Size())*8 + n*int64(s.In+2*s.Out)*(8+dt), nil
}

// PrepareEvaluate is PrepareStep for an evaluation; the figure includes
// the results.
func (p *ProtoNet) PrepareEvaluate(s tasks.Shape, steps int) (int64, error) {
	if steps < 0 {
		return 0, fmt.Errorf("learners: Evaluate: %d steps", steps)
	}
	n, err := p.prepare(s, false)
	if err != nil {
		return 0, err
	}
	return n + resultBytes(s, steps), nil
}

// SaveState records the step count and the optimiser's state (under
// prefix+"optim."). The parameters themselves are c.Params.
func (p *ProtoNet) SaveState(prefix string, c *graph.Checkpoint) error {
	c.Meta[prefix+"step"] = strconv.Itoa(p.steps)
	if p.Optimizer == nil {
		p.Optimizer = &Adam{}
	}
	return saveOptimizer(p.Optimizer, prefix+"optim.", c)
}

// LoadState restores what SaveState recorded; p.Optimizer must be of the
// kind that was saved (Adam by default).
func (p *ProtoNet) LoadState(prefix string, c *graph.Checkpoint) error {
	n, err := c.MetaInt(prefix + "step")
	if err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("learners: checkpoint %sstep is %d, want at least 0", prefix, n)
	}
	if p.Optimizer == nil {
		p.Optimizer = &Adam{}
	}
	if err := loadOptimizer(p.Optimizer, prefix+"optim.", c); err != nil {
		return err
	}
	p.steps = n
	return nil
}

// Close frees what p holds on its Device, as MAML.Close does.
func (p *ProtoNet) Close() error {
	err := closeLearner(p.programs, p.Optimizer)
	p.programs, p.built, p.last = nil, "", nil
	return err
}

// protoLogits returns the negative squared distances of the embeddings e
// [tasks, n, d] to the prototypes, the averages of the support embeddings
// that the weights a [tasks, n, ways] pick: [tasks, n, ways].
func protoLogits(e, a *G.Node, k protoKey) (*G.Node, error) {
	n := k.support + k.query
	proto, err := graph.BatchedMatMul(a, e, true, false) // [tasks, ways, d]
	if err != nil {
		return nil, err
	}
	cross, err := graph.BatchedMatMul(e, proto, false, true) // [tasks, n, ways]
	if err != nil {
		return nil, err
	}
	sq := func(v *G.Node, axis, n int) (*G.Node, error) { // Σ_d v², broadcast back over axis
		s, err := G.Square(v)
		if err != nil {
			return nil, err
		}
		if s, err = graph.SumAxis(s, 2); err != nil {
			return nil, err
		}
		return graph.Broadcast(s, axis, n)
	}
	ee, err := sq(e, 2, k.ways) // ‖e‖² [tasks, n, ways]
	if err != nil {
		return nil, err
	}
	pp, err := sq(proto, 1, n) // ‖p‖² [tasks, n, ways]
	if err != nil {
		return nil, err
	}
	// logits = −‖e − p‖² = 2 e·p − ‖e‖² − ‖p‖²
	twice, err := graph.Scale(cross, 2)
	if err != nil {
		return nil, err
	}
	logits, err := G.Sub(twice, G.Must(G.Add(ee, pp)))
	if err != nil {
		return nil, fmt.Errorf("learners: ProtoNet logits: %v", err)
	}
	return logits, nil
}

// R2D2 is the ridge-regression head of Bertinetto et al. (2019, "Meta-
// learning with differentiable closed-form solvers") on an embedding
// Model: for each task it fits a ridge regression of the one-hot support
// labels on the support embeddings, in closed form and in its dual (a
// system of one equation per support example, graph.RidgeSolve), and
// classifies a query by the softmax of α·(its regression outputs). The
// regulariser λ and the scale α are meta-learned with the embedding, as
// the paper does; they start at λ = 50 and α = 1, MetaOptNet's values
// for its R2D2 head (Lee et al. 2019). The paper's bias β is left out: one
// number added to every logit does not change their softmax.
//
// The embedded ProtoNet holds the model, its parameters, the optimiser
// and the device, and does the training and evaluation; Head holds λ (as
// its logarithm, "r2d2.log_lambda") and α ("r2d2.scale"), each of shape
// [1], and is created at first use when nil. An R2D2 may be made from a
// ProtoNet value, used or not: it compiles graphs of its own. An R2D2 is
// not safe for concurrent use.
type R2D2 struct {
	ProtoNet
	Head *graph.Params
}

// R2D2's head parameters, and their initial values.
var r2d2Head = []struct {
	name string
	init float64
}{{"r2d2.log_lambda", math.Log(50)}, {"r2d2.scale", 1}}

// prepare creates the head if need be and hands it to the ProtoNet.
func (r *R2D2) prepare() error {
	if err := r.check(); err != nil {
		return err
	}
	dt := r.Params.At(0).Value.Dtype()
	if r.Head == nil {
		r.Head = new(graph.Params)
		for _, h := range r2d2Head {
			v, err := graph.NewTensor(dt, []int{1}, []float64{h.init})
			if err != nil {
				return err
			}
			if err := r.Head.Add(h.name, v); err != nil {
				return err
			}
		}
	}
	if r.Head.Len() != len(r2d2Head) {
		return fmt.Errorf("learners: R2D2.Head has %d parameters, want %d", r.Head.Len(), len(r2d2Head))
	}
	for i, h := range r2d2Head {
		q := r.Head.At(i)
		if q.Name != h.name || q.Value.Shape().TotalSize() != 1 || q.Value.Dtype() != dt {
			return fmt.Errorf("learners: R2D2.Head parameter %d is %s %v %v, want %s [1] %v", i, q.Name, q.Value.Shape(), q.Value.Dtype(), h.name, dt)
		}
		if _, clash := r.Params.Get(h.name); clash {
			return fmt.Errorf("learners: R2D2: the model has a parameter named %s", h.name)
		}
	}
	if r.ridge == nil {
		// The graphs copied with a ProtoNet value are its, and its to
		// close: compile new ones.
		r.programs, r.built, r.last = nil, "", nil
	}
	r.ridge = r.Head
	return nil
}

// Step takes one optimiser step on the embedding and the head.
func (r *R2D2) Step(ctx context.Context, b *tasks.Batch) (Stats, error) {
	if err := r.prepare(); err != nil {
		return Stats{}, err
	}
	return r.ProtoNet.Step(ctx, b)
}

// Evaluate is ProtoNet.Evaluate with the ridge head.
func (r *R2D2) Evaluate(b *tasks.Batch, steps int) ([][]float64, error) {
	if err := r.prepare(); err != nil {
		return nil, err
	}
	return r.ProtoNet.Evaluate(b, steps)
}

// EvaluateClassifier is ProtoNet.EvaluateClassifier with the ridge head.
func (r *R2D2) EvaluateClassifier(b *tasks.Batch, steps int) (Evaluation, error) {
	if err := r.prepare(); err != nil {
		return Evaluation{}, err
	}
	return r.ProtoNet.EvaluateClassifier(b, steps)
}

// PrepareStep is ProtoNet.PrepareStep with the ridge head.
func (r *R2D2) PrepareStep(s tasks.Shape) (int64, error) {
	if err := r.prepare(); err != nil {
		return 0, err
	}
	return r.ProtoNet.PrepareStep(s)
}

// PrepareEvaluate is ProtoNet.PrepareEvaluate with the ridge head.
func (r *R2D2) PrepareEvaluate(s tasks.Shape, steps int) (int64, error) {
	if err := r.prepare(); err != nil {
		return 0, err
	}
	return r.ProtoNet.PrepareEvaluate(s, steps)
}

// SaveState records ProtoNet's state (the optimiser's covers the head)
// and the head's values, as state tensors named prefix + their names.
func (r *R2D2) SaveState(prefix string, c *graph.Checkpoint) error {
	if err := r.prepare(); err != nil {
		return err
	}
	if err := r.ProtoNet.SaveState(prefix, c); err != nil {
		return err
	}
	for i := 0; i < r.Head.Len(); i++ {
		if err := c.State.Add(prefix+r.Head.At(i).Name, r.Head.At(i).Value); err != nil {
			return err
		}
	}
	return nil
}

// LoadState restores what SaveState recorded; r.Params must hold the
// checkpoint's parameters.
func (r *R2D2) LoadState(prefix string, c *graph.Checkpoint) error {
	if err := r.prepare(); err != nil {
		return err
	}
	vals := make([][]float64, r.Head.Len())
	for i := range vals {
		v, err := c.Float64sState(prefix+r.Head.At(i).Name, 1)
		if err != nil {
			return err
		}
		if !graph.AllFinite(v) {
			return fmt.Errorf("learners: checkpoint state %s%s is not finite", prefix, r.Head.At(i).Name)
		}
		vals[i] = v
	}
	if err := r.ProtoNet.LoadState(prefix, c); err != nil {
		return err
	}
	for i, v := range vals {
		if err := setValues(r.Head.At(i).Value, v); err != nil {
			return fmt.Errorf("learners: restoring %s: %v", r.Head.At(i).Name, err)
		}
	}
	return nil
}

// ridgeLogits returns R2D2's logits for the embeddings e [tasks, n, d]
// (the first k.support of each task its support set) given the support
// targets s [tasks, n, ways] (zero rows for the queries) and the head
// (log λ, α): α·e·Xsᵀ·(Xs·Xsᵀ + λI)⁻¹·Ys, [tasks, n, ways].
func ridgeLogits(e, s *G.Node, head G.Nodes, k protoKey) (*G.Node, error) {
	g, dt := e.Graph(), e.Dtype()
	n := k.support + k.query
	// pick selects the support rows: [tasks, support, n].
	pickv := make([]float64, k.tasks*k.support*n)
	for t := range k.tasks {
		for i := range k.support {
			pickv[(t*k.support+i)*n+i] = 1
		}
	}
	pt, err := graph.NewTensor(dt, []int{k.tasks, k.support, n}, pickv)
	if err != nil {
		return nil, err
	}
	pick := G.NewConstant(pt, G.In(g), G.WithName("support rows"))
	xs, err := graph.BatchedMatMul(pick, e, false, false) // [tasks, support, d]
	if err != nil {
		return nil, err
	}
	ys, err := graph.BatchedMatMul(pick, s, false, false) // [tasks, support, ways]
	if err != nil {
		return nil, err
	}
	gram, err := graph.BatchedMatMul(xs, xs, false, true)
	if err != nil {
		return nil, err
	}
	lambda, err := G.Exp(head[0])
	if err != nil {
		return nil, fmt.Errorf("learners: R2D2 λ: %v", err)
	}
	z, err := graph.RidgeSolve(gram, lambda, ys) // [tasks, support, ways]
	if err != nil {
		return nil, err
	}
	cross, err := graph.BatchedMatMul(e, xs, false, true) // [tasks, n, support]
	if err != nil {
		return nil, err
	}
	out, err := graph.BatchedMatMul(cross, z, false, false) // [tasks, n, ways]
	if err != nil {
		return nil, err
	}
	spread := func(v *G.Node) (*G.Node, error) { // [1] to [tasks, n, ways]
		for axis, size := range []int{k.tasks, n, k.ways} {
			if v, err = graph.Broadcast(v, axis, size); err != nil {
				return nil, err
			}
		}
		return G.Reshape(v, tensor.Shape{k.tasks, n, k.ways})
	}
	scale, err := spread(head[1])
	if err != nil {
		return nil, err
	}
	if out, err = G.HadamardProd(out, scale); err != nil {
		return nil, fmt.Errorf("learners: R2D2 logits: %v", err)
	}
	return out, nil
}
