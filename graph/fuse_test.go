package graph

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// fusedConvGraph builds Conv2D of case c, the gradient of a cost of it
// for x and w, and that gradient's derivative along v: outputs in which
// every fusable product of convolution appears (conv, corr and convT,
// and the second derivatives' conv and corr of patches of gradients).
func fusedConvGraph(t *testing.T, c convCase, dt tensor.Dtype) (*G.ExprGraph, G.Nodes, map[string]tensor.Tensor) {
	t.Helper()
	xs, ws, bs, _ := c.shapes()
	g := G.NewGraph()
	rng := rand.New(rand.NewPCG(uint64(c.h*c.w), uint64(c.c)))
	bind := map[string]tensor.Tensor{}
	input := func(name string, s []int) *G.Node {
		v, err := NewTensor(dt, s, randn(rng, tensor.Shape(s).TotalSize()))
		if err != nil {
			t.Fatal(err)
		}
		bind[name] = v
		return G.NewTensor(g, dt, len(s), G.WithShape(s...), G.WithName(name))
	}
	x, w, b := input("x", xs), input("w", ws), input("b", bs)
	vx, vw := input("vx", xs), input("vw", ws)
	y, err := Conv2D(x, w, b, c.stride, c.pad)
	if err != nil {
		t.Fatal(err)
	}
	th := G.Must(G.Tanh(y))
	grads, err := Grad(G.Must(SumAll(G.Must(G.HadamardProd(th, th)))), x, w)
	if err != nil {
		t.Fatal(err)
	}
	dir := G.Must(G.Add(G.Must(SumAll(G.Must(G.HadamardProd(grads[0], vx)))), G.Must(SumAll(G.Must(G.HadamardProd(grads[1], vw))))))
	hv, err := Grad(dir, x, w)
	if err != nil {
		t.Fatal(err)
	}
	return g, G.Nodes{y, grads[0], grads[1], hv[0], hv[1]}, bind
}

// runPlan compiles outs of g (every node when fuse is false, which a plan
// does not fuse), runs it twice on bind, with reused buffers poisoned, and
// returns the outputs and the plan's count of fused nodes.
func runPlan(t *testing.T, g *G.ExprGraph, outs G.Nodes, bind map[string]tensor.Tensor, fuse bool) ([][]float64, int) {
	t.Helper()
	var p *Plan
	var err error
	if fuse {
		p, err = Compile(g, outs...)
	} else {
		p, err = Compile(g)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for name, v := range bind {
		if err := p.Let(name, v); err != nil {
			t.Fatal(err)
		}
	}
	if p.reuse != nil {
		p.reuse.poison = true // reused buffers hold NaNs
	}
	// Twice: the second Run's buffers are the first's.
	for range 2 {
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
	}
	var res [][]float64
	for _, o := range outs {
		res = append(res, read(t, p, o))
	}
	fused := 0
	for _, f := range p.fused {
		if f {
			fused++
		}
	}
	return res, fused
}

// TestFusedConv compares plans that fuse Conv2D's products with plans
// that do not, on its value, gradient and second derivative, for every
// window case, with whole tasks and with one image at a time in the
// patch buffer: equal to rounding (1e-12 in float64, 1e-5 in float32,
// relative to each output's largest value).
func TestFusedConv(t *testing.T) {
	defer func(b int) { fuseBytes = b }(fuseBytes)
	for _, small := range []bool{false, true} {
		fuseBytes = 512 << 10
		if small {
			fuseBytes = 1
		}
		for _, c := range append(convCases, convCase{2, 5, 6, 6, 3, 4, 3, 1, 1}) {
			for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
				t.Run(fmt.Sprintf("%v/%v/small=%v", c, dt, small), func(t *testing.T) {
					g, outs, bind := fusedConvGraph(t, c, dt)
					got, fused := runPlan(t, g, outs, bind, true)
					want, none := runPlan(t, g, outs, bind, false)
					if none != 0 {
						t.Fatalf("a plan of every node fused %d nodes", none)
					}
					// conv, corr and convT; conv and corr of the gradient's
					// patches in the second derivative.
					if c.c >= fuseChannels && fused < 5 {
						t.Errorf("%d fused nodes; want at least 5", fused)
					}
					if c.c < fuseChannels && fused != 0 {
						t.Errorf("%d fused nodes for %d-channel images; want none", fused, c.c)
					}
					tol := 1e-12
					if dt == tensor.Float32 {
						tol = 1e-5
					}
					for i := range got {
						// Relative to the output's largest value: its
						// elements are sums of terms of that size.
						scale := 1.0
						for _, v := range want[i] {
							scale = max(scale, math.Abs(v))
						}
						if e := RelErr(got[i], want[i], scale); e > tol {
							t.Errorf("output %d: fused %.6v; unfused %.6v (err %.3g > %g)", i, got[i], want[i], e, tol)
						}
					}
				})
			}
		}
	}
}

