package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/medusa-ml/medusa/cuda"
	"github.com/medusa-ml/medusa/graph"
)

// deviceHelp is the help text of --device.
const deviceHelp = "where the graphs run: auto (the first GPU if its driver, NVRTC and cuBLAS load, else the CPU), cpu, cuda or cuda:N (fail without that GPU)"

// checkDevice reports whether spec is a valid --device value.
func checkDevice(spec string) error {
	if _, _, err := parseDevice(spec); err != nil {
		return err
	}
	return nil
}

// parseDevice splits a --device value into its kind (auto, cpu, cuda) and
// GPU ordinal.
func parseDevice(spec string) (kind string, ordinal int, err error) {
	switch spec {
	case "auto", "cpu", "cuda":
		return spec, 0, nil
	}
	if n, ok := strings.CutPrefix(spec, "cuda:"); ok {
		if i, err := strconv.Atoi(n); err == nil && i >= 0 {
			return "cuda", i, nil
		}
	}
	return "", 0, fmt.Errorf("--device %q: want auto, cpu, cuda or cuda:N", spec)
}

// openDevice opens the device spec names and says on stderr, in one line,
// which one runs the graphs and why. A nil Device means the CPU. The
// returned function releases the device.
func openDevice(spec string, stderr io.Writer) (graph.Device, func(), error) {
	none := func() {}
	kind, ordinal, err := parseDevice(spec)
	if err != nil {
		return nil, none, err
	}
	switch kind {
	case "cpu":
		fmt.Fprintln(stderr, "device: cpu (--device cpu)")
		return nil, none, nil
	case "cuda":
		d, err := cuda.Open(ordinal)
		if err != nil {
			return nil, none, fmt.Errorf("--device %s: %w", spec, err)
		}
		fmt.Fprintf(stderr, "device: %s\n", d)
		return d, func() { d.Close() }, nil
	}
	d, err := cuda.Open(0)
	if err != nil {
		fmt.Fprintf(stderr, "device: cpu (no usable GPU: %v)\n", err)
		return nil, none, nil
	}
	fmt.Fprintf(stderr, "device: %s (driver, NVRTC and cuBLAS loaded)\n", d)
	return d, func() { d.Close() }, nil
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
