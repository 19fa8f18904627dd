package weighting

import (
	"fmt"
	"math"
)

// DefaultCAGradC is the radius CAGrad uses in the paper's experiments and
// LibMTL's default, and the one New("cagrad", ...) sets.
const DefaultCAGradC = 0.5

// CAGrad is conflict-averse gradient descent (Liu, Liu, Jin, Stone and Liu
// 2021, "Conflict-Averse Gradient Descent for Multi-task Learning"), in
// LibMTL's form. With G the T×D matrix of task gradients, GG = GGᵀ,
// ‖g₀‖ = sqrt(mean(GG) + 1e-8) the norm of the mean gradient g₀ and
// c = C·‖g₀‖, it finds the weights w on the probability simplex minimising
// the convex dual objective
//
//	F(w) = wᵀ·GG·b + c·sqrt(wᵀ·GG·w + 1e-8),  b = (1/T, ..., 1/T),
//
// forms g_w = Σ_t w_t g_t and returns the shared gradient
//
//	d = (g₀ + c/(‖g_w‖ + 1e-8)·g_w) / (1 + C²),
//
// the direction that maximises the worst task's improvement within a ball
// of radius c around g₀, rescaled as LibMTL's default rescale=1 does. The
// weights are 1. Two tasks are solved by bisection on F′ to machine
// precision; more tasks by accelerated projected gradient descent to a
// Frank–Wolfe gap of 1e-12 times the problem's scale (or 20,000
// iterations), where LibMTL calls SciPy's SLSQP from w = b.
//
// LibMTL adds 1e-8 to c; this does not, so that C = 0 gives exactly the
// mean gradient g₀ (gradient descent on the mean loss), and so does the
// zero value. Set C to DefaultCAGradC for the paper's method. C must be
// finite and at least 0; the paper uses C < 1.
type CAGrad struct {
	C float64 // the radius c relative to ‖g₀‖; 0 gives the mean gradient
}

var _ Method = CAGrad{}

// Name returns "cagrad".
func (CAGrad) Name() string { return "cagrad" }

// Needs returns SharedGrads.
func (CAGrad) Needs() Needs { return SharedGrads }

// Combine returns weights 1 and the conflict-averse shared gradient. It
// returns an *InputError for a wrong number of losses or gradients,
// gradients of different lengths or non-finite values, and an error if C
// is negative or not finite.
func (m CAGrad) Combine(in Input) (Output, error) {
	t, d, err := check(m.Name(), in, 0, true)
	if err != nil {
		return Output{}, err
	}
	if !(m.C >= 0) || math.IsInf(m.C, 0) {
		return Output{}, fmt.Errorf("weighting: cagrad: C %v, want a finite value ≥ 0", m.C)
	}
	ones := make([]float64, t)
	for i := range ones {
		ones[i] = 1
	}
	shared := make([]float64, d)
	for _, g := range in.Grads {
		for j, v := range g {
			shared[j] += v
		}
	}
	for j := range shared {
		shared[j] /= float64(t)
	}
	if m.C == 0 {
		return Output{Weights: ones, Shared: shared}, nil
	}
	gg := gram(in.Grads)
	mean := 0.0
	for _, v := range gg {
		mean += v
	}
	mean /= float64(t * t)
	c := m.C * math.Sqrt(mean+1e-8)
	w := caGradWeights(gg, t, c)
	gw := combine(w, in.Grads)
	lambda := c / (math.Sqrt(dot(gw, gw)) + 1e-8)
	scale := 1 + m.C*m.C
	for j := range shared {
		shared[j] = (shared[j] + lambda*gw[j]) / scale
	}
	return Output{Weights: ones, Shared: shared}, nil
}

// caGradObjective returns F(w) = wᵀ·GG·b + c·sqrt(wᵀ·GG·w + 1e-8) and, if
// grad is not nil, writes ∇F(w) into it.
func caGradObjective(gg []float64, c float64, w, grad []float64) float64 {
	t := len(w)
	gw := matVec(gg, w) // GG·w
	f := 0.0
	for _, v := range gw {
		f += v / float64(t) // wᵀ·GG·b, GG symmetric
	}
	q := math.Sqrt(dot(w, gw) + 1e-8)
	if grad != nil {
		for i := range grad {
			s := 0.0
			for j := range t {
				s += gg[i*t+j]
			}
			grad[i] = s/float64(t) + c*gw[i]/q
		}
	}
	return f + c*q
}

// caGradWeights returns the minimiser of F over the probability simplex.
func caGradWeights(gg []float64, t int, c float64) []float64 {
	if t == 1 {
		return []float64{1}
	}
	if t == 2 {
		// F(x, 1−x) is convex in x, so its derivative
		// ∂F/∂w_1 − ∂F/∂w_2 is nondecreasing: bisect on its sign.
		grad := make([]float64, 2)
		slope := func(x float64) float64 {
			caGradObjective(gg, c, []float64{x, 1 - x}, grad)
			return grad[0] - grad[1]
		}
		if slope(0) >= 0 {
			return []float64{0, 1}
		}
		if slope(1) <= 0 {
			return []float64{1, 0}
		}
		lo, hi := 0.0, 1.0
		for hi-lo > 1e-16 {
			mid := (lo + hi) / 2
			if mid <= lo || mid >= hi {
				break
			}
			if slope(mid) < 0 {
				lo = mid
			} else {
				hi = mid
			}
		}
		x := (lo + hi) / 2
		return []float64{x, 1 - x}
	}
	scale := 0.0
	for i := range t {
		scale = math.Max(scale, gg[i*t+i])
	}
	scale += c * math.Sqrt(scale)
	w := make([]float64, t)
	for i := range w {
		w[i] = 1 / float64(t)
	}
	if scale == 0 {
		return w
	}
	f := func(w []float64) float64 { return caGradObjective(gg, c, w, nil) }
	grad := func(w, g []float64) { caGradObjective(gg, c, w, g) }
	minSimplex(f, grad, w, simplexTol*scale, simplexMaxIter)
	return w
}
