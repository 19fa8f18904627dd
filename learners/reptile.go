package learners

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Reptile is the first-order meta-learner of Nichol, Achiam and Schulman
// (2018, "On First-Order Meta-Learning Algorithms"), in its batched form.
// For each task t of a meta-batch it trains a copy of θ with InnerSteps
// steps of SGD (or Adam) on the task's training examples, giving θ̃_t, and
// moves θ towards the adapted copies: θ ← θ + ε·mean_t(θ̃_t − θ). The outer
// step ε falls linearly from OuterLR at the first Step to FinalOuterLR
// after AnnealSteps Steps, and stays there, as in the reference code
// (github.com/openai/supervised-reptile):
// ε = (1 − f)·OuterLR + f·FinalOuterLR with f = min(Steps()/AnnealSteps, 1).
//
// The inner loop runs one graph that computes every task's loss gradient
// at once (the copies of θ on a leading task axis) and makes the inner
// updates between runs on the CPU, in float64. Nothing is differentiated
// through the inner steps.
//
// A task's training examples are its support set, followed by its query
// set when UseQuery is set. With InnerBatch zero every inner step uses all
// of them; otherwise each step takes the next InnerBatch of them in an
// order reshuffled (with Rand) whenever the examples run out, the
// reference code's scheme without replacement.
//
// With InnerAdam the inner optimiser is Adam with β1 = 0, β2 = 0.999 and
// ε = 1e-8, the reference code's setting (in PyTorch's form, as Adam in
// this package). The reference code keeps the Adam moments from task to
// task and from one Step to the next; here every task of a meta-batch
// starts from the moments carried over from the previous Step, and the
// moments carried to the next Step are the tasks' final moments averaged
// over tasks, with the step count advanced by InnerSteps.
//
// Model and Params must be set; the other fields' zero values mean:
// Loss MSE; InnerLR 0.001, the reference code's default rate (the paper's
// Adam runs use 0.00022 to 0.0015); InnerSteps 5, as the paper's
// 5-shot 5-way Omniglot run (its others take 3 to 19); OuterLR 1, as most
// of the paper's runs (0.7 for 5-shot 5-way Omniglot); FinalOuterLR 0, as
// all of them; AnnealSteps 100,000, as the paper's 5-shot 5-way Omniglot
// and transductive runs (200,000 for the others); SGD in the inner loop; InnerBatch as
// explained above (the paper's runs take 3 to 25). Rand must be set when
// InnerBatch is. Params holds θ and is updated in place by Step. Reptile
// is not safe for concurrent use.
type Reptile struct {
	Model  Model
	Params *graph.Params
	Loss   Loss

	InnerLR    float64
	InnerSteps int
	InnerBatch int
	InnerAdam  bool
	UseQuery   bool

	OuterLR      float64
	FinalOuterLR float64
	AnnealSteps  int

	Rand *rand.Rand
	// Device, when set, runs the ops of the compiled graphs that it
	// supports (graph.CompileOn); nil means the CPU.
	Device graph.Device

	steps     int
	adam      *innerMoments // inner Adam state carried between Steps; nil before the first
	programs  map[reptileKey]*reptileProgram
	built     string
	builtLoss Loss        // kept alive (see lossKey)
	last      *graph.Plan // the plan last run, for Placement
}

// innerMoments is Adam's state: a step count and the two moments of every
// parameter, flat.
type innerMoments struct {
	step int
	m, v [][]float64
}

// The inner Adam's constants, those of the reference code.
const (
	reptileBeta1 = 0
	reptileBeta2 = 0.999
	reptileEps   = 1e-8
)

func (r *Reptile) innerLR() float64 { return orDefault(r.InnerLR, 0.001) }
func (r *Reptile) outerLR() float64 { return orDefault(r.OuterLR, 1) }

func (r *Reptile) innerSteps() int {
	if r.InnerSteps == 0 {
		return 5
	}
	return r.InnerSteps
}

func (r *Reptile) annealSteps() int {
	if r.AnnealSteps == 0 {
		return 100000
	}
	return r.AnnealSteps
}

// Steps returns the number of successful Steps taken.
func (r *Reptile) Steps() int { return r.steps }

