package nets

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Head is one task's output network: an MLP from the shared
// representation to Out outputs, with optional hidden layers of its own.
type Head struct {
	Name   string
	Out    int
	Hidden []int
}

// Trunk is the shared part of a hard-parameter-sharing network: Linear
// layers In → Hidden[0] → ... → Hidden[len−1], each followed by
// Activation. Its output, the shared representation, has Hidden[len−1]
// features; with no hidden layers the representation is the input itself.
type Trunk struct {
	In         int
	Hidden     []int
	Activation Activation
}

// Width returns the width of the representation.
func (t Trunk) Width() int {
	if len(t.Hidden) == 0 {
		return t.In
	}
	return t.Hidden[len(t.Hidden)-1]
}

// mlp returns the trunk as an MLP whose output layer is the last hidden
// layer (the activation after it is applied by forward).
func (t Trunk) mlp() (MLP, bool) {
	if len(t.Hidden) == 0 {
		return MLP{}, false
	}
	return MLP{In: t.In, Out: t.Width(), Hidden: t.Hidden[:len(t.Hidden)-1], Activation: t.Activation}, true
}

func (t Trunk) forward(x *G.Node, p G.Nodes) (*G.Node, error) {
	m, ok := t.mlp()
	if !ok {
		return x, nil
	}
	h, err := m.Forward(x, p)
	if err != nil {
		return nil, err
	}
	return t.Activation.Apply(h)
}

// MultiTask is a hard-parameter-sharing network: a shared Trunk and one
// Head per task. Its parameters are the trunk's, named trunk.layers.i.*,
// then each head's in order, named heads.<name>.layers.i.* (see MLP for
// the layer names and initialisation).
type MultiTask struct {
	Trunk Trunk
	Heads []Head
}

// Validate reports whether the configuration can be built.
func (m MultiTask) Validate() error {
	if m.Trunk.In <= 0 {
		return fmt.Errorf("nets: MultiTask: input size %d, want positive: %w", m.Trunk.In, ErrConfig)
	}
	if tm, ok := m.Trunk.mlp(); ok {
		if err := tm.Validate(); err != nil {
			return err
		}
	}
	return validateHeads("MultiTask", m.Heads, m.Trunk.Width(), m.Trunk.Activation)
}

func validateHeads(what string, heads []Head, in int, a Activation) error {
	if len(heads) == 0 {
		return fmt.Errorf("nets: %s: no heads: %w", what, ErrConfig)
	}
	seen := make(map[string]bool, len(heads))
	for i, h := range heads {
		if h.Name == "" {
			return fmt.Errorf("nets: %s: head %d has no name: %w", what, i, ErrConfig)
		}
		if seen[h.Name] {
			return fmt.Errorf("nets: %s: two heads named %q: %w", what, h.Name, ErrConfig)
		}
		seen[h.Name] = true
		if err := headMLP(h, in, a).Validate(); err != nil {
			return fmt.Errorf("nets: %s: head %q: %w", what, h.Name, err)
		}
	}
	return nil
}

func headMLP(h Head, in int, a Activation) MLP {
	return MLP{In: in, Out: h.Out, Hidden: h.Hidden, Activation: a}
}

