package weighting

import (
	"math"
	"slices"
)

// Nash is Nash-MTL (Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik
// and Fetaya 2022, "Multi-Task Learning as a Bargaining Game"). Its
// weights α > 0 solve
//
//	(G·Gᵀ)·α = 1/α  (elementwise),
//
// the Nash bargaining solution: the shared gradient d = Σ_t α_t g_t then
// has g_t·d = 1/α_t > 0 for every task. Equivalently α minimises the
// strictly convex
//
//	φ(α) = ½·αᵀMα − Σ_t log α_t,  M = G·Gᵀ,
//
// on the positive orthant. As the reference code does, Combine solves for
// M/‖M‖_F (Frobenius norm), which makes the problem scale-free, and then
// rescales: α = α̃/sqrt(‖M‖_F) solves the original equation. Where the
// reference code runs a sequence of convex programs in CVXPY, this runs
// damped Newton on φ, scaled by diag(α) and with steps that stay in the
// positive orthant, from the previous step's solution (1 at first), until
// every α_t·(Mα)_t is within 1e-10 of 1, or, near a Pareto-stationary
// point where Mα is a small difference of large terms, within the
// rounding error of computing it.
//
// φ has no minimiser when some convex combination of the task gradients
// is 0 (the point is Pareto-stationary): then α grows without bound. If
// Newton has not converged after MaxIter iterations, or cannot make
// progress, Combine falls back, like the reference code, to the previous
// step's normalised α̃ (1 at first), rescaled for this step's M. If
// every gradient is 0 it returns α̃ unscaled, for a zero shared gradient.
//
// The weights are α and the shared gradient is d = Σ_t α_t g_t, whose norm
// is √T by construction (Σ_t α_t·g_t·d = T) whatever the scale of the
// losses; as the reference code does with max_norm, d is clipped to norm
// MaxNorm (default 1; negative: no clipping). The zero value uses MaxIter
// 100 and MaxNorm 1; the
// number of tasks is fixed by the first call. Use a new Nash (or Reset)
// for a new training run.
type Nash struct {
	MaxIter int     // Newton iterations per step; default 100
	MaxNorm float64 // largest norm of the shared gradient; default 1, negative for none

	prev []float64 // α̃ of the last step
}

var _ Method = (*Nash)(nil)

// Name returns "nash".
func (*Nash) Name() string { return "nash" }

// Needs returns SharedGrads.
func (*Nash) Needs() Needs { return SharedGrads }

// Reset forgets the previous step's solution.
func (m *Nash) Reset() { m.prev = nil }

// Combine returns the Nash-MTL weights. It returns an *InputError for a
// wrong number of losses or gradients (or a number of tasks different
// from the first call's), gradients of different lengths or non-finite
// values.
func (m *Nash) Combine(in Input) (Output, error) {
	_, _, err := check(m.Name(), in, len(m.prev), true)
	if err != nil {
		return Output{}, err
	}
	mm := gram(in.Grads)
	norm := 0.0
	for _, v := range mm {
		norm += v * v
	}
	norm = math.Sqrt(norm)
	start := m.prev
	if start == nil {
		start = make([]float64, len(in.Losses))
		for i := range start {
			start[i] = 1
		}
	}
	if norm == 0 {
		m.prev = start
		return Output{Weights: slices.Clone(start)}, nil
	}
	for i := range mm {
		mm[i] /= norm
	}
	maxIter := m.MaxIter
	if maxIter <= 0 {
		maxIter = 100
	}
	a, ok := nashSolve(mm, slices.Clone(start), maxIter)
	if !ok {
		a = start
	}
	m.prev = a
	w := make([]float64, len(a))
	for i, v := range a {
		w[i] = v / math.Sqrt(norm)
	}
	return Output{Weights: w, Shared: m.clip(w, in.Grads)}, nil
}

// clip returns Σ_t w_t g_t scaled to norm MaxNorm if it is longer.
func (m *Nash) clip(w []float64, grads [][]float64) []float64 {
	d := make([]float64, len(grads[0]))
	for t, g := range grads {
		for k, v := range g {
			d[k] += w[t] * v
		}
	}
	limit := m.MaxNorm
	if limit == 0 {
		limit = 1
	}
	if n := math.Sqrt(dot(d, d)); limit > 0 && n > limit {
		for k := range d {
			d[k] *= limit / n
		}
	}
	return d
}

// nashTol bounds |α_t·(Mα)_t − 1| at a solution, plus the rounding error
// of computing α_t·(Mα)_t, up to nashRound·ε·α_t·Σ_j |M_tj|·α_j: near a
// Pareto-stationary point Mα is a small difference of large terms and
// the residual cannot be made smaller.
const (
	nashTol   = 1e-10
	nashRound = 16
)

// nashResidual returns the largest |α_t·(Mα)_t − 1| beyond what rounding
// explains (0 if none), given Mα.
func nashResidual(mm, a, ma []float64) float64 {
	t := len(a)
	worst := 0.0
	for i := range a {
		mag := 0.0
		for j := range t {
			mag += math.Abs(mm[i*t+j]) * a[j]
		}
		slack := nashRound * 0x1p-52 * a[i] * mag
		worst = math.Max(worst, math.Abs(a[i]*ma[i]-1)-slack)
	}
	return worst
}

// nashSolve minimises φ(α) = ½αᵀMα − Σ log α from a > 0 by damped Newton,
// overwriting a. It reports whether nashResidual fell to nashTol within
// maxIter iterations.
func nashSolve(mm, a []float64, maxIter int) ([]float64, bool) {
	t := len(a)
	phi := func(a []float64) float64 {
		s := dot(a, matVec(mm, a)) / 2
		for _, v := range a {
			s -= math.Log(v)
		}
		return s
	}
	h := make([]float64, t*t)
	next := make([]float64, t)
	for range maxIter {
		ma := matVec(mm, a)
		if nashResidual(mm, a, ma) <= nashTol {
			return a, true
		}
		// In the scaled variables β = α/a the Hessian is diag(a)·M·diag(a)
		// + I and the gradient diag(a)·(Mα − 1/α) = a∘Mα − 1.
		g := make([]float64, t)
		for i := range t {
			g[i] = -(a[i]*ma[i] - 1)
			for j := range t {
				h[i*t+j] = a[i] * mm[i*t+j] * a[j]
			}
			h[i*t+i]++
		}
		s, ok := cholSolve(h, g)
		if !ok {
			return a, false
		}
		dec := dot(s, g) // λ², the squared Newton decrement
		if !(dec > 0) {
			return a, false
		}
		step := 1.0
		for _, v := range s {
			if v < 0 {
				step = math.Min(step, 0.99/(-v))
			}
		}
		if step == 1 && dec < 1.0/16 {
			// Within the region of quadratic convergence of a
			// self-concordant function (λ < 1/4), take the full step:
			// φ's decrease there can be below its rounding error.
			for i := range a {
				next[i] = a[i] * (1 + s[i])
			}
		} else {
			f0 := phi(a)
			accepted := false
			for range 60 {
				for i := range a {
					next[i] = a[i] * (1 + step*s[i])
				}
				if f := phi(next); f <= f0-1e-4*step*dec {
					accepted = true
					break
				}
				step /= 2
			}
			if !accepted {
				return a, false
			}
		}
		copy(a, next)
	}
	return a, nashResidual(mm, a, matVec(mm, a)) <= nashTol
}
