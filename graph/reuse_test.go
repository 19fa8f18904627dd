package graph

import (
	"fmt"
	"hash"
	"math"
	"slices"
	"testing"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func seq(n int, off float64) []float64 {
	d := make([]float64, n)
	for i := range d {
		d[i] = float64(i) + off
	}
	return d
}

// againstKeep runs a reusing plan of outs, with pooled buffers filled
// with NaN, and a plan that keeps every value, on new inputs each run, and
// checks that the outputs agree bit for bit and that no input changed.
func againstKeep(t *testing.T, g *G.ExprGraph, outs []*G.Node, inputs map[string][]int, runs int) {
	t.Helper()
	p, err := Compile(g, outs...)
	if err != nil {
		t.Fatal(err)
	}
	p.reuse.poison = true
	keep, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	for run := range runs {
		bound := map[string]*tensor.Dense{}
		for name, shape := range inputs {
			d := seq(tensor.Shape(shape).TotalSize(), float64(run)+0.5)
			v, _ := NewTensor(tensor.Float64, shape, d)
			w, _ := NewTensor(tensor.Float64, shape, d)
			if err := p.Let(name, v); err != nil {
				t.Fatal(err)
			}
			if err := keep.Let(name, w); err != nil {
				t.Fatal(err)
			}
			bound[name] = v
		}
		for _, q := range []*Plan{p, keep} {
			if err := q.Run(); err != nil {
				t.Fatal(err)
			}
		}
		for name, v := range bound {
			for i, x := range v.Float64s() {
				if want := seq(v.Size(), float64(run)+0.5)[i]; x != want {
					t.Fatalf("run %d: input %s[%d] became %v, was %v", run, name, i, x, want)
				}
			}
		}
		for _, o := range outs {
			a, err := p.ReadFloat64s(o)
			if err != nil {
				t.Fatal(err)
			}
			b, err := keep.ReadFloat64s(o)
			if err != nil {
				t.Fatal(err)
			}
			for i := range a {
				if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
					t.Fatalf("run %d, output %s[%d]: %v with reuse, %v without", run, o.Name(), i, a[i], b[i])
				}
			}
		}
	}
}

// TestReuseForeignMemory covers values that lie in memory the plan does
// not own although they are not views: gorgonia's reshape of a reshape
// returns a tensor sharing its argument's memory, not marked as a view.
// Their buffers must never be pooled: not an input's, an output's or a
// constant's.
func TestReuseForeignMemory(t *testing.T) {
	t.Run("input", func(t *testing.T) {
		g := G.NewGraph()
		x := G.NewVector(g, G.Float64, G.WithShape(6), G.WithName("x"))
		r := G.Must(G.Reshape(G.Must(G.Reshape(x, tensor.Shape{2, 3})), tensor.Shape{3, 2}))
		b := G.Must(G.Add(G.Must(G.Square(r)), G.Must(G.Square(r))))
		out := G.Must(G.Add(b, G.Must(G.Reshape(x, tensor.Shape{3, 2}))))
		againstKeep(t, g, []*G.Node{out}, map[string][]int{"x": {6}}, 3)
	})
	t.Run("output", func(t *testing.T) {
		g := G.NewGraph()
		x := G.NewMatrix(g, G.Float64, G.WithShape(2, 3), G.WithName("x"))
		o := G.Must(G.Square(x))
		a := G.Must(G.Square(G.Must(G.Reshape(o, tensor.Shape{3, 2}))))
		b := G.Must(G.Add(a, a))
		againstKeep(t, g, []*G.Node{o, b}, map[string][]int{"x": {2, 3}}, 3)
	})
	t.Run("constant", func(t *testing.T) {
		g := G.NewGraph()
		k := G.NewConstant(tensor.New(tensor.WithShape(6), tensor.WithBacking(seq(6, 1))), G.In(g))
		x := G.NewMatrix(g, G.Float64, G.WithShape(3, 2), G.WithName("x"))
		r := G.Must(G.Reshape(G.Must(G.Reshape(k, tensor.Shape{2, 3})), tensor.Shape{3, 2}))
		a := G.Must(G.HadamardProd(r, x))
		c := G.Must(G.Add(G.Must(G.Add(a, a)), G.Must(G.Reshape(k, tensor.Shape{3, 2}))))
		againstKeep(t, g, []*G.Node{c}, map[string][]int{"x": {3, 2}}, 3)
	})
}

