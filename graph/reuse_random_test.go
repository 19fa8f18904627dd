package graph

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

var randomShapes = []tensor.Shape{{2, 3}, {3, 2}, {6}, {1, 2, 3}, {1, 3, 2}, {1, 6}, {6, 1}}

// buildRandom builds a random graph from seed: element-wise ops,
// reshapes (chains of them included), transposes, sums, matrix products,
// scalar products, and often the gradient of a loss and the gradient of a
// function of that gradient (second order); a random set of its nodes are
// the outputs.
func buildRandom(seed uint64) (g *G.ExprGraph, outs G.Nodes, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("build panic: %v", r)
		}
	}()
	rng := rand.New(rand.NewPCG(seed, 99))
	g = G.NewGraph()
	x := G.NewMatrix(g, G.Float64, G.WithShape(2, 3), G.WithName("x"))
	y := G.NewMatrix(g, G.Float64, G.WithShape(3, 2), G.WithName("y"))
	k := G.NewConstant(tensor.New(tensor.WithShape(6), tensor.WithBacking([]float64{0.1, -0.2, 0.3, 0.4, -0.5, 0.6})), G.In(g))
	nodes := G.Nodes{x, y, k}
	pick := func() *G.Node { return nodes[rng.IntN(len(nodes))] }
	pickShape := func(s tensor.Shape) *G.Node {
		var c G.Nodes
		for _, n := range nodes {
			if n.Shape().Eq(s) {
				c = append(c, n)
			}
		}
		if len(c) == 0 {
			return nil
		}
		return c[rng.IntN(len(c))]
	}
	add := func(n *G.Node, e error) {
		if e != nil {
			panic(e)
		}
		nodes = append(nodes, n)
	}
	steps := 6 + rng.IntN(14)
	for s := 0; s < steps; s++ {
		a := pick()
		if a.Shape().IsScalar() && rng.IntN(3) > 0 {
			continue
		}
		switch rng.IntN(13) {
		case 0:
			add(G.Square(a))
		case 1:
			add(G.Tanh(a))
		case 2:
			add(G.Neg(a))
		case 3:
			if a.Shape().IsScalar() {
				continue
			}
			to := randomShapes[rng.IntN(len(randomShapes))]
			add(G.Reshape(a, to.Clone()))
		case 4:
			if a.Dims() != 2 {
				continue
			}
			add(G.Transpose(a))
		case 5, 6:
			b := pickShape(a.Shape())
			if b == nil {
				continue
			}
			switch rng.IntN(3) {
			case 0:
				add(G.Add(a, b))
			case 1:
				add(G.Sub(a, b))
			default:
				add(G.HadamardProd(a, b))
			}
		case 7:
			if a.Shape().IsScalar() {
				continue
			}
			add(SumAll(a))
		case 8:
			sc := pickShape(tensor.ScalarShape())
			if sc == nil || a.Shape().IsScalar() {
				continue
			}
			add(G.Mul(sc, a))
		case 9:
			add(ReLU(a))
		case 10:
			if a.Dims() != 3 {
				continue
			}
			var b *G.Node
			if a.Shape()[2] == 3 {
				b = pickShape(tensor.Shape{1, 3, 2})
			} else {
				b = pickShape(tensor.Shape{1, 2, 3})
			}
			if b == nil {
				continue
			}
			add(BatchedMatMul(a, b, false, false))
		case 11:
			add(Scale(a, 0.5))
		case 12:
			if a.Dims() < 2 {
				continue
			}
			add(SumAxis(a, rng.IntN(a.Dims())))
		}
	}
	last := nodes[len(nodes)-1]
	var loss *G.Node
	if last.Shape().IsScalar() {
		loss = last
	} else {
		loss = G.Must(SumAll(G.Must(G.Square(last))))
	}
	for _, n := range nodes[3:] {
		if rng.IntN(3) == 0 {
			outs = append(outs, n)
		}
	}
	outs = append(outs, loss)
	if rng.IntN(2) == 0 {
		grads, err := Grad(loss, x, y)
		if err != nil {
			return nil, nil, err
		}
		outs = append(outs, grads...)
		if rng.IntN(2) == 0 {
			l2 := G.Must(G.Add(G.Must(SumAll(G.Must(G.Square(grads[0])))), G.Must(SumAll(G.Must(G.Tanh(grads[1]))))))
			g2, err := Grad(l2, x, y)
			if err != nil {
				return nil, nil, err
			}
			outs = append(outs, l2)
			outs = append(outs, g2...)
			if rng.IntN(2) == 0 {
				outs = append(outs, G.Must(G.Reshape(g2[0], tensor.Shape{6})))
			}
		}
	}
	return g, outs, nil
}

