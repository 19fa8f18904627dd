package weighting

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestFairGradFixedPoint checks that the weights solve (G·Gᵀ)·w =
// w^{−1/α}, that is w_t^{1/α}·(Mw)_t = 1, for several α on random
// well-conditioned inputs (D ≥ T keeps 0 out of the gradients' convex
// hull, almost surely).
func TestFairGradFixedPoint(t *testing.T) {
	rng := rand.New(rand.NewPCG(61, 62))
	for _, alpha := range []float64{0.3, 1, 2, 5} {
		for _, sz := range [][2]int{{2, 2}, {2, 6}, {3, 5}, {5, 10}, {8, 20}} {
			g := randGrads(rng, sz[0], sz[1])
			for i := range g {
				for j := range g[i] {
					g[i][j] *= 0.01 * float64(1+i) // the scale must not matter
				}
			}
			out, err := FairGrad{Alpha: alpha}.Combine(Input{Step: 1, Losses: randLosses(rng, sz[0]), Grads: g})
			if err != nil {
				t.Fatal(err)
			}
			mw := matVec(gram(g), out.Weights)
			for i, w := range out.Weights {
				if r := math.Pow(w, 1/alpha) * mw[i]; !(w > 0) || math.Abs(r-1) > 1e-8 {
					t.Errorf("α %v sizes %v: w_%d^{1/α}·(Mw)_%d = %v (w = %v); want 1", alpha, sz, i, i, r, out.Weights)
				}
			}
			if out.Shared != nil || out.HeadWeights != nil {
				t.Errorf("α %v: Shared %v, HeadWeights %v; want the weights alone", alpha, out.Shared, out.HeadWeights)
			}
		}
	}
}

// TestFairGradKnownCases: orthogonal gradients decouple the equation,
// ‖g_t‖²·w_t = w_t^{−1/α}, so w_t = ‖g_t‖^{−2α/(α+1)}; α = 1 is Nash-MTL's
// equation, whose solution Nash computes; α = 0 is the mean.
func TestFairGradKnownCases(t *testing.T) {
	g := [][]float64{{3, 0, 0}, {0, 0.5, 0}, {0, 0, 2}}
	norms := []float64{3, 0.5, 2}
	for _, alpha := range []float64{0.5, 1, 2, 4} {
		out, err := FairGrad{Alpha: alpha}.Combine(Input{Step: 1, Losses: []float64{1, 1, 1}, Grads: g})
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range norms {
			if want := math.Pow(n, -2*alpha/(alpha+1)); math.Abs(out.Weights[i]-want) > 1e-10*want {
				t.Errorf("α %v on orthogonal gradients: w_%d = %v; want %v", alpha, i, out.Weights[i], want)
			}
		}
	}
	rng := rand.New(rand.NewPCG(63, 64))
	for _, sz := range [][2]int{{2, 3}, {3, 4}, {5, 9}} {
		g := randGrads(rng, sz[0], sz[1])
		in := Input{Step: 1, Losses: randLosses(rng, sz[0]), Grads: g}
		fg, err := FairGrad{Alpha: 1}.Combine(in)
		if err != nil {
			t.Fatal(err)
		}
		nash, err := (&Nash{}).Combine(in)
		if err != nil {
			t.Fatal(err)
		}
		for i := range fg.Weights {
			if math.Abs(fg.Weights[i]-nash.Weights[i]) > 1e-8*nash.Weights[i] {
				t.Errorf("sizes %v: FairGrad{Alpha: 1} weights %v; want Nash's %v", sz, fg.Weights, nash.Weights)
				break
			}
		}
	}
	out, err := FairGrad{}.Combine(Input{Step: 1, Losses: []float64{1, 1, 1, 1}, Grads: randGrads(rng, 4, 3)})
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range out.Weights {
		if w != 0.25 {
			t.Errorf("FairGrad{} weight %d = %v; want 1/4", i, w)
		}
	}
}

// TestFairGradNoSolution checks the fallback where no solution exists
// (opposite gradients: 0 is in their convex hull) and for zero gradients.
func TestFairGradNoSolution(t *testing.T) {
	for _, g := range [][][]float64{{{1, 1}, {-2, -2}}, {{0, 0}, {0, 0}}} {
		out, err := FairGrad{Alpha: 2}.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: g})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range out.Weights {
			if !(w > 0) || math.IsInf(w, 0) {
				t.Errorf("FairGrad on %v: weights %v; want finite positive ones", g, out.Weights)
				break
			}
		}
	}
}

// TestFairGradBadAlpha: α must be finite and at least 0.
func TestFairGradBadAlpha(t *testing.T) {
	for _, alpha := range []float64{-1, math.NaN(), math.Inf(1)} {
		if _, err := (FairGrad{Alpha: alpha}).Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: [][]float64{{1, 0}, {0, 1}}}); err == nil {
			t.Errorf("FairGrad{Alpha: %v}: no error", alpha)
		}
	}
}
