package cuda

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

var (
	emuOnce sync.Once
	emuDev  *Device
	emuErr  error
)

// emulated returns a Device on the CPU emulation, shared by the tests, or
// skips the test when there is no C++ compiler to build it.
func emulated(t testing.TB) *Device {
	t.Helper()
	emuOnce.Do(func() {
		dir, err := os.MkdirTemp("", "medusa-emu-")
		if err != nil {
			emuErr = err
			return
		}
		emuDev, emuErr = openEmulated(dir)
		os.RemoveAll(dir) // the library stays loaded
	})
	if emuErr != nil {
		if strings.Contains(emuErr.Error(), "needs a C++ compiler") {
			t.Skipf("no CPU emulation of the GPU kernels: %v", emuErr)
		}
		t.Fatal(emuErr)
	}
	return emuDev
}

// opCase builds y from inputs of the given shapes (labels, when set, is
// an int input of that shape with values below classes).
type opCase struct {
	name    string
	shapes  []tensor.Shape
	labels  tensor.Shape
	classes int
	build   func(x G.Nodes, labels *G.Node) (*G.Node, error)
	kinds   []string // kinds that must run on the device
	noGrad  bool
}

func opCases() []opCase {
	s := func(d ...int) tensor.Shape { return tensor.Shape(d) }
	unary := func(name string, f func(*G.Node) (*G.Node, error), x *G.Node) opCase {
		return opCase{name: name, shapes: []tensor.Shape{s(3, 4, 5)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) { return f(x[0]) }, kinds: []string{name}}
	}
	var cases []opCase
	for _, u := range []struct {
		name string
		f    func(*G.Node) (*G.Node, error)
	}{
		{"neg", G.Neg}, {"square", G.Square}, {"exp", G.Exp}, {"tanh", G.Tanh}, {"sigmoid", G.Sigmoid},
		{"relu", graph.ReLU},
		{"log", func(x *G.Node) (*G.Node, error) { return G.Log(G.Must(G.Square(x))) }},
		{"sqrt", func(x *G.Node) (*G.Node, error) { return G.Sqrt(G.Must(G.Exp(x))) }},
	} {
		cases = append(cases, unary(u.name, u.f, nil))
	}
	cases = append(cases,
		opCase{name: "add", shapes: []tensor.Shape{s(3, 4), s(3, 4)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) { return G.Add(x[0], x[1]) }, kinds: []string{"add"}},
		opCase{name: "sub-div", shapes: []tensor.Shape{s(3, 4), s(3, 4)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return G.Div(G.Must(G.Sub(x[0], x[1])), G.Must(G.Exp(x[1])))
		}, kinds: []string{"sub", "div"}},
		opCase{name: "scale", shapes: []tensor.Shape{s(7, 9)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) { return graph.Scale(x[0], -0.3) }, kinds: []string{"mul"}},
		opCase{name: "broadcast-sumaxis", shapes: []tensor.Shape{s(3, 4, 5)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return graph.Broadcast(G.Must(G.HadamardProd(G.Must(graph.Broadcast(G.Must(graph.SumAxis(x[0], 1)), 1, 4)), x[0])), 3, 2)
		}, kinds: []string{"broadcast", "sumaxis"}},
		// Many rows and few outputs: two-pass sums (reduce.cu).
		opCase{name: "sumaxis-chunked", shapes: []tensor.Shape{s(2, 1000, 3)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return graph.SumAxis(x[0], 1)
		}, kinds: []string{"sumaxis", "broadcast"}},
		opCase{name: "mean-chunked", shapes: []tensor.Shape{s(5000)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return graph.MeanAll(G.Must(G.Square(x[0])))
		}, kinds: []string{"sumaxis"}},
		opCase{name: "matmul", shapes: []tensor.Shape{s(3, 4, 5), s(3, 5, 6)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return graph.BatchedMatMul(x[0], x[1], false, false)
		}, kinds: []string{"matmul"}},
		opCase{name: "matmul-transposed", shapes: []tensor.Shape{s(2, 5, 4), s(2, 6, 5)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return graph.BatchedMatMul(x[0], x[1], true, true)
		}, kinds: []string{"matmul"}},
		opCase{name: "cross-entropy", shapes: []tensor.Shape{s(4, 6, 5)}, labels: s(4, 6), classes: 5, build: func(x G.Nodes, l *G.Node) (*G.Node, error) {
			return graph.CrossEntropyLabels(x[0], l)
		}, kinds: []string{"logsoftmax", "pick", "scatter"}},
	)
	return append(cases, imageOpCases()...)
}

