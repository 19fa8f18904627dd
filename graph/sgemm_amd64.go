//go:build !noasm

package graph

import (
	"golang.org/x/sys/cpu"
	"gonum.org/v1/gonum/blas"
)

// asmBuild reports that this build has medusa's assembly (and gonum's:
// both leave it out under the noasm tag).
const asmBuild = true

// useAVX2 and useAVX512 choose the assembly kernels; tests turn them off
// to compare them with the Go one.
var (
	useAVX2   = cpu.X86.HasAVX2
	useAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW
)

// wideNR is the AVX-512 kernel's tile width, three registers of 16 lanes:
// the 40 columns of MAML's usual hidden layer make one tile.
const wideNR = 48

// tileCols returns the width of the tiles and packed panels of b that the
// kernel in use takes.
func tileCols() int {
	if useAVX512 {
		return wideNR
	}
	return smallNR
}

// smallKernelAVX2 is smallKernelGo in AVX2 (sgemm_amd64.s) for bjs = 1:
// the same multiplies and adds in the same order, eight lanes at a time.
// mask selects the lanes of the columns to read and write. k ≥ 1.
//
//go:noescape
func smallKernelAVX2(k int, a *float32, ars, als int, b *float32, ldb int, c *float32, ldc int, mask *int32, rows int)

// smallKernelAVX512 is smallKernelGo in AVX-512 (sgemm_amd64.s) for bjs =
// 1 and tiles up to wideNR wide: the same multiplies and adds in the same
// order, sixteen lanes at a time. Bit j of mask selects column j. k ≥ 1.
//
//go:noescape
func smallKernelAVX512(k int, a *float32, ars, als int, b *float32, ldb int, c *float32, ldc int, mask uint64, rows int)

// transpose8AVX2 transposes blocks 8×8 blocks of src (rows lds apart)
// side by side into dst (rows ldd apart): element (r, 8·q+i) to (8·q+i,
// r).
//
//go:noescape
func transpose8AVX2(blocks int, src *float32, lds int, dst *float32, ldd int)

// packT writes columns j0 to j0+cols of op(b) = bᵀ (b(l, j) = b[j·ldb +
// l]) into dst as a panel nr wide: element (l, j0+j) at dst[l·nr + j].
// The columns past cols are left as they are: no kernel reads them.
func packT(dst []float32, k int, b []float32, ldb, cols, nr int) {
	_, _ = dst[(k-1)*nr+cols-1], b[(cols-1)*ldb+k-1]
	if !useAVX2 {
		packTGo(dst, k, b, ldb, cols, nr)
		return
	}
	// Eight columns at a time, the inner index eight at a time in
	// registers, the rest one by one.
	full := k &^ 7
	j := 0
	for ; j+8 <= cols; j += 8 {
		if full > 0 {
			transpose8AVX2(full/8, &b[j*ldb], ldb, &dst[j], nr)
		}
		for r := range 8 {
			row := b[(j+r)*ldb : (j+r)*ldb+k]
			for l := full; l < k; l++ {
				dst[l*nr+j+r] = row[l]
			}
		}
	}
	for ; j < cols; j++ {
		for l, v := range b[j*ldb : j*ldb+k] {
			dst[l*nr+j] = v
		}
	}
}

// laneMasks[n] selects the first n of smallNR lanes.
var laneMasks = func() (m [smallNR + 1][smallNR]int32) {
	for n := range m {
		for j := 0; j < n; j++ {
			m[n][j] = -1
		}
	}
	return m
}()

// smallKernel computes the first rows rows and cols columns of one tile
// (see smallKernelGo).
func smallKernel(k int, a []float32, ars, als int, b []float32, bls, bjs int, c []float32, ldc, rows, cols int) {
	_, _, _ = a[(smallMR-1)*ars+(k-1)*als], b[(k-1)*bls+(cols-1)*bjs], c[(rows-1)*ldc+cols-1]
	switch {
	case useAVX512 && bjs == 1:
		smallKernelAVX512(k, &a[0], ars, als, &b[0], bls, &c[0], ldc, 1<<cols-1, rows)
	case useAVX2 && bjs == 1:
		for j0 := 0; j0 < cols; j0 += smallNR {
			w := min(smallNR, cols-j0)
			smallKernelAVX2(k, &a[0], ars, als, &b[j0], bls, &c[j0], ldc, &laneMasks[w][0], rows)
		}
	default:
		smallKernelGo(k, a, ars, als, b, bls, bjs, c, ldc, rows, cols)
	}
}

