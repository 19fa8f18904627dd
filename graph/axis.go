package graph

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Broadcast returns x with a new axis of size n inserted at position axis:
// out[..., j, ...] = x[...] for every j < n. Its derivative is SumAxis, and
// SumAxis's is Broadcast, so both can be differentiated any number of times.
func Broadcast(x *G.Node, axis, n int) (out *G.Node, err error) {
	defer recoverError(&err, "Broadcast")
	if axis < 0 || axis > x.Dims() {
		return nil, &ShapeError{Op: "Broadcast", Want: fmt.Sprintf("axis in [0, %d]", x.Dims()), Got: fmt.Sprint(axis)}
	}
	if n <= 0 {
		return nil, &ShapeError{Op: "Broadcast", Want: "a positive size", Got: fmt.Sprint(n)}
	}
	return apply(broadcastOp{axis: axis, n: n, dims: x.Dims()}, x)
}

// SumAxis sums x over one axis, removing it. Summing a vector gives a
// scalar.
func SumAxis(x *G.Node, axis int) (out *G.Node, err error) {
	defer recoverError(&err, "SumAxis")
	if axis < 0 || axis >= x.Dims() {
		return nil, &ShapeError{Op: "SumAxis", Want: fmt.Sprintf("axis in [0, %d)", x.Dims()), Got: fmt.Sprint(axis)}
	}
	return apply(sumAxisOp{axis: axis, n: x.Shape()[axis], dims: x.Dims()}, x)
}

// SumAll sums every element of x into a scalar.
func SumAll(x *G.Node) (*G.Node, error) {
	if x == nil {
		return nil, fmt.Errorf("graph: SumAll: nil node")
	}
	var err error
	for x.Dims() > 0 && err == nil {
		x, err = SumAxis(x, x.Dims()-1)
	}
	return x, err
}

// MeanAll averages every element of x into a scalar.
func MeanAll(x *G.Node) (*G.Node, error) {
	if x == nil {
		return nil, fmt.Errorf("graph: MeanAll: nil node")
	}
	n := x.Shape().TotalSize()
	s, err := SumAll(x)
	if err != nil {
		return nil, err
	}
	return Scale(s, 1/float64(n))
}

// Scale multiplies x by the constant c, in x's dtype.
func Scale(x *G.Node, c float64) (out *G.Node, err error) {
	defer recoverError(&err, "Scale")
	var k *G.Node
	switch x.Dtype() {
	case tensor.Float64:
		k = G.NewConstant(c, G.In(x.Graph()))
	case tensor.Float32:
		k = G.NewConstant(float32(c), G.In(x.Graph()))
	default:
		return nil, fmt.Errorf("graph: Scale: dtype %v not supported", x.Dtype())
	}
	return G.Mul(x, k)
}

// splitShape returns the products of the dimensions before and after axis.
func splitShape(s tensor.Shape, axis int) (outer, inner int) {
	outer, inner = 1, 1
	for i, d := range s {
		switch {
		case i < axis:
			outer *= d
		case i > axis:
			inner *= d
		}
	}
	return outer, inner
}

type broadcastOp struct {
	axis, n, dims int
}

func (op broadcastOp) arity() int { return 1 }
func (op broadcastOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(op.dims, a), tensorType(op.dims+1, a))
}
func (op broadcastOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	s := in[0]
	out := make(tensor.Shape, 0, len(s)+1)
	out = append(out, s[:op.axis]...)
	out = append(out, op.n)
	return append(out, s[op.axis:]...), nil
}
func (op broadcastOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	switch in[0].Dtype() {
	case tensor.Float64:
		return broadcastRun[float64](op, pre, in[0])
	case tensor.Float32:
		return broadcastRun[float32](op, pre, in[0])
	}
	return nil, fmt.Errorf("graph: %v: unsupported dtype %v", op, in[0].Dtype())
}

func broadcastRun[T float](op broadcastOp, pre, in G.Value) (G.Value, error) {
	x, s, err := floats[T](in)
	if err != nil {
		return nil, err
	}
	shape, _ := op.outShape(s)
	outer, inner := 1, 1
	for i, d := range s {
		if i < op.axis {
			outer *= d
		} else {
			inner *= d
		}
	}
	return wrap(pre, broadcastKernel(reuse[T](pre, outer*op.n*inner), x, outer, op.n, inner), shape), nil
}
func (op broadcastOp) String() string {
	return fmt.Sprintf("Broadcast{axis=%d, n=%d, dims=%d}", op.axis, op.n, op.dims)
}
func (op broadcastOp) diffWRT() []bool { return []bool{true} }
func (op broadcastOp) symDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := SumAxis(grad, op.axis)
	return G.Nodes{d}, err
}

