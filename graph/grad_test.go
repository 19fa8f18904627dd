package graph

import (
	"errors"
	"fmt"
	"hash"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Tolerances. Central differences with h = 1e-5 have truncation error
// O(h²·f”') ≈ 1e-10 and rounding error O(ε/h) ≈ 1e-11 for functions of unit
// scale, so a correct derivative agrees to well under 1e-6 relative; a
// wrong one (a missing second-order term) is off by O(1).
const (
	fdStep  = 1e-5
	fdTol   = 1e-6
	fdFloor = 1e-3 // elements smaller than this are compared absolutely
)

// derivRig evaluates f, ∇f and the Hessian-vector product H·v of a scalar
// function of a vector, all built with Grad on one graph.
type derivRig struct {
	m       *Plan
	x, v    *G.Node
	f, grad *G.Node
	hvp     *G.Node
	n       int
}

func newDerivRig(t *testing.T, n int, build func(x *G.Node) (*G.Node, error)) *derivRig {
	t.Helper()
	g := G.NewGraph()
	x := G.NewVector(g, G.Float64, G.WithShape(n), G.WithName("x"))
	v := G.NewVector(g, G.Float64, G.WithShape(n), G.WithName("v"))
	f, err := build(x)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	gr, err := Grad(f, x)
	if err != nil {
		t.Fatalf("Grad: %v", err)
	}
	gv := G.Must(G.HadamardProd(gr[0], v))
	s, err := SumAll(gv)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Grad(s, x)
	if err != nil {
		t.Fatalf("second Grad: %v", err)
	}
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &derivRig{m: m, x: x, v: v, f: f, grad: gr[0], hvp: h[0], n: n}
}

func (r *derivRig) eval(t *testing.T, x, v []float64) (f float64, grad, hvp []float64) {
	t.Helper()
	xt, _ := NewTensor(tensor.Float64, []int{r.n}, x)
	if v == nil {
		v = make([]float64, r.n)
	}
	vt, _ := NewTensor(tensor.Float64, []int{r.n}, v)
	if err := r.m.Let("x", xt); err != nil {
		t.Fatal(err)
	}
	if err := r.m.Let("v", vt); err != nil {
		t.Fatal(err)
	}
	if err := r.m.Run(); err != nil {
		t.Fatal(err)
	}
	return read(t, r.m, r.f)[0], read(t, r.m, r.grad), read(t, r.m, r.hvp)
}

// check compares ∇f with central differences of f, and H·v with central
// differences of ∇f, at x for a few directions v.
func (r *derivRig) check(t *testing.T, x []float64, rng *rand.Rand) {
	t.Helper()
	f := func(x []float64) float64 { v, _, _ := r.eval(t, x, nil); return v }
	gradf := func(x []float64) []float64 { _, g, _ := r.eval(t, x, nil); return g }
	_, grad, _ := r.eval(t, x, nil)
	want := NumGrad(f, x, fdStep)
	if e := RelErr(grad, want, fdFloor); e > fdTol {
		t.Errorf("gradient = %v; finite differences %v (rel err %.3g > %g)", grad, want, e, fdTol)
	}
	dirs := [][]float64{ones(len(x))}
	for k := 0; k < 2; k++ {
		d := make([]float64, len(x))
		for i := range d {
			d[i] = rng.NormFloat64()
		}
		dirs = append(dirs, d)
	}
	for _, v := range dirs {
		_, _, hvp := r.eval(t, x, v)
		want := NumHVP(gradf, x, v, fdStep)
		if e := RelErr(hvp, want, fdFloor); e > fdTol {
			t.Errorf("H·v (v=%.3v) = %v; finite differences %v (rel err %.3g > %g)", v, hvp, want, e, fdTol)
		}
	}
}

func ones(n int) []float64 {
	o := make([]float64, n)
	for i := range o {
		o[i] = 1
	}
	return o
}

// unit is a scalar builder lifted elementwise and summed.
func sumOf(f func(x *G.Node) (*G.Node, error)) func(x *G.Node) (*G.Node, error) {
	return func(x *G.Node) (*G.Node, error) {
		y, err := f(x)
		if err != nil {
			return nil, err
		}
		return SumAll(y)
	}
}

func TestGradSecondOrder(t *testing.T) {
	one := func(x *G.Node) *G.Node { return G.NewConstant(1.0) }
	rng := rand.New(rand.NewPCG(1, 2))
	a := make([]float64, 12)
	for i := range a {
		a[i] = rng.NormFloat64()
	}
	b := make([]float64, 12)
	for i := range b {
		b[i] = rng.NormFloat64()
	}
	tests := []struct {
		name  string
		x     []float64
		build func(x *G.Node) (*G.Node, error)
	}{
		{"cube", []float64{2, -1.5, 0.3}, sumOf(func(x *G.Node) (*G.Node, error) {
			return G.Mul(G.Must(G.Mul(x, x)), x)
		})},
		{"cube via Pow", []float64{2, 1.5, 0.3}, sumOf(func(x *G.Node) (*G.Node, error) {
			return G.Pow(x, G.NewConstant(3.0))
		})},
		{"exp", []float64{0.5, -1, 1.2}, sumOf(G.Exp)},
		{"sqrt", []float64{0.5, 1.7, 3}, sumOf(G.Sqrt)},
		{"neg and sub", []float64{0.5, -1, 1.2}, sumOf(func(x *G.Node) (*G.Node, error) {
			return G.Sub(G.Must(G.Neg(G.Must(G.Square(x)))), G.Must(G.Tanh(x)))
		})},
		{"quotient", []float64{0.5, -1, 1.2}, sumOf(func(x *G.Node) (*G.Node, error) {
			return G.HadamardDiv(G.Must(G.Tanh(x)), G.Must(G.Add(one(x), G.Must(G.Square(x)))))
		})},
		{"inverse", []float64{0.5, 1.5, 1.2}, sumOf(G.Inverse)},
		{"log", []float64{0.5, 1.7, 3}, sumOf(G.Log)},
		{"tanh", []float64{0.5, -1, 1.2}, sumOf(G.Tanh)},
		{"sigmoid", []float64{0.5, -1, 1.2}, sumOf(G.Sigmoid)},
		{"softplus", []float64{0.5, -1, 1.2}, sumOf(func(x *G.Node) (*G.Node, error) {
			return G.Log(G.Must(G.Add(one(x), G.Must(G.Exp(x)))))
		})},
		{"square of sin-free mix", []float64{0.5, -1, 1.2}, sumOf(func(x *G.Node) (*G.Node, error) {
			// tanh(x)·exp(−x²/2): products and chains of both kinds.
			e := G.Must(G.Exp(G.Must(Scale(G.Must(G.Square(x)), -0.5))))
			return G.HadamardProd(G.Must(G.Tanh(x)), e)
		})},
		{"relu squared", []float64{0.5, -1, 1.2}, sumOf(func(x *G.Node) (*G.Node, error) {
			return G.Square(G.Must(G.Rectify(x)))
		})},
		{"fused relu squared", []float64{0.5, -1, 1.2}, sumOf(func(x *G.Node) (*G.Node, error) {
			return G.Square(G.Must(ReLU(x)))
		})},
		{"fused relu through tanh", []float64{0.5, -1, 1.2, 0.1}, sumOf(func(x *G.Node) (*G.Node, error) {
			// tanh(relu(x))·x: second derivatives through the mask op.
			return G.HadamardProd(G.Must(G.Tanh(G.Must(ReLU(x)))), x)
		})},
		{"matmul chain", []float64{0.3, -0.7, 1.1, 0.2}, func(x *G.Node) (*G.Node, error) {
			// Σ tanh(B·tanh(A·x)) with A, B 3×4 and 4×3.
			A := G.NewConstant(tensor.New(tensor.WithShape(3, 4), tensor.WithBacking(a)))
			B := G.NewConstant(tensor.New(tensor.WithShape(4, 3), tensor.WithBacking(b)))
			h := G.Must(G.Tanh(G.Must(G.Mul(A, x))))
			o := G.Must(G.Tanh(G.Must(G.Mul(B, h))))
			return SumAll(G.Must(G.HadamardProd(o, o)))
		}},
		{"batched matmul with broadcast", []float64{0.3, -0.7, 1.1, 0.2, 0.5, -0.4}, func(x *G.Node) (*G.Node, error) {
			// x as a [2,1,3] batch of rows times a shared [3,4] matrix
			// broadcast to [2,3,4], then sigmoid and a sum.
			W := G.NewConstant(tensor.New(tensor.WithShape(3, 4), tensor.WithBacking(a)), G.In(x.Graph()))
			Wb, err := Broadcast(W, 0, 2)
			if err != nil {
				return nil, err
			}
			xr := G.Must(G.Reshape(x, tensor.Shape{2, 1, 3}))
			y := G.Must(G.BatchedMatMul(xr, Wb))
			return SumAll(G.Must(G.Sigmoid(y)))
		}},
		{"log-softmax cross-entropy", []float64{0.3, -0.7, 1.1, 0.2, 2, -1}, func(x *G.Node) (*G.Node, error) {
			z := G.Must(G.Reshape(x, tensor.Shape{2, 3}))
			y := G.NewConstant(tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float64{0, 0, 1, 1, 0, 0})))
			return SoftmaxCrossEntropy(z, y)
		}},
		{"cross-entropy on integer labels", []float64{0.3, -0.7, 1.1, 0.2, 2, -1}, func(x *G.Node) (*G.Node, error) {
			z := G.Must(G.Reshape(x, tensor.Shape{2, 3}))
			l := G.NewConstant(tensor.New(tensor.WithShape(2), tensor.WithBacking([]int{2, 0})))
			return CrossEntropyLabels(z, l)
		}},
		{"broadcast and sum axes", []float64{0.3, -0.7, 1.1, 0.2, 2, -1}, func(x *G.Node) (*G.Node, error) {
			z := G.Must(G.Reshape(x, tensor.Shape{2, 3}))
			b := G.Must(Broadcast(z, 1, 4)) // [2,4,3]
			s := G.Must(SumAxis(G.Must(G.Tanh(b)), 2))
			return SumAll(G.Must(G.HadamardProd(s, s)))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newDerivRig(t, len(tt.x), tt.build)
			r.check(t, tt.x, rand.New(rand.NewPCG(3, 4)))
		})
	}
}

