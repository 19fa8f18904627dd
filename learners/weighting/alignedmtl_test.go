package weighting

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestAlignedMTLWorked checks Aligned-MTL's weights B·1 on two gradients
// against hand computations.
func TestAlignedMTLWorked(t *testing.T) {
	s3 := math.Sqrt(3) / 2
	for _, tc := range []struct {
		name   string
		g1, g2 []float64
		want   []float64
	}{
		// M = diag(9, 1): λ_r = 1, B = diag(1/3, 1); the aligned rows
		// are (1, 0) and (0, 1).
		{"orthogonal", []float64{3, 0}, []float64{0, 1}, []float64{1.0 / 3, 1}},
		// At 120°, M = [[1, −1/2], [−1/2, 1]] has eigenvalues 1/2 on
		// (1, 1)/√2 and 3/2 on (1, −1)/√2: B = P₁ + sqrt(1/3)·P₂ and
		// B·1 = P₁·1 = (1, 1).
		{"120°", []float64{1, 0}, []float64{-0.5, s3}, []float64{1, 1}},
		// Equal gradients: M = [[5, 5], [5, 5]] has rank 1, eigenvalue
		// 10 on (1, 1)/√2: B = P₁, B·1 = (1, 1): the sum.
		{"equal", []float64{1, 2}, []float64{1, 2}, []float64{1, 1}},
		// Opposite gradients: rank 1 again, eigenvalue 10 on (1, −2)/√5:
		// B = P₁ and B·1 = (−1/5, 2/5): the aligned rows are g1 and g2
		// themselves, and the update (−1, −1) is their sum.
		{"opposite", []float64{1, 1}, []float64{-2, -2}, []float64{-0.2, 0.4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := AlignedMTL{}.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: [][]float64{tc.g1, tc.g2}})
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.want {
				if math.Abs(out.Weights[i]-tc.want[i]) > 1e-14 {
					t.Errorf("AlignedMTL(%v, %v) weights = %v; want %v", tc.g1, tc.g2, out.Weights, tc.want)
					break
				}
			}
			if !slices.Equal(out.HeadWeights, []float64{1, 1}) {
				t.Errorf("head weights %v; want [1 1]", out.HeadWeights)
			}
		})
	}
	out, err := AlignedMTL{}.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: [][]float64{{0, 0}, {0, 0}}})
	if err != nil || !slices.Equal(out.Weights, []float64{1, 1}) {
		t.Errorf("AlignedMTL on zero gradients = %v, %v; want weights [1 1]", out.Weights, err)
	}
}

// TestAlignedMTLEqualSingularValues checks that the aligned matrix B·G
// has equal singular values: its Gram matrix A = B·M·B is c times a
// projector (A² = c·A) of G's rank, with c the smallest positive
// eigenvalue of M, which for full rank is checked by M − c(1∓1e-9)·I
// being positive definite just below c and not just above it. It also
// checks that the shared gradient is the sum of the aligned rows.
func TestAlignedMTLEqualSingularValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	for _, sz := range [][2]int{{2, 2}, {2, 9}, {3, 3}, {4, 12}, {6, 20}, {4, 2}, {6, 3}} {
		for range 5 {
			tt := sz[0]
			g := randGrads(rng, tt, sz[1])
			for i := range g {
				for j := range g[i] {
					g[i][j] *= float64(1 + 3*i) // ill-conditioned
				}
			}
			m := gram(g)
			b, err := alignedBalance(slices.Clone(m), tt)
			if err != nil {
				t.Fatal(err)
			}
			a := matMul(matMul(b, m, tt), b, tt)
			rank := min(sz[0], sz[1])
			c := 0.0
			for i := range tt {
				c += a[i*tt+i]
			}
			c /= float64(rank)
			aa := matMul(a, a, tt)
			for i := range aa {
				if math.Abs(aa[i]-c*a[i]) > 1e-10*c*c {
					t.Fatalf("sizes %v: (BMB)² ≠ c·BMB with c = %v: %v vs %v", sz, c, aa, a)
				}
			}
			if rank == tt {
				shifted := func(f float64) bool {
					s := slices.Clone(m)
					for i := range tt {
						s[i*tt+i] -= c * f
					}
					_, ok := cholSolve(s, make([]float64, tt))
					return ok
				}
				if !shifted(1-1e-9) || shifted(1+1e-9) {
					t.Errorf("sizes %v: c = %v is not M's smallest eigenvalue", sz, c)
				}
			}
			out, err := AlignedMTL{}.Combine(Input{Step: 1, Losses: randLosses(rng, tt), Grads: g})
			if err != nil {
				t.Fatal(err)
			}
			aligned := make([]float64, sz[1]) // Σ_i (B·G)_i
			for i := range tt {
				for k := range tt {
					for j := range aligned {
						aligned[j] += b[i*tt+k] * g[k][j]
					}
				}
			}
			d := shared(out, g)
			for j := range d {
				if math.Abs(d[j]-aligned[j]) > 1e-10*(1+math.Abs(aligned[j])) {
					t.Fatalf("sizes %v: shared gradient %v; want the sum of the aligned rows %v", sz, d, aligned)
				}
			}
		}
	}
}

// matMul returns a·b for n×n row-major matrices.
func matMul(a, b []float64, n int) []float64 {
	c := make([]float64, n*n)
	for i := range n {
		for k := range n {
			for j := range n {
				c[i*n+j] += a[i*n+k] * b[k*n+j]
			}
		}
	}
	return c
}
