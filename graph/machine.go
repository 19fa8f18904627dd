package graph

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Machine executes a graph that was compiled once: bind inputs by name, run,
// read outputs. Implementations may change (a static-plan executor with
// preallocated buffers, a GPU backend) without touching the code that uses
// them.
//
// A Machine is not safe for concurrent use; separate machines may run
// concurrently.
type Machine interface {
	// Let binds the input node called name to v. The value is used, not
	// copied, until it is bound again.
	Let(name string, v tensor.Tensor) error
	// Run executes the graph once with the bound inputs.
	Run() error
	// Read returns n's value from the last Run. The value belongs to the
	// machine and is replaced by the next Run.
	Read(n *G.Node) (G.Value, error)
	// Close releases the machine's resources.
	Close() error
}

// Plan is a Machine that runs each op of the graph once per Run, in
// topological order. Every node has its own output buffer: an op that can
// write into a given buffer (gorgonia's UsePreallocDoer) gets its own
// output of the previous Run to overwrite, others allocate afresh. No
// buffer is ever shared between two nodes, so Plan is immune to the
// in-place overwrites that gorgonia's TapeMachine register allocator makes
// on graphs holding higher-order gradients (a gradient of log x there
// comes out as 1/x²).
type Plan struct {
	g      *G.ExprGraph
	nodes  G.Nodes // topological order, children first
	args   [][]int
	index  map[*G.Node]int
	vals   []G.Value
	inputs map[string]int
	unused map[string]*G.Node // inputs of g that no output depends on
	fixed  []bool             // constants, computed at compile time
	bound  []bool             // inputs bound with Let
	owned  []bool             // vals[i] is a buffer node i's op made and may overwrite
}

var _ Machine = (*Plan)(nil)

// Compile returns a Plan that computes outputs (every node of g if none are
// given). Input nodes must have unique names.
func Compile(g *G.ExprGraph, outputs ...*G.Node) (p *Plan, err error) {
	defer recoverError(&err, "Compile")
	if g == nil {
		return nil, fmt.Errorf("graph: Compile: nil graph")
	}
	if len(outputs) == 0 {
		outputs = g.AllNodes()
	}
	p = &Plan{g: g, index: make(map[*G.Node]int), inputs: make(map[string]int)}
	for _, o := range outputs {
		if o == nil || o.Graph() != g {
			return nil, fmt.Errorf("graph: Compile: output is not a node of the graph")
		}
		for _, n := range topoSort(o) {
			if _, seen := p.index[n]; seen {
				continue
			}
			p.index[n] = len(p.nodes)
			p.nodes = append(p.nodes, n)
		}
	}
	p.unused = make(map[string]*G.Node)
	for _, n := range g.AllNodes() {
		if _, used := p.index[n]; !used && n.Op() == nil {
			p.unused[n.Name()] = n
		}
	}
	p.args = make([][]int, len(p.nodes))
	p.vals = make([]G.Value, len(p.nodes))
	p.fixed = make([]bool, len(p.nodes))
	p.bound = make([]bool, len(p.nodes))
	p.owned = make([]bool, len(p.nodes))
	for i, n := range p.nodes {
		for _, c := range inputs(n) {
			p.args[i] = append(p.args[i], p.index[c])
		}
		switch {
		case n.Op() == nil:
			if prev, dup := p.inputs[n.Name()]; dup && p.nodes[prev] != n {
				return nil, fmt.Errorf("graph: Compile: two inputs named %q", n.Name())
			}
			p.inputs[n.Name()] = i
		case isConstant(n):
			v, err := n.Op().Do()
			if err != nil {
				return nil, fmt.Errorf("graph: Compile: constant %s: %v", n.Name(), err)
			}
			p.vals[i], p.fixed[i] = v, true
		}
	}
	return p, nil
}

