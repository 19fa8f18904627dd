package tasks

import "math"

// toyLower is the clamp of the logarithms' arguments in the reference code
// (LOWER in toy.py).
const toyLower = 0.000005

// Toy evaluates the two-objective toy problem of Liu, Liu, Jin, Stone and
// Liu (2021), "Conflict-Averse Gradient Descent for Multi-task Learning"
// (the class Toy of the authors' toy.py), at x = (x1, x2). It returns the
// two losses f[0] = L1(x), f[1] = L2(x) and their exact gradients g[0] =
// ∇L1(x), g[1] = ∇L2(x). The losses are the reference code's, unscaled:
//
//	L_t = c1(x2)·(log(max(|a_t(x)|, 0.000005)) + 6) + c2(x2)·q_t(x),
//	a_1 = (−x1 − 7)/2 − tanh(−x2),  a_2 = (−x1 + 3)/2 + tanh(−x2) + 2,
//	q_1 = ((7 − x1)² + 0.1·(x2 + 8)²)/10 − 20,
//	q_2 = ((7 + x1)² + 0.1·(x2 + 8)²)/10 − 20,
//	c1 = max(tanh(x2/2), 0),  c2 = max(tanh(−x2/2), 0),
//
// so the upper half-plane holds the logarithmic pieces and the lower one
// the quadratics. The gradients are those PyTorch's autograd gives the
// reference code: where a clamp is active (|a_t| < 0.000005, or c1 or c2
// on its zero side) the derivative through it is 0, and at its bound it
// passes (PyTorch's clamp backward tests input ≥ bound). So at x2 = 0,
// where both losses are 0, both switches contribute their slope 1/2 and
// ∂L_t/∂x2 = (log|a_t| + 6 − q_t)/2 ≠ 0: the origin is not a stationary
// point.
func Toy(x [2]float64) (f [2]float64, g [2][2]float64) {
	x1, x2 := x[0], x[1]
	th := math.Tanh(x2)
	sech2 := 1 - th*th // d tanh(x2)/dx2
	a := [2]float64{-0.5*x1 - 3.5 + th, -0.5*x1 + 3.5 - th}
	da2 := [2]float64{sech2, -sech2} // ∂a_t/∂x2; ∂a_t/∂x1 = −1/2
	h := math.Tanh(x2 / 2)
	dh := 0.5 * (1 - h*h)
	// PyTorch's clamp passes the gradient where its input is at least
	// the bound, so at x2 = 0 both switches have their one-sided slopes.
	var c1, dc1, c2, dc2 float64
	if h >= 0 {
		c1, dc1 = h, dh
	}
	if h <= 0 {
		c2, dc2 = -h, -dh
	}
	quad := [2]float64{7 - x1, 7 + x1} // q_t = (quad_t² + 0.1(x2+8)²)/10 − 20
	dq1 := [2]float64{-quad[0] / 5, quad[1] / 5}
	dq2 := 0.02 * (x2 + 8)
	for t := range 2 {
		lg, dl1, dl2 := math.Log(toyLower)+6, 0.0, 0.0
		if abs := math.Abs(a[t]); abs >= toyLower {
			lg = math.Log(abs) + 6
			dl1, dl2 = -0.5/a[t], da2[t]/a[t]
		}
		q := (quad[t]*quad[t]+0.1*(x2+8)*(x2+8))/10 - 20
		f[t] = c1*lg + c2*q
		g[t][0] = c1*dl1 + c2*dq1[t]
		g[t][1] = c1*dl2 + dc1*lg + c2*dq2 + dc2*q
	}
	return f, g
}

// ToyStarts returns the six starting points of the toy experiments: the
// three of the paper's figure, (−8.5, 7.5), (−8.5, −5) and (9, 9), then
// (0, 0), (−7.5, −0.5) and (9, −1).
func ToyStarts() [][2]float64 {
	return [][2]float64{{-8.5, 7.5}, {-8.5, -5}, {9, 9}, {0, 0}, {-7.5, -0.5}, {9, -1}}
}

// ToyParetoX1 is the half-width of the toy problem's Pareto set: it is the
// curve x2 = ToyPareto(x1) for |x1| ≤ 7, joining the minimisers of L2
// (x1 = −7) and L1 (x1 = 7).
const ToyParetoX1 = 7

// ToyPareto returns p(x1), the x2 at which the toy problem's two gradients
// are anti-parallel for |x1| < 7 (so that (x1, p(x1)) is Pareto-optimal),
// found by bisection to full precision on the sign of the 2-D cross
// product ∂1L1·∂2L2 − ∂2L1·∂1L2 over x2 ∈ [−9.5, −7.5], where it has one
// root. For |x1| = 7 the point is a task's minimiser; for |x1| > 7 the
// same curve continues with parallel gradients, off the Pareto set. The
// curve is nearly flat and even: p(0) ≈ −8.3551, p(±7) ≈ −8.4345.
// ToyPareto returns NaN where the bracket holds no root, which happens
// only far from the set (|x1| > 40).
func ToyPareto(x1 float64) float64 {
	cross := func(x2 float64) float64 {
		_, g := Toy([2]float64{x1, x2})
		return g[0][0]*g[1][1] - g[0][1]*g[1][0]
	}
	lo, hi := -9.5, -7.5
	flo, fhi := cross(lo), cross(hi)
	if math.IsNaN(flo) || math.IsNaN(fhi) || (flo > 0) == (fhi > 0) {
		return math.NaN()
	}
	for {
		mid := (lo + hi) / 2
		if mid <= lo || mid >= hi {
			return mid
		}
		if fm := cross(mid); fm == 0 {
			return mid
		} else if (fm > 0) == (flo > 0) {
			lo, flo = mid, fm
		} else {
			hi = mid
		}
	}
}

// ToyOnPareto reports whether (x1, x2) lies within 0.05 of the toy
// problem's Pareto set: |x1| ≤ 7.05 and |x2 − ToyPareto(x1)| < 0.05. The
// margins make "reached the set" a test an optimiser with a finite step
// can pass.
func ToyOnPareto(x1, x2 float64) bool {
	// p stays within [−8.44, −8.35] on |x1| ≤ 7.05: skip the root-finding
	// for points that cannot be within 0.05 of it.
	if math.Abs(x1) > 7.05 || x2 < -8.5 || x2 > -8.3 {
		return false
	}
	return math.Abs(x2-ToyPareto(x1)) < 0.05
}
