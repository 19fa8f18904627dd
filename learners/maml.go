package learners

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ErrNonFinite is matched by errors reporting a NaN or infinite loss or
// gradient.
var ErrNonFinite = errors.New("non-finite value")

// NonFiniteError reports a NaN or infinite value met during a step. The
// parameters are left as they were before the step.
type NonFiniteError struct {
	Step int    // the 1-based step that failed
	What string // what was not finite: "query loss", "gradient of layers.0.weight", ...
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("learners: step %d: %s is not finite", e.Step, e.What)
}

// Is reports whether target is ErrNonFinite.
func (e *NonFiniteError) Is(target error) bool { return target == ErrNonFinite }

// MAML is model-agnostic meta-learning (Finn, Abbeel and Levine 2017). For
// each task it takes InnerSteps gradient steps of size InnerLR on the
// support loss from the meta-parameters θ, giving θ′, and it updates θ with
// the gradient of the mean query loss at θ′ with respect to θ. That
// gradient runs through the inner steps and involves second derivatives,
// computed exactly; FirstOrder drops them (first-order MAML: the inner
// gradients are treated as constants).
//
// Model and Params must be set; the other fields' zero values mean: Loss
// MSE, InnerLR 0.01, InnerSteps 1, Optimizer Adam with learning rate 1e-3,
// Device nil (the CPU). Params holds θ and is updated in place by Step.
// Fields may be changed between calls; the compiled graphs are rebuilt
// when they are.
type MAML struct {
	Model      Model
	Params     *graph.Params
	Loss       Loss
	InnerLR    float64
	InnerSteps int
	FirstOrder bool
	Optimizer  Optimizer
	// Device, when set, runs the ops of the compiled graphs that it
	// supports (graph.CompileOn); the rest run on the CPU.
	Device graph.Device
	// GradCheckpoint, with second order, keeps only the adapted
	// parameters after each inner step and recomputes each step's
	// activations while the meta-gradient runs back through it (gradient
	// checkpointing): a Step's memory then does not grow with InnerSteps,
	// for one more forward and backward pass of the support set per inner
	// step. The meta-gradient is the same up to rounding. First-order
	// MAML keeps no second-order graph and ignores it.
	GradCheckpoint bool
	// PreLossEvery > 1 has Step (and MetaGradient) measure
	// Stats.PreLoss, the mean query loss at θ before adaptation, only at
	// the steps s (1-based, counted by Steps) with s−1 a multiple of it,
	// the first step included; at the others Stats.PreLoss is NaN and
	// the query's forward pass at θ, which nothing else needs (up to a
	// quarter of a ConvNet's meta-iteration), is not run. 0 or 1
	// measures it at every step. Evaluation is not affected.
	PreLossEvery int

	inner      innerRule // set by ANIL and MetaSGD
	steps      int
	programs   map[programKey]*program
	ckPrograms map[programKey]*ckProgram // with GradCheckpoint
	built      string                    // the settings the programs were built with
	gradBuf    [][]float64               // Step's meta-gradient, read into the same buffers every step
	builtLoss  Loss                      // and the loss, kept alive (see lossKey)
	last       *graph.Plan               // the plan last run, for Placement
}

// innerRule says which parameters the inner loop adapts and with what
// step size. Its zero value, MAML's, adapts every parameter with step
// InnerLR. ANIL freezes all but the head; MetaSGD learns a rate for every
// element of θ.
type innerRule struct {
	frozen []bool        // frozen[i]: parameter i keeps θ in the inner loop; nil: none
	rates  *graph.Params // per-element rates α in θ's order and shapes; nil: InnerLR
	// stepRates, with MAML++'s learned rates, holds one rate of shape [1]
	// per inner step s and parameter i, at s·len(θ)+i; steps past the
	// last take the last step's.
	stepRates *graph.Params
	// norm, with MAML++'s per-step normalisation, lists the positions of
	// the model's normalisation weights, which the inner loop then leaves
	// as they are; stepNorm holds their copies for the forward passes
	// after k = 1, 2, ... inner steps, at (k−1)·len(norm)+j, the copy for
	// k = 0 being θ's; passes after more steps take the last copy.
	norm     []int
	stepNorm *graph.Params
	// multiStep and firstOrderFor are MAMLPP's: the iterations with the
	// multi-step loss, and those taken first-order.
	multiStep, firstOrderFor int
}

// Stats are the statistics of one meta-batch.
type Stats struct {
	PreLoss  float64 // mean query loss at θ, before adaptation; NaN where not measured (MAML.PreLossEvery)
	PostLoss float64 // mean query loss at θ′, after adaptation
}

