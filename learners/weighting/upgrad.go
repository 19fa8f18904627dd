package weighting

import "math"

// UPGrad is the unconflicting projection of gradients, the aggregator of
// Jacobian descent (Quinton and Rey 2024, "Jacobian Descent for
// Multi-Objective Optimization"), as TorchJD's UPGrad with its default
// preference (the mean). Each task gradient g_i is projected onto the dual cone of
// the task gradients, {x : g_j·x ≥ 0 for every j}, and the projections
// are averaged. With G the T×T Gram matrix of the gradients, the
// projection of g_i is Σ_j v_j g_j for the solution v of the quadratic
// program (the paper's Proposition 1)
//
//	minimise vᵀGv  subject to  v ≥ e_i/T,
//
// and the shared gradient is Σ_j w_j g_j with w the sum of the T
// solutions. It has a non-negative inner product with every task
// gradient, so no task's loss increases to first order, and it is the
// mean gradient when no two gradients conflict (g_i·g_j ≥ 0 for all i,
// j). For two tasks it is half of PCGrad's update.
//
// Each program is solved exactly, up to rounding, by the active-set
// method of Lawson and Hanson (1974) for non-negative least squares,
// applied to the excess x = v − e_i/T ≥ 0, on G divided by its trace (which
// leaves v unchanged). TorchJD instead adds 1e-4·I to the trace-normalised
// G so that its QP solver accepts a singular one, and returns the mean
// when the trace of G (the squared Frobenius norm of the Jacobian) is
// below 1e-4; neither is needed here, so a singular G (parallel
// gradients, or more tasks than parameters) and small gradients are
// projected exactly.
//
// The weights are w (they sum to at least 1); the heads keep their own
// unweighted gradients, as in TorchJD's and LibMTL's multi-task training.
// The zero value is ready to use.
type UPGrad struct{}

var _ Method = UPGrad{}

// Name returns "upgrad".
func (UPGrad) Name() string { return "upgrad" }

// Needs returns SharedGrads.
func (UPGrad) Needs() Needs { return SharedGrads }

// Combine returns the UPGrad weights. It returns an *InputError for a
// wrong number of losses or gradients, gradients of different lengths or
// non-finite values.
func (m UPGrad) Combine(in Input) (Output, error) {
	t, _, err := check(m.Name(), in, 0, true)
	if err != nil {
		return Output{}, err
	}
	gg := gram(in.Grads)
	trace := 0.0
	for i := range t {
		trace += gg[i*t+i]
	}
	w := make([]float64, t)
	if trace == 0 {
		// Every gradient is 0: any weights give 0; take the mean's.
		for i := range w {
			w[i] = 1 / float64(t)
		}
		return Output{Weights: w, HeadWeights: ones(t)}, nil
	}
	for i := range gg {
		gg[i] /= trace
	}
	for i := range t {
		for j, v := range upgradProject(gg, t, i) {
			w[j] += v
		}
	}
	return Output{Weights: w, HeadWeights: ones(t)}, nil
}

// upgradProject returns the v ≥ e_i/T minimising vᵀGv for the T×T Gram
// matrix gg: the weights of g_i's projection onto the dual cone.
func upgradProject(gg []float64, t, i int) []float64 {
	u := make([]float64, t)
	u[i] = 1 / float64(t)
	// With v = u + x: vᵀGv = xᵀGx + 2xᵀGu + uᵀGu, so x minimises
	// ½xᵀGx + xᵀ(Gu) over x ≥ 0.
	x := nnlsGram(gg, matVec(gg, u))
	for j := range x {
		x[j] += u[j]
	}
	return x
}

// nnlsGram returns an x ≥ 0 minimising ½xᵀGx + cᵀx for the n×n symmetric
// positive semidefinite row-major matrix g, by the active-set method of
// Lawson and Hanson (1974, "Solving Least Squares Problems", algorithm
// NNLS) written for the normal equations: starting from x = 0, it frees
// the variable whose negative gradient −(Gx + c)_j is largest, solves the
// equality-constrained problem on the free variables, and steps back
// towards x, fixing at 0 any that would turn negative, until no fixed
// variable has a negative gradient beyond the rounding error of computing
// it. The free variables' columns of G stay linearly independent, so
// their system is positive definite even when G is singular. If rounding
// makes a system indefinite, or after 10n+100 rounds, it returns the last
// feasible x.
func nnlsGram(g, c []float64) []float64 {
	n := len(c)
	x := make([]float64, n)
	free := make([]bool, n)
	z := make([]float64, n)
	for range 10*n + 100 {
		// Pick the fixed variable with the most negative gradient,
		// beyond its rounding error.
		best, bj := 0.0, -1
		for j := range n {
			if free[j] {
				continue
			}
			s, mag := c[j], math.Abs(c[j])
			for k := range n {
				s += g[j*n+k] * x[k]
				mag += math.Abs(g[j*n+k] * x[k])
			}
			if neg := -s; neg > 64*0x1p-52*mag && neg > best {
				best, bj = neg, j
			}
		}
		if bj < 0 {
			return x
		}
		free[bj] = true
		for first := true; ; first = false {
			if !nnlsSolveFree(g, c, free, z) || first && !(z[bj] > 0) {
				// Rounding: the new variable cannot enter.
				free[bj] = false
				return x
			}
			step, at := 1.0, -1
			for j := range n {
				if free[j] && z[j] <= 0 {
					if s := x[j] / (x[j] - z[j]); s < step {
						step, at = s, j
					}
				}
			}
			for j := range n {
				if free[j] {
					x[j] += step * (z[j] - x[j])
				}
			}
			if at < 0 {
				break
			}
			for j := range n {
				if free[j] && (j == at || x[j] <= 0) {
					free[j], x[j] = false, 0
				}
			}
		}
	}
	return x
}

// nnlsSolveFree sets z to the solution of G_FF·z_F = −c_F on the free
// variables F, and 0 elsewhere. It reports false if G_FF is not positive
// definite to working precision.
func nnlsSolveFree(g, c []float64, free []bool, z []float64) bool {
	n := len(c)
	var idx []int
	for j := range n {
		z[j] = 0
		if free[j] {
			idx = append(idx, j)
		}
	}
	k := len(idx)
	a := make([]float64, k*k)
	b := make([]float64, k)
	for r, i := range idx {
		b[r] = -c[i]
		for s, j := range idx {
			a[r*k+s] = g[i*n+j]
		}
	}
	sol, ok := cholSolve(a, b)
	if !ok {
		return false
	}
	for r, i := range idx {
		z[i] = sol[r]
	}
	return true
}
