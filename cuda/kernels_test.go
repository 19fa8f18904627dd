package cuda

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

// kernelNames lists the kernels defined by the sources (before the dtype
// suffix), read from the NAME(...) declarations.
func kernelNames(t *testing.T) []string {
	t.Helper()
	src, err := Source(tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^(?:KERNEL NAME\((\w+)\)|(?:BINARY|UNARY)\((\w+),)`).FindAllStringSubmatch(src, -1) {
		names = append(names, m[1]+m[2])
	}
	return names
}

// TestKernelsCompile compiles every embedded kernel, float32 and float64,
// to PTX for compute_80 (A100) and compute_90 (H100, H200) with the NVRTC
// installed here, and checks that each kernel is in the PTX. It needs
// NVRTC, not a GPU; .ci/run installs it.
func TestKernelsCompile(t *testing.T) {
	n, err := loadNVRTC()
	if err != nil {
		t.Skipf("NVRTC is not installed here, so the kernels cannot be compiled: %v", err)
	}
	t.Logf("NVRTC %s (%s), architectures %v", n.version(), n.path, n.archs)
	names := kernelNames(t)
	if len(names) < 20 {
		t.Fatalf("found %d kernels in the sources; the pattern that finds them is broken", len(names))
	}
	for _, arch := range []int{80, 90} {
		for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
			t.Run(fmt.Sprintf("compute_%d/%v", arch, dt), func(t *testing.T) {
				t.Setenv("MEDUSA_CUDA_CACHE", "off")
				ptx, err := compilePTX(n, dt, arch)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(ptx, []byte(fmt.Sprintf(".target sm_%d", arch))) {
					t.Errorf("PTX does not target sm_%d", arch)
				}
				for _, k := range names {
					if !bytes.Contains(ptx, []byte(".entry "+k+"_"+suffix(dt)+"(")) {
						t.Errorf("kernel %s_%s is not in the PTX", k, suffix(dt))
					}
				}
			})
		}
	}
}

// TestCompileErrorLog checks that a source NVRTC refuses gives an error
// holding the compiler's message.
func TestCompileErrorLog(t *testing.T) {
	n, err := loadNVRTC()
	if err != nil {
		t.Skipf("NVRTC is not installed here: %v", err)
	}
	_, err = n.compile("extern \"C\" __global__ void k() { undefined_thing(); }", "bad.cu", 80)
	if err == nil || !strings.Contains(err.Error(), "undefined_thing") || !strings.Contains(err.Error(), "NVRTC_ERROR_COMPILATION") {
		t.Errorf("compile(bad source) = %v; want NVRTC's log naming the fault", err)
	}
}

// TestKernelCache checks that a compiled kernel set is stored, read back,
// and keyed by source, NVRTC version and architecture.
func TestKernelCache(t *testing.T) {
	if a, b := cacheKey("x", "11.8", 80), cacheKey("x", "11.8", 90); a == b {
		t.Errorf("cacheKey ignores the architecture: %s", a)
	}
	if a, b := cacheKey("x", "11.8", 80), cacheKey("x", "12.4", 80); a == b {
		t.Errorf("cacheKey ignores the NVRTC version: %s", a)
	}
	if a, b := cacheKey("x", "11.8", 80), cacheKey("y", "11.8", 80); a == b {
		t.Errorf("cacheKey ignores the source: %s", a)
	}
	n, err := loadNVRTC()
	if err != nil {
		t.Skipf("NVRTC is not installed here: %v", err)
	}
	dir := t.TempDir()
	t.Setenv("MEDUSA_CUDA_CACHE", dir)
	first, err := compilePTX(n, tensor.Float32, 80)
	if err != nil {
		t.Fatal(err)
	}
	src, _ := Source(tensor.Float32)
	path := dir + "/" + cacheKey(src, n.version(), 80)
	if err := writeFile(path, []byte("// cached\n")); err != nil {
		t.Fatal(err)
	}
	again, err := compilePTX(n, tensor.Float32, 80)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != "// cached\n" || len(first) < 1000 {
		t.Errorf("compilePTX did not read its cache entry (got %d bytes, first compilation %d)", len(again), len(first))
	}
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }
