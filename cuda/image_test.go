package cuda

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/nets"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// imageOpCases are the cases of TestOpsOnDevice for the ops of image.go.
// Gradients (and, where a case returns a gradient, second derivatives)
// bring in the adjoint ops: col2im for im2col, scatteradd for gather,
// bnback and the channel ops for batch normalisation.
func imageOpCases() []opCase {
	s := func(d ...int) tensor.Shape { return tensor.Shape(d) }
	var cases []opCase
	for _, w := range []struct{ h, w, c, k, stride, pad int }{
		{7, 6, 3, 3, 2, 1}, // overlapping windows, padding, a column of padding no window reaches
		{5, 5, 2, 2, 1, 0},
		{6, 7, 1, 4, 3, 2}, // a stride below k, windows reaching two rows into the padding
		{3, 4, 2, 3, 1, 1},
		{5, 6, 2, 1, 2, 0}, // rows and columns no window covers
		{4, 4, 3, 5, 2, 1}, // a window larger than the image
	} {
		ho, wo := (w.h+2*w.pad-w.k)/w.stride+1, (w.w+2*w.pad-w.k)/w.stride+1
		name := fmt.Sprintf("%dx%dx%d-k%d-s%d-p%d", w.h, w.w, w.c, w.k, w.stride, w.pad)
		cases = append(cases,
			opCase{name: "im2col-" + name, shapes: []tensor.Shape{s(2, 3, w.h, w.w, w.c)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
				return graph.Im2Col(x[0], w.k, w.stride, w.pad)
			}, kinds: []string{"im2col", "col2im"}},
			opCase{name: "col2im-" + name, shapes: []tensor.Shape{s(2, 3*ho*wo, w.k*w.k*w.c)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
				return graph.Col2Im(x[0], w.h, w.w, w.k, w.stride, w.pad)
			}, kinds: []string{"col2im", "im2col"}},
		)
	}
	// poolargmax is checked by TestPoolArgMax and TestConvNetOnDevice.
	pool := []string{"gather", "scatteradd"}
	cases = append(cases,
		opCase{name: "transposelast", shapes: []tensor.Shape{s(3, 4, 5)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return graph.TransposeLast(x[0])
		}, kinds: []string{"transposelast"}},
		opCase{name: "conv2d-bias", shapes: []tensor.Shape{s(2, 3, 6, 5, 2), s(2, 4, 2, 3, 3), s(2, 4)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return graph.Conv2D(x[0], x[1], x[2], 1, 1)
		}, kinds: []string{"im2col", "col2im", "transposelast", "matmul", "addchannels", "sumrows"}},
		opCase{name: "conv2d-stride", shapes: []tensor.Shape{s(1, 2, 7, 8, 3), s(1, 5, 3, 3, 3)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return graph.Conv2D(x[0], x[1], nil, 2, 0)
		}, kinds: []string{"im2col", "col2im", "transposelast", "matmul"}},
		opCase{name: "maxpool-2", shapes: []tensor.Shape{s(2, 3, 5, 7, 3)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return graph.MaxPool2D(x[0], 2)
		}, kinds: pool},
		opCase{name: "maxpool-3", shapes: []tensor.Shape{s(1, 2, 7, 8, 2)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return graph.MaxPool2D(x[0], 3)
		}, kinds: pool},
		opCase{name: "maxpool-second-order", shapes: []tensor.Shape{s(2, 2, 4, 6, 3)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			// The gradient of Σ pool(x)² is a scatteradd; its own is a gather.
			y, err := graph.MaxPool2D(x[0], 2)
			if err != nil {
				return nil, err
			}
			return gradOf(G.Must(graph.SumAll(G.Must(G.Square(y)))), x[0])
		}, kinds: pool},
		opCase{name: "batchnorm", shapes: []tensor.Shape{s(2, 3, 5, 4, 3), s(2, 3), s(2, 3)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return graph.BatchNorm(x[0], x[1], x[2], 1e-5)
		}, kinds: []string{"normalize", "affinechannels", "invstd", "bnback", "scalechannels", "dotchannels", "sumrows"}},
		opCase{name: "batchnorm-3d", shapes: []tensor.Shape{s(3, 7, 2), s(3, 2), s(3, 2)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return graph.BatchNorm(x[0], x[1], x[2], 0.1)
		}, kinds: []string{"normalize", "affinechannels", "invstd", "bnback", "scalechannels", "dotchannels", "sumrows"}},
		opCase{name: "batchnorm-chunked", shapes: []tensor.Shape{s(2, 2, 20, 20, 3), s(2, 3), s(2, 3)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			// 800 rows per channel and six channels: two-pass sums.
			y, err := graph.BatchNorm(x[0], x[1], x[2], 1e-5)
			if err != nil {
				return nil, err
			}
			return gradOf(G.Must(graph.SumAll(G.Must(G.Square(y)))), x[0])
		}, kinds: []string{"normalize", "affinechannels", "invstd", "bnback", "scalechannels", "dotchannels", "sumrows"}},
		opCase{name: "batchnorm-second-order", shapes: []tensor.Shape{s(2, 9, 3), s(2, 3), s(2, 3)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			// d/dx Σ BatchNorm(x)², whose gradient differentiates
			// bnback, invstd and the channel ops once more, and brings in
			// normback.
			y, err := graph.BatchNorm(x[0], x[1], x[2], 1e-3)
			if err != nil {
				return nil, err
			}
			return gradOf(G.Must(graph.SumAll(G.Must(G.Square(y)))), x[0])
		}, kinds: []string{"normalize", "affinechannels", "invstd", "bnback", "normback", "scalechannels", "dotchannels", "sumrows"}},
		opCase{name: "slice", shapes: []tensor.Shape{s(4, 5, 6)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			// Axis 0 kept, axis 1 every other position, axis 2 one position (dropped).
			return G.Slice(x[0], G.S(1, 4), G.S(0, 4, 2), G.S(3))
		}, kinds: []string{"slice"}},
		opCase{name: "slice-last", shapes: []tensor.Shape{s(3, 7)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return G.Slice(x[0], G.S(0, 3), G.S(1, 10, 3)) // the end clipped to 7: positions 1 and 4
		}, kinds: []string{"slice"}},
		opCase{name: "slice-first-step", shapes: []tensor.Shape{s(7, 3)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return G.Slice(x[0], G.S(1, 7, 3)) // positions 1 and 4
		}, kinds: []string{"slice"}},
		opCase{name: "concat", shapes: []tensor.Shape{s(2, 3, 4), s(2, 5, 4), s(2, 1, 4)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return G.Concat(1, x...)
		}, kinds: []string{"concat", "slice"}},
		opCase{name: "concat-first", shapes: []tensor.Shape{s(2, 3), s(4, 3)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return G.Concat(0, x...)
		}, kinds: []string{"concat", "slice"}},
		opCase{name: "concat-last", shapes: []tensor.Shape{s(3, 2, 2), s(3, 2, 5)}, build: func(x G.Nodes, _ *G.Node) (*G.Node, error) {
			return G.Concat(2, x...)
		}, kinds: []string{"concat", "slice"}},
	)
	return cases
}