// TestFusedConvParallel: a fused plan gives the same bits on one CPU as
// on several, with its work split into many pieces.
func TestFusedConvParallel(t *testing.T) {
	defer func(b, m, p int) { fuseBytes, macsPerTouch = b, m; runtime.GOMAXPROCS(p) }(fuseBytes, macsPerTouch, runtime.GOMAXPROCS(0))
	fuseBytes, macsPerTouch = 1, 1
	c := convCase{3, 7, 6, 5, 3, 4, 3, 1, 1}
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		g, outs, bind := fusedConvGraph(t, c, dt)
		runtime.GOMAXPROCS(1)
		one, _ := runPlan(t, g, outs, bind, true)
		runtime.GOMAXPROCS(4)
		four, fused := runPlan(t, g, outs, bind, true)
		if fused == 0 {
			t.Fatalf("%v: nothing fused", dt)
		}
		for i := range one {
			for j := range one[i] {
				if math.Float64bits(one[i][j]) != math.Float64bits(four[i][j]) {
					t.Fatalf("%v: output %d element %d: %v on one CPU, %v on four", dt, i, j, one[i][j], four[i][j])
				}
			}
		}
	}
}

// TestFusedPool compares plans that fuse max-pooling with batch
// normalisation's scale and shift with plans of every node, which do not,
// bit for bit, on values, gradients and a second derivative, for windows
// of 2 and 3 over images with rows and columns left over, channels that
// take the vector arg-max and channels that do not.
func TestFusedPool(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		for _, c := range []struct {
			k, h, w, ch int
			second      bool
		}{{2, 6, 7, 8, false}, {2, 5, 4, 3, false}, {3, 7, 6, 4, false}, {2, 4, 4, 16, false}, {2, 6, 7, 8, true}, {3, 7, 6, 4, true}} {
			t.Run(fmt.Sprintf("%v/k=%d/%dx%dx%d/second=%v", dt, c.k, c.h, c.w, c.ch, c.second), func(t *testing.T) {
				g := G.NewGraph()
				in := func(name string, s ...int) *G.Node {
					return G.NewTensor(g, dt, len(s), G.WithShape(s...), G.WithName(name))
				}
				x, gamma, beta, v := in("x", 2, 3, c.h, c.w, c.ch), in("gamma", 2, c.ch), in("beta", 2, c.ch), in("v", 2, c.ch)
				h := G.Must(BatchNorm(x, gamma, beta, 1e-5))
				h = G.Must(MaxPool2D(h, c.k))
				cost := G.Must(SumAll(G.Must(G.Square(G.Must(G.Tanh(h))))))
				grads, err := Grad(cost, x, gamma, beta)
				if err != nil {
					t.Fatal(err)
				}
				outs := append(G.Nodes{h}, grads...)
				if c.second {
					hv, err := Grad(G.Must(SumAll(G.Must(G.HadamardProd(grads[1], v)))), x, gamma)
					if err != nil {
						t.Fatal(err)
					}
					outs = append(outs, hv...)
				}
				bind := map[string]tensor.Tensor{}
				rng := rand.New(rand.NewPCG(uint64(c.h), uint64(c.ch)))
				for _, n := range []*G.Node{x, gamma, beta, v} {
					val, err := NewTensor(dt, n.Shape(), randn(rng, n.Shape().TotalSize()))
					if err != nil {
						t.Fatal(err)
					}
					bind[n.Name()] = val
				}
				got, _ := runPlan(t, g, outs, bind, true)
				want, _ := runPlan(t, g, outs, bind, false)
				p, err := Compile(g, outs...)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				kinds := map[string]int{}
				for i, n := range p.nodes {
					if p.fused[i] {
						k, _, _ := describeOp(n.Op())
						kinds[k]++
					}
				}
				if kinds["poolargmax"] == 0 || kinds["gather"] == 0 {
					t.Fatalf("fused %v; want the arg-max with the scale and shift, and its gather", kinds)
				}
				for i := range got {
					for j := range got[i] {
						if math.Float64bits(got[i][j]) != math.Float64bits(want[i][j]) {
							t.Fatalf("output %d element %d: fused %v, unfused %v", i, j, got[i][j], want[i][j])
						}
					}
				}
			})
		}
	}
}

// firstBlock is a case of a one-channel convolution and batch
// normalisation: tasks of n images h×w, f filters, with or without a
// second derivative.
type firstBlock struct {
	n, h, w, f int
	second     bool
}

func (c firstBlock) String() string {
	return fmt.Sprintf("%dx%dx%d/f=%d/second=%v", c.n, c.h, c.w, c.f, c.second)
}

