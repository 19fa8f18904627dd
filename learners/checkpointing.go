package learners

import (
	"fmt"
	"math"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Gradient checkpointing for second-order MAML (MAML.GradCheckpoint).
//
// The inner loop is the map θ′ₛ₊₁ = Tₛ(θ′ₛ) = θ′ₛ − α ⊙ ∇Lₛ(θ′ₛ), per task,
// with the gradient taken only for the adapted parameters (ANIL's frozen
// trunk maps to itself). The meta-gradient is the adjoint of θ′₀ = θ
// broadcast over tasks, found by walking back from vₛ = ∇L_query(θ′_S):
//
//	vₛ = Tₛ′(θ′ₛ)ᵀ vₛ₊₁ = vₛ₊₁ − ∇_θ′ ⟨α ⊙ ∇Lₛ(θ′ₛ), vₛ₊₁⟩
//
// a Hessian-vector product at θ′ₛ (double backward through one step), and
// with learned rates ∂L/∂α gains −Σₜ ∇Lₛ(θ′ₛ) ⊙ vₛ₊₁ at every step. So only
// θ′₀ … θ′_S are kept between the graphs' runs, and each run holds the
// activations of one step: memory that does not grow with the inner
// steps, for one more forward and backward pass of the support set per
// step.

// ckProgram is the compiled graphs of checkpointed training for one
// meta-batch shape.
type ckProgram struct {
	step   *ckGraph // θ′ₛ ↦ θ′ₛ₊₁
	back   *ckGraph // (θ′ₛ, vₛ₊₁) ↦ vₛ and the step's part of ∂L/∂α
	loss   *ckGraph // θ′ ↦ mean query loss
	grad   *ckGraph // θ′ ↦ mean query loss and its gradient
	dtype  tensor.Dtype
	shared bool // the plans share one pool of buffers (on the CPU)
}

// ckGraph is one of ckProgram's graphs.
type ckGraph struct {
	plan  *graph.Plan
	out   G.Nodes // step: θ′ₛ₊₁ (nil for frozen parameters); back: vₛ; grad: ∇ per task
	rates G.Nodes // back, with learned rates: −∂/∂α of the step
	mean  *G.Node // loss, grad: mean query loss
}

// ckKind says which of ckProgram's graphs to build.
type ckKind int

const (
	ckStep ckKind = iota
	ckBack
	ckLoss
	ckGrad
)

// vName names the input that carries the adjoint of parameter name.
func vName(name string) string { return "adjoint of " + name }

// checkpointed reports whether Step and MetaGradient run checkpointed.
func (m *MAML) checkpointed() bool { return m.GradCheckpoint && !m.FirstOrder }

// buildCk builds the checkpointed programs for shape k.
func (m *MAML) buildCk(k programKey) (*ckProgram, error) {
	c := &ckProgram{dtype: m.Params.At(0).Value.Dtype()}
	for kind, dst := range []**ckGraph{&c.step, &c.back, &c.loss, &c.grad} {
		g, err := m.buildCkGraph(k, ckKind(kind))
		if err != nil {
			c.close()
			return nil, err
		}
		*dst = g
	}
	if m.Device == nil {
		// They run one after the other: one pool serves them all.
		for _, g := range []*ckGraph{c.step, c.grad, c.back} {
			if err := g.plan.SharePool(c.loss.plan); err != nil {
				c.close()
				return nil, err
			}
		}
		c.shared = true
	}
	return c, nil
}

func (c *ckProgram) close() {
	for _, g := range []*ckGraph{c.step, c.back, c.loss, c.grad} {
		if g != nil && g.plan != nil {
			g.plan.Close()
		}
	}
}

// bytes is what the four graphs hold: on the CPU one pool of buffers for
// all, run in turn; on a device each its own.
func (c *ckProgram) bytes() int64 {
	if c.shared {
		return graph.SharedBytes(c.loss.plan, c.step.plan, c.grad.plan, c.back.plan)
	}
	var n int64
	for _, g := range []*ckGraph{c.step, c.back, c.loss, c.grad} {
		n += g.plan.Bytes()
	}
	return n
}

// buildCkGraph declares one graph of checkpointed training: its inputs
// are the per-task parameters [tasks, …] named as the parameters, the
// learned rates (as in build), the adjoints (back) and the support set
// (step, back) or the query set (loss, grad).
func (m *MAML) buildCkGraph(k programKey, kind ckKind) (c *ckGraph, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("learners: building the checkpointed MAML graph: %v", r)
		}
	}()
	g := G.NewGraph()
	c = &ckGraph{}
	dt := m.Params.At(0).Value.Dtype()
	n, names := k.support, dataNames[:2]
	if kind == ckLoss || kind == ckGrad {
		n, names = k.query, dataNames[2:]
	}
	x := G.NewTensor(g, dt, 3, G.WithShape(k.tasks, n, k.in), G.WithName(names[0]))
	y := G.NewTensor(g, dt, 3, G.WithShape(k.tasks, n, k.out), G.WithName(names[1]))
	theta := make(G.Nodes, m.Params.Len())
	for i := range theta {
		q := m.Params.At(i)
		theta[i] = G.NewTensor(g, dt, q.Value.Dims()+1, G.WithShape(append([]int{k.tasks}, q.Value.Shape()...)...), G.WithName(q.Name))
	}
	pred, err := forward(m.Model, x, theta)
	if err != nil {
		return nil, err
	}
	losses, err := lossPerTask(m.Loss, pred, y)
	if err != nil {
		return nil, err
	}
	var outputs G.Nodes
	switch kind {
	case ckLoss, ckGrad:
		s, err := graph.SumAxis(losses, 0)
		if err != nil {
			return nil, err
		}
		if c.mean, err = graph.Scale(s, 1/float64(k.tasks)); err != nil {
			return nil, err
		}
		outputs = G.Nodes{c.mean}
		if kind == ckGrad {
			if c.out, err = graph.Grad(c.mean, theta...); err != nil {
				return nil, err
			}
			outputs = append(outputs, c.out...)
		}
	case ckStep, ckBack:
		total, err := graph.SumAxis(losses, 0)
		if err != nil {
			return nil, err
		}
		var inner []int
		for i := range theta {
			if m.inner.frozen == nil || !m.inner.frozen[i] {
				inner = append(inner, i)
			}
		}
		wrt := make(G.Nodes, len(inner))
		for j, i := range inner {
			wrt[j] = theta[i]
		}
		grads, err := graph.Grad(total, wrt...)
		if err != nil {
			return nil, err
		}
		var rateIn G.Nodes // the rates as given
		steps := make(G.Nodes, len(inner))
		for j, i := range inner {
			if r := m.inner.rates; r != nil {
				q := r.At(i)
				in := G.NewTensor(g, dt, q.Value.Dims(), G.WithShape(q.Value.Shape()...), G.WithName(q.Name))
				rateIn = append(rateIn, in)
				bn, err := graph.Broadcast(in, 0, k.tasks)
				if err != nil {
					return nil, err
				}
				steps[j], err = G.HadamardProd(bn, grads[j])
			} else {
				steps[j], err = graph.Scale(grads[j], m.innerLR())
			}
			if err != nil {
				return nil, fmt.Errorf("learners: inner step: %v", err)
			}
		}
		if kind == ckStep {
			c.out = make(G.Nodes, len(theta))
			for j, i := range inner {
				if c.out[i], err = G.Sub(theta[i], steps[j]); err != nil {
					return nil, fmt.Errorf("learners: inner step: %v", err)
				}
				outputs = append(outputs, c.out[i])
			}
			break
		}
		// ⟨α ⊙ ∇Lₛ, v⟩ with v constant, and its gradient.
		v := make(G.Nodes, len(theta))
		for i := range theta {
			v[i] = G.NewTensor(g, dt, theta[i].Dims(), G.WithShape(theta[i].Shape()...), G.WithName(vName(m.Params.At(i).Name)))
		}
		var dot *G.Node
		for j, i := range inner {
			p, err := G.HadamardProd(steps[j], v[i])
			if err != nil {
				return nil, err
			}
			s, err := graph.SumAll(p)
			if err != nil {
				return nil, err
			}
			if dot == nil {
				dot = s
			} else if dot, err = G.Add(dot, s); err != nil {
				return nil, err
			}
		}
		d, err := graph.Grad(dot, append(append(G.Nodes(nil), theta...), rateIn...)...)
		if err != nil {
			return nil, err
		}
		c.out = make(G.Nodes, len(theta))
		for i := range theta {
			if c.out[i], err = G.Sub(v[i], d[i]); err != nil {
				return nil, err
			}
		}
		outputs = append(outputs, c.out...)
		for _, dr := range d[len(theta):] {
			neg, err := G.Neg(dr)
			if err != nil {
				return nil, err
			}
			c.rates = append(c.rates, neg)
		}
		outputs = append(outputs, c.rates...)
	}
	if c.plan, err = graph.CompileOn(m.Device, g, outputs...); err != nil {
		return nil, err
	}
	return c, nil
}

