package graph

import (
	"math"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestPlanReusesBuffersSafely runs one plan on inputs a, b, a and checks
// each run's outputs equal a fresh plan's, bit for bit: reused output
// buffers must never leak values between runs or between nodes.
func TestPlanReusesBuffersSafely(t *testing.T) {
	build := func() (*Plan, G.Nodes) {
		g := G.NewGraph()
		x := G.NewTensor(g, G.Float64, 3, G.WithShape(2, 3, 4), G.WithName("x"))
		w := G.NewTensor(g, G.Float64, 3, G.WithShape(2, 4, 5), G.WithName("w"))
		h := G.Must(BatchedMatMul(x, w, false, false))
		r := G.Must(ReLU(h))
		e := G.Must(G.Exp(G.Must(Scale(r, -0.5))))
		s := G.Must(G.Add(e, G.Must(G.Square(h))))
		b := G.Must(Broadcast(G.Must(SumAxis(s, 1)), 1, 3))
		prod := G.Must(G.HadamardProd(b, s))
		total := G.Must(SumAll(prod))
		grads, err := Grad(total, x, w)
		if err != nil {
			t.Fatal(err)
		}
		outs := append(G.Nodes{total, prod, r}, grads...)
		p, err := Compile(g, outs...)
		if err != nil {
			t.Fatal(err)
		}
		return p, outs
	}
	input := func(seed float64) (xt, wt *tensor.Dense) {
		xd, wd := make([]float64, 24), make([]float64, 40)
		for i := range xd {
			xd[i] = math.Sin(seed*float64(i+1)) * 0.7
		}
		for i := range wd {
			wd[i] = math.Cos(seed*float64(i+3)) * 0.5
		}
		return tensor.New(tensor.WithShape(2, 3, 4), tensor.WithBacking(xd)), tensor.New(tensor.WithShape(2, 4, 5), tensor.WithBacking(wd))
	}
	run := func(p *Plan, outs G.Nodes, seed float64) [][]float64 {
		xt, wt := input(seed)
		if err := p.Let("x", xt); err != nil {
			t.Fatal(err)
		}
		if err := p.Let("w", wt); err != nil {
			t.Fatal(err)
		}
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
		var res [][]float64
		for _, o := range outs {
			v, err := p.ReadFloat64s(o)
			if err != nil {
				t.Fatal(err)
			}
			res = append(res, v)
		}
		return res
	}
	reused, outs := build()
	for _, seed := range []float64{1.3, 2.9, 1.3, 0.4} {
		got := run(reused, outs, seed)
		fresh, fouts := build()
		want := run(fresh, fouts, seed)
		for k := range want {
			for i := range want[k] {
				if math.Float64bits(got[k][i]) != math.Float64bits(want[k][i]) {
					t.Fatalf("seed %v output %d[%d]: reused plan %v, fresh plan %v", seed, k, i, got[k][i], want[k][i])
				}
			}
		}
	}
}
