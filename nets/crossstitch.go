package nets

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// CrossStitch is the cross-stitch network of Misra et al. (2016),
// "Cross-stitch Networks for Multi-task Learning": one column per task,
// Linear layers In → Hidden[0] → ... → Hidden[len−1] each followed by
// Activation, and after each of these layers a cross-stitch unit that
// replaces task t's activations h_t by Σ_s α_ts·h_s, with one learned
// T×T matrix α per layer shared by all units of the layer (the paper's
// basic form). Head t (its tower) reads column t's last stitched
// activations, of width Hidden[len−1].
//
// The units are initialised, as in the paper, to convex combinations:
// α_tt = SelfWeight (α_S) and α_ts = (1−α_S)/(T−1) for s ≠ t, so each row
// sums to 1; with one task α = [1]. The paper's best setting,
// (α_S, α_D) = (0.9, 0.1) for two tasks, is the default. The paper also
// trains the units with a larger learning rate than the columns; here
// they are ordinary parameters.
//
// Parameters, in order: columns.<name>.layers.i.weight [Hidden[i], in]
// and .bias for each task, then stitches.i.alpha [T, T] for each hidden
// layer i (row t holds the weights of task t's new activations), then
// heads.<name>.layers.i.*. Only the heads belong to their task: the
// cross-stitch units mix every column into every other, so every task's
// loss reaches every column, and the columns and units are shared (as
// LibMTL treats the whole encoder). Columns and heads are initialised as
// PyTorch's nn.Linear.
//
// The zero value is not usable: In, at least one Hidden layer and the
// Heads must be set; SelfWeight 0 means 0.9.
type CrossStitch struct {
	In         int
	Hidden     []int
	Activation Activation
	SelfWeight float64 // α_S, in (0, 1]; 0 means 0.9
	Heads      []Head
}

func (m CrossStitch) selfWeight() float64 {
	if m.SelfWeight == 0 {
		return 0.9
	}
	return m.SelfWeight
}

// width returns the width of a column's output (In for a configuration
// without hidden layers, which Validate rejects).
func (m CrossStitch) width() int { return Trunk{In: m.In, Hidden: m.Hidden}.Width() }

// column returns a task's column as an MLP whose output layer is the last
// hidden layer.
func (m CrossStitch) column() MLP {
	c, _ := Trunk{In: m.In, Hidden: m.Hidden, Activation: m.Activation}.mlp()
	return c
}

// String describes m in a few words: "CrossStitch 2 columns 4-8-8 relu,
// α_S 0.9, heads a→1 b→3".
func (m CrossStitch) String() string {
	return fmt.Sprintf("CrossStitch %d columns %s %v, α_S %v, heads %s",
		len(m.Heads), widthsString(m.In, m.Hidden), m.Activation, m.selfWeight(), headsString(m.Heads))
}

// Validate reports whether the configuration can be built.
func (m CrossStitch) Validate() error {
	if m.In <= 0 {
		return fmt.Errorf("nets: CrossStitch: input size %d, want positive: %w", m.In, ErrConfig)
	}
	if len(m.Hidden) == 0 {
		return fmt.Errorf("nets: CrossStitch: columns need at least one hidden layer: %w", ErrConfig)
	}
	if a := m.SelfWeight; math.IsNaN(a) || a < 0 || a > 1 {
		return fmt.Errorf("nets: CrossStitch: self weight %v, want it in (0, 1], or 0 for 0.9: %w", a, ErrConfig)
	}
	if err := m.column().Validate(); err != nil {
		return err
	}
	return validateHeads("CrossStitch", m.Heads, m.width(), m.Activation)
}

