package weighting

import (
	"fmt"
	"math"
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
// non-finite values or a zero gradient (which has no direction), and an
// error matching ErrSingular when D·Uᵀ is singular to working precision,
// as when two tasks' gradients point the same way.
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
	a, ok := luSolve(at, r)
	if !ok {
		return Output{}, fmt.Errorf("weighting: imtl: D·Uᵀ is singular (two tasks' gradients share a direction?): %w", ErrSingular)
	}
	w := make([]float64, t)
	w[0] = 1
	for i, v := range a {
		w[i+1] = v
		w[0] -= v
	}
	return Output{Weights: w}, nil
}
