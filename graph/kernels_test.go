package graph

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// maml builds MAML's sinusoid meta-gradient in dt: a 1-40-40-1 ReLU
// network applied per task as nets.MLP does (h·Wᵀ), one inner SGD step on
// the support loss, and the gradient of the query loss after it with
// respect to the initial weights, through the step.
func mamlGraph(t *testing.T, dt tensor.Dtype, tasks, n int) (*G.ExprGraph, G.Nodes, map[string]tensor.Tensor) {
	t.Helper()
	g := G.NewGraph()
	rng := rand.New(rand.NewPCG(3, 5))
	vals := map[string]tensor.Tensor{}
	input := func(name string, scale float64, shape ...int) *G.Node {
		data := make([]float64, tensor.Shape(shape).TotalSize())
		for i := range data {
			data[i] = rng.NormFloat64() * scale
		}
		v, err := NewTensor(dt, shape, data)
		if err != nil {
			t.Fatal(err)
		}
		vals[name] = v
		return G.NewTensor(g, dt, len(shape), G.WithShape(shape...), G.WithName(name))
	}
	xs, ys := input("xs", 2, tasks, n, 1), input("ys", 1, tasks, n, 1)
	xq, yq := input("xq", 2, tasks, n, 1), input("yq", 1, tasks, n, 1)
	ws := G.Nodes{input("w1", 1, tasks, 40, 1), input("w2", 0.2, tasks, 40, 40), input("w3", 0.2, tasks, 1, 40)}
	loss := func(x, y *G.Node, ws G.Nodes) *G.Node {
		h := x
		for i, w := range ws {
			h = G.Must(BatchedMatMul(h, w, false, true))
			if i < len(ws)-1 {
				h = G.Must(ReLU(h))
			}
		}
		return G.Must(SumAll(G.Must(G.Square(G.Must(G.Sub(h, y))))))
	}
	inner, err := Grad(loss(xs, ys, ws), ws...)
	if err != nil {
		t.Fatal(err)
	}
	lr := G.NewConstant(0.01)
	if dt == tensor.Float32 {
		lr = G.NewConstant(float32(0.01))
	}
	adapted := make(G.Nodes, len(ws))
	for i, w := range ws {
		adapted[i] = G.Must(G.Sub(w, G.Must(G.Mul(inner[i], lr))))
	}
	lq := loss(xq, yq, adapted)
	outer, err := Grad(lq, ws...)
	if err != nil {
		t.Fatal(err)
	}
	return g, append(G.Nodes{lq}, outer...), vals
}

// TestKernelsMatchGorgonia computes MAML's second-order meta-gradient with
// medusa's kernels and with gorgonia's ops and gonum's gemm
// (MEDUSA_NATIVE=off): float64 must agree bit for bit; float32, whose small
// products now sum A·Bᵀ in another order, to 1e-6 of each output's largest
// element.
func TestKernelsMatchGorgonia(t *testing.T) {
	saved := nativeOn
	defer func() { nativeOn = saved }()
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		results := [2][][]float64{}
		for k, on := range []bool{true, false} {
			nativeOn = func() bool { return on }
			g, outs, vals := mamlGraph(t, dt, 25, 10)
			p, err := Compile(g, outs...)
			if err != nil {
				t.Fatal(err)
			}
			for name, v := range vals {
				if err := p.Let(name, v); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Run(); err != nil {
				t.Fatal(err)
			}
			for _, o := range outs {
				v, err := p.ReadFloat64s(o)
				if err != nil {
					t.Fatal(err)
				}
				results[k] = append(results[k], v)
			}
		}
		for i := range results[0] {
			got, want := results[0][i], results[1][i]
			var diff, scale float64
			for j := range want {
				diff = max(diff, math.Abs(got[j]-want[j]))
				scale = max(scale, math.Abs(want[j]))
			}
			tol := 1e-6 * scale
			if dt == tensor.Float64 {
				tol = 0
			}
			if diff > tol || math.IsNaN(diff) {
				t.Errorf("%v output %d: max difference %.3g, allowed %.3g", dt, i, diff, tol)
			} else {
				t.Logf("%v output %d: max difference %.3g of %.3g", dt, i, diff, scale)
			}
		}
	}
}
