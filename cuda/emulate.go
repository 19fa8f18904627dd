package cuda

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/medusa-ml/medusa/graph"
	"gorgonia.org/tensor"
)

// The CPU emulation: the kernels' CUDA C compiled by the host's C++
// compiler against a small header that stands in for the CUDA built-ins,
// and run one thread after another. The kernels are written so that this
// is exact (independent outputs, grid-stride loops, no shared memory), so
// a Device on the emulation checks the kernels' arithmetic and the host
// side's launches, buffers and cuBLAS calls without a GPU.

// emuShim replaces CUDA's built-ins for the host compiler.
const emuShim = `#include <math.h>
#include <string.h>
struct emu_dim3 { unsigned long long x, y, z; };
extern "C" emu_dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
static inline double __longlong_as_double(long long b) { double d; memcpy(&d, &b, 8); return d; }
`

// emuLauncher calls a kernel for every thread of a launch.
const emuLauncher = `#include <string.h>
struct emu_dim3 { unsigned long long x, y, z; };
extern "C" { emu_dim3 threadIdx, blockIdx, blockDim, gridDim; }
typedef unsigned long long U;
extern "C" void emu_launch(void *fn, U blocks, U threads, const U *a, U n) {
	gridDim.x = blocks; blockDim.x = threads;
	gridDim.y = gridDim.z = blockDim.y = blockDim.z = 1;
	for (U b = 0; b < blocks; b++) for (U t = 0; t < threads; t++) {
		blockIdx.x = b; threadIdx.x = t;
		switch (n) {
		case 0: ((void (*)())fn)(); break;
		case 1: ((void (*)(U))fn)(a[0]); break;
		case 2: ((void (*)(U,U))fn)(a[0],a[1]); break;
		case 3: ((void (*)(U,U,U))fn)(a[0],a[1],a[2]); break;
		case 4: ((void (*)(U,U,U,U))fn)(a[0],a[1],a[2],a[3]); break;
		case 5: ((void (*)(U,U,U,U,U))fn)(a[0],a[1],a[2],a[3],a[4]); break;
		case 6: ((void (*)(U,U,U,U,U,U))fn)(a[0],a[1],a[2],a[3],a[4],a[5]); break;
		case 7: ((void (*)(U,U,U,U,U,U,U))fn)(a[0],a[1],a[2],a[3],a[4],a[5],a[6]); break;
		case 8: ((void (*)(U,U,U,U,U,U,U,U))fn)(a[0],a[1],a[2],a[3],a[4],a[5],a[6],a[7]); break;
		case 9: ((void (*)(U,U,U,U,U,U,U,U,U))fn)(a[0],a[1],a[2],a[3],a[4],a[5],a[6],a[7],a[8]); break;
		case 10: ((void (*)(U,U,U,U,U,U,U,U,U,U))fn)(a[0],a[1],a[2],a[3],a[4],a[5],a[6],a[7],a[8],a[9]); break;
		case 11: ((void (*)(U,U,U,U,U,U,U,U,U,U,U))fn)(a[0],a[1],a[2],a[3],a[4],a[5],a[6],a[7],a[8],a[9],a[10]); break;
		case 12: ((void (*)(U,U,U,U,U,U,U,U,U,U,U,U))fn)(a[0],a[1],a[2],a[3],a[4],a[5],a[6],a[7],a[8],a[9],a[10],a[11]); break;
		case 13: ((void (*)(U,U,U,U,U,U,U,U,U,U,U,U,U))fn)(a[0],a[1],a[2],a[3],a[4],a[5],a[6],a[7],a[8],a[9],a[10],a[11],a[12]); break;
		case 14: ((void (*)(U,U,U,U,U,U,U,U,U,U,U,U,U,U))fn)(a[0],a[1],a[2],a[3],a[4],a[5],a[6],a[7],a[8],a[9],a[10],a[11],a[12],a[13]); break;
		default: return;
		}
	}
}
`

// emuMaxArgs is the most arguments emu_launch passes.
const emuMaxArgs = 14

// emulator is a backend on the CPU; see above.
type emulator struct {
	lib   uintptr
	entry uintptr              // emu_launch
	mem   map[uintptr][]uint64 // allocations, kept alive here
	sms   int
	log   []func() // recorded launches, while capturing
	rec   bool
}

