package graph

import (
	"fmt"
	"unsafe"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// float is the element type constraint of medusa's kernels.
type float interface{ ~float32 | ~float64 }

// dense returns v's elements as a contiguous slice ([]float32, []float64 or
// []int) together with v's shape. Scalars come back as one-element slices.
func dense(v G.Value) (any, tensor.Shape, error) {
	switch x := v.(type) {
	case *G.F64:
		return []float64{float64(*x)}, tensor.ScalarShape(), nil
	case *G.F32:
		return []float32{float32(*x)}, tensor.ScalarShape(), nil
	case *tensor.Dense:
		if x.IsView() || !x.IsNativelyAccessible() {
			x = x.Materialize().(*tensor.Dense)
		}
		if x.IsScalar() {
			switch d := x.Data().(type) {
			case float64:
				return []float64{d}, tensor.ScalarShape(), nil
			case float32:
				return []float32{d}, tensor.ScalarShape(), nil
			case int:
				return []int{d}, tensor.ScalarShape(), nil
			}
		}
		switch x.Dtype() { // not Data: its reflection allocates twice
		case tensor.Float64:
			return x.Float64s(), x.Shape(), nil
		case tensor.Float32:
			return x.Float32s(), x.Shape(), nil
		}
		return x.Data(), x.Shape(), nil
	}
	return nil, nil, fmt.Errorf("graph: unsupported value type %T", v)
}

// floats is dense for values known to hold T: it returns v's elements as
// a []T together with v's shape, without dense's boxing of the slice.
func floats[T float](v G.Value) ([]T, tensor.Shape, error) {
	switch x := v.(type) {
	case *tensor.Dense:
		if x.IsView() || !x.IsNativelyAccessible() {
			x = x.Materialize().(*tensor.Dense)
		}
		if d, ok := elems[T](x); ok {
			return d, x.Shape(), nil
		}
		if x.Size() == 0 && x.Dtype() == dtypeOf[T]() {
			return []T{}, x.Shape(), nil
		}
	case *G.F64:
		if d, ok := any([]float64{float64(*x)}).([]T); ok {
			return d, tensor.ScalarShape(), nil
		}
	case *G.F32:
		if d, ok := any([]float32{float32(*x)}).([]T); ok {
			return d, tensor.ScalarShape(), nil
		}
	}
	return nil, nil, fmt.Errorf("graph: value %T of %v, want %v", v, dtypeName(v), dtypeOf[T]())
}

// dtypeOf returns the tensor.Dtype of T.
func dtypeOf[T float]() tensor.Dtype {
	var z T
	if unsafe.Sizeof(z) == 4 {
		return tensor.Float32
	}
	return tensor.Float64
}

// dtypeName returns v's dtype, or "no dtype" for a nil v.
func dtypeName(v G.Value) string {
	if v == nil {
		return "no dtype"
	}
	return v.Dtype().String()
}

// newValue wraps data ([]float32 or []float64) of the given shape as a
// gorgonia value: a scalar for the scalar shape, a *tensor.Dense otherwise.
func newValue(data any, shape tensor.Shape) G.Value {
	if shape.IsScalar() {
		switch d := data.(type) {
		case []float64:
			return G.NewF64(d[0])
		case []float32:
			return G.NewF32(d[0])
		}
	}
	return tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(data))
}

// reuse returns prealloc's elements as a []T of length n when prealloc is
// a dense, non-view tensor of that many T, and a new slice otherwise. Ops
// implement gorgonia's UsePreallocDoer with it, so that Plan can hand an
// op its previous output to write into.
func reuse[T float](prealloc G.Value, n int) []T {
	if t, ok := prealloc.(*tensor.Dense); ok && !t.IsView() {
		if d, ok := elems[T](t); ok && len(d) == n {
			return d
		}
	}
	return aligned[T](n)[:n:n]
}

// elems returns t's elements as a []T when t holds T values, without the
// allocation of t.Data's conversion to an interface.
func elems[T float](t *tensor.Dense) ([]T, bool) {
	var zero T
	switch {
	case t.Size() == 0 || !t.IsNativelyAccessible():
		return nil, false
	case unsafe.Sizeof(zero) == 8 && t.Dtype() == tensor.Float64:
		d := t.Float64s()
		return *(*[]T)(unsafe.Pointer(&d)), true
	case unsafe.Sizeof(zero) == 4 && t.Dtype() == tensor.Float32:
		d := t.Float32s()
		return *(*[]T)(unsafe.Pointer(&d)), true
	}
	return nil, false
}

// wrap returns data of the given shape as an op's output value: prealloc
// itself when data is its elements and it has that shape (the op wrote
// into it), else a new value.
func wrap[T float](prealloc G.Value, data []T, shape tensor.Shape) G.Value {
	if t, ok := prealloc.(*tensor.Dense); ok && !t.IsView() && len(data) > 0 && t.Size() == len(data) && sameShape(t.Shape(), shape) {
		if d, ok := elems[T](t); ok && &d[0] == &data[0] {
			return t
		}
	}
	return newValue(data, shape)
}

// sameShape reports whether a and b have the same axes: unlike
// tensor.Shape.Eq, a vector and a one-column matrix differ.
func sameShape(a, b tensor.Shape) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// tensorType returns the hm type of a dims-dimensional tensor of a, or a
// itself for dims 0.
func tensorType(dims int, a hm.Type) hm.Type {
	if dims == 0 {
		return a
	}
	return G.TensorType{Dims: dims, Of: a}
}

// hashOf hashes an op by its String form, which every medusa op makes
// unique to its parameters.
func hashOf(op fmt.Stringer) uint32 {
	var h uint32 = 2166136261
	for _, c := range []byte(op.String()) {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}
