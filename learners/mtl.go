package learners

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/learners/weighting"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// MultiTaskModel is a network with a shared part and one head per task
// (see nets.MultiTask and nets.MMoE).
type MultiTaskModel interface {
	// Init returns freshly initialised parameters.
	Init(rng *rand.Rand, dt tensor.Dtype) (*graph.Params, error)
	// Owners returns, for each parameter in Init's order, the index of the
	// task that owns it, or −1 for a shared parameter.
	Owners() []int
	// Forward maps x [tasks, n, in] to one output [tasks, n, out_t] per
	// task, with parameters that carry a leading task axis.
	Forward(x *G.Node, p G.Nodes) (G.Nodes, error)
}

// Represented is a MultiTaskModel whose heads all read one shared
// representation (nets.MultiTask's trunk output), for MTL.RepGrad:
// Forward(x, p) is ForwardHeads(Represent(x, p), p).
type Represented interface {
	MultiTaskModel
	Represent(x *G.Node, p G.Nodes) (*G.Node, error)
	ForwardHeads(rep *G.Node, p G.Nodes) (G.Nodes, error)
}

// MTL trains a multi-task network: every step computes each task's loss on
// a minibatch, lets Weighting combine the losses (and, for
// gradient-manipulation methods, the tasks' gradients with respect to the
// shared parameters) and applies the result with Optimizer.
//
// A task's loss follows its target's kind: mean squared error for
// regression, the logistic loss on one logit for binary targets, softmax
// cross-entropy for multi-class targets. A row whose label for a task is
// missing (NaN in the table, an empty cell of a CSV file) takes no part in
// that task's loss, gradient or metrics: the loss is the mean over the
// rows that have the label. A minibatch with no label of a task gives it
// loss 0 and no gradient for the step: methods that add up the tasks'
// gradients take that as no contribution, while a method that divides by
// a task's loss or gradient norm (GradNorm, IMTL-G) fails the step with
// an error naming the task, and those that take logarithms of the losses
// (FAMO, GLS, DB-MTL, STCH) are not made for labels that sparse.
//
// Model, Params and Targets (one per head, in the heads' order) must be
// set. The zero values of the other fields mean: Weighting equal
// weighting, Optimizer Adam with learning rate 1e-3, WeightingOptimizer
// (which trains a weighting method's own parameters, if it has any) Adam
// with the same learning rate as Optimizer when that is Adam or SGD, else
// 1e-3; Rand a PCG source seeded with (0, 0) for methods with random
// choices. Params is updated in place. An MTL is not safe for concurrent
// use.
type MTL struct {
	Model              MultiTaskModel
	Params             *graph.Params
	Targets            []tasks.Target
	Weighting          weighting.Method
	Optimizer          Optimizer
	WeightingOptimizer Optimizer
	Rand               *rand.Rand
	// Device, when set, runs the ops of the compiled graphs that it
	// supports (graph.CompileOn); nil means the CPU.
	Device graph.Device
	// RepGrad gives a method that combines the tasks' gradients (one
	// whose Needs is SharedGrads) each task's gradient with respect to
	// the shared representation, the trunk's output for the minibatch,
	// instead of the shared parameters, as LibMTL's rep_grad does, and
	// back-propagates the combined one through the trunk once: cheaper
	// than one backward pass through the trunk per task when the trunk
	// has more parameters than the minibatch has representation values.
	// The update is the parameter mode's when the combination is a
	// weighted sum of the tasks' gradients; other methods see the
	// representation's geometry instead. The Model must be Represented;
	// methods that weigh the losses alone ignore RepGrad.
	RepGrad bool

	steps    int
	programs map[mtlKey]*mtlProgram
	built    string
	gradBuf  [][]float64  // per task, reused for weighting.Input.Grads
	repBuf   [2][]float64 // RepGrad: the representation's combined gradient and the shared parameters', reused
	last     *graph.Plan  // the plan last run, for Placement
}

// MTLStats are the statistics of one training step.
type MTLStats struct {
	Losses  []float64 // each task's loss on the minibatch, before the update
	Weights []float64 // the weight the method gave each task's loss
}

// Metrics are a task's scores on a dataset.
type Metrics struct {
	Name     string
	Kind     tasks.Kind
	Loss     float64 // the training loss of the task, averaged over rows
	MSE      float64 // regression only
	Accuracy float64 // classification only
	F1       float64 // classification only: F1 of class 1 (binary) or macro F1 (multi-class)
}

type mtlMode int

const (
	modeWeighted mtlMode = iota // gradient of Σ_t w_t L_t
	modePerTask                 // each task's gradient separately
	modeEval                    // forward only
	modeRep                     // each task's gradient with respect to the representation, and its head's
	modeRepBack                 // the shared parameters' gradient for a given representation gradient
)

type mtlKey struct {
	rows, in int
	mode     mtlMode
	masked   bool // some labels are missing: each loss is a weighted sum over the rows
}

type mtlProgram struct {
	plan      *graph.Plan
	params    G.Nodes
	x         *G.Node
	ys        G.Nodes
	weights   G.Nodes       // modeWeighted: one scalar input per task
	masks     G.Nodes       // masked: per task, each row's weight in its loss (1/labelled rows, 0 if missing)
	losses    G.Nodes       // one scalar per task
	outs      G.Nodes       // each head's output
	grads     G.Nodes       // modeWeighted: one per parameter
	taskGrads []G.Nodes     // modePerTask, modeRep: task t's gradient for each parameter it reaches (modeRep: its head's only; nil elsewhere)
	repGrads  G.Nodes       // modeRep: task t's gradient with respect to the representation
	repGrad   *G.Node       // modeRepBack: the representation's gradient, an input
	repValue  *tensor.Dense // modeRepBack: its value, refilled every step
	rep       *G.Node       // modeRep, modeRepBack: the representation
}

