package cuda

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/medusa-ml/medusa/graph"
	"gorgonia.org/tensor"
)

// Threads per block of every launch.
const threadsPerBlock = 256

// Open returns the GPU numbered ordinal (0 for the first) ready to run
// plans: the driver, NVRTC and cuBLAS loaded, the device's primary
// context retained and the kernels compiled for its architecture (or read
// from the cache). Its error matches ErrNoGPU when there is no driver, no
// such device, or a library is missing.
func Open(ordinal int) (*Device, error) {
	drv, err := loadDriver()
	if err != nil {
		return nil, err
	}
	count, err := drv.count()
	if err != nil {
		return nil, err
	}
	if ordinal < 0 || ordinal >= count {
		return nil, fmt.Errorf("cuda: no device %d (%d found): %w", ordinal, count, ErrNoGPU)
	}
	inf, err := drv.info(ordinal)
	if err != nil {
		return nil, err
	}
	rtc, err := loadNVRTC()
	if err != nil {
		return nil, err
	}
	blas, err := loadCUBLAS()
	if err != nil {
		return nil, err
	}
	target, err := rtc.target(inf.Major*10+inf.Minor, drv.version)
	if err != nil {
		return nil, err
	}
	var images [][]byte
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		im, err := compileKernels(rtc, dt, target)
		if err != nil {
			return nil, err
		}
		images = append(images, im)
	}
	g, err := newGPU(drv, blas, ordinal, images)
	if err != nil {
		return nil, err
	}
	return &Device{b: g, name: fmt.Sprintf("cuda:%d (%s)", ordinal, inf.Name), threads: threadsPerBlock,
		blocks: max(inf.Multiprocessor, 1) * 32, Graphs: os.Getenv("MEDUSA_CUDA_GRAPHS") != "off"}, nil
}

// openEmulated returns a Device on the CPU emulation, its kernels compiled
// into dir by the host's C++ compiler.
func openEmulated(dir string) (*Device, error) {
	e, err := newEmulator(dir)
	if err != nil {
		return nil, err
	}
	// Few threads and blocks, so that the grid-stride loops wrap.
	return &Device{b: e, name: "cuda-emulated", threads: 32, blocks: 3, Graphs: true}, nil
}

var (
	cublasOnce   sync.Once
	cublasLoaded *library
	cublasErr    error
)

// loadCUBLAS loads cuBLAS, once per process.
func loadCUBLAS() (*library, error) {
	cublasOnce.Do(func() {
		cublasLoaded, cublasErr = open("cublas", cublasNames)
	})
	return cublasLoaded, cublasErr
}

// Report says what CUDA software and which devices a machine has.
type Report struct {
	Driver        string // libcuda's path and CUDA version, or "" if absent
	DriverErr     error  // why the driver is unusable, if it is
	Devices       []Info
	NVRTC, CUBLAS string // path and version of each, or ""
	NVRTCErr      error
	CUBLASErr     error
}

// Probe loads what it can and reports it; it never fails.
func Probe() Report {
	var r Report
	if drv, err := loadDriver(); err != nil {
		r.DriverErr = err
		if driverPath != "" {
			r.Driver = fmt.Sprintf("%s (CUDA %s)", driverPath, versionString(driverVersion))
		}
	} else {
		r.Driver = fmt.Sprintf("%s (CUDA %s)", drv.path, versionString(drv.version))
		if n, err := drv.count(); err != nil {
			r.DriverErr = err
		} else {
			for i := range n {
				if inf, err := drv.info(i); err == nil {
					r.Devices = append(r.Devices, inf)
				} else {
					r.DriverErr = err
				}
			}
		}
	}
	if n, err := loadNVRTC(); err != nil {
		r.NVRTCErr = err
	} else {
		r.NVRTC = fmt.Sprintf("%s (NVRTC %s, compute_%v)", n.path, n.version(), archList(n.archs))
	}
	if b, err := loadCUBLAS(); err != nil {
		r.CUBLASErr = err
	} else {
		r.CUBLAS = b.path
		if v, err := cublasVersion(b); err == nil {
			r.CUBLAS += fmt.Sprintf(" (cuBLAS %d.%d.%d)", v/10000, v%10000/100, v%100)
		}
	}
	return r
}