type programKey struct {
	tasks, support, query, in, out int
	steps                          int
	train                          bool
	multiStep, firstOrder          bool // a training graph's objective and order
	noPre                          bool // a training graph without the query loss at θ
	preOf                          bool // the query loss at θ alone, beside a training graph without it
}

// program is a compiled graph for one meta-batch shape.
type program struct {
	plan   *graph.Plan
	inputs G.Nodes // one per meta-trained parameter: θ, then the rates α if learned
	data   [4]*G.Node
	losses G.Nodes // per-task query loss [tasks] after 0..steps inner steps
	preds  G.Nodes // query predictions [tasks, query, out] after 0..steps inner steps (evaluation only)
	pre    *G.Node // mean query loss at θ; nil in a training graph without it
	post   *G.Node // mean query loss at θ′
	grads  G.Nodes // meta-gradient, one per input (training only)
	// weights, with the multi-step loss, are the inputs that weigh the
	// query losses after each inner step in the objective.
	weights G.Nodes
	// beside, for a preOf program, is the training plan it measures
	// PreLoss for, whose pool of buffers it shares on the CPU.
	beside *graph.Plan
}

var dataNames = [4]string{"support.x", "support.y", "query.x", "query.y"}

func (m *MAML) innerLR() float64 {
	if m.InnerLR == 0 {
		return 0.01
	}
	return m.InnerLR
}

func (m *MAML) innerSteps() int {
	if m.InnerSteps == 0 {
		return 1
	}
	return m.InnerSteps
}

// Steps returns the number of successful Steps taken.
func (m *MAML) Steps() int { return m.steps }

func (m *MAML) check() error {
	if m.Model == nil || m.Params == nil || m.Params.Len() == 0 {
		return errors.New("learners: MAML needs a Model and its Params")
	}
	if m.InnerSteps < 0 {
		return fmt.Errorf("learners: MAML.InnerSteps is %d, want at least 1", m.InnerSteps)
	}
	if lr := m.InnerLR; math.IsNaN(lr) || math.IsInf(lr, 0) || lr < 0 {
		return fmt.Errorf("learners: MAML.InnerLR is %v, want a finite non-negative rate", lr)
	}
	if f := m.inner.frozen; f != nil && len(f) != m.Params.Len() {
		return fmt.Errorf("learners: inner loop told about %d parameters, model has %d", len(f), m.Params.Len())
	}
	if r := m.inner.rates; r != nil {
		if err := sameLayout(m.Params, r); err != nil {
			return fmt.Errorf("learners: inner rates: %v", err)
		}
	}
	if in := m.inner; m.GradCheckpoint && (in.stepRates != nil || in.stepNorm != nil || in.multiStep > 0 || in.firstOrderFor > 0) {
		return errors.New("learners: GradCheckpoint does not take MAML++'s step rates, multi-step loss or first-order iterations")
	}
	return nil
}

// sameLayout reports whether b holds as many tensors as a, each of the
// shape and dtype of a's tensor at the same position.
func sameLayout(a, b *graph.Params) error {
	if a.Len() != b.Len() {
		return fmt.Errorf("%d tensors for %d parameters", b.Len(), a.Len())
	}
	for i := 0; i < a.Len(); i++ {
		p, q := a.At(i), b.At(i)
		if !p.Value.Shape().Eq(q.Value.Shape()) || p.Value.Dtype() != q.Value.Dtype() {
			return &graph.ShapeError{Op: q.Name, Want: fmt.Sprint(p.Value.Shape(), p.Value.Dtype()), Got: fmt.Sprint(q.Value.Shape(), q.Value.Dtype())}
		}
	}
	return nil
}

// trained returns what the outer loop updates, in the order of
// MetaGradient's result: θ, then the inner rates α when they are learned.
// The tensors are m's own, not copies.
func (m *MAML) trained() (*graph.Params, error) {
	if m.inner.rates == nil && m.inner.stepRates == nil && m.inner.stepNorm == nil {
		return m.Params, nil
	}
	all := new(graph.Params)
	for _, p := range []*graph.Params{m.Params, m.inner.rates, m.inner.stepRates, m.inner.stepNorm} {
		for i := 0; p != nil && i < p.Len(); i++ {
			if err := all.Add(p.At(i).Name, p.At(i).Value); err != nil {
				return nil, fmt.Errorf("learners: %v", err)
			}
		}
	}
	return all, nil
}

// Step runs one outer update on a meta-batch and returns the losses
// measured before the update. On error (including a non-finite loss or
// gradient, reported as *NonFiniteError) the parameters are unchanged.
func (m *MAML) Step(ctx context.Context, b *tasks.Batch) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	if m.Optimizer == nil {
		m.Optimizer = &Adam{}
	}
	grads, all, st, done, err := m.stepGradient(b)
	if err != nil {
		return st, err
	}
	if done {
		m.steps++
		return st, nil
	}
	if err := m.Optimizer.Update(all, grads); err != nil {
		return st, err
	}
	m.steps++
	return st, nil
}

