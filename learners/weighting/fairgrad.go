package weighting

import (
	"fmt"
	"math"
)

// DefaultFairGradAlpha is LibMTL's default α for FairGrad, the one
// New("fairgrad", ...) sets. The paper chooses α per benchmark.
const DefaultFairGradAlpha = 1.0

// FairGrad is fair resource allocation for multi-task learning (Ban and
// Ji 2024, "Fair Resource Allocation in Multi-Task Learning"). It chooses
// the update d = Σ_t w_t g_t whose first-order improvements g_t·d = (Gw)_t
// of the tasks are α-fair, which gives the weights w > 0 solving
//
//	(G·Gᵀ)·w = w^{−1/α}  (elementwise)
//
// for α > 0. α = 1 is proportional fairness, the equation of Nash-MTL;
// α = 2 minimum potential delay; large α approach max-min fairness. The
// weights are the unique minimiser of the strictly convex
//
//	φ(w) = ½·wᵀMw − Σ_t h(w_t),  M = G·Gᵀ,  h′(w) = w^{−1/α}
//
// (h = log for α = 1, else α/(α−1)·w^{(α−1)/α}) on the positive orthant,
// when one exists. Where LibMTL runs SciPy's least_squares on the
// residual Mw − w^{−1/α} from w = 1/T, this solves for M/‖M‖_F
// (Frobenius norm) by damped Newton on φ, scaled by diag(w) and with steps
// that stay in the positive orthant, from w = 1, until every
// w_t^{1/α}·(Mw)_t is within 1e-10 of 1 (or of the rounding error of
// computing it), and rescales: w·‖M‖_F^{−α/(α+1)} solves the equation
// for M.
//
// No solution exists when some convex combination of the gradients is 0
// (a Pareto-stationary point): then the weights grow without bound. If
// Newton has not converged after MaxIter iterations, or cannot make
// progress, Combine falls back to w = 1 for M/‖M‖_F, rescaled, as Nash
// does at its first step. If every gradient is 0 the weights are 1.
//
// The weights are w: they scale each task's head gradients as well (LibMTL
// and the reference code back-propagate Σ_t w_t L_t), and the shared
// gradient is Σ_t w_t g_t, not clipped (the reference code clips it to
// norm 1 as Nash-MTL's does; LibMTL does not). The zero value has α = 0,
// the limit in which FairGrad is linear scalarisation: weights 1/T, as
// TorchJD defines it. Set Alpha to DefaultFairGradAlpha for the paper's
// method with LibMTL's default. FairGrad keeps no state between steps.
type FairGrad struct {
	Alpha   float64 // α ≥ 0, finite; 0 gives the mean gradient
	MaxIter int     // Newton iterations per step; default 100
}

var _ Method = FairGrad{}

// Name returns "fairgrad".
func (FairGrad) Name() string { return "fairgrad" }

// Needs returns SharedGrads.
func (FairGrad) Needs() Needs { return SharedGrads }

// Combine returns the FairGrad weights. It returns an *InputError for a
// wrong number of losses or gradients, gradients of different lengths or
// non-finite values, and an error if Alpha is negative or not finite.
func (m FairGrad) Combine(in Input) (Output, error) {
	t, _, err := check(m.Name(), in, 0, true)
	if err != nil {
		return Output{}, err
	}
	if !(m.Alpha >= 0) || math.IsInf(m.Alpha, 0) {
		return Output{}, fmt.Errorf("weighting: fairgrad: Alpha %v, want a finite value ≥ 0", m.Alpha)
	}
	if m.Alpha == 0 {
		w := make([]float64, t)
		for i := range w {
			w[i] = 1 / float64(t)
		}
		return Output{Weights: w}, nil
	}
	mm := gram(in.Grads)
	norm := 0.0
	for _, v := range mm {
		norm += v * v
	}
	norm = math.Sqrt(norm)
	if norm == 0 {
		return Output{Weights: ones(t)}, nil
	}
	for i := range mm {
		mm[i] /= norm
	}
	maxIter := m.MaxIter
	if maxIter <= 0 {
		maxIter = 100
	}
	w, ok := fairGradSolve(mm, ones(t), m.Alpha, maxIter)
	if !ok || !finiteLen(w, t) || !positive(w) {
		w = ones(t)
	}
	scale := math.Pow(norm, -m.Alpha/(m.Alpha+1))
	for i := range w {
		w[i] *= scale
	}
	return Output{Weights: w}, nil
}

// fairGradResidual returns the largest |w_t^{1/α}·(Mw)_t − 1| beyond the
// rounding error of computing it (0 if none), given Mw.
func fairGradResidual(mm, w, mw []float64, alpha float64) float64 {
	t := len(w)
	worst := 0.0
	for i := range w {
		mag := 0.0
		for j := range t {
			mag += math.Abs(mm[i*t+j]) * w[j]
		}
		p := math.Pow(w[i], 1/alpha)
		slack := nashRound * 0x1p-52 * p * mag
		worst = math.Max(worst, math.Abs(p*mw[i]-1)-slack)
	}
	return worst
}

// fairGradSolve minimises φ(w) = ½wᵀMw − Σ h(w) from w > 0 by damped
// Newton, overwriting w. It reports whether fairGradResidual fell to
// nashTol within maxIter iterations.
func fairGradSolve(mm, w []float64, alpha float64, maxIter int) ([]float64, bool) {
	t := len(w)
	h := func(v float64) float64 {
		if alpha == 1 {
			return math.Log(v)
		}
		return alpha / (alpha - 1) * math.Pow(v, (alpha-1)/alpha)
	}
	// phi returns φ(w) and the size of the terms summed, to bound its
	// rounding error.
	phi := func(w []float64) (f, mag float64) {
		for i := range t {
			for j := range t {
				f += w[i] * mm[i*t+j] * w[j] / 2
				mag += math.Abs(w[i]*mm[i*t+j]*w[j]) / 2
			}
			f -= h(w[i])
			mag += math.Abs(h(w[i]))
		}
		return f, mag
	}
	hess := make([]float64, t*t)
	g := make([]float64, t)
	next := make([]float64, t)
	for range maxIter {
		mw := matVec(mm, w)
		if fairGradResidual(mm, w, mw, alpha) <= nashTol {
			return w, true
		}
		// In the scaled variables s, w∘(1+s), the gradient is
		// w∘Mw − w^{1−1/α} and the Hessian diag(w)·M·diag(w) +
		// diag(w^{1−1/α})/α.
		for i := range t {
			p := math.Pow(w[i], 1-1/alpha)
			g[i] = -(w[i]*mw[i] - p)
			for j := range t {
				hess[i*t+j] = w[i] * mm[i*t+j] * w[j]
			}
			hess[i*t+i] += p / alpha
		}
		s, ok := cholSolve(hess, g)
		if !ok {
			return w, false
		}
		dec := dot(s, g) // the squared Newton decrement
		if !(dec > 0) {
			return w, false
		}
		step := 1.0
		for _, v := range s {
			if v < 0 {
				step = math.Min(step, 0.99/(-v))
			}
		}
		f0, mag := phi(w)
		accepted := false
		for range 60 {
			for i := range w {
				next[i] = w[i] * (1 + step*s[i])
			}
			// Armijo's condition, up to φ's rounding error: near the
			// solution φ's decrease falls below it.
			if f, m := phi(next); f <= f0-1e-4*step*dec+64*0x1p-52*(mag+m) {
				accepted = true
				break
			}
			step /= 2
		}
		if !accepted {
			return w, false
		}
		copy(w, next)
	}
	return w, fairGradResidual(mm, w, matVec(mm, w), alpha) <= nashTol
}
