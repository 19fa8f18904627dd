package cuda

import (
	"fmt"
	"runtime"
	"unsafe"

	"gorgonia.org/tensor"
)

// backend is what a Device needs of the GPU: memory, copies, kernel
// launches and batched matrix products. gpu is the real one; the CPU
// emulation used by the tests is another.
type backend interface {
	alloc(bytes int) (uintptr, error)
	free(p uintptr) error
	upload(dst uintptr, src unsafe.Pointer, bytes int) error
	download(dst unsafe.Pointer, src uintptr, bytes int) error
	// function returns the kernel called name ("add_f32").
	function(name string) (uintptr, error)
	// launch runs fn on blocks×threads threads with 8-byte arguments.
	launch(fn uintptr, blocks, threads int, args []uint64) error
	// gemm is cuBLAS's strided batched gemm (column-major): for each of
	// batch matrices, C = op(A) op(B), op(A) m×k, op(B) k×n.
	gemm(dt tensor.Dtype, transA, transB bool, m, n, k int, a uintptr, lda int, strideA int, b uintptr, ldb int, strideB int, c uintptr, ldc int, strideC int, batch int) error
	sync() error
	close() error
	// memInfo returns the free and total device memory, in bytes.
	memInfo() (free, total int64, err error)
	// capture starts recording the launches and gemms; endCapture stops
	// and returns the recording.
	capture() error
	endCapture() (replayer, error)
}

// replayer is a recording of launches and gemms.
type replayer interface {
	replay() error
	free() error
}

// gpu is a backend on one CUDA device, in its primary context.
type gpu struct {
	drv     *driver
	blas    *library
	dev     int32
	ctx     uintptr
	stream  uintptr
	handle  uintptr // cuBLAS
	modules []uintptr
	funcs   map[string]uintptr
	params  []uintptr // launch's argument pointers, reused
	work    uintptr   // cuBLAS's workspace, so that captured gemms allocate nothing
}

// cublasWorkspace is the size of the workspace given to cuBLAS: with its
// own, cuBLAS records allocations into captured graphs or fails the
// capture.
const cublasWorkspace = 32 << 20

