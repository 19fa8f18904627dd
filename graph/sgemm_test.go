package graph

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// smallCase is one product for the small-kernel tests, with leading
// dimensions padded past the minimum so that strides are exercised.
type smallCase struct {
	ta, tb        blas.Transpose
	m, n, k       int
	lda, ldb, ldc int
	a, b          []float32
}

func newSmallCase(rng *rand.Rand, ta, tb blas.Transpose, m, n, k, extra int) smallCase {
	c := smallCase{ta: ta, tb: tb, m: m, n: n, k: k}
	ra, ca := m, k
	if ta == blas.Trans {
		ra, ca = k, m
	}
	rb, cb := k, n
	if tb == blas.Trans {
		rb, cb = n, k
	}
	c.lda, c.ldb, c.ldc = ca+extra, cb+extra, n+extra
	c.a, c.b = make([]float32, ra*c.lda), make([]float32, rb*c.ldb)
	for i := range c.a {
		c.a[i] = float32(rng.NormFloat64())
	}
	for i := range c.b {
		c.b[i] = float32(rng.NormFloat64())
	}
	return c
}

// opAt returns op(x)(i, j) for x stored with leading dimension ld.
func opAt(x []float32, trans blas.Transpose, ld, i, j int) float32 {
	if trans == blas.Trans {
		return x[j*ld+i]
	}
	return x[i*ld+j]
}

// run computes the product with gemm into a c filled with a sentinel.
func (c smallCase) run(gemm sgemmFunc) []float32 {
	out := make([]float32, c.m*c.ldc)
	for i := range out {
		out[i] = 7
	}
	gemm(c.ta, c.tb, c.m, c.n, c.k, 1, c.a, c.lda, c.b, c.ldb, 0, out, c.ldc)
	return out
}

func (c smallCase) String() string {
	return fmt.Sprintf("ta=%v tb=%v m=%d n=%d k=%d ld=%d,%d,%d", c.ta == blas.Trans, c.tb == blas.Trans, c.m, c.n, c.k, c.lda, c.ldb, c.ldc)
}

func smallCases(rng *rand.Rand) []smallCase {
	var cases []smallCase
	trans := []blas.Transpose{blas.NoTrans, blas.Trans}
	sizes := [][3]int{{1, 1, 1}, {10, 40, 40}, {10, 1, 40}, {40, 40, 10}, {10, 40, 1}, {4, 16, 3}, {5, 17, 2}, {3, 15, 9}, {8, 32, 64}, {33, 65, 70}, {7, 48, 5}, {6, 49, 3}, {11, 97, 4}, {2, 33, 8}}
	for range 40 {
		sizes = append(sizes, [3]int{1 + rng.IntN(50), 1 + rng.IntN(50), 1 + rng.IntN(50)})
	}
	for _, s := range sizes {
		for _, ta := range trans {
			for _, tb := range trans {
				cases = append(cases, newSmallCase(rng, ta, tb, s[0], s[1], s[2], rng.IntN(3)))
			}
		}
	}
	return cases
}

// TestSmallGemm checks medusa's small float32 kernel: against a float64
// product, bit for bit against gonum where gonum sums in the same order,
// assembly against Go, and that it writes c's m×n region only.
func TestSmallGemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range smallCases(rng) {
		got := c.run(sgemmSmall)
		for i := 0; i < c.m; i++ {
			for j := 0; j < c.ldc; j++ {
				g := got[i*c.ldc+j]
				if j >= c.n {
					if g != 7 {
						t.Fatalf("%v: c[%d,%d] outside the product was written", c, i, j)
					}
					continue
				}
				var want, abs float64
				for l := 0; l < c.k; l++ {
					p := float64(opAt(c.a, c.ta, c.lda, i, l)) * float64(opAt(c.b, c.tb, c.ldb, l, j))
					want += p
					abs += math.Abs(p)
				}
				if math.Abs(float64(g)-want) > 1e-6*abs+1e-30 {
					t.Fatalf("%v: c[%d,%d] = %v, want %v", c, i, j, g, want)
				}
			}
		}
		// gonum's amd64 assembly sums in the inner index's order, a
		// multiply then an add, except for A·Bᵀ (dot products): the same
		// bits. (Its Go loops elsewhere may be compiled to fused
		// multiply-adds.)
		if asmBuild && runtime.GOARCH == "amd64" && !(c.ta == blas.NoTrans && c.tb == blas.Trans) {
			if want := c.run(gonumSgemm); !sameBits(got, want) {
				t.Errorf("%v: differs from gonum's", c)
			}
		}
		avx2, avx512 := useAVX2, useAVX512
		if avx512 {
			useAVX512 = false
			if !sameBits(got, c.run(sgemmSmall)) {
				t.Errorf("%v: AVX-512 and AVX2 kernels differ", c)
			}
		}
		if avx2 {
			useAVX2, useAVX512 = false, false
			if !sameBits(got, c.run(sgemmSmall)) {
				t.Errorf("%v: assembly and Go kernels differ", c)
			}
		}
		useAVX2, useAVX512 = avx2, avx512
	}
}

func sameBits(x, y []float32) bool {
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
			return false
		}
	}
	return true
}

// TestSmallGemmEdges: k = 0 gives zeros, alpha and beta other than 1 and
// 0 still compute alpha·op(a)·op(b) + beta·c, and non-finite values
// propagate.
func TestSmallGemmEdges(t *testing.T) {
	c := []float32{1, 2, 3, 4}
	sgemmSmall(blas.NoTrans, blas.NoTrans, 2, 2, 0, 1, nil, 1, nil, 2, 0, c, 2)
	for _, v := range c {
		if v != 0 {
			t.Fatalf("k = 0: c = %v, want zeros", c)
		}
	}
	a, b := []float32{1, 2, 3, 4}, []float32{5, 6, 7, 8}
	c = []float32{1, 1, 1, 1}
	sgemmSmall(blas.NoTrans, blas.NoTrans, 2, 2, 2, 2, a, 2, b, 2, 1, c, 2)
	if want := []float32{39, 45, 87, 101}; !sameBits(c, want) {
		t.Errorf("alpha 2, beta 1: c = %v, want %v", c, want)
	}
	b[0] = float32(math.Inf(1))
	sgemmSmall(blas.NoTrans, blas.NoTrans, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2)
	if !math.IsInf(float64(c[0]), 1) || !math.IsInf(float64(c[2]), 1) || c[1] != 22 {
		t.Errorf("with an infinite element: c = %v", c)
	}
}

func BenchmarkSmallGemm(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range [][3]int{{10, 40, 40}, {40, 40, 10}, {10, 1, 40}, {32, 32, 32}, {64, 64, 64}} {
		for _, tb := range []blas.Transpose{blas.NoTrans, blas.Trans} {
			c := newSmallCase(rng, blas.NoTrans, tb, s[0], s[1], s[2], 0)
			out := make([]float32, c.m*c.ldc)
			for _, impl := range []struct {
				name string
				f    sgemmFunc
			}{{"medusa", sgemmSmall}, {"gonum", alignedGemm(gonumSgemm)}} {
				b.Run(fmt.Sprintf("%dx%dx%d/tb=%v/%s", s[0], s[1], s[2], tb == blas.Trans, impl.name), func(b *testing.B) {
					for b.Loop() {
						impl.f(c.ta, c.tb, c.m, c.n, c.k, 1, c.a, c.lda, c.b, c.ldb, 0, out, c.ldc)
					}
					b.ReportMetric(float64(2*c.m*c.n*c.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}
