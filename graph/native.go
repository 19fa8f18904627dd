package graph

import (
	"os"
	"sync"
	"unsafe"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// A nativeKernel runs a node on the CPU in place of its op's Do: medusa's
// own loop for an op of gorgonia's, with the same arithmetic and so the
// same bits, without the allocations and the dispatch of gorgonia's tensor
// engine. pre is a buffer to write into, as for UsePreallocDo (nil: none).
// It reports false when the values are not what it was compiled for (a
// view, another dtype), and the op's Do runs instead.
type nativeKernel func(pre G.Value, in []G.Value) (G.Value, bool)

// nativeOn reports whether Plans use medusa's own kernels: the native
// kernels and the small float32 gemm (sgemmSmall). MEDUSA_NATIVE=off runs
// gorgonia's ops and gonum's gemm instead, to compare or to rule the
// kernels out. It is read once; tests may replace it.
var nativeOn = sync.OnceValue(func() bool { return os.Getenv("MEDUSA_NATIVE") != "off" })

// nativeFor returns the native kernel of node n, or nil if it has none:
// gorgonia's element-wise add, sub, mul, div of two tensors of n's shape or
// of a tensor and a scalar, and its neg and square, in float32 and float64.
func nativeFor(n *G.Node) nativeKernel {
	s, ok := Describe(n)
	if !ok || s.Out.IsScalar() || (s.Dtype != tensor.Float32 && s.Dtype != tensor.Float64) {
		return nil
	}
	for _, d := range s.Dtypes {
		if d != s.Dtype {
			return nil
		}
	}
	switch s.Kind {
	case "add", "sub", "mul", "div":
		if len(s.In) != 2 {
			return nil
		}
		shape := [2]int{} // 0: a tensor of n's shape, 1: a scalar
		for j, in := range s.In {
			switch {
			case in.IsScalar():
				shape[j] = 1
			case !in.Eq(s.Out):
				return nil
			}
		}
		if shape[0] == 1 && shape[1] == 1 {
			return nil
		}
		op := binaryOps[s.Kind]
		if s.Dtype == tensor.Float32 {
			return binaryKernel[float32](op, s.Out, shape[0] == 1, shape[1] == 1)
		}
		return binaryKernel[float64](op, s.Out, shape[0] == 1, shape[1] == 1)
	case "neg", "square":
		if len(s.In) != 1 || !s.In[0].Eq(s.Out) {
			return nil
		}
		if s.Dtype == tensor.Float32 {
			return unaryKernel[float32](s.Kind == "neg", s.Out)
		}
		return unaryKernel[float64](s.Kind == "neg", s.Out)
	}
	return nil
}

type binaryOp int

const (
	opAdd binaryOp = iota
	opSub
	opMul
	opDiv
)

var binaryOps = map[string]binaryOp{"add": opAdd, "sub": opSub, "mul": opMul, "div": opDiv}

// binaryKernel applies op to two values of shape out, or to one and a
// scalar (scalarA or scalarB).
func binaryKernel[T float](op binaryOp, out tensor.Shape, scalarA, scalarB bool) nativeKernel {
	n := out.TotalSize()
	return func(pre G.Value, in []G.Value) (G.Value, bool) {
		var a, b []T
		var sa, sb T
		var ok bool
		if scalarA {
			sa, ok = scalarOf[T](in[0])
		} else {
			a, ok = flat[T](in[0], n)
		}
		if !ok {
			return nil, false
		}
		if scalarB {
			sb, ok = scalarOf[T](in[1])
		} else {
			b, ok = flat[T](in[1], n)
		}
		if !ok {
			return nil, false
		}
		c := reuse[T](pre, n)
		switch {
		case scalarA:
			binarySV(op, c, sa, b)
		case scalarB:
			binaryVS(op, c, a, sb)
		default:
			binaryVV(op, c, a, b)
		}
		return wrap(pre, c, out), true
	}
}

func binaryVV[T float](op binaryOp, c, a, b []T) {
	a, b = a[:len(c)], b[:len(c)]
	if c32, ok := asF32(c); ok && vec32(len(c)) {
		a32, _ := asF32(a)
		b32, _ := asF32(b)
		vvF32(int(op), &c32[0], &a32[0], &b32[0], len(c))
		done := len(c) &^ 7
		c, a, b = c[done:], a[done:], b[done:]
	}
	switch op {
	case opAdd:
		for i := range c {
			c[i] = a[i] + b[i]
		}
	case opSub:
		for i := range c {
			c[i] = a[i] - b[i]
		}
	case opMul:
		for i := range c {
			c[i] = a[i] * b[i]
		}
	case opDiv:
		for i := range c {
			c[i] = a[i] / b[i]
		}
	}
}

func binaryVS[T float](op binaryOp, c, a []T, s T) {
	a = a[:len(c)]
	if c32, ok := asF32(c); ok && vec32(len(c)) {
		a32, _ := asF32(a)
		vsF32(int(op), &c32[0], &a32[0], float32(s), len(c), 0)
		done := len(c) &^ 7
		c, a = c[done:], a[done:]
	}
	switch op {
	case opAdd:
		for i := range c {
			c[i] = a[i] + s
		}
	case opSub:
		for i := range c {
			c[i] = a[i] - s
		}
	case opMul:
		for i := range c {
			c[i] = a[i] * s
		}
	case opDiv:
		for i := range c {
			c[i] = a[i] / s
		}
	}
}

func binarySV[T float](op binaryOp, c []T, s T, b []T) {
	b = b[:len(c)]
	if c32, ok := asF32(c); ok && vec32(len(c)) {
		b32, _ := asF32(b)
		vsF32(int(op), &c32[0], &b32[0], float32(s), len(c), 1)
		done := len(c) &^ 7
		c, b = c[done:], b[done:]
	}
	switch op {
	case opAdd:
		for i := range c {
			c[i] = s + b[i]
		}
	case opSub:
		for i := range c {
			c[i] = s - b[i]
		}
	case opMul:
		for i := range c {
			c[i] = s * b[i]
		}
	case opDiv:
		for i := range c {
			c[i] = s / b[i]
		}
	}
}

// unaryKernel negates or squares a value of shape out.
func unaryKernel[T float](neg bool, out tensor.Shape) nativeKernel {
	n := out.TotalSize()
	return func(pre G.Value, in []G.Value) (G.Value, bool) {
		a, ok := flat[T](in[0], n)
		if !ok {
			return nil, false
		}
		c := reuse[T](pre, n)
		unary(neg, c, a)
		return wrap(pre, c, out), true
	}
}

// unary sets c to −a (neg) or to a·a, element by element.
func unary[T float](neg bool, c, a []T) {
	a = a[:len(c)]
	if c32, ok := asF32(c); ok && vec32(len(c)) {
		a32, _ := asF32(a)
		op := 0
		if neg {
			op = 1
		}
		unaryF32(op, &c32[0], &a32[0], len(c))
		done := len(c) &^ 7
		c, a = c[done:], a[done:]
	}
	if neg {
		for i := range c {
			c[i] = -a[i]
		}
		return
	}
	for i := range c {
		c[i] = a[i] * a[i]
	}
}

// flat returns v's n elements of T when v is a dense, contiguous tensor of
// them.
func flat[T float](v G.Value, n int) ([]T, bool) {
	t, ok := v.(*tensor.Dense)
	if !ok || t.IsView() || t.Size() != n {
		return nil, false
	}
	return elems[T](t)
}

// scalarOf returns v's value when v is a scalar of T.
func scalarOf[T float](v G.Value) (T, bool) {
	var zero T
	switch x := v.(type) {
	case *G.F32:
		if _, ok := any(zero).(float32); ok {
			return T(*x), true
		}
	case *G.F64:
		if _, ok := any(zero).(float64); ok {
			return T(*x), true
		}
	case *tensor.Dense:
		if x.IsScalar() && !x.IsView() {
			if d, ok := elems[T](x); ok && len(d) == 1 {
				return d[0], true
			}
		}
	}
	return zero, false
}

// asF32 returns x as a []float32 when T is float32.
func asF32[T float](x []T) ([]float32, bool) {
	var z T
	if unsafe.Sizeof(z) != 4 {
		return nil, false
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(x))), len(x)), true
}