// OuterRate returns the outer step size ε the next Step will use.
func (r *Reptile) OuterRate() float64 {
	f := math.Min(float64(r.steps)/float64(r.annealSteps()), 1)
	return (1-f)*r.outerLR() + f*r.FinalOuterLR
}

func (r *Reptile) check() error {
	if r.Model == nil || r.Params == nil || r.Params.Len() == 0 {
		return errors.New("learners: Reptile needs a Model and its Params")
	}
	for _, c := range []struct {
		name string
		v    float64
	}{{"InnerLR", r.InnerLR}, {"OuterLR", r.OuterLR}, {"FinalOuterLR", r.FinalOuterLR}} {
		if math.IsNaN(c.v) || math.IsInf(c.v, 0) || c.v < 0 {
			return fmt.Errorf("learners: Reptile.%s is %v, want a finite non-negative rate", c.name, c.v)
		}
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"InnerSteps", r.InnerSteps}, {"InnerBatch", r.InnerBatch}, {"AnnealSteps", r.AnnealSteps}} {
		if c.v < 0 {
			return fmt.Errorf("learners: Reptile.%s is %d, want a positive number (or 0 for the default)", c.name, c.v)
		}
	}
	if r.InnerBatch > 0 && r.Rand == nil {
		return errors.New("learners: Reptile.InnerBatch is set but Rand is nil; mini-batches need a random generator")
	}
	if a := r.adam; a != nil && !fitsParams(a.m, r.Params) {
		return errors.New("learners: Reptile: parameters changed shape since the inner Adam state was made; use a new Reptile")
	}
	return nil
}

// fitsParams reports whether x holds one slice per parameter of p, of the
// parameter's size.
func fitsParams(x [][]float64, p *graph.Params) bool {
	if len(x) != p.Len() {
		return false
	}
	for i, v := range x {
		if len(v) != p.At(i).Value.Shape().TotalSize() {
			return false
		}
	}
	return true
}

// flatTheta returns every parameter's elements as float64, one slice per
// parameter.
func (r *Reptile) flatTheta() [][]float64 {
	out := make([][]float64, r.Params.Len())
	for i := range out {
		out[i] = graph.Float64s(r.Params.At(i).Value)
	}
	return out
}

// Step runs one outer update on a meta-batch and returns the mean query
// loss before adaptation (at θ) and after it (at θ̃_t). When UseQuery is
// set the inner loop has trained on the query sets, so PostLoss measures
// fit, not generalisation. On error (including a non-finite loss, inner
// gradient or adapted parameter, reported as *NonFiniteError) θ and the
// inner optimiser state are unchanged; the random generator may have
// advanced.
func (r *Reptile) Step(ctx context.Context, b *tasks.Batch) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	if err := r.check(); err != nil {
		return Stats{}, err
	}
	if err := b.Validate(); err != nil {
		return Stats{}, err
	}
	step := r.steps + 1
	x, y, n := trainingSets(b, r.UseQuery)
	k := r.innerSteps()
	var batches [][][]int // [task][step] example indices; nil: all, in order
	size := n
	if r.InnerBatch > 0 {
		size = r.InnerBatch
		batches = make([][][]int, b.Tasks)
		for t := range batches {
			batches[t] = miniBatches(r.Rand, n, size, k)
		}
	}
	theta := r.flatTheta()
	cur := replicate(theta, b.Tasks)
	opt := r.newInner(b.Tasks)

	var st Stats
	pre, _, err := r.queryLoss(b, cur, false)
	if err != nil {
		return st, err
	}
	if st.PreLoss = average(pre); !finite(st.PreLoss) {
		return st, &NonFiniteError{Step: step, What: "query loss before adaptation"}
	}
	for s := 0; s < k; s++ {
		bx, by := x, y
		if batches != nil {
			bx, by = gather(x, y, b, n, batches, s)
		}
		grads, err := r.gradients(cur, b, bx, by, size)
		if err != nil {
			return st, err
		}
		for i, g := range grads {
			if !graph.AllFinite(g) {
				return st, &NonFiniteError{Step: step, What: fmt.Sprintf("inner gradient of %s at inner step %d", r.Params.At(i).Name, s+1)}
			}
		}
		opt.update(cur, grads)
	}
	for i, c := range cur {
		if !graph.AllFinite(c) {
			return st, &NonFiniteError{Step: step, What: "adapted " + r.Params.At(i).Name}
		}
	}
	post, _, err := r.queryLoss(b, cur, false)
	if err != nil {
		return st, err
	}
	if st.PostLoss = average(post); !finite(st.PostLoss) {
		return st, &NonFiniteError{Step: step, What: "query loss after adaptation"}
	}

	eps := r.OuterRate()
	for i, th := range theta {
		size := len(th)
		next := make([]float64, size)
		for j, v := range th {
			var d float64
			for t := 0; t < b.Tasks; t++ {
				d += cur[i][t*size+j] - v
			}
			next[j] = v + eps*d/float64(b.Tasks)
		}
		theta[i] = next
	}
	for i, th := range theta {
		if !graph.AllFinite(th) {
			return st, &NonFiniteError{Step: step, What: "updated " + r.Params.At(i).Name}
		}
	}
	for i, th := range theta {
		if err := setValues(r.Params.At(i).Value, th); err != nil {
			return st, fmt.Errorf("learners: Reptile: updating %s: %v", r.Params.At(i).Name, err)
		}
	}
	if r.InnerAdam {
		r.adam = opt.carry(b.Tasks)
	}
	r.steps++
	return st, nil
}