// failOp copies its argument, or fails (by panic or error) when told.
type failOp struct {
	mode *string // "", "panic" or "error"
}

func (op failOp) Arity() int           { return 1 }
func (op failOp) ReturnsPtr() bool     { return false }
func (op failOp) CallsExtern() bool    { return false }
func (op failOp) OverwritesInput() int { return -1 }
func (op failOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a)
}
func (op failOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return in[0].(tensor.Shape).Clone(), nil
}
func (op failOp) Do(in ...G.Value) (G.Value, error) {
	switch *op.mode {
	case "panic":
		panic("failOp")
	case "error":
		return nil, fmt.Errorf("failOp")
	}
	d := append([]float64(nil), in[0].(*tensor.Dense).Float64s()...)
	return tensor.New(tensor.WithShape(in[0].Shape().Clone()...), tensor.WithBacking(d)), nil
}
func (op failOp) String() string        { return "failOp" }
func (op failOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op failOp) Hashcode() uint32      { return hashOf(op) }

// TestReuseAfterFailedRuns fails Runs by an op's error and by its panic,
// each followed by a good Run: the good Runs' outputs are right, and the
// pool does not grow nor its counts drift.
func TestReuseAfterFailedRuns(t *testing.T) {
	mode := ""
	g := G.NewGraph()
	x := G.NewMatrix(g, G.Float64, G.WithShape(2, 3), G.WithName("x"))
	a := G.Must(G.Square(x))
	c := G.Must(G.Square(G.Must(G.ApplyOp(failOp{mode: &mode}, a))))
	out := G.Must(SumAll(G.Must(G.Add(c, a))))
	p, err := Compile(g, out)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Let("x", tensor.New(tensor.WithShape(2, 3), tensor.WithBacking(seq(6, 1)))); err != nil {
		t.Fatal(err)
	}
	want := 0.0
	for _, v := range seq(6, 1) {
		want += v*v*v*v + v*v
	}
	pooled := func() int {
		n := 0
		for _, free := range p.reuse.pool.free {
			n += len(free)
		}
		return n
	}
	var first int
	for i, m := range []string{"", "error", "", "panic", "", "panic", "", "error", ""} {
		mode = m
		err := p.Run()
		if (err != nil) != (m != "") {
			t.Fatalf("run %d (%q): err = %v", i, m, err)
		}
		if m != "" {
			continue
		}
		got, err := p.ReadFloat64s(out)
		if err != nil || got[0] != want {
			t.Fatalf("run %d: %v, %v; want %v", i, got, err, want)
		}
		if i == 0 {
			first = pooled()
		}
		if n := pooled(); n != first {
			t.Errorf("run %d: %d buffers pooled; %d after the first Run", i, n, first)
		}
		if n := p.reuse.live(); n != 0 {
			t.Errorf("run %d: %d buffers counted live after the Run", i, n)
		}
	}
}

