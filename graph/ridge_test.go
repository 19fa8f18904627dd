package graph

import (
	"math/rand/v2"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestRidgeSolve checks Z against the normal equations, and RidgeSolve's
// gradients and Hessian-vector products, in K (through X·Xᵀ) and in λ,
// against central differences.
func TestRidgeSolve(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const S, D, M = 4, 3, 2
	y := make([]float64, S*M)
	for i := range y {
		y[i] = rng.NormFloat64()
	}
	yConst := func(g *G.ExprGraph) *G.Node {
		return G.NewConstant(tensor.New(tensor.WithShape(1, S, M), tensor.WithBacking(append([]float64(nil), y...))), G.In(g))
	}
	lamConst := func(g *G.ExprGraph, v float64) *G.Node {
		return G.NewConstant(tensor.New(tensor.WithShape(1), tensor.WithBacking([]float64{v})), G.In(g))
	}
	x0 := make([]float64, S*D)
	for i := range x0 {
		x0[i] = rng.NormFloat64()
	}
	// f(X) = Σ tanh(Z) with Z = (X·Xᵀ + 0.7 I)⁻¹ Y.
	inX := newDerivRig(t, S*D, func(x *G.Node) (*G.Node, error) {
		X := G.Must(G.Reshape(x, tensor.Shape{1, S, D}))
		K := G.Must(BatchedMatMul(X, X, false, true))
		z, err := RidgeSolve(K, lamConst(x.Graph(), 0.7), yConst(x.Graph()))
		if err != nil {
			return nil, err
		}
		return SumAll(G.Must(G.Tanh(z)))
	})
	inX.check(t, x0, rng)

	// Z itself: (K + λI)·Z = Y.
	zs := newDerivRig(t, 1, func(l *G.Node) (*G.Node, error) {
		K := G.NewConstant(tensor.New(tensor.WithShape(1, S, S), tensor.WithBacking(gram(x0, S, D))), G.In(l.Graph()))
		z, err := RidgeSolve(K, l, yConst(l.Graph()))
		if err != nil {
			return nil, err
		}
		return SumAll(G.Must(G.Square(z)))
	})
	zs.check(t, []float64{0.9}, rng)

	// The solution, against the normal equations.
	g := G.NewGraph()
	K := G.NewConstant(tensor.New(tensor.WithShape(1, S, S), tensor.WithBacking(gram(x0, S, D))), G.In(g))
	z := G.Must(RidgeSolve(K, lamConst(g, 0.5), yConst(g)))
	m, err := Compile(g, z)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Run(); err != nil {
		t.Fatal(err)
	}
	got := read(t, m, z)
	k := gram(x0, S, D)
	for i := range S {
		for j := range M {
			r := 0.5 * got[i*M+j]
			for l := range S {
				r += k[i*S+l] * got[l*M+j]
			}
			if e := r - y[i*M+j]; e > 1e-12 || e < -1e-12 {
				t.Fatalf("(K + λI)·Z − Y = %v at (%d, %d)", e, i, j)
			}
		}
	}

	// Bad shapes and a non-positive λ.
	wrong := G.NewConstant(tensor.New(tensor.WithShape(1, S+1, M), tensor.WithBacking(make([]float64, (S+1)*M))), G.In(g))
	if _, err := RidgeSolve(K, lamConst(g, 1), wrong); err == nil {
		t.Error("RidgeSolve with Y of the wrong shape: no error")
	}
	bad := G.Must(RidgeSolve(K, lamConst(g, 0), yConst(g)))
	mb, err := Compile(g, bad)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	if err := mb.Run(); err == nil || !strings.Contains(err.Error(), "lambda") {
		t.Errorf("RidgeSolve with λ = 0: %v; want an error naming lambda", err)
	}
}

// gram returns X·Xᵀ for X [s, d].
func gram(x []float64, s, d int) []float64 {
	k := make([]float64, s*s)
	for i := range s {
		for j := range s {
			for l := range d {
				k[i*s+j] += x[i*d+l] * x[j*d+l]
			}
		}
	}
	return k
}
