package graph

import (
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// TestOpenBLASMatchesGonum checks OpenBLAS's gemms, bound at run time,
// against gonum's on every transpose combination. Float64 must agree to 1e-12 relative (the sums are the same
// up to order); float32 to 1e-5.
func TestOpenBLASMatchesGonum(t *testing.T) {
	lib, err := openCBLAS()
	if err != nil {
		t.Skipf("OpenBLAS is not installed here (%v); BatchedMatMul uses gonum", err)
	}
	t.Logf("testing %s", lib.name)
	saved := loadBLAS
	defer func() { loadBLAS = saved }()
	loadBLAS = func() blasChoice { return blasChoice{lib: lib} }
	sgemm, dgemm, err := gemmFuncs()
	if err != nil {
		t.Fatal(err)
	}
	var impl gonum.Implementation
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sz := range [][3]int{{1, 1, 1}, {3, 5, 4}, {17, 9, 33}, {64, 128, 32}} {
		m, n, k := sz[0], sz[1], sz[2]
		for _, ta := range []blas.Transpose{blas.NoTrans, blas.Trans} {
			for _, tb := range []blas.Transpose{blas.NoTrans, blas.Trans} {
				lda, ldb := k, n
				if ta == blas.Trans {
					lda = m
				}
				if tb == blas.Trans {
					ldb = k
				}
				a, b := make([]float64, m*k), make([]float64, k*n)
				for i := range a {
					a[i] = rng.NormFloat64()
				}
				for i := range b {
					b[i] = rng.NormFloat64()
				}
				want, got := make([]float64, m*n), make([]float64, m*n)
				impl.Dgemm(ta, tb, m, n, k, 1, a, lda, b, ldb, 0, want, n)
				dgemm(ta, tb, m, n, k, 1, a, lda, b, ldb, 0, got, n)
				if e := RelErr(got, want, 1); e > 1e-12 {
					t.Errorf("dgemm %v ta=%v tb=%v: rel err %.3g", sz, ta, tb, e)
				}
				a32, b32 := f32(a), f32(b)
				w32, g32 := make([]float32, m*n), make([]float32, m*n)
				impl.Sgemm(ta, tb, m, n, k, 1, a32, lda, b32, ldb, 0, w32, n)
				sgemm(ta, tb, m, n, k, 1, a32, lda, b32, ldb, 0, g32, n)
				if e := RelErr(f64(g32), f64(w32), 1); e > 1e-5 {
					t.Errorf("sgemm %v ta=%v tb=%v: rel err %.3g", sz, ta, tb, e)
				}
			}
		}
	}
}

func TestBLASChoice(t *testing.T) {
	name, err := BLAS()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("BatchedMatMul uses %s", name)
	// The choice is read once per process; check the parser directly.
	for _, c := range []struct {
		env  string
		want string
	}{{"fortran", `want auto, openblas or gonum`}, {"gonum", ""}} {
		t.Setenv("MEDUSA_BLAS", c.env)
		got := chooseBLAS()
		if c.want == "" {
			if got.err != nil || got.lib != nil {
				t.Errorf("MEDUSA_BLAS=%s: %+v; want gonum", c.env, got)
			}
			continue
		}
		if got.err == nil || !strings.Contains(got.err.Error(), c.want) {
			t.Errorf("MEDUSA_BLAS=%s: err = %v; want %q", c.env, got.err, c.want)
		}
	}
	// Medusa's AVX-512 kernel takes large float32 products only when
	// MEDUSA_BLAS leaves the choice to it.
	for env, auto := range map[string]bool{"": true, "auto": true, "AUTO": true, "openblas": false, "gonum": false} {
		t.Setenv("MEDUSA_BLAS", env)
		got := chooseBLAS()
		if env == "openblas" && got.err != nil {
			continue // no OpenBLAS here
		}
		if got.auto != auto || got.wide() != (auto && useAVX512 && nativeOn()) {
			t.Errorf("MEDUSA_BLAS=%q: auto %v, wide %v; want auto %v", env, got.auto, got.wide(), auto)
		}
	}
}

// TestConcurrentGemm checks that float64 products, which medusa's kernel
// does not take, run one at a time on an OpenBLAS that was not built for
// threads, and float32 products on medusa's kernel concurrently.
func TestConcurrentGemm(t *testing.T) {
	c := loadBLAS()
	if c.lib == nil {
		t.Skip("no OpenBLAS here")
	}
	safe := c.lib.threadSafe
	defer func() { c.lib.threadSafe = safe }()
	c.lib.threadSafe = false
	if concurrentGemm(64, 64, 64, false) {
		t.Error("float64 products on a sequential OpenBLAS may run concurrently")
	}
	if got := concurrentGemm(64, 64, 64, true); got != c.wide() {
		t.Errorf("float32 products on a sequential OpenBLAS: concurrent %v; want %v (medusa's kernel: %v)", got, c.wide(), c.wide())
	}
	if !concurrentGemm(4, 4, 4, false) {
		t.Error("small float64 products (gonum's) may not run concurrently")
	}
}

func f32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// TestGemmIndependentOfAlignment computes one float32 product from copies
// of its operands placed at every offset within a 64-byte line and checks
// the results are bit-identical: gonum's kernels alone sum in an order that
// depends on the address.
func TestGemmIndependentOfAlignment(t *testing.T) {
	sgemm, _, err := gemmFuncs()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	m, n, k := 16, 3, 37
	a, b := make([]float32, m*k), make([]float32, n*k)
	for i := range a {
		a[i] = float32(rng.NormFloat64())
	}
	for i := range b {
		b[i] = float32(rng.NormFloat64())
	}
	var want []float32
	for off := range 16 {
		ab := append(make([]float32, off), a...)[off:]
		bb := append(make([]float32, off), b...)[off:]
		c := append(make([]float32, off), make([]float32, m*n)...)[off:]
		sgemm(blas.NoTrans, blas.Trans, m, n, k, 1, ab, k, bb, k, 0, c, n)
		if want == nil {
			want = append([]float32(nil), c...)
			continue
		}
		for i := range c {
			if c[i] != want[i] {
				t.Fatalf("offset %d: element %d = %v, at offset 0 %v", off, i, c[i], want[i])
			}
		}
	}
}

// TestOpenBLASEnvironment: the settings medusa gives OpenBLAS while it
// loads do not stay in the environment of the process.
func TestOpenBLASEnvironment(t *testing.T) {
	t.Setenv("OPENBLAS_NUM_THREADS", "")
	t.Setenv("OPENBLAS_CORETYPE", "")
	if _, err := openCBLAS(); err != nil {
		t.Skipf("OpenBLAS is not installed here (%v)", err)
	}
	for _, k := range []string{"OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE"} {
		if v := os.Getenv(k); v != "" {
			t.Errorf("%s = %q after loading OpenBLAS, want it as it was (empty)", k, v)
		}
	}
}