// archList writes [80 86 90] as "80, 86, 90".
func archList(a []int) string {
	s := make([]string, len(a))
	for i, v := range a {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ", ")
}

// cublasVersion asks cuBLAS its version (major·10000 + minor·100 + patch)
// with cublasGetProperty, which needs no handle (and so no device).
func cublasVersion(b *library) (int, error) {
	v := 0
	for i, scale := range []int{10000, 100, 1} { // MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL
		var x int32
		if err := b.call("cublasGetProperty", uintptr(i), uintptr(unsafe.Pointer(&x))); err != nil {
			return 0, err
		}
		v += int(x) * scale
	}
	return v, nil
}

// String writes the report as `medusa devices` prints it.
func (r Report) String() string {
	var b strings.Builder
	switch {
	case r.Driver == "" && r.DriverErr != nil:
		fmt.Fprintf(&b, "driver:  none (%v)\n", r.DriverErr)
	case r.DriverErr != nil:
		fmt.Fprintf(&b, "driver:  %s, unusable: %v\n", r.Driver, r.DriverErr)
	default:
		fmt.Fprintf(&b, "driver:  %s\n", r.Driver)
	}
	if len(r.Devices) == 0 {
		b.WriteString("devices: none\n")
	}
	for _, d := range r.Devices {
		fmt.Fprintf(&b, "device:  %v\n", d)
	}
	if r.NVRTCErr != nil {
		fmt.Fprintf(&b, "nvrtc:   none (%v)\n", r.NVRTCErr)
	} else {
		fmt.Fprintf(&b, "nvrtc:   %s\n", r.NVRTC)
	}
	if r.CUBLASErr != nil {
		fmt.Fprintf(&b, "cublas:  none (%v)\n", r.CUBLASErr)
	} else {
		fmt.Fprintf(&b, "cublas:  %s\n", r.CUBLAS)
	}
	return b.String()
}

// ParseSpec splits a device spec, "auto", "cpu", "cuda" or "cuda:N", into
// its kind and GPU ordinal ("cuda" is "cuda:0").
func ParseSpec(spec string) (kind string, ordinal int, err error) {
	switch spec {
	case "auto", "cpu", "cuda":
		return spec, 0, nil
	}
	if n, ok := strings.CutPrefix(spec, "cuda:"); ok {
		if i, err := strconv.Atoi(n); err == nil && i >= 0 {
			return "cuda", i, nil
		}
	}
	return "", 0, fmt.Errorf("cuda: device %q: want auto, cpu, cuda or cuda:N", spec)
}

// Select opens the device spec names (see ParseSpec): for "cpu", none (a
// nil graph.Device, which means the CPU); for "cuda:N", that GPU or an
// error matching ErrNoGPU; for "auto", the first GPU when it opens, else
// the CPU. about says in one line which it is and why, as
// "cpu (no usable GPU: ...)". A device returned is a *Device: close it
// with its Close method when done.
func Select(spec string) (dev graph.Device, about string, err error) {
	kind, ordinal, err := ParseSpec(spec)
	if err != nil {
		return nil, "", err
	}
	switch kind {
	case "cpu":
		return nil, "cpu (asked for)", nil
	case "cuda":
		d, err := Open(ordinal)
		if err != nil {
			return nil, "", err
		}
		return d, d.String(), nil
	}
	d, err := Open(0)
	if err != nil {
		return nil, fmt.Sprintf("cpu (no usable GPU: %v)", err), nil
	}
	return d, d.String() + " (driver, NVRTC and cuBLAS loaded)", nil
}
