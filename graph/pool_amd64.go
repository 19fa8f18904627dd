//go:build !noasm

package graph

// poolRowAVX2 is the arg max of n 2×2 windows side by side in AVX2
// (pool_amd64.s), for c channels, a multiple of 8, and their maxima
// unless vals is nil: see poolRow2.
//
//go:noescape
func poolRowAVX2(n, c int, x *float32, wc int, at *int, base int, vals *float32, lanes *int32)

// lanes8 is 0 to 7, the lanes of poolRowAVX2's channels.
var lanes8 = [8]int32{0, 1, 2, 3, 4, 5, 6, 7}

// poolRow2 writes into at the arg max of n 2×2 windows side by side, the
// first with its top left value at x[b0] (see poolArgMax2), plus off, and
// into vals, unless it is nil, their maxima.
func poolRow2(at []int, vals, x []float32, b0, n, c, wc, off int) {
	_, _ = at[n*c-1], x[b0+wc+(2*n-1)*c+c-1]
	if useAVX2 && c%8 == 0 {
		var v *float32
		if vals != nil {
			_ = vals[n*c-1]
			v = &vals[0]
		}
		poolRowAVX2(n, c, &x[b0], wc, &at[0], b0+off, v, &lanes8[0])
		return
	}
	poolRow2Go(at, vals, x, b0, n, c, wc, off)
}

// scatterPool2AVX512 writes a band of two rows of 2×2 max pooling's
// gradient (pool_amd64.s): see scatterPool2.
//
//go:noescape
func scatterPool2AVX512(dst, gr *float32, idx *int, start, wo, c, w int, lanes *int64) bool

// lanes16 is 0 to 15, the lanes of scatterPool2AVX512's channels.
var lanes16 = [16]int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// scatterPool2 writes the band of two rows dst of 2×2 max pooling's
// gradient from the gradient gr of its wo windows and their indices at
// (absolute, dst starting at start), in AVX-512: each window's value at
// its index, zero at its other three positions. It reports false, having
// written nothing or part of dst, where it cannot: without AVX-512, with
// channels not in multiples of 16, or for an index outside its window.
func scatterPool2(dst, gr []float32, at []int, start, wo, c, w int) bool {
	if !useAVX512 || c%16 != 0 || wo == 0 || c == 0 {
		return false
	}
	_, _, _ = dst[w*c+2*wo*c-1], gr[wo*c-1], at[wo*c-1]
	return scatterPool2AVX512(&dst[0], &gr[0], &at[0], start, wo, c, w, &lanes16[0])
}
