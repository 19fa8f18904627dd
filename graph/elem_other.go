//go:build !amd64 || noasm

package graph

// vec32 reports whether n float32 elements go through vector loops: never
// here, so the loops below are not called.
func vec32(int) bool { return false }

func vvF32(op int, c, a, b *float32, n int)                  {}
func vsF32(op int, c, a *float32, s float32, n int, rev int) {}
func maskF32(out, x, grad *float32, n int)                   {}
func unaryF32(neg int, c, a *float32, n int)                 {}
func addToF32(dst, src *float32, n int)                      {}
func copyRunsF32(dst, src *float32, n, count, ds, ss int)    {}
func addRunsF32(dst, src *float32, n, count, ds, ss int)     {}
func patches3F32(dst, r0, r1, r2 *float32, count, step int)  {}

// The channel loops of channels_amd64.go: none here.
func chLanes(int) int   { return 0 }
func chLanes32(int) int { return 0 }
func wideLanes(int) int { return 0 }

func chStats32(s1, s2, shift *float64, x *float32, rows, stride, n int)       {}
func chNorm32(dst, x *float32, mu, is *float64, rows, stride, n int)          {}
func chSums32(s1, s2 *float64, gr, x *float32, rows, stride, n int)           {}
func chNormBack32(dst, gr, x *float32, s, a, b *float64, rows, stride, n int) {}
func chAffine32(dst, x, s, b *float32, rows, stride, n int)                   {}
func chSumRows32(s *float64, x *float32, rows, stride, n int)                 {}

// scatterPool2 cannot: there is no assembly here.
func scatterPool2(dst, gr []float32, at []int, start, wo, c, w int) bool { return false }

// poolRow2 is poolRow2Go: there is no assembly here.
func poolRow2(at []int, vals, x []float32, b0, n, c, wc, off int) {
	poolRow2Go(at, vals, x, b0, n, c, wc, off)
}
