package graph

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
	"golang.org/x/sys/cpu"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// The BLAS behind BatchedMatMul. Medusa looks for OpenBLAS at run time
// (without cgo, so every build runs everywhere) and uses it when found;
// otherwise it uses gonum's pure-Go BLAS (and for float32 medusa's small
// kernel, which rounds as gonum's does). On CPUs with AVX-512, large
// float32 products run on medusa's own kernel (sgemmFMA) instead, which is
// faster than OpenBLAS on the tall, narrow products of convolutions
// (unless MEDUSA_NATIVE=off, which turns all of medusa's kernels off). The
// environment variable MEDUSA_BLAS chooses: "auto" (the default),
// "openblas" (OpenBLAS for every large product; fail if it cannot be
// loaded) or "gonum" (no OpenBLAS, no sgemmFMA). OpenBLAS runs on one
// thread unless OPENBLAS_NUM_THREADS or OMP_NUM_THREADS says otherwise
// (medusa sets OPENBLAS_NUM_THREADS=1 in its environment while it loads
// the library).

// openBLASNames are the shared libraries tried, in order.
var openBLASNames = []string{"libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"}

// CBLAS enumerations.
const (
	cblasRowMajor = 101
	cblasNoTrans  = 111
	cblasTrans    = 112
)

type cblas struct {
	name string
	// threadSafe: the library may be called from several threads at
	// once. OpenBLAS built for threads (pthreads or OpenMP) may; a
	// sequential build may not, unless it was built with locking, which
	// cannot be asked, so its products run one at a time.
	threadSafe bool
	sgemm      func(order, ta, tb, m, n, k int32, alpha float32, a *float32, lda int32, b *float32, ldb int32, beta float32, c *float32, ldc int32)
	dgemm      func(order, ta, tb, m, n, k int32, alpha float64, a *float64, lda int32, b *float64, ldb int32, beta float64, c *float64, ldc int32)

	once sync.Once // makes s and d
	s    sgemmFunc
	d    dgemmFunc
}

type blasChoice struct {
	lib  *cblas // nil: gonum
	auto bool   // MEDUSA_BLAS is auto: medusa's AVX-512 kernel may take large float32 products
	err  error  // MEDUSA_BLAS=openblas and it could not be loaded
}

// loadBLAS returns the BLAS chosen for this process, deciding once.
var loadBLAS = sync.OnceValue(chooseBLAS)

// chooseBLAS reads MEDUSA_BLAS and loads OpenBLAS if wanted and present.
func chooseBLAS() blasChoice {
	switch v := strings.ToLower(os.Getenv("MEDUSA_BLAS")); v {
	case "gonum":
		return blasChoice{}
	case "", "auto", "openblas":
		lib, err := openCBLAS()
		if err != nil && v == "openblas" {
			return blasChoice{err: fmt.Errorf("graph: MEDUSA_BLAS=openblas: %v", err)}
		}
		return blasChoice{lib: lib, auto: v != "openblas"}
	default:
		return blasChoice{err: fmt.Errorf("graph: MEDUSA_BLAS=%q: want auto, openblas or gonum", v)}
	}
}

// openCBLAS loads the first OpenBLAS library found and binds its gemms.
func openCBLAS() (lib *cblas, err error) {
	defer func() {
		if r := recover(); r != nil {
			lib, err = nil, fmt.Errorf("binding cblas: %v", r)
		}
	}()
	// OpenBLAS reads its settings from the environment when it is
	// loaded; medusa sets them for that moment only, so that programs
	// this process starts later do not inherit them.
	defer setEnvWhileLoading("OPENBLAS_CORETYPE", coreType())()
	oneThread := os.Getenv("OPENBLAS_NUM_THREADS") == "" && os.Getenv("OMP_NUM_THREADS") == ""
	if oneThread {
		// One thread unless the user asks for more: medusa's products are
		// small to medium, and OpenBLAS's threads spinning beside Go's
		// measured slower on every benchmark here. It must be set before
		// the library is loaded: OpenBLAS starts its thread pool then, and
		// the idle threads of a pool reduced later by
		// openblas_set_num_threads still spin, taking a quarter of the
		// CPU time of a MAML step.
		defer setEnvWhileLoading("OPENBLAS_NUM_THREADS", "1")()
	}
	var errs []string
	for _, name := range openBLASNames {
		h, err := purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		lib := &cblas{name: name}
		purego.RegisterLibFunc(&lib.sgemm, h, "cblas_sgemm")
		purego.RegisterLibFunc(&lib.dgemm, h, "cblas_dgemm")
		if sym, err := purego.Dlsym(h, "openblas_get_parallel"); err == nil && sym != 0 {
			var parallel func() int32 // 0 sequential, 1 pthreads, 2 OpenMP
			purego.RegisterFunc(&parallel, sym)
			lib.threadSafe = parallel() != 0
		}
		if oneThread {
			// In case the library was loaded before, with its pool.
			var setThreads func(int32)
			if sym, err := purego.Dlsym(h, "openblas_set_num_threads"); err == nil && sym != 0 {
				purego.RegisterFunc(&setThreads, sym)
				setThreads(1)
			}
		}
		return lib, nil
	}
	return nil, fmt.Errorf("cannot load OpenBLAS: %s", strings.Join(errs, "; "))
}

