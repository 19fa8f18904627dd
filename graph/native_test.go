package graph

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestNativeKernels checks each native kernel against gorgonia's op, bit
// for bit, in float32 and float64: element-wise arithmetic on two tensors,
// on a tensor and a scalar on either side, negation and squaring; and that
// a node the kernels do not cover (exp) keeps its op.
func TestNativeKernels(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		g := G.NewGraph()
		x := G.NewMatrix(g, dt, G.WithShape(3, 5), G.WithName("x"))
		y := G.NewMatrix(g, dt, G.WithShape(3, 5), G.WithName("y"))
		s := G.NewScalar(g, dt, G.WithName("s"))
		var outs G.Nodes
		for _, f := range []func() (*G.Node, error){
			func() (*G.Node, error) { return G.Add(x, y) },
			func() (*G.Node, error) { return G.Sub(x, y) },
			func() (*G.Node, error) { return G.HadamardProd(x, y) },
			func() (*G.Node, error) { return G.HadamardDiv(x, y) },
			func() (*G.Node, error) { return G.Add(x, s) },
			func() (*G.Node, error) { return G.Sub(s, x) },
			func() (*G.Node, error) { return G.Sub(x, s) },
			func() (*G.Node, error) { return G.Mul(s, x) },
			func() (*G.Node, error) { return G.Mul(x, s) },
			func() (*G.Node, error) { return G.Div(x, s) },
			func() (*G.Node, error) { return G.Div(s, x) },
			func() (*G.Node, error) { return G.Neg(x) },
			func() (*G.Node, error) { return G.Square(y) },
		} {
			n, err := f()
			if err != nil {
				t.Fatal(err)
			}
			outs = append(outs, n)
		}
		exp, err := G.Exp(x)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, exp)
		native, err := Compile(g, outs...)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := Compile(g, outs...)
		if err != nil {
			t.Fatal(err)
		}
		plain.native = nil
		covered := 0
		for _, o := range outs[:len(outs)-1] {
			if native.native[native.index[o]] != nil {
				covered++
			} else {
				t.Errorf("%v: %v has no native kernel", dt, o.Op())
			}
		}
		if native.native[native.index[exp]] != nil {
			t.Errorf("%v: exp got a native kernel", dt)
		}
		rng := rand.New(rand.NewPCG(5, 6))
		for run := 0; run < 3; run++ {
			xs, ys := make([]float64, 15), make([]float64, 15)
			for i := range xs {
				xs[i], ys[i] = rng.NormFloat64(), rng.NormFloat64()
			}
			sv := rng.NormFloat64()
			for _, p := range []*Plan{native, plain} {
				for name, v := range map[string]tensor.Tensor{"x": value(dt, xs, 3, 5), "y": value(dt, ys, 3, 5), "s": scalar(dt, sv)} {
					if err := p.Let(name, v); err != nil {
						t.Fatal(err)
					}
				}
				if err := p.Run(); err != nil {
					t.Fatal(err)
				}
			}
			for _, o := range outs {
				a, err := native.ReadFloat64s(o)
				if err != nil {
					t.Fatal(err)
				}
				b, err := plain.ReadFloat64s(o)
				if err != nil {
					t.Fatal(err)
				}
				for i := range b {
					if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
						t.Fatalf("%v %v: element %d: native %v, gorgonia %v", dt, o.Op(), i, a[i], b[i])
					}
				}
			}
		}
	}
}

func value(dt tensor.Dtype, x []float64, shape ...int) tensor.Tensor {
	if dt == tensor.Float32 {
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(f32(x)))
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float64(nil), x...)))
}

func scalar(dt tensor.Dtype, x float64) tensor.Tensor {
	if dt == tensor.Float32 {
		return tensor.New(tensor.FromScalar(float32(x)))
	}
	return tensor.New(tensor.FromScalar(x))
}