func broadcastKernel[T float](out, x []T, outer, n, inner int) []T {
	for o := 0; o < outer; o++ {
		src := x[o*inner : (o+1)*inner]
		for j := 0; j < n; j++ {
			copy(out[(o*n+j)*inner:], src)
		}
	}
	return out
}

type sumAxisOp struct {
	axis, n, dims int
}

func (op sumAxisOp) arity() int { return 1 }
func (op sumAxisOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(op.dims, a), tensorType(op.dims-1, a))
}
func (op sumAxisOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	s := in[0]
	if op.axis >= len(s) {
		return nil, &ShapeError{Op: op.String(), Want: fmt.Sprintf("more than %d dims", op.axis), Got: fmt.Sprint(s)}
	}
	out := make(tensor.Shape, 0, len(s)-1)
	out = append(out, s[:op.axis]...)
	out = append(out, s[op.axis+1:]...)
	if len(out) == 0 {
		return tensor.ScalarShape(), nil
	}
	return out, nil
}
func (op sumAxisOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	switch in[0].Dtype() {
	case tensor.Float64:
		return sumAxisRun[float64](op, pre, in[0])
	case tensor.Float32:
		return sumAxisRun[float32](op, pre, in[0])
	}
	return nil, fmt.Errorf("graph: %v: unsupported dtype %v", op, in[0].Dtype())
}

func sumAxisRun[T float](op sumAxisOp, pre, in G.Value) (G.Value, error) {
	x, s, err := floats[T](in)
	if err != nil {
		return nil, err
	}
	if op.axis >= len(s) {
		return nil, &ShapeError{Op: op.String(), Want: fmt.Sprintf("more than %d dims", op.axis), Got: fmt.Sprint(s)}
	}
	outer, inner := splitShape(s, op.axis)
	out := reuse[T](pre, outer*inner)
	sumAxisKernel(out, x, outer, s[op.axis], inner)
	if t, ok := pre.(*tensor.Dense); ok && len(out) > 0 && t.Size() == len(out) && len(t.Shape()) == len(s)-1 {
		// pre has the output's shape when it holds out: skip building the
		// shape (InferShape allocates).
		if d, ok := elems[T](t); ok && &d[0] == &out[0] && sameShapeWithout(t.Shape(), s, op.axis) {
			return t, nil
		}
	}
	shape, err := op.outShape(s)
	if err != nil {
		return nil, err
	}
	return wrap(pre, out, shape), nil
}

// sameShapeWithout reports whether a is s without its axis.
func sameShapeWithout(a, s tensor.Shape, axis int) bool {
	if len(a) != len(s)-1 {
		return false
	}
	for i := range a {
		j := i
		if i >= axis {
			j++
		}
		if a[i] != s[j] {
			return false
		}
	}
	return true
}
func (op sumAxisOp) String() string {
	return fmt.Sprintf("SumAxis{axis=%d, n=%d, dims=%d}", op.axis, op.n, op.dims)
}
func (op sumAxisOp) diffWRT() []bool { return []bool{true} }
func (op sumAxisOp) symDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := Broadcast(grad, op.axis, op.n)
	return G.Nodes{d}, err
}

// addTo adds src to dst, element by element.
func addTo[T float](dst, src []T) {
	src = src[:len(dst)]
	if d32, ok := asF32(dst); ok && vec32(len(dst)) {
		s32, _ := asF32(src)
		addToF32(&d32[0], &s32[0], len(dst))
		done := len(dst) &^ 7
		dst, src = dst[done:], src[done:]
	}
	for k, v := range src {
		dst[k] += v
	}
}

func sumAxisKernel[T float](out, x []T, outer, n, inner int) []T {
	clear(out)
	for o := 0; o < outer; o++ {
		dst := out[o*inner : (o+1)*inner]
		for j := 0; j < n; j++ {
			addTo(dst, x[(o*n+j)*inner:(o*n+j+1)*inner])
		}
	}
	return out
}