// gradOf returns the gradient of cost with respect to x.
func gradOf(cost, x *G.Node) (*G.Node, error) {
	g, err := graph.Grad(cost, x)
	if err != nil {
		return nil, err
	}
	return g[0], nil
}

// runImageKernel prepares op with imageKernel on dev, runs it on args (a
// []float32, []float64 or []int each, in op.Dtypes' types), calls after
// (unless nil) with the kernel and returns its result, a slice of
// op.Dtype.
func runImageKernel(t *testing.T, dev *Device, op graph.OpSpec, after func(graph.Kernel), args ...any) any {
	t.Helper()
	k, err := dev.imageKernel(op)
	if err != nil {
		t.Fatalf("%v: %v", op, err)
	}
	if c, ok := k.(interface{ Close() error }); ok {
		defer c.Close()
	}
	var ins []graph.Buffer
	for i, a := range args {
		b, err := dev.Alloc(op.Dtypes[i], op.In[i].TotalSize())
		if err != nil {
			t.Fatal(err)
		}
		defer dev.Free(b)
		if err := dev.Upload(b, a); err != nil {
			t.Fatal(err)
		}
		ins = append(ins, b)
	}
	n := op.Out.TotalSize()
	o, err := dev.Alloc(op.Dtype, n)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Free(o)
	if err := k.Run(o, ins); err != nil {
		t.Fatal(err)
	}
	if after != nil {
		after(k)
	}
	var res any
	switch op.Dtype {
	case tensor.Float32:
		res = make([]float32, n)
	case tensor.Float64:
		res = make([]float64, n)
	default:
		res = make([]int, n)
	}
	if err := dev.Download(res, o); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestPoolArgMax checks the arg-max kernel against the CPU's on images
// full of ties, signed zeros, infinities and NaNs: the first maximum of
// a window wins, and a NaN wins over any number. (float32 2×2 windows
// take a branch-free path on the CPU.)
func TestPoolArgMax(t *testing.T) {
	dev := testDevice(t)
	values := []float64{-1, 0, math.Copysign(0, -1), 1, 2, math.NaN(), math.Inf(1), math.Inf(-1)}
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		for _, k := range []int{1, 2, 3} {
			t.Run(fmt.Sprintf("%v/k%d", dt, k), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(5, uint64(k)))
				shape := tensor.Shape{2, 3, 7, 8, 3}
				x := make([]float64, shape.TotalSize())
				for i := range x {
					x[i] = values[rng.IntN(len(values))]
					if i%5 == 0 { // some windows of one value: ties everywhere
						x[i] = 1
					}
				}
				var xv any = x
				if dt == tensor.Float32 {
					x32 := make([]float32, len(x))
					for i, v := range x {
						x32[i] = float32(v)
					}
					xv = x32
				}
				g := G.NewGraph()
				xn := G.NewTensor(g, dt, 5, G.WithShape(shape...), G.WithName("x"))
				if _, err := graph.MaxPool2D(xn, k); err != nil {
					t.Fatal(err)
				}
				var idx *G.Node
				for _, n := range g.AllNodes() {
					if s, ok := graph.Describe(n); ok && s.Kind == "poolargmax" {
						idx = n
					}
				}
				if idx == nil {
					t.Fatal("MaxPool2D made no poolargmax node")
				}
				p, err := graph.Compile(g, idx)
				if err != nil {
					t.Fatal(err)
				}
				if err := p.Let("x", tensor.New(tensor.WithShape(shape...), tensor.WithBacking(xv))); err != nil {
					t.Fatal(err)
				}
				if err := p.Run(); err != nil {
					t.Fatal(err)
				}
				v, err := p.Read(idx)
				if err != nil {
					t.Fatal(err)
				}
				want := v.Data().([]int)
				spec, _ := graph.Describe(idx)
				got := runImageKernel(t, dev, spec, nil, xv).([]int)
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("index %d: device %d, CPU %d", i, got[i], want[i])
					}
				}
				// Max-pooling's gradient, through these indices, takes
				// scatteradd's parallel path.
				gs := make([]float64, len(want))
				for i := range gs {
					gs[i] = rng.NormFloat64()
				}
				sa := graph.OpSpec{Kind: "scatteradd", Dtype: tensor.Float64, Dtypes: []tensor.Dtype{tensor.Float64, tensor.Int},
					In: []tensor.Shape{idx.Shape(), idx.Shape()}, Out: shape, Attr: map[string]int{"dims": 5}}
				checkSame(t, runImageKernel(t, dev, sa, wantPath(t, dev, true), gs, want), scatterAddRef(gs, want, shape.TotalSize()))
			})
		}
	}
}