// setEnvWhileLoading sets the environment variable key to value, unless
// value is empty or the variable is set already, and returns the function
// that puts it back.
func setEnvWhileLoading(key, value string) (restore func()) {
	if value == "" || os.Getenv(key) != "" {
		return func() {}
	}
	prev, had := os.LookupEnv(key)
	os.Setenv(key, value)
	return func() {
		if had {
			os.Setenv(key, prev)
		} else {
			os.Unsetenv(key)
		}
	}
}

// coreType is the OPENBLAS_CORETYPE that tells OpenBLAS which kernels to
// use ("" to let it choose): Debian's dynamic-arch OpenBLAS has been seen
// to take a virtual machine's AVX-512 CPU for a Prescott and run SSE3
// kernels, eight times slower at sgemm.
func coreType() string {
	if runtime.GOARCH != "amd64" {
		return ""
	}
	switch {
	case cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL:
		return "SkylakeX"
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return "Haswell"
	}
	return ""
}

// BLAS returns the name of the BLAS that BatchedMatMul uses, "gonum" or
// "openblas (libopenblas.so.0)", preceded by "medusa AVX-512 (float32), "
// and followed by " (float64)" when large float32 products run on
// medusa's kernel, or an error if MEDUSA_BLAS asks for one that cannot be
// loaded.
func BLAS() (string, error) {
	c := loadBLAS()
	if c.err != nil {
		return "", c.err
	}
	name := "gonum"
	if c.lib != nil {
		name = "openblas (" + c.lib.name + ")"
	}
	if c.wide() {
		name = "medusa AVX-512 (float32), " + name + " (float64)"
	}
	return name, nil
}

// wide reports whether large float32 products run on medusa's AVX-512
// kernel (sgemmFMA): with MEDUSA_BLAS=auto, medusa's kernels on and a CPU
// with AVX-512.
func (c blasChoice) wide() bool {
	return c.auto && useAVX512 && nativeOn()
}