// newGPU retains device ordinal's primary context, creates a stream and a
// cuBLAS handle on it and loads the kernels' modules (PTX or cubin images).
func newGPU(drv *driver, blas *library, ordinal int, images [][]byte) (*gpu, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	g := &gpu{drv: drv, blas: blas, funcs: make(map[string]uintptr)}
	if err := drv.call("cuDeviceGet", uintptr(unsafe.Pointer(&g.dev)), uintptr(ordinal)); err != nil {
		return nil, err
	}
	if err := drv.call("cuDevicePrimaryCtxRetain", uintptr(unsafe.Pointer(&g.ctx)), uintptr(g.dev)); err != nil {
		return nil, err
	}
	if err := g.setUp(images); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

// setUp creates the stream, the cuBLAS handle and its workspace, and loads
// the modules, in the retained context.
func (g *gpu) setUp(images [][]byte) error {
	drv, blas := g.drv, g.blas
	if err := drv.call("cuCtxSetCurrent", g.ctx); err != nil {
		return err
	}
	if err := drv.call("cuStreamCreate", uintptr(unsafe.Pointer(&g.stream)), 1); err != nil { // CU_STREAM_NON_BLOCKING
		return err
	}
	if err := blas.call("cublasCreate_v2", uintptr(unsafe.Pointer(&g.handle))); err != nil {
		return err
	}
	if err := blas.call("cublasSetStream_v2", g.handle, g.stream); err != nil {
		return err
	}
	if _, err := blas.sym("cublasSetWorkspace_v2"); err == nil { // cuBLAS 11.4 and later
		if err := drv.call("cuMemAlloc_v2", uintptr(unsafe.Pointer(&g.work)), cublasWorkspace); err != nil {
			return err
		}
		if err := blas.call("cublasSetWorkspace_v2", g.handle, g.work, cublasWorkspace); err != nil {
			return err
		}
	}
	for _, im := range images {
		img := append(append([]byte(nil), im...), 0)
		var mod uintptr
		err := drv.call("cuModuleLoadData", uintptr(unsafe.Pointer(&mod)), uintptr(unsafe.Pointer(&img[0])))
		runtime.KeepAlive(img)
		if err != nil {
			return fmt.Errorf("%w (loading the kernels' module)", err)
		}
		g.modules = append(g.modules, mod)
	}
	return nil
}

// current pins the calling goroutine to its thread and makes the context
// current there; call the returned function when done.
func (g *gpu) current() (func(), error) {
	runtime.LockOSThread()
	if err := g.drv.call("cuCtxSetCurrent", g.ctx); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	return runtime.UnlockOSThread, nil
}

func (g *gpu) alloc(bytes int) (uintptr, error) {
	done, err := g.current()
	if err != nil {
		return 0, err
	}
	defer done()
	var p uintptr
	err = g.drv.call("cuMemAlloc_v2", uintptr(unsafe.Pointer(&p)), uintptr(bytes))
	return p, err
}

func (g *gpu) memInfo() (free, total int64, err error) {
	done, err := g.current()
	if err != nil {
		return 0, 0, err
	}
	defer done()
	var f, t uint64
	err = g.drv.call("cuMemGetInfo_v2", uintptr(unsafe.Pointer(&f)), uintptr(unsafe.Pointer(&t)))
	return int64(f), int64(t), err
}

func (g *gpu) free(p uintptr) error {
	done, err := g.current()
	if err != nil {
		return err
	}
	defer done()
	return g.drv.call("cuMemFree_v2", p)
}

func (g *gpu) upload(dst uintptr, src unsafe.Pointer, bytes int) error {
	done, err := g.current()
	if err != nil {
		return err
	}
	defer done()
	// From pageable memory the call returns once src has been staged, so
	// the caller may reuse src at once.
	return g.drv.call("cuMemcpyHtoDAsync_v2", dst, uintptr(src), uintptr(bytes), g.stream)
}

func (g *gpu) download(dst unsafe.Pointer, src uintptr, bytes int) error {
	done, err := g.current()
	if err != nil {
		return err
	}
	defer done()
	if err := g.drv.call("cuMemcpyDtoHAsync_v2", uintptr(dst), src, uintptr(bytes), g.stream); err != nil {
		return err
	}
	return g.drv.call("cuStreamSynchronize", g.stream)
}

func (g *gpu) function(name string) (uintptr, error) {
	if f, ok := g.funcs[name]; ok {
		return f, nil
	}
	done, err := g.current()
	if err != nil {
		return 0, err
	}
	defer done()
	cname, p := cstring(name)
	defer runtime.KeepAlive(cname)
	for _, m := range g.modules {
		var f uintptr
		if g.drv.call("cuModuleGetFunction", uintptr(unsafe.Pointer(&f)), m, p) == nil {
			g.funcs[name] = f
			return f, nil
		}
	}
	return 0, fmt.Errorf("cuda: no kernel %s in the loaded modules", name)
}

func (g *gpu) launch(fn uintptr, blocks, threads int, args []uint64) error {
	done, err := g.current()
	if err != nil {
		return err
	}
	defer done()
	g.params = g.params[:0]
	for i := range args {
		g.params = append(g.params, uintptr(unsafe.Pointer(&args[i])))
	}
	var params uintptr
	if len(g.params) > 0 {
		params = uintptr(unsafe.Pointer(&g.params[0]))
	}
	err = g.drv.call("cuLaunchKernel", fn, uintptr(blocks), 1, 1, uintptr(threads), 1, 1, 0, g.stream, params, 0)
	runtime.KeepAlive(args)
	return err
}

func (g *gpu) gemm(dt tensor.Dtype, transA, transB bool, m, n, k int, a uintptr, lda, strideA int, b uintptr, ldb, strideB int, c uintptr, ldc, strideC, batch int) error {
	done, err := g.current()
	if err != nil {
		return err
	}
	defer done()
	op := func(t bool) uintptr {
		if t {
			return 1 // CUBLAS_OP_T
		}
		return 0
	}
	call := "cublasSgemmStridedBatched"
	var alpha, beta unsafe.Pointer
	if dt == tensor.Float64 {
		call = "cublasDgemmStridedBatched"
		one, zero := 1.0, 0.0
		alpha, beta = unsafe.Pointer(&one), unsafe.Pointer(&zero)
	} else {
		one, zero := float32(1), float32(0)
		alpha, beta = unsafe.Pointer(&one), unsafe.Pointer(&zero)
	}
	return g.blas.call(call, g.handle, op(transA), op(transB), uintptr(m), uintptr(n), uintptr(k),
		uintptr(alpha), a, uintptr(lda), uintptr(strideA), b, uintptr(ldb), uintptr(strideB),
		uintptr(beta), c, uintptr(ldc), uintptr(strideC), uintptr(batch))
}

func (g *gpu) sync() error {
	done, err := g.current()
	if err != nil {
		return err
	}
	defer done()
	return g.drv.call("cuStreamSynchronize", g.stream)
}

func (g *gpu) close() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	if g.ctx != 0 {
		keep(g.drv.call("cuCtxSetCurrent", g.ctx))
	}
	if g.handle != 0 {
		keep(g.blas.call("cublasDestroy_v2", g.handle))
		g.handle = 0
	}
	if g.work != 0 {
		keep(g.drv.call("cuMemFree_v2", g.work))
		g.work = 0
	}
	for _, m := range g.modules {
		keep(g.drv.call("cuModuleUnload", m))
	}
	g.modules = nil
	if g.stream != 0 {
		keep(g.drv.call("cuStreamDestroy_v2", g.stream))
		g.stream = 0
	}
	if g.ctx != 0 {
		keep(g.drv.call("cuDevicePrimaryCtxRelease_v2", uintptr(g.dev)))
		g.ctx = 0
	}
	return first
}

