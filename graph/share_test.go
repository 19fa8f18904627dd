package graph

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestSharedStats: in a plan of BatchNorm's gradient, invStd takes the
// statistics of the forward pass's normalize, and its values are the
// bits invStd computes itself, run after run with new data; without this
// run's statistics it declines.
func TestSharedStats(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		g := G.NewGraph()
		s := []int{2, 40, 3}
		x := G.NewTensor(g, dt, 3, G.WithShape(s...), G.WithName("x"))
		gamma := G.NewMatrix(g, dt, G.WithShape(2, 3), G.WithName("gamma"))
		beta := G.NewMatrix(g, dt, G.WithShape(2, 3), G.WithName("beta"))
		y := G.Must(BatchNorm(x, gamma, beta, 1e-5))
		grads, err := Grad(G.Must(SumAll(G.Must(G.Square(y)))), x)
		if err != nil {
			t.Fatal(err)
		}
		var sn *G.Node // invStd(x), an output so that its value stays readable
		for _, n := range topoSort(grads[0]) {
			if _, ok := kernelOf[invStdOp](n); ok {
				sn = n
			}
		}
		if sn == nil {
			t.Fatalf("%v: no invStd in the gradient", dt)
		}
		p, err := Compile(g, y, grads[0], sn)
		if err != nil {
			t.Fatal(err)
		}
		inv := p.index[sn]
		if p.native[inv] == nil {
			t.Fatalf("%v: no invStd sharing statistics in the plan", dt)
		}
		rng := rand.New(rand.NewPCG(3, 4))
		for run := range 3 {
			xv, err := NewTensor(dt, s, randn(rng, 2*40*3))
			if err != nil {
				t.Fatal(err)
			}
			one, _ := NewTensor(dt, []int{2, 3}, []float64{1, 2, 3, 4, 5, 6})
			for name, v := range map[string]tensor.Tensor{"x": xv, "gamma": one, "beta": one} {
				if err := p.Let(name, v); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Run(); err != nil {
				t.Fatal(err)
			}
			want, err := invStdOp{eps: 1e-5}.do(nil, []G.Value{xv})
			if err != nil {
				t.Fatal(err)
			}
			got, _, _ := dense(p.vals[inv])
			wd, _, _ := dense(want)
			if fmt.Sprint(got) != fmt.Sprint(wd) {
				t.Fatalf("%v, run %d: invStd %v; computed alone %v", dt, run, got, wd)
			}
		}
		if _, ok := p.native[inv](nil, []G.Value{p.vals[p.args[inv][0]]}); ok {
			t.Errorf("%v: invStd ran on statistics already taken", dt)
		}
		p.Close()
	}
}

// TestSharedMax: in a plan of MaxPool2D, the gather copies the maxima the
// arg-max op wrote, the bits a gather computes, run after run with new
// data; without this run's maxima it declines.
func TestSharedMax(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		for _, k := range []int{2, 3} {
			g := G.NewGraph()
			s := []int{2, 3, 6, 7, 5}
			x := G.NewTensor(g, dt, 5, G.WithShape(s...), G.WithName("x"))
			y := G.Must(MaxPool2D(x, k))
			p, err := Compile(g, y)
			if err != nil {
				t.Fatal(err)
			}
			gi := p.index[y]
			if p.native[gi] == nil {
				t.Fatalf("%v, k=%d: the gather does not share the arg-max's maxima", dt, k)
			}
			op := poolArgMaxOp{image: image{n: 3, h: 6, w: 7, c: 5}, k: k}
			rng := rand.New(rand.NewPCG(5, uint64(k)))
			for run := range 3 {
				xv, err := NewTensor(dt, s, randn(rng, tensor.Shape(s).TotalSize()))
				if err != nil {
					t.Fatal(err)
				}
				if err := p.Let("x", xv); err != nil {
					t.Fatal(err)
				}
				if err := p.Run(); err != nil {
					t.Fatal(err)
				}
				idx, err := op.do(nil, []G.Value{xv})
				if err != nil {
					t.Fatal(err)
				}
				want, err := gatherOp{from: tensor.Shape(s), dims: 5, pool: k}.do(nil, []G.Value{xv, idx})
				if err != nil {
					t.Fatal(err)
				}
				got, _, _ := dense(p.vals[gi])
				wd, _, _ := dense(want)
				if fmt.Sprint(got) != fmt.Sprint(wd) {
					t.Fatalf("%v, k=%d, run %d: pooled %v; gathered %v", dt, k, run, got, wd)
				}
			}
			xv, idx := p.vals[p.args[gi][0]], tensor.New(tensor.WithShape(y.Shape()...), tensor.Of(tensor.Int))
			if _, ok := p.native[gi](nil, []G.Value{xv, idx}); ok {
				t.Errorf("%v, k=%d: the gather ran on maxima already taken", dt, k)
			}
			p.Close()
		}
	}
}