// The tiles of c that sgemmFMA's kernels keep in registers: fmaMR rows
// by wideNR columns (fmaKernelAVX512), or for products 17 to narrowNR
// columns wide (two registers a row), fmaMR12 rows by narrowNR
// (fmaKernel12AVX512). fmaKC is the most of the inner index one pass over
// the tiles takes, so that the rows of b a pass reads stay in the cache
// while the tiles reread them, and so that a long inner index is summed in
// blocks: one chain of fused multiply-adds over the 58,800 terms of a
// convolution's filter gradient came out 15 times further from float64
// (TestFMAGemmAccuracy).
const (
	fmaMR    = 8
	fmaMR12  = 12
	narrowNR = 32
	fmaKC    = 256
)

// fmaKernelAVX512 sets the first rows rows of a tile of c, fmaMR×wideNR,
// to op(a)·op(b), or with add to c + op(a)·op(b) (the product summed from
// zero, then added), with fused multiply-adds (sgemm_amd64.s): a(r, l) =
// a[r·ars + l·als] (all fmaMR rows are read), b rows ldb apart and
// contiguous. Bit j of mask selects column j. k ≥ 1.
//
//go:noescape
func fmaKernelAVX512(k int, a *float32, ars, als int, b *float32, ldb int, c *float32, ldc int, mask uint64, rows int, add bool)

// fmaKernel12AVX512 is fmaKernelAVX512 for tiles of fmaMR12×narrowNR.
//
//go:noescape
func fmaKernel12AVX512(k int, a *float32, ars, als int, b *float32, ldb int, c *float32, ldc int, mask uint64, rows int, add bool)

// sgemmFMA sets c (m×n, row stride ldc) to op(a)·op(b) with gonum's
// signature, on fmaKernelAVX512 or fmaKernel12AVX512: each element of c is
// the sum, in order, of the inner index's blocks of fmaKC, each a chain of
// fused multiply-adds in the order of the inner index starting from zero,
// so its rounding depends on the values alone, not on addresses or
// tiling. It computes alpha = 1, beta = 0 itself and hands any other
// alpha or beta to sgemmSmall. It needs AVX-512.
func sgemmFMA(ta, tb blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if alpha != 1 || beta != 0 || k == 0 {
		sgemmSmall(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	_ = c[(m-1)*ldc+n-1]
	mr, nr, kernel := fmaMR, wideNR, fmaKernelAVX512
	if n > narrowNR/2 && n <= narrowNR {
		mr, nr, kernel = fmaMR12, narrowNR, fmaKernel12AVX512
	}
	s := smallPool.Get().(*smallScratch)
	defer smallPool.Put(s)
	// The panels of a transposed b that a block of the inner index needs
	// are packed first. op(a) is read in place, except for a last panel
	// short of rows, which is packed and padded with zeros. With one
	// block of the inner index, the tiles go along the rows of c, a row of
	// tiles at a time, so that c is written in long runs; with several
	// (a long inner index, a small c), they go down the columns, so that
	// the tiles of a column reuse the rows of b's panel from the cache.
	packB := tb != blas.NoTrans
	panels := (n + nr - 1) / nr
	if packB {
		s.b = grown(s.b, panels*nr*min(k, fmaKC))
	}
	s.a = grown(s.a, mr*min(k, fmaKC))
	last := m - m%mr // the first row of a short panel
	tiles := (m + mr - 1) / mr
	for k0 := 0; k0 < k; k0 += fmaKC {
		kc := min(fmaKC, k-k0)
		if packB {
			for p := range panels {
				j0 := p * nr
				packT(s.b[p*nr*kc:], kc, b[j0*ldb+k0:], ldb, min(nr, n-j0), nr)
			}
		}
		if last < m {
			if ta == blas.NoTrans {
				packA(s.a, mr, false, last, m, kc, a[k0:], lda)
			} else {
				packA(s.a, mr, true, last, m, kc, a[k0*lda:], lda)
			}
		}
		for u := range tiles * panels {
			q, p := u/panels, u%panels // tile row q, panel p
			if k > fmaKC {
				q, p = u%tiles, u/tiles
			}
			i0, j0 := q*mr, p*nr
			rows, cols := min(mr, m-i0), min(nr, n-j0)
			var ap []float32
			var ars, als int
			switch {
			case rows < mr:
				ap, ars, als = s.a, 1, mr
			case ta == blas.NoTrans:
				ap, ars, als = a[i0*lda+k0:], lda, 1
			default:
				ap, ars, als = a[k0*lda+i0:], 1, lda
			}
			_ = ap[(mr-1)*ars+(kc-1)*als]
			var bp []float32
			var ldp int
			if packB {
				bp, ldp = s.b[p*nr*kc:], nr
			} else {
				bp, ldp = b[k0*ldb+j0:], ldb
			}
			_ = bp[(kc-1)*ldp+cols-1]
			kernel(kc, &ap[0], ars, als, &bp[0], ldp, &c[i0*ldc+j0], ldc, 1<<cols-1, rows, k0 > 0)
		}
	}
}