// newEmulator compiles the kernels with the C++ compiler $CXX (g++ by
// default) into dir and loads them.
func newEmulator(dir string) (*emulator, error) {
	cxx := os.Getenv("CXX")
	if cxx == "" {
		cxx = "g++"
	}
	if _, err := exec.LookPath(cxx); err != nil {
		return nil, fmt.Errorf("cuda: the CPU emulation needs a C++ compiler: %v", err)
	}
	files := []string{filepath.Join(dir, "launch.cc")}
	if err := os.WriteFile(files[0], []byte(emuLauncher), 0o644); err != nil {
		return nil, err
	}
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		src, err := Source(dt)
		if err != nil {
			return nil, err
		}
		f := filepath.Join(dir, "kernels_"+suffix(dt)+".cc")
		if err := os.WriteFile(f, []byte(emuShim+src), 0o644); err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	so := filepath.Join(dir, "kernels.so")
	args := append([]string{"-O1", "-shared", "-fPIC", "-w", "-o", so}, files...)
	if out, err := exec.Command(cxx, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cuda: compiling the kernels for the CPU emulation: %v\n%s", err, out)
	}
	h, err := purego.Dlopen(so, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, err
	}
	launch, err := purego.Dlsym(h, "emu_launch")
	if err != nil {
		return nil, err
	}
	return &emulator{lib: h, entry: launch, mem: make(map[uintptr][]uint64), sms: 2}, nil
}

// capturing is the error of a call that a CUDA stream capture forbids.
func (e *emulator) capturing(what string) error {
	if e.rec {
		return fmt.Errorf("cuda: emulation: %s while capturing (CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED)", what)
	}
	return nil
}

// memInfo says what the host has: the emulation's memory is the host's.
func (e *emulator) memInfo() (free, total int64, err error) {
	avail, ok := graph.AvailableMemory()
	if !ok {
		avail = 1 << 62
	}
	return avail, avail, nil
}

func (e *emulator) alloc(bytes int) (uintptr, error) {
	if err := e.capturing("alloc"); err != nil {
		return 0, err
	}
	m := make([]uint64, (bytes+7)/8)
	for i := range m {
		m[i] = 0x7ff4dead7ff4dead // signalling NaNs: a kernel that reads unwritten memory shows it
	}
	p := uintptr(unsafe.Pointer(&m[0]))
	e.mem[p] = m
	return p, nil
}

func (e *emulator) free(p uintptr) error {
	if err := e.capturing("free"); err != nil {
		return err
	}
	if _, ok := e.mem[p]; !ok {
		return fmt.Errorf("cuda: emulation: free of %#x, which is not allocated", p)
	}
	delete(e.mem, p)
	return nil
}

// bytesAt returns the first n bytes of the allocation at p.
func (e *emulator) bytesAt(p uintptr, n int) ([]byte, error) {
	m, ok := e.mem[p]
	if !ok || n > 8*len(m) {
		return nil, fmt.Errorf("cuda: emulation: %d bytes at %#x, which is not an allocation that large", n, p)
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&m[0])), 8*len(m))[:n], nil
}

// floatsAt returns the allocation at p as a []F.
func floatsAt[F float32 | float64](e *emulator, p uintptr) ([]F, error) {
	m, ok := e.mem[p]
	if !ok {
		return nil, fmt.Errorf("cuda: emulation: %#x is not an allocation", p)
	}
	return unsafe.Slice((*F)(unsafe.Pointer(&m[0])), 8*len(m)/int(unsafe.Sizeof(F(0)))), nil
}

func (e *emulator) upload(dst uintptr, src unsafe.Pointer, bytes int) error {
	if err := e.capturing("a copy from pageable memory"); err != nil {
		return err
	}
	b, err := e.bytesAt(dst, bytes)
	if err != nil {
		return err
	}
	copy(b, unsafe.Slice((*byte)(src), bytes))
	return nil
}

func (e *emulator) download(dst unsafe.Pointer, src uintptr, bytes int) error {
	if err := e.capturing("a copy to pageable memory"); err != nil {
		return err
	}
	b, err := e.bytesAt(src, bytes)
	if err != nil {
		return err
	}
	copy(unsafe.Slice((*byte)(dst), bytes), b)
	return nil
}