// runBoth compiles outs on the CPU and on dev, runs both on the same
// inputs and returns each output from both, with the device plan.
func runBoth(t *testing.T, dev graph.Device, g *G.ExprGraph, outs G.Nodes, bind map[string]tensor.Tensor) (cpu, gpu [][]float64, p *graph.Plan) {
	t.Helper()
	cp, err := graph.Compile(g, outs...)
	if err != nil {
		t.Fatal(err)
	}
	p, err = graph.CompileOn(dev, g, outs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	for _, m := range []*graph.Plan{cp, p} {
		for name, v := range bind {
			if err := m.Let(name, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Run(); err != nil {
			t.Fatal(err)
		}
	}
	cpu, gpu = readBoth(t, cp, p, outs)
	return cpu, gpu, p
}

// readBoth reads outs from a CPU plan and a device plan.
func readBoth(t *testing.T, cp, p *graph.Plan, outs G.Nodes) (cpu, gpu [][]float64) {
	t.Helper()
	for _, o := range outs {
		a, err := cp.ReadFloat64s(o)
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.ReadFloat64s(o)
		if err != nil {
			t.Fatal(err)
		}
		cpu, gpu = append(cpu, a), append(gpu, b)
	}
	return cpu, gpu
}

// tolerance is the relative agreement wanted between device and CPU.
func tolerance(dt tensor.Dtype) float64 {
	if dt == tensor.Float32 {
		return 1e-5
	}
	return 1e-12
}

func compare(t *testing.T, what string, cpu, gpu [][]float64, tol float64) {
	t.Helper()
	for k := range cpu {
		if len(cpu[k]) != len(gpu[k]) {
			t.Fatalf("%s output %d: %d values on the device, %d on the CPU", what, k, len(gpu[k]), len(cpu[k]))
		}
		for i := range cpu[k] {
			w, g := cpu[k][i], gpu[k][i]
			if math.IsNaN(g) != math.IsNaN(w) || math.Abs(g-w) > tol*math.Max(1, math.Abs(w)) {
				t.Fatalf("%s output %d[%d]: device %v, CPU %v", what, k, i, g, w)
			}
		}
	}
}

func randTensor(rng *rand.Rand, dt tensor.Dtype, s tensor.Shape) tensor.Tensor {
	n := s.TotalSize()
	if dt == tensor.Float32 {
		d := make([]float32, n)
		for i := range d {
			d[i] = float32(rng.NormFloat64())
		}
		return tensor.New(tensor.WithShape(s...), tensor.WithBacking(d))
	}
	d := make([]float64, n)
	for i := range d {
		d[i] = rng.NormFloat64()
	}
	return tensor.New(tensor.WithShape(s...), tensor.WithBacking(d))
}

// TestOpsOnDevice runs every op the device supports, and its gradient,
// on the emulated device and on the CPU, float32 and float64, and checks
// they agree and that the op ran on the device.
func TestOpsOnDevice(t *testing.T) {
	dev := testDevice(t)
	for _, c := range opCases() {
		for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
			t.Run(fmt.Sprintf("%s/%v", c.name, dt), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(1, 2))
				g := G.NewGraph()
				bind := map[string]tensor.Tensor{}
				var xs G.Nodes
				for i, s := range c.shapes {
					name := fmt.Sprintf("x%d", i)
					xs = append(xs, G.NewTensor(g, dt, len(s), G.WithShape(s...), G.WithName(name)))
					bind[name] = randTensor(rng, dt, s)
				}
				var labels *G.Node
				if c.labels != nil {
					labels = G.NewTensor(g, tensor.Int, len(c.labels), G.WithShape(c.labels...), G.WithName("labels"))
					l := make([]int, c.labels.TotalSize())
					for i := range l {
						l[i] = rng.IntN(c.classes)
					}
					bind["labels"] = tensor.New(tensor.WithShape(c.labels...), tensor.WithBacking(l))
				}
				y, err := c.build(xs, labels)
				if err != nil {
					t.Fatal(err)
				}
				outs := G.Nodes{y}
				if !c.noGrad {
					w := G.NewTensor(g, dt, y.Dims(), G.WithShape(y.Shape()...), G.WithName("w"))
					if y.Shape().IsScalar() {
						w = G.NewScalar(g, dt, G.WithName("w"))
					}
					bind["w"] = randTensor(rng, dt, y.Shape())
					cost := G.Must(graph.SumAll(G.Must(G.HadamardProd(y, w))))
					grads, err := graph.Grad(cost, xs...)
					if err != nil {
						t.Fatal(err)
					}
					outs = append(outs, grads...)
				}
				cpu, gpu, p := runBoth(t, dev, g, outs, bind)
				compare(t, c.name, cpu, gpu, tolerance(dt))
				pl := p.Placement()
				for _, k := range c.kinds {
					if pl.HostOps[k] > 0 {
						t.Errorf("%s runs on the CPU: %v", k, pl)
					}
				}
				if pl.OnDevice == 0 {
					t.Errorf("nothing on the device: %v", pl)
				}
			})
		}
	}
}

