package graph

import (
	"sync"

	"gonum.org/v1/gonum/blas"
)

// Small float32 products (MAML's per-task 10×40 by 40×40, an MTL head) run
// on medusa's own kernel, which computes each smallMR×smallNR tile of c
// (smallMR×wideNR with AVX-512) in registers, reading op(a) and op(b) in place with strides (a transposed b
// is first gathered into packed panels, and a last panel of a short of
// rows is packed and padded with zeros). Every element of c is summed in
// the order of the inner index, a multiply then an add (no fused
// multiply-add), starting from zero: the rounding depends on the values
// alone, not on addresses, tiling or the CPU's vector width, and on amd64
// it is the same as gonum's axpy-based assembly (the untransposed and Aᵀ·B
// cases). (A NaN result is NaN from every kernel, but its sign and payload
// may differ between the assembly kernels and the Go one.)
const (
	smallMR = 5
	smallNR = 16
)

// smallScratch holds a packed panel of a and one of b.
type smallScratch struct{ a, b []float32 }

var smallPool = sync.Pool{New: func() any { return new(smallScratch) }}

// sgemmSmall sets c (m×n, row stride ldc) to op(a)·op(b) with gonum's
// signature. It computes alpha = 1, beta = 0 itself (what BatchedMatMul
// asks) and hands any other alpha or beta to gonum.
func sgemmSmall(ta, tb blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if alpha != 1 || beta != 0 {
		alignedGemm(gonumSgemm)(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	_ = c[(m-1)*ldc+n-1]
	if k == 0 {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+n])
		}
		return
	}
	s := smallPool.Get().(*smallScratch)
	defer smallPool.Put(s)
	// op(b) is read in place, with strides, except that the panels of a
	// transposed b are gathered into packed panels first; op(a) is read
	// in place too, except for a last panel short of rows, which is
	// packed and padded with zeros.
	bls, bjs := ldb, 1 // b(l, j) = b[l·bls + j·bjs]
	if tb != blas.NoTrans {
		bls, bjs = 1, ldb
	}
	packB := tb != blas.NoTrans
	nr := tileCols()
	if packB {
		s.b = grown(s.b, nr*k)
	}
	s.a = grown(s.a, smallMR*k)
	last := m - m%smallMR // the first row of a short panel
	if last < m {
		packA(s.a, smallMR, ta != blas.NoTrans, last, m, k, a, lda)
	}
	for j0 := 0; j0 < n; j0 += nr {
		cols := min(nr, n-j0)
		bp, pls, pjs := b[j0*bjs:], bls, bjs
		if packB {
			packT(s.b, k, bp, ldb, cols, nr)
			bp, pls, pjs = s.b, nr, 1
		}
		for i0 := 0; i0 < m; i0 += smallMR {
			rows := min(smallMR, m-i0)
			var ap []float32
			var ars, als int
			switch {
			case rows < smallMR:
				ap, ars, als = s.a, 1, smallMR
			case ta == blas.NoTrans:
				ap, ars, als = a[i0*lda:], lda, 1
			default:
				ap, ars, als = a[i0:], 1, lda
			}
			smallKernel(k, ap, ars, als, bp, pls, pjs, c[i0*ldc+j0:], ldc, rows, cols)
		}
	}
}

// grown returns x with length n, reusing its storage when it is large
// enough.
func grown(x []float32, n int) []float32 {
	if cap(x) < n {
		return make([]float32, n)
	}
	return x[:n]
}

// packA writes rows i0 to min(i0+mr, m) of op(a) (m×k) into dst, element
// (i0+r, l) at dst[l·mr + r], rows past m zero.
func packA(dst []float32, mr int, trans bool, i0, m, k int, a []float32, lda int) {
	rows := min(mr, m-i0)
	dst = dst[:mr*k]
	clear(dst)
	for l := 0; l < k; l++ {
		out := dst[l*mr : l*mr+rows]
		if trans {
			copy(out, a[l*lda+i0:l*lda+i0+rows])
			continue
		}
		for r := range out {
			out[r] = a[(i0+r)*lda+l]
		}
	}
}

// packTGo is packT in Go.
func packTGo(dst []float32, k int, b []float32, ldb, cols, nr int) {
	for j := range cols {
		for l, v := range b[j*ldb : j*ldb+k] {
			dst[l*nr+j] = v
		}
	}
}

// smallKernelGo computes the first rows rows and cols columns of a tile
// of c (row stride ldc) from a(r, l) = a[r·ars + l·als] and b(l, j) =
// b[l·bls + j·bjs], smallMR×smallNR at a time. The conversions keep the
// compiler from fusing the multiply and the add, so the bits are those of
// the vector kernels.
func smallKernelGo(k int, a []float32, ars, als int, b []float32, bls, bjs int, c []float32, ldc, rows, cols int) {
	for j0 := smallNR; j0 < cols; j0 += smallNR {
		smallKernelGo(k, a, ars, als, b[j0*bjs:], bls, bjs, c[j0:], ldc, rows, min(smallNR, cols-j0))
	}
	cols = min(cols, smallNR)
	var acc [smallMR][smallNR]float32
	var bl [smallNR]float32
	for l := 0; l < k; l++ {
		for j := range cols {
			bl[j] = b[l*bls+j*bjs]
		}
		for r := range smallMR {
			ar := a[r*ars+l*als]
			row := &acc[r]
			for j := range smallNR {
				row[j] += float32(ar * bl[j])
			}
		}
	}
	for r := range rows {
		copy(c[r*ldc:r*ldc+cols], acc[r][:cols])
	}
}
