package graph

import "math"

// NumGrad returns the central finite-difference gradient of f at x,
// (f(x+h·eᵢ) − f(x−h·eᵢ)) / 2h for each coordinate. x is restored before
// returning. The truncation error is O(h²); h = 1e-5 suits float64
// functions of unit scale.
func NumGrad(f func(x []float64) float64, x []float64, h float64) []float64 {
	g := make([]float64, len(x))
	for i := range x {
		xi := x[i]
		x[i] = xi + h
		fp := f(x)
		x[i] = xi - h
		fm := f(x)
		x[i] = xi
		g[i] = (fp - fm) / (2 * h)
	}
	return g
}

// NumHVP returns the central finite-difference Hessian-vector product
// (∇f(x+h·v) − ∇f(x−h·v)) / 2h, given the exact gradient grad of f.
func NumHVP(grad func(x []float64) []float64, x, v []float64, h float64) []float64 {
	xp := make([]float64, len(x))
	xm := make([]float64, len(x))
	for i := range x {
		xp[i] = x[i] + h*v[i]
		xm[i] = x[i] - h*v[i]
	}
	gp, gm := grad(xp), grad(xm)
	out := make([]float64, len(gp))
	for i := range out {
		out[i] = (gp[i] - gm[i]) / (2 * h)
	}
	return out
}

// RelErr returns the largest relative difference between got and want,
// |got−want| / max(|want|, floor) per element, so that elements near zero
// are compared absolutely at the floor's scale. Slices of different
// lengths give +Inf.
func RelErr(got, want []float64, floor float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	worst := 0.0
	for i := range got {
		d := math.Abs(got[i]-want[i]) / math.Max(math.Abs(want[i]), floor)
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		worst = math.Max(worst, d)
	}
	return worst
}
