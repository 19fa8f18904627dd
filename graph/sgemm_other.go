//go:build !amd64 || noasm

package graph

import "gonum.org/v1/gonum/blas"

// smallKernel computes the first rows rows and cols columns of one tile
// (see smallKernelGo).
func smallKernel(k int, a []float32, ars, als int, b []float32, bls, bjs int, c []float32, ldc, rows, cols int) {
	smallKernelGo(k, a, ars, als, b, bls, bjs, c, ldc, rows, cols)
}

// asmBuild reports that this build has medusa's assembly (and gonum's).
const asmBuild = false

// useAVX2 and useAVX512 are false: there is no assembly kernel.
var useAVX2, useAVX512 = false, false

// tileCols returns the width of the Go kernel's tiles.
func tileCols() int { return smallNR }

// packT writes a panel of a transposed b (see packTGo).
func packT(dst []float32, k int, b []float32, ldb, cols, nr int) { packTGo(dst, k, b, ldb, cols, nr) }

// sgemmFMA is sgemmSmall here: blasChoice.wide is false without AVX-512.
func sgemmFMA(ta, tb blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemmSmall(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
