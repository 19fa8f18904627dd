package tasks

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestConcatSlice checks that concatenating batches and slicing the
// result back gives the batches' tasks, in order, and that shape
// mismatches and bad ranges are refused.
func TestConcatSlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var s Sinusoid
	var parts []*Batch
	for _, n := range []int{2, 1, 3} {
		b, _, err := s.Sample(rng, n, 3, 4)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, b)
	}
	all, err := Concat(parts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := all.Validate(); err != nil || all.Tasks != 6 {
		t.Fatalf("Concat: %d tasks, %v", all.Tasks, err)
	}
	lo := 0
	for i, p := range parts {
		got, err := all.Slice(lo, lo+p.Tasks)
		if err != nil {
			t.Fatal(err)
		}
		lo += p.Tasks
		for _, c := range []struct {
			name      string
			got, want []float64
		}{{"SupportX", got.SupportX, p.SupportX}, {"SupportY", got.SupportY, p.SupportY}, {"QueryX", got.QueryX, p.QueryX}, {"QueryY", got.QueryY, p.QueryY}} {
			if !slices.Equal(c.got, c.want) {
				t.Errorf("part %d: %s of the slice differs from the batch's", i, c.name)
			}
		}
		if got.Shape() != p.Shape() {
			t.Errorf("part %d: shape %+v, want %+v", i, got.Shape(), p.Shape())
		}
	}
	other, _, err := s.Sample(rng, 1, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Concat(parts[0], other); err == nil || !strings.Contains(err.Error(), "batch 1 has shape") {
		t.Errorf("Concat of batches of 4 and 5 query examples: err = %v", err)
	}
	if _, err := Concat(); err == nil {
		t.Error("Concat of nothing: no error")
	}
	if _, err := (&Batch{Tasks: 2, Support: 1, Query: 1, In: 1, Out: 1}).Slice(0, 1); err == nil {
		t.Error("Slice of a batch without data: no error")
	}
	for _, r := range [][2]int{{-1, 2}, {2, 2}, {3, 7}} {
		if _, err := all.Slice(r[0], r[1]); err == nil {
			t.Errorf("Slice(%d, %d) of 6 tasks: no error", r[0], r[1])
		}
	}
}
