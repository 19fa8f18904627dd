package cuda

import (
	"bytes"
	"fmt"
	"sync"
	"unsafe"
)

// The driver API, bound at run time. Only calls whose names and
// signatures are the same from CUDA 11 to 13 are used.

// Device attributes (CUdevice_attribute).
const (
	attrMultiprocessors = 16
	attrCCMajor         = 75
	attrCCMinor         = 76
)

// driver is the loaded libcuda with cuInit done.
type driver struct {
	*library
	version int // 12040 for CUDA 12.4
}

var (
	driverOnce   sync.Once
	driverLoaded *driver
	driverErr    error
	// The driver library found and its CUDA version, even when cuInit failed.
	driverPath    string
	driverVersion int
)

// loadDriver loads libcuda and initialises it, once per process.
func loadDriver() (*driver, error) {
	driverOnce.Do(func() {
		lib, err := open("driver", driverNames)
		if err != nil {
			driverErr = err
			return
		}
		d := &driver{library: lib}
		var v int32
		if err := d.call("cuDriverGetVersion", uintptr(unsafe.Pointer(&v))); err != nil {
			driverErr = err
			return
		}
		d.version = int(v)
		driverPath, driverVersion = lib.path, d.version
		if err := d.call("cuInit", 0); err != nil {
			driverErr = fmt.Errorf("%w (driver %s, CUDA %s)", err, lib.path, versionString(d.version))
			return
		}
		driverLoaded = d
	})
	return driverLoaded, driverErr
}

// versionString writes a CUDA version number (12040) as "12.4".
func versionString(v int) string { return fmt.Sprintf("%d.%d", v/1000, v%1000/10) }

// count returns the number of devices.
func (d *driver) count() (int, error) {
	var n int32
	err := d.call("cuDeviceGetCount", uintptr(unsafe.Pointer(&n)))
	return int(n), err
}

// Info describes one device.
type Info struct {
	Ordinal        int
	Name           string
	Memory         int64 // bytes
	Major, Minor   int   // compute capability
	Multiprocessor int   // streaming multiprocessors
}

func (i Info) String() string {
	return fmt.Sprintf("cuda:%d %s, %.1f GiB, compute capability %d.%d, %d SMs",
		i.Ordinal, i.Name, float64(i.Memory)/(1<<30), i.Major, i.Minor, i.Multiprocessor)
}

// info describes device ordinal.
func (d *driver) info(ordinal int) (Info, error) {
	var dev int32
	if err := d.call("cuDeviceGet", uintptr(unsafe.Pointer(&dev)), uintptr(ordinal)); err != nil {
		return Info{}, err
	}
	inf := Info{Ordinal: ordinal}
	name := make([]byte, 256)
	if err := d.call("cuDeviceGetName", uintptr(unsafe.Pointer(&name[0])), uintptr(len(name)), uintptr(dev)); err != nil {
		return Info{}, err
	}
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	inf.Name = string(name)
	var mem uint64
	if err := d.call("cuDeviceTotalMem_v2", uintptr(unsafe.Pointer(&mem)), uintptr(dev)); err != nil {
		return Info{}, err
	}
	inf.Memory = int64(mem)
	for _, a := range []struct {
		attr int
		to   *int
	}{{attrCCMajor, &inf.Major}, {attrCCMinor, &inf.Minor}, {attrMultiprocessors, &inf.Multiprocessor}} {
		var v int32
		if err := d.call("cuDeviceGetAttribute", uintptr(unsafe.Pointer(&v)), uintptr(a.attr), uintptr(dev)); err != nil {
			return Info{}, err
		}
		*a.to = int(v)
	}
	return inf, nil
}
