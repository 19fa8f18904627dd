package learners

import (
	"context"
	"errors"
	"fmt"
	"math"

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
// MSE, InnerLR 0.01, InnerSteps 1, Optimizer Adam with learning rate 1e-3.
// Params holds θ and is updated in place by Step. Fields may be changed
// between calls; the compiled graphs are rebuilt when they are.
type MAML struct {
	Model      Model
	Params     *graph.Params
	Loss       Loss
	InnerLR    float64
	InnerSteps int
	FirstOrder bool
	Optimizer  Optimizer

	steps    int
	programs map[programKey]*program
	built    string // the settings the programs were built with
}

// Stats are the statistics of one meta-batch.
type Stats struct {
	PreLoss  float64 // mean query loss at θ, before adaptation
	PostLoss float64 // mean query loss at θ′, after adaptation
}

type programKey struct {
	tasks, support, query, in, out int
	steps                          int
	train                          bool
}

// program is a compiled graph for one meta-batch shape.
type program struct {
	plan   *graph.Plan
	theta  G.Nodes // inputs, one per parameter
	data   [4]*G.Node
	losses G.Nodes // per-task query loss [tasks] after 0..steps inner steps
	pre    *G.Node // mean query loss at θ
	post   *G.Node // mean query loss at θ′
	grads  G.Nodes // meta-gradient, one per parameter (training only)
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
	return nil
}

// Step runs one outer update on a meta-batch and returns the losses
// measured before the update. On error (including a non-finite loss or
// gradient, reported as *NonFiniteError) the parameters are unchanged.
func (m *MAML) Step(ctx context.Context, b *tasks.Batch) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	grads, st, err := m.MetaGradient(b)
	if err != nil {
		return st, err
	}
	if m.Optimizer == nil {
		m.Optimizer = &Adam{}
	}
	if err := m.Optimizer.Update(m.Params, grads); err != nil {
		return st, err
	}
	m.steps++
	return st, nil
}

// MetaGradient returns the gradient of the mean query loss after
// adaptation with respect to each parameter, without updating anything.
func (m *MAML) MetaGradient(b *tasks.Batch) ([][]float64, Stats, error) {
	if err := m.check(); err != nil {
		return nil, Stats{}, err
	}
	p, err := m.program(b, m.innerSteps(), true)
	if err != nil {
		return nil, Stats{}, err
	}
	if err := p.run(m.Params, b); err != nil {
		return nil, Stats{}, err
	}
	step := m.steps + 1
	var st Stats
	pre, _ := p.plan.ReadFloat64s(p.pre)
	post, _ := p.plan.ReadFloat64s(p.post)
	st.PreLoss, st.PostLoss = pre[0], post[0]
	if !finite(st.PreLoss) {
		return nil, st, &NonFiniteError{Step: step, What: "query loss before adaptation"}
	}
	if !finite(st.PostLoss) {
		return nil, st, &NonFiniteError{Step: step, What: "query loss after adaptation"}
	}
	grads := make([][]float64, len(p.grads))
	for i, g := range p.grads {
		if grads[i], err = p.plan.ReadFloat64s(g); err != nil {
			return nil, st, err
		}
		for _, v := range grads[i] {
			if !finite(v) {
				return nil, st, &NonFiniteError{Step: step, What: "meta-gradient of " + m.Params.At(i).Name}
			}
		}
	}
	return grads, st, nil
}