// TestDeviceBuffers checks uploads and downloads of every element type,
// refusals of mismatched copies, and that freeing twice is an error.
func TestDeviceBuffers(t *testing.T) {
	dev := emulated(t)
	for _, src := range []any{[]float32{1, -2.5, 3}, []float64{1, -2.5, 3}, []int{7, -1, 1 << 40}} {
		var dt tensor.Dtype
		switch src.(type) {
		case []float32:
			dt = tensor.Float32
		case []float64:
			dt = tensor.Float64
		default:
			dt = tensor.Int
		}
		b, err := dev.Alloc(dt, 3)
		if err != nil {
			t.Fatal(err)
		}
		if err := dev.Upload(b, src); err != nil {
			t.Fatal(err)
		}
		var dst any
		switch src.(type) {
		case []float32:
			dst = make([]float32, 3)
		case []float64:
			dst = make([]float64, 3)
		default:
			dst = make([]int, 3)
		}
		if err := dev.Download(dst, b); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(dst) != fmt.Sprint(src) {
			t.Errorf("Download after Upload(%v) = %v", src, dst)
		}
		if err := dev.Upload(b, make([]float32, 4)); err == nil {
			t.Errorf("Upload of 4 float32 into a buffer of 3 %v succeeded", dt)
		}
		if err := dev.Free(b); err != nil {
			t.Fatal(err)
		}
		if err := dev.Free(b); err == nil {
			t.Errorf("second Free succeeded")
		}
		if err := dev.Upload(b, src); err == nil {
			t.Errorf("Upload to a freed buffer succeeded")
		}
	}
	if _, err := dev.Alloc(tensor.Bool, 3); err == nil {
		t.Errorf("Alloc(bool) succeeded")
	}
}

// TestNoGPU checks the errors on a machine without a GPU: every result
// matches ErrNoGPU and names what is missing; nothing panics.
func TestNoGPU(t *testing.T) {
	r := Probe()
	t.Logf("Probe:\n%s", r)
	if len(r.Devices) > 0 {
		t.Skipf("this machine has a GPU: %v", r.Devices)
	}
	_, err := Open(0)
	if !errors.Is(err, ErrNoGPU) {
		t.Errorf("Open(0) = %v; want an error matching ErrNoGPU", err)
	}
	if !strings.Contains(r.String(), "devices: none") {
		t.Errorf("Probe().String() = %q; want it to say there are no devices", r)
	}
	if _, err := open("driver", []string{"libmedusa-absent.so.1"}); !errors.Is(err, ErrNoGPU) || !strings.Contains(err.Error(), "libmedusa-absent.so.1") {
		t.Errorf("open(absent library) = %v; want ErrNoGPU naming the library", err)
	}
}

