package weighting

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Normalization is a gradient normalisation for MGDA, from Sener and
// Koltun's code (gradient_normalizers) and LibMTL's mgda_gn option.
type Normalization int

// The normalisations. The zero value is NormNone, LibMTL's default.
const (
	NormNone   Normalization = iota // g_t unchanged
	NormL2                          // g_t/‖g_t‖
	NormLoss                        // g_t/L_t
	NormLossL2                      // g_t/(L_t·‖g_t‖), the code's "loss+"
)

var normNames = []string{"none", "l2", "loss", "loss+"}

// String returns the name used by Sener and Koltun's code and LibMTL:
// "none", "l2", "loss" or "loss+".
func (n Normalization) String() string {
	if n < 0 || int(n) >= len(normNames) {
		return fmt.Sprintf("Normalization(%d)", int(n))
	}
	return normNames[n]
}

// UnmarshalText sets n to the normalisation String names.
func (n *Normalization) UnmarshalText(b []byte) error {
	i := slices.Index(normNames, string(b))
	if i < 0 {
		return fmt.Errorf("weighting: MGDA normalisation %q, want one of %s", b, strings.Join(normNames, ", "))
	}
	*n = Normalization(i)
	return nil
}

// MGDA is the multiple gradient descent algorithm as Sener and Koltun
// (2018, "Multi-Task Learning as Multi-Objective Optimization") use it: the
// shared update is the minimum-norm point of the convex hull of the task
// gradients,
//
//	γ = argmin_{γ ∈ Δ} ‖Σ_t γ_t g_t‖²,  Δ the probability simplex,
//
// which is a common descent direction of every task unless the current
// point is Pareto-stationary (then it is 0). Two tasks have the closed
// form γ_1 = clip((g_2−g_1)·g_2/‖g_1−g_2‖², 0, 1); the paper's code (and
// LibMTL) clips to [0.001, 0.999] instead, which this does not copy. More
// tasks are solved over the simplex by accelerated projected gradient
// descent to a Frank–Wolfe gap of 1e-12 times the largest ‖g_t‖² (or
// 20,000 iterations, whichever comes first), where
// the paper runs its own projected-gradient MinNormSolver to a looser
// 1e-5 change.
//
// The gradients are those of the shared parameters, as Input.Grads holds
// them: this is the shared-parameter form of MGDA. The paper's faster
// MGDA-UB solves the same problem for the gradients with respect to the
// shared representation, an upper bound it justifies; that form applies
// when a trainer passes representation gradients instead.
//
// With a normalisation, γ is computed for the normalised gradients g_t/n_t
// and the weights are γ_t/n_t, so the shared gradient Σ_t w_t g_t is the
// min-norm point of the normalised gradients. Without one, the weights
// are γ and sum to 1. The zero value uses no normalisation, as LibMTL's
// default.
type MGDA struct {
	Norm Normalization // default NormNone
}

var _ Method = MGDA{}

// Name returns "mgda".
func (MGDA) Name() string { return "mgda" }

// Needs returns SharedGrads.
func (MGDA) Needs() Needs { return SharedGrads }

// Combine returns the min-norm weights. It returns an *InputError for a
// wrong number of losses or gradients, gradients of different lengths,
// non-finite values, or a normaliser n_t that is not positive (a zero
// gradient with NormL2, a loss ≤ 0 with NormLoss), and an error for an
// unknown Norm.
func (m MGDA) Combine(in Input) (Output, error) {
	t, _, err := check(m.Name(), in, 0, true)
	if err != nil {
		return Output{}, err
	}
	if m.Norm < NormNone || m.Norm > NormLossL2 {
		return Output{}, fmt.Errorf("weighting: mgda: unknown normalisation %v", m.Norm)
	}
	gg := gram(in.Grads)
	n := make([]float64, t)
	for i := range n {
		switch m.Norm {
		case NormNone:
			n[i] = 1
		case NormL2:
			n[i] = math.Sqrt(gg[i*t+i])
		case NormLoss:
			n[i] = in.Losses[i]
		case NormLossL2:
			n[i] = in.Losses[i] * math.Sqrt(gg[i*t+i])
		}
		if !(n[i] > 0) {
			return Output{}, inputErr(m.Name(), i, "normaliser %v (%v) is not positive", n[i], m.Norm)
		}
	}
	for i := range t {
		for j := range t {
			gg[i*t+j] /= n[i] * n[j]
		}
	}
	w := minNorm(gg, t)
	for i := range w {
		w[i] /= n[i]
	}
	return Output{Weights: w, HeadWeights: ones(len(w))}, nil
}

// minNorm returns the point γ of the probability simplex minimising γᵀMγ
// for the T×T Gram matrix m.
func minNorm(m []float64, t int) []float64 {
	switch t {
	case 1:
		return []float64{1}
	case 2:
		g := minNorm2(m[0], m[1], m[3])
		return []float64{g, 1 - g}
	}
	// Start from the best pair, as the paper's MinNormSolver does.
	best, bi, bj, bg := math.Inf(1), 0, 1, 0.5
	scale := 0.0
	for i := range t {
		scale = math.Max(scale, m[i*t+i])
		for j := i + 1; j < t; j++ {
			g := minNorm2(m[i*t+i], m[i*t+j], m[j*t+j])
			c := g*g*m[i*t+i] + 2*g*(1-g)*m[i*t+j] + (1-g)*(1-g)*m[j*t+j]
			if c < best {
				best, bi, bj, bg = c, i, j, g
			}
		}
	}
	w := make([]float64, t)
	w[bi], w[bj] = bg, 1-bg
	if scale == 0 {
		return w
	}
	f := func(w []float64) float64 { return dot(w, matVec(m, w)) / 2 }
	grad := func(w, g []float64) { copy(g, matVec(m, w)) }
	minSimplex(f, grad, w, simplexTol*scale, simplexMaxIter)
	return w
}

// minNorm2 returns the γ ∈ [0, 1] minimising ‖γ·g1 + (1−γ)·g2‖² from
// g11 = ‖g1‖², g12 = g1·g2, g22 = ‖g2‖²; 1/2 when g1 = g2.
func minNorm2(g11, g12, g22 float64) float64 {
	den := g11 + g22 - 2*g12
	if !(den > 0) {
		return 0.5
	}
	return math.Min(math.Max((g22-g12)/den, 0), 1)
}