// wantPath returns a check that a scatteradd kernel gave each output its
// term in parallel (parallel) or took the one-thread loop.
func wantPath(t *testing.T, dev *Device, parallel bool) func(graph.Kernel) {
	return func(k graph.Kernel) {
		t.Helper()
		s := k.(*scatterAddKernel)
		flags := make([]int, s.temps[0].n)
		if err := dev.Download(flags, s.temps[0]); err != nil {
			t.Fatal(err)
		}
		if got := flags[0] >= 0; got != parallel {
			t.Errorf("scatteradd (window candidates %v) in parallel: %v; want %v", s.ks, got, parallel)
		}
	}
}

// poolIndices returns indices as max-pooling makes them, for windows
// [tasks·n, ho, wo, c] of k×k in images [tasks·n, h, w, c]: a random
// position of each window, in its channel.
func poolIndices(rng *rand.Rand, imgs, h, w, c, k, ho, wo int) []int {
	var idx []int
	for img := range imgs {
		for oh := range ho {
			for ow := range wo {
				for ch := range c {
					idx = append(idx, ((img*h+oh*k+rng.IntN(k))*w+ow*k+rng.IntN(k))*c+ch)
				}
			}
		}
	}
	return idx
}

// TestScatterAddIndices runs scatteradd on indices pooling makes and on
// others, checking the sums bit for bit and the path taken: pooling's,
// where the shapes fit several window sizes, with one window per image
// (all summed in parallel), and, on the one-thread loop, an index moved
// out of its window, repeated indices in any order, indices outside the
// output (dropped), none, and enough to take three reduction passes to
// decide.
func TestScatterAddIndices(t *testing.T) {
	dev := testDevice(t)
	rng := rand.New(rand.NewPCG(7, 7))
	type indexCase struct {
		name     string
		out, in  tensor.Shape // the result's and the indices' shapes
		idx      []int
		parallel bool
	}
	var cases []indexCase
	s := func(d ...int) tensor.Shape { return tensor.Shape(d) }
	cases = append(cases, indexCase{"pool-k2", s(2, 3, 7, 6, 3), s(2, 3, 3, 3, 3), poolIndices(rng, 6, 7, 6, 3, 2, 3, 3), true})
	cases = append(cases, indexCase{"pool-k4-or-5", s(1, 2, 11, 11, 2), s(1, 2, 2, 2, 2), poolIndices(rng, 2, 11, 11, 2, 4, 2, 2), true})
	cases = append(cases, indexCase{"pool-k5-or-4", s(1, 2, 11, 11, 2), s(1, 2, 2, 2, 2), poolIndices(rng, 2, 11, 11, 2, 5, 2, 2), true})
	cases = append(cases, indexCase{"pool-one-window", s(1, 2, 5, 5, 3), s(1, 2, 1, 1, 3), poolIndices(rng, 2, 5, 5, 3, 3, 1, 1), true})
	moved := poolIndices(rng, 6, 7, 6, 3, 2, 3, 3)
	moved[20] += 3 * 2 // two columns on: the next window
	cases = append(cases, indexCase{"pool-moved", s(2, 3, 7, 6, 3), s(2, 3, 3, 3, 3), moved, false})
	swapped := poolIndices(rng, 6, 7, 6, 3, 2, 3, 3)
	swapped[4], swapped[5] = swapped[5], swapped[4] // channels exchanged
	cases = append(cases, indexCase{"pool-channels-swapped", s(2, 3, 7, 6, 3), s(2, 3, 3, 3, 3), swapped, false})
	perm := make([]int, 500)
	for i := range perm {
		perm[i] = rng.IntN(70)
	}
	cases = append(cases, indexCase{"any-order", s(70), s(500), perm, false})
	cases = append(cases, indexCase{"outside", s(10), s(7), []int{-1, 0, 0, 3, 9, 10, 12}, false})
	cases = append(cases, indexCase{"none", s(5), s(0), []int{}, false})
	cases = append(cases, indexCase{"pool-none", s(1, 0, 4, 4, 2), s(1, 0, 2, 2, 2), []int{}, true})
	cases = append(cases, indexCase{"pool-one", s(1, 1, 2, 2, 1), s(1, 1, 1, 1, 1), []int{3}, true})
	long := poolIndices(rng, 4, 128, 128, 5, 2, 64, 64) // 81,920 indices: three passes
	cases = append(cases, indexCase{"pool-long", s(1, 4, 128, 128, 5), s(1, 4, 64, 64, 5), long, true})
	late := append([]int(nil), long...)
	late[len(late)-1] = 0
	cases = append(cases, indexCase{"pool-long-late", s(1, 4, 128, 128, 5), s(1, 4, 64, 64, 5), late, false})
	early := append([]int(nil), long...)
	early[0] = early[1]
	cases = append(cases, indexCase{"pool-long-early", s(1, 4, 128, 128, 5), s(1, 4, 64, 64, 5), early, false})
	for _, c := range cases {
		for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
			t.Run(fmt.Sprintf("%s/%v", c.name, dt), func(t *testing.T) {
				g := make([]float64, len(c.idx))
				for i := range g {
					g[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(9)-4)) // magnitudes that make the order of a sum show
				}
				spec := graph.OpSpec{Kind: "scatteradd", Dtype: dt, Dtypes: []tensor.Dtype{dt, tensor.Int},
					In: []tensor.Shape{c.in, c.in}, Out: c.out, Attr: map[string]int{"dims": len(c.in)}}
				path := wantPath(t, dev, c.parallel)
				if dt == tensor.Float32 {
					g32 := make([]float32, len(g))
					for i, v := range g {
						g32[i] = float32(v)
					}
					checkSame(t, runImageKernel(t, dev, spec, path, g32, c.idx), scatterAddRef(g32, c.idx, c.out.TotalSize()))
				} else {
					checkSame(t, runImageKernel(t, dev, spec, path, g, c.idx), scatterAddRef(g, c.idx, c.out.TotalSize()))
				}
			})
		}
	}
}

