package graph

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"gorgonia.org/tensor"
)

func TestSaveLoadParams(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	p := new(Params)
	for _, c := range []struct {
		name  string
		shape []int
		dt    tensor.Dtype
	}{{"layers.0.weight", []int{4, 3}, tensor.Float32}, {"layers.0.bias", []int{4}, tensor.Float32}, {"head.weight", []int{2, 4}, tensor.Float64}} {
		v, err := NewParam(rng, c.dt, c.shape, GlorotUniform(1))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Add(c.name, v); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := SaveParams(path, p, map[string]string{"learner": "maml"}); err != nil {
		t.Fatal(err)
	}
	q, meta, err := LoadParams(path)
	if err != nil {
		t.Fatal(err)
	}
	if meta["learner"] != "maml" {
		t.Errorf("metadata = %v; want learner=maml", meta)
	}
	if got, want := q.Names(), p.Names(); len(got) != len(want) {
		t.Fatalf("names = %v; want %v", got, want)
	}
	for i := 0; i < p.Len(); i++ {
		a, b := p.At(i), q.At(i)
		if a.Name != b.Name || !a.Value.Shape().Eq(b.Value.Shape()) || a.Value.Dtype() != b.Value.Dtype() {
			t.Fatalf("parameter %d: got %s %v %v; want %s %v %v", i, b.Name, b.Value.Shape(), b.Value.Dtype(), a.Name, a.Value.Shape(), a.Value.Dtype())
		}
	}
	if RelErr(q.Flatten(), p.Flatten(), 1) != 0 {
		t.Errorf("values changed in a save/load round trip")
	}

	// The header is what the safetensors specification says: an 8-byte
	// little-endian length, then JSON with dtype, shape and data_offsets
	// per tensor and string-valued __metadata__.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		t.Fatalf("header is not JSON: %v", err)
	}
	var w struct {
		Dtype   string   `json:"dtype"`
		Shape   []int    `json:"shape"`
		Offsets [2]int64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(header["layers.0.weight"], &w); err != nil {
		t.Fatal(err)
	}
	if w.Dtype != "F32" || len(w.Shape) != 2 || w.Shape[0] != 4 || w.Shape[1] != 3 || w.Offsets[1]-w.Offsets[0] != 48 {
		t.Errorf("layers.0.weight header = %+v; want F32 [4 3] of 48 bytes", w)
	}
	if _, ok := header["__metadata__"]; !ok {
		t.Errorf("header has no __metadata__")
	}
}

func TestLoadParamsTruncated(t *testing.T) {
	p := new(Params)
	v, _ := NewTensor(tensor.Float32, []int{8}, make([]float64, 8))
	p.Add("w", v)
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := SaveParams(path, p, nil); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	for _, cut := range []int{0, 4, 8, 20, len(raw) - 1} {
		bad := filepath.Join(dir, "bad.safetensors")
		os.WriteFile(bad, raw[:cut], 0o644)
		if _, _, err := LoadParams(bad); err == nil {
			t.Errorf("LoadParams of a file cut to %d of %d bytes: no error", cut, len(raw))
		}
	}
}

// TestSaveRefusesNonRegular checks that a checkpoint is never renamed over
// a directory or a named pipe at its path: the write fails naming it, and
// the thing is left as it was.
func TestSaveRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	p := &Params{}
	if err := p.Add("w", tensor.New(tensor.WithShape(2), tensor.WithBacking([]float64{1, 2}))); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{sub: "a directory"}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err == nil {
		paths[fifo] = "a named pipe"
	}
	for path, what := range paths {
		err := SaveParams(path, p, nil)
		var nr *NotRegularError
		if !errors.As(err, &nr) || nr.What != what {
			t.Errorf("SaveParams(%s) = %v; want a *NotRegularError saying %s", path, err, what)
		}
		if fi, err := os.Lstat(path); err != nil || fi.Mode().IsRegular() {
			t.Errorf("%s was replaced: %v, %v", path, fi.Mode(), err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != len(paths) {
		t.Errorf("%d entries left in the folder; want %d (no temporary files)", len(entries), len(paths))
	}
}

// TestLoadRefusesWithoutReading checks that LoadCheckpoint refuses, without
// reading them whole or blocking, files that are not checkpoints: a sparse
// file of a gigabyte of zeros, a named pipe with no writer, a device, and
// a valid file with bytes appended or cut.
func TestLoadRefusesWithoutReading(t *testing.T) {
	dir := t.TempDir()
	sparse := filepath.Join(dir, "sparse")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	good := filepath.Join(dir, "good.safetensors")
	p := new(Params)
	if err := p.Add("w", tensor.New(tensor.WithShape(3), tensor.WithBacking([]float64{1, 2, 3}))); err != nil {
		t.Fatal(err)
	}
	if err := SaveParams(good, p, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	longer, shorter := filepath.Join(dir, "longer"), filepath.Join(dir, "shorter")
	if err := os.WriteFile(longer, append(b, make([]byte, 100)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shorter, b[:len(b)-8], 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		sparse:  "header length is 0",
		longer:  "the file has",
		shorter: "the file has",
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		cases["/dev/zero"] = "is a device, not a checkpoint"
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err == nil {
		cases[fifo] = "is a named pipe, not a checkpoint"
	}
	for path, want := range cases {
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := LoadCheckpoint(path)
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadCheckpoint(%s) = %v; want an error saying %q", path, err, want)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Errorf("LoadCheckpoint(%s) allocated %d bytes before refusing", path, grew)
		}
	}
	if _, err := LoadCheckpoint(good); err != nil {
		t.Errorf("LoadCheckpoint(a good file) = %v", err)
	}
}
