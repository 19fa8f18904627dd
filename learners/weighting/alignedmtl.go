package weighting

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// alignedRankEps is the relative tolerance below which an eigenvalue of
// the Gram matrix counts as 0: float32's machine epsilon, as LibMTL and
// TorchJD take it (torch.finfo() of the default dtype) whatever the
// precision of the gradients.
const alignedRankEps = 0x1p-23

// AlignedMTL is Aligned-MTL (Senushkin, Patakin, Kuznetsov and Konushin
// 2023, "Independent Component Alignment for Multi-Task Learning"), in
// LibMTL's form. It removes the ill-conditioning of the T×D gradient
// matrix G, whose rows are the task gradients, by replacing it with the
// matrix of equal singular values closest to it: with the Gram matrix
// M = G·Gᵀ = V·Λ·Vᵀ (eigenvalues λ_1 ≥ ... ≥ λ_r > 0 of its rank r),
//
//	B = sqrt(λ_r)·V·Λ^{−1/2}·Vᵀ,  Ĝ = B·G,
//
// so that Ĝ·Ĝᵀ = λ_r·V·Vᵀ: every singular value of the aligned matrix Ĝ
// is the smallest one of G, sqrt(λ_r). The shared gradient is the sum of
// Ĝ's rows, Σ_t w_t g_t with w = B·1, the weights (LibMTL sums the rows
// where TorchJD averages them; the paper's Algorithm 1 leaves the scale to
// the preference vector). Eigenvalues at most λ_1·T·2⁻²³ count as 0, the
// tolerance of LibMTL and TorchJD (float32's epsilon); when every one is
// 0 (all gradients 0) the weights are 1, as TorchJD's identity B gives.
// The heads keep their own unweighted gradients, as in LibMTL. The
// eigenvalues come from gonum's symmetric eigensolver. The zero value is
// ready to use.
type AlignedMTL struct{}

var _ Method = AlignedMTL{}

// Name returns "alignedmtl".
func (AlignedMTL) Name() string { return "alignedmtl" }

// Needs returns SharedGrads.
func (AlignedMTL) Needs() Needs { return SharedGrads }

// Combine returns the Aligned-MTL weights B·1. It returns an *InputError
// for a wrong number of losses or gradients, gradients of different
// lengths or non-finite values, and an error if the eigensolver fails.
func (m AlignedMTL) Combine(in Input) (Output, error) {
	t, _, err := check(m.Name(), in, 0, true)
	if err != nil {
		return Output{}, err
	}
	b, err := alignedBalance(gram(in.Grads), t)
	if err != nil {
		return Output{}, err
	}
	w := make([]float64, t)
	for i := range t {
		for j := range t {
			w[i] += b[i*t+j]
		}
	}
	return Output{Weights: w, HeadWeights: ones(t)}, nil
}

// alignedBalance returns Aligned-MTL's T×T balance matrix B for the Gram
// matrix gg, row-major: sqrt(λ_r)·V_r·Λ_r^{−1/2}·V_rᵀ over the r
// eigenvalues above the rank tolerance, or the identity if there are
// none.
func alignedBalance(gg []float64, t int) ([]float64, error) {
	var es mat.EigenSym
	if !es.Factorize(mat.NewSymDense(t, gg), true) {
		return nil, fmt.Errorf("weighting: alignedmtl: the eigendecomposition of the %d×%d Gram matrix did not converge", t, t)
	}
	vals := es.Values(nil) // ascending
	var vecs mat.Dense
	es.VectorsTo(&vecs)
	tol := vals[t-1] * float64(t) * alignedRankEps
	b := make([]float64, t*t)
	low := -1 // the smallest eigenvalue kept
	for k, l := range vals {
		if l > tol {
			low = k
			break
		}
	}
	if low < 0 || !(vals[t-1] > 0) {
		for i := range t {
			b[i*t+i] = 1
		}
		return b, nil
	}
	root := math.Sqrt(vals[low])
	for k := low; k < t; k++ {
		f := root / math.Sqrt(vals[k])
		for i := range t {
			vi := vecs.At(i, k) * f
			for j := range t {
				b[i*t+j] += vi * vecs.At(j, k)
			}
		}
	}
	return b, nil
}