// TestGradCubeExact checks the textbook case that gorgonia's own Grad gets
// wrong: d²/dx² x³ at 2 is 12.
func TestGradCubeExact(t *testing.T) {
	g := G.NewGraph()
	x := G.NewScalar(g, G.Float64, G.WithName("x"))
	y := G.Must(G.Mul(G.Must(G.Mul(x, x)), x))
	d1, err := Grad(y, x)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := Grad(d1[0], x)
	if err != nil {
		t.Fatal(err)
	}
	d3, err := Grad(d2[0], x)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := G.Let(x, 2.0); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(); err != nil {
		t.Fatal(err)
	}
	got := []float64{read(t, m, d1[0])[0], read(t, m, d2[0])[0], read(t, m, d3[0])[0]}
	want := []float64{12, 12, 6}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("d^%d/dx^%d x³ at 2 = %v; want %v", i+1, i+1, got[i], want[i])
		}
	}
}

// TestGradTwoCosts differentiates two costs of one graph in turn; each must
// get its own gradient.
func TestGradTwoCosts(t *testing.T) {
	g := G.NewGraph()
	x := G.NewVector(g, G.Float64, G.WithShape(3), G.WithName("x"))
	sq := G.Must(G.Square(x))
	c1 := G.Must(SumAll(sq))
	c2 := G.Must(SumAll(G.Must(G.HadamardProd(sq, x))))
	g1, err := Grad(c1, x)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := Grad(c2, x)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	xv := []float64{1, -2, 0.5}
	xt, _ := NewTensor(tensor.Float64, []int{3}, xv)
	if err := m.Let("x", xt); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(); err != nil {
		t.Fatal(err)
	}
	for i, xi := range xv {
		if got, want := read(t, m, g1[0])[i], 2*xi; got != want {
			t.Errorf("d Σx²/dx[%d] = %v; want %v", i, got, want)
		}
		if got, want := read(t, m, g2[0])[i], 3*xi*xi; got != want {
			t.Errorf("d Σx³/dx[%d] = %v; want %v", i, got, want)
		}
	}
}

