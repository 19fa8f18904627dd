package cuda

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/medusa-ml/medusa/graph"
	"gorgonia.org/tensor"
)

// Device is a CUDA GPU (or the CPU emulation of one, in tests) that runs a
// graph.Plan's ops. Open returns one. Its methods are not safe for
// concurrent use; separate Devices may be used concurrently.
type Device struct {
	// Graphs, when set, lets plans whose every op runs here record a step
	// as a CUDA graph and replay it (graph.Recorder). Open sets it unless
	// the environment variable MEDUSA_CUDA_GRAPHS is "off".
	Graphs bool

	b       backend
	name    string
	threads int  // per block
	blocks  int  // most blocks per launch
	live    int  // buffers allocated and not freed
	closed  bool // Close was called
}

// errClosed is the error of a Device used after Close.
func (d *Device) errClosed(what string) error {
	return fmt.Errorf("cuda: %s: %s is closed", what, d.name)
}

var (
	_ graph.Device   = (*Device)(nil)
	_ graph.Recorder = (*Device)(nil)

	_ graph.MemoryReporter = (*Device)(nil)
)

// Record implements graph.Recorder.
func (d *Device) Record() error {
	if d.closed {
		return d.errClosed("Record")
	}
	if !d.Graphs {
		return fmt.Errorf("cuda: graphs are off on %s: %w", d.name, graph.ErrUnsupported)
	}
	return d.b.capture()
}

// Stop implements graph.Recorder.
func (d *Device) Stop() (graph.Recording, error) {
	r, err := d.b.endCapture()
	if err != nil {
		return nil, err
	}
	return recording{r}, nil
}

// recording is a graph.Recording of a backend.
type recording struct{ r replayer }

func (r recording) Replay() error { return r.r.replay() }
func (r recording) Free() error   { return r.r.free() }

// String implements graph.Device.
func (d *Device) String() string { return d.name }

// buffer is device memory for n elements of dt.
type buffer struct {
	p  uintptr
	n  int
	dt tensor.Dtype
}

func (b *buffer) Len() int            { return b.n }
func (b *buffer) Dtype() tensor.Dtype { return b.dt }

// Alloc implements graph.Device.
func (d *Device) Alloc(dt tensor.Dtype, n int) (graph.Buffer, error) {
	if d.closed {
		return nil, d.errClosed("Alloc")
	}
	if n < 0 {
		return nil, fmt.Errorf("cuda: Alloc: %d elements", n)
	}
	switch dt {
	case tensor.Float32, tensor.Float64, tensor.Int:
	default:
		return nil, fmt.Errorf("cuda: Alloc: no %v buffers", dt)
	}
	bytes := max(n*int(dt.Size()), 8)
	p, err := d.b.alloc(bytes)
	if err != nil {
		return nil, fmt.Errorf("%w (allocating %d bytes on %s)", err, bytes, d.name)
	}
	d.live++
	return &buffer{p: p, n: n, dt: dt}, nil
}

// FreeMemory implements graph.MemoryReporter: the device memory not in
// use, in bytes.
func (d *Device) FreeMemory() (int64, error) {
	if d.closed {
		return 0, d.errClosed("FreeMemory")
	}
	free, _, err := d.b.memInfo()
	return free, err
}

// Free implements graph.Device.
func (d *Device) Free(b graph.Buffer) error {
	buf, ok := b.(*buffer)
	if !ok || buf.p == 0 {
		return fmt.Errorf("cuda: Free: not a live buffer of %s", d.name)
	}
	if d.closed {
		buf.p = 0 // released with the device
		return nil
	}
	err := d.b.free(buf.p)
	buf.p = 0
	d.live--
	return err
}

// hostBytes returns the address and size in bytes of a []float32,
// []float64 or []int of b's type and length.
func hostBytes(b *buffer, s any) (unsafe.Pointer, int, error) {
	var p unsafe.Pointer
	var n int
	var dt tensor.Dtype
	switch x := s.(type) {
	case []float32:
		n, dt = len(x), tensor.Float32
		if n > 0 {
			p = unsafe.Pointer(&x[0])
		}
	case []float64:
		n, dt = len(x), tensor.Float64
		if n > 0 {
			p = unsafe.Pointer(&x[0])
		}
	case []int:
		n, dt = len(x), tensor.Int
		if n > 0 {
			p = unsafe.Pointer(&x[0])
		}
	default:
		return nil, 0, fmt.Errorf("cuda: no copies of %T", s)
	}
	if n != b.n || dt != b.dt {
		return nil, 0, fmt.Errorf("cuda: copy of %d %v to or from a buffer of %d %v", n, dt, b.n, b.dt)
	}
	return p, n * int(dt.Size()), nil
}

