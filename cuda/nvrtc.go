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

// target returns what to compile for a device of compute capability cc
// (90 for 9.0) under a driver of CUDA version driver (13000 for 13.0):
// the device's own machine code ("sm_90", a cubin) when NVRTC knows the
// architecture, which runs whatever NVRTC's version; else PTX for the
// newest virtual architecture NVRTC knows below it ("compute_90"), which
// the driver compiles, and which it loads only from an NVRTC no newer than
// itself.
func (n *nvrtc) target(cc, driver int) (string, error) {
	best := 0
	for _, a := range n.archs {
		if a == cc {
			return fmt.Sprintf("sm_%d", cc), nil
		}
		if a <= cc && a > best {
			best = a
		}
	}
	if best == 0 {
		return "", fmt.Errorf("cuda: NVRTC %s compiles for %v, none of which a compute capability %d.%d device runs", n.version(), n.archs, cc/10, cc%10)
	}
	if n.major*1000+n.minor*10 > driver {
		return "", fmt.Errorf("cuda: NVRTC %s does not know compute capability %d.%d, and its PTX is too new for the CUDA %s driver: install an NVRTC no newer than the driver, or one that knows the device", n.version(), cc/10, cc%10, versionString(driver))
	}
	return fmt.Sprintf("compute_%d", best), nil
}

// CompileError is a kernel source that NVRTC refused, with its log.
type CompileError struct {
	Name   string // the source's name
	Target string // "compute_80" (PTX) or "sm_90" (a cubin)
	Log    string
	Err    error
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("cuda: compiling %s for %s: %v\n%s", e.Name, e.Target, e.Err, strings.TrimSpace(e.Log))
}

func (e *CompileError) Unwrap() error { return e.Err }

// compile compiles src (named name in messages) for target: PTX for a
// virtual architecture ("compute_80"), a cubin for a real one ("sm_90").
func (n *nvrtc) compile(src, name, target string, opts ...string) ([]byte, error) {
	csrc, psrc := cstring(src)
	cname, pname := cstring(name)
	defer runtime.KeepAlive(csrc)
	defer runtime.KeepAlive(cname)
	var prog uintptr
	if err := n.call("nvrtcCreateProgram", uintptr(unsafe.Pointer(&prog)), psrc, pname, 0, 0, 0); err != nil {
		return nil, err
	}
	defer n.call("nvrtcDestroyProgram", uintptr(unsafe.Pointer(&prog)))
	// No fused multiply-adds: products round on their own, as on the CPU.
	all := append([]string{"--gpu-architecture=" + target, "-default-device", "--fmad=false"}, opts...)
	keep := make([][]byte, len(all))
	ptrs := make([]uintptr, len(all))
	for i, o := range all {
		keep[i], ptrs[i] = cstring(o)
	}
	err := n.call("nvrtcCompileProgram", prog, uintptr(len(ptrs)), uintptr(unsafe.Pointer(&ptrs[0])))
	runtime.KeepAlive(keep)
	if err != nil {
		return nil, &CompileError{Name: name, Target: target, Log: n.log(prog), Err: err}
	}
	getSize, get := "nvrtcGetPTXSize", "nvrtcGetPTX"
	if strings.HasPrefix(target, "sm_") {
		getSize, get = "nvrtcGetCUBINSize", "nvrtcGetCUBIN"
	}
	var size uint64
	if err := n.call(getSize, prog, uintptr(unsafe.Pointer(&size))); err != nil {
		return nil, err
	}
	img := make([]byte, size)
	if size > 0 {
		if err := n.call(get, prog, uintptr(unsafe.Pointer(&img[0]))); err != nil {
			return nil, err
		}
	}
	return img, nil
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