// stepGradient computes Step's meta-gradient and what it updates; done
// reports that the update already ran on the Device.
func (m *MAML) stepGradient(b *tasks.Batch) (grads [][]float64, all *graph.Params, st Stats, done bool, err error) {
	if m.checkpointed() {
		if grads, st, err = m.ckMetaGradient(b); err != nil {
			return nil, nil, st, false, err
		}
		all, err = m.trained()
		return grads, all, st, false, err
	}
	p, all, st, err := m.metaRun(b)
	if err != nil {
		return nil, nil, st, false, err
	}
	if do, ok := m.Optimizer.(deviceOptimizer); ok && m.Device != nil {
		// The update runs where the gradients are, if the device can.
		u := &deviceUpdate{plan: p.plan, params: all, inputs: p.inputs, grads: p.grads, step: m.steps + 1,
			what: func(i int) string { return "meta-gradient of " + all.At(i).Name }}
		if done, err = do.updateOnDevice(u); err != nil || done {
			return nil, nil, st, done, err
		}
	}
	grads, err = m.readGrads(p, all, true)
	return grads, all, st, false, err
}

// MetaGradient returns the gradient of the mean query loss after
// adaptation (MAMLPP: of its meta-objective) with respect to each
// parameter, without updating anything.
func (m *MAML) MetaGradient(b *tasks.Batch) ([][]float64, Stats, error) {
	if m.checkpointed() {
		return m.ckMetaGradient(b)
	}
	p, all, st, err := m.metaRun(b)
	if err != nil {
		return nil, st, err
	}
	grads, err := m.readGrads(p, all, false)
	return grads, st, err
}

// readGrads reads the meta-gradient of a run of p and checks it is
// finite. With reuse set it reads into buffers kept from the last call,
// which the next call overwrites (Step's, which its optimiser uses at
// once); otherwise into new ones.
func (m *MAML) readGrads(p *program, all *graph.Params, reuse bool) ([][]float64, error) {
	step := m.steps + 1
	var grads [][]float64
	switch {
	case !reuse:
		grads = make([][]float64, len(p.grads))
	case len(m.gradBuf) == len(p.grads):
		grads = m.gradBuf
	default:
		m.gradBuf = make([][]float64, len(p.grads))
		grads = m.gradBuf
	}
	for i, g := range p.grads {
		var err error
		if grads[i], err = p.plan.AppendFloat64s(grads[i][:0], g); err != nil {
			return nil, err
		}
		for _, v := range grads[i] {
			if !finite(v) {
				return nil, &NonFiniteError{Step: step, What: "meta-gradient of " + all.At(i).Name}
			}
		}
	}
	return grads, nil
}

// metaRun runs the training program on b with the meta-trained parameters
// and checks the losses it reports.
func (m *MAML) metaRun(b *tasks.Batch) (*program, *graph.Params, Stats, error) {
	if err := m.check(); err != nil {
		return nil, nil, Stats{}, err
	}
	all, err := m.trained()
	if err != nil {
		return nil, nil, Stats{}, err
	}
	p, err := m.program(b, m.innerSteps(), true)
	if err != nil {
		return nil, nil, Stats{}, err
	}
	if err := p.letWeights(m.multiStepWeights(m.innerSteps()), all.At(0).Value.Dtype()); err != nil {
		return nil, nil, Stats{}, err
	}
	if err := p.run(all, b); err != nil {
		return nil, nil, Stats{}, err
	}
	step := m.steps + 1
	st := Stats{PreLoss: math.NaN()}
	measured := true
	switch {
	case p.pre != nil:
		pre, err := p.plan.ReadFloat64s(p.pre)
		if err != nil {
			return nil, nil, st, err
		}
		st.PreLoss = pre[0]
	case m.measuresPre(step):
		if st.PreLoss, err = m.preLoss(b, p); err != nil {
			return nil, nil, st, err
		}
	default:
		measured = false
	}
	post, err := p.plan.ReadFloat64s(p.post)
	if err != nil {
		return nil, nil, st, err
	}
	st.PostLoss = post[0]
	if measured && !finite(st.PreLoss) {
		return nil, nil, st, &NonFiniteError{Step: step, What: "query loss before adaptation"}
	}
	if !finite(st.PostLoss) {
		return nil, nil, st, &NonFiniteError{Step: step, What: "query loss after adaptation"}
	}
	return p, all, st, nil
}

