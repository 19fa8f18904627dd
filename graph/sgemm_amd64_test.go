//go:build !noasm

package graph

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// fma32 returns x·y + z rounded once to float32, as VFMADD231PS does.
func fma32(x, y, z float32) float32 {
	r := math.FMA(float64(x), float64(y), float64(z))
	f := float32(r)
	if float64(f) == r || math.IsInf(r, 0) || math.IsNaN(r) {
		return f
	}
	// Rounding r to float32 is rounding the exact value unless r is
	// halfway between two float32s, where the exact value decides.
	lo, hi := f, math.Nextafter32(f, float32(math.Inf(1)))
	if float64(f) > r {
		lo, hi = math.Nextafter32(f, float32(math.Inf(-1))), f
	}
	if (float64(lo)+float64(hi))/2 != r {
		return f
	}
	exact := new(big.Float).SetPrec(1200).SetFloat64(float64(x))
	exact.Mul(exact, big.NewFloat(float64(y)))
	exact.Add(exact, big.NewFloat(float64(z)))
	switch exact.Cmp(big.NewFloat(r)) {
	case 1:
		return hi
	case -1:
		return lo
	}
	return f
}

// TestFMAGemm checks sgemmFMA against fused multiply-adds in Go, block by
// block of the inner index, bit for bit, for every combination of
// transposes, shapes around the tile sizes (8 and 12 rows, 16, 32 and 48
// columns) and the blocks of the inner index (fmaKC), padded strides, and
// some infinities and NaNs; the padding of c must stay as it was.
func TestFMAGemm(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512 here: sgemmFMA is not used")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	trans := []blas.Transpose{blas.NoTrans, blas.Trans}
	for _, ta := range trans {
		for _, tb := range trans {
			for _, m := range []int{1, 8, 9, 23, 30} {
				for _, n := range []int{1, 16, 17, 32, 33, 48, 49, 100} {
					for _, k := range []int{1, 5, fmaKC, fmaKC + 1, 2*fmaKC + 88} {
						if m*n*k > 400_000 {
							continue
						}
						name := fmt.Sprintf("ta=%v tb=%v %d×%d×%d", ta == blas.Trans, tb == blas.Trans, m, n, k)
						c := newSmallCase(rng, ta, tb, m, n, k, rng.IntN(3))
						if rng.IntN(4) == 0 {
							c.a[rng.IntN(len(c.a))] = float32(math.Inf(1))
							c.b[rng.IntN(len(c.b))] = float32(math.NaN())
						}
						checkFMAGemm(t, name, c)
					}
				}
			}
		}
	}
}

func checkFMAGemm(t *testing.T, name string, c smallCase) {
	t.Helper()
	const guard = -7.25
	got := make([]float32, c.m*c.ldc)
	for i := range got {
		got[i] = guard
	}
	sgemmFMA(c.ta, c.tb, c.m, c.n, c.k, 1, c.a, c.lda, c.b, c.ldb, 0, got, c.ldc)
	at := func(i, l int) float32 {
		if c.ta == blas.Trans {
			return c.a[l*c.lda+i]
		}
		return c.a[i*c.lda+l]
	}
	bt := func(l, j int) float32 {
		if c.tb == blas.Trans {
			return c.b[j*c.ldb+l]
		}
		return c.b[l*c.ldb+j]
	}
	for i := range c.m {
		for j := range c.ldc {
			g := got[i*c.ldc+j]
			if j >= c.n {
				if g != guard {
					t.Fatalf("%s: padding (%d, %d) written: %v", name, i, j, g)
				}
				continue
			}
			var want float32
			for l0 := 0; l0 < c.k; l0 += fmaKC {
				var part float32
				for l := l0; l < min(l0+fmaKC, c.k); l++ {
					part = fma32(at(i, l), bt(l, j), part)
				}
				if l0 == 0 {
					want = part
				} else {
					want += part
				}
			}
			if math.Float32bits(g) != math.Float32bits(want) && !(isNaN32(g) && isNaN32(want)) {
				t.Fatalf("%s: c(%d, %d) = %v, want %v", name, i, j, g, want)
			}
		}
	}
}