// Steps returns the number of successful Steps taken.
func (m *MTL) Steps() int { return m.steps }

// SetSteps sets the step counter, for a run resumed from a checkpoint.
func (m *MTL) SetSteps(n int) { m.steps = n }

func (m *MTL) method() weighting.Method {
	if m.Weighting == nil {
		m.Weighting = weighting.EW{}
	}
	return m.Weighting
}

func (m *MTL) check() error {
	if m.Model == nil || m.Params == nil || m.Params.Len() == 0 {
		return errors.New("learners: MTL needs a Model and its Params")
	}
	own := m.Model.Owners()
	if len(own) != m.Params.Len() {
		return fmt.Errorf("learners: MTL: the model has %d parameters, Params holds %d", len(own), m.Params.Len())
	}
	if len(m.Targets) == 0 {
		return errors.New("learners: MTL needs Targets, one per head")
	}
	sharedParams := 0
	for i, o := range own {
		if o < -1 || o >= len(m.Targets) {
			return fmt.Errorf("learners: MTL: parameter %s belongs to task %d of %d", m.Params.At(i).Name, o, len(m.Targets))
		}
		if o < 0 {
			sharedParams++
		}
	}
	if sharedParams == 0 && m.method().Needs() == weighting.SharedGrads {
		return fmt.Errorf("learners: MTL: %s combines the tasks' gradients of the shared parameters, and the model has none (give the trunk a layer)", m.method().Name())
	}
	return nil
}

func (m *MTL) checkTable(b *tasks.Table) error {
	if err := b.Validate(); err != nil {
		return err
	}
	if len(b.Targets) != len(m.Targets) {
		return fmt.Errorf("learners: MTL: data has %d targets, the model %d", len(b.Targets), len(m.Targets))
	}
	for i, t := range m.Targets {
		if b.Targets[i].Kind != t.Kind || b.Targets[i].Outputs() != t.Outputs() {
			return fmt.Errorf("learners: MTL: data target %d (%s, %v) does not match the model's %s (%v)", i, b.Targets[i].Name, b.Targets[i].Kind, t.Name, t.Kind)
		}
	}
	return nil
}

// Step trains on one minibatch and returns each task's loss and weight.
// On error (including a non-finite loss, gradient or weight, reported as
// *NonFiniteError naming the task or parameter) nothing is updated.
func (m *MTL) Step(ctx context.Context, b *tasks.Table) (MTLStats, error) {
	if err := ctx.Err(); err != nil {
		return MTLStats{}, err
	}
	if err := m.check(); err != nil {
		return MTLStats{}, err
	}
	if err := m.checkTable(b); err != nil {
		return MTLStats{}, err
	}
	method := m.method()
	step := m.steps + 1
	T := len(m.Targets)
	in := weighting.Input{Step: step, Rand: m.rand()}
	var prior []float64
	mode := modePerTask
	if m.RepGrad && method.Needs() == weighting.SharedGrads {
		mode = modeRep
	}
	if w, ok := method.(weighting.Weighter); ok && method.Needs() == weighting.LossesOnly {
		prior, mode = w.Weights(step, T), modeWeighted
		if len(prior) != T {
			return MTLStats{}, fmt.Errorf("learners: MTL: %s gave %d weights for %d tasks", method.Name(), len(prior), T)
		}
	}
	p, err := m.program(b.N, b.In, mode, missing(b))
	if err != nil {
		return MTLStats{}, err
	}
	for t := range prior {
		if err := p.plan.Let(p.weights[t].Name(), scalar(m.dtype(), prior[t])); err != nil {
			return MTLStats{}, err
		}
	}
	if err := p.run(m.Params, b); err != nil {
		return MTLStats{}, err
	}
	if in.Losses, err = p.readLosses(step, m.Targets); err != nil {
		return MTLStats{Losses: in.Losses}, err
	}
	own := m.Model.Owners()
	var shared []int // indices of the shared parameters
	for i, o := range own {
		if o < 0 {
			shared = append(shared, i)
		}
	}
	var perTask [][][]float64 // [task][param] gradient, modePerTask
	if mode == modeRep {
		if in.Grads, perTask, err = m.readRepGrads(p, step, own); err != nil {
			return MTLStats{Losses: in.Losses}, err
		}
	}
	if mode == modePerTask {
		// The shared parameters' gradients of task t are read one after
		// the other into in.Grads[t], which the method wants
		// concatenated, in memory reused from step to step;
		// perTask[t][i] are pieces of it.
		concat := method.Needs() == weighting.SharedGrads
		d := 0
		for _, i := range shared {
			d += m.Params.At(i).Value.Size()
		}
		perTask = make([][][]float64, T)
		if concat {
			in.Grads = make([][]float64, T)
		}
		for t := range T {
			perTask[t] = make([][]float64, len(own))
			var buf []float64
			if concat {
				if len(m.gradBuf) != T {
					m.gradBuf = make([][]float64, T)
				}
				if cap(m.gradBuf[t]) < d {
					m.gradBuf[t] = make([]float64, 0, d)
				}
				buf = m.gradBuf[t][:0]
			}
			for i, n := range p.taskGrads[t] {
				switch {
				case n == nil:
					continue
				case concat && own[i] < 0:
					start := len(buf)
					if buf, err = m.appendGrad(p.plan, n, step, i, buf); err != nil {
						return MTLStats{Losses: in.Losses}, err
					}
					perTask[t][i] = buf[start:len(buf):len(buf)]
				default:
					if perTask[t][i], err = m.readGrad(p.plan, n, step, i); err != nil {
						return MTLStats{Losses: in.Losses}, err
					}
				}
			}
			if concat {
				in.Grads[t] = buf
			}
		}
	}
	restore, err := snapshot(method)
	if err != nil {
		return MTLStats{Losses: in.Losses}, err
	}
	out, err := method.Combine(in)
	if err != nil {
		restore()
		for k, tg := range m.Targets {
			if b.Labelled(k) == 0 {
				return MTLStats{Losses: in.Losses}, fmt.Errorf("learners: MTL step %d: %s cannot weigh task %s, which has no label in this minibatch: %w", step, method.Name(), tg.Name, err)
			}
		}
		return MTLStats{Losses: in.Losses}, fmt.Errorf("learners: MTL step %d: %w", step, err)
	}
	if mode == modeRep {
		// The method combined representation gradients: back-propagate
		// their combination to the shared parameters' gradient.
		if out.Shared, err = m.repBack(b, step, in.Grads, out, shared); err != nil {
			restore()
			return MTLStats{Losses: in.Losses}, err
		}
		mode = modePerTask
	}
	st, err := m.apply(step, method, in.Losses, out, mode, p, own, shared, perTask, prior)
	if err != nil {
		restore()
		return st, err
	}
	m.steps++
	return st, nil
}