// measuresPre reports whether the 1-based step measures the query loss
// at θ (see PreLossEvery).
func (m *MAML) measuresPre(step int) bool {
	return m.PreLossEvery <= 1 || (step-1)%m.PreLossEvery == 0
}

// preLoss returns the mean query loss of b at θ from the forward pass
// beside the training program t (see preProgram).
func (m *MAML) preLoss(b *tasks.Batch, t *program) (float64, error) {
	all, err := m.trained()
	if err != nil {
		return 0, err
	}
	p, err := m.preProgram(b.Shape(), t)
	if err != nil {
		return 0, err
	}
	if err := p.run(all, b); err != nil {
		return 0, err
	}
	pre, err := p.plan.ReadFloat64s(p.pre)
	if err != nil {
		return 0, err
	}
	return pre[0], nil
}

// preProgram returns the graph of the query loss at θ alone (the
// evaluation graph without inner steps) for batches of shape s, which
// measures PreLoss beside the training program t when t leaves it out.
// On the CPU it takes its buffers from t's pool, so that the two hold
// the buffers of the larger, t's; it is rebuilt when t is.
func (m *MAML) preProgram(s tasks.Shape, t *program) (*program, error) {
	k := programKey{s.Tasks, s.Support, s.Query, s.In, s.Out, 0, false, false, false, false, true}
	if p, ok := m.programs[k]; ok && p.beside != t.plan {
		p.plan.Close()
		delete(m.programs, k)
	}
	return cached(&m.programs, k, func(k programKey) (*program, error) {
		p, err := m.build(k)
		if err != nil {
			return nil, err
		}
		p.beside = t.plan
		if m.Device == nil {
			if err := p.plan.SharePool(t.plan); err != nil {
				p.plan.Close()
				return nil, err
			}
		}
		return p, nil
	})
}

// Evaluate adapts to each task of b with up to steps inner steps and
// returns the query loss of every task after 0, 1, ..., steps steps:
// losses[s][t].
func (m *MAML) Evaluate(b *tasks.Batch, steps int) ([][]float64, error) {
	e, _, err := m.evaluate(b, steps, false, false)
	return e.Loss, err
}

// Predict adapts to each task of b with up to steps inner steps, as
// Evaluate does, and returns the model's outputs on b's query inputs after
// 0, 1, ..., steps steps: out[s] holds b.Tasks·b.Query·b.Out values, task
// by task and example by example. b's query targets enter only the losses
// that Predict does not return, so they may be zeros.
func (m *MAML) Predict(b *tasks.Batch, steps int) ([][]float64, error) {
	_, preds, err := m.evaluate(b, steps, false, true)
	return preds, err
}

// EvaluateClassifier adapts to each task of b, a classification batch
// with one-hot targets, with up to steps inner steps and returns the query
// loss and accuracy of every task after 0, 1, ..., steps steps. It returns
// an error if a query target row is not one-hot.
func (m *MAML) EvaluateClassifier(b *tasks.Batch, steps int) (Evaluation, error) {
	e, _, err := m.evaluate(b, steps, true, false)
	return e, err
}

