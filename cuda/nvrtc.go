package cuda

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// nvrtc is the loaded NVRTC runtime compiler.
type nvrtc struct {
	*library
	major, minor int
	archs        []int // the virtual architectures it compiles for (80 = compute_80)
}

var (
	nvrtcOnce   sync.Once
	nvrtcLoaded *nvrtc
	nvrtcErr    error
)

// loadNVRTC loads NVRTC, once per process.
func loadNVRTC() (*nvrtc, error) {
	nvrtcOnce.Do(func() {
		lib, err := open("nvrtc", nvrtcNames)
		if err != nil {
			nvrtcErr = err
			return
		}
		n := &nvrtc{library: lib}
		var major, minor int32
		if err := n.call("nvrtcVersion", uintptr(unsafe.Pointer(&major)), uintptr(unsafe.Pointer(&minor))); err != nil {
			nvrtcErr = err
			return
		}
		n.major, n.minor = int(major), int(minor)
		var count int32
		if err := n.call("nvrtcGetNumSupportedArchs", uintptr(unsafe.Pointer(&count))); err == nil && count > 0 {
			archs := make([]int32, count)
			if err := n.call("nvrtcGetSupportedArchs", uintptr(unsafe.Pointer(&archs[0]))); err == nil {
				for _, a := range archs {
					n.archs = append(n.archs, int(a))
				}
			}
		}
		nvrtcLoaded = n
	})
	return nvrtcLoaded, nvrtcErr
}

// version is "11.8".
func (n *nvrtc) version() string { return fmt.Sprintf("%d.%d", n.major, n.minor) }

// arch returns the newest virtual architecture NVRTC supports that a
// device of compute capability cc (80 for 8.0) runs: PTX for it is
// JIT-compiled by the driver for the device itself.
func (n *nvrtc) arch(cc int) (int, error) {
	best := 0
	for _, a := range n.archs {
		if a <= cc && a > best {
			best = a
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("cuda: NVRTC %s compiles for %v, none of which a compute capability %d.%d device runs", n.version(), n.archs, cc/10, cc%10)
	}
	return best, nil
}

// CompileError is a kernel source that NVRTC refused, with its log.
type CompileError struct {
	Name string // the source's name
	Arch int    // the virtual architecture (80 for compute_80)
	Log  string
	Err  error
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("cuda: compiling %s for compute_%d: %v\n%s", e.Name, e.Arch, e.Err, strings.TrimSpace(e.Log))
}

func (e *CompileError) Unwrap() error { return e.Err }

// compile compiles src (named name in messages) to PTX for the virtual
// architecture arch, with extra options such as "-DT=float".
func (n *nvrtc) compile(src, name string, arch int, opts ...string) ([]byte, error) {
	csrc, psrc := cstring(src)
	cname, pname := cstring(name)
	defer runtime.KeepAlive(csrc)
	defer runtime.KeepAlive(cname)
	var prog uintptr
	if err := n.call("nvrtcCreateProgram", uintptr(unsafe.Pointer(&prog)), psrc, pname, 0, 0, 0); err != nil {
		return nil, err
	}
	defer n.call("nvrtcDestroyProgram", uintptr(unsafe.Pointer(&prog)))
	all := append([]string{fmt.Sprintf("--gpu-architecture=compute_%d", arch), "--std=c++14", "-default-device"}, opts...)
	keep := make([][]byte, len(all))
	ptrs := make([]uintptr, len(all))
	for i, o := range all {
		keep[i], ptrs[i] = cstring(o)
	}
	err := n.call("nvrtcCompileProgram", prog, uintptr(len(ptrs)), uintptr(unsafe.Pointer(&ptrs[0])))
	runtime.KeepAlive(keep)
	if err != nil {
		return nil, &CompileError{Name: name, Arch: arch, Log: n.log(prog), Err: err}
	}
	var size uint64
	if err := n.call("nvrtcGetPTXSize", prog, uintptr(unsafe.Pointer(&size))); err != nil {
		return nil, err
	}
	ptx := make([]byte, size)
	if size > 0 {
		if err := n.call("nvrtcGetPTX", prog, uintptr(unsafe.Pointer(&ptx[0]))); err != nil {
			return nil, err
		}
	}
	return ptx, nil
}

// log returns a program's compilation log.
func (n *nvrtc) log(prog uintptr) string {
	var size uint64
	if n.call("nvrtcGetProgramLogSize", prog, uintptr(unsafe.Pointer(&size))) != nil || size == 0 {
		return ""
	}
	b := make([]byte, size)
	if n.call("nvrtcGetProgramLog", prog, uintptr(unsafe.Pointer(&b[0]))) != nil {
		return ""
	}
	return strings.TrimRight(string(b), "\x00")
}