// scatterAddRef is the CPU's scatter-add, skipping indices outside out.
func scatterAddRef[T float32 | float64](g []T, idx []int, size int) []T {
	out := make([]T, size)
	for j, i := range idx {
		if i >= 0 && i < size {
			out[i] += g[j]
		}
	}
	return out
}

// checkSame fails t unless got and want, []float32 or []float64, hold
// the same values bit for bit.
func checkSame(t *testing.T, got, want any) {
	t.Helper()
	a, b := floats(got), floats(want)
	if len(a) != len(b) {
		t.Fatalf("%d values, want %d", len(a), len(b))
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			t.Fatalf("element %d: device %v, CPU %v", i, a[i], b[i])
		}
	}
}

// floats returns a []float32 or []float64 as float64s.
func floats(v any) []float64 {
	if x, ok := v.([]float64); ok {
		return x
	}
	var out []float64
	for _, f := range v.([]float32) {
		out = append(out, float64(f))
	}
	return out
}

// TestImageRefusals checks that slices whose CPU shape and values
// disagree, and mistyped arguments, are left to the CPU.
func TestImageRefusals(t *testing.T) {
	dev := testDevice(t)
	for _, op := range []graph.OpSpec{
		{Kind: "slice", Dtype: tensor.Float32, Dtypes: []tensor.Dtype{tensor.Float32}, In: []tensor.Shape{{3, 7}}, Out: tensor.Shape{3, 2},
			Attr: map[string]int{"axis": 1, "start": 2, "end": 7, "step": 2}}, // the CPU gives 3 values per row, in a shape of 2
		{Kind: "slice", Dtype: tensor.Float32, Dtypes: []tensor.Dtype{tensor.Float32}, In: []tensor.Shape{{3, 7}}, Out: tensor.Shape{3, 7},
			Attr: map[string]int{"axis": 1, "start": 2, "end": 2, "step": 1}}, // an empty range: everything
		{Kind: "gather", Dtype: tensor.Float32, Dtypes: []tensor.Dtype{tensor.Float32, tensor.Float32}, In: []tensor.Shape{{4}, {2}}, Out: tensor.Shape{2}},
		{Kind: "concat", Dtype: tensor.Float64, Dtypes: []tensor.Dtype{tensor.Float64, tensor.Float64}, In: []tensor.Shape{{2, 3}, {3, 3}}, Out: tensor.Shape{5, 3},
			Attr: map[string]int{"axis": 1}},
		{Kind: "im2col", Dtype: tensor.Float32, Dtypes: []tensor.Dtype{tensor.Float32}, In: []tensor.Shape{{1, 1, 2, 2, 1}}, Out: tensor.Shape{1, 1, 9},
			Attr: map[string]int{"n": 1, "h": 2, "w": 2, "c": 1, "k": 3, "stride": 1, "pad": 0}},
	} {
		if _, err := dev.imageKernel(op); !errors.Is(err, graph.ErrUnsupported) {
			t.Errorf("%v: %v; want ErrUnsupported", op, err)
		}
	}
}