// evaluate runs the evaluation program on b and reads the query losses,
// with accuracy the accuracies and F1 scores too, and with predict the
// query predictions.
func (m *MAML) evaluate(b *tasks.Batch, steps int, accuracy, predict bool) (e Evaluation, preds [][]float64, err error) {
	if err := m.check(); err != nil {
		return Evaluation{}, nil, err
	}
	if steps < 0 {
		return Evaluation{}, nil, fmt.Errorf("learners: Evaluate: %d steps", steps)
	}
	var labels []int
	if accuracy {
		var err error
		if labels, err = classLabels(b); err != nil {
			return Evaluation{}, nil, err
		}
	}
	all, err := m.trained()
	if err != nil {
		return Evaluation{}, nil, err
	}
	p, err := m.program(b, steps, false)
	if err != nil {
		return Evaluation{}, nil, err
	}
	if err := p.run(all, b); err != nil {
		return Evaluation{}, nil, err
	}
	for s, l := range p.losses {
		loss, err := p.plan.ReadFloat64s(l)
		if err != nil {
			return Evaluation{}, nil, err
		}
		e.Loss = append(e.Loss, loss)
		if !accuracy && !predict {
			continue
		}
		pred, err := p.plan.ReadFloat64s(p.preds[s])
		if err != nil {
			return Evaluation{}, nil, err
		}
		if predict {
			preds = append(preds, pred)
		}
		if accuracy {
			e.Accuracy = append(e.Accuracy, accuracyPerTask(pred, labels, b.Tasks, b.Out))
			e.F1 = append(e.F1, f1PerTask(pred, labels, b.Tasks, b.Out))
		}
	}
	return e, preds, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// run binds the meta-trained parameters (by name) and b's data, and runs
// the program.
func (p *program) run(params *graph.Params, b *tasks.Batch) error {
	for i := 0; i < params.Len(); i++ {
		if err := p.plan.Let(params.At(i).Name, params.At(i).Value); err != nil {
			return err
		}
	}
	dt := params.At(0).Value.Dtype()
	shapes := [4][]int{{b.Tasks, b.Support, b.In}, {b.Tasks, b.Support, b.Out}, {b.Tasks, b.Query, b.In}, {b.Tasks, b.Query, b.Out}}
	for i, d := range [4][]float64{b.SupportX, b.SupportY, b.QueryX, b.QueryY} {
		t, err := graph.NewTensor(dt, shapes[i], d)
		if err != nil {
			return fmt.Errorf("learners: %s: %w", dataNames[i], err)
		}
		if err := p.plan.Let(dataNames[i], t); err != nil {
			return err
		}
	}
	return p.plan.Run()
}

// program returns the compiled graph for b's shape, building it on first
// use.
func (m *MAML) program(b *tasks.Batch, steps int, train bool) (*program, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	p, err := m.programFor(b.Shape(), steps, train)
	if err != nil {
		return nil, err
	}
	m.last = p.plan
	return p, nil
}

// programFor returns the compiled graph for batches of shape s.
func (m *MAML) programFor(s tasks.Shape, steps int, train bool) (*program, error) {
	if set := m.settings(); set != m.built {
		closePlans(m.programs)
		closeCk(m.ckPrograms)
		m.programs, m.ckPrograms, m.built, m.builtLoss, m.last = nil, nil, set, m.Loss, nil // settings changed: rebuild
	}
	k := programKey{s.Tasks, s.Support, s.Query, s.In, s.Out, steps, train, false, m.FirstOrder, false, false}
	if train {
		k.multiStep = m.multiStepWeights(steps) != nil
		k.firstOrder = m.FirstOrder || m.steps < m.inner.firstOrderFor
		k.noPre = m.PreLossEvery > 1
		// MAML++'s phases end for good, and so do the graphs of an
		// earlier PreLossEvery: drop them.
		for old, p := range m.programs {
			if old.train && old != k && old.steps == k.steps && old.tasks == k.tasks && old.support == k.support && old.query == k.query &&
				(old.multiStep && !k.multiStep || old.firstOrder && !k.firstOrder || old.noPre != k.noPre) {
				p.plan.Close()
				delete(m.programs, old)
			}
		}
	}
	return cached(&m.programs, k, m.build)
}

// multiStepWeights returns MAML++'s weights of the query losses after
// inner steps 1, ..., steps in the objective of the next iteration, or nil
// when the objective is the last step's loss alone: without the
// multi-step loss, with one inner step, and after iteration multiStep.
// Over the first multiStep iterations, each weight but the last falls
// linearly from 1/steps to a floor of 0.03/steps and the last grows to
// keep their sum 1 (Antoniou et al. 2019, with iterations for epochs).
func (m *MAML) multiStepWeights(steps int) []float64 {
	n := m.inner.multiStep
	if n <= 0 || steps <= 1 || m.steps >= n {
		return nil
	}
	s, done := float64(steps), float64(m.steps)/float64(n)
	w := make([]float64, steps)
	for i := range w[:steps-1] {
		w[i] = max((1-done)/s, 0.03/s)
	}
	w[steps-1] = min((1+done*(s-1))/s, 1-(s-1)*0.03/s)
	return w
}

// letWeights binds the multi-step loss's weights w to p's inputs; p must
// have them exactly when w is not nil.
func (p *program) letWeights(w []float64, dt tensor.Dtype) error {
	if len(w) != len(p.weights) {
		return fmt.Errorf("learners: %d multi-step loss weights for a graph of %d", len(w), len(p.weights))
	}
	for i, v := range w {
		t, err := graph.NewTensor(dt, []int{1}, []float64{v})
		if err != nil {
			return err
		}
		if err := p.plan.Let(p.weights[i].Name(), t); err != nil {
			return err
		}
	}
	return nil
}

// PrepareStep compiles the graph that Step runs on batches of shape s, if
// it is not compiled yet, and returns the memory such a Step needs besides
// the batch and the optimiser's state, in bytes: the graph's buffers
// (graph.Plan.Bytes), the batch's tensors and the meta-gradient read
// back. A caller can so refuse a run that would not fit before it draws a
// batch; a graph that cannot fit in memory at all is refused here with a
// *graph.MemoryError.
func (m *MAML) PrepareStep(s tasks.Shape) (int64, error) {
	if err := m.check(); err != nil {
		return 0, err
	}
	if err := s.Validate(); err != nil {
		return 0, err
	}
	all, err := m.trained()
	if err != nil {
		return 0, err
	}
	if m.checkpointed() {
		c, err := m.ckProgramFor(s)
		if err != nil {
			return 0, err
		}
		// θ′ after every inner step, the adjoints and the step read
		// back, in float64; the per-task parameters bound as tensors in
		// each of the four graphs, and the adjoints in one; the batch's
		// halves bound in two graphs each.
		perTask := int64(s.Tasks) * int64(m.Params.Size())
		states := int64(m.innerSteps()+3) * perTask * 8
		bound := 5 * perTask * int64(all.At(0).Value.Dtype().Size())
		return c.bytes() + 2*tensorBytes(s, all) + s.Bytes() + states + bound + 8*int64(all.Size()), nil
	}
	p, err := m.programFor(s, m.innerSteps(), true)
	if err != nil {
		return 0, err
	}
	n := p.plan.Bytes()
	if p.pre == nil { // PreLoss measured beside it
		q, err := m.preProgram(s, p)
		if err != nil {
			return 0, err
		}
		if m.Device == nil {
			n = graph.SharedBytes(p.plan, q.plan)
		} else {
			n += q.plan.Bytes() + tensorBytes(s, all)
		}
	}
	return n + tensorBytes(s, all) + 8*int64(all.Size()), nil
}

// PrepareEvaluate is PrepareStep for an evaluation with steps inner steps
// (Evaluate and EvaluateClassifier) on batches of shape s; the figure
// includes the results.
func (m *MAML) PrepareEvaluate(s tasks.Shape, steps int) (int64, error) {
	if err := m.check(); err != nil {
		return 0, err
	}
	if err := s.Validate(); err != nil {
		return 0, err
	}
	if steps < 0 {
		return 0, fmt.Errorf("learners: Evaluate: %d steps", steps)
	}
	all, err := m.trained()
	if err != nil {
		return 0, err
	}
	p, err := m.programFor(s, steps, false)
	if err != nil {
		return 0, err
	}
	return p.plan.Bytes() + tensorBytes(s, all) + resultBytes(s, steps), nil
}

// tensorBytes is the memory of a batch of shape s as tensors of params'
// type.
func tensorBytes(s tasks.Shape, params *graph.Params) int64 {
	return s.Bytes() / 8 * int64(params.At(0).Value.Dtype().Size())
}

// resultBytes bounds the memory an evaluation's results take: per task
// and step a loss, an accuracy and an F1, and the predictions of a step.
func resultBytes(s tasks.Shape, steps int) int64 {
	perStep := 8 * int64(s.Tasks) * (3 + int64(s.Query)*int64(s.Out))
	return perStep * int64(steps+1)
}

// cached returns the program for key from programs, building it with
// build on first use.
func cached[K comparable, P any](programs *map[K]P, key K, build func(K) (P, error)) (P, error) {
	if p, ok := (*programs)[key]; ok {
		return p, nil
	}
	p, err := build(key)
	if err != nil {
		return p, err
	}
	if *programs == nil {
		*programs = make(map[K]P)
	}
	(*programs)[key] = p
	return p, nil
}

// Placement reports where the ops of the graph last run (by Step or an
// evaluation) ran: how many on Device and on the CPU. It is the zero
// Placement before the first run.
func (m *MAML) Placement() graph.Placement { return placement(m.last) }

// placement is p's Placement, or the zero Placement for nil.
func placement(p *graph.Plan) graph.Placement {
	if p == nil {
		return graph.Placement{}
	}
	return p.Placement()
}

// settings describes everything the compiled graphs depend on besides the
// batch shape.
func (m *MAML) settings() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%#v|%s|%v|%v|%v|%v|%v|", m.Model, lossKey(m.Loss), m.innerLR(), m.FirstOrder, m.inner.frozen, m.inner.norm, deviceName(m.Device))
	for _, p := range []*graph.Params{m.Params, m.inner.rates, m.inner.stepRates, m.inner.stepNorm} {
		if p != nil {
			writeParamsKey(&b, p)
		}
		b.WriteByte('|')
	}
	return b.String()
}

