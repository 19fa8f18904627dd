package graph

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

// FuzzDecodeParams feeds arbitrary bytes to the checkpoint reader: it must
// return parameters or an error, never panic or allocate beyond the input.
func FuzzDecodeParams(f *testing.F) {
	p := new(Params)
	w, _ := NewTensor(tensor.Float32, []int{2, 3}, []float64{1, 2, 3, 4, 5, 6})
	b, _ := NewTensor(tensor.Float64, []int{2}, []float64{-1, 1})
	p.Add("layers.0.weight", w)
	p.Add("layers.0.bias", b)
	path := filepath.Join(f.TempDir(), "seed.safetensors")
	if err := SaveParams(path, p, map[string]string{"learner": "maml"}); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add([]byte("\x10\x00\x00\x00\x00\x00\x00\x00{\"x\":{\"dtype\":\"F32\",\"shape\":[100000000000],\"data_offsets\":[0,4]}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if c, err := DecodeCheckpoint(data, "fuzz"); err == nil {
			c.Resumable("fuzz")
		}
		p, _, err := DecodeParams(data, "fuzz")
		if err != nil {
			return
		}
		total := 0
		for i := 0; i < p.Len(); i++ {
			total += p.At(i).Value.Shape().TotalSize()
		}
		if total > len(data) {
			t.Fatalf("decoded %d values from %d bytes", total, len(data))
		}
	})
}

// FuzzLoadParams writes arbitrary bytes to a file and loads it: the file
// reader must check the header's sizes against the file's before reading
// (seeds whose header claims far more data than the file holds, or less),
// and return parameters or an error, never panic or read beyond the file.
func FuzzLoadParams(f *testing.F) {
	p := new(Params)
	w, _ := NewTensor(tensor.Float32, []int{2, 2}, []float64{1, 2, 3, 4})
	p.Add("w", w)
	path := filepath.Join(f.TempDir(), "seed.safetensors")
	if err := SaveParams(path, p, nil); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(append(good, 0, 0, 0, 0))
	f.Add(good[:len(good)-4])
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\xff\x7f{}"))
	f.Add([]byte("\x40\x00\x00\x00\x00\x00\x00\x00{\"w\":{\"dtype\":\"F64\",\"shape\":[1000000000],\"data_offsets\":[0,8000000000]}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "f.safetensors")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		p, _, err := LoadParams(path)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "graph: ") {
				t.Fatalf("error %q does not name the package", err)
			}
			return
		}
		if total := p.Size(); total > len(data) {
			t.Fatalf("loaded %d values from %d bytes", total, len(data))
		}
	})
}
