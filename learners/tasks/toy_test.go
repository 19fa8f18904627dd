package tasks

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestToyGradients checks Toy's gradients against central finite
// differences at random points away from the kinks (x2 = 0, a_t = 0).
func TestToyGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const h = 1e-6
	checked := 0
	for checked < 2000 {
		x := [2]float64{20*rng.Float64() - 10, 20*rng.Float64() - 10}
		th := math.Tanh(x[1])
		if math.Abs(x[1]) < 1e-3 || math.Abs(-0.5*x[0]-3.5+th) < 1e-3 || math.Abs(-0.5*x[0]+3.5-th) < 1e-3 {
			continue
		}
		checked++
		f, g := Toy(x)
		for j := range 2 {
			xp, xm := x, x
			xp[j] += h
			xm[j] -= h
			fp, _ := Toy(xp)
			fm, _ := Toy(xm)
			for task := range 2 {
				fd := (fp[task] - fm[task]) / (2 * h)
				// Truncation O(h²·f‴) plus rounding O(ε·|f|/h) ≈ 1e-9; the
				// logarithms' curvature near a_t = 0 raises the first, so
				// the tolerance is relative.
				if math.Abs(g[task][j]-fd) > 1e-6*(1+math.Abs(fd)) {
					t.Errorf("Toy(%v): ∂L%d/∂x%d = %v; finite difference %v (f = %v)", x, task+1, j+1, g[task][j], fd, f)
				}
			}
		}
	}
}

// TestToyValues checks Toy against values worked from the formulas.
func TestToyValues(t *testing.T) {
	for _, tc := range []struct {
		x    [2]float64
		want [2]float64
	}{
		// x2 = 0: c1 = c2 = 0.
		{[2]float64{3, 0}, [2]float64{0, 0}},
		// Lower half-plane: c2 = tanh(4) at x2 = −8, q1 = 49/10 − 20 and
		// q2 = 49/10 − 20 at x1 = 0.
		{[2]float64{0, -8}, [2]float64{math.Tanh(4) * (4.9 - 20), math.Tanh(4) * (4.9 - 20)}},
		// Upper half-plane at (−7, x2): a_1 = tanh(x2).
		{[2]float64{-7, 2}, [2]float64{math.Tanh(1) * (math.Log(math.Tanh(2)) + 6), math.Tanh(1) * (math.Log(7-math.Tanh(2)) + 6)}},
	} {
		f, _ := Toy(tc.x)
		for i := range 2 {
			if math.Abs(f[i]-tc.want[i]) > 1e-12 {
				t.Errorf("Toy(%v) = %v; want %v", tc.x, f, tc.want)
				break
			}
		}
	}
	// At the origin both switches pass their slope 1/2, as PyTorch's clamp
	// does at its bound: ∂L_t/∂x2 = (log|a_t| + 6 − q_t)/2 with a_1 = −3.5,
	// a_2 = 3.5 and q_1 = q_2 = (49 + 6.4)/10 − 20.
	_, g := Toy([2]float64{0, 0})
	want := (math.Log(3.5) + 6 - (5.54 - 20)) / 2
	for i := range 2 {
		if g[i][0] != 0 || math.Abs(g[i][1]-want) > 1e-12 {
			t.Errorf("Toy(0, 0) gradient %d = %v; want (0, %v)", i, g[i], want)
		}
	}
}

func TestToyPareto(t *testing.T) {
	for _, tc := range []struct{ x1, want float64 }{
		// Values of the curve of anti-parallel gradients; CAGrad's
		// toy.py draws the set at x2 = −8.3552, p(0).
		{0, -8.35511},
		{3, -8.37052}, {-3, -8.37052},
		{5, -8.39694}, {-5, -8.39694},
		{7, -8.43446}, {-7, -8.43446},
	} {
		if got := ToyPareto(tc.x1); math.Abs(got-tc.want) > 1e-4 {
			t.Errorf("ToyPareto(%v) = %.6f; want %v", tc.x1, got, tc.want)
		}
	}
	// On the set the gradients are anti-parallel; at x1 = ±7 one vanishes
	// in x1 and the other's x2-component is 0 (a task's minimiser).
	for x1 := -6.5; x1 <= 6.5; x1 += 0.5 {
		_, g := Toy([2]float64{x1, ToyPareto(x1)})
		n0 := math.Hypot(g[0][0], g[0][1])
		n1 := math.Hypot(g[1][0], g[1][1])
		if cos := (g[0][0]*g[1][0] + g[0][1]*g[1][1]) / (n0 * n1); math.Abs(cos+1) > 1e-9 {
			t.Errorf("at (%v, ToyPareto): cos(∇L1, ∇L2) = %v; want −1", x1, cos)
		}
	}
	if !math.IsNaN(ToyPareto(100)) {
		t.Errorf("ToyPareto(100) = %v; want NaN", ToyPareto(100))
	}
}

func TestToyOnPareto(t *testing.T) {
	for _, tc := range []struct {
		x1, x2 float64
		want   bool
	}{
		{0, -8.35511, true},
		{0, -8.31, true},
		{0, -8.30, false},
		{0, -8.41, false},
		{7, -8.43446, true},
		{7.04, -8.43, true},
		{7.06, -8.43, false},
		{-7.5, -8.44, false},
		{0, 0, false},
		{-8.5, 7.5, false},
	} {
		if got := ToyOnPareto(tc.x1, tc.x2); got != tc.want {
			t.Errorf("ToyOnPareto(%v, %v) = %v; want %v", tc.x1, tc.x2, got, tc.want)
		}
	}
	if n := len(ToyStarts()); n != 6 {
		t.Errorf("len(ToyStarts()) = %d; want 6", n)
	}
}
