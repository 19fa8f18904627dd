//go:build !noasm

package graph

import (
	"math"

	"golang.org/x/sys/cpu"
)

// asmBuild reports that this build has medusa's assembly (and gonum's:
// both leave it out under the noasm tag).
const asmBuild = true

// useAVX2 chooses the assembly kernel; tests turn it off to compare it
// with the Go one.
var useAVX2 = cpu.X86.HasAVX2

// smallKernelAVX2 is smallKernelGo in AVX2 (sgemm_amd64.s) for bjs = 1:
// the same multiplies and adds in the same order, eight lanes at a time.
// mask selects the lanes of the columns to read and write. k ≥ 1.
//
//go:noescape
func smallKernelAVX2(k int, a *float32, ars, als int, b *float32, ldb int, c *float32, ldc int, mask *int32, rows int)

// packTAVX2 gathers a panel of a transposed b (see packT).
//
//go:noescape
func packTAVX2(k int, b *float32, idx *int32, mask *int32, dst *float32)

// packT writes columns j0 to j0+cols of op(b) = bᵀ (b(l, j) = b[j·ldb +
// l]) into dst as a panel: element (l, j0+j) at dst[l·smallNR + j],
// columns past cols zero.
func packT(dst []float32, k int, b []float32, ldb, cols int) {
	_, _ = dst[k*smallNR-1], b[(cols-1)*ldb+k-1]
	if !useAVX2 || (smallNR-1)*ldb > math.MaxInt32 {
		packTGo(dst, k, b, ldb, cols)
		return
	}
	var idx [smallNR]int32
	for j := range cols {
		idx[j] = int32(j * ldb)
	}
	packTAVX2(k, &b[0], &idx[0], &laneMasks[cols][0], &dst[0])
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
	if useAVX2 && bjs == 1 {
		smallKernelAVX2(k, &a[0], ars, als, &b[0], bls, &c[0], ldc, &laneMasks[cols][0], rows)
		return
	}
	smallKernelGo(k, a, ars, als, b, bls, bjs, c, ldc, rows, cols)
}