// Upload implements graph.Device.
func (d *Device) Upload(b graph.Buffer, src any) error {
	if d.closed {
		return d.errClosed("Upload")
	}
	buf, ok := b.(*buffer)
	if !ok || buf.p == 0 {
		return fmt.Errorf("cuda: Upload: not a live buffer of %s", d.name)
	}
	p, n, err := hostBytes(buf, src)
	if err != nil || n == 0 {
		return err
	}
	return d.b.upload(buf.p, p, n)
}

// Download implements graph.Device.
func (d *Device) Download(dst any, b graph.Buffer) error {
	if d.closed {
		return d.errClosed("Download")
	}
	buf, ok := b.(*buffer)
	if !ok || buf.p == 0 {
		return fmt.Errorf("cuda: Download: not a live buffer of %s", d.name)
	}
	p, n, err := hostBytes(buf, dst)
	if err != nil || n == 0 {
		return err
	}
	return d.b.download(p, buf.p, n)
}

// Sync waits for every queued kernel.
func (d *Device) Sync() error {
	if d.closed {
		return d.errClosed("Sync")
	}
	return d.b.sync()
}

// Close releases the device: its stream, cuBLAS handle, modules and its
// hold on the primary context. Buffers still allocated are released with
// the context; freeing them afterwards does nothing, and any other use is
// an error.
func (d *Device) Close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	return d.b.close()
}

// arg is one argument of a launch: a constant, argument i's buffer
// (from ≥ 0), or the output's (from == -1).
type arg struct {
	from int
	val  uint64
}

func c(v int) arg { return arg{from: -2, val: uint64(v)} }

var out = arg{from: -1}

func in(i int) arg { return arg{from: i} }

// realArg passes x as the bits of a double (read with real() in a kernel).
func realArg(x float64) arg { return arg{from: -2, val: math.Float64bits(x)} }

// launch is a Kernel that runs one CUDA kernel over n threads' work.
type launch struct {
	d      *Device
	fn     uintptr
	blocks int
	tmpl   []arg
	args   []uint64 // filled in by Run; on the heap for the driver
}

// Run implements graph.Kernel.
func (k *launch) Run(o graph.Buffer, ins []graph.Buffer) error {
	for i, a := range k.tmpl {
		switch {
		case a.from == -1:
			k.args[i] = uint64(o.(*buffer).p)
		case a.from >= 0:
			if a.from >= len(ins) {
				return fmt.Errorf("cuda: kernel wants argument %d of %d", a.from, len(ins))
			}
			k.args[i] = uint64(ins[a.from].(*buffer).p)
		default:
			k.args[i] = a.val
		}
	}
	return k.d.b.launch(k.fn, k.blocks, k.d.threads, k.args)
}

// kernel prepares name (without its dtype suffix) over work independent
// items.
func (d *Device) kernel(name string, dt tensor.Dtype, work int, args ...arg) (graph.Kernel, error) {
	fn, err := d.b.function(name + "_" + suffix(dt))
	if err != nil {
		return nil, err
	}
	blocks := min(max((work+d.threads-1)/d.threads, 1), d.blocks)
	return &launch{d: d, fn: fn, blocks: blocks, tmpl: args, args: make([]uint64, len(args))}, nil
}

// unsupported is the error for an op the device does not run.
func unsupported(op graph.OpSpec, why string) error {
	return fmt.Errorf("cuda: %s: %s: %w", op.Kind, why, graph.ErrUnsupported)
}

// prod is the product of s's sizes.
func prod(s []int) int {
	p := 1
	for _, d := range s {
		p *= d
	}
	return p
}