// readRepGrads reads a modeRep run: each task's gradient with respect to
// the representation, flattened, and each head's gradient as perTask.
func (m *MTL) readRepGrads(p *mtlProgram, step int, own []int) (grads [][]float64, perTask [][][]float64, err error) {
	T := len(m.Targets)
	grads, perTask = make([][]float64, T), make([][][]float64, T)
	for t := range T {
		if len(m.gradBuf) != T {
			m.gradBuf = make([][]float64, T)
		}
		if m.gradBuf[t], err = p.plan.AppendFloat64s(m.gradBuf[t][:0], p.repGrads[t]); err != nil {
			return nil, nil, err
		}
		if !graph.AllFinite(m.gradBuf[t]) {
			return nil, nil, &NonFiniteError{Step: step, What: "gradient of the representation for task " + m.Targets[t].Name}
		}
		grads[t] = m.gradBuf[t]
		perTask[t] = make([][]float64, len(own))
		for i, n := range p.taskGrads[t] {
			if n != nil {
				if perTask[t][i], err = m.readGrad(p.plan, n, step, i); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	return grads, perTask, nil
}

// repBack returns the shared parameters' gradient, concatenated in their
// order, for the representation gradient that out combines from the
// tasks' grads: out.Shared, or their sum weighted by out.Weights.
func (m *MTL) repBack(b *tasks.Table, step int, grads [][]float64, out weighting.Output, shared []int) ([]float64, error) {
	dz := out.Shared
	if dz == nil {
		if n := len(grads[0]); cap(m.repBuf[0]) < n {
			m.repBuf[0] = make([]float64, n)
		}
		dz = m.repBuf[0][:len(grads[0])]
		clear(dz)
		for t, g := range grads {
			for j, v := range g {
				dz[j] += out.Weights[t] * v
			}
		}
	}
	if len(dz) != len(grads[0]) {
		return nil, fmt.Errorf("learners: MTL: %s combined a representation gradient of %d values, want %d", m.method().Name(), len(dz), len(grads[0]))
	}
	if !graph.AllFinite(dz) {
		return nil, &NonFiniteError{Step: step, What: m.method().Name() + " gradient of the representation"}
	}
	p, err := m.program(b.N, b.In, modeRepBack)
	if err != nil {
		return nil, err
	}
	if p.repValue == nil {
		if p.repValue, err = graph.NewTensor(m.dtype(), p.repGrad.Shape(), dz); err != nil {
			return nil, err
		}
	} else if err := setValues(p.repValue, dz); err != nil {
		return nil, err
	}
	if err := p.plan.Let(p.repGrad.Name(), p.repValue); err != nil {
		return nil, err
	}
	if err := p.run(m.Params, b); err != nil {
		return nil, err
	}
	all := m.repBuf[1][:0]
	for j, i := range shared {
		if all, err = m.appendGrad(p.plan, p.grads[j], step, i, all); err != nil {
			return nil, err
		}
	}
	m.repBuf[1] = all
	return all, nil
}

// apply checks a method's output and updates the parameters: the
// network's first, then the method's own, so that an error leaves both
// as they were.
func (m *MTL) apply(step int, method weighting.Method, losses []float64, out weighting.Output, mode mtlMode, p *mtlProgram, own, shared []int, perTask [][][]float64, prior []float64) (MTLStats, error) {
	T := len(m.Targets)
	var err error
	st := MTLStats{Losses: losses, Weights: out.Weights}
	if len(out.Weights) != T {
		return st, fmt.Errorf("learners: MTL: %s gave %d weights for %d tasks", method.Name(), len(out.Weights), T)
	}
	for t, w := range out.Weights {
		if !finite(w) {
			return st, &NonFiniteError{Step: step, What: fmt.Sprintf("%s weight of task %s", method.Name(), m.Targets[t].Name)}
		}
		if prior != nil && w != prior[t] {
			return st, fmt.Errorf("learners: MTL: %s used weight %v for task %s, announced %v", method.Name(), w, m.Targets[t].Name, prior[t])
		}
	}
	if m.Optimizer == nil {
		m.Optimizer = &Adam{}
	}
	// With one backward pass on a device, the update runs there.
	do, onDevice := m.Optimizer.(deviceOptimizer)
	onDevice = onDevice && mode == modeWeighted && m.Device != nil
	grads := make([][]float64, len(own))
	if mode == modeWeighted && !onDevice {
		for i, n := range p.grads {
			if grads[i], err = m.readGrad(p.plan, n, step, i); err != nil {
				return st, err
			}
		}
	} else if mode == modePerTask {
		hw := out.Weights
		if out.HeadWeights != nil {
			if len(out.HeadWeights) != T {
				return st, fmt.Errorf("learners: MTL: %s gave %d head weights for %d tasks", method.Name(), len(out.HeadWeights), T)
			}
			hw = out.HeadWeights
		}
		for i, o := range own {
			if o >= 0 {
				grads[i] = scaled(perTask[o][i], hw[o])
			}
		}
		if err := combineShared(grads, m.Params, shared, perTask, out); err != nil {
			return st, fmt.Errorf("learners: MTL: %s: %w", method.Name(), err)
		}
		for _, i := range shared {
			if !graph.AllFinite(grads[i]) {
				return st, &NonFiniteError{Step: step, What: fmt.Sprintf("%s gradient of %s", method.Name(), m.Params.At(i).Name)}
			}
		}
	}
	l, learned := method.(weighting.Learned)
	if learned {
		for _, g := range out.ParamGrads {
			for _, v := range g {
				if !finite(v) {
					return st, &NonFiniteError{Step: step, What: method.Name() + " gradient of its own parameters"}
				}
			}
		}
	}
	if onDevice {
		u := &deviceUpdate{plan: p.plan, params: m.Params, inputs: p.params, grads: p.grads, step: step,
			what: func(i int) string { return "gradient of " + m.Params.At(i).Name }}
		done, err := do.updateOnDevice(u)
		if err != nil {
			return st, err
		}
		if !done { // the device does not run the optimiser
			for i, n := range p.grads {
				if grads[i], err = m.readGrad(p.plan, n, step, i); err != nil {
					return st, err
				}
			}
			onDevice = false
		}
	}
	if !onDevice {
		if err := m.Optimizer.Update(m.Params, grads); err != nil {
			return st, err
		}
	}
	if learned {
		if err := m.weightingOptimizer().Update(l.Params(), out.ParamGrads); err != nil {
			return st, fmt.Errorf("learners: MTL: updating %s's parameters: %w", method.Name(), err)
		}
	}
	return st, nil
}

// snapshot saves a weighting method's state and learned parameters and
// returns a function that puts them back.
func snapshot(method weighting.Method) (func(), error) {
	var undo []func()
	if s, ok := method.(weighting.StateMarshaler); ok {
		b, err := s.MarshalState()
		if err != nil {
			return nil, fmt.Errorf("learners: MTL: saving %s's state: %v", method.Name(), err)
		}
		undo = append(undo, func() { s.UnmarshalState(b) })
	}
	if l, ok := method.(weighting.Learned); ok {
		saved := l.Params().Clone()
		undo = append(undo, func() { l.Params().CopyFrom(saved) })
	}
	return func() {
		for _, f := range undo {
			f()
		}
	}, nil
}

// combineShared writes the shared parameters' gradients into grads:
// out.Shared split over them, or Σ_t w_t g_t.
func combineShared(grads [][]float64, params *graph.Params, shared []int, perTask [][][]float64, out weighting.Output) error {
	if out.Shared != nil {
		d := 0
		for _, i := range shared {
			d += params.At(i).Value.Shape().TotalSize()
		}
		if len(out.Shared) != d {
			return fmt.Errorf("combined gradient has %d values, want %d", len(out.Shared), d)
		}
		off := 0
		for _, i := range shared {
			n := params.At(i).Value.Shape().TotalSize()
			grads[i] = out.Shared[off : off+n : off+n]
			off += n
		}
		return nil
	}
	for _, i := range shared {
		g := make([]float64, len(perTask[0][i]))
		for t, w := range out.Weights {
			for j, v := range perTask[t][i] {
				g[j] += w * v
			}
		}
		grads[i] = g
	}
	return nil
}

func scaled(x []float64, c float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = c * v
	}
	return out
}

func (m *MTL) rand() *rand.Rand {
	if m.Rand == nil {
		m.Rand = rand.New(rand.NewPCG(0, 0))
	}
	return m.Rand
}

func (m *MTL) weightingOptimizer() Optimizer {
	if m.WeightingOptimizer == nil {
		lr := 1e-3
		switch o := m.Optimizer.(type) {
		case *Adam:
			lr = orDefault(o.LR, 1e-3)
		case *SGD:
			lr = orDefault(o.LR, 1e-3)
		}
		m.WeightingOptimizer = &Adam{LR: lr}
	}
	return m.WeightingOptimizer
}

func (m *MTL) dtype() tensor.Dtype { return m.Params.At(0).Value.Dtype() }

// appendGrad is readGrad appending the gradient to dst.
func (m *MTL) appendGrad(plan *graph.Plan, n *G.Node, step, i int, dst []float64) ([]float64, error) {
	start := len(dst)
	dst, err := plan.AppendFloat64s(dst, n)
	if err != nil {
		return dst, err
	}
	if !graph.AllFinite(dst[start:]) {
		return dst, &NonFiniteError{Step: step, What: "gradient of " + m.Params.At(i).Name}
	}
	return dst, nil
}

func (m *MTL) readGrad(plan *graph.Plan, n *G.Node, step, i int) ([]float64, error) {
	g, err := plan.ReadFloat64s(n)
	if err != nil {
		return nil, err
	}
	if !graph.AllFinite(g) {
		return nil, &NonFiniteError{Step: step, What: "gradient of " + m.Params.At(i).Name}
	}
	return g, nil
}

func (p *mtlProgram) readLosses(step int, targets []tasks.Target) ([]float64, error) {
	losses := make([]float64, len(p.losses))
	for t, n := range p.losses {
		v, err := p.plan.ReadFloat64s(n)
		if err != nil {
			return nil, err
		}
		losses[t] = v[0]
		if !finite(losses[t]) {
			return losses, &NonFiniteError{Step: step, What: "loss of task " + targets[t].Name}
		}
	}
	return losses, nil
}

func scalar(dt tensor.Dtype, v float64) tensor.Tensor {
	if dt == tensor.Float32 {
		return tensor.New(tensor.FromScalar(float32(v)))
	}
	return tensor.New(tensor.FromScalar(v))
}

// Evaluate returns each task's metrics on the whole table, computed in
// batches of at most 1,024 rows.
func (m *MTL) Evaluate(ctx context.Context, data *tasks.Table) ([]Metrics, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	if err := m.checkTable(data); err != nil {
		return nil, err
	}
	T := len(m.Targets)
	acc := make([]scorer, T)
	for t, tg := range m.Targets {
		acc[t] = newScorer(tg)
	}
	batches, err := data.Batches(nil, evalRows)
	if err != nil {
		return nil, err
	}
	for _, b := range batches {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, err := m.program(b.N, b.In, modeEval, missing(b))
		if err != nil {
			return nil, err
		}
		if err := p.run(m.Params, b); err != nil {
			return nil, err
		}
		losses, err := p.readLosses(m.steps, m.Targets)
		if err != nil {
			return nil, err
		}
		for t := range T {
			out, err := p.plan.ReadFloat64s(p.outs[t])
			if err != nil {
				return nil, err
			}
			acc[t].add(losses[t], out, b.Y[t])
		}
	}
	res := make([]Metrics, T)
	for t, tg := range m.Targets {
		res[t] = acc[t].metrics(tg)
	}
	return res, nil
}

// Predict returns the model's predictions for the rows of data, whose
// targets, if it has any, are not read: for each task, data.N rows of
// Outputs values: the predicted value of a regression, the probability of
// class 1 of a binary target, the probability of each class of a
// multi-class target (the softmax of its head's logits). Rows are
// computed in batches of at most 1,024.
func (m *MTL) Predict(ctx context.Context, data *tasks.Table) ([][]float64, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	if data == nil || data.N <= 0 || data.In <= 0 || len(data.X) != data.N*data.In {
		return nil, fmt.Errorf("learners: MTL.Predict: want rows of features, got %v", tableSize(data))
	}
	// The evaluation graph takes targets: give it labels 0, unread.
	tab := &tasks.Table{N: data.N, In: data.In, X: data.X, Targets: m.Targets, Y: make([][]float64, len(m.Targets))}
	for t := range tab.Y {
		tab.Y[t] = make([]float64, data.N)
	}
	if err := m.checkTable(tab); err != nil {
		return nil, err
	}
	batches, err := tab.Batches(nil, evalRows)
	if err != nil {
		return nil, err
	}
	out := make([][]float64, len(m.Targets))
	row := 0 // the batch's first row
	for _, b := range batches {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, err := m.program(b.N, b.In, modeEval)
		if err != nil {
			return nil, err
		}
		if err := p.run(m.Params, b); err != nil {
			return nil, err
		}
		for t, tg := range m.Targets {
			o, err := p.plan.ReadFloat64s(p.outs[t])
			if err != nil {
				return nil, err
			}
			for i, z := range o {
				if !finite(z) {
					return nil, fmt.Errorf("learners: MTL.Predict: row %d: the output of task %s is %v (a feature too large for the network's %v?)", row+i*b.N/len(o)+1, tg.Name, z, m.Params.At(0).Value.Dtype())
				}
			}
			switch tg.Kind {
			case tasks.Binary:
				for i, z := range o {
					o[i] = 1 / (1 + math.Exp(-z))
				}
			case tasks.Multiclass:
				for r := 0; r < len(o); r += tg.Classes {
					softmaxInPlace(o[r : r+tg.Classes])
				}
			}
			out[t] = append(out[t], o...)
		}
		row += b.N
	}
	return out, nil
}

// tableSize describes a table's shape for an error message.
func tableSize(t *tasks.Table) string {
	if t == nil {
		return "nil"
	}
	return fmt.Sprintf("%d rows of %d features and %d values", t.N, t.In, len(t.X))
}

// softmaxInPlace replaces logits by their softmax.
func softmaxInPlace(z []float64) {
	top := z[0]
	for _, v := range z {
		top = max(top, v)
	}
	sum := 0.0
	for i, v := range z {
		z[i] = math.Exp(v - top)
		sum += z[i]
	}
	for i := range z {
		z[i] /= sum
	}
}

// scorer accumulates a task's metrics over batches.
type scorer struct {
	kind       tasks.Kind
	n          int
	lossSum    float64
	sqSum      float64
	correct    int
	tp, fp, fn []int // per class
}

func newScorer(tg tasks.Target) scorer {
	c := max(tg.Outputs(), 2)
	return scorer{kind: tg.Kind, tp: make([]int, c), fp: make([]int, c), fn: make([]int, c)}
}

func (s *scorer) add(loss float64, out, y []float64) {
	k := len(out) / len(y)
	labelled := 0
	for _, truth := range y {
		if !math.IsNaN(truth) {
			labelled++
		}
	}
	s.lossSum += loss * float64(labelled)
	s.n += labelled
	for i, truth := range y {
		if math.IsNaN(truth) { // a missing label
			continue
		}
		o := out[i*k : (i+1)*k]
		var pred int
		switch s.kind {
		case tasks.Regression:
			d := o[0] - truth
			s.sqSum += d * d
			continue
		case tasks.Binary:
			if o[0] > 0 {
				pred = 1
			}
		default:
			for j, v := range o {
				if v > o[pred] {
					pred = j
				}
			}
		}
		if c := int(truth); pred == c {
			s.correct++
			s.tp[c]++
		} else {
			s.fp[pred]++
			s.fn[c]++
		}
	}
}

// metrics returns the scores. Binary F1 is that of class 1; multi-class F1
// is the macro average over the classes that occur among the labels or
// the predictions (as scikit-learn's f1_score(average="macro") computes
// it).
func (s *scorer) metrics(tg tasks.Target) Metrics {
	r := Metrics{Name: tg.Name, Kind: tg.Kind, Loss: s.lossSum / float64(s.n)}
	if s.kind == tasks.Regression {
		r.MSE = s.sqSum / float64(s.n)
		return r
	}
	r.Accuracy = float64(s.correct) / float64(s.n)
	f1 := func(c int) float64 {
		if s.tp[c] == 0 {
			return 0
		}
		return 2 * float64(s.tp[c]) / float64(2*s.tp[c]+s.fp[c]+s.fn[c])
	}
	if s.kind == tasks.Binary {
		r.F1 = f1(1)
		return r
	}
	seen := 0
	for c := range s.tp {
		if s.tp[c]+s.fp[c]+s.fn[c] > 0 {
			r.F1 += f1(c)
			seen++
		}
	}
	if seen > 0 {
		r.F1 /= float64(seen)
	}
	return r
}

func (p *mtlProgram) run(params *graph.Params, b *tasks.Table) error {
	for i, n := range p.params {
		v := params.At(i).Value.ShallowClone()
		if err := v.Reshape(n.Shape()...); err != nil {
			return fmt.Errorf("learners: MTL: %s: %v", params.At(i).Name, err)
		}
		if err := p.plan.Let(n.Name(), v); err != nil {
			return err
		}
	}
	dt := p.x.Dtype()
	x, err := graph.NewTensor(dt, p.x.Shape(), b.X)
	if err != nil {
		return fmt.Errorf("learners: MTL: features: %w", err)
	}
	if err := p.plan.Let(p.x.Name(), x); err != nil {
		return err
	}
	for t, n := range p.masks {
		w := make([]float64, b.N)
		if c := b.Labelled(t); c > 0 {
			for i, v := range b.Y[t] {
				if !math.IsNaN(v) {
					w[i] = 1 / float64(c)
				}
			}
		}
		mask, err := graph.NewTensor(dt, n.Shape(), w)
		if err != nil {
			return err
		}
		if err := p.plan.Let(n.Name(), mask); err != nil {
			return err
		}
	}
	for t, n := range p.ys {
		var y tensor.Tensor
		if n.Dtype() == tensor.Int {
			labels := make([]int, b.N)
			for i, v := range b.Y[t] {
				if math.IsNaN(v) {
					continue // masked out; any class will do
				}
				labels[i] = int(v)
				if b.Targets[t].Kind == tasks.Binary {
					labels[i] = 1 - labels[i] // column 0 holds the logit of class 1
				}
			}
			y = tensor.New(tensor.WithShape(n.Shape()...), tensor.WithBacking(labels))
		} else {
			vals := b.Y[t]
			if p.masks != nil {
				vals = slices.Clone(vals)
				for i, v := range vals {
					if math.IsNaN(v) {
						vals[i] = 0 // masked out
					}
				}
			}
			if y, err = graph.NewTensor(dt, n.Shape(), vals); err != nil {
				return fmt.Errorf("learners: MTL: target %d: %w", t, err)
			}
		}
		if err := p.plan.Let(n.Name(), y); err != nil {
			return err
		}
	}
	return p.plan.Run()
}

// program returns the compiled graph for a batch of rows in a mode,
// building it on first use.
func (m *MTL) program(rows, in int, mode mtlMode, masked ...bool) (*mtlProgram, error) {
	if s := m.settings(); s != m.built {
		closePlans(m.programs)
		m.programs, m.built, m.last = nil, s, nil
	}
	p, err := cached(&m.programs, mtlKey{rows, in, mode, len(masked) > 0 && masked[0]}, m.build)
	if err != nil {
		return nil, err
	}
	m.last = p.plan
	return p, nil
}

// Placement reports where the ops of the graph last run (by Step or an
// evaluation) ran: how many on Device and on the CPU. It is the zero
// Placement before the first run.
func (m *MTL) Placement() graph.Placement { return placement(m.last) }

// PrepareStep compiles the graph that Step runs on minibatches of rows
// rows of in features, if it is not compiled yet, and returns the memory
// such a Step needs besides the minibatch and the optimisers' state, in
// bytes: the graph's buffers (graph.Plan.Bytes), the minibatch's tensors
// and the gradients read back (each task's, for the methods that need
// them). A caller can so refuse a run that would not fit before it
// trains.
func (m *MTL) PrepareStep(rows, in int) (int64, error) {
	if err := m.check(); err != nil {
		return 0, err
	}
	if rows <= 0 || in <= 0 {
		return 0, fmt.Errorf("learners: MTL: %d rows of %d features", rows, in)
	}
	mode, T := modePerTask, int64(len(m.Targets))
	if _, ok := m.method().(weighting.Weighter); ok && m.method().Needs() == weighting.LossesOnly {
		mode, T = modeWeighted, 1
	}
	defer m.keepLast()()
	p, err := m.program(rows, in, mode)
	if err != nil {
		return 0, err
	}
	P := int64(m.Params.Size())
	// The gradients, and for per-task methods their shared parts again
	// and the combined update.
	return p.plan.Bytes() + m.rowBytes(rows, in) + 8*P*(2*T+1), nil
}

// keepLast returns the function that puts back the plan Step ran last
// (which Placement reports), unless the graphs were rebuilt meanwhile:
// preparing a graph does not change it.
func (m *MTL) keepLast() func() {
	last, built := m.last, m.built
	return func() {
		if m.built == built {
			m.last = last
		} else {
			m.last = nil
		}
	}
}

// PrepareEvaluate compiles the graphs that Evaluate runs on a table of
// rows rows of in features, if they are not compiled yet, and returns the
// memory Evaluate needs besides the table, in bytes.
func (m *MTL) PrepareEvaluate(rows, in int) (int64, error) {
	if err := m.check(); err != nil {
		return 0, err
	}
	if rows <= 0 || in <= 0 {
		return 0, fmt.Errorf("learners: MTL: %d rows of %d features", rows, in)
	}
	defer m.keepLast()()
	var most int64
	for _, n := range []int{min(rows, evalRows), rows % evalRows} {
		if n == 0 {
			continue
		}
		p, err := m.program(n, in, modeEval)
		if err != nil {
			return 0, err
		}
		most = max(most, p.plan.Bytes())
	}
	// Both graphs are kept; the minibatches are copies of the table.
	n := min(rows, evalRows)
	return 2*most + m.rowBytes(n, in) + m.rowBytes(rows, in)*8/int64(m.dtype().Size()), nil
}

// evalRows is the size of Evaluate's minibatches.
const evalRows = 1024

// rowBytes is the memory of rows rows of in features and the targets as
// tensors.
func (m *MTL) rowBytes(rows, in int) int64 {
	width := int64(in)
	for _, tg := range m.Targets {
		width += int64(max(tg.Outputs(), 1))
	}
	return int64(rows) * width * int64(m.dtype().Size())
}

func (m *MTL) settings() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%#v|%v|%s|", m.Model, m.Targets, deviceName(m.Device))
	writeParamsKey(&b, m.Params)
	return b.String()
}

func (m *MTL) build(k mtlKey) (p *mtlProgram, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("learners: building the MTL graph: %v", r)
		}
	}()
	g := G.NewGraph()
	p = &mtlProgram{}
	dt := m.dtype()
	for i := 0; i < m.Params.Len(); i++ {
		q := m.Params.At(i)
		s := append(tensor.Shape{1}, q.Value.Shape()...)
		p.params = append(p.params, G.NewTensor(g, dt, len(s), G.WithShape(s...), G.WithName(q.Name)))
	}
	p.x = G.NewTensor(g, dt, 3, G.WithShape(1, k.rows, k.in), G.WithName("x"))
	var outs G.Nodes
	if k.mode == modeRep || k.mode == modeRepBack {
		rm, ok := m.Model.(Represented)
		if !ok {
			return nil, fmt.Errorf("learners: MTL.RepGrad: %T does not expose the representation its heads share (Represent, ForwardHeads)", m.Model)
		}
		if p.rep, err = rm.Represent(p.x, p.params); err == nil {
			outs, err = rm.ForwardHeads(p.rep, p.params)
		}
	} else {
		outs, err = m.Model.Forward(p.x, p.params)
	}
	if err != nil {
		return nil, fmt.Errorf("learners: %T.Forward of x %v: %w", m.Model, p.x.Shape(), err)
	}
	if len(outs) != len(m.Targets) {
		return nil, fmt.Errorf("learners: MTL: the model has %d heads for %d targets", len(outs), len(m.Targets))
	}
	p.outs = outs
	for t, tg := range m.Targets {
		want := tensor.Shape{1, k.rows, tg.Outputs()}
		if !outs[t].Shape().Eq(want) {
			return nil, &graph.ShapeError{Op: "MTL head " + tg.Name, Want: fmt.Sprint(want), Got: fmt.Sprint(outs[t].Shape())}
		}
		name := fmt.Sprintf("y.%d", t)
		var y, loss, mask *G.Node
		if k.masked {
			mask = G.NewTensor(g, dt, 2, G.WithShape(1, k.rows), G.WithName(fmt.Sprintf("mask.%d", t)))
			p.masks = append(p.masks, mask)
		}
		switch tg.Kind {
		case tasks.Multiclass:
			y = G.NewTensor(g, tensor.Int, 2, G.WithShape(1, k.rows), G.WithName(name))
			loss, err = maskedCrossEntropy(outs[t], y, mask)
		case tasks.Binary:
			y = G.NewTensor(g, tensor.Int, 2, G.WithShape(1, k.rows), G.WithName(name))
			loss, err = logisticLoss(outs[t], y, t, mask)
		default:
			y = G.NewTensor(g, dt, 3, G.WithShape(want...), G.WithName(name))
			loss, err = mseLoss(outs[t], y, mask)
		}
		if err != nil {
			return nil, err
		}
		p.ys = append(p.ys, y)
		p.losses = append(p.losses, loss)
	}
	outputs := append(G.Nodes{}, p.losses...)
	own := m.Model.Owners()
	switch k.mode {
	case modeEval:
		outputs = append(outputs, p.outs...)
	case modeWeighted:
		var total *G.Node
		for t, l := range p.losses {
			w := G.NewScalar(g, dt, G.WithName(fmt.Sprintf("weight.%d", t)))
			p.weights = append(p.weights, w)
			term, err := G.Mul(w, l)
			if err != nil {
				return nil, fmt.Errorf("learners: MTL: weighting: %v", err)
			}
			if total == nil {
				total = term
			} else if total, err = G.Add(total, term); err != nil {
				return nil, fmt.Errorf("learners: MTL: weighting: %v", err)
			}
		}
		if p.grads, err = graph.Grad(total, p.params...); err != nil {
			return nil, err
		}
		outputs = append(outputs, p.grads...)
	case modeRep:
		p.taskGrads, p.repGrads = make([]G.Nodes, len(m.Targets)), make(G.Nodes, len(m.Targets))
		for t, l := range p.losses {
			var idx []int
			wrt := G.Nodes{p.rep}
			for i, o := range own {
				if o == t {
					idx = append(idx, i)
					wrt = append(wrt, p.params[i])
				}
			}
			gr, err := graph.Grad(l, wrt...)
			if err != nil {
				return nil, err
			}
			p.repGrads[t] = gr[0]
			p.taskGrads[t] = make(G.Nodes, len(own))
			for j, i := range idx {
				p.taskGrads[t][i] = gr[j+1]
			}
			outputs = append(outputs, gr...)
		}
	case modeRepBack:
		p.repGrad = G.NewTensor(g, dt, p.rep.Dims(), G.WithShape(p.rep.Shape()...), G.WithName("rep.grad"))
		prod, err := G.HadamardProd(p.rep, p.repGrad)
		if err != nil {
			return nil, fmt.Errorf("learners: MTL: %v", err)
		}
		obj, err := graph.SumAll(prod)
		if err != nil {
			return nil, err
		}
		var wrt G.Nodes
		for i, o := range own {
			if o < 0 {
				wrt = append(wrt, p.params[i])
			}
		}
		if p.grads, err = graph.Grad(obj, wrt...); err != nil {
			return nil, err
		}
		outputs = append(outputs, p.grads...)
	case modePerTask:
		p.taskGrads = make([]G.Nodes, len(m.Targets))
		for t, l := range p.losses {
			var idx []int
			var wrt G.Nodes
			for i, o := range own {
				if o < 0 || o == t {
					idx = append(idx, i)
					wrt = append(wrt, p.params[i])
				}
			}
			gr, err := graph.Grad(l, wrt...)
			if err != nil {
				return nil, err
			}
			p.taskGrads[t] = make(G.Nodes, len(own))
			for j, i := range idx {
				p.taskGrads[t][i] = gr[j]
			}
			outputs = append(outputs, gr...)
		}
	}
	if p.plan, err = graph.CompileOn(m.Device, g, outputs...); err != nil {
		return nil, err
	}
	return p, nil
}

