package weighting

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// randGrads returns t random gradients of length d with standard normal
// elements.
func randGrads(rng *rand.Rand, t, d int) [][]float64 {
	g := make([][]float64, t)
	for i := range g {
		g[i] = make([]float64, d)
		for j := range g[i] {
			g[i][j] = rng.NormFloat64()
		}
	}
	return g
}

func randLosses(rng *rand.Rand, t int) []float64 {
	l := make([]float64, t)
	for i := range l {
		l[i] = 0.1 + rng.Float64()
	}
	return l
}

// shared returns the shared gradient an Output stands for.
func shared(out Output, grads [][]float64) []float64 {
	if out.Shared != nil {
		return out.Shared
	}
	return combine(out.Weights, grads)
}

func sum(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s
}

func TestNew(t *testing.T) {
	for _, name := range Names() {
		m, err := New(name, 3)
		if err != nil {
			t.Fatalf("New(%q, 3): %v", name, err)
		}
		if m.Name() != name {
			t.Errorf("New(%q, 3).Name() = %q", name, m.Name())
		}
	}
	_, err := New("sgd", 3)
	if err == nil || !strings.Contains(err.Error(), strings.Join(Names(), ", ")) {
		t.Errorf("New(\"sgd\", 3) error = %v; want one listing %v", err, Names())
	}
	if _, err := New("uw", 0); err == nil {
		t.Errorf("New(\"uw\", 0): no error")
	}
}

func TestEW(t *testing.T) {
	for _, tc := range []struct {
		m    EW
		want float64
	}{{EW{}, 1}, {EW{Mean: true}, 0.25}} {
		out, err := tc.m.Combine(Input{Step: 1, Losses: []float64{1, 2, 3, 4}})
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range out.Weights {
			if w != tc.want {
				t.Errorf("%+v: weight %d = %v; want %v", tc.m, i, w, tc.want)
			}
		}
	}
}

// TestPCGrad checks PCGrad on two 2-D gradients against projections
// worked by hand.
func TestPCGrad(t *testing.T) {
	for _, tc := range []struct {
		name   string
		g1, g2 []float64
		want   []float64
	}{
		// g1·g2 = −1: g1′ = g1 + g2/2 = (0.5, 0.5), g2′ = g2 + g1 = (0, 1).
		{"conflicting", []float64{1, 0}, []float64{-1, 1}, []float64{0.5, 1.5}},
		// g1·g2 = −2: g1′ = (2, 1) + (2/8)(−2, 2) = (1.5, 1.5),
		// g2′ = (−2, 2) + (2/5)(2, 1) = (−1.2, 2.4).
		{"conflicting2", []float64{2, 1}, []float64{-2, 2}, []float64{0.3, 3.9}},
		{"agreeing", []float64{1, 0}, []float64{1, 1}, []float64{2, 1}},
		{"orthogonal", []float64{1, 0}, []float64{0, 3}, []float64{1, 3}},
		// Opposite: each projection removes everything.
		{"opposite", []float64{1, 1}, []float64{-2, -2}, []float64{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			out, err := PCGrad{}.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: [][]float64{tc.g1, tc.g2}, Rand: rng})
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.want {
				if math.Abs(out.Shared[i]-tc.want[i]) > 1e-15 {
					t.Errorf("PCGrad(%v, %v) = %v; want %v", tc.g1, tc.g2, out.Shared, tc.want)
					break
				}
			}
			if !slices.Equal(out.Weights, []float64{1, 1}) {
				t.Errorf("weights %v; want [1 1]", out.Weights)
			}
		})
	}
}

// TestPCGradNoConflict checks that the projected gradients of T tasks no
// longer conflict with the gradient each was last projected against, and
// that gradients without conflicts are summed unchanged.
func TestPCGradNoConflict(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	g := [][]float64{{1, 0, 0}, {0, 1, 0}, {1, 1, 1}}
	out, err := PCGrad{}.Combine(Input{Step: 1, Losses: []float64{1, 1, 1}, Grads: g, Rand: rng})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{2, 2, 1}; !slices.Equal(out.Shared, want) {
		t.Errorf("PCGrad(%v) = %v; want %v", g, out.Shared, want)
	}
}

