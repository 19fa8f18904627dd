package weighting

import (
	"math"
	"slices"
)

func dot(a, b []float64) float64 {
	s := 0.0
	for i, x := range a {
		s += float64(x * b[i]) // the conversion keeps the compiler from fusing (dots's bits)
	}
	return s
}

// dots sets out[k] = dot(xs[k], ys[k]) for each k. Each sum runs in index
// order, a multiply then an add (the conversions stop the compiler from
// fusing them, which it would do in one loop and not the other under
// GOAMD64=v3), as dot's does, so the bits are dot's; computing up to four at a
// time in one pass overlaps their chains of additions (a lone dot waits
// for each addition before the next), about three times as fast.
func dots(out []float64, xs, ys [][]float64) {
	k := 0
	for ; k+4 <= len(out); k += 4 {
		n := len(xs[k])
		x0, x1, x2, x3 := xs[k][:n], xs[k+1][:n], xs[k+2][:n], xs[k+3][:n]
		y0, y1, y2, y3 := ys[k][:n], ys[k+1][:n], ys[k+2][:n], ys[k+3][:n]
		var s0, s1, s2, s3 float64
		for i := range x0 {
			s0 += float64(x0[i] * y0[i])
			s1 += float64(x1[i] * y1[i])
			s2 += float64(x2[i] * y2[i])
			s3 += float64(x3[i] * y3[i])
		}
		out[k], out[k+1], out[k+2], out[k+3] = s0, s1, s2, s3
	}
	switch len(out) - k {
	case 3:
		n := len(xs[k])
		x0, x1, x2 := xs[k][:n], xs[k+1][:n], xs[k+2][:n]
		y0, y1, y2 := ys[k][:n], ys[k+1][:n], ys[k+2][:n]
		var s0, s1, s2 float64
		for i := range x0 {
			s0 += float64(x0[i] * y0[i])
			s1 += float64(x1[i] * y1[i])
			s2 += float64(x2[i] * y2[i])
		}
		out[k], out[k+1], out[k+2] = s0, s1, s2
	case 2:
		n := len(xs[k])
		x0, x1 := xs[k][:n], xs[k+1][:n]
		y0, y1 := ys[k][:n], ys[k+1][:n]
		var s0, s1 float64
		for i := range x0 {
			s0 += float64(x0[i] * y0[i])
			s1 += float64(x1[i] * y1[i])
		}
		out[k], out[k+1] = s0, s1
	case 1:
		out[k] = dot(xs[k], ys[k])
	}
}

// gram returns the T×T matrix of inner products of the gradients, row-major.
func gram(g [][]float64) []float64 {
	t := len(g)
	m := make([]float64, t*t)
	var xs, ys [][]float64
	for i := range t {
		for j := i; j < t; j++ {
			xs, ys = append(xs, g[i]), append(ys, g[j])
		}
	}
	v := make([]float64, len(xs))
	dots(v, xs, ys)
	k := 0
	for i := range t {
		for j := i; j < t; j++ {
			m[i*t+j], m[j*t+i] = v[k], v[k]
			k++
		}
	}
	return m
}

// combine returns Σ_t w[t]·g[t].
func combine(w []float64, g [][]float64) []float64 {
	out := make([]float64, len(g[0]))
	for t, gt := range g {
		for j, v := range gt {
			out[j] += w[t] * v
		}
	}
	return out
}

// matVec returns m·x for the n×n row-major matrix m.
func matVec(m, x []float64) []float64 {
	n := len(x)
	y := make([]float64, n)
	for i := range n {
		y[i] = dot(m[i*n:(i+1)*n], x)
	}
	return y
}

// luSolve solves a·x = b for the n×n row-major matrix a by Gaussian
// elimination with partial pivoting, overwriting a and b. It reports false
// when a pivot is smaller than 1e-12 times the largest element of a: the
// system is singular to working precision.
func luSolve(a, b []float64) ([]float64, bool) {
	n := len(b)
	scale := 0.0
	for _, v := range a {
		scale = math.Max(scale, math.Abs(v))
	}
	if scale == 0 {
		return nil, false
	}
	for k := range n {
		p := k
		for i := k + 1; i < n; i++ {
			if math.Abs(a[i*n+k]) > math.Abs(a[p*n+k]) {
				p = i
			}
		}
		if math.Abs(a[p*n+k]) <= 1e-12*scale {
			return nil, false
		}
		if p != k {
			for j := range n {
				a[k*n+j], a[p*n+j] = a[p*n+j], a[k*n+j]
			}
			b[k], b[p] = b[p], b[k]
		}
		for i := k + 1; i < n; i++ {
			f := a[i*n+k] / a[k*n+k]
			for j := k; j < n; j++ {
				a[i*n+j] -= f * a[k*n+j]
			}
			b[i] -= f * b[k]
		}
	}
	x := make([]float64, n)
	for i := n - 1; i >= 0; i-- {
		s := b[i]
		for j := i + 1; j < n; j++ {
			s -= a[i*n+j] * x[j]
		}
		x[i] = s / a[i*n+i]
	}
	return x, true
}