// runFirstBlock builds BatchNorm(Conv2D(x, w)) of case c for two tasks,
// the gradient of a cost of it for w, γ and β, and with c.second the
// derivative of w's gradient along v, and runs a plan of those outputs
// (fused) and a plan of every node: it returns both plans' outputs and
// the fused plan.
func runFirstBlock(t *testing.T, dt tensor.Dtype, c firstBlock) (got, want [][]float64, p *Plan) {
	t.Helper()
	g := G.NewGraph()
	in := func(name string, s ...int) *G.Node {
		return G.NewTensor(g, dt, len(s), G.WithShape(s...), G.WithName(name))
	}
	x, w := in("x", 2, c.n, c.h, c.w, 1), in("w", 2, c.f, 1, 3, 3)
	gamma, beta, v := in("gamma", 2, c.f), in("beta", 2, c.f), in("v", 2, c.f, 1, 3, 3)
	h := G.Must(BatchNorm(G.Must(Conv2D(x, w, nil, 1, 1)), gamma, beta, 1e-5))
	cost := G.Must(SumAll(G.Must(G.Square(G.Must(G.Tanh(h))))))
	grads, err := Grad(cost, w, gamma, beta)
	if err != nil {
		t.Fatal(err)
	}
	outs := append(G.Nodes{h}, grads...)
	if c.second {
		hv, err := Grad(G.Must(SumAll(G.Must(G.HadamardProd(grads[0], v)))), w, gamma)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, hv...)
	}
	bind := map[string]tensor.Tensor{}
	rng := rand.New(rand.NewPCG(uint64(c.w), uint64(c.f)))
	for _, n := range []*G.Node{x, w, gamma, beta, v} {
		val, err := NewTensor(dt, n.Shape(), randn(rng, n.Shape().TotalSize()))
		if err != nil {
			t.Fatal(err)
		}
		bind[n.Name()] = val
	}
	got, _ = runPlan(t, g, outs, bind, true)
	want, _ = runPlan(t, g, outs, bind, false)
	p, err = Compile(g, outs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return got, want, p
}

// TestFusedBNCorr compares plans that fuse batch normalisation's input
// gradient into a one-channel convolution's filter gradient with plans of
// every node, which do not, on values, gradients and a second derivative,
// with tasks of one block of rows and less and of several and a part
// (compareFused).
func TestFusedBNCorr(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		for _, c := range []firstBlock{{1, 6, 7, 8, false}, {3, 10, 11, 16, false}, {2, 12, 12, 16, true}} {
			t.Run(fmt.Sprintf("%v/%v", dt, c), func(t *testing.T) {
				got, want, p := runFirstBlock(t, dt, c)
				fusedBN := 0
				for i := range p.nodes {
					if p.fused[i] && len(p.args[i]) == 7 {
						fusedBN++
					}
				}
				if fusedBN == 0 {
					t.Fatal("no filter gradient fused with batch normalisation's input gradient")
				}
				compareFused(t, dt, got, want)
			})
		}
	}
}

// TestFusedNormProduct compares plans that fuse batch normalisation with
// the one-channel convolution before it with plans of every node, which
// do not, on values, gradients and a second derivative, with tasks of
// less than one block of rows and of several and a part (compareFused).
func TestFusedNormProduct(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		for _, c := range []firstBlock{{1, 6, 7, 8, false}, {3, 20, 21, 16, false}, {2, 26, 25, 8, true}} {
			t.Run(fmt.Sprintf("%v/%v", dt, c), func(t *testing.T) {
				got, want, p := runFirstBlock(t, dt, c)
				kinds := map[string]int{}
				for i, n := range p.nodes {
					if p.fused[i] {
						k, _, _ := describeOp(n.Op())
						kinds[k]++
					}
				}
				if kinds["normalize"] == 0 || kinds["invstd"] == 0 {
					t.Fatalf("fused %v; want normalize with its product, and invStd", kinds)
				}
				compareFused(t, dt, got, want)
			})
		}
	}
}

// compareFused compares the outputs of a fused plan with an unfused one's:
// bit for bit where float32 products run on sgemmFMA, and otherwise equal
// to rounding (1e-12 in float64, 1e-4 in float32, relative to each
// output's largest value: batch normalisation's input gradient cancels,
// g − a/m − x̂·b/m, so that a filter gradient summed in other blocks can
// differ by 1e-5 in float32).
func compareFused(t *testing.T, dt tensor.Dtype, got, want [][]float64) {
	t.Helper()
	exact := dt == tensor.Float32 && loadBLAS().wide()
	tol := 1e-12
	if dt == tensor.Float32 {
		tol = 1e-4
	}
	for i := range got {
		if exact {
			for j := range got[i] {
				if math.Float64bits(got[i][j]) != math.Float64bits(want[i][j]) {
					t.Fatalf("output %d element %d: fused %v, unfused %v", i, j, got[i][j], want[i][j])
				}
			}
			continue
		}
		if e := RelErr(got[i], want[i], 1); e > tol {
			t.Errorf("output %d: fused and unfused differ by %.3g > %g", i, e, tol)
		}
	}
}