// TestErrorNames checks the mapping of result codes to errors.
func TestErrorNames(t *testing.T) {
	for _, c := range []struct {
		lib  string
		code uintptr
		want string
		gpu  bool
	}{
		{"driver", 2, "cuda: cuX: CUDA_ERROR_OUT_OF_MEMORY (2)", false},
		{"driver", 100, "cuda: cuX: CUDA_ERROR_NO_DEVICE (100)", true},
		{"driver", 35, "cuda: cuX: CUDA_ERROR_INSUFFICIENT_DRIVER (35)", true},
		{"driver", 700, "cuda: cuX: CUDA_ERROR_ILLEGAL_ADDRESS (700)", false},
		{"driver", 12345, "cuda: cuX: unknown result (12345)", false},
		{"nvrtc", 6, "cuda: cuX: NVRTC_ERROR_COMPILATION (6)", false},
		{"cublas", 1, "cuda: cuX: CUBLAS_STATUS_NOT_INITIALIZED (1)", false},
	} {
		err := result(c.lib, "cuX", c.code)
		if err == nil || err.Error() != c.want || errors.Is(err, ErrNoGPU) != c.gpu {
			t.Errorf("result(%s, %d) = %v (no GPU: %v); want %s (%v)", c.lib, c.code, err, errors.Is(err, ErrNoGPU), c.want, c.gpu)
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != int(c.code) {
			t.Errorf("result(%s, %d) is not an *Error with its code", c.lib, c.code)
		}
	}
	if err := result("driver", "cuX", 0); err != nil {
		t.Errorf("result(0) = %v; want nil", err)
	}
}

// TestOpenWithoutLibraries checks Open and Probe with each library absent
// (whatever this machine has): the error matches ErrNoGPU and names the
// library, and Probe says which is missing.
func TestOpenWithoutLibraries(t *testing.T) {
	reset := func() {
		driverOnce, driverLoaded, driverErr, driverPath, driverVersion = sync.Once{}, nil, nil, "", 0
		nvrtcOnce, nvrtcLoaded, nvrtcErr = sync.Once{}, nil, nil
		cublasOnce, cublasLoaded, cublasErr = sync.Once{}, nil, nil
	}
	saved := [3][]string{driverNames, nvrtcNames, cublasNames}
	t.Cleanup(func() {
		driverNames, nvrtcNames, cublasNames = saved[0], saved[1], saved[2]
		reset()
	})
	t.Setenv("MEDUSA_CUDA_LIB", "")
	t.Setenv("CUDA_HOME", "")
	t.Setenv("CUDA_PATH", "")
	absent := []string{"libmedusa-absent.so.1"}
	driverNames = absent
	reset()
	if _, err := Open(0); !errors.Is(err, ErrNoGPU) || !strings.Contains(err.Error(), "cannot load the driver library") {
		t.Errorf("Open(0) without a driver = %v; want ErrNoGPU saying the driver library is missing", err)
	}
	if r := Probe(); r.Driver != "" || r.DriverErr == nil || !strings.Contains(r.String(), "driver:  none") {
		t.Errorf("Probe() without a driver = %+v", r)
	}
	driverNames, nvrtcNames, cublasNames = saved[0], absent, absent
	reset()
	if r := Probe(); !strings.Contains(r.String(), "nvrtc:   none") || !strings.Contains(r.String(), "cublas:  none") {
		t.Errorf("Probe() without NVRTC and cuBLAS = %s", r)
	}
}

// TestDeviceOpen opens the GPU of MEDUSA_TEST_DEVICE and reports it; it
// skips on the emulation.
func TestDeviceOpen(t *testing.T) {
	if os.Getenv("MEDUSA_TEST_DEVICE") == "" {
		t.Skip("MEDUSA_TEST_DEVICE is not set: no GPU to open")
	}
	dev := testDevice(t)
	t.Logf("%s\n%s", dev, Probe())
}

// TestChunking checks how rows are cut for two-pass sums.
func TestChunking(t *testing.T) {
	for _, c := range []struct{ outputs, m, nq, chunk int }{
		{10, 64, 1, 64},        // few rows: one pass
		{20000, 5000, 1, 5000}, // enough outputs: one pass
		{3, 1000, 16, 63},
		{1, 100000, 1563, 64},
		{8, 0, 1, 1},
		{2000, 1000, 9, 112},
	} {
		nq, chunk := chunking(c.outputs, c.m)
		if nq != c.nq || chunk != c.chunk {
			t.Errorf("chunking(%d, %d) = %d, %d; want %d, %d", c.outputs, c.m, nq, chunk, c.nq, c.chunk)
		}
		if c.m > 0 && ((nq-1)*chunk >= c.m || nq*chunk < c.m) {
			t.Errorf("chunking(%d, %d) = %d chunks of %d: they do not cover the rows exactly", c.outputs, c.m, nq, chunk)
		}
	}
}

// TestDeviceClosed checks a Device after Close: buffers freed with it,
// every other use an error.
func TestDeviceClosed(t *testing.T) {
	emulated(t) // skips without a C++ compiler
	d, err := openEmulated(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.Alloc(tensor.Float32, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Free(b); err != nil {
		t.Errorf("Free after Close = %v; want nil (released with the device)", err)
	}
	if _, err := d.Alloc(tensor.Float32, 4); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Alloc after Close = %v; want an error saying the device is closed", err)
	}
	if err := d.Upload(b, make([]float32, 4)); err == nil {
		t.Errorf("Upload after Close succeeded")
	}
	if _, err := d.Kernel(graph.OpSpec{Kind: "neg", Dtype: tensor.Float32, In: []tensor.Shape{{4}}, Dtypes: []tensor.Dtype{tensor.Float32}, Out: tensor.Shape{4}}); err == nil {
		t.Errorf("Kernel after Close succeeded")
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestSymbols checks that every function this package calls is exported
// by the libraries installed here (the names are read from the package's
// source, so a new call is checked as soon as it is written). A library
// that is not installed is skipped with a log line.
func TestSymbols(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	pattern := regexp.MustCompile(`"((?:cu|nvrtc|cublas)[A-Z]\w*)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range pattern.FindAllStringSubmatch(string(src), -1) {
			names[m[1]] = true
		}
	}
	if len(names) < 30 {
		t.Fatalf("found %d function names in the source; the pattern is broken", len(names))
	}
	libs := map[string][]string{"driver": driverNames, "nvrtc": nvrtcNames, "cublas": cublasNames}
	for _, kind := range []string{"driver", "nvrtc", "cublas"} {
		lib, err := open(kind, libs[kind])
		if err != nil {
			t.Logf("%s: not installed, its symbols are not checked: %v", kind, err)
			continue
		}
		checked := 0
		for name := range names {
			prefix := map[string]string{"driver": "cu", "nvrtc": "nvrtc", "cublas": "cublas"}[kind]
			if !strings.HasPrefix(name, prefix) || kind == "driver" && (strings.HasPrefix(name, "cublas") || strings.HasPrefix(name, "nvrtc")) {
				continue
			}
			if _, err := lib.sym(name); err != nil {
				t.Errorf("%s (%s): %v", kind, lib.path, err)
			}
			checked++
		}
		t.Logf("%s: %s exports all %d functions called", kind, lib.path, checked)
	}
}

// TestOptimKernels checks what optimisers ask of the device against the
// CPU's formulas: the count of non-finite elements, and Adam's and SGD's
// updates in float64 to the bit.
func TestOptimKernels(t *testing.T) {
	dev := testDevice(t)
	upload := func(x any, dt tensor.Dtype, n int) graph.Buffer {
		t.Helper()
		b, err := dev.Alloc(dt, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := dev.Upload(b, x); err != nil {
			t.Fatal(err)
		}
		return b
	}
	f64 := tensor.Float64
	// nonfinite, on sizes that take one and several chunks.
	for _, n := range []int{5, 3000} {
		for _, dt := range []tensor.Dtype{tensor.Float32, f64} {
			x := make([]float64, n)
			bad := 0
			for i := range x {
				x[i] = float64(i%7) - 3
				switch i % 97 {
				case 3:
					x[i], bad = math.NaN(), bad+1
				case 50:
					x[i], bad = math.Inf(1-2*(i%2)), bad+1
				}
			}
			var src any = x
			if dt == tensor.Float32 {
				src = toF32(x)
			}
			k, err := dev.Kernel(graph.OpSpec{Kind: "nonfinite", Dtype: f64, In: []tensor.Shape{{n}}, Dtypes: []tensor.Dtype{dt}, Out: tensor.ScalarShape()})
			if err != nil {
				t.Fatal(err)
			}
			out := upload([]float64{-1}, f64, 1)
			if err := k.Run(out, []graph.Buffer{upload(src, dt, n)}); err != nil {
				t.Fatal(err)
			}
			got := []float64{0}
			if err := dev.Download(got, out); err != nil {
				t.Fatal(err)
			}
			if int(got[0]) != bad {
				t.Errorf("nonfinite of %d %v with %d bad = %v", n, dt, bad, got[0])
			}
		}
	}
	// adam and sgd, float64, against the CPU's arithmetic.
	const n = 300
	rng := rand.New(rand.NewPCG(4, 4))
	vec := func(scale float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64() * scale
		}
		return v
	}
	x, g, m, v := vec(1), vec(0.1), vec(0.01), vec(0.001)
	for i := range v {
		v[i] = math.Abs(v[i])
	}
	lr, b1, b2, eps, step := 1e-3, 0.9, 0.999, 1e-8, 7.0
	c1, c2 := 1-math.Pow(b1, step), 1-math.Pow(b2, step)
	bx, bm, bv := upload(x, f64, n), upload(m, f64, n), upload(v, f64, n)
	s := tensor.Shape{n}
	k, err := dev.Kernel(graph.OpSpec{Kind: "adam", Dtype: f64, In: []tensor.Shape{s, s, s, {6}}, Dtypes: []tensor.Dtype{f64, f64, f64, f64}, Out: s})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Run(bx, []graph.Buffer{upload(g, f64, n), bm, bv, upload([]float64{lr, b1, b2, eps, c1, c2}, f64, 6)}); err != nil {
		t.Fatal(err)
	}
	gotX, gotM, gotV := make([]float64, n), make([]float64, n), make([]float64, n)
	for _, c := range []struct {
		dst []float64
		b   graph.Buffer
	}{{gotX, bx}, {gotM, bm}, {gotV, bv}} {
		if err := dev.Download(c.dst, c.b); err != nil {
			t.Fatal(err)
		}
	}
	// Bit for bit where Go and the C++ compiler round every product on its
	// own (amd64); within an ulp where they may fuse them (arm64).
	same := func(a, b float64) bool {
		if runtime.GOARCH == "amd64" {
			return a == b
		}
		return math.Abs(a-b) <= 2e-16*math.Max(math.Abs(a), math.Abs(b))
	}
	for j := range x {
		mj := b1*m[j] + (1-b1)*g[j]
		vj := b2*v[j] + (1-b2)*g[j]*g[j]
		xj := x[j] - lr*(mj/c1)/(math.Sqrt(vj/c2)+eps)
		if !same(gotX[j], xj) || !same(gotM[j], mj) || !same(gotV[j], vj) {
			t.Fatalf("adam element %d: x, m, v = %v, %v, %v; want %v, %v, %v", j, gotX[j], gotM[j], gotV[j], xj, mj, vj)
		}
	}
	for _, mu := range []float64{0, 0.9} {
		bx, bvel := upload(x, f64, n), upload(m, f64, n)
		in := []tensor.Shape{s, s, {2}}
		args := []graph.Buffer{upload(g, f64, n), bvel, upload([]float64{0.05, mu}, f64, 2)}
		momentum := 1
		if mu == 0 {
			in, args, momentum = []tensor.Shape{s, {2}}, []graph.Buffer{args[0], args[2]}, 0
		}
		k, err := dev.Kernel(graph.OpSpec{Kind: "sgd", Dtype: f64, In: in, Dtypes: []tensor.Dtype{f64, f64, f64}[:len(in)], Out: s, Attr: map[string]int{"momentum": momentum}})
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Run(bx, args); err != nil {
			t.Fatal(err)
		}
		if err := dev.Download(gotX, bx); err != nil {
			t.Fatal(err)
		}
		if err := dev.Download(gotV, bvel); err != nil {
			t.Fatal(err)
		}
		for j := range x {
			d := g[j]
			if mu != 0 {
				d = mu*m[j] + d
			}
			wantVel := m[j] // untouched without momentum
			if mu != 0 {
				wantVel = d
			}
			if want := x[j] - 0.05*d; !same(gotX[j], want) || !same(gotV[j], wantVel) {
				t.Fatalf("sgd (momentum %v) element %d: x, vel = %v, %v; want %v, %v", mu, j, gotX[j], gotV[j], want, wantVel)
			}
		}
	}
}

func toF32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// TestFreeMemory checks that a Device reports its free memory (on the
// emulation, the host's) so that graph.CompileOn can refuse a plan too
// large for it.
func TestFreeMemory(t *testing.T) {
	d := emulated(t)
	free, err := d.FreeMemory()
	if err != nil || free <= 0 {
		t.Fatalf("FreeMemory() = %d, %v; want a positive figure", free, err)
	}
}