type (
	sgemmFunc = func(ta, tb blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
	dgemmFunc = func(ta, tb blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int)
)

// gemmFor returns the gemms for m×k by k×n products. Float32 products
// that are not small run on medusa's AVX-512 kernel (sgemmFMA) where
// blasChoice.wide allows, and otherwise on OpenBLAS when it is loaded;
// small ones, and large ones without either, run on medusa's small kernel
// (sgemmSmall; gonum's gemm with MEDUSA_NATIVE=off). Float64 products run
// on OpenBLAS when it is loaded and the product is not small, and on
// gonum's gemm otherwise. alignS and alignD report that the gemm is
// gonum's, whose rounding depends on its operands' addresses (see
// alignedGemm): the caller must pass 64-byte aligned matrices, or matrices
// at offsets that are the same on every call, to get the same bits every
// time.
func gemmFor(m, n, k int) (s sgemmFunc, d dgemmFunc, alignS, alignD bool, err error) {
	c := loadBLAS()
	if c.err != nil {
		return nil, nil, false, false, c.err
	}
	d, alignD = gonumDgemm, true
	if c.lib != nil && m*n*k >= smallGemm {
		_, d = c.lib.gemms()
		alignD = false
	}
	switch {
	case m*n*k >= smallGemm && c.wide():
		return sgemmFMA, d, false, alignD, nil
	case c.lib == nil || m*n*k < smallGemm:
		if nativeOn() {
			return sgemmSmall, d, false, alignD, nil
		}
		return gonumSgemm, d, true, alignD, nil
	}
	s, _ = c.lib.gemms()
	return s, d, false, false, nil
}

// concurrentGemm reports whether gemmFor's gemms for m×k by k×n products
// of float32 (f32) or float64 may run on several goroutines at once:
// always for medusa's kernels and gonum's, and for OpenBLAS when it was
// built for threads.
func concurrentGemm(m, n, k int, f32 bool) bool {
	c := loadBLAS()
	return c.lib == nil || m*n*k < smallGemm || c.lib.threadSafe || f32 && c.wide()
}

// gonum's gemms, as values made once (a method value allocates).
var (
	gonumSgemm sgemmFunc = gonum.Implementation{}.Sgemm
	gonumDgemm dgemmFunc = gonum.Implementation{}.Dgemm
)

// gemms returns lib's gemms with gonum's signature, made once.
func (lib *cblas) gemms() (sgemmFunc, dgemmFunc) {
	lib.once.Do(func() { lib.s, lib.d = lib.wrap() })
	return lib.s, lib.d
}

// wrap makes lib's gemms with gonum's signature.
func (lib *cblas) wrap() (s sgemmFunc, d dgemmFunc) {
	s = func(ta, tb blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
		if m == 0 || n == 0 {
			return
		}
		lib.sgemm(cblasRowMajor, cblasOp(ta), cblasOp(tb), int32(m), int32(n), int32(k), alpha, first(a), int32(lda), first(b), int32(ldb), beta, &c[0], int32(ldc))
	}
	d = func(ta, tb blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
		if m == 0 || n == 0 {
			return
		}
		lib.dgemm(cblasRowMajor, cblasOp(ta), cblasOp(tb), int32(m), int32(n), int32(k), alpha, first(a), int32(lda), first(b), int32(ldb), beta, &c[0], int32(ldc))
	}
	return s, d
}

// gemmFuncs returns row-major gemms for float32 and float64 with gonum's
// signature that give the same bits on every call: gemmFor's, with gonum's
// wrapped to work on aligned copies.
func gemmFuncs() (s sgemmFunc, d dgemmFunc, err error) {
	if _, _, _, _, err := gemmFor(0, 0, 0); err != nil {
		return nil, nil, err
	}
	s = func(ta, tb blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
		g, _, align, _, _ := gemmFor(m, n, k)
		if align {
			g = alignedGemm(g)
		}
		g(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	}
	d = func(ta, tb blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
		_, g, _, align, _ := gemmFor(m, n, k)
		if align {
			g = alignedGemm(g)
		}
		g(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	}
	return s, d, nil
}

// smallGemm is the size m·n·k below which neither OpenBLAS (even when it
// is loaded) nor sgemmFMA is called: for small products (MAML's per-task
// 10×40×40, say) the cost of a call through purego, which allocates,
// exceeds the arithmetic OpenBLAS saves, and sgemmSmall keeps gonum's bits.
const smallGemm = 32 * 32 * 32

// isAligned reports whether x starts at a 64-byte boundary.
func isAligned[T float](x []T) bool {
	return len(x) == 0 || uintptr(unsafe.Pointer(&x[0]))%64 == 0
}

// alignedCopy returns x itself if it is 64-byte aligned, else an aligned
// copy.
func alignedCopy[T float](x []T) []T {
	if isAligned(x) {
		return x
	}
	y := aligned[T](len(x))[:len(x)]
	copy(y, x)
	return y
}

// alignedGemm wraps a gonum gemm so that it always sees its matrices at
// 64-byte aligned addresses. gonum's assembly kernels (dot and axpy) treat
// the elements before the first aligned address apart, so the order in
// which they sum, and so the rounding, depends on where the allocator put
// the slices: the same product could differ in its last bit from one run
// to the next. Copying into aligned scratch makes it depend on the values
// alone.
func alignedGemm[T float](gemm func(ta, tb blas.Transpose, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int)) func(ta, tb blas.Transpose, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	return func(ta, tb blas.Transpose, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
		if m == 0 || n == 0 {
			return
		}
		ra, rb := m, k // rows of a and b as stored
		if ta != blas.NoTrans {
			ra = k
		}
		if tb != blas.NoTrans {
			rb = n
		}
		na, nb, nc := (ra-1)*lda+max(lda, 1), (rb-1)*ldb+max(ldb, 1), (m-1)*ldc+n
		buf := aligned[T](na + nb + nc + 32)
		ab, bb := buf[:na:na], buf[pad[T](na):]
		bb = bb[:nb:nb]
		cb := buf[pad[T](na)+pad[T](nb):]
		cb = cb[:nc:nc]
		copy(ab, a[:min(len(a), na)])
		copy(bb, b[:min(len(b), nb)])
		if beta != 0 {
			copy(cb, c[:nc])
		}
		gemm(ta, tb, m, n, k, alpha, ab, lda, bb, ldb, beta, cb, ldc)
		copy(c[:nc], cb)
	}
}

// pad rounds n elements of T up to a multiple of 64 bytes.
func pad[T float](n int) int {
	var z T
	per := 64 / int(unsafe.Sizeof(z))
	return (n + per - 1) / per * per
}

// aligned returns a slice of at least n elements of T whose first element
// is 64-byte aligned.
func aligned[T float](n int) []T {
	var z T
	size := int(unsafe.Sizeof(z))
	raw := make([]T, n+64/size+pad[T](0)+64)
	off := 0
	for uintptr(unsafe.Pointer(&raw[off]))%64 != 0 {
		off++
	}
	return raw[off:]
}

func cblasOp(t blas.Transpose) int32 {
	if t == blas.NoTrans {
		return cblasNoTrans
	}
	return cblasTrans
}

// first returns a pointer to x's first element, or nil for an empty x
// (k = 0: gemm reads nothing).
func first[T float](x []T) *T {
	if len(x) == 0 {
		return nil
	}
	return &x[0]
}