// Evaluate adapts a copy of θ to each task of b with up to steps steps of
// the inner optimiser on the whole support set and returns the query loss
// of every task after 0, 1, ..., steps steps: losses[s][t]. An inner Adam
// starts from the moments carried between Steps, which Evaluate leaves as
// they are; θ is not changed.
func (r *Reptile) Evaluate(b *tasks.Batch, steps int) ([][]float64, error) {
	e, err := r.evaluate(b, steps, false)
	return e.Loss, err
}

// EvaluateClassifier is Evaluate for a classification batch with one-hot
// targets, measuring the query accuracy too. It returns an error if a
// query target row is not one-hot.
func (r *Reptile) EvaluateClassifier(b *tasks.Batch, steps int) (Evaluation, error) {
	return r.evaluate(b, steps, true)
}

func (r *Reptile) evaluate(b *tasks.Batch, steps int, accuracy bool) (Evaluation, error) {
	if err := r.check(); err != nil {
		return Evaluation{}, err
	}
	if steps < 0 {
		return Evaluation{}, fmt.Errorf("learners: Evaluate: %d steps", steps)
	}
	if err := b.Validate(); err != nil {
		return Evaluation{}, err
	}
	var labels []int
	if accuracy {
		var err error
		if labels, err = classLabels(b); err != nil {
			return Evaluation{}, err
		}
	}
	cur := replicate(r.flatTheta(), b.Tasks)
	opt := r.newInner(b.Tasks)
	var e Evaluation
	for s := 0; ; s++ {
		loss, pred, err := r.queryLoss(b, cur, accuracy)
		if err != nil {
			return Evaluation{}, err
		}
		e.Loss = append(e.Loss, loss)
		if accuracy {
			e.Accuracy = append(e.Accuracy, accuracyPerTask(pred, labels, b.Tasks, b.Out))
			e.F1 = append(e.F1, f1PerTask(pred, labels, b.Tasks, b.Out))
		}
		if s == steps {
			return e, nil
		}
		grads, err := r.gradients(cur, b, b.SupportX, b.SupportY, b.Support)
		if err != nil {
			return Evaluation{}, err
		}
		opt.update(cur, grads)
	}
}

// trainingSets returns every task's training examples, task-major: its
// support set, then its query set if withQuery, and their number per task.
func trainingSets(b *tasks.Batch, withQuery bool) (x, y []float64, n int) {
	if !withQuery {
		return b.SupportX, b.SupportY, b.Support
	}
	n = b.Support + b.Query
	x = make([]float64, 0, b.Tasks*n*b.In)
	y = make([]float64, 0, b.Tasks*n*b.Out)
	for t := 0; t < b.Tasks; t++ {
		x = append(x, b.SupportX[t*b.Support*b.In:(t+1)*b.Support*b.In]...)
		x = append(x, b.QueryX[t*b.Query*b.In:(t+1)*b.Query*b.In]...)
		y = append(y, b.SupportY[t*b.Support*b.Out:(t+1)*b.Support*b.Out]...)
		y = append(y, b.QueryY[t*b.Query*b.Out:(t+1)*b.Query*b.Out]...)
	}
	return x, y, n
}

