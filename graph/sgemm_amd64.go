//go:build !noasm

package graph

import "golang.org/x/sys/cpu"

// useAVX2 chooses the assembly kernel; tests turn it off to compare it
// with the Go one.
var useAVX2 = cpu.X86.HasAVX2

// smallKernelAVX2 is smallKernelGo in AVX2 (sgemm_amd64.s): the same
// multiplies and adds in the same order, eight lanes at a time. k ≥ 1.
//
//go:noescape
func smallKernelAVX2(k int, a *float32, ars, als int, b *float32, ldb int, c *float32, ldc int)

// smallKernel computes one tile (see smallKernelGo).
func smallKernel(k int, a []float32, ars, als int, b []float32, ldb int, c []float32, ldc int) {
	if !useAVX2 {
		smallKernelGo(k, a, ars, als, b, ldb, c, ldc)
		return
	}
	_, _, _ = a[(smallMR-1)*ars+(k-1)*als], b[(k-1)*ldb+smallNR-1], c[(smallMR-1)*ldc+smallNR-1]
	smallKernelAVX2(k, &a[0], ars, als, &b[0], ldb, &c[0], ldc)
}
