package graph

import (
	"fmt"
	"unsafe"

	"github.com/chewxy/hm"
	"gonum.org/v1/gonum/blas"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// BatchedMatMul returns op(a)·op(b) for each index of the leading axis,
// where op transposes its argument's last two axes when the matching flag
// is set: for a [B, m, k] and b [B, k, n] (untransposed) the result is
// [B, m, n]. Its derivative is made of BatchedMatMuls, so it can be
// differentiated any number of times. Each product is one BLAS gemm call on
// contiguous memory.
func BatchedMatMul(a, b *G.Node, transA, transB bool) (out *G.Node, err error) {
	defer recoverError(&err, "BatchedMatMul")
	as, bs := a.Shape(), b.Shape()
	if a.Dims() != 3 || b.Dims() != 3 || as[0] != bs[0] {
		return nil, &ShapeError{Op: "BatchedMatMul", Want: "two 3-d tensors with the same leading size", Got: fmt.Sprintf("%v and %v", as, bs)}
	}
	_, ka := inner(as, transA)
	kb, _ := inner(bs, transB)
	if ka != kb {
		return nil, &ShapeError{Op: "BatchedMatMul", Want: fmt.Sprintf("inner sizes to agree (transA=%v, transB=%v)", transA, transB), Got: fmt.Sprintf("%v and %v", as, bs)}
	}
	return apply(matMulOp{transA: transA, transB: transB}, a, b)
}

// inner returns the rows and columns of op(x) for x [B, r, c].
func inner(s tensor.Shape, trans bool) (rows, cols int) {
	if trans {
		return s[2], s[1]
	}
	return s[1], s[2]
}

type matMulOp struct {
	transA, transB bool
}

func (op matMulOp) arity() int { return 2 }
func (op matMulOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	t := tensorType(3, a)
	return hm.NewFnType(t, t, t)
}
func (op matMulOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	as, bs := in[0], in[1]
	m, _ := inner(as, op.transA)
	_, n := inner(bs, op.transB)
	return tensor.Shape{as[0], m, n}, nil
}
func (op matMulOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	switch in[0].Dtype() {
	case tensor.Float64:
		return matMulRun(op, pre, in, func(s sgemmFunc, d dgemmFunc, alignS, alignD bool) (dgemmFunc, bool) { return d, alignD })
	case tensor.Float32:
		return matMulRun(op, pre, in, func(s sgemmFunc, d dgemmFunc, alignS, alignD bool) (sgemmFunc, bool) { return s, alignS })
	}
	return nil, fmt.Errorf("graph: %v: unsupported dtype %v", op, in[0].Dtype())
}

// matMulRun computes the product in T with the gemm that pick chooses
// from gemmFor's.
func matMulRun[T float, F func(ta, tb blas.Transpose, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int)](
	op matMulOp, pre G.Value, in []G.Value, pick func(sgemmFunc, dgemmFunc, bool, bool) (F, bool)) (G.Value, error) {
	a, as, err := floats[T](in[0])
	if err != nil {
		return nil, err
	}
	b, bs, err := floats[T](in[1])
	if err != nil {
		return nil, fmt.Errorf("graph: %v: mixed data: %v", op, err)
	}
	if len(as) != 3 || len(bs) != 3 {
		return nil, &ShapeError{Op: op.String(), Want: "two 3-d tensors", Got: fmt.Sprintf("%v and %v", as, bs)}
	}
	batch := as[0]
	m, k := inner(as, op.transA)
	kb, n := inner(bs, op.transB)
	if bs[0] != batch || kb != k {
		return nil, &ShapeError{Op: op.String(), Want: "products of matching sizes", Got: fmt.Sprintf("%v and %v", as, bs)}
	}
	ta, tb := blas.NoTrans, blas.NoTrans
	if op.transA {
		ta = blas.Trans
	}
	if op.transB {
		tb = blas.Trans
	}
	lda, ldb := as[2], bs[2]
	sa, sb := as[1]*as[2], bs[1]*bs[2]
	sgemm, dgemm, alignS, alignD, err := gemmFor(m, n, k)
	if err != nil {
		return nil, err
	}
	gemm, align := pick(sgemm, dgemm, alignS, alignD)
	c := gemmBatch(reuse[T](pre, batch*m*n), gemm, align, ta, tb, batch, m, n, k, a, lda, sa, b, ldb, sb)
	if t, ok := pre.(*tensor.Dense); ok && len(c) > 0 {
		if s := t.Shape(); len(s) == 3 && s[0] == batch && s[1] == m && s[2] == n {
			if d, ok := elems[T](t); ok && &d[0] == &c[0] {
				return t, nil
			}
		}
	}
	return wrap(pre, c, tensor.Shape{batch, m, n}), nil
}

// macsPerTouch is how many multiply-adds of a product cost as much as one
// element touched by parallelFor's other callers: about a hundred, so that
// batches below some 4 million multiply-adds (MAML's sinusoid tasks) run
// on the calling goroutine, where waking another thread gains nothing.
// Tests lower it.
var macsPerTouch = 128

// gemmBatch computes c[i] = op(a[i])·op(b[i]) for each of batch products
// stored contiguously (strides sa and sb). With align (gonum's gemm), the
// three batches are first placed at 64-byte aligned addresses, copying
// where they are not, so that every product's rounding is the same on
// every call.
func gemmBatch[T float](c []T, gemm func(ta, tb blas.Transpose, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int),
	align bool, ta, tb blas.Transpose, batch, m, n, k int, a []T, lda, sa int, b []T, ldb, sb int) []T {
	sc := m * n
	out := c
	if len(out) == 0 {
		return out
	}
	if k == 0 { // empty sums; gonum refuses the zero leading dimensions
		clear(out)
		return out
	}
	if align {
		a, b = alignedCopy(a[:batch*sa]), alignedCopy(b[:batch*sb])
		if !isAligned(c) {
			c = aligned[T](len(c))[:len(c)]
		}
	}
	// The products are independent: with more than one CPU they run
	// concurrently, each on one goroutine, so the bits are the same. (The
	// closure is made only then: it escapes to the heap.)
	if cost := m * n * k / macsPerTouch; parallelWorth(batch, cost) && concurrentGemm(m, n, k, isF32[T]()) {
		parallelFor(batch, cost, func(first, end int) {
			for i := first; i < end; i++ {
				gemm(ta, tb, m, n, k, 1, a[i*sa:(i+1)*sa], lda, b[i*sb:(i+1)*sb], ldb, 0, c[i*sc:(i+1)*sc], n)
			}
		})
	} else {
		for i := range batch {
			gemm(ta, tb, m, n, k, 1, a[i*sa:(i+1)*sa], lda, b[i*sb:(i+1)*sb], ldb, 0, c[i*sc:(i+1)*sc], n)
		}
	}
	if &out[0] != &c[0] {
		copy(out, c)
	}
	return out
}

func (op matMulOp) String() string {
	return fmt.Sprintf("BatchedMatMul{transA=%v, transB=%v}", op.transA, op.transB)
}
func (op matMulOp) diffWRT() []bool { return []bool{true, true} }

// SymDiff: for C = op(A)·op(B) with upstream gradient D,
//
//	A·B:   dA = D·Bᵀ,   dB = Aᵀ·D
//	A·Bᵀ:  dA = D·B,    dB = Dᵀ·A
//	Aᵀ·B:  dA = B·Dᵀ,   dB = A·D
//	Aᵀ·Bᵀ: dA = Bᵀ·Dᵀ,  dB = Dᵀ·Aᵀ
func (op matMulOp) symDiff(in G.Nodes, _, d *G.Node) (G.Nodes, error) {
	a, b := in[0], in[1]
	var da, db *G.Node
	var err error
	mm := func(x, y *G.Node, tx, ty bool) *G.Node {
		if err != nil {
			return nil
		}
		var r *G.Node
		r, err = BatchedMatMul(x, y, tx, ty)
		return r
	}
	switch {
	case !op.transA && !op.transB:
		da, db = mm(d, b, false, true), mm(a, d, true, false)
	case !op.transA && op.transB:
		da, db = mm(d, b, false, false), mm(d, a, true, false)
	case op.transA && !op.transB:
		da, db = mm(b, d, false, true), mm(a, d, false, false)
	default:
		da, db = mm(b, d, true, true), mm(d, a, true, true)
	}
	return G.Nodes{da, db}, err
}

// isF32 reports whether T is float32.
func isF32[T float]() bool {
	var z T
	return unsafe.Sizeof(z) == 4
}