// miniBatches returns count batches of size indices into n examples, as
// the reference code draws them: the examples are shuffled, taken in
// order, and shuffled again whenever they run out; a batch may span two
// shuffles.
func miniBatches(rng *rand.Rand, n, size, count int) [][]int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	out := make([][]int, 0, count)
	cur := make([]int, 0, size)
	for {
		rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, i := range order {
			if cur = append(cur, i); len(cur) < size {
				continue
			}
			out = append(out, cur)
			if len(out) == count {
				return out
			}
			cur = make([]int, 0, size)
		}
	}
}

// gather returns the examples of inner step s of every task.
func gather(x, y []float64, b *tasks.Batch, n int, batches [][][]int, s int) (bx, by []float64) {
	for t, steps := range batches {
		for _, e := range steps[s] {
			r := t*n + e
			bx = append(bx, x[r*b.In:(r+1)*b.In]...)
			by = append(by, y[r*b.Out:(r+1)*b.Out]...)
		}
	}
	return bx, by
}

// replicate returns each slice of theta repeated tasks times.
func replicate(theta [][]float64, nTasks int) [][]float64 {
	out := make([][]float64, len(theta))
	for i, th := range theta {
		out[i] = make([]float64, 0, nTasks*len(th))
		for range nTasks {
			out[i] = append(out[i], th...)
		}
	}
	return out
}

// innerOptimizer is SGD or Adam over every task's copy of θ, each
// parameter's copies laid out task-major.
type innerOptimizer struct {
	lr      float64
	adam    bool
	step    int
	m, v    [][]float64
	started bool // m and v hold state (carried or made by update)
}

// newInner returns the inner optimiser for nTasks copies of θ, starting
// from the carried Adam state.
func (r *Reptile) newInner(nTasks int) *innerOptimizer {
	o := &innerOptimizer{lr: r.innerLR(), adam: r.InnerAdam}
	if r.InnerAdam && r.adam != nil {
		o.step, o.m, o.v, o.started = r.adam.step, replicate(r.adam.m, nTasks), replicate(r.adam.v, nTasks), true
	}
	return o
}

// update moves cur against grads (both task-major per parameter).
func (o *innerOptimizer) update(cur, grads [][]float64) {
	if !o.adam {
		for i, g := range grads {
			for j, d := range g {
				cur[i][j] -= o.lr * d
			}
		}
		return
	}
	if !o.started {
		o.m, o.v, o.started = zerosLike(grads), zerosLike(grads), true
	}
	o.step++
	c1 := 1 - math.Pow(reptileBeta1, float64(o.step))
	c2 := 1 - math.Pow(reptileBeta2, float64(o.step))
	for i, g := range grads {
		m, v := o.m[i], o.v[i]
		for j, d := range g {
			m[j] = reptileBeta1*m[j] + (1-reptileBeta1)*d
			v[j] = reptileBeta2*v[j] + (1-reptileBeta2)*d*d
			cur[i][j] -= o.lr * (m[j] / c1) / (math.Sqrt(v[j]/c2) + reptileEps)
		}
	}
}

// carry returns the Adam state to carry to the next Step: the moments
// averaged over the nTasks copies.
func (o *innerOptimizer) carry(nTasks int) *innerMoments {
	avg := func(x []float64) []float64 {
		size := len(x) / nTasks
		out := make([]float64, size)
		for j := range out {
			for t := 0; t < nTasks; t++ {
				out[j] += x[t*size+j]
			}
			out[j] /= float64(nTasks)
		}
		return out
	}
	c := &innerMoments{step: o.step, m: make([][]float64, len(o.m)), v: make([][]float64, len(o.v))}
	for i := range o.m {
		c.m[i], c.v[i] = avg(o.m[i]), avg(o.v[i])
	}
	return c
}

type reptileKey struct {
	tasks, n, in, out int
	grads             bool
}