// Stream capture modes (CUstreamCaptureMode).
const captureRelaxed = 2

// capture starts recording the stream's work into a CUDA graph. The mode
// is relaxed: the goroutine may move between OS threads while recording.
func (g *gpu) capture() error {
	done, err := g.current()
	if err != nil {
		return err
	}
	defer done()
	return g.drv.call("cuStreamBeginCapture_v2", g.stream, captureRelaxed)
}

func (g *gpu) endCapture() (replayer, error) {
	done, err := g.current()
	if err != nil {
		return nil, err
	}
	defer done()
	var graph, exec uintptr
	if err := g.drv.call("cuStreamEndCapture", g.stream, uintptr(unsafe.Pointer(&graph))); err != nil {
		return nil, err
	}
	defer g.drv.call("cuGraphDestroy", graph)
	if err := g.drv.call("cuGraphInstantiateWithFlags", uintptr(unsafe.Pointer(&exec)), graph, 0); err != nil {
		return nil, err
	}
	return &cudaGraph{g: g, exec: exec}, nil
}

// cudaGraph is an instantiated CUDA graph.
type cudaGraph struct {
	g    *gpu
	exec uintptr
}

func (c *cudaGraph) replay() error {
	done, err := c.g.current()
	if err != nil {
		return err
	}
	defer done()
	return c.g.drv.call("cuGraphLaunch", c.exec, c.g.stream)
}

func (c *cudaGraph) free() error {
	if c.exec == 0 {
		return nil
	}
	done, err := c.g.current()
	if err != nil {
		return err
	}
	defer done()
	err = c.g.drv.call("cuGraphExecDestroy", c.exec)
	c.exec = 0
	return err
}
