package nets

import (
	"fmt"
	"math/rand/v2"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// PLE is the progressive layered extraction network of Tang et al.
// (2020), "Progressive Layered Extraction (PLE): A Novel Multi-Task
// Learning (MTL) Model for Personalized Recommendations": Levels stacked
// extraction layers, then one Head (tower) per task. With one level it is
// the paper's customized gate control (CGC) network.
//
// Each extraction layer holds SharedExperts shared experts and, for each
// task, TaskExperts experts of its own; every expert is Linear layers of
// widths in → ExpertHidden... with Activation after every layer (a Trunk).
// Task t's gate, a Linear layer followed by a softmax, weighs task t's
// experts followed by the shared experts, in that order, and their mixture
// is task t's output of the layer. In every layer but the last, a shared
// gate weighs all experts (task 0's, ..., task T−1's, then the shared
// ones) into the shared output. The first layer's experts and gates read
// the input x; in later layers, task t's experts and gate read task t's
// output of the layer below and the shared experts and gate read the
// shared output. Head t reads task t's output of the last layer, whose
// width is the last of ExpertHidden.
//
// Parameters, in order, for each level j:
// levels.j.shared.experts.e.layers.i.* for each shared expert e; for each
// task levels.j.tasks.<name>.experts.e.layers.i.* then
// levels.j.tasks.<name>.gate.weight [TaskExperts+SharedExperts, in] and
// .bias; and, below the last level, levels.j.shared.gate.weight
// [T·TaskExperts+SharedExperts, in] and .bias; then heads.<name>.layers.i.*.
// A parameter belongs to a task when no other task's loss reaches it: its
// head, its experts of the last level and its gates of the last two (a
// shared gate mixes every expert of its level into the shared input of
// the next, so the task experts below the last level, and the task gates
// that feed them, are shared, with the shared experts and gates). Every
// Linear layer, gates included, is initialised as PyTorch's nn.Linear.
// The gates have a bias, as MMoE's do (the paper's have none).
//
// The zero value is not usable: In, SharedExperts, TaskExperts, at least
// one ExpertHidden layer and the Heads must be set; Levels 0 means 1.
type PLE struct {
	In            int
	Levels        int // extraction layers; 0 means 1 (CGC)
	SharedExperts int // shared experts per layer, at least 1
	TaskExperts   int // experts of each task per layer, at least 1
	ExpertHidden  []int
	Activation    Activation
	Heads         []Head
}

func (m PLE) levels() int { return orDefault(m.Levels, 1) }

// String describes m in a few words: "PLE 2 levels of 1 shared + 1
// per-task experts 4-8 relu, heads a→1 b→3", or "CGC 1 shared + ..." for
// one level.
func (m PLE) String() string {
	what := "CGC"
	if m.levels() > 1 {
		what = fmt.Sprintf("PLE %d levels of", m.levels())
	}
	return fmt.Sprintf("%s %d shared + %d per-task experts %s %v, heads %s",
		what, m.SharedExperts, m.TaskExperts, widthsString(m.In, m.ExpertHidden), m.Activation, headsString(m.Heads))
}

// width returns the width of every expert's output (In for a
// configuration without expert layers, which Validate rejects).
func (m PLE) width() int { return m.expert(0).Width() }

// levelIn returns the width of level j's input.
func (m PLE) levelIn(j int) int {
	if j == 0 {
		return m.In
	}
	return m.width()
}

// expert returns level j's expert network.
func (m PLE) expert(j int) Trunk {
	return Trunk{In: m.levelIn(j), Hidden: m.ExpertHidden, Activation: m.Activation}
}

// expertMLP returns level j's expert as an MLP (see Trunk.mlp).
func (m PLE) expertMLP(j int) MLP {
	e, _ := m.expert(j).mlp()
	return e
}

// Validate reports whether the configuration can be built.
func (m PLE) Validate() error {
	if m.In <= 0 {
		return fmt.Errorf("nets: PLE: input size %d, want positive: %w", m.In, ErrConfig)
	}
	if m.Levels < 0 {
		return fmt.Errorf("nets: PLE: %d levels, want positive (or 0 for 1): %w", m.Levels, ErrConfig)
	}
	if m.SharedExperts <= 0 || m.TaskExperts <= 0 {
		return fmt.Errorf("nets: PLE: %d shared and %d per-task experts, want both positive: %w", m.SharedExperts, m.TaskExperts, ErrConfig)
	}
	if len(m.ExpertHidden) == 0 {
		return fmt.Errorf("nets: PLE: experts need at least one layer: %w", ErrConfig)
	}
	for j := range min(m.levels(), 2) {
		if err := m.expertMLP(j).Validate(); err != nil {
			return err
		}
	}
	return validateHeads("PLE", m.Heads, m.width(), m.Activation)
}

// Init returns freshly initialised parameters, PyTorch's nn.Linear
// initialisation for every layer, gates included.
func (m PLE) Init(rng *rand.Rand, dt tensor.Dtype) (*graph.Params, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	p := new(graph.Params)
	T, L := len(m.Heads), m.levels()
	for j := range L {
		pre := fmt.Sprintf("levels.%d.", j)
		for e := range m.SharedExperts {
			if err := addInit(p, fmt.Sprintf("%sshared.experts.%d.", pre, e), m.expertMLP(j), rng, dt); err != nil {
				return nil, err
			}
		}
		for _, h := range m.Heads {
			for e := range m.TaskExperts {
				if err := addInit(p, fmt.Sprintf("%stasks.%s.experts.%d.", pre, h.Name, e), m.expertMLP(j), rng, dt); err != nil {
					return nil, err
				}
			}
			if err := addLinear(p, pre+"tasks."+h.Name+".gate", m.TaskExperts+m.SharedExperts, m.levelIn(j), rng, dt); err != nil {
				return nil, err
			}
		}
		if j+1 < L {
			if err := addLinear(p, pre+"shared.gate", T*m.TaskExperts+m.SharedExperts, m.levelIn(j), rng, dt); err != nil {
				return nil, err
			}
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
// task that owns it, or −1 for a shared parameter: one that more than one
// task's loss reaches (see the type's comment).
func (m PLE) Owners() []int {
	var own []int
	L := m.levels()
	for j := range L {
		k := m.expertMLP(j).numParams()
		own = appendN(own, -1, m.SharedExperts*k)
		for t := range m.Heads {
			experts, gate := t, t
			if j < L-1 { // mixed into the next level's shared input
				experts = -1
			}
			if j < L-2 { // feeds task experts of a level below the last
				gate = -1
			}
			own = appendN(own, experts, m.TaskExperts*k)
			own = appendN(own, gate, 2)
		}
		if j+1 < L {
			own = appendN(own, -1, 2)
		}
	}
	for t, h := range m.Heads {
		own = appendN(own, t, headMLP(h, m.width(), m.Activation).numParams())
	}
	return own
}

// Forward applies the network to x of shape [tasks, n, In] with
// parameters p in Init's order, each with a leading task axis, and returns
// each head's output [tasks, n, Out] in the heads' order.
func (m PLE) Forward(x *G.Node, p G.Nodes) (out G.Nodes, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("nets: PLE.Forward: %v", r)
		}
	}()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := checkParams("PLE.Forward", p, len(m.Owners())); err != nil {
		return nil, err
	}
	if err := checkInput("PLE.Forward input", x, m.In); err != nil {
		return nil, err
	}
	T, L := len(m.Heads), m.levels()
	taskIn := make(G.Nodes, T)
	for t := range taskIn {
		taskIn[t] = x
	}
	sharedIn := x
	off := 0
	// next returns the next n parameters.
	next := func(n int) G.Nodes {
		q := p[off : off+n]
		off += n
		return q
	}
	for j := range L {
		k := m.expertMLP(j).numParams()
		// expertsOf applies count experts to in and returns their rows.
		expertsOf := func(what string, in *G.Node, count int) (G.Nodes, error) {
			rows := make(G.Nodes, count)
			for e := range count {
				o, err := m.expert(j).forward(in, next(k))
				if err != nil {
					return nil, fmt.Errorf("nets: PLE level %d %s expert %d: %w", j, what, e, err)
				}
				if rows[e], err = expertRows(o); err != nil {
					return nil, err
				}
			}
			return rows, nil
		}
		shared, err := expertsOf("shared", sharedIn, m.SharedExperts)
		if err != nil {
			return nil, err
		}
		var all G.Nodes // every expert's rows, for the shared gate
		taskOut := make(G.Nodes, T)
		for t, h := range m.Heads {
			own, err := expertsOf("task "+h.Name, taskIn[t], m.TaskExperts)
			if err != nil {
				return nil, err
			}
			all = append(all, own...)
			if taskOut[t], err = m.gate(j, "tasks."+h.Name+".gate", taskIn[t], next(2), append(own, shared...)); err != nil {
				return nil, err
			}
		}
		if j+1 < L {
			if sharedIn, err = m.gate(j, "shared.gate", sharedIn, next(2), append(all, shared...)); err != nil {
				return nil, err
			}
		}
		taskIn = taskOut
	}
	return forwardHeads(m.Heads, taskIn, p[off:], m.width(), m.Activation)
}

// gate mixes the experts' rows with the softmax gate whose parameters are
// wb, read from in.
func (m PLE) gate(level int, name string, in *G.Node, wb G.Nodes, rows G.Nodes) (*G.Node, error) {
	op := fmt.Sprintf("PLE levels.%d.%s", level, name)
	g, err := softmaxGate(op, in, wb[0], wb[1], len(rows))
	if err != nil {
		return nil, err
	}
	s, err := stack(rows)
	if err != nil {
		return nil, err
	}
	out, err := mix(g, s)
	if err != nil {
		return nil, fmt.Errorf("nets: %s: %w", op, err)
	}
	return out, nil
}