// TestFMAGemmScalars checks that sgemmFMA hands alpha ≠ 1, beta ≠ 0 and
// k = 0 to sgemmSmall.
func TestFMAGemmScalars(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512 here: sgemmFMA is not used")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	c := newSmallCase(rng, blas.NoTrans, blas.Trans, 9, 20, 30, 1)
	for _, s := range [][2]float32{{2, 0}, {1, 0.5}, {-1, 1}} {
		got, want := make([]float32, c.m*c.ldc), make([]float32, c.m*c.ldc)
		for i := range got {
			got[i] = float32(i)
			want[i] = float32(i)
		}
		sgemmFMA(c.ta, c.tb, c.m, c.n, c.k, s[0], c.a, c.lda, c.b, c.ldb, s[1], got, c.ldc)
		sgemmSmall(c.ta, c.tb, c.m, c.n, c.k, s[0], c.a, c.lda, c.b, c.ldb, s[1], want, c.ldc)
		if !sameBits(got, want) {
			t.Errorf("alpha %v, beta %v: differs from sgemmSmall", s[0], s[1])
		}
	}
	got := []float32{1, 2, 3, 4}
	sgemmFMA(blas.NoTrans, blas.NoTrans, 2, 2, 0, 1, nil, 1, nil, 2, 0, got, 2)
	if !sameBits(got, []float32{0, 0, 0, 0}) {
		t.Errorf("k = 0: c = %v, want zeros", got)
	}
}

// TestFMAGemmAccuracy measures sgemmFMA and sgemmSmall against float64 on
// the filter gradient of a ConvNet's first block (32 filters, 3×3 patches,
// 58,800 positions: a long inner index) with positive inputs, as
// activations are: summing blocks of fmaKC from zero keeps sgemmFMA's
// error near float32's rounding, where one chain of 58,800 terms loses
// about one digit. Run with -v to see the errors.
func TestFMAGemmAccuracy(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512 here: sgemmFMA is not used")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	m, n, k := 32, 9, 58800
	a, b := make([]float32, k*m), make([]float32, k*n) // aᵀ·b
	for i := range a {
		a[i] = float32(rng.Float64())
	}
	for i := range b {
		b[i] = float32(rng.Float64()*2 - 0.5)
	}
	want := make([]float64, m*n)
	for l := range k {
		for i := range m {
			for j := range n {
				want[i*n+j] += float64(a[l*m+i]) * float64(b[l*n+j])
			}
		}
	}
	relErr := func(gemm sgemmFunc) float64 {
		c := make([]float32, m*n)
		gemm(blas.Trans, blas.NoTrans, m, n, k, 1, a, m, b, n, 0, c, n)
		var num, den float64
		for i, w := range want {
			num += (float64(c[i]) - w) * (float64(c[i]) - w)
			den += w * w
		}
		return math.Sqrt(num / den)
	}
	fma, small := relErr(sgemmFMA), relErr(sgemmSmall)
	t.Logf("relative error against float64: sgemmFMA %.3g, sgemmSmall %.3g", fma, small)
	if fma > 1e-6 {
		t.Errorf("sgemmFMA's relative error %.3g > 1e-6", fma)
	}
}

// BenchmarkConvGemm times sgemmFMA and OpenBLAS's sgemm (when it is
// loaded) on the products of a 32-filter ConvNet meta-iteration's query
// pass (BenchmarkMAMLConvNet): the second block's forward product, filter
// gradient and patch gradient, and the first block's forward product and
// filter gradient, whose patches have 9 values.
func BenchmarkConvGemm(b *testing.B) {
	if !useAVX512 {
		b.Skip("no AVX-512 here: sgemmFMA is not used")
	}
	rng := rand.New(rand.NewPCG(1, 1))
	impls := []struct {
		name string
		f    sgemmFunc
	}{{"medusa", sgemmFMA}}
	if lib := loadBLAS().lib; lib != nil {
		s, _ := lib.gemms()
		impls = append(impls, struct {
			name string
			f    sgemmFunc
		}{"openblas", s})
	}
	for _, s := range []struct {
		name    string
		ta, tb  blas.Transpose
		m, n, k int
	}{
		{"block2/forward", blas.NoTrans, blas.Trans, 14700, 32, 288},
		{"block2/filters", blas.Trans, blas.NoTrans, 32, 288, 14700},
		{"block2/patches", blas.NoTrans, blas.NoTrans, 14700, 288, 32},
		{"block1/forward", blas.NoTrans, blas.Trans, 58800, 32, 9},
		{"block1/filters", blas.Trans, blas.NoTrans, 32, 9, 58800},
	} {
		c := newSmallCase(rng, s.ta, s.tb, s.m, s.n, s.k, 0)
		out := make([]float32, c.m*c.ldc)
		for _, impl := range impls {
			b.Run(s.name+"/"+impl.name, func(b *testing.B) {
				for b.Loop() {
					impl.f(c.ta, c.tb, c.m, c.n, c.k, 1, c.a, c.lda, c.b, c.ldb, 0, out, c.ldc)
				}
				b.ReportMetric(float64(c.m*c.n*c.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
			})
		}
	}
}