func (e *emulator) function(name string) (uintptr, error) {
	f, err := purego.Dlsym(e.lib, name)
	if err != nil {
		return 0, fmt.Errorf("cuda: no kernel %s in the emulation: %v", name, err)
	}
	return f, nil
}

func (e *emulator) launch(fn uintptr, blocks, threads int, args []uint64) error {
	if len(args) > emuMaxArgs {
		return fmt.Errorf("cuda: emulation: %d kernel arguments, at most %d", len(args), emuMaxArgs)
	}
	if e.rec {
		// As cuLaunchKernel does when capturing, keep the arguments' values.
		args := append([]uint64(nil), args...)
		e.log = append(e.log, func() { e.run(fn, blocks, threads, args) })
		return nil
	}
	e.run(fn, blocks, threads, args)
	return nil
}

// run runs a launch.
func (e *emulator) run(fn uintptr, blocks, threads int, args []uint64) {
	a := uintptr(0)
	if len(args) > 0 {
		a = uintptr(unsafe.Pointer(&args[0]))
	}
	purego.SyscallN(e.entry, fn, uintptr(blocks), uintptr(threads), a, uintptr(len(args)))
	runtime.KeepAlive(args)
}

// gemm follows cuBLAS: column-major matrices, element (i, j) of a matrix
// with leading dimension ld at i + j·ld.
func (e *emulator) gemm(dt tensor.Dtype, transA, transB bool, m, n, k int, a uintptr, lda, strideA int, b uintptr, ldb, strideB int, c uintptr, ldc, strideC, batch int) error {
	if e.rec {
		e.log = append(e.log, func() {
			e.rec = false
			e.gemm(dt, transA, transB, m, n, k, a, lda, strideA, b, ldb, strideB, c, ldc, strideC, batch)
		})
		return nil
	}
	switch dt {
	case tensor.Float32:
		return emuGemm[float32](e, transA, transB, m, n, k, a, lda, strideA, b, ldb, strideB, c, ldc, strideC, batch)
	case tensor.Float64:
		return emuGemm[float64](e, transA, transB, m, n, k, a, lda, strideA, b, ldb, strideB, c, ldc, strideC, batch)
	}
	return fmt.Errorf("cuda: emulation: gemm of %v", dt)
}

func emuGemm[F float32 | float64](e *emulator, transA, transB bool, m, n, k int, a uintptr, lda, strideA int, b uintptr, ldb, strideB int, c uintptr, ldc, strideC, batch int) error {
	A, err := floatsAt[F](e, a)
	if err != nil {
		return err
	}
	B, err := floatsAt[F](e, b)
	if err != nil {
		return err
	}
	C, err := floatsAt[F](e, c)
	if err != nil {
		return err
	}
	for s := range batch {
		pa, pb, pc := A[s*strideA:], B[s*strideB:], C[s*strideC:]
		for j := range n {
			for i := range m {
				var sum F
				for l := range k {
					ai, bi := i+l*lda, l+j*ldb // op(A)(i,l), op(B)(l,j)
					if transA {
						ai = l + i*lda
					}
					if transB {
						bi = j + l*ldb
					}
					sum += pa[ai] * pb[bi]
				}
				pc[i+j*ldc] = sum
			}
		}
	}
	return nil
}

func (e *emulator) sync() error { return e.capturing("a synchronisation") }

func (e *emulator) capture() error {
	if e.rec {
		return fmt.Errorf("cuda: emulation: already capturing")
	}
	e.rec, e.log = true, nil
	return nil
}

func (e *emulator) endCapture() (replayer, error) {
	if !e.rec {
		return nil, fmt.Errorf("cuda: emulation: not capturing")
	}
	e.rec = false
	return &emuRecording{log: e.log}, nil
}

// emuRecording replays recorded launches in order.
type emuRecording struct{ log []func() }

func (r *emuRecording) replay() error {
	for _, f := range r.log {
		f()
	}
	return nil
}

func (r *emuRecording) free() error { r.log = nil; return nil }
func (e *emulator) close() error    { e.mem = nil; return nil }