// randomAgainstKeep compiles the graph of seed twice (on twin graphs) as a
// reusing plan, its pooled buffers filled with NaN, and as a plan that
// keeps every value and runs gorgonia's ops instead of the native kernels,
// runs both four times on new inputs, and describes the
// first difference: an output not bit-identical, or an input overwritten.
func randomAgainstKeep(t *testing.T, seed uint64) (bad string) {
	g1, outs1, err := buildRandom(seed)
	if err != nil {
		return ""
	}
	g2, _, _ := buildRandom(seed)
	p, err := Compile(g1, outs1...)
	if err != nil {
		return ""
	}
	p.reuse.poison = true
	var held int64
	p.reuse.onMade = func(p *Plan) { held = max(held, heldBytes(p)) }
	keep, err := Compile(g2)
	if err != nil {
		t.Fatal(err)
	}
	native := keep.native
	keep.native = nil // gorgonia's ops: the native kernels must give their bits
	idx2 := map[int]*G.Node{}
	for _, n := range g2.AllNodes() {
		idx2[int(n.ID())] = n
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	xs := make([]float64, 6)
	ys := make([]float64, 6)
	xt := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking(xs))
	yt := tensor.New(tensor.WithShape(3, 2), tensor.WithBacking(ys))
	for run := 0; run < 4; run++ {
		for i := range xs {
			xs[i], ys[i] = rng.NormFloat64()/2, rng.NormFloat64()/2
		}
		x0 := append([]float64(nil), xs...)
		y0 := append([]float64(nil), ys...)
		if err := p.Let("x", xt); err != nil {
			t.Fatal(err)
		}
		if err := p.Let("y", yt); err != nil {
			t.Fatal(err)
		}
		if err := p.Run(); err != nil {
			xk := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking(append([]float64(nil), x0...)))
			yk := tensor.New(tensor.WithShape(3, 2), tensor.WithBacking(append([]float64(nil), y0...)))
			keep.Let("x", xk)
			keep.Let("y", yk)
			if keep.Run() != nil {
				return ""
			}
			return fmt.Sprintf("reuse Run: %v", err)
		}
		bad := ""
		for i := range xs {
			if math.Float64bits(xs[i]) != math.Float64bits(x0[i]) || math.Float64bits(ys[i]) != math.Float64bits(y0[i]) {
				bad = fmt.Sprintf("run %d: input overwritten", run)
			}
		}
		got := map[int][]float64{}
		for _, o := range outs1 {
			v, err := p.ReadFloat64s(o)
			if err != nil {
				return fmt.Sprintf("Read: %v", err)
			}
			got[int(o.ID())] = append([]float64(nil), v...)
		}
		xk := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking(x0))
		yk := tensor.New(tensor.WithShape(3, 2), tensor.WithBacking(y0))
		keep.Let("x", xk)
		keep.Let("y", yk)
		err := keep.Run()
		if err != nil && keep.native == nil {
			// gorgonia's element-wise op on a vector and a column of
			// the same size returns the first one's shape, not its
			// node's, which a later op may refuse; the native kernel
			// returns its node's. Compare with native kernels then.
			keep.native = native
			keep.Let("x", xk)
			keep.Let("y", yk)
			err = keep.Run()
		}
		if err != nil {
			return fmt.Sprintf("keep fails, reuse does not: %v", err)
		}
		for _, o := range outs1 {
			want, _ := keep.ReadFloat64s(idx2[int(o.ID())])
			a := got[int(o.ID())]
			for i := range want {
				if math.Float64bits(a[i]) != math.Float64bits(want[i]) {
					return fmt.Sprintf("run %d: output %s (%v) [%d]: reuse %v keep %v %s", run, o.Name(), o.Op(), i, a[i], want[i], bad)
				}
			}
		}
		if bad != "" {
			return bad
		}
		if bound := p.Bytes() - int64(g1.AllNodes().Len())*NodeBytes; held > bound {
			return fmt.Sprintf("run %d: the plan held %d bytes; Bytes bounds its values by %d", run, held, bound)
		}
		if run == 0 {
			p.TrimPool() // the next Run makes its buffers again
		}
	}
	return ""
}

// heldBytes is the memory p's values (but its inputs and constants) and
// its pool lie in: the union of their bytes.
func heldBytes(p *Plan) int64 {
	type span struct{ lo, hi uintptr }
	var spans, foreign []span
	add := func(to *[]span, v any) {
		if t, ok := v.(*tensor.Dense); ok && t.Size() > 0 {
			*to = append(*to, span{t.Uintptr(), t.Uintptr() + uintptr(t.MemSize())})
		}
	}
	for _, free := range p.reuse.pool.free {
		for _, s := range free {
			add(&spans, s.t)
		}
	}
	for i, v := range p.vals {
		if p.nodes[i].Op() == nil || p.fixed[i] {
			add(&foreign, v)
		} else if v != nil {
			add(&spans, v)
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
	var n int64
	var cur span
	flush := func() {
		for _, f := range foreign {
			if f.lo < cur.hi && cur.lo < f.hi {
				return // a view of an input or a constant: not the plan's
			}
		}
		n += int64(cur.hi - cur.lo)
	}
	for i, s := range spans {
		switch {
		case i == 0:
			cur = s
		case s.lo < cur.hi:
			cur.hi = max(cur.hi, s.hi)
		default:
			flush()
			cur = s
		}
	}
	if len(spans) > 0 {
		flush()
	}
	return n
}

// TestReuseRandomGraphs runs randomAgainstKeep on 1,000 random graphs.
func TestReuseRandomGraphs(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 200
	}
	fails := 0
	for seed := range uint64(n) {
		if bad := randomAgainstKeep(t, seed); bad != "" {
			if fails++; fails <= 5 {
				t.Errorf("seed %d: %s", seed, bad)
			}
		}
	}
	if fails > 0 {
		t.Errorf("%d of %d random graphs differ with buffer reuse", fails, n)
	}
}
