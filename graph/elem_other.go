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