// mseLoss returns the mean squared error between pred and y [1, rows,
// 1], or with mask [1, rows] the rows' squared errors weighted by it.
func mseLoss(pred, y, mask *G.Node) (*G.Node, error) {
	d, err := G.Sub(pred, y)
	if err != nil {
		return nil, fmt.Errorf("learners: loss: %v", err)
	}
	sq, err := G.Square(d)
	if err != nil {
		return nil, fmt.Errorf("learners: loss: %v", err)
	}
	if mask == nil {
		return graph.MeanAll(sq)
	}
	if sq, err = G.Reshape(sq, mask.Shape()); err != nil {
		return nil, fmt.Errorf("learners: loss: %v", err)
	}
	return weightedSum(sq, mask)
}

// maskedCrossEntropy is graph.CrossEntropyLabels, or with mask the rows' losses
// weighted by it.
func maskedCrossEntropy(logits, labels, mask *G.Node) (*G.Node, error) {
	if mask == nil {
		return graph.CrossEntropyLabels(logits, labels)
	}
	lp, err := graph.LogSoftmax(logits)
	if err != nil {
		return nil, err
	}
	picked, err := graph.Pick(lp, labels)
	if err != nil {
		return nil, err
	}
	sum, err := weightedSum(picked, mask)
	if err != nil {
		return nil, err
	}
	return graph.Scale(sum, -1)
}