// TestReuseAcrossShapes checks that values of different shapes share
// buffers: in x² → ·w → ² → ·v, the third value ([1, 8, 6]) takes the
// buffer of the first ([1, 8, 8]) and the fourth ([1, 8, 5]) the second's
// ([1, 8, 6]), so two buffers serve four values (the sum's partial sums,
// [1, 8] and [1], are too small to borrow them and have buffers of their
// own); that the results are those of a plan that keeps every value, with
// freed buffers poisoned; that Bytes counts those buffers; and that the
// headers made over borrowed buffers are made once, not every Run.
func TestReuseAcrossShapes(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, G.Float64, 3, G.WithShape(1, 8, 8), G.WithName("x"))
	w := G.NewTensor(g, G.Float64, 3, G.WithShape(1, 8, 6), G.WithName("w"))
	v := G.NewTensor(g, G.Float64, 3, G.WithShape(1, 6, 5), G.WithName("v"))
	a := G.Must(G.Square(x))
	b := G.Must(BatchedMatMul(a, w, false, false))
	c := G.Must(G.Square(b))
	d := G.Must(BatchedMatMul(c, v, false, false))
	out := G.Must(SumAll(d))
	againstKeep(t, g, G.Nodes{out}, map[string][]int{"x": {1, 8, 8}, "w": {1, 8, 6}, "v": {1, 6, 5}}, 3)

	p, err := Compile(g, out)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Bytes()-int64(g.AllNodes().Len())*NodeBytes, int64(8*(64+48+8+1)+8+8*64); got != want {
		t.Errorf("Bytes: %d of values; want %d (four buffers, the output and the largest value)", got, want)
	}
	for name, s := range map[string][]int{"x": {1, 8, 8}, "w": {1, 8, 6}, "v": {1, 6, 5}} {
		tv, _ := NewTensor(tensor.Float64, s, seq(tensor.Shape(s).TotalSize(), 1))
		if err := p.Let(name, tv); err != nil {
			t.Fatal(err)
		}
	}
	var headers []*tensor.Dense
	for run := range 4 {
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, free := range p.reuse.pool.free {
			n += len(free)
		}
		if n != 4 {
			t.Errorf("run %d: %d buffers pooled; want 4", run, n)
		}
		r, at := p.reuse, p.index
		if r.prev[at[c]] != r.prev[at[a]] || r.prev[at[d]] != r.prev[at[b]] {
			t.Errorf("run %d: x²·w squared and times v did not take the buffers of x² and x²·w", run)
		}
		if run == 0 {
			headers = append([]*tensor.Dense(nil), p.reuse.hdr...)
			continue
		}
		for i, h := range p.reuse.hdr {
			if h != headers[i] {
				t.Errorf("run %d: node %v's header made again", run, p.nodes[i])
			}
		}
	}
	made := 0
	for _, h := range headers {
		if h != nil {
			made++
		}
	}
	if made != 2 {
		t.Errorf("%d headers over borrowed buffers; want 2", made)
	}
}