// TestSharedWork compares plans that share work between paired ops with
// plans that do not, bit for bit, run after run with new data, on a
// ConvNet block (convolution, batch normalisation, pooling, ReLU), its
// gradients and a second derivative, and checks that every pair formed.
func TestSharedWork(t *testing.T) {
	defer func(on bool) { shareWork = on }(shareWork)
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		g := G.NewGraph()
		in := func(name string, s ...int) *G.Node {
			return G.NewTensor(g, dt, len(s), G.WithShape(s...), G.WithName(name))
		}
		x, w, gamma, beta, v := in("x", 2, 3, 6, 6, 4), in("w", 2, 5, 4, 3, 3), in("gamma", 2, 5), in("beta", 2, 5), in("v", 2, 5)
		// ReLU before the pooling, so that the pooling is not fused
		// with the scale and shift and its gather pairs with its arg-max.
		h := G.Must(Conv2D(x, w, nil, 1, 1))
		h = G.Must(BatchNorm(h, gamma, beta, 1e-5))
		h = G.Must(MaxPool2D(G.Must(ReLU(h)), 2))
		cost := G.Must(SumAll(G.Must(G.Square(h))))
		grads, err := Grad(cost, x, w, gamma, beta)
		if err != nil {
			t.Fatal(err)
		}
		hv, err := Grad(G.Must(SumAll(G.Must(G.HadamardProd(grads[3], v)))), w, gamma)
		if err != nil {
			t.Fatal(err)
		}
		outs := append(G.Nodes{h}, append(grads, hv...)...)
		shareWork = true
		on, err := Compile(g, outs...)
		if err != nil {
			t.Fatal(err)
		}
		shareWork = false
		off, err := Compile(g, outs...)
		if err != nil {
			t.Fatal(err)
		}
		paired := map[string]int{}
		var takers []int // the second ops of the pairs
		for i, n := range on.nodes {
			if on.native[i] == nil || n.Op() == nil || on.fused[i] {
				continue
			}
			if k, _, _ := describeOp(n.Op()); k == "invstd" || k == "gather" || k == "sumrows" {
				paired[k]++
				takers = append(takers, i)
			}
		}
		if paired["invstd"] == 0 || paired["gather"] == 0 || paired["sumrows"] == 0 {
			t.Fatalf("%v: pairs formed %v; want invstd, gather and sumrows", dt, paired)
		}
		rng := rand.New(rand.NewPCG(9, 9))
		for run := range 3 {
			for _, n := range []*G.Node{x, w, gamma, beta, v} {
				val, err := NewTensor(dt, n.Shape(), randn(rng, n.Shape().TotalSize()))
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range []*Plan{on, off} {
					if err := p.Let(n.Name(), val); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, p := range []*Plan{on, off} {
				if err := p.Run(); err != nil {
					t.Fatal(err)
				}
			}
			for i, o := range outs {
				a, b := read(t, on, o), read(t, off, o)
				for j := range a {
					if math.Float64bits(a[j]) != math.Float64bits(b[j]) {
						t.Fatalf("%v, run %d, output %d element %d: %v sharing, %v not", dt, run, i, j, a[j], b[j])
					}
				}
			}
		}
		// What a Run shared is taken once: the second ops decline now.
		// (Arguments the plan has let go are zeros of their shape.)
		for _, i := range takers {
			in := make([]G.Value, len(on.args[i]))
			for j, a := range on.args[i] {
				if in[j] = on.vals[a]; in[j] == nil {
					n := on.nodes[a]
					in[j] = tensor.New(tensor.WithShape(n.Shape()...), tensor.Of(n.Dtype()))
				}
			}
			if _, ok := on.native[i](nil, in); ok {
				t.Errorf("%v: %v ran again on values already taken", dt, on.nodes[i].Op())
			}
		}
		on.Close()
		off.Close()
	}
}