// ckState is a per-task value of every parameter, [tasks, …] flattened.
type ckState [][]float64

// run binds params (per-task values, by the parameters' names), the
// adjoints v if any, the rates and b's half of the data, and runs g.
func (m *MAML) runCk(c *ckProgram, g *ckGraph, b *tasks.Batch, params, v ckState, query bool) error {
	bind := func(name string, shape []int, data []float64) error {
		t, err := graph.NewTensor(c.dtype, shape, data)
		if err != nil {
			return fmt.Errorf("learners: %s: %w", name, err)
		}
		return g.plan.Let(name, t)
	}
	for i := 0; i < m.Params.Len(); i++ {
		q := m.Params.At(i)
		shape := append([]int{b.Tasks}, q.Value.Shape()...)
		if err := bind(q.Name, shape, params[i]); err != nil {
			return err
		}
		if v != nil {
			if err := bind(vName(q.Name), shape, v[i]); err != nil {
				return err
			}
		}
	}
	if r := m.inner.rates; r != nil && !query {
		for i := 0; i < r.Len(); i++ {
			if m.inner.frozen != nil && m.inner.frozen[i] {
				continue
			}
			if err := g.plan.Let(r.At(i).Name, r.At(i).Value); err != nil {
				return err
			}
		}
	}
	x, y, n := b.SupportX, b.SupportY, b.Support
	if query {
		x, y, n = b.QueryX, b.QueryY, b.Query
	}
	if err := bind(dataNames[0+2*bool2int(query)], []int{b.Tasks, n, b.In}, x); err != nil {
		return err
	}
	if err := bind(dataNames[1+2*bool2int(query)], []int{b.Tasks, n, b.Out}, y); err != nil {
		return err
	}
	m.last = g.plan
	return g.plan.Run()
}