// reptileProgram is a compiled graph of every task's loss (and its
// gradient) at the task's own copy of θ.
type reptileProgram struct {
	plan   *graph.Plan
	theta  G.Nodes // [tasks, ...] per parameter
	losses *G.Node // [tasks]
	pred   *G.Node // [tasks, n, out]
	grads  G.Nodes // gradient of Σ_t loss_t with respect to each theta: task t's own gradient in row t
}

var reptileData = [2]string{"data.x", "data.y"}

// gradients returns the gradient of every task's loss on x, y (n examples
// per task) at its copy of θ, task-major per parameter.
func (r *Reptile) gradients(cur [][]float64, b *tasks.Batch, x, y []float64, n int) ([][]float64, error) {
	p, err := r.run(cur, b, x, y, n, true)
	if err != nil {
		return nil, err
	}
	grads := make([][]float64, len(p.grads))
	for i, g := range p.grads {
		if grads[i], err = p.plan.ReadFloat64s(g); err != nil {
			return nil, err
		}
	}
	return grads, nil
}

// queryLoss returns every task's query loss at its copy of θ, and the
// predictions if asked.
func (r *Reptile) queryLoss(b *tasks.Batch, cur [][]float64, preds bool) (loss, pred []float64, err error) {
	p, err := r.run(cur, b, b.QueryX, b.QueryY, b.Query, false)
	if err != nil {
		return nil, nil, err
	}
	if loss, err = p.plan.ReadFloat64s(p.losses); err != nil {
		return nil, nil, err
	}
	if preds {
		if pred, err = p.plan.ReadFloat64s(p.pred); err != nil {
			return nil, nil, err
		}
	}
	return loss, pred, nil
}

func (r *Reptile) run(cur [][]float64, b *tasks.Batch, x, y []float64, n int, grads bool) (*reptileProgram, error) {
	p, err := r.program(reptileKey{b.Tasks, n, b.In, b.Out, grads})
	if err != nil {
		return nil, err
	}
	dt := r.Params.At(0).Value.Dtype()
	for i, c := range cur {
		shape := append([]int{b.Tasks}, r.Params.At(i).Value.Shape()...)
		t, err := graph.NewTensor(dt, shape, c)
		if err != nil {
			return nil, err
		}
		if err := p.plan.Let(r.Params.At(i).Name, t); err != nil {
			return nil, err
		}
	}
	for i, d := range [2][]float64{x, y} {
		width := b.In
		if i == 1 {
			width = b.Out
		}
		t, err := graph.NewTensor(dt, []int{b.Tasks, n, width}, d)
		if err != nil {
			return nil, fmt.Errorf("learners: %s: %w", reptileData[i], err)
		}
		if err := p.plan.Let(reptileData[i], t); err != nil {
			return nil, err
		}
	}
	if err := p.plan.Run(); err != nil {
		return nil, err
	}
	return p, nil
}

func (r *Reptile) program(k reptileKey) (*reptileProgram, error) {
	s := fmt.Sprintf("%#v|%s|%s|", r.Model, lossKey(r.Loss), deviceName(r.Device))
	for i := 0; i < r.Params.Len(); i++ {
		q := r.Params.At(i)
		s += fmt.Sprintf("%s%v%v;", q.Name, q.Value.Shape(), q.Value.Dtype())
	}
	if s != r.built {
		closePlans(r.programs)
		r.programs, r.built, r.builtLoss, r.last = nil, s, r.Loss, nil // settings changed: rebuild
	}
	p, err := cached(&r.programs, k, r.build)
	if err != nil {
		return nil, err
	}
	r.last = p.plan
	return p, nil
}

// Placement reports where the ops of the graph last run (by Step or an
// evaluation) ran: how many on Device and on the CPU. It is the zero
// Placement before the first run.
func (r *Reptile) Placement() graph.Placement { return placement(r.last) }

