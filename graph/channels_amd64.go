//go:build !noasm

package graph

// Batch normalisation's per-channel float32 loops in AVX2
// (channels_amd64.s). Each takes rows rows of channels, stride elements
// apart, and the first n channels of each: n a multiple of 4 (chAffine32:
// of 8), which chLanes and chLanes32 give. They compute what the Go loops
// they stand in for compute, channel by channel and row by row in order,
// so the bits are the same.

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

//go:noescape
func chStats32(s1, s2, shift *float64, x *float32, rows, stride, n int)

//go:noescape
func chNorm32(dst, x *float32, mu, is *float64, rows, stride, n int)

//go:noescape
func chSums32(s1, s2 *float64, gr, x *float32, rows, stride, n int)

//go:noescape
func chNormBack32(dst, gr, x *float32, s, a, b *float64, rows, stride, n int)

//go:noescape
func chAffine32(dst, x, s, b *float32, rows, stride, n int)
