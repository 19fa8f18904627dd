package graph

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ReLU returns max(x, 0) elementwise. Its derivative passes the upstream
// gradient where x > 0 and zeroes it elsewhere, in one fused op; that op is
// linear in the gradient, so it is its own derivative with respect to the
// gradient, and its derivative with respect to x is zero (everywhere but
// at 0, where ReLU has no derivative). ReLU networks therefore
// differentiate any number of times, as MAML's second-order terms need.
// At x = 0 the gradient is taken as 0, as PyTorch does.
func ReLU(x *G.Node) (out *G.Node, err error) {
	defer recoverError(&err, "ReLU")
	return apply(reluOp{}, x)
}

type reluOp struct{}

func (op reluOp) arity() int { return 1 }
func (op reluOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a)
}
func (op reluOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	return in[0].Clone(), nil
}
func (op reluOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	switch in[0].Dtype() {
	case tensor.Float64:
		x, s, err := floats[float64](in[0])
		if err != nil {
			return nil, err
		}
		return wrap(pre, relu64(reuse[float64](pre, len(x)), x), s), nil
	case tensor.Float32:
		x, s, err := floats[float32](in[0])
		if err != nil {
			return nil, err
		}
		return wrap(pre, relu32(reuse[float32](pre, len(x)), x), s), nil
	}
	return nil, fmt.Errorf("graph: %v: unsupported dtype %v", op, in[0].Dtype())
}
func (op reluOp) String() string  { return "ReLU" }
func (op reluOp) diffWRT() []bool { return []bool{true} }
func (op reluOp) symDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := apply(reluMaskOp{}, in[0], grad)
	return G.Nodes{d}, err
}

// The kernels work on the bits, without branches: the signs of
// activations are random, and a mispredicted branch per element cost more
// than the arithmetic.

// keep32 is all ones where v > 0 and zero elsewhere (−0, +0, negatives).
func keep32(v float32) uint32 {
	b := int32(math.Float32bits(v))
	return ^uint32(b>>31) & uint32((-b)>>31)
}

func keep64(v float64) uint64 {
	b := int64(math.Float64bits(v))
	return ^uint64(b>>63) & uint64((-b)>>63)
}

func relu32(out, x []float32) []float32 {
	if vec32(len(x)) {
		// relu(x) is x masked by itself.
		_ = out[len(x)-1]
		maskF32(&out[0], &x[0], &x[0], len(x))
		done := len(x) &^ 7
		relu32(out[done:], x[done:])
		return out
	}
	for i, v := range x {
		out[i] = math.Float32frombits(math.Float32bits(v) & keep32(v))
	}
	return out
}

func relu64(out, x []float64) []float64 {
	for i, v := range x {
		out[i] = math.Float64frombits(math.Float64bits(v) & keep64(v))
	}
	return out
}

// reluMaskOp(x, g) is g where x > 0 and 0 elsewhere.
type reluMaskOp struct{}

func (op reluMaskOp) arity() int { return 2 }
func (op reluMaskOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a, a)
}
func (op reluMaskOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	return in[1].Clone(), nil
}
func (op reluMaskOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	switch in[0].Dtype() {
	case tensor.Float64:
		return reluMask(op, pre, in, mask64)
	case tensor.Float32:
		return reluMask(op, pre, in, mask32)
	}
	return nil, fmt.Errorf("graph: %v: unsupported dtype %v", op, in[0].Dtype())
}

// reluMask passes the gradient in[1] where the activation input in[0] is
// positive, with kernel.
func reluMask[T float](op reluMaskOp, pre G.Value, in []G.Value, kernel func(out, x, g []T) []T) (G.Value, error) {
	x, xs, err := floats[T](in[0])
	if err != nil {
		return nil, err
	}
	g, gs, err := floats[T](in[1])
	if err != nil {
		return nil, fmt.Errorf("graph: %v: mixed data: %v", op, err)
	}
	if xs.TotalSize() != gs.TotalSize() {
		return nil, &ShapeError{Op: op.String(), Want: fmt.Sprint(xs), Got: fmt.Sprint(gs)}
	}
	return wrap(pre, kernel(reuse[T](pre, len(g)), x, g), gs), nil
}
func (op reluMaskOp) String() string  { return "ReLUMask" }
func (op reluMaskOp) diffWRT() []bool { return []bool{false, true} }
func (op reluMaskOp) symDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := apply(reluMaskOp{}, in[0], grad)
	return G.Nodes{nil, d}, err
}

func mask32(out, x, g []float32) []float32 {
	g = g[:len(x)]
	if vec32(len(x)) {
		_ = out[len(x)-1]
		maskF32(&out[0], &x[0], &g[0], len(x))
		done := len(x) &^ 7
		mask32(out[done:], x[done:], g[done:])
		return out
	}
	for i, v := range x {
		out[i] = math.Float32frombits(math.Float32bits(g[i]) & keep32(v))
	}
	return out
}

func mask64(out, x, g []float64) []float64 {
	g = g[:len(x)]
	for i, v := range x {
		out[i] = math.Float64frombits(math.Float64bits(g[i]) & keep64(v))
	}
	return out
}
