package weighting

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestUPGradTwoTasks checks UPGrad on two gradients against worked
// projections: without a conflict each gradient is its own projection
// (the mean); with one, g_i's projection is g_i − (g_i·g_j/‖g_j‖²)·g_j
// (it stays in the dual cone, by Cauchy–Schwarz), so UPGrad is half of
// PCGrad's update.
func TestUPGradTwoTasks(t *testing.T) {
	s3 := math.Sqrt(3) / 2
	for _, tc := range []struct {
		name   string
		g1, g2 []float64
		want   []float64 // weights
	}{
		{"orthogonal", []float64{1, 0}, []float64{0, 3}, []float64{0.5, 0.5}},
		{"equal", []float64{1, 2}, []float64{1, 2}, []float64{0.5, 0.5}},
		{"acute", []float64{1, 0}, []float64{1, 1}, []float64{0.5, 0.5}},
		// At 120°, g1·g2 = −1/2: p1 = g1 + g2/2, p2 = g2 + g1/2, and
		// (p1 + p2)/2 = 3/4·(g1 + g2).
		{"120°", []float64{1, 0}, []float64{-0.5, s3}, []float64{0.75, 0.75}},
		// TorchJD's documentation example, J = [[−4, 1, 1], [6, 1, 1]]:
		// G = [[18, −22], [−22, 38]], so p1 = g1 + 22/38·g2, p2 = g2 +
		// 22/18·g1 and w = ((1 + 22/18)/2, (1 + 22/38)/2) = (10/9, 15/19):
		// UPGrad = (50/171, 325/171, 325/171) ≈ (0.2924, 1.9006, 1.9006),
		// where TorchJD prints (0.2929, 1.9004, 1.9004) for its problem
		// regularised by 1e-4·I.
		{"torchjd", []float64{-4, 1, 1}, []float64{6, 1, 1}, []float64{10.0 / 9, 15.0 / 19}},
		// Opposite gradients: each projection is 0, g1/2 + g2/4 and
		// g1 + g2/2: w = (1/2, 1/4) + (1, 1/2).
		{"opposite", []float64{1, 1}, []float64{-2, -2}, []float64{1.5, 0.75}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := [][]float64{tc.g1, tc.g2}
			out, err := UPGrad{}.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: g})
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.want {
				if math.Abs(out.Weights[i]-tc.want[i]) > 1e-14 {
					t.Errorf("UPGrad(%v, %v) weights = %v; want %v", tc.g1, tc.g2, out.Weights, tc.want)
					break
				}
			}
			if !slices.Equal(out.HeadWeights, []float64{1, 1}) {
				t.Errorf("head weights %v; want [1 1]", out.HeadWeights)
			}
		})
	}
	rng := rand.New(rand.NewPCG(31, 32))
	for range 50 {
		g := randGrads(rng, 2, 1+rng.IntN(6))
		out, err := UPGrad{}.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: g})
		if err != nil {
			t.Fatal(err)
		}
		pc, err := PCGrad{}.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: g, Rand: rng})
		if err != nil {
			t.Fatal(err)
		}
		got := shared(out, g)
		for j := range got {
			if want := pc.Shared[j] / 2; math.Abs(got[j]-want) > 1e-12*(1+math.Abs(want)) {
				t.Fatalf("UPGrad(%v) = %v; want PCGrad/2 = %v", g, got, pc.Shared)
			}
		}
	}
}

// TestUPGradDualCone checks each projection's optimality conditions for
// minimise vᵀGv subject to v ≥ u: v ≥ u, Gv ≥ 0 (Gv are the projection's
// inner products with the gradients), and (Gv)_j = 0 wherever v_j > u_j;
// and that the update does not conflict with any task. D < T makes G
// singular.
func TestUPGradDualCone(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	for _, sz := range [][2]int{{3, 2}, {3, 10}, {4, 4}, {5, 3}, {6, 30}, {8, 5}} {
		for range 10 {
			g := randGrads(rng, sz[0], sz[1])
			tt := sz[0]
			gg := gram(g)
			trace := 0.0
			for i := range tt {
				trace += gg[i*tt+i]
			}
			for i := range gg {
				gg[i] /= trace
			}
			for i := range tt {
				v := upgradProject(gg, tt, i)
				gv := matVec(gg, v)
				for j := range tt {
					u := 0.0
					if j == i {
						u = 1 / float64(tt)
					}
					// The tolerances are rounding: G has trace 1.
					if v[j] < u || gv[j] < -1e-12 || v[j] > u+1e-9 && math.Abs(gv[j]) > 1e-12 {
						t.Fatalf("sizes %v, task %d: v_%d = %v (bound %v), (Gv)_%d = %v: not optimal; v = %v", sz, i, j, v[j], u, j, gv[j], v)
					}
				}
			}
			out, err := UPGrad{}.Combine(Input{Step: 1, Losses: randLosses(rng, tt), Grads: g})
			if err != nil {
				t.Fatal(err)
			}
			d := shared(out, g)
			for j := range g {
				if c := dot(g[j], d); c < -1e-10*trace {
					t.Errorf("sizes %v: g_%d·d = %v < 0", sz, j, c)
				}
			}
		}
	}
}

// TestUPGradNoConflict: gradients with non-negative elements have
// non-negative inner products, and UPGrad is then exactly the mean.
func TestUPGradNoConflict(t *testing.T) {
	rng := rand.New(rand.NewPCG(35, 36))
	for _, tt := range []int{1, 2, 3, 7} {
		g := randGrads(rng, tt, 6)
		for i := range g {
			for j := range g[i] {
				g[i][j] = math.Abs(g[i][j])
			}
		}
		out, err := UPGrad{}.Combine(Input{Step: 1, Losses: randLosses(rng, tt), Grads: g})
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range out.Weights {
			if w != 1/float64(tt) {
				t.Errorf("%d tasks without conflict: weight %d = %v; want %v", tt, i, w, 1/float64(tt))
			}
		}
	}
	out, err := UPGrad{}.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: [][]float64{{0, 0}, {0, 0}}})
	if err != nil || !slices.Equal(out.Weights, []float64{0.5, 0.5}) {
		t.Errorf("UPGrad on zero gradients = %v, %v; want weights [0.5 0.5]", out.Weights, err)
	}
}

// TestNNLSGram checks the active-set solver on a problem whose solution
// has one variable at its bound: minimise ½xᵀx + cᵀx, x ≥ 0, is
// x = max(−c, 0).
func TestNNLSGram(t *testing.T) {
	g := []float64{1, 0, 0, 0, 1, 0, 0, 0, 1}
	c := []float64{-1, 2, -3}
	if got, want := nnlsGram(g, c), []float64{1, 0, 3}; !slices.Equal(got, want) {
		t.Errorf("nnlsGram(I, %v) = %v; want %v", c, got, want)
	}
	// A singular G: ½(x1 + x2)² − x1 − x2 is least on the line
	// x1 + x2 = 1; the active-set method frees one variable only.
	x := nnlsGram([]float64{1, 1, 1, 1}, []float64{-1, -1})
	if x[0] < 0 || x[1] < 0 || math.Abs(x[0]+x[1]-1) > 1e-15 {
		t.Errorf("nnlsGram on a singular G = %v; want x ≥ 0 with x1 + x2 = 1", x)
	}
}