// cholSolve solves a·x = b for the symmetric positive definite n×n
// row-major matrix a by its Cholesky factorisation, without modifying its
// arguments. It reports false if a is not positive definite to working
// precision.
func cholSolve(a, b []float64) ([]float64, bool) {
	n := len(b)
	l := make([]float64, n*n)
	for j := range n {
		s := a[j*n+j]
		for k := range j {
			s -= l[j*n+k] * l[j*n+k]
		}
		if !(s > 0) {
			return nil, false
		}
		l[j*n+j] = math.Sqrt(s)
		for i := j + 1; i < n; i++ {
			s := a[i*n+j]
			for k := range j {
				s -= l[i*n+k] * l[j*n+k]
			}
			l[i*n+j] = s / l[j*n+j]
		}
	}
	y := make([]float64, n)
	for i := range n {
		s := b[i]
		for k := range i {
			s -= l[i*n+k] * y[k]
		}
		y[i] = s / l[i*n+i]
	}
	x := make([]float64, n)
	for i := n - 1; i >= 0; i-- {
		s := y[i]
		for k := i + 1; k < n; k++ {
			s -= l[k*n+i] * x[k]
		}
		x[i] = s / l[i*n+i]
	}
	return x, true
}

// projectSimplex overwrites y with its Euclidean projection onto the
// probability simplex {w ≥ 0, Σw = 1} (the sort-based algorithm of Held,
// Wolfe and Crowder 1974, as in Duchi et al. 2008).
func projectSimplex(y []float64) {
	s := slices.Clone(y)
	slices.Sort(s)
	slices.Reverse(s)
	cum, tau := 0.0, 0.0
	for i, v := range s {
		cum += v
		if t := (cum - 1) / float64(i+1); v-t > 0 {
			tau = t
		}
	}
	for i, v := range y {
		y[i] = math.Max(v-tau, 0)
	}
}

// simplexSettings bound minSimplex's work.
const (
	simplexTol     = 1e-12 // Frank–Wolfe gap, relative to the problem's scale
	simplexMaxIter = 20000
)

// minSimplex minimises the convex differentiable function f, with gradient
// grad (which writes ∇f(w) into g), over the probability simplex, starting
// from w, which it overwrites with the minimiser. It runs accelerated
// projected gradient descent (Beck and Teboulle 2009) with a backtracking
// step size and the function-value restart of O'Donoghue and Candès
// (2015), and stops when the Frank–Wolfe gap ∇f(w)ᵀw − min_i ∇f(w)_i,
// which bounds f(w) − min f from above, is at most tol, or after maxIter
// iterations. It returns the final gap.
func minSimplex(f func(w []float64) float64, grad func(w, g []float64), w []float64, tol float64, maxIter int) float64 {
	n := len(w)
	projectSimplex(w)
	x := w
	y := slices.Clone(x)
	z := make([]float64, n)
	gy := make([]float64, n)
	gx := make([]float64, n)
	fx := f(x)
	lip, tk := 1.0, 1.0
	gap := fwGap(grad, x, gx)
	for it := 0; it < maxIter && gap > tol; it++ {
		grad(y, gy)
		fy := f(y)
		var fz float64
		for range 200 {
			for i := range z {
				z[i] = y[i] - gy[i]/lip
			}
			projectSimplex(z)
			lin, sq := 0.0, 0.0
			for i := range z {
				d := z[i] - y[i]
				lin += gy[i] * d
				sq += d * d
			}
			fz = f(z)
			if fz <= fy+lin+lip/2*sq+1e-15*math.Abs(fy) {
				break
			}
			lip *= 2
		}
		if fz > fx && tk > 1 {
			// Momentum overshot: restart from x.
			copy(y, x)
			tk = 1
			continue
		}
		tn := (1 + math.Sqrt(1+4*tk*tk)) / 2
		for i := range y {
			y[i] = z[i] + (tk-1)/tn*(z[i]-x[i])
		}
		copy(x, z)
		fx, tk = fz, tn
		lip *= 0.9
		gap = fwGap(grad, x, gx)
	}
	return gap
}

// fwGap returns the Frank–Wolfe gap of f at w, using g as scratch.
func fwGap(grad func(w, g []float64), w, g []float64) float64 {
	grad(w, g)
	return dot(g, w) - slices.Min(g)
}