// Init returns freshly initialised parameters, PyTorch's nn.Linear
// initialisation for every layer.
func (m MultiTask) Init(rng *rand.Rand, dt tensor.Dtype) (*graph.Params, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	p := new(graph.Params)
	if tm, ok := m.Trunk.mlp(); ok {
		if err := addInit(p, "trunk.", tm, rng, dt); err != nil {
			return nil, err
		}
	}
	for _, h := range m.Heads {
		if err := addInit(p, "heads."+h.Name+".", headMLP(h, m.Trunk.Width(), m.Trunk.Activation), rng, dt); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// addInit appends a freshly initialised MLP's parameters to p with a
// prefix on their names.
func addInit(p *graph.Params, prefix string, m MLP, rng *rand.Rand, dt tensor.Dtype) error {
	q, err := m.Init(rng, dt)
	if err != nil {
		return err
	}
	for i := 0; i < q.Len(); i++ {
		if err := p.Add(prefix+q.At(i).Name, q.At(i).Value); err != nil {
			return err
		}
	}
	return nil
}

// Owners returns, for each parameter in Init's order, the index of the
// head that owns it, or −1 for a shared (trunk) parameter.
func (m MultiTask) Owners() []int {
	var own []int
	if tm, ok := m.Trunk.mlp(); ok {
		own = appendN(own, -1, tm.numParams())
	}
	for i, h := range m.Heads {
		own = appendN(own, i, headMLP(h, m.Trunk.Width(), m.Trunk.Activation).numParams())
	}
	return own
}

func appendN(s []int, v, n int) []int {
	for range n {
		s = append(s, v)
	}
	return s
}

func (m MLP) numParams() int { return 2 * (len(m.Hidden) + 1) }

// Forward applies the network to x of shape [tasks, n, In] with
// parameters p in Init's order, each with a leading task axis, and returns
// each head's output [tasks, n, Out] in the heads' order.
func (m MultiTask) Forward(x *G.Node, p G.Nodes) (out G.Nodes, err error) {
	rep, err := m.Represent(x, p)
	if err != nil {
		return nil, err
	}
	return m.ForwardHeads(rep, p)
}

// Represent returns the trunk's output for x [tasks, n, In]: the
// representation [tasks, n, Width] that every head reads, computed with
// the trunk's parameters among p, all of m's in Init's order.
func (m MultiTask) Represent(x *G.Node, p G.Nodes) (*G.Node, error) {
	k, err := m.trunkParams(p)
	if err != nil {
		return nil, err
	}
	return m.Trunk.forward(x, p[:k])
}

// ForwardHeads returns each head's output for the representation rep,
// with the heads' parameters among p, all of m's in Init's order: Forward
// is ForwardHeads(Represent(x, p), p).
func (m MultiTask) ForwardHeads(rep *G.Node, p G.Nodes) (G.Nodes, error) {
	k, err := m.trunkParams(p)
	if err != nil {
		return nil, err
	}
	reps := make(G.Nodes, len(m.Heads))
	for i := range reps {
		reps[i] = rep
	}
	return forwardHeads(m.Heads, reps, p[k:], m.Trunk.Width(), m.Trunk.Activation)
}

// trunkParams checks m and the number of parameters p, and returns how
// many of them, first in Init's order, are the trunk's.
func (m MultiTask) trunkParams(p G.Nodes) (int, error) {
	if err := m.Validate(); err != nil {
		return 0, err
	}
	if own := m.Owners(); len(p) != len(own) {
		return 0, &graph.ShapeError{Op: "MultiTask.Forward", Want: fmt.Sprintf("%d parameters", len(own)), Got: fmt.Sprint(len(p))}
	}
	if len(m.Trunk.Hidden) == 0 {
		return 0, nil
	}
	tm, _ := m.Trunk.mlp()
	return tm.numParams(), nil
}

// forwardHeads applies head i to reps[i], taking the heads' parameters
// from p in order.
func forwardHeads(heads []Head, reps G.Nodes, p G.Nodes, in int, a Activation) (G.Nodes, error) {
	out := make(G.Nodes, len(heads))
	k := 0
	for i, h := range heads {
		hm := headMLP(h, in, a)
		n := hm.numParams()
		if k+n > len(p) {
			return nil, &graph.ShapeError{Op: "Forward heads", Want: fmt.Sprintf("at least %d parameters", k+n), Got: fmt.Sprint(len(p))}
		}
		var err error
		if out[i], err = hm.Forward(reps[i], p[k:k+n]); err != nil {
			return nil, fmt.Errorf("nets: head %q: %w", h.Name, err)
		}
		k += n
	}
	return out, nil
}

// MMoE is the multi-gate mixture-of-experts network of Ma et al. (2018):
// Experts shared expert networks (each Linear layers In → ExpertHidden...
// with Activation after every layer), one softmax gate per task (a Linear
// layer In → Experts) that mixes the experts' outputs into that task's
// representation, and one Head (tower) per task on top.
//
// Parameters, in order: experts.e.layers.i.* for each expert e, then for
// each task gates.<name>.weight [Experts, In] and gates.<name>.bias
// [Experts], then heads.<name>.layers.i.*. Experts are shared; gates and
// heads belong to their task.
type MMoE struct {
	In           int
	Experts      int
	ExpertHidden []int
	Activation   Activation
	Heads        []Head
}

func (m MMoE) expert() Trunk {
	return Trunk{In: m.In, Hidden: m.ExpertHidden, Activation: m.Activation}
}

// Validate reports whether the configuration can be built.
func (m MMoE) Validate() error {
	if m.In <= 0 || m.Experts <= 0 {
		return fmt.Errorf("nets: MMoE: input size %d and %d experts, want both positive: %w", m.In, m.Experts, ErrConfig)
	}
	if len(m.ExpertHidden) == 0 {
		return fmt.Errorf("nets: MMoE: experts need at least one layer: %w", ErrConfig)
	}
	tm, _ := m.expert().mlp()
	if err := tm.Validate(); err != nil {
		return err
	}
	return validateHeads("MMoE", m.Heads, m.expert().Width(), m.Activation)
}

// Init returns freshly initialised parameters, PyTorch's nn.Linear
// initialisation for every layer, gates included.
func (m MMoE) Init(rng *rand.Rand, dt tensor.Dtype) (*graph.Params, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	p := new(graph.Params)
	tm, _ := m.expert().mlp()
	for e := range m.Experts {
		if err := addInit(p, fmt.Sprintf("experts.%d.", e), tm, rng, dt); err != nil {
			return nil, err
		}
	}
	for _, h := range m.Heads {
		a := 1 / math.Sqrt(float64(m.In))
		w, err := graph.NewParam(rng, dt, []int{m.Experts, m.In}, graph.Uniform(-a, a))
		if err != nil {
			return nil, err
		}
		b, err := graph.NewParam(rng, dt, []int{m.Experts}, graph.Uniform(-a, a))
		if err != nil {
			return nil, err
		}
		if err := p.Add("gates."+h.Name+".weight", w); err != nil {
			return nil, err
		}
		if err := p.Add("gates."+h.Name+".bias", b); err != nil {
			return nil, err
		}
	}
	for _, h := range m.Heads {
		if err := addInit(p, "heads."+h.Name+".", headMLP(h, m.expert().Width(), m.Activation), rng, dt); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Owners returns, for each parameter in Init's order, the index of the
// task that owns it, or −1 for a shared (expert) parameter.
func (m MMoE) Owners() []int {
	tm, _ := m.expert().mlp()
	own := appendN(nil, -1, m.Experts*tm.numParams())
	for i := range m.Heads {
		own = appendN(own, i, 2)
	}
	for i, h := range m.Heads {
		own = appendN(own, i, headMLP(h, m.expert().Width(), m.Activation).numParams())
	}
	return own
}

// Forward applies the network to x of shape [tasks, n, In] with
// parameters p in Init's order, each with a leading task axis, and returns
// each head's output [tasks, n, Out] in the heads' order.
func (m MMoE) Forward(x *G.Node, p G.Nodes) (out G.Nodes, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("nets: MMoE.Forward: %v", r)
		}
	}()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	own := m.Owners()
	if len(p) != len(own) {
		return nil, &graph.ShapeError{Op: "MMoE.Forward", Want: fmt.Sprintf("%d parameters", len(own)), Got: fmt.Sprint(len(p))}
	}
	xs := x.Shape()
	if x.Dims() != 3 || xs[2] != m.In {
		return nil, &graph.ShapeError{Op: "MMoE.Forward input", Want: fmt.Sprintf("[tasks, n, %d]", m.In), Got: fmt.Sprint(xs)}
	}
	tasks, n, h := xs[0], xs[1], m.expert().Width()
	tm, _ := m.expert().mlp()
	k := tm.numParams()
	// Stack the experts' outputs as [tasks·n, Experts, h].
	parts := make(G.Nodes, m.Experts)
	for e := range m.Experts {
		o, err := m.expert().forward(x, p[e*k:(e+1)*k])
		if err != nil {
			return nil, fmt.Errorf("nets: MMoE expert %d: %w", e, err)
		}
		if parts[e], err = G.Reshape(o, tensor.Shape{tasks * n, 1, h}); err != nil {
			return nil, fmt.Errorf("nets: MMoE expert %d: %v", e, err)
		}
	}
	experts := parts[0]
	if m.Experts > 1 {
		if experts, err = G.Concat(1, parts...); err != nil {
			return nil, fmt.Errorf("nets: MMoE: stacking experts: %v", err)
		}
	}
	off := m.Experts * k
	reps := make(G.Nodes, len(m.Heads))
	for i, hd := range m.Heads {
		W, b := p[off+2*i], p[off+2*i+1]
		logits, err := Linear(x, W, b)
		if err != nil {
			return nil, fmt.Errorf("nets: MMoE gate %q: %w", hd.Name, err)
		}
		ls, err := graph.LogSoftmax(logits)
		if err != nil {
			return nil, err
		}
		gate, err := G.Exp(ls)
		if err != nil {
			return nil, fmt.Errorf("nets: MMoE gate %q: %v", hd.Name, err)
		}
		if gate, err = G.Reshape(gate, tensor.Shape{tasks * n, 1, m.Experts}); err != nil {
			return nil, fmt.Errorf("nets: MMoE gate %q: %v", hd.Name, err)
		}
		mix, err := graph.BatchedMatMul(gate, experts, false, false)
		if err != nil {
			return nil, fmt.Errorf("nets: MMoE mixture %q: %v", hd.Name, err)
		}
		if reps[i], err = G.Reshape(mix, tensor.Shape{tasks, n, h}); err != nil {
			return nil, fmt.Errorf("nets: MMoE mixture %q: %v", hd.Name, err)
		}
	}
	return forwardHeads(m.Heads, reps, p[off+2*len(m.Heads):], h, m.Activation)
}
