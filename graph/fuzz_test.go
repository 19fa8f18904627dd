package graph

import (
	"os"
	"path/filepath"
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
