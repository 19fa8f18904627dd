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
// to PTX for compute_80 (A100) and compute_90 (H100, H200) and to cubins
// for sm_80 and sm_90 with the NVRTC installed here, and checks that each
// kernel is in the result. It needs NVRTC, not a GPU; .ci/run installs it.
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
	for _, target := range []string{"compute_80", "compute_90", "sm_80", "sm_90"} {
		for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
			t.Run(fmt.Sprintf("%s/%v", target, dt), func(t *testing.T) {
				t.Setenv("MEDUSA_CUDA_CACHE", "off")
				img, err := compileKernels(n, dt, target)
				if err != nil {
					t.Fatal(err)
				}
				cubin := strings.HasPrefix(target, "sm_")
				if arch := strings.TrimPrefix(target, "compute_"); !cubin && !bytes.Contains(img, []byte(".target sm_"+arch)) {
					t.Errorf("PTX does not target sm_%s", arch)
				}
				if cubin && !bytes.HasPrefix(img, []byte("\x7fELF")) {
					t.Errorf("the cubin is not an ELF image: % x", img[:min(len(img), 8)])
				}
				for _, k := range names {
					entry := ".entry " + k + "_" + suffix(dt) + "("
					if cubin {
						entry = "\x00" + k + "_" + suffix(dt) + "\x00" // the symbol's name
					}
					if !bytes.Contains(img, []byte(entry)) {
						t.Errorf("kernel %s_%s is not in the %s image", k, suffix(dt), target)
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
	_, err = n.compile("extern \"C\" __global__ void k() { undefined_thing(); }", "bad.cu", "compute_80")
	if err == nil || !strings.Contains(err.Error(), "undefined_thing") || !strings.Contains(err.Error(), "NVRTC_ERROR_COMPILATION") {
		t.Errorf("compile(bad source) = %v; want NVRTC's log naming the fault", err)
	}
}

// TestKernelCache checks that a compiled kernel set is stored, read back,
// and keyed by source, NVRTC version and architecture.
func TestKernelCache(t *testing.T) {
	keys := map[string]bool{}
	for _, k := range []string{cacheKey("x", "11.8", "compute_80"), cacheKey("x", "11.8", "compute_90"),
		cacheKey("x", "11.8", "sm_90"), cacheKey("x", "12.4", "compute_80"), cacheKey("y", "11.8", "compute_80")} {
		if keys[k] {
			t.Errorf("cacheKey gives %s twice: it ignores the source, NVRTC version or target", k)
		}
		keys[k] = true
	}
	n, err := loadNVRTC()
	if err != nil {
		t.Skipf("NVRTC is not installed here: %v", err)
	}
	dir := t.TempDir()
	t.Setenv("MEDUSA_CUDA_CACHE", dir)
	first, err := compileKernels(n, tensor.Float32, "compute_80")
	if err != nil {
		t.Fatal(err)
	}
	src, _ := Source(tensor.Float32)
	path := dir + "/" + cacheKey(src, n.version(), "compute_80")
	if err := writeFile(path, []byte("// cached\n")); err != nil {
		t.Fatal(err)
	}
	again, err := compileKernels(n, tensor.Float32, "compute_80")
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != "// cached\n" || len(first) < 1000 {
		t.Errorf("compilePTX did not read its cache entry (got %d bytes, first compilation %d)", len(again), len(first))
	}
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }

// TestTarget checks the choice between a cubin and PTX.
func TestTarget(t *testing.T) {
	n := &nvrtc{major: 12, minor: 8, archs: []int{75, 80, 86, 89, 90, 100, 120}}
	for _, c := range []struct {
		cc, driver int
		want       string // "" for an error
	}{
		{90, 12080, "sm_90"},
		{90, 12020, "sm_90"}, // a cubin runs under an older driver of the same major version
		{87, 12080, "compute_86"},
		{87, 12020, ""}, // PTX newer than the driver
		{130, 13000, "compute_120"},
		{70, 13000, ""}, // too old for this NVRTC
	} {
		got, err := n.target(c.cc, c.driver)
		if c.want == "" && err == nil || c.want != "" && got != c.want {
			t.Errorf("target(%d, %d) = %q, %v; want %q", c.cc, c.driver, got, err, c.want)
		}
	}
}