// TestMGDATwoTasks checks MGDA against the closed form for two tasks,
// γ = clip((g2−g1)·g2/‖g1−g2‖², 0, 1).
func TestMGDATwoTasks(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	cases := []struct {
		name   string
		g1, g2 []float64
	}{
		{"conflicting", []float64{1, 0}, []float64{-1, 1}},
		{"clipped to g1", []float64{1, 0}, []float64{3, 1}}, // g1·g2 ≥ ‖g1‖²
		{"clipped to g2", []float64{3, 1}, []float64{1, 0}},
		{"equal", []float64{1, 2}, []float64{1, 2}},
	}
	for i := range 20 {
		g := randGrads(rng, 2, 1+i%5)
		cases = append(cases, struct {
			name   string
			g1, g2 []float64
		}{"random", g[0], g[1]})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := MGDA{}.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: [][]float64{tc.g1, tc.g2}})
			if err != nil {
				t.Fatal(err)
			}
			d := make([]float64, len(tc.g1))
			for i := range d {
				d[i] = tc.g1[i] - tc.g2[i]
			}
			want := 0.5
			if den := dot(d, d); den > 0 {
				want = math.Min(math.Max(-dot(d, tc.g2)/den, 0), 1)
			}
			if math.Abs(out.Weights[0]-want) > 1e-12 || math.Abs(out.Weights[1]-(1-want)) > 1e-12 {
				t.Errorf("MGDA(%v, %v) weights = %v; want [%v %v]", tc.g1, tc.g2, out.Weights, want, 1-want)
			}
		})
	}
}

// TestMGDAOptimality checks the KKT conditions of min_γ∈Δ γᵀMγ for more
// than two tasks: (Mγ)_t ≥ γᵀMγ for every t, with equality where γ_t > 0.
func TestMGDAOptimality(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, norm := range []Normalization{NormNone, NormL2, NormLoss, NormLossL2} {
		for _, sz := range [][2]int{{3, 2}, {3, 10}, {4, 3}, {5, 20}, {8, 4}} {
			t.Run(norm.String(), func(t *testing.T) {
				g := randGrads(rng, sz[0], sz[1])
				losses := randLosses(rng, sz[0])
				out, err := MGDA{Norm: norm}.Combine(Input{Step: 1, Losses: losses, Grads: g})
				if err != nil {
					t.Fatal(err)
				}
				// Recover γ and the normalised gradients.
				gamma := make([]float64, sz[0])
				ng := make([][]float64, sz[0])
				for i := range g {
					n := 1.0
					switch norm {
					case NormL2:
						n = math.Sqrt(dot(g[i], g[i]))
					case NormLoss:
						n = losses[i]
					case NormLossL2:
						n = losses[i] * math.Sqrt(dot(g[i], g[i]))
					}
					gamma[i] = out.Weights[i] * n
					ng[i] = make([]float64, sz[1])
					for j := range ng[i] {
						ng[i][j] = g[i][j] / n
					}
				}
				if math.Abs(sum(gamma)-1) > 1e-12 || slices.Min(gamma) < 0 {
					t.Fatalf("γ = %v is not on the simplex", gamma)
				}
				mm := gram(ng)
				mg := matVec(mm, gamma)
				q := dot(gamma, mg)
				scale := slices.Max(mm)
				// 1e-6·scale: the solver stops at a Frank–Wolfe gap of
				// 1e-12·scale, and the KKT residual of a gap-ε point is
				// O(sqrt(ε·scale)).
				for i := range gamma {
					if mg[i] < q-1e-6*scale || (gamma[i] > 1e-6 && mg[i] > q+1e-6*scale) {
						t.Errorf("sizes %v: (Mγ)_%d = %v, γᵀMγ = %v, γ_%d = %v", sz, i, mg[i], q, i, gamma[i])
					}
				}
			})
		}
	}
}

func TestCAGradZeroC(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, sz := range [][2]int{{2, 2}, {3, 5}, {5, 1}} {
		g := randGrads(rng, sz[0], sz[1])
		out, err := CAGrad{}.Combine(Input{Step: 1, Losses: randLosses(rng, sz[0]), Grads: g})
		if err != nil {
			t.Fatal(err)
		}
		for j := range sz[1] {
			s := 0.0
			for i := range g {
				s += g[i][j]
			}
			if want := s / float64(sz[0]); out.Shared[j] != want {
				t.Errorf("CAGrad{C: 0}(%v)[%d] = %v; want the mean %v", g, j, out.Shared[j], want)
			}
		}
	}
}

