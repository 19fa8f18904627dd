package nets

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// DSelectK is a multi-gate mixture of experts whose gates are the
// DSelect-k gates of Hazimeh et al. (2021), "DSelect-k: Differentiable
// Selection in the Mixture of Experts with Applications to Multi-Task
// Learning": Experts shared expert networks as in MMoE (Linear layers
// In → ExpertHidden... with Activation after every layer), one gate per
// task mixing at most K of them into that task's representation, and one
// Head (tower) per task on top.
//
// A gate holds K single-expert selectors. Selector i has m = ⌈log₂
// Experts⌉ logits z_i; with the smooth step S of width γ (0 below −γ/2,
// 1 above γ/2, −2t³/γ³ + 3t/(2γ) + 1/2 between), it gives expert l the
// weight r_i(l) = Π_j S(z_ij) where bit j of l (most significant first)
// is 1, and 1 − S(z_ij) where it is 0: a one-hot choice once every
// |z_ij| ≥ γ/2. The gate's weights are Σ_i softmax(w)_i·r_i. The gates
// are static (z and w are parameters, the paper's task-only gating) or,
// with PerExample, Linear functions of the input x.
//
// Left out: the paper's entropy regulariser, which speeds the selectors'
// convergence to one-hot, and, when Experts is not a power of two, the
// reference implementation's penalty 1/Σ_l r_i(l) that keeps a selector's
// weight on the codes ≥ Experts (which select no expert) from reaching 1:
// both are loss terms, and Forward returns only outputs. As in the
// reference implementation, those codes' weight is dropped, so a gate's
// weights sum to at most 1, and to exactly 1 when Experts is a power of
// two.
//
// Parameters, in order: experts.e.layers.i.* for each expert e; then for
// each task, static gates.<name>.z_logits [K, m] and gates.<name>.w_logits
// [K], or, with PerExample, gates.<name>.z.weight [K·m, In] and .bias
// [K·m] (the logits of selector i are outputs i·m to i·m+m−1) and
// gates.<name>.w.weight [K, In] and .bias [K]; then
// heads.<name>.layers.i.*. Experts are shared; gates and heads belong to
// their task. Experts and heads are initialised as PyTorch's nn.Linear,
// the gates as in the paper's reference implementation: z (weights and
// biases) from U[−γ/100, γ/100], so that every selector starts near the
// uniform choice, and w from U[−0.05, 0.05].
//
// The zero value is not usable: In, Experts (at least 2), K (1 to
// Experts), at least one ExpertHidden layer and the Heads must be set;
// Gamma 0 means 1, the paper's γ.
type DSelectK struct {
	In           int
	Experts      int
	ExpertHidden []int
	Activation   Activation
	K            int     // selectors per gate: the most experts a gate mixes
	Gamma        float64 // γ, the width of the smooth step's cubic part; 0 means 1
	PerExample   bool    // gates are functions of the input rather than parameters
	Heads        []Head
}

func (m DSelectK) gamma() float64 {
	if m.Gamma == 0 {
		return 1
	}
	return m.Gamma
}

// bits returns m = ⌈log₂ Experts⌉, the number of logits of a selector.
func (m DSelectK) bits() int { return bits.Len(uint(m.Experts - 1)) }

func (m DSelectK) expert() Trunk {
	return Trunk{In: m.In, Hidden: m.ExpertHidden, Activation: m.Activation}
}

func (m DSelectK) width() int { return m.expert().Width() }

// gateParams returns the number of parameters of one gate.
func (m DSelectK) gateParams() int {
	if m.PerExample {
		return 4
	}
	return 2
}

// String describes m in a few words: "DSelect-k 4 experts 4-8 relu, k=2
// static gates, γ=1, heads a→1 b→3".
func (m DSelectK) String() string {
	kind := "static"
	if m.PerExample {
		kind = "per-example"
	}
	return fmt.Sprintf("DSelect-k %d experts %s %v, k=%d %s gates, γ=%v, heads %s",
		m.Experts, widthsString(m.In, m.ExpertHidden), m.Activation, m.K, kind, m.gamma(), headsString(m.Heads))
}

// Validate reports whether the configuration can be built.
func (m DSelectK) Validate() error {
	if m.In <= 0 {
		return fmt.Errorf("nets: DSelectK: input size %d, want positive: %w", m.In, ErrConfig)
	}
	if m.Experts < 2 {
		return fmt.Errorf("nets: DSelectK: %d experts, want at least 2: %w", m.Experts, ErrConfig)
	}
	if m.K < 1 || m.K > m.Experts {
		return fmt.Errorf("nets: DSelectK: k = %d for %d experts, want 1 ≤ k ≤ %d: %w", m.K, m.Experts, m.Experts, ErrConfig)
	}
	if g := m.Gamma; math.IsNaN(g) || math.IsInf(g, 0) || g < 0 {
		return fmt.Errorf("nets: DSelectK: γ = %v, want positive and finite, or 0 for 1: %w", g, ErrConfig)
	}
	if len(m.ExpertHidden) == 0 {
		return fmt.Errorf("nets: DSelectK: experts need at least one layer: %w", ErrConfig)
	}
	tm, _ := m.expert().mlp()
	if err := tm.Validate(); err != nil {
		return err
	}
	return validateHeads("DSelectK", m.Heads, m.width(), m.Activation)
}

// Init returns freshly initialised parameters, as described on DSelectK.
func (m DSelectK) Init(rng *rand.Rand, dt tensor.Dtype) (*graph.Params, error) {
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
	g, K, nb := m.gamma(), m.K, m.bits()
	zInit, wInit := graph.Uniform(-g/100, g/100), graph.Uniform(-0.05, 0.05)
	for _, h := range m.Heads {
		pre := "gates." + h.Name + "."
		var err error
		if m.PerExample {
			err = addParams(p, rng, dt, zInit, pre+"z.weight", []int{K * nb, m.In}, pre+"z.bias", []int{K * nb})
			if err == nil {
				err = addParams(p, rng, dt, wInit, pre+"w.weight", []int{K, m.In}, pre+"w.bias", []int{K})
			}
		} else {
			err = addParams(p, rng, dt, zInit, pre+"z_logits", []int{K, nb})
			if err == nil {
				err = addParams(p, rng, dt, wInit, pre+"w_logits", []int{K})
			}
		}
		if err != nil {
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
// task that owns it, or −1 for a shared (expert) parameter.
func (m DSelectK) Owners() []int {
	tm, _ := m.expert().mlp()
	own := appendN(nil, -1, m.Experts*tm.numParams())
	for t := range m.Heads {
		own = appendN(own, t, m.gateParams())
	}
	for t, h := range m.Heads {
		own = appendN(own, t, headMLP(h, m.width(), m.Activation).numParams())
	}
	return own
}

// Forward applies the network to x of shape [tasks, n, In] with
// parameters p in Init's order, each with a leading task axis, and returns
// each head's output [tasks, n, Out] in the heads' order.
func (m DSelectK) Forward(x *G.Node, p G.Nodes) (out G.Nodes, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("nets: DSelectK.Forward: %v", r)
		}
	}()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := checkParams("DSelectK.Forward", p, len(m.Owners())); err != nil {
		return nil, err
	}
	if err := checkInput("DSelectK.Forward input", x, m.In); err != nil {
		return nil, err
	}
	B, n, h := x.Shape()[0], x.Shape()[1], m.width()
	tm, _ := m.expert().mlp()
	k := tm.numParams()
	// Per-example gates mix rows [B·n, Experts, h]; static gates, one per
	// task-axis entry, mix [B, Experts, n·h].
	parts := make(G.Nodes, m.Experts)
	for e := range parts {
		o, err := m.expert().forward(x, p[e*k:(e+1)*k])
		if err != nil {
			return nil, fmt.Errorf("nets: DSelectK expert %d: %w", e, err)
		}
		if m.PerExample {
			parts[e], err = expertRows(o)
		} else if parts[e], err = G.Reshape(o, tensor.Shape{B, 1, n * h}); err != nil {
			err = fmt.Errorf("nets: DSelectK expert %d: %v", e, err)
		}
		if err != nil {
			return nil, err
		}
	}
	experts, err := stack(parts)
	if err != nil {
		return nil, err
	}
	off := m.Experts * k
	reps := make(G.Nodes, len(m.Heads))
	for t, hd := range m.Heads {
		gp := p[off+t*m.gateParams() : off+(t+1)*m.gateParams()]
		q, err := m.gate(x, gp)
		if err != nil {
			return nil, fmt.Errorf("nets: DSelectK gate %q: %w", hd.Name, err)
		}
		if m.PerExample {
			reps[t], err = mix(q, experts)
		} else {
			var r *G.Node
			if r, err = graph.BatchedMatMul(q, experts, false, false); err == nil {
				reps[t], err = G.Reshape(r, tensor.Shape{B, n, h})
			}
		}
		if err != nil {
			return nil, fmt.Errorf("nets: DSelectK mixture %q: %v", hd.Name, err)
		}
	}
	return forwardHeads(m.Heads, reps, p[off+len(m.Heads)*m.gateParams():], h, m.Activation)
}

// gate returns the weights of one task's gate with parameters gp for
// input x [B, n, In]: [B, 1, Experts] for a static gate, [B, n, Experts]
// per example.
func (m DSelectK) gate(x *G.Node, gp G.Nodes) (*G.Node, error) {
	B, n, K, nb := x.Shape()[0], x.Shape()[1], m.K, m.bits()
	var z, w *G.Node // z [B, R, nb] with R = K or n·K; w [B, 1, K] or [B·n, 1, K]
	var err error
	if m.PerExample {
		if err := checkShape("z.weight", gp[0], tensor.Shape{B, K * nb, m.In}); err != nil {
			return nil, err
		}
		if err := checkShape("z.bias", gp[1], tensor.Shape{B, K * nb}); err != nil {
			return nil, err
		}
		if err := checkShape("w.weight", gp[2], tensor.Shape{B, K, m.In}); err != nil {
			return nil, err
		}
		if err := checkShape("w.bias", gp[3], tensor.Shape{B, K}); err != nil {
			return nil, err
		}
		if z, err = Linear(x, gp[0], gp[1]); err != nil {
			return nil, err
		}
		if z, err = G.Reshape(z, tensor.Shape{B, n * K, nb}); err != nil {
			return nil, gorgoniaError("gate logits", err)
		}
		if w, err = Linear(x, gp[2], gp[3]); err != nil {
			return nil, err
		}
	} else {
		if err := checkShape("z_logits", gp[0], tensor.Shape{B, K, nb}); err != nil {
			return nil, err
		}
		if err := checkShape("w_logits", gp[1], tensor.Shape{B, K}); err != nil {
			return nil, err
		}
		z, w = gp[0], gp[1]
	}
	if w, err = softmax(w); err != nil {
		return nil, err
	}
	rows := 1
	if m.PerExample {
		rows = n
	}
	if w, err = G.Reshape(w, tensor.Shape{B * rows, 1, K}); err != nil {
		return nil, gorgoniaError("selector weights", err)
	}
	s, err := smoothStep(z, m.gamma())
	if err != nil {
		return nil, err
	}
	r, err := m.selectors(s)
	if err != nil {
		return nil, err
	}
	if r, err = G.Reshape(r, tensor.Shape{B * rows, K, m.Experts}); err != nil {
		return nil, gorgoniaError("selectors", err)
	}
	q, err := graph.BatchedMatMul(w, r, false, false)
	if err != nil {
		return nil, err
	}
	if q, err = G.Reshape(q, tensor.Shape{B, rows, m.Experts}); err != nil {
		return nil, gorgoniaError("gate", err)
	}
	return q, nil
}

// selectors maps smooth-step values s [B, R, m] to the single-expert
// selectors' weights [B, R, Experts]: Π_j (1 − b_lj + s_j·(2b_lj − 1)),
// b_lj bit j of l. Each factor is a product [s, 1]·D_j with a constant
// D_j [B, m+1, Experts], so that only matrix products and Hadamard
// products appear.
func (m DSelectK) selectors(s *G.Node) (*G.Node, error) {
	ss := s.Shape()
	B, R, nb, E := ss[0], ss[1], ss[2], m.Experts
	g, dt := s.Graph(), s.Dtype()
	ones := make([]float64, B*R)
	for i := range ones {
		ones[i] = 1
	}
	one, err := constant(g, dt, []int{B, R, 1}, ones)
	if err != nil {
		return nil, err
	}
	s1, err := G.Concat(2, s, one)
	if err != nil {
		return nil, gorgoniaError("selectors", err)
	}
	var r *G.Node
	for j := range nb {
		d := make([]float64, B*(nb+1)*E)
		for b := range B {
			for l := range E {
				bit := float64((l >> (nb - 1 - j)) & 1)
				d[(b*(nb+1)+j)*E+l] = 2*bit - 1
				d[(b*(nb+1)+nb)*E+l] = 1 - bit
			}
		}
		dj, err := constant(g, dt, []int{B, nb + 1, E}, d)
		if err != nil {
			return nil, err
		}
		f, err := graph.BatchedMatMul(s1, dj, false, false)
		if err != nil {
			return nil, err
		}
		if r == nil {
			r = f
		} else if r, err = G.HadamardProd(r, f); err != nil {
			return nil, gorgoniaError("selectors", err)
		}
	}
	return r, nil
}

// smoothStep applies the smooth step of width γ elementwise: 0 for
// t ≤ −γ/2, 1 for t ≥ γ/2, −2t³/γ³ + 3t/(2γ) + 1/2 between. It is built
// as the cubic of t clipped to [−γ/2, γ/2], the clipping written with
// ReLUs: u = relu(t + γ/2) − γ/2 = max(t, −γ/2), then
// c = γ/2 − relu(γ/2 − u) = min(u, γ/2), which give the bounds exactly
// however large |t| is. The cubic's slope is 0 at ±γ/2, so the step is
// continuously differentiable.
func smoothStep(t *G.Node, gamma float64) (*G.Node, error) {
	half := gamma / 2
	u, err := addScalar(t, half)
	if err != nil {
		return nil, err
	}
	if u, err = graph.ReLU(u); err != nil {
		return nil, err
	}
	if u, err = addScalar(u, -half); err != nil {
		return nil, err
	}
	c, err := graph.Scale(u, -1)
	if err != nil {
		return nil, err
	}
	if c, err = addScalar(c, half); err != nil {
		return nil, err
	}
	if c, err = graph.ReLU(c); err != nil {
		return nil, err
	}
	if c, err = graph.Scale(c, -1); err != nil {
		return nil, err
	}
	if c, err = addScalar(c, half); err != nil {
		return nil, err
	}
	// c·(3/(2γ) − 2c²/γ³) + 1/2
	c2, err := G.HadamardProd(c, c)
	if err != nil {
		return nil, gorgoniaError("smooth step", err)
	}
	if c2, err = graph.Scale(c2, -2/(gamma*gamma*gamma)); err != nil {
		return nil, err
	}
	if c2, err = addScalar(c2, 3/(2*gamma)); err != nil {
		return nil, err
	}
	out, err := G.HadamardProd(c, c2)
	if err != nil {
		return nil, gorgoniaError("smooth step", err)
	}
	return addScalar(out, 0.5)
}
