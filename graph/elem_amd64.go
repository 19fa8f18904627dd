//go:build !noasm

package graph

// Element-wise float32 loops in AVX2 (elem_amd64.s). Each handles the
// whole groups of 8 elements of its n and leaves the rest to Go; each
// computes what the Go loop it replaces computes, element by element, so
// the bits are the same.

// vec32 reports whether n float32 elements go through the AVX2 loops.
func vec32(n int) bool { return useAVX2 && n >= 8 }

//go:noescape
func vvF32(op int, c, a, b *float32, n int)

//go:noescape
func vsF32(op int, c, a *float32, s float32, n int, rev int)

//go:noescape
func maskF32(out, x, grad *float32, n int)

//go:noescape
func unaryF32(neg int, c, a *float32, n int)

//go:noescape
func addToF32(dst, src *float32, n int)

//go:noescape
func copyRunsF32(dst, src *float32, n, count, ds, ss int)

//go:noescape
func addRunsF32(dst, src *float32, n, count, ds, ss int)

//go:noescape
func patches3F32(dst, r0, r1, r2 *float32, count, step int)
