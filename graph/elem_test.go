package graph

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestVectorLoops checks each float32 element-wise loop with its AVX2
// part against the Go loop alone, bit for bit, on every length up to 40
// (whole groups of 8 and tails), with zeros of both signs, infinities,
// NaNs and subnormals among the values.
func TestVectorLoops(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 here: the Go loops run alone")
	}
	rng := rand.New(rand.NewPCG(8, 9))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-40, -1e-40, 3, -3}
	fill := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			if rng.IntN(4) == 0 {
				x[i] = special[rng.IntN(len(special))]
			} else {
				x[i] = float32(rng.NormFloat64())
			}
		}
		return x
	}
	loops := map[string]func(c, a, b []float32){
		"relu":   func(c, a, _ []float32) { relu32(c, a) },
		"mask":   func(c, a, b []float32) { mask32(c, a, b) },
		"neg":    func(c, a, _ []float32) { unary(true, c, a) },
		"square": func(c, a, _ []float32) { unary(false, c, a) },
		"addTo":  func(c, a, _ []float32) { copy(c, a); addTo(c, a) },
	}
	for op := opAdd; op <= opDiv; op++ {
		loops["vv"+string(rune('0'+op))] = func(c, a, b []float32) { binaryVV(op, c, a, b) }
		loops["vs"+string(rune('0'+op))] = func(c, a, b []float32) { binaryVS(op, c, a, b[0]) }
		loops["sv"+string(rune('0'+op))] = func(c, a, b []float32) { binarySV(op, c, b[0], a) }
	}
	for name, loop := range loops {
		for n := 1; n <= 40; n++ {
			a, b := fill(n), fill(n)
			vec, scalar := make([]float32, n), make([]float32, n)
			loop(vec, a, b)
			useAVX2 = false
			loop(scalar, a, b)
			useAVX2 = true
			for i := range vec {
				if math.Float32bits(vec[i]) != math.Float32bits(scalar[i]) && !(isNaN32(vec[i]) && isNaN32(scalar[i])) {
					t.Fatalf("%s, n=%d: element %d (of %v and %v): vector %v, Go %v", name, n, i, a[i], b[i], vec[i], scalar[i])
				}
			}
		}
	}
}

func isNaN32(x float32) bool { return x != x }

// TestAllFinite puts a NaN or an infinity at each position of slices of
// every length up to 9 (the interleaved sums and the tail).
func TestAllFinite(t *testing.T) {
	if !AllFinite(nil) {
		t.Error("AllFinite(nil) = false")
	}
	for n := 1; n <= 9; n++ {
		x := make([]float64, n)
		for i := range x {
			x[i] = float64(i) - 3.5
		}
		if !AllFinite(x) {
			t.Errorf("AllFinite(%v) = false", x)
		}
		for i := range x {
			for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
				y := append([]float64(nil), x...)
				y[i] = bad
				if AllFinite(y) {
					t.Errorf("AllFinite(%v) = true", y)
				}
			}
		}
	}
}

// TestChannelLoops checks batch normalisation's float32 kernels with their
// AVX-512 and AVX2 loops, and with AVX2 alone, against the Go loops alone,
// bit for bit: on 1 to 3 tasks of 1 to 5 rows and every channel count up
// to 72 (whole blocks of 32, 16, 8 and 4 channels, and tails; forChannels
// also splits the channels into blocks), with special values among
// ordinary ones.
func TestChannelLoops(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 here: the Go loops run alone")
	}
	kernels := map[string]func(out, x, g, s, b []float32, tasks, m, c int){
		"normalize": func(out, x, _, _, _ []float32, tasks, m, c int) { normalizeKernel(out, x, tasks, m, c, 1e-5, nil) },
		"normBack":  func(out, x, g, s, _ []float32, tasks, m, c int) { normBackKernel(out, g, x, s, tasks, m, c) },
		"dot":       func(out, x, g, _, _ []float32, tasks, m, c int) { dotChannelsKernel(out, g, x, tasks, m, c, nil) },
		"affine":    func(out, x, _, s, b []float32, tasks, m, c int) { affineKernel(out, x, s, b, tasks, m, c) },
		"scale":     func(out, x, _, s, _ []float32, tasks, m, c int) { scaleChannelsKernel(out, x, s, tasks, m, c) },
		"sumRows":   func(out, x, _, _, _ []float32, tasks, m, c int) { sumRowsKernel(out, x, tasks, m, c) },
	}
	wide := useAVX512
	defer func() { useAVX2, useAVX512 = true, wide }()
	// With one CPU, forChannels keeps the channels in one block, so that
	// the loops' widest blocks run; with more, it splits them.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, max(4, runtime.GOMAXPROCS(0))} {
		runtime.GOMAXPROCS(procs)
		checkChannelLoops(t, kernels, wide)
	}
}

func checkChannelLoops(t *testing.T, kernels map[string]func(out, x, g, s, b []float32, tasks, m, c int), wide bool) {
	t.Helper()
	rng := rand.New(rand.NewPCG(10, 11))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.NaN()), 1e-40, 3e38, -3}
	fill := func(n int, specials bool) []float32 {
		x := make([]float32, n)
		for i := range x {
			if specials && rng.IntN(8) == 0 {
				x[i] = special[rng.IntN(len(special))]
			} else {
				x[i] = float32(rng.NormFloat64()) * 3
			}
		}
		return x
	}
	for name, kernel := range kernels {
		for _, specials := range []bool{false, true} {
			for tasks := 1; tasks <= 3; tasks++ {
				for m := 1; m <= 5; m += 2 {
					for c := 1; c <= 72; c++ {
						x, g := fill(tasks*m*c, specials), fill(tasks*m*c, specials)
						s, b := fill(tasks*c, specials), fill(tasks*c, specials)
						useAVX2, useAVX512 = false, false
						scalar := make([]float32, tasks*m*c)
						kernel(scalar, x, g, s, b, tasks, m, c)
						for _, wide := range []bool{false, wide} {
							useAVX2, useAVX512 = true, wide
							vec := make([]float32, tasks*m*c)
							kernel(vec, x, g, s, b, tasks, m, c)
							for i := range vec {
								if math.Float32bits(vec[i]) != math.Float32bits(scalar[i]) && !(isNaN32(vec[i]) && isNaN32(scalar[i])) {
									t.Fatalf("%s, AVX-512 %v, GOMAXPROCS %d, tasks=%d m=%d c=%d, specials %v: element %d: vector %v, Go %v", name, wide, runtime.GOMAXPROCS(0), tasks, m, c, specials, i, vec[i], scalar[i])
								}
							}
						}
					}
				}
			}
		}
	}
}
