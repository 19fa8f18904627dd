package weighting

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func TestRLW(t *testing.T) {
	m := RLW{Seed: 3}
	mean := make([]float64, 3)
	const steps = 4000
	var last []float64
	for s := 1; s <= steps; s++ {
		w := m.Weights(s, 3)
		sum := 0.0
		for _, v := range w {
			if !(v > 0) {
				t.Fatalf("step %d: weights %v, want positive", s, w)
			}
			sum += v
		}
		if math.Abs(sum-1) > 1e-12 {
			t.Fatalf("step %d: weights %v sum to %v, want 1", s, w, sum)
		}
		if slices.Equal(w, last) {
			t.Fatalf("step %d draws the weights of step %d", s, s-1)
		}
		last = w
		for i, v := range w {
			mean[i] += v / steps
		}
		out, err := m.Combine(Input{Step: s, Losses: []float64{1, 2, 3}})
		if err != nil || !slices.Equal(out.Weights, w) {
			t.Fatalf("step %d: Combine = %v, %v; want Weights' %v", s, out.Weights, err, w)
		}
	}
	// By symmetry every task's weight averages 1/3; over 4,000 draws the
	// mean is within 0.01 of it (the weights' spread is about 0.2).
	for i, v := range mean {
		if math.Abs(v-1.0/3) > 0.01 {
			t.Errorf("task %d's mean weight %v over %d steps; want about 1/3", i, v, steps)
		}
	}
	if slices.Equal(m.Weights(7, 3), RLW{Seed: 4}.Weights(7, 3)) {
		t.Error("two seeds draw the same weights")
	}
	if _, err := m.Combine(Input{Step: 1, Losses: []float64{1, math.NaN()}}); !errors.Is(err, ErrInput) {
		t.Errorf("Combine with a NaN loss: %v", err)
	}
}
