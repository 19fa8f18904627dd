package main

import (
	"fmt"
	"io"

	"github.com/medusa-ml/medusa/cuda"
	"github.com/medusa-ml/medusa/graph"
)

// deviceHelp is the help text of --device.
const deviceHelp = "where the graphs run: auto (the first GPU if its driver, NVRTC and cuBLAS load, else the CPU), cpu, cuda or cuda:N (fail without that GPU)"

// checkDevice reports whether spec is a valid --device value.
func checkDevice(spec string) error {
	if _, _, err := cuda.ParseSpec(spec); err != nil {
		return fmt.Errorf("--device %q: want auto, cpu, cuda or cuda:N", spec)
	}
	return nil
}

// openDevice opens the device spec names and says on stderr, in one line,
// which one runs the graphs and why. A nil Device means the CPU. The
// returned function releases the device.
func openDevice(spec string, stderr io.Writer) (graph.Device, func(), error) {
	dev, about, err := cuda.Select(spec)
	if err != nil {
		return nil, func() {}, fmt.Errorf("--device %s: %w", spec, err)
	}
	if spec == "cpu" {
		about = "cpu (--device cpu)"
	}
	fmt.Fprintf(stderr, "device: %s\n", about)
	if dev == nil {
		return nil, func() {}, nil
	}
	return dev, func() { dev.(*cuda.Device).Close() }, nil
}

// devices is "medusa devices": what CUDA software and GPUs this machine has.
func devices(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if args[0] == "--help" || args[0] == "-h" {
			fmt.Fprint(stdout, devicesUsage)
			return nil
		}
		fmt.Fprint(stderr, devicesUsage)
		return &usageError{"devices takes no arguments"}
	}
	r := cuda.Probe()
	fmt.Fprint(stdout, r)
	if len(r.Devices) == 0 {
		fmt.Fprintln(stdout, "medusa runs on the CPU here (--device auto chooses it).")
	}
	return nil
}

const devicesUsage = `Usage: medusa devices

Lists the CUDA driver and its version, each GPU (name, memory, compute
capability) and the NVRTC and cuBLAS libraries found, or why there are
none. Libraries are looked up by the system's loader, then under
$MEDUSA_CUDA_LIB, $CUDA_HOME, $CUDA_PATH and /usr/local/cuda.
`