// writeParamsKey writes the names, shapes and dtypes of p's parameters to
// b (a part of a learner's settings; without fmt, which allocates per
// argument, since Step compares the settings every time).
func writeParamsKey(b *strings.Builder, p *graph.Params) {
	for i := 0; i < p.Len(); i++ {
		q := p.At(i)
		b.WriteString(q.Name)
		b.WriteByte('(')
		for _, d := range q.Value.Shape() {
			b.WriteString(strconv.Itoa(d))
			b.WriteByte(',')
		}
		b.WriteByte(')')
		b.WriteString(q.Value.Dtype().String())
		b.WriteByte(';')
	}
}

// build declares the meta-batch graph:
//
//	θT  = broadcast θ over tasks
//	θ′₀ = θT;  θ′ₛ₊₁ = θ′ₛ − α ∇ Σ_t L_support,t(θ′ₛ)   (per task)
//	L   = mean_t L_query,t(θ′_S);  meta-gradient = ∂L/∂θ
//
// α is InnerLR, or with learned rates (Meta-SGD) an input of θ's shape
// broadcast over tasks and multiplied elementwise, whose meta-gradient
// ∂L/∂α is an output too. Frozen parameters (ANIL's trunk) keep θT in the
// inner loop and are left out of its gradients.
func (m *MAML) build(k programKey) (p *program, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("learners: building the MAML graph: %v", r)
		}
	}()
	g := G.NewGraph()
	p = &program{}
	dt := m.Params.At(0).Value.Dtype()
	shapes := [4]tensor.Shape{{k.tasks, k.support, k.in}, {k.tasks, k.support, k.out}, {k.tasks, k.query, k.in}, {k.tasks, k.query, k.out}}
	for i := range p.data {
		p.data[i] = G.NewTensor(g, dt, 3, G.WithShape(shapes[i]...), G.WithName(dataNames[i]))
	}
	input := func(q graph.Param) (*G.Node, *G.Node, error) {
		n := G.NewTensor(g, dt, q.Value.Dims(), G.WithShape(q.Value.Shape()...), G.WithName(q.Name))
		p.inputs = append(p.inputs, n)
		bn, err := graph.Broadcast(n, 0, k.tasks)
		return n, bn, err
	}
	adapted := make(G.Nodes, m.Params.Len())
	for i := 0; i < m.Params.Len(); i++ {
		if _, adapted[i], err = input(m.Params.At(i)); err != nil {
			return nil, err
		}
	}
	var rates G.Nodes // α broadcast over tasks, with learned rates
	if r := m.inner.rates; r != nil {
		rates = make(G.Nodes, r.Len())
		for i := range rates {
			if _, rates[i], err = input(r.At(i)); err != nil {
				return nil, err
			}
		}
	}
	var stepRates G.Nodes // MAML++'s, as given: [1] each
	if r := m.inner.stepRates; r != nil {
		stepRates = make(G.Nodes, r.Len())
		for i := range stepRates {
			if stepRates[i], _, err = input(r.At(i)); err != nil {
				return nil, err
			}
		}
	}
	var norms G.Nodes // MAML++'s per-step normalisation weights, broadcast
	if r := m.inner.stepNorm; r != nil {
		norms = make(G.Nodes, r.Len())
		for i := range norms {
			if _, norms[i], err = input(r.At(i)); err != nil {
				return nil, err
			}
		}
	}
	// at returns the parameters of the forward passes after k inner
	// steps: with per-step normalisation, the copy of the weights for k.
	at := func(k int, params G.Nodes) G.Nodes {
		nn := len(m.inner.norm)
		if norms == nil || k == 0 || nn == 0 {
			return params
		}
		c := min(k, len(norms)/nn) - 1
		if c < 0 {
			return params
		}
		out := append(G.Nodes(nil), params...)
		for j, i := range m.inner.norm {
			out[i] = norms[c*nn+j]
		}
		return out
	}
	var inner []int // the parameters the inner loop adapts
	for i := range adapted {
		if (m.inner.frozen == nil || !m.inner.frozen[i]) && (norms == nil || !slices.Contains(m.inner.norm, i)) {
			inner = append(inner, i)
		}
	}
	queryLoss := func(params G.Nodes) (*G.Node, *G.Node, error) {
		pred, err := forward(m.Model, p.data[2], params)
		if err != nil {
			return nil, nil, err
		}
		l, err := lossPerTask(m.Loss, pred, p.data[3])
		return pred, l, err
	}
	record := func(params G.Nodes) error {
		pred, l, err := queryLoss(params)
		if err != nil {
			return err
		}
		p.losses = append(p.losses, l)
		p.preds = append(p.preds, pred)
		return nil
	}
	if !k.noPre {
		if err := record(adapted); err != nil {
			return nil, err
		}
	}
	for s := 0; s < k.steps; s++ {
		pred, err := forward(m.Model, p.data[0], at(s, adapted))
		if err != nil {
			return nil, err
		}
		ls, err := lossPerTask(m.Loss, pred, p.data[1])
		if err != nil {
			return nil, err
		}
		total, err := graph.SumAxis(ls, 0)
		if err != nil {
			return nil, err
		}
		wrt := make(G.Nodes, len(inner))
		for j, i := range inner {
			wrt[j] = adapted[i]
		}
		grads, err := graph.Grad(total, wrt...)
		if err != nil {
			return nil, err
		}
		next := append(G.Nodes(nil), adapted...)
		for j, i := range inner {
			gr := grads[j]
			if k.firstOrder {
				if gr, err = graph.StopGradient(gr); err != nil {
					return nil, err
				}
			}
			var step *G.Node
			switch {
			case stepRates != nil:
				n := len(adapted)
				var r *G.Node
				if r, err = expand(stepRates[min(s, len(stepRates)/n-1)*n+i], gr.Shape()); err == nil {
					step, err = G.HadamardProd(r, gr)
				}
			case rates != nil:
				step, err = G.HadamardProd(rates[i], gr)
			default:
				step, err = graph.Scale(gr, m.innerLR())
			}
			if err != nil {
				return nil, fmt.Errorf("learners: inner step: %v", err)
			}
			if next[i], err = G.Sub(adapted[i], step); err != nil {
				return nil, fmt.Errorf("learners: inner step: %v", err)
			}
		}
		adapted = next
		if !k.train || k.multiStep || s == k.steps-1 {
			if err := record(at(s+1, adapted)); err != nil {
				return nil, err
			}
		}
	}
	mean := func(l *G.Node) (*G.Node, error) {
		s, err := graph.SumAxis(l, 0)
		if err != nil {
			return nil, err
		}
		return graph.Scale(s, 1/float64(k.tasks))
	}
	outputs := G.Nodes{}
	if !k.noPre {
		if p.pre, err = mean(p.losses[0]); err != nil {
			return nil, err
		}
		outputs = append(outputs, p.pre)
	}
	if p.post, err = mean(p.losses[len(p.losses)-1]); err != nil {
		return nil, err
	}
	outputs = append(append(outputs, p.post), p.losses...)
	if k.train {
		p.preds = nil
		objective := p.post
		if k.multiStep {
			after := p.losses // the query losses after inner steps 1, ..., S
			if !k.noPre {
				after = after[1:]
			}
			if objective, err = p.weighted(g, dt, k.tasks, after); err != nil {
				return nil, err
			}
		}
		if p.grads, err = graph.Grad(objective, p.inputs...); err != nil {
			return nil, err
		}
		outputs = append(outputs, p.grads...)
	} else {
		outputs = append(outputs, p.preds...)
	}
	if p.plan, err = graph.CompileOn(m.Device, g, outputs...); err != nil {
		return nil, err
	}
	return p, nil
}

