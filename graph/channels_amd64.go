//go:build !noasm

package graph

import "unsafe"

// Batch normalisation's per-channel float32 loops in AVX2
// (channels_amd64.s) and AVX-512 (channels512_amd64.s). Each takes rows
// rows of channels, stride elements apart, and the first n channels of
// each: n a multiple of 4 (chAffine32: of 8), which chLanes and chLanes32
// give. The AVX-512 loops take the whole groups of 8 channels (of 16 for
// chAffine32) where the CPU has AVX-512, the AVX2 loops the rest. They
// compute what the Go loops they stand in for compute, channel by channel
// and row by row in order, so the bits are the same.

// chLanes returns how many of n channels the float64-lane loops take.
func chLanes(n int) int {
	if !useAVX2 {
		return 0
	}
	return n &^ 3
}

// chLanes32 returns how many of n channels the float32-lane loops take.
func chLanes32(n int) int {
	if !useAVX2 {
		return 0
	}
	return n &^ 7
}

// chStats32 adds float64(x[r][j]) − shift[j] to s1[j] and its square to
// s2[j] for each of rows rows and the first n channels.
func chStats32(s1, s2, shift *float64, x *float32, rows, stride, n int) {
	w := wideLanes(n)
	if w > 0 {
		chStats512(s1, s2, shift, x, rows, stride, w)
	}
	if w < n {
		chStatsAVX2(offset(s1, w), offset(s2, w), offset(shift, w), offset(x, w), rows, stride, n-w)
	}
}

// chNorm32 sets dst[r][j] to float32((float64(x[r][j]) − mu[j])·is[j]).
func chNorm32(dst, x *float32, mu, is *float64, rows, stride, n int) {
	w := wideLanes(n)
	if w > 0 {
		chNorm512(dst, x, mu, is, rows, stride, w)
	}
	if w < n {
		chNormAVX2(offset(dst, w), offset(x, w), offset(mu, w), offset(is, w), rows, stride, n-w)
	}
}

// chSums32 adds float64(g[r][j]) to s1[j] and float64(g[r][j])·
// float64(x[r][j]) to s2[j]; with s1 nil, only the second.
func chSums32(s1, s2 *float64, gr, x *float32, rows, stride, n int) {
	w := wideLanes(n)
	if w > 0 {
		chSums512(s1, s2, gr, x, rows, stride, w)
	}
	if w < n {
		chSumsAVX2(offset(s1, w), offset(s2, w), offset(gr, w), offset(x, w), rows, stride, n-w)
	}
}

// chNormBack32 sets dst[r][j] to float32(s[j]·((float64(g[r][j]) − a[j])
// − float64(x[r][j])·b[j])).
func chNormBack32(dst, gr, x *float32, s, a, b *float64, rows, stride, n int) {
	w := wideLanes(n)
	if w > 0 {
		chNormBack512(dst, gr, x, s, a, b, rows, stride, w)
	}
	if w < n {
		chNormBackAVX2(offset(dst, w), offset(gr, w), offset(x, w), offset(s, w), offset(a, w), offset(b, w), rows, stride, n-w)
	}
}

// chAffine32 sets dst[r][j] to x[r][j]·s[j] + b[j], or x[r][j]·s[j] for b
// nil, in float32; n is a multiple of 8.
func chAffine32(dst, x, s, b *float32, rows, stride, n int) {
	w := 0
	if useAVX512 {
		w = n &^ 15
	}
	if w > 0 {
		chAffine512(dst, x, s, b, rows, stride, w)
	}
	if w < n {
		chAffineAVX2(offset(dst, w), offset(x, w), offset(s, w), offset(b, w), rows, stride, n-w)
	}
}

// chSumRows32 adds float64(x[r][j]) to s[j] for the first n channels, n a
// multiple of 8 (wideLanes).
func chSumRows32(s *float64, x *float32, rows, stride, n int) {
	chSums512(s, nil, x, nil, rows, stride, n)
}

// wideLanes returns how many of n channels the AVX-512 loops take: whole
// groups of 8, none without AVX-512.
func wideLanes(n int) int {
	if !useAVX512 {
		return 0
	}
	return n &^ 7
}

// offset returns a pointer to p[i], or nil for p nil.
func offset[T float](p *T, i int) *T {
	if p == nil {
		return nil
	}
	return (*T)(unsafe.Add(unsafe.Pointer(p), uintptr(i)*unsafe.Sizeof(*p)))
}

//go:noescape
func chStatsAVX2(s1, s2, shift *float64, x *float32, rows, stride, n int)

//go:noescape
func chNormAVX2(dst, x *float32, mu, is *float64, rows, stride, n int)

//go:noescape
func chSumsAVX2(s1, s2 *float64, gr, x *float32, rows, stride, n int)

//go:noescape
func chNormBackAVX2(dst, gr, x *float32, s, a, b *float64, rows, stride, n int)

//go:noescape
func chAffineAVX2(dst, x, s, b *float32, rows, stride, n int)

//go:noescape
func chStats512(s1, s2, shift *float64, x *float32, rows, stride, n int)

//go:noescape
func chNorm512(dst, x *float32, mu, is *float64, rows, stride, n int)

//go:noescape
func chSums512(s1, s2 *float64, gr, x *float32, rows, stride, n int)

//go:noescape
func chNormBack512(dst, gr, x *float32, s, a, b *float64, rows, stride, n int)

//go:noescape
func chAffine512(dst, x, s, b *float32, rows, stride, n int)