func TestGradTargets(t *testing.T) {
	g := G.NewGraph()
	x := G.NewVector(g, G.Float64, G.WithShape(2), G.WithName("x"))
	u := G.NewVector(g, G.Float64, G.WithShape(2), G.WithName("u"))
	h := G.Must(G.Tanh(x))
	mask := G.Must(G.Gt(x, G.NewConstant(0.0), true)) // comparison: no gradient
	c := G.Must(SumAll(G.Must(G.HadamardProd(G.Must(G.HadamardProd(h, h)), mask))))
	grads, err := Grad(c, h, x, u)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	xv := []float64{0.5, -0.25}
	xt, _ := NewTensor(tensor.Float64, []int{2}, xv)
	ut, _ := NewTensor(tensor.Float64, []int{2}, []float64{1, 1})
	m.Let("x", xt)
	m.Let("u", ut)
	if err := m.Run(); err != nil {
		t.Fatal(err)
	}
	th := math.Tanh(xv[0])
	dh := read(t, m, grads[0])
	if want := []float64{2 * th, 0}; RelErr(dh, want, 1e-12) > 1e-15 {
		t.Errorf("dc/dh = %v; want %v", dh, want)
	}
	dx := read(t, m, grads[1])
	if want := []float64{2 * th * (1 - th*th), 0}; RelErr(dx, want, 1e-12) > 1e-14 {
		t.Errorf("dc/dx = %v; want %v", dx, want)
	}
	if du := read(t, m, grads[2]); du[0] != 0 || du[1] != 0 {
		t.Errorf("dc/du = %v; want zeros (c does not depend on u)", du)
	}
}