// weightedSum returns Σ mask ⊙ x.
func weightedSum(x, mask *G.Node) (*G.Node, error) {
	wx, err := G.HadamardProd(x, mask)
	if err != nil {
		return nil, fmt.Errorf("learners: masked loss: %v", err)
	}
	return graph.SumAll(wx)
}

// logisticLoss returns the mean binary cross-entropy of logits z
// [1, n, 1] against labels [1, n] that index the columns of [z, 0] (0 for
// a positive example, 1 for a negative one): softmax([z, 0]) = [σ(z),
// 1 − σ(z)], so this is −mean(y·log σ(z) + (1 − y)·log(1 − σ(z))), with
// LogSoftmax's stable, smooth derivative σ(z) − y everywhere, 0 included.
func logisticLoss(z, labels *G.Node, t int, mask *G.Node) (out *G.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("learners: logistic loss: %v", r)
		}
	}()
	s := z.Shape()
	var zeros tensor.Tensor
	if z.Dtype() == tensor.Float32 {
		zeros = tensor.New(tensor.WithShape(s...), tensor.WithBacking(make([]float32, s.TotalSize())))
	} else {
		zeros = tensor.New(tensor.WithShape(s...), tensor.WithBacking(make([]float64, s.TotalSize())))
	}
	zero := G.NewConstant(zeros, G.In(z.Graph()), G.WithName(fmt.Sprintf("zero_logits.%d", t)))
	pair, err := G.Concat(2, z, zero)
	if err != nil {
		return nil, fmt.Errorf("learners: logistic loss: %v", err)
	}
	return maskedCrossEntropy(pair, labels, mask)
}

func (p *mtlProgram) machine() *graph.Plan { return p.plan }

// missing reports whether b lacks any label.
func missing(b *tasks.Table) bool {
	for k := range b.Y {
		if b.Labelled(k) < b.N {
			return true
		}
	}
	return false
}
