package weighting

import (
	"fmt"
	"math"
	"slices"
)

// IMTLG is the gradient balancing part of impartial multi-task learning,
// IMTL-G (Liu, Li, Kuang, Xue, Chen, Yang, Liao and Zhang 2021, "Towards
// Impartial Multi-task Learning"), in LibMTL's closed form. It finds the
// weights α, summing to 1, for which the shared gradient d = Σ_t α_t g_t
// has equal projections onto every task's unit gradient u_t = g_t/‖g_t‖:
// with D and U the (T−1)×D matrices of rows g_1 − g_t and u_1 − u_t
// (t = 2..T),
//
//	(α_2, ..., α_T) = g_1·Uᵀ·(D·Uᵀ)⁻¹,  α_1 = 1 − Σ_{t≥2} α_t.
//
// The weights are α (which may be negative) and the shared gradient is
// Σ_t α_t g_t. Only the gradient part is implemented; LibMTL's IMTL also
// learns loss scales (IMTL-L). The zero value is ready to use.
type IMTLG struct{}

var _ Method = IMTLG{}

// Name returns "imtl".
func (IMTLG) Name() string { return "imtl" }

// Needs returns SharedGrads.
func (IMTLG) Needs() Needs { return SharedGrads }

// Combine returns the IMTL-G weights. It returns an *InputError for a
// wrong number of losses or gradients, gradients of different lengths,
// non-finite values or a zero gradient (which has no direction). When
// D·Uᵀ is singular, as when two tasks' gradients point the same way so that
// many weightings give equal projections, it takes the weights closest to
// uniform (1/T each) that do; if none does it returns an error matching
// ErrSingular.
func (m IMTLG) Combine(in Input) (Output, error) {
	t, _, err := check(m.Name(), in, 0, true)
	if err != nil {
		return Output{}, err
	}
	gg := gram(in.Grads)
	n := make([]float64, t)
	for i := range n {
		n[i] = math.Sqrt(gg[i*t+i])
		if n[i] == 0 {
			return Output{}, inputErr(m.Name(), i, "gradient is zero")
		}
	}
	if t == 1 {
		return Output{Weights: []float64{1}}, nil
	}
	// gu(a, b) = g_a·u_b.
	gu := func(a, b int) float64 { return gg[a*t+b] / n[b] }
	k := t - 1
	at := make([]float64, k*k) // (D·Uᵀ)ᵀ
	r := make([]float64, k)    // g_1·Uᵀ
	for j := range k {
		r[j] = gu(0, 0) - gu(0, j+1)
		for i := range k {
			// (D·Uᵀ)_ij = (g_1 − g_{i+1})·(u_1 − u_{j+1})
			at[j*k+i] = gu(0, 0) - gu(0, j+1) - gu(i+1, 0) + gu(i+1, j+1)
		}
	}
	a, ok := luSolve(slices.Clone(at), slices.Clone(r))
	if !ok {
		a = nearUniform(at, r, t)
	}
	w := make([]float64, t)
	w[0] = 1
	for i, v := range a {
		w[i+1] = v
		w[0] -= v
	}
	if !ok {
		// Check that the fallback has the defining property.
		p := make([]float64, t) // d·u_j
		for j := range t {
			for i := range t {
				p[j] += w[i] * gu(i, j)
			}
		}
		for j := 1; j < t; j++ {
			if math.Abs(p[j]-p[0]) > 1e-9*(math.Abs(p[0])+math.Abs(p[j])+1e-300) {
				return Output{}, fmt.Errorf("weighting: imtl: no weights give equal projections (D·Uᵀ is singular): %w", ErrSingular)
			}
		}
	}
	return Output{Weights: w, HeadWeights: ones(t)}, nil
}

// nearUniform returns the solution a of the singular system A·a = r (A is
// k×k, row-major) closest to the uniform weights 1/t, in the least-squares
// sense: a = 1/t + δ with δ the minimum-norm least-squares solution of
// A·δ = r − A·(1/t), computed from the ridge-regularised normal
// equations.
func nearUniform(A, r []float64, t int) []float64 {
	k := len(r)
	u := 1 / float64(t)
	rhs := make([]float64, k)
	for i := range k {
		rhs[i] = r[i]
		for j := range k {
			rhs[i] -= A[i*k+j] * u
		}
	}
	ata := make([]float64, k*k)
	atb := make([]float64, k)
	var tr float64
	for i := range k {
		for j := range k {
			for l := range k {
				ata[i*k+j] += A[l*k+i] * A[l*k+j]
			}
		}
		for l := range k {
			atb[i] += A[l*k+i] * rhs[l]
		}
		tr += ata[i*k+i]
	}
	lambda := 1e-12*tr + 1e-300
	for i := range k {
		ata[i*k+i] += lambda
	}
	a, ok := luSolve(ata, atb)
	if !ok {
		a = make([]float64, k)
	}
	for i := range a {
		a[i] += u
	}
	return a
}