// opaqueOp is an op without a symbolic derivative.
type opaqueOp struct{}

func (opaqueOp) Arity() int                                        { return 1 }
func (opaqueOp) Type() hm.Type                                     { a := hm.TypeVariable('a'); return hm.NewFnType(a, a) }
func (opaqueOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) { return in[0].(tensor.Shape), nil }
func (opaqueOp) Do(in ...G.Value) (G.Value, error)                 { return in[0], nil }
func (opaqueOp) String() string                                    { return "Opaque" }
func (opaqueOp) WriteHash(h hash.Hash)                             { fmt.Fprint(h, "Opaque") }
func (opaqueOp) Hashcode() uint32                                  { return 7 }
func (opaqueOp) ReturnsPtr() bool                                  { return false }
func (opaqueOp) CallsExtern() bool                                 { return false }
func (opaqueOp) OverwritesInput() int                              { return -1 }

func TestGradErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewVector(g, G.Float64, G.WithShape(2), G.WithName("x"))
	y := G.Must(G.ApplyOp(opaqueOp{}, x))
	c := G.Must(SumAll(y))
	_, err := Grad(c, x)
	if !errors.Is(err, ErrNotDifferentiable) || !strings.Contains(err.Error(), "Opaque") {
		t.Errorf("Grad through an op without SymDiff: err = %v; want ErrNotDifferentiable naming Opaque", err)
	}
	if _, err := Grad(y, x); !errors.Is(err, ErrShape) {
		t.Errorf("Grad of a vector cost: err = %v; want ErrShape", err)
	}
	other := G.NewGraph()
	z := G.NewScalar(other, G.Float64, G.WithName("z"))
	if _, err := Grad(c, z); err == nil {
		t.Errorf("Grad with a target from another graph: no error")
	}
	if _, err := Grad(nil, x); err == nil {
		t.Errorf("Grad(nil): no error")
	}
}

func TestPickBadLabel(t *testing.T) {
	g := G.NewGraph()
	z := G.NewMatrix(g, G.Float64, G.WithShape(2, 3), G.WithName("z"))
	l := G.NewVector(g, tensor.Int, G.WithShape(2), G.WithName("l"))
	c, err := CrossEntropyLabels(z, l)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Let("z", tensor.New(tensor.WithShape(2, 3), tensor.WithBacking(make([]float64, 6))))
	m.Let("l", tensor.New(tensor.WithShape(2), tensor.WithBacking([]int{1, 3})))
	err = m.Run()
	if err == nil || !strings.Contains(err.Error(), "label 3 at position 1") {
		t.Errorf("Run with label 3 of 3 classes: err = %v; want one naming label 3 at position 1", err)
	}
	_ = c
}