// Kernel implements graph.Device.
func (d *Device) Kernel(op graph.OpSpec) (graph.Kernel, error) {
	if d.closed {
		return nil, d.errClosed("Kernel")
	}
	switch op.Kind {
	case "poolargmax":
		return d.imageKernel(op) // int indices of float images: its own checks
	case "nonfinite", "adam", "sgd":
		return d.optimKernel(op)
	}
	if op.Dtype != tensor.Float32 && op.Dtype != tensor.Float64 {
		return nil, unsupported(op, fmt.Sprintf("%v results", op.Dtype))
	}
	for i, dt := range op.Dtypes {
		if dt != op.Dtype && dt != tensor.Int {
			return nil, unsupported(op, fmt.Sprintf("argument %d is %v, result %v", i, dt, op.Dtype))
		}
	}
	dt, n := op.Dtype, op.Out.TotalSize()
	switch op.Kind {
	case "add", "sub", "mul", "div":
		stride := func(i int) int {
			if op.In[i].TotalSize() == 1 && n > 1 {
				return 0
			}
			return 1
		}
		for i := range 2 {
			if s := op.In[i].TotalSize(); s != n && s != 1 {
				return nil, unsupported(op, "shapes differ")
			}
		}
		return d.kernel(op.Kind, dt, n, c(n), in(0), c(stride(0)), in(1), c(stride(1)), out)
	case "neg", "square", "sqrt", "exp", "log", "tanh", "sigmoid", "abs", "inverse", "relu":
		return d.kernel(op.Kind, dt, n, c(n), in(0), out)
	case "relumask":
		return d.kernel("relumask", dt, n, c(n), in(0), in(1), out)
	case "broadcast":
		axis, s := op.Attr["axis"], op.In[0]
		outer, inner := prod(s[:axis]), prod(s[axis:])
		return d.kernel("broadcast", dt, n, c(outer), c(op.Attr["n"]), c(inner), in(0), out)
	case "sumaxis":
		axis, s := op.Attr["axis"], op.In[0]
		return d.sumAxis(dt, prod(s[:axis]), s[axis], prod(s[axis+1:]))
	case "logsoftmax":
		s := op.In[0]
		last := s[len(s)-1]
		if len(s) == 0 || last == 0 {
			return nil, unsupported(op, "empty rows")
		}
		return d.kernel("logsoftmax", dt, n/last, c(n/last), c(last), in(0), out)
	case "pick":
		return d.kernel("pick", dt, n, c(n), c(op.Attr["classes"]), in(0), in(1), out)
	case "scatter":
		rows := op.In[0].TotalSize()
		return d.kernel("scatter", dt, n, c(rows), c(op.Attr["classes"]), in(0), in(1), out)
	case "matmul":
		return d.matmul(op)
	}
	return d.imageKernel(op)
}