// TestCAGradDual checks CAGrad against its defining problem: its
// unrescaled direction d(1+C²) maximises min_t g_t·d over the ball
// ‖d − g₀‖ ≤ c, whose value is min_w F(w) by duality.
func TestCAGradDual(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	// D ≥ T keeps 0 out of the gradients' convex hull, where the 1e-8
	// regularisers of F and d would shift min_t g_t·d by up to c·1e-4.
	for _, sz := range [][2]int{{2, 2}, {2, 7}, {3, 3}, {3, 6}, {5, 10}} {
		for _, cc := range []float64{0.2, 0.5, 0.9} {
			g := randGrads(rng, sz[0], sz[1])
			m := CAGrad{C: cc}
			out, err := m.Combine(Input{Step: 1, Losses: randLosses(rng, sz[0]), Grads: g})
			if err != nil {
				t.Fatal(err)
			}
			gg := gram(g)
			c := cc * math.Sqrt(sum(gg)/float64(sz[0]*sz[0])+1e-8)
			w := caGradWeights(gg, sz[0], c)
			fmin := caGradObjective(gg, c, w, nil)
			worst := func(d []float64) float64 {
				v := math.Inf(1)
				for _, gt := range g {
					v = math.Min(v, dot(gt, d))
				}
				return v
			}
			d := slices.Clone(out.Shared)
			for j := range d {
				d[j] *= 1 + cc*cc
			}
			// The 1e-8 terms of F and d move the optimum by O(1e-8·c).
			if got := worst(d); math.Abs(got-fmin) > 1e-7 {
				t.Errorf("CAGrad{%v} sizes %v: min_t g_t·d = %v; want min F = %v", cc, sz, got, fmin)
			}
			// No point of the ball does better.
			g0 := combine(slices.Repeat([]float64{1 / float64(sz[0])}, sz[0]), g)
			for range 200 {
				u := randGrads(rng, 1, sz[1])[0]
				r := c * math.Pow(rng.Float64(), 1/float64(sz[1])) / math.Sqrt(dot(u, u))
				for j := range u {
					u[j] = g0[j] + r*u[j]
				}
				if worst(u) > fmin+1e-7 {
					t.Fatalf("CAGrad{%v} sizes %v: a point of the ball has min_t g_t·d = %v > %v", cc, sz, worst(u), fmin)
				}
			}
		}
	}
}

// TestUncertainty checks the weights and ParamGrads against the formula
// ℓ(s) = Σ_t L_t/(2·exp(s_t)) + s_t/2 and its central finite differences.
func TestUncertainty(t *testing.T) {
	m, err := NewUncertainty(3)
	if err != nil {
		t.Fatal(err)
	}
	s := []float64{0.3, -1.2, 2}
	if err := m.Params().SetFlat(s); err != nil {
		t.Fatal(err)
	}
	losses := []float64{1.5, 0.2, 4}
	out, err := m.Combine(Input{Step: 1, Losses: losses})
	if err != nil {
		t.Fatal(err)
	}
	loss := func(s, l []float64) float64 {
		v := 0.0
		for i := range s {
			v += l[i]/(2*math.Exp(s[i])) + s[i]/2
		}
		return v
	}
	const h = 1e-6
	for i := range s {
		if want := 1 / (2 * math.Exp(s[i])); math.Abs(out.Weights[i]-want) > 1e-15 {
			t.Errorf("weight %d = %v; want %v", i, out.Weights[i], want)
		}
		if want := -losses[i]/(2*math.Exp(s[i])) + 0.5; math.Abs(out.ParamGrads[0][i]-want) > 1e-15 {
			t.Errorf("ParamGrads[0][%d] = %v; want %v", i, out.ParamGrads[0][i], want)
		}
		// Central differences: truncation O(h²) ≈ 1e-12, rounding
		// O(ε/h) ≈ 1e-10.
		sp, sm := slices.Clone(s), slices.Clone(s)
		sp[i] += h
		sm[i] -= h
		if fd := (loss(sp, losses) - loss(sm, losses)) / (2 * h); math.Abs(out.ParamGrads[0][i]-fd) > 1e-8 {
			t.Errorf("ParamGrads[0][%d] = %v; finite difference %v", i, out.ParamGrads[0][i], fd)
		}
		lp, lm := slices.Clone(losses), slices.Clone(losses)
		lp[i] += h
		lm[i] -= h
		if fd := (loss(s, lp) - loss(s, lm)) / (2 * h); math.Abs(out.Weights[i]-fd) > 1e-8 {
			t.Errorf("weight %d = %v; ∂ℓ/∂L by finite difference %v", i, out.Weights[i], fd)
		}
	}
	if _, err := m.Combine(Input{Step: 1, Losses: []float64{1, 2}}); !errors.Is(err, ErrInput) {
		t.Errorf("Combine with 2 losses for 3 tasks: error %v; want ErrInput", err)
	}
}

// TestGradNormFiniteDifferences checks ParamGrads against central
// differences of L_grad(a) with the target held constant.
func TestGradNormFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for trial := range 20 {
		tasks := 2 + trial%4
		m, err := NewGradNorm(tasks)
		if err != nil {
			t.Fatal(err)
		}
		a := make([]float64, tasks)
		for i := range a {
			a[i] = rng.NormFloat64()
		}
		if err := m.Params().SetFlat(a); err != nil {
			t.Fatal(err)
		}
		g := randGrads(rng, tasks, 4)
		m.first = randLosses(rng, tasks) // as if a first step had run
		losses := randLosses(rng, tasks)
		out, err := m.Combine(Input{Step: 2, Losses: losses, Grads: g})
		if err != nil {
			t.Fatal(err)
		}
		norms := make([]float64, tasks)
		for i := range g {
			norms[i] = math.Sqrt(dot(g[i], g[i]))
		}
		target := gradNormTarget(softmaxWeights(a), norms, losses, m.first, m.Alpha)
		const h = 1e-6
		for k := range a {
			ap, am := slices.Clone(a), slices.Clone(a)
			ap[k] += h
			am[k] -= h
			lp, _ := gradNormLoss(ap, norms, target)
			lm, _ := gradNormLoss(am, norms, target)
			// Away from the kinks of |·| (none lies within h of a
			// random point, almost surely), the error is O(h²).
			if fd := (lp - lm) / (2 * h); math.Abs(out.ParamGrads[0][k]-fd) > 1e-7 {
				t.Errorf("trial %d: ∂L_grad/∂a_%d = %v; finite difference %v", trial, k, out.ParamGrads[0][k], fd)
			}
		}
	}
}

// TestGradNormWeights runs GradNorm for many steps of gradient descent on
// its logits with random inputs: the weights must stay positive and sum
// to T.
func TestGradNormWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	const tasks = 4
	m, err := NewGradNorm(tasks)
	if err != nil {
		t.Fatal(err)
	}
	for step := 1; step <= 2000; step++ {
		g := randGrads(rng, tasks, 6)
		for i := range g {
			for j := range g[i] {
				g[i][j] *= float64(i + 1) // tasks of different scales
			}
		}
		out, err := m.Combine(Input{Step: step, Losses: randLosses(rng, tasks), Grads: g})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(sum(out.Weights)-tasks) > 1e-12 || slices.Min(out.Weights) <= 0 {
			t.Fatalf("step %d: weights %v; want positive, summing to %d", step, out.Weights, tasks)
		}
		a := m.Params().Flatten()
		for i := range a {
			a[i] -= 0.05 * out.ParamGrads[0][i]
		}
		if err := m.Params().SetFlat(a); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGradNormBalance checks GradNorm's equilibrium when every task trains
// at the same rate (r_t = 1): the targets are all Ḡ, so L_grad is least
// when the weighted norms w_t‖g_t‖ are equal, w_t = T·(1/‖g_t‖)/Σ_k 1/‖g_k‖.
func TestGradNormBalance(t *testing.T) {
	const tasks = 4
	m, err := NewGradNorm(tasks)
	if err != nil {
		t.Fatal(err)
	}
	g := [][]float64{{1, 0}, {0, 2}, {3, 0}, {0, -4}}
	losses := []float64{1, 2, 3, 4}
	var out Output
	for step := 1; step <= 3000; step++ {
		out, err = m.Combine(Input{Step: step, Losses: losses, Grads: g})
		if err != nil {
			t.Fatal(err)
		}
		a := m.Params().Flatten()
		for i := range a {
			a[i] -= 1e-3 * out.ParamGrads[0][i]
		}
		if err := m.Params().SetFlat(a); err != nil {
			t.Fatal(err)
		}
	}
	inv := 1.0 + 1.0/2 + 1.0/3 + 1.0/4
	for i, w := range out.Weights {
		// L_grad's subgradient steps oscillate around the optimum with
		// an amplitude of about the step, 1e-3·T·max‖g‖ in a.
		if want := tasks / float64(i+1) / inv; math.Abs(w-want) > 0.02*want {
			t.Errorf("weight %d = %v; want %v", i, w, want)
		}
	}
}

// TestDWA checks the epoch bookkeeping and the softmax weights.
func TestDWA(t *testing.T) {
	m := &DWA{EpochSteps: 2}
	// Epoch means: epoch 0: (2, 4), epoch 1: (1, 4), epoch 2: (1, 1).
	losses := [][]float64{{1, 3}, {3, 5}, {1, 4}, {1, 4}, {1, 1}, {1, 1}, {5, 5}}
	for step, l := range losses {
		out, err := m.Combine(Input{Step: step + 1, Losses: l})
		if err != nil {
			t.Fatal(err)
		}
		var want []float64
		switch e := step / 2; e {
		case 0, 1:
			want = []float64{1, 1}
		case 2: // r = (1/2, 4/4)
			want = softmaxRef([]float64{0.5 / 2, 1.0 / 2})
		case 3: // r = (1/1, 1/4)
			want = softmaxRef([]float64{1.0 / 2, 0.25 / 2})
		}
		for i := range want {
			if math.Abs(out.Weights[i]-want[i]) > 1e-15 {
				t.Errorf("step %d: weights %v; want %v", step+1, out.Weights, want)
			}
		}
		if math.Abs(sum(out.Weights)-2) > 1e-15 {
			t.Errorf("step %d: weights %v sum to %v; want 2", step+1, out.Weights, sum(out.Weights))
		}
	}
	if _, err := m.Combine(Input{Step: 3, Losses: []float64{1, 1}}); !errors.Is(err, ErrInput) {
		t.Errorf("Combine with a decreasing step: error %v; want ErrInput", err)
	}
}

// softmaxRef returns T·softmax(x) computed directly.
func softmaxRef(x []float64) []float64 {
	s := 0.0
	for _, v := range x {
		s += math.Exp(v)
	}
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(len(x)) * math.Exp(v) / s
	}
	return out
}

func TestDWARandomSumsToT(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	m := &DWA{EpochSteps: 5, Temp: 0.5}
	for step := 1; step <= 500; step++ {
		out, err := m.Combine(Input{Step: step, Losses: randLosses(rng, 5)})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(sum(out.Weights)-5) > 1e-12 || slices.Min(out.Weights) <= 0 {
			t.Fatalf("step %d: weights %v; want positive, summing to 5", step, out.Weights)
		}
	}
}

// TestIMTLG checks IMTL-G's defining property: the shared gradient has
// equal projections onto every task's unit gradient.
func TestIMTLG(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	for _, sz := range [][2]int{{2, 2}, {2, 5}, {3, 3}, {4, 10}, {6, 8}} {
		for range 5 {
			g := randGrads(rng, sz[0], sz[1])
			out, err := IMTLG{}.Combine(Input{Step: 1, Losses: randLosses(rng, sz[0]), Grads: g})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(sum(out.Weights)-1) > 1e-12 {
				t.Errorf("sizes %v: weights %v sum to %v; want 1", sz, out.Weights, sum(out.Weights))
			}
			d := shared(out, g)
			p0 := dot(d, g[0]) / math.Sqrt(dot(g[0], g[0]))
			for i := 1; i < sz[0]; i++ {
				pi := dot(d, g[i]) / math.Sqrt(dot(g[i], g[i]))
				if math.Abs(pi-p0) > 1e-9*math.Max(1, math.Abs(p0)) {
					t.Errorf("sizes %v: d·u_%d = %v; d·u_0 = %v", sz, i, pi, p0)
				}
			}
		}
	}
	// Two gradients with the same direction leave D·Uᵀ = 0: every
	// weighting gives equal projections, and IMTL-G takes uniform weights.
	out, err := IMTLG{}.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: [][]float64{{1, 2}, {2, 4}}})
	if err != nil || math.Abs(out.Weights[0]-0.5) > 1e-12 || math.Abs(out.Weights[1]-0.5) > 1e-12 {
		t.Errorf("IMTLG on parallel gradients = %v, %v; want weights [0.5 0.5]", out.Weights, err)
	}
	// Three tasks, two sharing a direction: the equal-projection condition
	// still fixes the weights up to the shared pair's split.
	g := [][]float64{{1, 0}, {2, 0}, {0, 1}}
	out, err = IMTLG{}.Combine(Input{Step: 1, Losses: []float64{1, 1, 1}, Grads: g})
	if err != nil {
		t.Fatalf("IMTLG with two parallel gradients of three: %v", err)
	}
	d := make([]float64, 2)
	for i, w := range out.Weights {
		for j := range d {
			d[j] += w * g[i][j]
		}
	}
	if math.Abs(d[0]-d[1]) > 1e-9 {
		t.Errorf("IMTLG with two parallel gradients of three: d = %v; want equal projections on x and y", d)
	}
}

// TestNash checks that α_t·(Mα)_t = 1 for random well-conditioned inputs,
// from a cold and a warm start.
func TestNash(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, sz := range [][2]int{{2, 2}, {2, 6}, {3, 5}, {5, 10}, {8, 20}} {
		m := &Nash{}
		for step := 1; step <= 5; step++ {
			g := randGrads(rng, sz[0], sz[1])
			for i := range g {
				for j := range g[i] {
					g[i][j] *= 10 // the scale must not matter
				}
			}
			out, err := m.Combine(Input{Step: step, Losses: randLosses(rng, sz[0]), Grads: g})
			if err != nil {
				t.Fatal(err)
			}
			ma := matVec(gram(g), out.Weights)
			for i, a := range out.Weights {
				if !(a > 0) || math.Abs(a*ma[i]-1) > 1e-8 {
					t.Errorf("sizes %v step %d: α_%d·(Mα)_%d = %v (α = %v); want 1", sz, step, i, i, a*ma[i], out.Weights)
				}
			}
		}
	}
}

// TestNashFallback checks the fallback where no solution exists.
func TestNashFallback(t *testing.T) {
	m := &Nash{}
	g := [][]float64{{1, 0}, {0, 2}}
	first, err := m.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: g})
	if err != nil {
		t.Fatal(err)
	}
	// Orthogonal gradients: α_t = 1/‖g_t‖.
	if math.Abs(first.Weights[0]-1) > 1e-10 || math.Abs(first.Weights[1]-0.5) > 1e-10 {
		t.Errorf("Nash on orthogonal gradients: α = %v; want [1 0.5]", first.Weights)
	}
	// Opposite gradients: 0 is in their convex hull, so φ is unbounded
	// below; Nash keeps the previous normalised α, rescaled.
	out, err := m.Combine(Input{Step: 2, Losses: []float64{1, 1}, Grads: [][]float64{{1, 1}, {-2, -2}}})
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range out.Weights {
		if !(a > 0) || math.IsInf(a, 0) {
			t.Errorf("Nash fallback: α = %v; want finite positive weights", out.Weights)
			break
		}
		_ = i
	}
	out, err = m.Combine(Input{Step: 3, Losses: []float64{1, 1}, Grads: [][]float64{{0, 0}, {0, 0}}})
	if err != nil || len(out.Weights) != 2 {
		t.Errorf("Nash on zero gradients: %v, %v", out, err)
	}
}

// TestBadInputs checks that every method rejects malformed inputs with an
// *InputError naming the task at fault.
func TestBadInputs(t *testing.T) {
	ok := [][]float64{{1, 2}, {3, 4}}
	rng := rand.New(rand.NewPCG(23, 24))
	cases := []struct {
		name   string
		in     Input
		task   int
		losses bool // also rejected by LossesOnly methods
	}{
		{"no losses", Input{Step: 1, Grads: ok}, -1, true},
		{"NaN loss", Input{Step: 1, Losses: []float64{1, math.NaN()}, Grads: ok}, 1, true},
		{"Inf loss", Input{Step: 1, Losses: []float64{math.Inf(-1), 1}, Grads: ok}, 0, true},
		{"missing grads", Input{Step: 1, Losses: []float64{1, 1}}, -1, false},
		{"one grad", Input{Step: 1, Losses: []float64{1, 1}, Grads: ok[:1]}, -1, false},
		{"empty grad", Input{Step: 1, Losses: []float64{1, 1}, Grads: [][]float64{{}, {}}}, 0, false},
		{"ragged", Input{Step: 1, Losses: []float64{1, 1}, Grads: [][]float64{{1, 2}, {3}}}, 1, false},
		{"NaN grad", Input{Step: 1, Losses: []float64{1, 1}, Grads: [][]float64{{1, 2}, {3, math.NaN()}}}, 1, false},
	}
	for _, name := range Names() {
		for _, tc := range cases {
			m, err := New(name, 2)
			if err != nil {
				t.Fatal(err)
			}
			if m.Needs() == LossesOnly && !tc.losses {
				continue
			}
			tc.in.Rand = rng
			_, err = m.Combine(tc.in)
			var ie *InputError
			if !errors.As(err, &ie) || !errors.Is(err, ErrInput) {
				t.Errorf("%s: %s: error %v; want an *InputError", name, tc.name, err)
				continue
			}
			if ie.Task != tc.task || ie.Method != name || !strings.HasPrefix(err.Error(), "weighting: ") {
				t.Errorf("%s: %s: error %q (task %d); want task %d", name, tc.name, err, ie.Task, tc.task)
			}
		}
	}
	extra := []struct {
		name string
		m    Method
		in   Input
	}{
		{"pcgrad nil Rand", PCGrad{}, Input{Step: 1, Losses: []float64{1, 1}, Grads: ok}},
		{"gradnorm zero loss", mustNew(t, "gradnorm", 2), Input{Step: 1, Losses: []float64{1, 0}, Grads: ok}},
		{"mgda l2 zero grad", MGDA{Norm: NormL2}, Input{Step: 1, Losses: []float64{1, 1}, Grads: [][]float64{{0, 0}, {1, 1}}}},
		{"imtl zero grad", IMTLG{}, Input{Step: 1, Losses: []float64{1, 1}, Grads: [][]float64{{1, 1}, {0, 0}}}},
		{"dwa step 0", &DWA{}, Input{Step: 0, Losses: []float64{1, 1}}},
		{"uw 3 losses", mustNew(t, "uw", 2), Input{Step: 1, Losses: []float64{1, 1, 1}}},
	}
	for _, tc := range extra {
		if _, err := tc.m.Combine(tc.in); !errors.Is(err, ErrInput) {
			t.Errorf("%s: error %v; want ErrInput", tc.name, err)
		}
	}
	for _, m := range []Method{CAGrad{C: -1}, CAGrad{C: math.NaN()}, &GradNorm{Alpha: 1}, &Uncertainty{}} {
		if _, err := m.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: ok}); err == nil {
			t.Errorf("%#v.Combine: no error", m)
		}
	}
}