// expand returns x, of shape [1], repeated to shape.
func expand(x *G.Node, shape tensor.Shape) (*G.Node, error) {
	b, err := graph.Broadcast(x, 0, shape.TotalSize())
	if err != nil {
		return nil, err
	}
	return G.Reshape(b, shape)
}

// weighted declares MAML++'s multi-step objective over the per-task query
// losses after inner steps 1, ..., S: Σₛ wₛ · mean_t L_query,t(θ′ₛ), the
// weights wₛ inputs of shape [1].
func (p *program) weighted(g *G.ExprGraph, dt tensor.Dtype, tasks int, after G.Nodes) (*G.Node, error) {
	var sum *G.Node
	for s, l := range after {
		w := G.NewTensor(g, dt, 1, G.WithShape(1), G.WithName(fmt.Sprintf("multistep.%d", s+1)))
		p.weights = append(p.weights, w)
		wt, err := expand(w, l.Shape())
		if err != nil {
			return nil, err
		}
		term, err := G.HadamardProd(wt, l)
		if err != nil {
			return nil, err
		}
		if term, err = graph.SumAxis(term, 0); err != nil {
			return nil, err
		}
		if term, err = graph.Scale(term, 1/float64(tasks)); err != nil {
			return nil, err
		}
		if sum == nil {
			sum = term
		} else if sum, err = G.Add(sum, term); err != nil {
			return nil, err
		}
	}
	return sum, nil
}

// deviceName names d for the settings strings that decide when to rebuild.
func deviceName(d graph.Device) string {
	if d == nil {
		return "cpu"
	}
	return fmt.Sprintf("%p %s", d, d)
}

// closePlans releases the compiled plans of programs (their device
// buffers) before they are rebuilt.
func closePlans[K comparable, P interface{ machine() *graph.Plan }](programs map[K]P) {
	for _, p := range programs {
		if m := p.machine(); m != nil {
			m.Close()
		}
	}
}

func (p *program) machine() *graph.Plan { return p.plan }