// Init returns freshly initialised parameters: PyTorch's nn.Linear
// initialisation for columns and heads, the convex combinations described
// on CrossStitch for the cross-stitch units.
func (m CrossStitch) Init(rng *rand.Rand, dt tensor.Dtype) (*graph.Params, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	p := new(graph.Params)
	for _, h := range m.Heads {
		if err := addInit(p, "columns."+h.Name+".", m.column(), rng, dt); err != nil {
			return nil, err
		}
	}
	T, aS := len(m.Heads), m.selfWeight()
	stitch := func(_ *rand.Rand, _ []int, dst []float64) {
		for i := range dst {
			switch {
			case T == 1:
				dst[i] = 1
			case i/T == i%T:
				dst[i] = aS
			default:
				dst[i] = (1 - aS) / float64(T-1)
			}
		}
	}
	for i := range m.Hidden {
		if err := addParams(p, rng, dt, stitch, fmt.Sprintf("stitches.%d.alpha", i), []int{T, T}); err != nil {
			return nil, err
		}
	}
	for _, h := range m.Heads {
		if err := addInit(p, "heads."+h.Name+".", headMLP(h, m.width(), m.Activation), rng, dt); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Owners returns, for each parameter in Init's order, the index of the
// task that owns it, or −1 for a shared parameter: the columns and the
// cross-stitch units, which every task's loss reaches.
func (m CrossStitch) Owners() []int {
	own := appendN(nil, -1, len(m.Heads)*m.column().numParams()+len(m.Hidden))
	for t, h := range m.Heads {
		own = appendN(own, t, headMLP(h, m.width(), m.Activation).numParams())
	}
	return own
}

// Forward applies the network to x of shape [tasks, n, In] with
// parameters p in Init's order, each with a leading task axis, and returns
// each head's output [tasks, n, Out] in the heads' order.
func (m CrossStitch) Forward(x *G.Node, p G.Nodes) (out G.Nodes, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("nets: CrossStitch.Forward: %v", r)
		}
	}()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := checkParams("CrossStitch.Forward", p, len(m.Owners())); err != nil {
		return nil, err
	}
	if err := checkInput("CrossStitch.Forward input", x, m.In); err != nil {
		return nil, err
	}
	T, B := len(m.Heads), x.Shape()[0]
	k := m.column().numParams()
	stitches := p[T*k : T*k+len(m.Hidden)]
	// pick[t] [B, 1, T] selects row t of a [B, T, ·] stack; one task
	// needs none.
	var pick G.Nodes
	if T > 1 {
		pick = make(G.Nodes, T)
	}
	for t := range pick {
		sel := make([]float64, B*T)
		for b := range B {
			sel[b*T+t] = 1
		}
		if pick[t], err = constant(x.Graph(), x.Dtype(), []int{B, 1, T}, sel); err != nil {
			return nil, err
		}
	}
	h := make(G.Nodes, T)
	for t := range h {
		h[t] = x
	}
	in := m.In
	for i, w := range m.Hidden {
		for t, hd := range m.Heads {
			W, b := p[t*k+2*i], p[t*k+2*i+1]
			op := fmt.Sprintf("CrossStitch.Forward columns.%s.layers.%d", hd.Name, i)
			if err := checkShape(op+".weight", W, tensor.Shape{B, w, in}); err != nil {
				return nil, err
			}
			if err := checkShape(op+".bias", b, tensor.Shape{B, w}); err != nil {
				return nil, err
			}
			if h[t], err = Linear(h[t], W, b); err != nil {
				return nil, fmt.Errorf("nets: %s: %w", op, err)
			}
			if h[t], err = m.Activation.Apply(h[t]); err != nil {
				return nil, err
			}
		}
		if h, err = crossStitch(fmt.Sprintf("stitches.%d.alpha", i), h, stitches[i], pick); err != nil {
			return nil, err
		}
		in = w
	}
	return forwardHeads(m.Heads, h, p[T*k+len(m.Hidden):], m.width(), m.Activation)
}

// crossStitch returns Σ_s α[t, s]·h[s] for each t, with h[s] [B, n, w],
// alpha [B, T, T] and pick[t] the [B, 1, T] selector of row t.
func crossStitch(name string, h G.Nodes, alpha *G.Node, pick G.Nodes) (G.Nodes, error) {
	T, s := len(h), h[0].Shape()
	B, n, w := s[0], s[1], s[2]
	op := "CrossStitch.Forward " + name
	if err := checkShape(op, alpha, tensor.Shape{B, T, T}); err != nil {
		return nil, err
	}
	flat := make(G.Nodes, T)
	for t := range h {
		var err error
		if flat[t], err = G.Reshape(h[t], tensor.Shape{B, 1, n * w}); err != nil {
			return nil, fmt.Errorf("nets: %s: %v", op, err)
		}
	}
	st, err := stack(flat)
	if err != nil {
		return nil, err
	}
	mixed, err := graph.BatchedMatMul(alpha, st, false, false) // [B, T, n·w]
	if err != nil {
		return nil, err
	}
	out := make(G.Nodes, T)
	for t := range out {
		row := mixed
		if T > 1 {
			if row, err = graph.BatchedMatMul(pick[t], mixed, false, false); err != nil {
				return nil, err
			}
		}
		if out[t], err = G.Reshape(row, tensor.Shape{B, n, w}); err != nil {
			return nil, fmt.Errorf("nets: %s: %v", op, err)
		}
	}
	return out, nil
}