// PrepareStep compiles the graphs that Step runs on batches of shape s,
// if they are not compiled yet, and returns the memory such a Step needs
// besides the batch and the carried inner Adam moments, in bytes: the
// graphs' buffers (graph.Plan.Bytes), the adapted parameters of every
// task with their inner optimiser state and gradients, and the tensors
// bound to the graphs. A caller can so refuse a run that would not fit
// before it draws a batch.
func (r *Reptile) PrepareStep(s tasks.Shape) (int64, error) {
	n := s.Support
	if r.UseQuery {
		n += s.Query
	}
	size := n
	if r.InnerBatch > 0 {
		size = r.InnerBatch
	}
	return r.prepare(s, size, n)
}

// PrepareEvaluate is PrepareStep for an evaluation with steps inner steps
// (Evaluate and EvaluateClassifier) on batches of shape s; the figure
// includes the results.
func (r *Reptile) PrepareEvaluate(s tasks.Shape, steps int) (int64, error) {
	if steps < 0 {
		return 0, fmt.Errorf("learners: Evaluate: %d steps", steps)
	}
	n, err := r.prepare(s, s.Support, s.Support)
	if err != nil {
		return 0, err
	}
	return n + resultBytes(s, steps), nil
}

// prepare compiles the query-loss graph and the gradient graph of size
// examples per task, and returns the memory they and an adaptation of the
// tasks of s on n examples each need.
func (r *Reptile) prepare(s tasks.Shape, size, n int) (int64, error) {
	if err := r.check(); err != nil {
		return 0, err
	}
	if err := s.Validate(); err != nil {
		return 0, err
	}
	var total int64
	// Placement stays that of the graph last run, if the settings have
	// not changed since (programs are rebuilt, and the plan closed, when
	// they have).
	last, built := r.last, r.built
	defer func() {
		if r.built == built {
			r.last = last
		} else {
			r.last = nil
		}
	}()
	for _, k := range []reptileKey{{s.Tasks, s.Query, s.In, s.Out, false}, {s.Tasks, size, s.In, s.Out, true}} {
		p, err := r.program(k)
		if err != nil {
			return 0, err
		}
		total += p.plan.Bytes()
	}
	// Per task: the adapted θ, two Adam moments, this step's and the
	// last step's gradients (float64), and θ as a tensor.
	P, T := int64(r.Params.Size()), int64(s.Tasks)
	dt := int64(r.Params.At(0).Value.Dtype().Size())
	total += P*T*(5*8+dt) + 2*P*8
	// The training examples gathered per step, and as tensors.
	total += T * int64(n+size+s.Query) * int64(s.In+s.Out) * (8 + dt)
	return total, nil
}

// build declares losses_t = L(Forward(x_t, θ_t), y_t) for every task t,
// and with k.grads the gradient of Σ_t losses_t with respect to each θ.
func (r *Reptile) build(k reptileKey) (p *reptileProgram, err error) {
	defer func() {
		if e := recover(); e != nil {
			err = fmt.Errorf("learners: building the Reptile graph: %v", e)
		}
	}()
	g := G.NewGraph()
	p = &reptileProgram{}
	dt := r.Params.At(0).Value.Dtype()
	for i := 0; i < r.Params.Len(); i++ {
		q := r.Params.At(i)
		shape := append(tensor.Shape{k.tasks}, q.Value.Shape()...)
		p.theta = append(p.theta, G.NewTensor(g, dt, len(shape), G.WithShape(shape...), G.WithName(q.Name)))
	}
	x := G.NewTensor(g, dt, 3, G.WithShape(k.tasks, k.n, k.in), G.WithName(reptileData[0]))
	y := G.NewTensor(g, dt, 3, G.WithShape(k.tasks, k.n, k.out), G.WithName(reptileData[1]))
	if p.pred, err = forward(r.Model, x, p.theta); err != nil {
		return nil, err
	}
	if p.losses, err = lossPerTask(r.Loss, p.pred, y); err != nil {
		return nil, err
	}
	outputs := G.Nodes{p.losses, p.pred}
	if k.grads {
		total, err := graph.SumAxis(p.losses, 0)
		if err != nil {
			return nil, err
		}
		if p.grads, err = graph.Grad(total, p.theta...); err != nil {
			return nil, err
		}
		outputs = append(outputs, p.grads...)
	}
	if p.plan, err = graph.CompileOn(r.Device, g, outputs...); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *reptileProgram) machine() *graph.Plan { return p.plan }
