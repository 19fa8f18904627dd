package cuda

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Shared libraries tried, newest first. The driver keeps one soname; NVRTC
// and cuBLAS carry their major version (NVRTC 11.x is libnvrtc.so.11.2).
var (
	driverNames = []string{"libcuda.so.1", "libcuda.so"}
	nvrtcNames  = []string{"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"}
	cublasNames = []string{"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"}
)

// searchDirs are the folders tried, after the loader's own path, for
// libraries that a CUDA toolkit installs outside it: $MEDUSA_CUDA_LIB,
// $CUDA_HOME, $CUDA_PATH and /usr/local/cuda, each with its lib64 and
// targets/<arch>/lib folders.
func searchDirs() []string {
	var dirs []string
	if d := os.Getenv("MEDUSA_CUDA_LIB"); d != "" {
		dirs = append(dirs, filepath.SplitList(d)...)
	}
	for _, root := range []string{os.Getenv("CUDA_HOME"), os.Getenv("CUDA_PATH"), "/usr/local/cuda"} {
		if root != "" {
			dirs = append(dirs, filepath.Join(root, "lib64"), filepath.Join(root, "targets", "x86_64-linux", "lib"),
				filepath.Join(root, "targets", "sbsa-linux", "lib"))
		}
	}
	return dirs
}

// library is a shared library opened with dlopen, its symbols resolved on
// first use.
type library struct {
	kind string // "driver", "nvrtc", "cublas"
	path string // as opened
	h    uintptr

	mu   sync.Mutex
	syms map[string]uintptr
}

// open loads the first of names that the loader finds, then tries the
// search folders. Its error lists every attempt.
func open(kind string, names []string) (*library, error) {
	var tried []string
	try := func(path string) *library {
		h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			tried = append(tried, err.Error())
			return nil
		}
		return &library{kind: kind, path: path, h: h, syms: make(map[string]uintptr)}
	}
	for _, n := range names {
		if l := try(n); l != nil {
			return l, nil
		}
	}
	for _, d := range searchDirs() {
		for _, n := range names {
			p := filepath.Join(d, n)
			if _, err := os.Stat(p); err == nil {
				if kind == "nvrtc" {
					// NVRTC opens its builtins library by name, which the
					// loader does not find in this folder unless it is
					// already loaded.
					builtins, _ := filepath.Glob(filepath.Join(d, "libnvrtc-builtins.so.*"))
					for _, b := range builtins {
						purego.Dlopen(b, purego.RTLD_NOW|purego.RTLD_GLOBAL)
					}
				}
				if l := try(p); l != nil {
					return l, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("cuda: cannot load the %s library (%s): %s: %w", kind, strings.Join(names, ", "), strings.Join(tried, "; "), ErrNoGPU)
}

// sym returns the address of name.
func (l *library) sym(name string) (uintptr, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := l.syms[name]; ok {
		return p, nil
	}
	p, err := purego.Dlsym(l.h, name)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("cuda: %s has no %s (too old?): %v", l.path, name, err)
	}
	l.syms[name] = p
	return p, nil
}

// call calls name with args and turns its result code into an error.
// Pointers converted to uintptr in the call's arguments stay on the heap
// and alive until it returns.
//
//go:uintptrescapes
func (l *library) call(name string, args ...uintptr) error {
	p, err := l.sym(name)
	if err != nil {
		return err
	}
	r, _, _ := purego.SyscallN(p, args...)
	err = result(l.kind, name, r)
	if e, ok := err.(*Error); ok && l.kind == "driver" && e.Name == unknownResult {
		if get, err := l.sym("cuGetErrorName"); err == nil {
			var s uintptr
			if ok, _, _ := purego.SyscallN(get, r, uintptr(unsafe.Pointer(&s))); ok == 0 && s != 0 {
				e.Name = cString(s)
			}
		}
	}
	return err
}

// cString copies the NUL-terminated C string at p (at most 256 bytes).
func cString(p uintptr) string {
	var b []byte
	for i := uintptr(0); i < 256; i++ {
		c := *(*byte)(unsafe.Add(unsafe.Pointer(nil), p+i)) // the library's memory, not Go's
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

// cstring returns a NUL-terminated copy of s and a pointer to it; keep the
// slice alive while the pointer is in use.
func cstring(s string) ([]byte, uintptr) {
	b := append([]byte(s), 0)
	return b, uintptr(unsafe.Pointer(&b[0]))
}