// Evaluate adapts to each task of b with up to steps inner steps and
// returns the query loss of every task after 0, 1, ..., steps steps:
// losses[s][t].
func (m *MAML) Evaluate(b *tasks.Batch, steps int) ([][]float64, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	if steps < 0 {
		return nil, fmt.Errorf("learners: Evaluate: %d steps", steps)
	}
	p, err := m.program(b, steps, false)
	if err != nil {
		return nil, err
	}
	if err := p.run(m.Params, b); err != nil {
		return nil, err
	}
	out := make([][]float64, len(p.losses))
	for s, l := range p.losses {
		if out[s], err = p.plan.ReadFloat64s(l); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func (p *program) run(params *graph.Params, b *tasks.Batch) error {
	for i := range p.theta {
		if err := p.plan.Let(p.theta[i].Name(), params.At(i).Value); err != nil {
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
	if s := m.settings(); s != m.built {
		m.programs, m.built = nil, s // settings changed: rebuild
	}
	key := programKey{b.Tasks, b.Support, b.Query, b.In, b.Out, steps, train}
	if p, ok := m.programs[key]; ok {
		return p, nil
	}
	p, err := m.build(key)
	if err != nil {
		return nil, err
	}
	if m.programs == nil {
		m.programs = make(map[programKey]*program)
	}
	m.programs[key] = p
	return p, nil
}

// settings describes everything the compiled graphs depend on besides the
// batch shape.
func (m *MAML) settings() string {
	s := fmt.Sprintf("%#v|%v|%v|%v|", m.Model, m.Loss, m.innerLR(), m.FirstOrder)
	for i := 0; i < m.Params.Len(); i++ {
		q := m.Params.At(i)
		s += fmt.Sprintf("%s%v%v;", q.Name, q.Value.Shape(), q.Value.Dtype())
	}
	return s
}

// build declares the meta-batch graph:
//
//	θT  = broadcast θ over tasks
//	θ′₀ = θT;  θ′ₛ₊₁ = θ′ₛ − α ∇ Σ_t L_support,t(θ′ₛ)   (per task)
//	L   = mean_t L_query,t(θ′_S);  meta-gradient = ∂L/∂θ
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
	adapted := make(G.Nodes, m.Params.Len())
	for i := 0; i < m.Params.Len(); i++ {
		q := m.Params.At(i)
		n := G.NewTensor(g, dt, q.Value.Dims(), G.WithShape(q.Value.Shape()...), G.WithName(q.Name))
		p.theta = append(p.theta, n)
		if adapted[i], err = graph.Broadcast(n, 0, k.tasks); err != nil {
			return nil, err
		}
	}
	queryLoss := func(params G.Nodes) (*G.Node, error) {
		pred, err := m.Model.Forward(p.data[2], params)
		if err != nil {
			return nil, err
		}
		return m.Loss.perTask(pred, p.data[3])
	}
	l0, err := queryLoss(adapted)
	if err != nil {
		return nil, err
	}
	p.losses = append(p.losses, l0)
	for s := 0; s < k.steps; s++ {
		pred, err := m.Model.Forward(p.data[0], adapted)
		if err != nil {
			return nil, err
		}
		ls, err := m.Loss.perTask(pred, p.data[1])
		if err != nil {
			return nil, err
		}
		total, err := graph.SumAxis(ls, 0)
		if err != nil {
			return nil, err
		}
		grads, err := graph.Grad(total, adapted...)
		if err != nil {
			return nil, err
		}
		next := make(G.Nodes, len(adapted))
		for i, gr := range grads {
			if m.FirstOrder {
				if gr, err = graph.StopGradient(gr); err != nil {
					return nil, err
				}
			}
			step, err := graph.Scale(gr, m.innerLR())
			if err != nil {
				return nil, err
			}
			if next[i], err = G.Sub(adapted[i], step); err != nil {
				return nil, fmt.Errorf("learners: inner step: %v", err)
			}
		}
		adapted = next
		if !k.train || s == k.steps-1 {
			l, err := queryLoss(adapted)
			if err != nil {
				return nil, err
			}
			p.losses = append(p.losses, l)
		}
	}
	mean := func(l *G.Node) (*G.Node, error) {
		s, err := graph.SumAxis(l, 0)
		if err != nil {
			return nil, err
		}
		return graph.Scale(s, 1/float64(k.tasks))
	}
	if p.pre, err = mean(p.losses[0]); err != nil {
		return nil, err
	}
	if p.post, err = mean(p.losses[len(p.losses)-1]); err != nil {
		return nil, err
	}
	outputs := append(G.Nodes{p.pre, p.post}, p.losses...)
	if k.train {
		if p.grads, err = graph.Grad(p.post, p.theta...); err != nil {
			return nil, err
		}
		outputs = append(outputs, p.grads...)
	}
	if p.plan, err = graph.Compile(g, outputs...); err != nil {
		return nil, err
	}
	return p, nil
}
