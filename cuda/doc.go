// Package cuda runs medusa's graphs on NVIDIA GPUs.
//
// It binds the CUDA driver API (libcuda.so.1), NVRTC and cuBLAS at run
// time, through purego, without cgo or build tags: every build compiles
// and tests this package, and one binary runs on CPU-only machines and on
// GPU machines. Only driver calls whose signatures are the same from CUDA
// 11 to 13 are used; library names are tried newest first, by the system's
// loader and then under $MEDUSA_CUDA_LIB, $CUDA_HOME, $CUDA_PATH and
// /usr/local/cuda. Nothing here exits or panics when a library or a device
// is missing: Open returns an error that matches ErrNoGPU, and every
// failed call is an *Error carrying the CUDA name of its result code.
//
// Open returns a Device, a graph.Device: graph.CompileOn places each op
// of a graph on it when it has a kernel for the op (every op of medusa's
// MLPs, ConvNets and multi-task networks, forward and backward, to any
// order), and runs the others on the CPU. The kernels are CUDA C embedded
// in the binary (kernels/*.cu), written once for float32 and float64 and
// compiled by NVRTC at Open to the device's machine code, or to PTX when
// NVRTC does not know the device, and cached on disk ($MEDUSA_CUDA_CACHE,
// by default under the user's cache folder; "off" turns the cache off).
// Batched matrix products go to cuBLAS. Each kernel is a grid-stride loop
// over independent outputs and every sum runs in a fixed order without
// atomics, so the same inputs give the same numbers on every run; sums
// over many rows run in two passes (chunk sums, then their sum in order).
//
// A plan whose every op runs on a Device records its second Run as a CUDA
// graph and replays it afterwards (graph.Recorder); Device.Graphs, set by
// Open unless MEDUSA_CUDA_GRAPHS=off, turns this on.
//
// Probe reports the driver, devices and libraries a machine has, for
// "medusa devices".
//
// A Device and the plans compiled for it are used by one goroutine at a
// time; separate Devices may be used concurrently. The calling goroutine
// is pinned to its OS thread, with the device's primary context current,
// for each call into the driver.
package cuda