func mustNew(t *testing.T, name string, tasks int) Method {
	t.Helper()
	m, err := New(name, tasks)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestWeighter checks that the weights announced before each step are the
// ones Combine then uses, exactly.
func TestWeighter(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	const tasks = 3
	uw, err := NewUncertainty(tasks)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Weighter{EW{}, EW{Mean: true}, uw, &DWA{EpochSteps: 3}, &DWA{Temp: 0.7}} {
		for step := 1; step <= 20; step++ {
			want := m.Weights(step, tasks)
			out, err := m.Combine(Input{Step: step, Losses: randLosses(rng, tasks)})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(out.Weights, want) {
				t.Errorf("%s step %d: Combine weights %v; Weights announced %v", m.Name(), step, out.Weights, want)
			}
			if l, ok := m.(Learned); ok {
				s := l.Params().Flatten()
				for i := range s {
					s[i] -= 0.1 * out.ParamGrads[0][i]
				}
				if err := l.Params().SetFlat(s); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// An epoch of zero losses makes the next ratios infinite.
	m := &DWA{}
	for step, l := range [][]float64{{0, 1}, {1, 1}} {
		if _, err := m.Combine(Input{Step: step + 1, Losses: l}); err != nil {
			t.Fatal(err)
		}
	}
	w := m.Weights(3, 2)
	_, err = m.Combine(Input{Step: 3, Losses: []float64{1, 1}})
	if !math.IsNaN(w[0]) || !errors.Is(err, ErrInput) {
		t.Errorf("DWA after a zero mean loss: Weights %v, Combine error %v; want NaN and ErrInput", w, err)
	}
}

// TestUnmarshalStateRejects checks that state from a corrupt checkpoint
// is refused rather than panicking or giving wrong weights later.
func TestUnmarshalStateRejects(t *testing.T) {
	for _, c := range []struct {
		name string
		m    StateMarshaler
		b    string
	}{
		{"dwa without sums", &DWA{}, `{"Tasks":2,"LastStep":3,"Epoch":1,"N":1,"Sum":null}`},
		{"dwa prev2 without prev", &DWA{}, `{"Tasks":2,"Sum":[1,1],"Prev":null,"Prev2":[1,1]}`},
		{"dwa negative epoch", &DWA{}, `{"Tasks":2,"Epoch":-1,"Sum":[1,1]}`},
		{"nash negative", &Nash{}, `[-1,0]`},
		{"nash garbage", &Nash{}, `{`},
		{"gradnorm zero loss", func() StateMarshaler { g, _ := NewGradNorm(2); return g }(), `[1,0]`},
		{"gradnorm wrong length", func() StateMarshaler { g, _ := NewGradNorm(2); return g }(), `[1,2,3]`},
	} {
		if err := c.m.UnmarshalState([]byte(c.b)); err == nil {
			t.Errorf("%s: UnmarshalState(%s): no error", c.name, c.b)
		}
	}
	// A round trip keeps the state.
	d := &DWA{EpochSteps: 1}
	for step := 1; step <= 3; step++ {
		if _, err := d.Combine(Input{Step: step, Losses: []float64{1 + float64(step), 2}}); err != nil {
			t.Fatal(err)
		}
	}
	b, err := d.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	e := &DWA{EpochSteps: 1}
	if err := e.UnmarshalState(b); err != nil {
		t.Fatal(err)
	}
	w1, _ := d.Combine(Input{Step: 4, Losses: []float64{3, 1}})
	w2, _ := e.Combine(Input{Step: 4, Losses: []float64{3, 1}})
	if w1.Weights[0] != w2.Weights[0] || w1.Weights[1] != w2.Weights[1] {
		t.Errorf("DWA weights after a state round trip = %v; want %v", w2.Weights, w1.Weights)
	}
}

// pcgradSequential is PCGrad's rule written plainly, one inner product
// at a time, to hold Combine's batched inner products to its bits.
func pcgradSequential(g [][]float64, rng *rand.Rand) []float64 {
	t := len(g)
	sq := make([]float64, t)
	for j := range g {
		sq[j] = dot(g[j], g[j])
	}
	shared := make([]float64, len(g[0]))
	order := make([]int, t)
	for _, gi := range g {
		p := slices.Clone(gi)
		for k := range order {
			order[k] = k
		}
		rng.Shuffle(t, func(a, b int) { order[a], order[b] = order[b], order[a] })
		for _, j := range order {
			if c := dot(p, g[j]); c < 0 && sq[j] > 0 {
				f := c / sq[j]
				for k := range p {
					p[k] -= float64(f * g[j][k])
				}
			}
		}
		for k, v := range p {
			shared[k] += v
		}
	}
	return shared
}

// TestPCGradBatchedDots: Combine gives the bits of the plain rule for 1 to
// 9 tasks with many conflicts, and dots those of dot.
func TestPCGradBatchedDots(t *testing.T) {
	for tasks := 1; tasks <= 9; tasks++ {
		g := randGrads(rand.New(rand.NewPCG(uint64(tasks), 3)), tasks, 1001)
		want := pcgradSequential(g, rand.New(rand.NewPCG(7, 7)))
		out, err := PCGrad{}.Combine(Input{Step: 1, Losses: make([]float64, tasks), Grads: g, Rand: rand.New(rand.NewPCG(7, 7))})
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if math.Float64bits(out.Shared[i]) != math.Float64bits(want[i]) {
				t.Fatalf("%d tasks: element %d = %v, want %v", tasks, i, out.Shared[i], want[i])
			}
		}
		got := make([]float64, tasks)
		dots(got, g, slices.Concat(g[1:], g[:1]))
		for k := range got {
			if w := dot(g[k], g[(k+1)%tasks]); math.Float64bits(got[k]) != math.Float64bits(w) {
				t.Errorf("dots[%d] of %d = %v, want dot's %v", k, tasks, got[k], w)
			}
		}
	}
}

// checkStateRoundTrip runs the method newMethod makes for steps 1 to last
// on the inputs input gives (drawing from one random stream), saves its
// state and the stream's before step mid, and checks that a new method
// restored from them gives the same outputs, bit for bit, for steps mid
// to last. It returns both methods, for checks of their state.
func checkStateRoundTrip(t *testing.T, newMethod func() Method, input func(step int, rng *rand.Rand) Input, mid, last int) (straight, resumed Method) {
	t.Helper()
	straight = newMethod()
	src := rand.NewPCG(54, 54)
	rng := rand.New(src)
	var state, stream []byte
	var want []Output
	for step := 1; step <= last; step++ {
		if step == mid {
			var err error
			if state, err = straight.(StateMarshaler).MarshalState(); err != nil {
				t.Fatal(err)
			}
			if !json.Valid(state) {
				t.Fatalf("MarshalState = %s; not JSON", state)
			}
			if stream, err = src.MarshalBinary(); err != nil {
				t.Fatal(err)
			}
		}
		out, err := straight.Combine(input(step, rng))
		if err != nil {
			t.Fatal(err)
		}
		if step >= mid {
			want = append(want, out)
		}
	}
	resumed = newMethod()
	if err := resumed.(StateMarshaler).UnmarshalState(state); err != nil {
		t.Fatal(err)
	}
	src2 := new(rand.PCG)
	if err := src2.UnmarshalBinary(stream); err != nil {
		t.Fatal(err)
	}
	rng2 := rand.New(src2)
	for step := mid; step <= last; step++ {
		out, err := resumed.Combine(input(step, rng2))
		if err != nil {
			t.Fatal(err)
		}
		if w := want[step-mid]; !slices.Equal(out.Shared, w.Shared) || !slices.Equal(out.Weights, w.Weights) {
			t.Fatalf("step %d after a state round trip: shared %v, weights %v; want %v, %v", step, out.Shared, out.Weights, w.Shared, w.Weights)
		}
	}
	return straight, resumed
}
