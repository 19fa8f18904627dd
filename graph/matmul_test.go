package graph

import (
	"fmt"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestBatchedMatMulSecondOrder checks gradients and Hessian-vector products
// through BatchedMatMul for every transpose combination, with the variable
// as either operand and as both.
func TestBatchedMatMulSecondOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	other := make([]float64, 2*3*3)
	for i := range other {
		other[i] = rng.NormFloat64()
	}
	x0 := make([]float64, 2*3*3)
	for i := range x0 {
		x0[i] = rng.NormFloat64()
	}
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			for _, which := range []string{"a", "b", "both"} {
				t.Run(fmt.Sprintf("transA=%v/transB=%v/var=%s", tA, tB, which), func(t *testing.T) {
					r := newDerivRig(t, len(x0), func(x *G.Node) (*G.Node, error) {
						v := G.Must(G.Reshape(x, tensor.Shape{2, 3, 3}))
						c := G.NewConstant(tensor.New(tensor.WithShape(2, 3, 3), tensor.WithBacking(other)), G.In(x.Graph()))
						a, b := v, c
						switch which {
						case "b":
							a, b = c, v
						case "both":
							a, b = v, v
						}
						p, err := BatchedMatMul(a, b, tA, tB)
						if err != nil {
							return nil, err
						}
						th := G.Must(G.Tanh(p))
						return SumAll(G.Must(G.HadamardProd(th, th)))
					})
					r.check(t, x0, rand.New(rand.NewPCG(1, 1)))
				})
			}
		}
	}
}

func TestBatchedMatMulValues(t *testing.T) {
	g := G.NewGraph()
	// a [1,2,3], b [1,3,2]: a·b = [[4 5] [10 11]] for these values.
	a := G.NewConstant(tensor.New(tensor.WithShape(1, 2, 3), tensor.WithBacking([]float64{1, 2, 3, 4, 5, 6})), G.In(g))
	b := G.NewConstant(tensor.New(tensor.WithShape(1, 3, 2), tensor.WithBacking([]float64{1, 0, 0, 1, 1, 1})), G.In(g))
	c, err := BatchedMatMul(a, b, false, false)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(g, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Run(); err != nil {
		t.Fatal(err)
	}
	got, _ := m.ReadFloat64s(c)
	want := []float64{4, 5, 10, 11}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("BatchedMatMul = %v; want %v", got, want)
		}
	}
	if _, err := BatchedMatMul(a, a, false, false); err == nil {
		t.Errorf("BatchedMatMul of [1 2 3] by [1 2 3]: no error")
	}
}

// TestMatMulEmpty: products with an empty batch or an empty side give an
// empty result, and an empty inner size gives zeros, without a panic.
func TestMatMulEmpty(t *testing.T) {
	for _, c := range []struct{ a, b, want tensor.Shape }{
		{tensor.Shape{0, 2, 3}, tensor.Shape{0, 3, 4}, tensor.Shape{0, 2, 4}},
		{tensor.Shape{1, 0, 3}, tensor.Shape{1, 3, 4}, tensor.Shape{1, 0, 4}},
		{tensor.Shape{1, 2, 0}, tensor.Shape{1, 0, 4}, tensor.Shape{1, 2, 4}},
	} {
		for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
			a := tensor.New(tensor.Of(dt), tensor.WithShape(c.a...))
			b := tensor.New(tensor.Of(dt), tensor.WithShape(c.b...))
			v, err := matMulOp{}.Do(a, b)
			if err != nil {
				t.Fatalf("%v × %v (%v): %v", c.a, c.b, dt, err)
			}
			got := Float64s(v)
			if len(got) != c.want.TotalSize() {
				t.Fatalf("%v × %v (%v): %d values, want %d", c.a, c.b, dt, len(got), c.want.TotalSize())
			}
			for _, x := range got {
				if x != 0 {
					t.Fatalf("%v × %v (%v): %v, want zeros", c.a, c.b, dt, got)
				}
			}
		}
	}
}