func read(t *testing.T, m *Plan, n *G.Node) []float64 {
	t.Helper()
	v, err := m.ReadFloat64s(n)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestGradGorgoniaReductions differentiates twice through gorgonia's own
// Sum and Mean, whose derivatives go through Reshape and Repeat.
func TestGradGorgoniaReductions(t *testing.T) {
	x0 := []float64{0.3, -0.7, 1.1, 0.2, 2, -1}
	for name, build := range map[string]func(x *G.Node) (*G.Node, error){
		"square of Mean": func(x *G.Node) (*G.Node, error) {
			m := G.Must(G.Mean(G.Must(G.Tanh(G.Must(G.Reshape(x, tensor.Shape{2, 3}))))))
			return G.Mul(m, m)
		},
		"Sum along an axis": func(x *G.Node) (*G.Node, error) {
			s := G.Must(G.Sum(G.Must(G.Tanh(G.Must(G.Reshape(x, tensor.Shape{2, 3})))), 1))
			return SumAll(G.Must(G.HadamardProd(s, s)))
		},
	} {
		t.Run(name, func(t *testing.T) {
			newDerivRig(t, len(x0), build).check(t, x0, rand.New(rand.NewPCG(2, 2)))
		})
	}
}

// TestGradRefusesSliceSecondOrder: gorgonia's derivative of Slice cannot
// be differentiated again correctly, so Grad must refuse rather than give a
// wrong Hessian.
func TestGradRefusesSliceSecondOrder(t *testing.T) {
	g := G.NewGraph()
	x := G.NewVector(g, G.Float64, G.WithShape(3), G.WithName("x"))
	s := G.Must(G.Slice(x, G.S(1)))
	c := G.Must(G.Mul(G.Must(G.Tanh(s)), s))
	d1, err := Grad(c, x)
	if err != nil {
		t.Fatalf("first derivative through Slice: %v", err)
	}
	dot := G.Must(SumAll(d1[0]))
	if _, err := Grad(dot, x); !errors.Is(err, ErrNotDifferentiable) {
		t.Errorf("second derivative through Slice: err = %v; want ErrNotDifferentiable", err)
	}
}

// TestGradRefusesSoftMaxSecondOrder: gorgonia's SoftMax differentiates
// once, but its derivative op cannot be differentiated (it panics), which
// Grad must report as ErrNotDifferentiable.
func TestGradRefusesSoftMaxSecondOrder(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, G.Float64, G.WithShape(2, 3), G.WithName("x"))
	sm := G.Must(G.SoftMax(x))
	c := G.Must(SumAll(G.Must(G.Square(sm))))
	d1, err := Grad(c, x)
	if err != nil {
		t.Fatalf("first derivative through SoftMax: %v", err)
	}
	if _, err := Grad(G.Must(SumAll(d1[0])), x); !errors.Is(err, ErrNotDifferentiable) || !strings.Contains(err.Error(), "SoftmaxDiff") {
		t.Errorf("second derivative through SoftMax: err = %v; want ErrNotDifferentiable naming the op", err)
	}
}

func TestParamsAddRejects(t *testing.T) {
	var p Params
	v, _ := NewTensor(tensor.Float64, []int{2}, nil)
	if err := p.Add("w", v); err != nil {
		t.Fatal(err)
	}
	if err := p.Add("w", v); err == nil {
		t.Errorf("Add of a duplicate name: no error")
	}
	if err := p.Add("", v); err == nil {
		t.Errorf("Add of an empty name: no error")
	}
	scalar := tensor.New(tensor.FromScalar(1.0))
	if err := p.Add("s", scalar); !errors.Is(err, ErrShape) {
		t.Errorf("Add of a 0-d tensor: err = %v; want ErrShape", err)
	}
	ints := tensor.New(tensor.WithShape(2), tensor.WithBacking([]int{1, 2}))
	if err := p.Add("i", ints); err == nil {
		t.Errorf("Add of an int tensor: no error")
	}
	if _, err := NewTensor(tensor.Float64, []int{2, 0}, nil); !errors.Is(err, ErrShape) {
		t.Errorf("NewTensor with a zero size: err = %v; want ErrShape", err)
	}
}

// TestReLUKernels checks the branch-free kernels on the edge cases: ±0,
// the smallest subnormals, infinities and NaN.
func TestReLUKernels(t *testing.T) {
	in := []float64{-1, -0.0, 0, math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64, 2.5, math.Inf(1), math.Inf(-1), math.MaxFloat64}
	g := []float64{10, 20, 30, 40, 50, 60, 70, 80, 90}
	wantY := []float64{0, 0, 0, math.SmallestNonzeroFloat64, 0, 2.5, math.Inf(1), 0, math.MaxFloat64}
	wantG := []float64{0, 0, 0, 40, 0, 60, 70, 0, 90}
	y, m := relu64(make([]float64, len(in)), in), mask64(make([]float64, len(g)), in, g)
	in32, g32 := f32(in), f32(g)
	in32[3], in32[4] = math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32
	in32[8] = math.MaxFloat32
	y32, m32 := relu32(make([]float32, len(in32)), in32), mask32(make([]float32, len(g32)), in32, g32)
	for i := range in {
		if y[i] != wantY[i] || math.Signbit(y[i]) || m[i] != wantG[i] {
			t.Errorf("float64 x=%v: relu %v, mask %v; want %v, %v", in[i], y[i], m[i], wantY[i], wantG[i])
		}
		if (y32[i] > 0) != (wantY[i] > 0) || math.Signbit(float64(y32[i])) || float64(m32[i]) != wantG[i] {
			t.Errorf("float32 x=%v: relu %v, mask %v; want %v, %v", in32[i], y32[i], m32[i], wantY[i], wantG[i])
		}
	}
	if v := relu64(make([]float64, 1), []float64{math.NaN()})[0]; !math.IsNaN(v) {
		t.Errorf("relu(NaN) = %v; want NaN", v)
	}
}
