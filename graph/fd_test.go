package graph

import (
	"math"
	"testing"
)

// TestRelErr checks the checker behind every finite-difference test on
// cases whose answer is known: the largest element's error is reported,
// not the smallest or the mean; the floor sets the scale near zero; NaN
// and a length mismatch fail.
func TestRelErr(t *testing.T) {
	want := []float64{1, -2, 4, 0}
	for _, c := range []struct {
		name  string
		got   []float64
		floor float64
		err   float64
	}{
		{"equal", []float64{1, -2, 4, 0}, 1e-12, 0},
		{"largest of three errors", []float64{1.01, -2.2, 4.04, 0}, 1e-12, 0.1},
		{"sign flipped", []float64{1, 2, 4, 0}, 1e-12, 2},
		{"zero compared at the floor", []float64{1, -2, 4, 3e-6}, 1e-3, 3e-3},
		{"floor below the values", []float64{1, -2, 4.4, 0}, 1e-3, 0.1},
		{"NaN", []float64{1, math.NaN(), 4, 0}, 1, math.Inf(1)},
		{"too short", []float64{1, -2, 4}, 1, math.Inf(1)},
	} {
		if e := RelErr(c.got, want, c.floor); math.Abs(e-c.err) > 1e-12*math.Max(1, c.err) && !(math.IsInf(e, 1) && math.IsInf(c.err, 1)) {
			t.Errorf("%s: RelErr = %v, want %v", c.name, e, c.err)
		}
	}
}

// TestNumGradHVP checks the finite differences against a function whose
// gradient and Hessian are known, f(x) = x₀²·x₁ + sin x₂, to their O(h²)
// truncation error, and that x is left as it was.
func TestNumGradHVP(t *testing.T) {
	f := func(x []float64) float64 { return x[0]*x[0]*x[1] + math.Sin(x[2]) }
	grad := func(x []float64) []float64 {
		return []float64{2 * x[0] * x[1], x[0] * x[0], math.Cos(x[2])}
	}
	x := []float64{1.5, -0.7, 0.3}
	g := NumGrad(f, x, 1e-5)
	if e := RelErr(g, grad(x), 1e-6); e > 1e-8 {
		t.Errorf("NumGrad = %v, want %v (relative error %.3g)", g, grad(x), e)
	}
	if x[0] != 1.5 || x[1] != -0.7 || x[2] != 0.3 {
		t.Errorf("NumGrad left x = %v", x)
	}
	// H = [[2x₁, 2x₀, 0], [2x₀, 0, 0], [0, 0, −sin x₂]].
	v := []float64{0.2, -1, 2}
	want := []float64{2*x[1]*v[0] + 2*x[0]*v[1], 2 * x[0] * v[0], -math.Sin(x[2]) * v[2]}
	hv := NumHVP(grad, x, v, 1e-5)
	if e := RelErr(hv, want, 1e-6); e > 1e-8 {
		t.Errorf("NumHVP = %v, want %v (relative error %.3g)", hv, want, e)
	}
}
