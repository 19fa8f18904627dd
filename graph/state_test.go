package graph

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

func testCheckpoint(t *testing.T) *Checkpoint {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	p := new(Params)
	for _, name := range []string{"layers.0.weight", "layers.0.bias"} {
		v, err := NewParam(rng, tensor.Float32, []int{3, 2}, Normal(0, 1))
		if err != nil {
			t.Fatal(err)
		}
		p.Add(name, v)
	}
	c := NewCheckpoint(p)
	m, _ := NewTensor(tensor.Float64, []int{6}, []float64{1, 2, 3, 4, 5, 6})
	c.State.Add("train.optim.exp_avg.0", m)
	c.Meta["learner"] = "maml"
	return c
}

// TestCheckpointLayout checks a checkpoint against the safetensors
// specification (an 8-byte little-endian header length, a JSON header with
// dtype, shape and data_offsets per tensor, string-valued __metadata__)
// and the layout the README documents: parameters under their own names,
// state tensors beside them, the format version in the metadata.
func TestCheckpointLayout(t *testing.T) {
	c := testCheckpoint(t)
	path := filepath.Join(t.TempDir(), "c.safetensors")
	if err := SaveCheckpoint(path, c); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	if n > uint64(len(raw)-8) {
		t.Fatalf("header length %d in a file of %d bytes", n, len(raw))
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		t.Fatalf("header is not JSON: %v", err)
	}
	var meta map[string]string
	if err := json.Unmarshal(header["__metadata__"], &meta); err != nil {
		t.Fatalf("__metadata__ is not a string map: %v", err)
	}
	if meta[FormatKey] != "1" || meta["learner"] != "maml" {
		t.Errorf("metadata = %v; want %s=1 and learner=maml", meta, FormatKey)
	}
	end := int64(0)
	for _, name := range []string{"layers.0.weight", "layers.0.bias", "train.optim.exp_avg.0"} {
		var e struct {
			Dtype   string   `json:"dtype"`
			Shape   []int    `json:"shape"`
			Offsets [2]int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(header[name], &e); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		size := int64(4 * 6)
		if e.Dtype == "F64" {
			size = 8 * 6
		}
		if e.Offsets[1]-e.Offsets[0] != size {
			t.Errorf("%s: %+v; want %d bytes", name, e, size)
		}
		end = max(end, e.Offsets[1])
	}
	if int64(len(raw))-8-int64(n) != end {
		t.Errorf("data section has %d bytes; the offsets end at %d", int64(len(raw))-8-int64(n), end)
	}
	back, err := LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Params.Len() != 2 || back.State.Len() != 1 || back.Resumable(path) != nil {
		t.Errorf("loaded %d parameters and %d state tensors, resumable: %v", back.Params.Len(), back.State.Len(), back.Resumable(path))
	}
	if RelErr(back.Params.Flatten(), c.Params.Flatten(), 1) != 0 || RelErr(back.State.Flatten(), c.State.Flatten(), 1) != 0 {
		t.Error("values changed in a round trip")
	}
}

// TestCheckpointTruncated cuts a checkpoint at every length short of its
// own and checks that loading fails each time with an error naming the
// file, as a crash mid-copy would leave it.
func TestCheckpointTruncated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.safetensors")
	if err := SaveCheckpoint(path, testCheckpoint(t)); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	bad := filepath.Join(dir, "cut.safetensors")
	for cut := 0; cut < len(raw); cut++ {
		if err := os.WriteFile(bad, raw[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadCheckpoint(bad)
		if err == nil {
			t.Fatalf("LoadCheckpoint of the file cut to %d of %d bytes: no error", cut, len(raw))
		}
		if !strings.Contains(err.Error(), "cut.safetensors") {
			t.Fatalf("cut to %d bytes: error %q does not name the file", cut, err)
		}
	}
}

func TestCheckpointVersions(t *testing.T) {
	dir := t.TempDir()
	c := testCheckpoint(t)
	newer := filepath.Join(dir, "newer.safetensors")
	all := c.Params.Clone()
	if err := SaveParams(newer, all, map[string]string{FormatKey: "7"}); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCheckpoint(newer); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "format 7") {
		t.Errorf("loading format 7: err = %v; want ErrFormat naming the format", err)
	}
	old := filepath.Join(dir, "old.safetensors")
	if err := SaveParams(old, all, nil); err != nil {
		t.Fatal(err)
	}
	back, err := LoadCheckpoint(old)
	if err != nil {
		t.Fatalf("a parameters-only file must still load: %v", err)
	}
	if err := back.Resumable(old); !errors.Is(err, ErrFormat) {
		t.Errorf("Resumable of a parameters-only file: %v; want ErrFormat", err)
	}
	lying := filepath.Join(dir, "lying.safetensors")
	if err := SaveParams(lying, all, map[string]string{FormatKey: "1", paramsKey: "9"}); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCheckpoint(lying); !errors.Is(err, ErrFormat) {
		t.Errorf("a checkpoint claiming 9 parameters of 2 tensors: err = %v; want ErrFormat", err)
	}
}