// sumAxis prepares the sum over the middle axis of x [outer, n, inner],
// in two passes when the outputs are few and the rows many (reduce.cu).
func (d *Device) sumAxis(dt tensor.Dtype, outer, n, inner int) (graph.Kernel, error) {
	nq, chunk := chunking(outer*inner, n)
	if nq == 1 {
		return d.kernel("sumaxis", dt, outer*inner, c(outer), c(n), c(inner), in(0), out)
	}
	p := &passes{d: d}
	part, err := p.alloc(dt, outer*nq*inner)
	if err != nil {
		return nil, err
	}
	p.add(&err, "sumaxis_part", dt, outer*nq*inner, c(outer), c(n), c(inner), c(nq), c(chunk), in(0), temp(part, 0))
	p.add(&err, "sumaxis", dt, outer*inner, c(outer), c(nq), c(inner), temp(part, 0), out)
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// gemm is a Kernel running a batched matrix product on cuBLAS.
type gemm struct {
	d                 *Device
	dt                tensor.Dtype
	transA, transB    bool
	m, n, k           int
	lda, ldb, ldc     int
	sa, sb, sc, batch int
}

// matmul maps a row-major batched product C = op(A) op(B) onto cuBLAS's
// column-major gemm: a row-major matrix is its transpose in column-major
// order, so Cᵀ = op(B)ᵀ op(A)ᵀ is computed with B first.
func (d *Device) matmul(op graph.OpSpec) (graph.Kernel, error) {
	as, bs := op.In[0], op.In[1]
	if len(as) != 3 || len(bs) != 3 || len(op.Out) != 3 {
		return nil, unsupported(op, "not a batch of matrices")
	}
	if as[0] != bs[0] {
		return nil, unsupported(op, "batch sizes differ")
	}
	ta, tb := op.Attr["transA"] == 1, op.Attr["transB"] == 1
	m, n := op.Out[1], op.Out[2]
	k := as[2]
	if ta {
		k = as[1]
	}
	return &gemm{d: d, dt: op.Dtype, transA: tb, transB: ta, m: n, n: m, k: k,
		lda: bs[2], ldb: as[2], ldc: n, sa: bs[1] * bs[2], sb: as[1] * as[2], sc: m * n, batch: as[0]}, nil
}

// Run implements graph.Kernel.
func (g *gemm) Run(o graph.Buffer, ins []graph.Buffer) error {
	if len(ins) != 2 {
		return errors.New("cuda: matmul wants two arguments")
	}
	a, b := ins[1].(*buffer), ins[0].(*buffer) // Cᵀ = op(B)ᵀ op(A)ᵀ
	if g.m == 0 || g.n == 0 || g.batch == 0 {
		return nil
	}
	if g.k == 0 {
		return g.d.fill(o.(*buffer), 0)
	}
	return g.d.b.gemm(g.dt, g.transA, g.transB, g.m, g.n, g.k, a.p, g.lda, g.sa, b.p, g.ldb, g.sb, o.(*buffer).p, g.ldc, g.sc, g.batch)
}

// fill sets every element of b to v.
func (d *Device) fill(b *buffer, v float64) error {
	k, err := d.kernel("fill", b.dt, b.n, c(b.n), realArg(v), out)
	if err != nil {
		return err
	}
	return k.Run(b, nil)
}

// optimKernel prepares what optimisers ask of the device (optim.cu): the
// count of non-finite gradient elements and the Adam and SGD updates, whose
// output is the parameter, updated in place.
func (d *Device) optimKernel(op graph.OpSpec) (graph.Kernel, error) {
	f64 := tensor.Float64
	if len(op.Dtypes) != len(op.In) || len(op.In) == 0 {
		return nil, unsupported(op, "argument types and shapes do not match")
	}
	switch op.Kind {
	case "nonfinite":
		if len(op.In) != 1 || op.Dtype != f64 || !op.Out.IsScalar() && op.Out.TotalSize() != 1 {
			return nil, unsupported(op, "want one argument and a float64 scalar")
		}
		dt, n := op.Dtypes[0], op.In[0].TotalSize()
		if dt != tensor.Float32 && dt != f64 {
			return nil, unsupported(op, fmt.Sprintf("%v values", dt))
		}
		nq, chunk := chunking(1, n)
		p := &passes{d: d}
		part, err := p.alloc(f64, nq)
		if err != nil {
			return nil, err
		}
		p.add(&err, "nonfinite_part", dt, nq, c(n), c(nq), c(chunk), in(0), temp(part, 0))
		p.add(&err, "sumaxis", f64, 1, c(1), c(nq), c(1), temp(part, 0), out)
		if err != nil {
			p.Close()
			return nil, err
		}
		return p, nil
	case "adam", "sgd":
		dt, n := op.Dtype, op.Out.TotalSize()
		want := []tensor.Dtype{dt, f64, f64, f64} // g, m, v, h
		hyper, momentum := 6, op.Attr["momentum"]
		if momentum != 0 && momentum != 1 {
			return nil, unsupported(op, fmt.Sprintf("momentum=%d, want 0 or 1", momentum))
		}
		if op.Kind == "sgd" {
			want, hyper = want[:2+momentum], 2 // g, vel (with momentum), h
		}
		if err := argTypes(op, want...); err != nil || dt != tensor.Float32 && dt != f64 {
			return nil, unsupported(op, "want a float parameter, its gradient and float64 state")
		}
		for i, s := range op.In {
			if size := s.TotalSize(); i < len(op.In)-1 && size != n || i == len(op.In)-1 && size != hyper {
				return nil, unsupported(op, fmt.Sprintf("argument %d has %d elements", i, size))
			}
		}
		if op.Kind == "adam" {
			return d.kernel("adam", dt, n, c(n), in(0), in(1), in(2), in(3), out)
		}
		if momentum == 0 {
			return d.kernel("sgd", dt, n, c(n), c(0), in(0), in(0), in(1), out) // vel unused
		}
		return d.kernel("sgd", dt, n, c(n), c(1), in(0), in(1), in(2), out)
	}
	return nil, unsupported(op, "no kernel")
}