// TestConvNetOnDevice runs a small ConvNet (two blocks on 7×7 images of
// two channels, odd sides that pooling rounds down) forward, its loss's
// gradient and a Hessian-vector product (the gradient of Σ grad·v) on the
// device and on the CPU, three times with new inputs (a plan wholly on
// the device records its second run and replays it afterwards), and
// checks that every op ran on the device and that the results agree.
func TestConvNetOnDevice(t *testing.T) {
	dev := testDevice(t)
	m := nets.ConvNet{Side: 7, Channels: 2, Filters: 3, Blocks: 2, Out: 3}
	tasks, n := 2, 4
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		t.Run(dt.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, 12))
			init, err := m.Init(rng, dt)
			if err != nil {
				t.Fatal(err)
			}
			g := G.NewGraph()
			shapes := map[string]tensor.Shape{"x": {tasks, n, m.In()}}
			x := G.NewTensor(g, dt, 3, G.WithShape(shapes["x"]...), G.WithName("x"))
			labels := G.NewTensor(g, tensor.Int, 2, G.WithShape(tasks, n), G.WithName("labels"))
			var params, vs G.Nodes
			for i := 0; i < init.Len(); i++ {
				q := init.At(i)
				s := append(tensor.Shape{tasks}, q.Value.Shape()...)
				shapes[q.Name], shapes["v."+q.Name] = s, s
				params = append(params, G.NewTensor(g, dt, len(s), G.WithShape(s...), G.WithName(q.Name)))
				vs = append(vs, G.NewTensor(g, dt, len(s), G.WithShape(s...), G.WithName("v."+q.Name)))
			}
			logits, err := m.Forward(x, params)
			if err != nil {
				t.Fatal(err)
			}
			loss, err := graph.CrossEntropyLabels(logits, labels)
			if err != nil {
				t.Fatal(err)
			}
			grads, err := graph.Grad(loss, params...)
			if err != nil {
				t.Fatal(err)
			}
			var dot *G.Node
			for i, gr := range grads {
				term := G.Must(graph.SumAll(G.Must(G.HadamardProd(gr, vs[i]))))
				if dot == nil {
					dot = term
				} else {
					dot = G.Must(G.Add(dot, term))
				}
			}
			hv, err := graph.Grad(dot, params...)
			if err != nil {
				t.Fatal(err)
			}
			outs := append(append(G.Nodes{logits, loss}, grads...), hv...)
			cp, err := graph.Compile(g, outs...)
			if err != nil {
				t.Fatal(err)
			}
			p, err := graph.CompileOn(dev, g, outs...)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			pl := p.Placement()
			t.Logf("%v", pl)
			if pl.OnHost != 0 {
				t.Errorf("%d ops on the CPU (%v); want none", pl.OnHost, pl.HostOps)
			}
			tol := tolerance(dt)
			for run := range 3 {
				for name, s := range shapes {
					v := randTensor(rng, dt, s)
					for _, q := range []*graph.Plan{cp, p} {
						if err := q.Let(name, v); err != nil {
							t.Fatal(err)
						}
					}
				}
				l := make([]int, tasks*n)
				for i := range l {
					l[i] = rng.IntN(m.Out)
				}
				for _, q := range []*graph.Plan{cp, p} {
					if err := q.Let("labels", tensor.New(tensor.WithShape(tasks, n), tensor.WithBacking(l))); err != nil {
						t.Fatal(err)
					}
					if err := q.Run(); err != nil {
						t.Fatal(err)
					}
				}
				cpu, gpu := readBoth(t, cp, p, outs)
				compare(t, fmt.Sprintf("run %d", run), cpu, gpu, tol)
			}
			if pl := p.Placement(); !pl.Recorded {
				t.Errorf("the plan does not replay a recording of its runs: %v", pl)
			}
		})
	}
}
