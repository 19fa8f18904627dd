package weighting

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestGLSWeights checks GLS's weights against the closed form of two
// tasks and against central differences of the geometric mean.
func TestGLSWeights(t *testing.T) {
	// L = (1, 4): GLS = 2, w = (2/(2·1), 2/(2·4)).
	out, err := GLS{}.Combine(Input{Step: 1, Losses: []float64{1, 4}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{1, 0.25}; !slices.Equal(out.Weights, want) {
		t.Errorf("GLS(1, 4) weights = %v; want %v", out.Weights, want)
	}
	geo := func(l []float64) float64 {
		p := 1.0
		for _, v := range l {
			p *= v
		}
		return math.Pow(p, 1/float64(len(l)))
	}
	rng := rand.New(rand.NewPCG(81, 82))
	for trial := range 30 {
		tasks := 1 + trial%5
		l := make([]float64, tasks)
		for i := range l {
			l[i] = math.Exp(4 * rng.NormFloat64()) // scales from about 1e-5 to 1e5
		}
		out, err := GLS{}.Combine(Input{Step: 1, Losses: l})
		if err != nil {
			t.Fatal(err)
		}
		for i := range l {
			// Central differences with a relative step: truncation
			// O(h²) ≈ 1e-12, rounding O(ε/h) ≈ 1e-10, relative to w_i.
			h := 1e-6 * l[i]
			lp, lm := slices.Clone(l), slices.Clone(l)
			lp[i] += h
			lm[i] -= h
			fd := (geo(lp) - geo(lm)) / (2 * h)
			if math.Abs(out.Weights[i]-fd) > 1e-8*math.Abs(fd) {
				t.Errorf("losses %v: w_%d = %v; ∂GLS/∂L_%d by finite difference %v", l, i, out.Weights[i], i, fd)
			}
		}
	}
	// Losses whose product overflows: equal losses give weights 1/T.
	out, err = GLS{}.Combine(Input{Step: 1, Losses: []float64{1e200, 1e200, 1e200}})
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range out.Weights {
		if math.Abs(w-1.0/3) > 1e-15 {
			t.Errorf("GLS of three losses 1e200: w_%d = %v; want 1/3", i, w)
		}
	}
}

// TestGLSBadInputs: the losses must be positive.
func TestGLSBadInputs(t *testing.T) {
	for _, tc := range []struct {
		losses []float64
		task   int
	}{
		{[]float64{1, 0}, 1},
		{[]float64{-1, 2}, 0},
		{[]float64{1, math.NaN()}, 1},
		{nil, -1},
	} {
		_, err := GLS{}.Combine(Input{Step: 1, Losses: tc.losses})
		var ie *InputError
		if !errors.As(err, &ie) || ie.Task != tc.task {
			t.Errorf("GLS(%v): error %v; want an *InputError for task %d", tc.losses, err, tc.task)
		}
	}
}
