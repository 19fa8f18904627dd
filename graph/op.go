package graph

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// kernel is how this package writes a graph op: what the op computes and
// how it differentiates, and nothing of gorgonia's Op plumbing, which
// apply wraps around it. Attributes (an axis, a window) are the kernel's
// fields; String names the op with them, and is its hash.
type kernel interface {
	fmt.Stringer
	// arity is the number of inputs; typ the op's type, inputs to output.
	arity() int
	typ() hm.Type
	// outShape is the output's shape for inputs of shapes in.
	outShape(in ...tensor.Shape) (tensor.Shape, error)
	// do computes the output, writing it into pre when pre is not nil
	// and the kernel is not a bufferless one.
	do(pre G.Value, in []G.Value) (G.Value, error)
	// describe is the op's OpSpec kind and attributes, for devices.
	describe() (kind string, attr map[string]int, eps float64)
}

// differentiable is a kernel with a derivative: diffWRT says which
// inputs carry a gradient, and symDiff builds their gradients, as nodes,
// from the output's.
type differentiable interface {
	diffWRT() []bool
	symDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error)
}

// bufferless is a kernel that ignores the buffer do is given, so that
// the executor gives it none.
type bufferless interface{ noBuffer() }

// apply applies the op of kernel k to the inputs.
func apply[K kernel](k K, in ...*G.Node) (*G.Node, error) {
	if _, ok := any(k).(bufferless); ok {
		return G.ApplyOp(op[K]{k}, in...)
	}
	return G.ApplyOp(bufferOp[K]{op[K]{k}}, in...)
}

// op is gorgonia's Op for a kernel.
type op[K kernel] struct{ k K }

func (o op[K]) Arity() int            { return o.k.arity() }
func (o op[K]) Type() hm.Type         { return o.k.typ() }
func (o op[K]) ReturnsPtr() bool      { return false }
func (o op[K]) CallsExtern() bool     { return false }
func (o op[K]) OverwritesInput() int  { return -1 }
func (o op[K]) String() string        { return o.k.String() }
func (o op[K]) WriteHash(h hash.Hash) { fmt.Fprint(h, o.k.String()) }
func (o op[K]) Hashcode() uint32      { return hashOf(o.k) }

func (o op[K]) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s := make([]tensor.Shape, len(in))
	for i, d := range in {
		t, ok := d.(tensor.Shape)
		if !ok {
			return nil, fmt.Errorf("graph: %v: input %d has no shape (%T)", o.k, i, d)
		}
		s[i] = t
	}
	return o.k.outShape(s...)
}

func (o op[K]) Do(in ...G.Value) (G.Value, error) { return o.k.do(nil, in) }

func (o op[K]) describe() (string, map[string]int, float64) { return o.k.describe() }

// DiffWRT and SymDiff make the op a gorgonia SDOp; a kernel without a
// derivative carries no gradient.
func (o op[K]) DiffWRT(n int) []bool {
	if d, ok := any(o.k).(differentiable); ok {
		return d.diffWRT()
	}
	return make([]bool, n)
}

func (o op[K]) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	if d, ok := any(o.k).(differentiable); ok {
		return d.symDiff(in, out, grad)
	}
	return nil, fmt.Errorf("graph: %v: %w", o.k, ErrNotDifferentiable)
}

// bufferOp is op for a kernel that writes into the buffer it is given.
type bufferOp[K kernel] struct{ op[K] }

func (o bufferOp[K]) UsePreallocDo(pre G.Value, in ...G.Value) (G.Value, error) {
	return o.k.do(pre, in)
}
