package cuda

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gorgonia.org/tensor"
)

//go:embed kernels/prelude.h kernels/*.cu
var kernelFS embed.FS

// Source returns the CUDA C of every kernel, as compiled for dt (float32
// or float64): the prelude, then each kernels/*.cu file in name order.
func Source(dt tensor.Dtype) (string, error) {
	defs, err := dtypeDefines(dt)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(defs)
	prelude, _ := kernelFS.ReadFile("kernels/prelude.h")
	b.Write(prelude)
	names, _ := fs.Glob(kernelFS, "kernels/*.cu")
	slices.Sort(names)
	for _, n := range names {
		src, _ := kernelFS.ReadFile(n)
		fmt.Fprintf(&b, "\n// ---- %s\n", n)
		b.Write(src)
	}
	return b.String(), nil
}

// dtypeDefines returns the #defines that make the sources' T and SUF.
func dtypeDefines(dt tensor.Dtype) (string, error) {
	switch dt {
	case tensor.Float32:
		return "#define T float\n#define SUF f32\n", nil
	case tensor.Float64:
		return "#define T double\n#define SUF f64\n", nil
	}
	return "", fmt.Errorf("cuda: no kernels for %v", dt)
}

// suffix is the kernel-name suffix for dt.
func suffix(dt tensor.Dtype) string {
	if dt == tensor.Float64 {
		return "f64"
	}
	return "f32"
}

// cacheDir returns the folder of compiled kernels: $MEDUSA_CUDA_CACHE, or
// medusa/ptx under the user's cache folder; "" when caching is off
// (MEDUSA_CUDA_CACHE=off) or there is no such folder.
func cacheDir() string {
	if d := os.Getenv("MEDUSA_CUDA_CACHE"); d != "" {
		if d == "off" {
			return ""
		}
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "medusa", "ptx")
}

// cacheKey names the compiled form of src: a hash of the source, the NVRTC
// version and the target ("compute_80" or "sm_90"), so a change to any of
// them compiles anew.
func cacheKey(src, nvrtcVersion, target string) string {
	h := sha256.New()
	fmt.Fprintf(h, "nvrtc %s\n%s\n", nvrtcVersion, target)
	h.Write([]byte(src))
	ext := ".ptx"
	if strings.HasPrefix(target, "sm_") {
		ext = ".cubin"
	}
	return fmt.Sprintf("%s-nvrtc%s-%s%s", target, nvrtcVersion, hex.EncodeToString(h.Sum(nil))[:32], ext)
}

// compileKernels returns every kernel for dt compiled for target (see
// nvrtc.target), from the cache when it is there; a fresh compilation is
// stored in the cache (written to a temporary file and renamed, so readers
// never see half a file). A cache that cannot be read or written is
// skipped, not an error.
func compileKernels(n *nvrtc, dt tensor.Dtype, target string) ([]byte, error) {
	src, err := Source(dt)
	if err != nil {
		return nil, err
	}
	dir := cacheDir()
	var path string
	if dir != "" {
		path = filepath.Join(dir, cacheKey(src, n.version(), target))
		if ptx, err := os.ReadFile(path); err == nil && len(ptx) > 0 {
			return ptx, nil
		}
	}
	ptx, err := n.compile(src, "medusa_"+suffix(dt)+".cu", target)
	if err != nil {
		return nil, err
	}
	if path != "" {
		if os.MkdirAll(dir, 0o755) == nil {
			if f, err := os.CreateTemp(dir, ".kernels-*"); err == nil {
				_, werr := f.Write(ptx)
				if cerr := f.Close(); werr == nil && cerr == nil {
					if os.Rename(f.Name(), path) != nil {
						os.Remove(f.Name())
					}
				} else {
					os.Remove(f.Name())
				}
			}
		}
	}
	return ptx, nil
}
