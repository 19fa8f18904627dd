package graph

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Pick gathers x[..., labels[...]] along x's last axis: for x of shape
// [..., C] and integer labels of shape [...], the result has labels' shape.
// Its derivative scatters the gradient back into a [..., C] tensor of
// zeros, and that scatter's derivative is Pick again.
//
// A label outside [0, C) makes the machine's Run fail with an error that
// names the position.
func Pick(x, labels *G.Node) (out *G.Node, err error) {
	defer recoverError(&err, "Pick")
	if labels.Dtype() != tensor.Int {
		return nil, fmt.Errorf("graph: Pick: labels have dtype %v, want int", labels.Dtype())
	}
	xs, ls := x.Shape(), labels.Shape()
	if x.Dims() < 1 || !tensor.Shape(xs[:len(xs)-1]).Eq(ls) && !(x.Dims() == 1 && ls.IsScalar()) {
		return nil, &ShapeError{Op: "Pick", Want: fmt.Sprintf("labels of shape %v", xs[:len(xs)-1]), Got: fmt.Sprint(ls)}
	}
	return apply(pickOp{classes: xs[len(xs)-1], dims: x.Dims()}, x, labels)
}

// CrossEntropyLabels returns the mean over positions of −log softmax(logits)
// at the integer labels.
func CrossEntropyLabels(logits, labels *G.Node) (*G.Node, error) {
	lp, err := LogSoftmax(logits)
	if err != nil {
		return nil, err
	}
	p, err := Pick(lp, labels)
	if err != nil {
		return nil, err
	}
	m, err := MeanAll(p)
	if err != nil {
		return nil, err
	}
	return Scale(m, -1)
}

type pickOp struct {
	classes, dims int
}

func (op pickOp) arity() int { return 2 }
func (op pickOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(op.dims, a), tensorType(op.dims-1, tensor.Int), tensorType(op.dims-1, a))
}
func (op pickOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	s := in[0]
	if len(s) == 1 {
		return tensor.ScalarShape(), nil
	}
	return s[:len(s)-1].Clone(), nil
}
func (op pickOp) noBuffer() {}
func (op pickOp) do(_ G.Value, in []G.Value) (G.Value, error) {
	data, s, err := dense(in[0])
	if err != nil {
		return nil, err
	}
	ld, _, err := dense(in[1])
	if err != nil {
		return nil, err
	}
	labels, ok := ld.([]int)
	if !ok {
		return nil, fmt.Errorf("graph: %v: labels are %T, want []int", op, ld)
	}
	shape, _ := op.outShape(s)
	switch x := data.(type) {
	case []float64:
		out, err := pickKernel(x, labels, op.classes)
		return newValue(out, shape), err
	case []float32:
		out, err := pickKernel(x, labels, op.classes)
		return newValue(out, shape), err
	}
	return nil, fmt.Errorf("graph: %v: unsupported data %T", op, data)
}
func (op pickOp) String() string {
	return fmt.Sprintf("Pick{classes=%d, dims=%d}", op.classes, op.dims)
}
func (op pickOp) diffWRT() []bool { return []bool{true, false} }
func (op pickOp) symDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := apply(scatterOp{classes: op.classes, dims: op.dims}, grad, in[1])
	return G.Nodes{d, nil}, err
}

func pickKernel[T float](x []T, labels []int, classes int) ([]T, error) {
	out := make([]T, len(labels))
	for i, l := range labels {
		if l < 0 || l >= classes {
			return nil, fmt.Errorf("graph: Pick: label %d at position %d is outside [0, %d)", l, i, classes)
		}
		out[i] = x[i*classes+l]
	}
	return out, nil
}

// scatterOp is Pick's adjoint: out[..., c] = g[...] if c == labels[...].
type scatterOp struct {
	classes, dims int
}

func (op scatterOp) arity() int { return 2 }
func (op scatterOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(op.dims-1, a), tensorType(op.dims-1, tensor.Int), tensorType(op.dims, a))
}
func (op scatterOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	s := in[0]
	return append(s.Clone(), op.classes), nil
}
func (op scatterOp) noBuffer() {}
func (op scatterOp) do(_ G.Value, in []G.Value) (G.Value, error) {
	data, s, err := dense(in[0])
	if err != nil {
		return nil, err
	}
	ld, _, err := dense(in[1])
	if err != nil {
		return nil, err
	}
	labels, ok := ld.([]int)
	if !ok {
		return nil, fmt.Errorf("graph: %v: labels are %T, want []int", op, ld)
	}
	shape := append(tensor.Shape{}, s...)
	if s.IsScalar() {
		shape = tensor.Shape{}
	}
	shape = append(shape, op.classes)
	switch g := data.(type) {
	case []float64:
		out, err := scatterKernel(g, labels, op.classes)
		return newValue(out, shape), err
	case []float32:
		out, err := scatterKernel(g, labels, op.classes)
		return newValue(out, shape), err
	}
	return nil, fmt.Errorf("graph: %v: unsupported data %T", op, data)
}
func (op scatterOp) String() string {
	return fmt.Sprintf("Scatter{classes=%d, dims=%d}", op.classes, op.dims)
}
func (op scatterOp) diffWRT() []bool { return []bool{true, false} }
func (op scatterOp) symDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := apply(pickOp{classes: op.classes, dims: op.dims}, grad, in[1])
	return G.Nodes{d, nil}, err
}

func scatterKernel[T float](g []T, labels []int, classes int) ([]T, error) {
	out := make([]T, len(labels)*classes)
	for i, l := range labels {
		if l < 0 || l >= classes {
			return nil, fmt.Errorf("graph: Pick: label %d at position %d is outside [0, %d)", l, i, classes)
		}
		out[i*classes+l] = g[i]
	}
	return out, nil
}