func bool2int(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ckMetaGradient computes the meta-gradient checkpointed: the inner steps
// forward, keeping θ′ after each, then back through them one at a time.
func (m *MAML) ckMetaGradient(b *tasks.Batch) ([][]float64, Stats, error) {
	var st Stats
	if err := m.check(); err != nil {
		return nil, st, err
	}
	if err := b.Validate(); err != nil {
		return nil, st, err
	}
	c, err := m.ckProgramFor(b.Shape())
	if err != nil {
		return nil, st, err
	}
	step := m.steps + 1
	S := m.innerSteps()
	thetas := make([]ckState, S+1) // θ′₀ … θ′_S
	thetas[0] = make(ckState, m.Params.Len())
	for i := range thetas[0] {
		v, ok := graph.AppendFloat64s(nil, m.Params.At(i).Value)
		if !ok {
			return nil, st, fmt.Errorf("learners: parameter %s holds %T", m.Params.At(i).Name, m.Params.At(i).Value.Data())
		}
		thetas[0][i] = replicate1(v, b.Tasks)
	}
	st.PreLoss = math.NaN()
	if m.measuresPre(step) {
		if err := m.runCk(c, c.loss, b, thetas[0], nil, true); err != nil {
			return nil, st, err
		}
		if st.PreLoss, err = readScalar(c.loss.plan, c.loss.mean); err != nil {
			return nil, st, err
		}
		if !finite(st.PreLoss) {
			return nil, st, &NonFiniteError{Step: step, What: "query loss before adaptation"}
		}
	}
	for s := 0; s < S; s++ {
		if err := m.runCk(c, c.step, b, thetas[s], nil, false); err != nil {
			return nil, st, err
		}
		next := make(ckState, len(thetas[s]))
		for i, o := range c.step.out {
			if o == nil {
				next[i] = thetas[s][i] // frozen
				continue
			}
			if next[i], err = c.step.plan.ReadFloat64s(o); err != nil {
				return nil, st, err
			}
		}
		thetas[s+1] = next
	}
	if err := m.runCk(c, c.grad, b, thetas[S], nil, true); err != nil {
		return nil, st, err
	}
	if st.PostLoss, err = readScalar(c.grad.plan, c.grad.mean); err != nil {
		return nil, st, err
	}
	if !finite(st.PostLoss) {
		return nil, st, &NonFiniteError{Step: step, What: "query loss after adaptation"}
	}
	v := make(ckState, len(c.grad.out))
	for i, o := range c.grad.out {
		if v[i], err = c.grad.plan.ReadFloat64s(o); err != nil {
			return nil, st, err
		}
	}
	var rateGrads [][]float64
	if r := m.inner.rates; r != nil {
		rateGrads = make([][]float64, r.Len())
		for i := range rateGrads {
			rateGrads[i] = make([]float64, r.At(i).Value.Shape().TotalSize())
		}
	}
	for s := S - 1; s >= 0; s-- {
		if err := m.runCk(c, c.back, b, thetas[s], v, false); err != nil {
			return nil, st, err
		}
		for i, o := range c.back.out {
			if v[i], err = c.back.plan.ReadFloat64s(o); err != nil {
				return nil, st, err
			}
		}
		j := 0
		for i := range rateGrads {
			if m.inner.frozen != nil && m.inner.frozen[i] {
				continue
			}
			d, err := c.back.plan.ReadFloat64s(c.back.rates[j])
			if err != nil {
				return nil, st, err
			}
			for e, x := range d {
				rateGrads[i][e] += x
			}
			j++
		}
	}
	if c.shared && m.measuresPre(step) {
		c.loss.plan.TrimPool() // each graph has run
	}
	// θ′₀ is θ broadcast over tasks: its adjoint summed over them.
	grads := make([][]float64, 0, len(v)+len(rateGrads))
	for i, vi := range v {
		size := m.Params.At(i).Value.Shape().TotalSize()
		g := make([]float64, size)
		for t := 0; t < b.Tasks; t++ {
			for e, x := range vi[t*size : (t+1)*size] {
				g[e] += x
			}
		}
		grads = append(grads, g)
	}
	grads = append(grads, rateGrads...)
	all, err := m.trained()
	if err != nil {
		return nil, st, err
	}
	for i, g := range grads {
		for _, x := range g {
			if !finite(x) {
				return nil, st, &NonFiniteError{Step: step, What: "meta-gradient of " + all.At(i).Name}
			}
		}
	}
	return grads, st, nil
}

// replicate1 returns n copies of v end to end.
func replicate1(v []float64, n int) []float64 {
	out := make([]float64, 0, n*len(v))
	for range n {
		out = append(out, v...)
	}
	return out
}

// readScalar reads a scalar output of p.
func readScalar(p *graph.Plan, n *G.Node) (float64, error) {
	v, err := p.ReadFloat64s(n)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

// ckProgramFor returns the checkpointed programs for batches of shape s.
func (m *MAML) ckProgramFor(s tasks.Shape) (*ckProgram, error) {
	if set := m.settings(); set != m.built {
		closePlans(m.programs)
		closeCk(m.ckPrograms)
		m.programs, m.ckPrograms, m.built, m.builtLoss, m.last = nil, nil, set, m.Loss, nil // settings changed: rebuild
	}
	// The same graphs serve any number of inner steps.
	return cached(&m.ckPrograms, programKey{s.Tasks, s.Support, s.Query, s.In, s.Out, 0, true, false, false, false, false}, m.buildCk)
}

func closeCk(programs map[programKey]*ckProgram) {
	for _, c := range programs {
		c.close()
	}
}