// TestSharePool runs two plans that share one pool in turn: their
// results are those of plans that keep every value (with freed buffers
// poisoned), the pool holds the buffers of the larger plan's Run rather
// than both plans' (each Run gives back all it takes), SharedBytes bounds
// them, and TrimPool lets go of buffers that no Run took since the last.
func TestSharePool(t *testing.T) {
	chain := func(n int) (*G.ExprGraph, *G.Node) {
		g := G.NewGraph()
		x := G.NewTensor(g, G.Float64, 2, G.WithShape(n, n), G.WithName("x"))
		a := G.Must(G.Square(x))
		b := G.Must(G.Mul(a, x))
		c := G.Must(G.Add(G.Must(G.Square(b)), a))
		return g, G.Must(SumAll(c))
	}
	g1, out1 := chain(8)
	g2, out2 := chain(6)
	p1, err := Compile(g1, out1)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Compile(g2, out2)
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.SharePool(p1); err != nil {
		t.Fatal(err)
	}
	p1.reuse.poison, p2.reuse.poison = true, true
	keep1, _ := Compile(g1)
	keep2, _ := Compile(g2)
	pooled := func() (n int) {
		for _, free := range p1.reuse.pool.free {
			for _, s := range free {
				n += 8 * s.n
			}
		}
		return n
	}
	alone := 0
	for run := range 3 {
		for _, c := range []struct {
			p, keep *Plan
			out     *G.Node
			n       int
		}{{p1, keep1, out1, 8}, {p2, keep2, out2, 6}} {
			for _, q := range []*Plan{c.p, c.keep} {
				x, _ := NewTensor(tensor.Float64, []int{c.n, c.n}, seq(c.n*c.n, float64(run)/3))
				if err := q.Let("x", x); err != nil {
					t.Fatal(err)
				}
				if err := q.Run(); err != nil {
					t.Fatal(err)
				}
			}
			got, _ := c.p.ReadFloat64s(c.out)
			want, _ := c.keep.ReadFloat64s(c.out)
			if got[0] != want[0] {
				t.Errorf("run %d, %d×%d: %v; the plan that keeps every value %v", run, c.n, c.n, got[0], want[0])
			}
			if run == 0 && c.n == 8 {
				alone = pooled()
			}
		}
		if got := pooled(); got != alone {
			t.Errorf("run %d: %d bytes pooled; the 8×8 plan alone pools %d", run, got, alone)
		}
		for i, s := range p2.reuse.prev {
			if s != nil && !slices.Contains(p1.reuse.pool.free[tensor.Float64], s) {
				t.Errorf("run %d: the 6×6 plan's node %v took a buffer not in the shared pool", run, p2.nodes[i])
			}
		}
		nodes := int64(g1.AllNodes().Len()+g2.AllNodes().Len()) * NodeBytes
		if shared := SharedBytes(p1, p2) - nodes; int64(pooled()) > shared {
			t.Errorf("run %d: %d bytes pooled; SharedBytes says %d", run, pooled(), shared)
		}
		p1.TrimPool()
	}
	// A plan that took from the pool only if it were empty leaves the
	// rest to be dropped: a third plan of 2×2 values makes 8×8 buffers
	// go at the next trim when only it runs.
	g3, out3 := chain(2)
	p3, _ := Compile(g3, out3)
	if err := p3.SharePool(p1); err != nil {
		t.Fatal(err)
	}
	x, _ := NewTensor(tensor.Float64, []int{2, 2}, seq(4, 1))
	p3.Let("x", x)
	if err := p3.Run(); err != nil {
		t.Fatal(err)
	}
	p1.TrimPool()
	if got := pooled(); got != 0 && got >= alone {
		t.Errorf("after a trim following a run of the 2×2 plan only: %d bytes pooled, as many as before (%d)", got, alone)
	}
	if err := p1.SharePool(p2); err != nil {
		t.Errorf("sharing again the pool already shared: %v", err)
	}
	p4, _ := Compile(g3, out3)
	if err := p4.SharePool(keep1); err == nil {
		t.Error("sharing the pool of a plan that keeps every value: no error")
	}
	if err := p3.SharePool(p4); err == nil {
		t.Error("a plan that has run joining another pool: no error")
	}
}

// TestSliceGradientAcrossRuns differentiates a sum of squares of a slice:
// gorgonia's derivative of Slice adds into the buffer it is given, so a
// buffer kept or reused from the last Run would accumulate the gradient
// from Run to Run.
func TestSliceGradientAcrossRuns(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, G.Float64, 1, G.WithShape(4), G.WithName("x"))
	loss := G.Must(SumAll(G.Must(G.Square(G.Must(G.Slice(x, G.S(1, 3)))))))
	grads, err := Grad(loss, x)
	if err != nil {
		t.Fatal(err)
	}
	for _, outs := range []G.Nodes{{loss, grads[0]}, nil} {
		p, err := Compile(g, outs...)
		if err != nil {
			t.Fatal(err)
		}
		xv, _ := NewTensor(tensor.Float64, []int{4}, []float64{1, 2, 3, 4})
		if err := p.Let("x", xv); err != nil {
			t.Fatal(err)
		}
		for run := range 3 {
			if err := p.Run(); err != nil {
				t.Fatal(err)
			}
			got, err := p.ReadFloat64s(grads[0])
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, []float64{0, 4, 6, 0}) {
				t.Errorf("outputs %v, run %d: gradient %v; want [0 4 6 0]", outs, run, got)
			}
		}
	}
}
