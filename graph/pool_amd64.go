//go:build !noasm

package graph

// poolRowAVX2 is the arg max of n 2×2 windows side by side in AVX2
// (pool_amd64.s), for c channels, a multiple of 8: see poolRow2.
//
//go:noescape
func poolRowAVX2(n, c int, x *float32, wc int, at *int, base int)

// poolRow2 writes into at the arg max of n 2×2 windows side by side, the
// first with its top left value at x[b0] (see poolArgMax2).
func poolRow2(at []int, x []float32, b0, n, c, wc int) {
	_, _ = at[n*c-1], x[b0+wc+(2*n-1)*c+c-1]
	if useAVX2 && c%8 == 0 {
		poolRowAVX2(n, c, &x[b0], wc, &at[0], b0)
		return
	}
	poolRow2Go(at, x, b0, n, c, wc)
}
