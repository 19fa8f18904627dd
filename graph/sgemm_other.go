//go:build !amd64 || noasm

package graph

// smallKernel computes one tile (see smallKernelGo).
func smallKernel(k int, a []float32, ars, als int, b []float32, ldb int, c []float32, ldc int) {
	smallKernelGo(k, a, ars, als, b, ldb, c, ldc)
}

// useAVX2 is false: there is no assembly kernel.
var useAVX2 = false