// Let implements Machine.
func (p *Plan) Let(name string, v tensor.Tensor) error {
	if v == nil {
		return fmt.Errorf("graph: Let %s: nil value", name)
	}
	i, ok := p.inputs[name]
	if !ok {
		if n, ok := p.unused[name]; ok {
			// No output needs it: check, then ignore.
			if !n.Shape().Eq(v.Shape()) || n.Dtype() != v.Dtype() {
				return &ShapeError{Op: "Let " + name, Want: fmt.Sprint(n.Shape(), n.Dtype()), Got: fmt.Sprint(v.Shape(), v.Dtype())}
			}
			return nil
		}
		return fmt.Errorf("graph: Let: no input named %q", name)
	}
	n := p.nodes[i]
	if n.Dtype() != v.Dtype() {
		return fmt.Errorf("graph: Let %s: want dtype %v, got %v", name, n.Dtype(), v.Dtype())
	}
	if n.Shape().IsScalar() {
		if v.Shape().TotalSize() != 1 {
			return &ShapeError{Op: "Let " + name, Want: "a scalar", Got: fmt.Sprint(v.Shape())}
		}
		d, _, err := dense(v)
		if err != nil {
			return fmt.Errorf("graph: Let %s: %v", name, err)
		}
		p.vals[i], p.bound[i] = newValue(d, tensor.ScalarShape()), true
		return nil
	}
	if !n.Shape().Eq(v.Shape()) {
		return &ShapeError{Op: "Let " + name, Want: fmt.Sprint(n.Shape()), Got: fmt.Sprint(v.Shape())}
	}
	p.vals[i], p.bound[i] = v, true
	return nil
}

// Run implements Machine.
func (p *Plan) Run() (err error) {
	if p.vals == nil {
		return fmt.Errorf("graph: Run: the machine is closed")
	}
	var cur *G.Node
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("graph: Run: op %v (node %s): %v", cur.Op(), cur.Name(), r)
		}
	}()
	in := make([]G.Value, 0, 4)
	for i, n := range p.nodes {
		if p.fixed[i] {
			continue
		}
		cur = n
		if n.Op() == nil {
			if !p.bound[i] {
				// Perhaps bound with gorgonia.Let directly.
				if p.vals[i] = n.Value(); p.vals[i] == nil {
					return fmt.Errorf("graph: Run: input %q is not bound", n.Name())
				}
			}
			continue
		}
		in = in[:0]
		for _, a := range p.args[i] {
			in = append(in, p.vals[a])
		}
		var v G.Value
		if pd, ok := n.Op().(G.UsePreallocDoer); ok && p.owned[i] {
			v, err = pd.UsePreallocDo(p.vals[i], in...)
		} else {
			v, err = n.Op().Do(in...)
		}
		if err != nil {
			return fmt.Errorf("graph: Run: op %v (node %s): %v", n.Op(), n.Name(), err)
		}
		if t, ok := v.(*tensor.Dense); ok && t.Dims() == 0 && n.Shape().IsScalar() {
			// gorgonia's scalar ops want scalar values, not 0-d tensors.
			d, _, err := dense(t)
			if err != nil {
				return fmt.Errorf("graph: Run: op %v (node %s): %v", n.Op(), n.Name(), err)
			}
			v = newValue(d, tensor.ScalarShape())
		}
		p.vals[i] = v
		p.owned[i] = ownBuffer(v, in)
	}
	return nil
}

// ownBuffer reports whether v is a dense tensor whose memory none of the
// op's inputs share, so that the op may write into it next time.
func ownBuffer(v G.Value, in []G.Value) bool {
	t, ok := v.(*tensor.Dense)
	if !ok || t.IsView() || t.Dims() == 0 || t.Size() == 0 {
		return false
	}
	lo := t.Uintptr()
	hi := lo + uintptr(t.MemSize())
	for _, x := range in {
		if u, ok := x.(*tensor.Dense); ok && u.Size() > 0 {
			a := u.Uintptr()
			if a < hi && lo < a+uintptr(u.MemSize()) {
				return false
			}
		}
	}
	return true
}

// isConstant reports whether n is a gorgonia constant.
func isConstant(n *G.Node) bool {
	switch fmt.Sprintf("%T", n.Op()) {
	case "gorgonia.constantScalar", "gorgonia.constantTensor":
		return true
	}
	return false
}

// Read implements Machine.
func (p *Plan) Read(n *G.Node) (G.Value, error) {
	if p.vals == nil {
		return nil, fmt.Errorf("graph: Read: the machine is closed")
	}
	i, ok := p.index[n]
	if !ok {
		if n != nil && n.Op() != nil && isConstant(n) {
			return n.Op().Do() // a constant outside the compiled set
		}
		return nil, fmt.Errorf("graph: Read: node is not computed by this machine")
	}
	if p.vals[i] == nil {
		return nil, fmt.Errorf("graph: Read %s: no value (has Run been called?)", n.Name())
	}
	return p.vals[i], nil
}

// ReadFloat64s returns n's value from the last Run as float64s.
func (p *Plan) ReadFloat64s(n *G.Node) ([]float64, error) {
	v, err := p.Read(n)
	if err != nil {
		return nil, err
	}
	return Float64s(v), nil
}

// Close implements Machine.
func (p *Plan) Close() error { p.vals = nil; return nil }
