package graph

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LogSoftmax returns log(softmax(x)) over x's last axis, computed stably.
// Its derivative, g − softmax(x)·Σg, is built from differentiable ops, so it
// can be differentiated again (gorgonia's own SoftMax cannot).
func LogSoftmax(x *G.Node) (out *G.Node, err error) {
	defer recoverError(&err, "LogSoftmax")
	if x.Dims() < 1 {
		return nil, &ShapeError{Op: "LogSoftmax", Want: "at least one axis", Got: "a scalar"}
	}
	return apply(logSoftmaxOp{}, x)
}

// SoftmaxCrossEntropy returns the mean over all leading positions of
// −Σ_c targets[..., c]·log softmax(logits)[..., c]. targets holds one-hot
// rows (or any probability rows) of logits' shape.
func SoftmaxCrossEntropy(logits, targets *G.Node) (*G.Node, error) {
	if logits == nil || targets == nil {
		return nil, fmt.Errorf("graph: SoftmaxCrossEntropy: nil node")
	}
	if !logits.Shape().Eq(targets.Shape()) || logits.Dims() < 1 || logits.Shape().TotalSize() == 0 {
		return nil, &ShapeError{Op: "SoftmaxCrossEntropy", Want: fmt.Sprint(logits.Shape()), Got: fmt.Sprint(targets.Shape())}
	}
	lp, err := LogSoftmax(logits)
	if err != nil {
		return nil, err
	}
	prod, err := hadamard(lp, targets)
	if err != nil {
		return nil, err
	}
	rows := logits.Shape().TotalSize() / logits.Shape()[logits.Dims()-1]
	s, err := SumAll(prod)
	if err != nil {
		return nil, err
	}
	return Scale(s, -1/float64(rows))
}

func hadamard(a, b *G.Node) (out *G.Node, err error) {
	defer recoverError(&err, "HadamardProd")
	return G.HadamardProd(a, b)
}

type logSoftmaxOp struct{}

func (op logSoftmaxOp) arity() int { return 1 }
func (op logSoftmaxOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a)
}
func (op logSoftmaxOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	return in[0].Clone(), nil
}
func (op logSoftmaxOp) noBuffer() {}
func (op logSoftmaxOp) do(_ G.Value, in []G.Value) (G.Value, error) {
	data, s, err := dense(in[0])
	if err != nil {
		return nil, err
	}
	n := s[len(s)-1]
	switch x := data.(type) {
	case []float64:
		return newValue(logSoftmaxKernel(x, n), s), nil
	case []float32:
		return newValue(logSoftmaxKernel(x, n), s), nil
	}
	return nil, fmt.Errorf("graph: %v: unsupported data %T", op, data)
}
func (op logSoftmaxOp) String() string  { return "LogSoftmax" }
func (op logSoftmaxOp) diffWRT() []bool { return []bool{true} }

// SymDiff: dx = g − exp(y) ⊙ broadcast(Σ_last g).
func (op logSoftmaxOp) symDiff(_ G.Nodes, y, grad *G.Node) (G.Nodes, error) {
	last := y.Dims() - 1
	s, err := SumAxis(grad, last)
	if err != nil {
		return nil, err
	}
	if s, err = Broadcast(s, last, y.Shape()[last]); err != nil {
		return nil, err
	}
	p, err := G.Exp(y)
	if err != nil {
		return nil, err
	}
	ps, err := G.HadamardProd(p, s)
	if err != nil {
		return nil, err
	}
	d, err := G.Sub(grad, ps)
	return G.Nodes{d}, err
}

func logSoftmaxKernel[T float](x []T, n int) []T {
	out := make([]T, len(x))
	for r := 0; r+n <= len(x); r += n {
		row := x[r : r+n]
		m := row[0]
		for _, v := range row {
			if v > m {
				m = v
			}
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v - m))
		}
		lse := T(math.Log(sum)) + m
		for i, v := range row {
			out[r+i] = v - lse
		}
	}
	return out
}

// StopGradient returns x unchanged in the forward pass and blocks every
// gradient through it: Grad treats it as a constant. First-order MAML is
// MAML with the inner gradients passed through StopGradient.
func StopGradient(x *G.Node) (out *G.Node, err error) {
	defer recoverError(&err, "StopGradient")
	return apply(stopGradientOp{}, x)
}

type stopGradientOp struct{}

func (op stopGradientOp) arity() int { return 1 }
func (op stopGradientOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a)
}
func (op stopGradientOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	return in[0].Clone(), nil
}
func (op stopGradientOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	switch in[0].Dtype() {
	case tensor.Float64:
		return copyValue[float64](pre, in[0])
	case tensor.Float32:
		return copyValue[float32](pre, in[0])
	}
	return nil, fmt.Errorf("graph: StopGradient: unsupported dtype %v", in[0].Dtype())
}

// copyValue returns a copy of v, in pre's memory when it fits.
func copyValue[T float](pre, v G.Value) (G.Value, error) {
	x, s, err := floats[T](v)
	if err != nil {
		return nil, err
	}
	if s.IsScalar() {
		return newValue(append([]T(nil), x...), s), nil
	}
	out := reuse[T](pre, len(x))
	copy(out, x)
	return wrap(pre, out, s), nil
}
func (op stopGradientOp) String() string  { return "StopGradient" }
func (op stopGradientOp) diffWRT() []bool { return []bool{false} }
func (op stopGradientOp) symDiff(in G.Nodes, _, _ *G.Node) (G.Nodes, error) {
	z, err := zerosLike(in[0])
	return G.Nodes{z}, err
}
