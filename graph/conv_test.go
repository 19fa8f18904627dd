package graph

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// part returns the elements [off, off+size(shape)) of the vector x as a
// tensor of the given shape. It gathers with constant indices, so unlike
// gorgonia's Slice it can be differentiated twice: the derivative rigs
// carve several variables out of their one input vector with it.
func part(x *G.Node, off int, shape ...int) *G.Node {
	n := tensor.Shape(shape).TotalSize()
	idx := make([]int, n)
	for i := range idx {
		idx[i] = off + i
	}
	c := G.NewConstant(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(idx)), G.In(x.Graph()))
	return G.Must(apply(gatherOp{from: x.Shape().Clone(), dims: len(shape)}, x, c))
}

func randn(rng *rand.Rand, n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	return x
}

// eval computes the nodes built by build from constants of dtype dt
// holding data, and returns their values as float64s.
func eval(t *testing.T, dt tensor.Dtype, data [][]float64, shapes [][]int, build func(in G.Nodes) (G.Nodes, error)) [][]float64 {
	t.Helper()
	g := G.NewGraph()
	var in G.Nodes
	for i, d := range data {
		v, err := NewTensor(dt, shapes[i], d)
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, G.NewConstant(v, G.In(g), G.WithName(fmt.Sprintf("in%d", i))))
	}
	outs, err := build(in)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(g, outs...)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Run(); err != nil {
		t.Fatal(err)
	}
	var res [][]float64
	for _, o := range outs {
		res = append(res, read(t, m, o))
	}
	return res
}

type convCase struct {
	tasks, n, h, w, c, f, k, stride, pad int
}

func (c convCase) String() string {
	return fmt.Sprintf("tasks=%d/n=%d/%dx%dx%d/f=%d/k=%d/stride=%d/pad=%d", c.tasks, c.n, c.h, c.w, c.c, c.f, c.k, c.stride, c.pad)
}

var convCases = []convCase{
	{1, 1, 4, 4, 1, 1, 3, 1, 1},
	{2, 2, 5, 4, 3, 2, 3, 1, 1},   // odd, non-square images
	{2, 1, 6, 5, 2, 3, 3, 2, 1},   // stride 2 with an odd width
	{1, 2, 5, 5, 2, 2, 2, 2, 0},   // even window, floor
	{2, 1, 4, 3, 2, 2, 1, 1, 0},   // 1×1 convolution
	{1, 1, 3, 3, 2, 1, 3, 1, 2},   // padding wider than needed
	{1, 2, 7, 6, 1, 2, 5, 3, 2},   // large window and stride
	{2, 1, 3, 4, 3, 2, 3, 1, 0},   // no padding
	{1, 1, 2, 2, 1, 2, 3, 1, 1},   // window larger than the image
	{1, 1, 6, 6, 4, 3, 3, 3, 0},   // stride equal to the window
	{3, 2, 3, 3, 2, 2, 3, 2, 1},   // three tasks
	{1, 1, 5, 5, 1, 1, 4, 1, 1},   // even window, odd image
	{1, 1, 1, 1, 3, 2, 1, 1, 0},   // one pixel
	{2, 2, 4, 4, 1, 1, 4, 1, 0},   // one output position
	{1, 3, 2, 5, 2, 1, 2, 1, 1},   // padding with an even window
	{1, 1, 8, 8, 2, 2, 3, 2, 1},   // stride 2, even size
	{1, 1, 9, 7, 1, 1, 3, 4, 1},   // stride beyond the window
	{2, 1, 3, 3, 1, 1, 2, 1, 1},   // even window with padding
	{1, 2, 4, 6, 2, 3, 3, 1, 1},   // more filters than channels
	{1, 1, 3, 5, 5, 1, 3, 1, 1},   // many channels, one filter
	{1, 1, 6, 4, 2, 2, 3, 1, 1},   // tall image
	{1, 1, 10, 10, 1, 1, 3, 3, 1}, // last window reaches the padding
}

// directConv computes the convolution from its definition in float64.
func directConv(c convCase, x, w, b []float64) []float64 {
	ho, wo := (c.h+2*c.pad-c.k)/c.stride+1, (c.w+2*c.pad-c.k)/c.stride+1
	out := make([]float64, c.tasks*c.n*ho*wo*c.f)
	i := 0
	for t := 0; t < c.tasks; t++ {
		for n := 0; n < c.n; n++ {
			for oh := 0; oh < ho; oh++ {
				for ow := 0; ow < wo; ow++ {
					for f := 0; f < c.f; f++ {
						s := 0.0
						if b != nil {
							s = b[t*c.f+f]
						}
						for ch := 0; ch < c.c; ch++ {
							for kh := 0; kh < c.k; kh++ {
								for kw := 0; kw < c.k; kw++ {
									ih, iw := oh*c.stride-c.pad+kh, ow*c.stride-c.pad+kw
									if ih < 0 || ih >= c.h || iw < 0 || iw >= c.w {
										continue
									}
									s += w[(((t*c.f+f)*c.c+ch)*c.k+kh)*c.k+kw] * x[(((t*c.n+n)*c.h+ih)*c.w+iw)*c.c+ch]
								}
							}
						}
						out[i] = s
						i++
					}
				}
			}
		}
	}
	return out
}

func (c convCase) shapes() (x, w, b, y []int) {
	ho, wo := (c.h+2*c.pad-c.k)/c.stride+1, (c.w+2*c.pad-c.k)/c.stride+1
	return []int{c.tasks, c.n, c.h, c.w, c.c}, []int{c.tasks, c.f, c.c, c.k, c.k}, []int{c.tasks, c.f}, []int{c.tasks, c.n, ho, wo, c.f}
}

// TestConv2DValues compares Conv2D with the definition, in float64 (to
// rounding: 1e-12) and float32 (1e-5 relative to the values' unit scale).
func TestConv2DValues(t *testing.T) {
	for _, c := range convCases {
		for _, bias := range []bool{true, false} {
			t.Run(fmt.Sprintf("%v/bias=%v", c, bias), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(c.h*c.w), uint64(c.k)))
				xs, ws, bs, ys := c.shapes()
				x := randn(rng, tensor.Shape(xs).TotalSize())
				w := randn(rng, tensor.Shape(ws).TotalSize())
				b := randn(rng, tensor.Shape(bs).TotalSize())
				data, shapes := [][]float64{x, w, b}, [][]int{xs, ws, bs}
				var bd []float64
				if bias {
					bd = b
				}
				want := directConv(c, x, w, bd)
				for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
					got := eval(t, dt, data, shapes, func(in G.Nodes) (G.Nodes, error) {
						bn := in[2]
						if !bias {
							bn = nil
						}
						y, err := Conv2D(in[0], in[1], bn, c.stride, c.pad)
						if err != nil {
							return nil, err
						}
						if !y.Shape().Eq(tensor.Shape(ys)) {
							return nil, fmt.Errorf("Conv2D shape %v; want %v", y.Shape(), ys)
						}
						return G.Nodes{y}, nil
					})[0]
					tol := 1e-12
					if dt == tensor.Float32 {
						tol = 1e-5
					}
					if e := RelErr(got, want, 1); e > tol {
						t.Errorf("%v: Conv2D = %.6v; want %.6v (err %.3g > %g)", dt, got, want, e, tol)
					}
				}
			})
		}
	}
}

// TestIm2ColAdjoint checks ⟨Im2Col(x), y⟩ = ⟨x, Col2Im(y)⟩, which makes
// each the other's derivative.
func TestIm2ColAdjoint(t *testing.T) {
	for _, c := range convCases {
		t.Run(c.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(c.h), uint64(c.w*c.k)))
			xs, _, _, _ := c.shapes()
			win := window{c.k, c.stride, c.pad}
			cs := []int(colsShape(c.tasks, image{c.n, c.h, c.w, c.c}, win))
			x := randn(rng, tensor.Shape(xs).TotalSize())
			y := randn(rng, tensor.Shape(cs).TotalSize())
			out := eval(t, tensor.Float64, [][]float64{x, y}, [][]int{xs, cs}, func(in G.Nodes) (G.Nodes, error) {
				a, err := Im2Col(in[0], c.k, c.stride, c.pad)
				if err != nil {
					return nil, err
				}
				b, err := Col2Im(in[1], c.h, c.w, c.k, c.stride, c.pad)
				if err != nil {
					return nil, err
				}
				return G.Nodes{a, b}, nil
			})
			if got, want := dot(out[0], y), dot(x, out[1]); math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
				t.Errorf("⟨Im2Col(x), y⟩ = %v; ⟨x, Col2Im(y)⟩ = %v", got, want)
			}
		})
	}
}

// TestIm2ColOne checks im2col's loop for one channel against the general
// one, value for value, on windows of 1 to 5 with strides 1 to 3 and
// paddings 0 to 3 over images of 1×1 to 7×6.
func TestIm2ColOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for h := 1; h <= 7; h += 2 {
		for w := 1; w <= 6; w++ {
			for k := 1; k <= 5; k++ {
				for stride := 1; stride <= 3; stride++ {
					for pad := 0; pad <= 3; pad++ {
						win := window{k, stride, pad}
						if win.check("test", h, w) != nil {
							continue
						}
						im := image{2, h, w, 1}
						x := make([]float32, 2*h*w)
						for i := range x {
							x[i] = float32(rng.NormFloat64())
						}
						n := colsShape(1, im, win).TotalSize()
						got, want := make([]float32, n), make([]float32, n)
						for i := range got {
							got[i], want[i] = 7, 7
						}
						im2colOne(got, x, 0, 2, im, win)
						im2colRuns(want, x, 0, 2, im, win)
						if !sameBits(got, want) {
							t.Fatalf("%d×%d, window %v: %v, want %v", h, w, win, got, want)
						}
					}
				}
			}
		}
	}
}

// TestPatchRuns checks im2col's and col2im's run-by-run loops (and their
// AVX2 path, for channels in multiples of 8) against the definitions,
// bit for bit: each patch value is the pixel under it or zero, and each
// pixel of Col2Im adds its terms in the order of the patches.
func TestPatchRuns(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	avx2 := useAVX2
	defer func() { useAVX2 = avx2 }()
	for _, vec := range []bool{false, avx2} {
		useAVX2 = vec
		for _, c := range []int{2, 3, 8, 16} {
			for _, size := range [][2]int{{1, 1}, {3, 4}, {6, 5}, {7, 7}} {
				for k := 1; k <= 4; k++ {
					for stride := 1; stride <= 3; stride++ {
						for pad := 0; pad <= 3; pad++ {
							win := window{k, stride, pad}
							im := image{2, size[0], size[1], c}
							if win.check("test", im.h, im.w) != nil {
								continue
							}
							x := make([]float32, im.n*im.h*im.w*c)
							for i := range x {
								x[i] = float32(rng.NormFloat64())
							}
							n := colsShape(1, im, win).TotalSize()
							cols := make([]float32, n)
							for i := range cols {
								cols[i] = float32(rng.NormFloat64())
							}
							got, want := make([]float32, n), make([]float32, n)
							for i := range got {
								got[i] = 7
							}
							gotIm, wantIm := make([]float32, len(x)), make([]float32, len(x))
							for i := range gotIm {
								gotIm[i] = 7
							}
							patchesByDefinition(want, wantIm, x, cols, im, win)
							im2colRuns(got, x, 0, im.n, im, win)
							col2imImages(gotIm, cols, 0, im.n, im, win)
							if !sameBits(got, want) {
								t.Fatalf("AVX2 %v, %d channels, %v, window %v: Im2Col %v, want %v", vec, c, size, win, got, want)
							}
							if !sameBits(gotIm, wantIm) {
								t.Fatalf("AVX2 %v, %d channels, %v, window %v: Col2Im %v, want %v", vec, c, size, win, gotIm, wantIm)
							}
						}
					}
				}
			}
		}
	}
}

// patchesByDefinition writes the patches of x into cols and adds the
// patches pc into img, one value at a time in the order of the patches.
func patchesByDefinition(cols, img, x, pc []float32, im image, win window) {
	ho, wo := win.out(im.h), win.out(im.w)
	clear(img)
	j := 0
	for i := 0; i < im.n; i++ {
		for oh := 0; oh < ho; oh++ {
			for ow := 0; ow < wo; ow++ {
				for kh := 0; kh < win.k; kh++ {
					for kw := 0; kw < win.k; kw++ {
						ih, iw := oh*win.stride-win.pad+kh, ow*win.stride-win.pad+kw
						for ch := 0; ch < im.c; ch++ {
							cols[j] = 0
							if ih >= 0 && ih < im.h && iw >= 0 && iw < im.w {
								at := ((i*im.h+ih)*im.w+iw)*im.c + ch
								cols[j] = x[at]
								img[at] += pc[j]
							}
							j++
						}
					}
				}
			}
		}
	}
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// TestConv2DSecondOrder checks the gradient and Hessian-vector products of
// Σ tanh(Conv2D(x, w, b))² with respect to the images, filters and bias
// together (so that the mixed second derivatives through Im2Col, Col2Im
// and the matrix products are exercised) against central differences.
func TestConv2DSecondOrder(t *testing.T) {
	for _, c := range convCases {
		xs, ws, bs, _ := c.shapes()
		nx, nw, nb := tensor.Shape(xs).TotalSize(), tensor.Shape(ws).TotalSize(), tensor.Shape(bs).TotalSize()
		if nx+nw+nb > 110 {
			// The truncation error of central differences along the
			// direction of all ones grows with its length: keep the
			// problems small enough for 1e-6.
			continue
		}
		t.Run(c.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(nx), uint64(nw)))
			x0 := randn(rng, nx+nw+nb)
			for i := range x0 {
				x0[i] *= 0.5 // keep tanh away from saturation
			}
			r := newDerivRig(t, len(x0), func(v *G.Node) (*G.Node, error) {
				y, err := Conv2D(part(v, 0, xs...), part(v, nx, ws...), part(v, nx+nw, bs...), c.stride, c.pad)
				if err != nil {
					return nil, err
				}
				th := G.Must(G.Tanh(y))
				return SumAll(G.Must(G.HadamardProd(th, th)))
			})
			r.check(t, x0, rand.New(rand.NewPCG(1, 1)))
		})
	}
}

// TestIm2ColSecondOrder differentiates through Col2Im as a forward op too
// (Col2Im's derivative is Im2Col).
func TestIm2ColSecondOrder(t *testing.T) {
	c := convCase{tasks: 2, n: 1, h: 4, w: 3, c: 2, k: 3, stride: 1, pad: 1}
	win := window{c.k, c.stride, c.pad}
	cs := []int(colsShape(c.tasks, image{c.n, c.h, c.w, c.c}, win))
	n := tensor.Shape(cs).TotalSize()
	x0 := randn(rand.New(rand.NewPCG(4, 4)), n)
	r := newDerivRig(t, n, func(v *G.Node) (*G.Node, error) {
		img, err := Col2Im(G.Must(G.Reshape(v, tensor.Shape(cs))), c.h, c.w, c.k, c.stride, c.pad)
		if err != nil {
			return nil, err
		}
		back, err := Im2Col(G.Must(G.Tanh(img)), c.k, c.stride, c.pad)
		if err != nil {
			return nil, err
		}
		return SumAll(G.Must(G.HadamardProd(back, G.Must(G.Tanh(back)))))
	})
	r.check(t, x0, rand.New(rand.NewPCG(2, 2)))
}

func TestConv2DErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, G.Float64, 5, G.WithShape(2, 1, 4, 4, 3), G.WithName("x"))
	w := G.NewTensor(g, G.Float64, 5, G.WithShape(2, 5, 3, 3, 3), G.WithName("w"))
	b := G.NewMatrix(g, G.Float64, G.WithShape(2, 5), G.WithName("b"))
	bad := []struct {
		name string
		f    func() error
	}{
		{"4-d images", func() error {
			_, err := Conv2D(G.NewTensor(g, G.Float64, 4, G.WithShape(2, 4, 4, 3)), w, b, 1, 1)
			return err
		}},
		{"channels disagree", func() error {
			_, err := Conv2D(G.NewTensor(g, G.Float64, 5, G.WithShape(2, 1, 4, 4, 2)), w, b, 1, 1)
			return err
		}},
		{"tasks disagree", func() error {
			_, err := Conv2D(G.NewTensor(g, G.Float64, 5, G.WithShape(3, 1, 4, 4, 3)), w, b, 1, 1)
			return err
		}},
		{"non-square filters", func() error {
			_, err := Conv2D(x, G.NewTensor(g, G.Float64, 5, G.WithShape(2, 5, 3, 3, 2)), b, 1, 1)
			return err
		}},
		{"bias of the wrong size", func() error {
			_, err := Conv2D(x, w, G.NewMatrix(g, G.Float64, G.WithShape(2, 4)), 1, 1)
			return err
		}},
		{"zero stride", func() error { _, err := Conv2D(x, w, b, 0, 1); return err }},
		{"negative padding", func() error { _, err := Conv2D(x, w, b, 1, -1); return err }},
		{"window larger than the padded image", func() error {
			_, err := Im2Col(G.NewTensor(g, G.Float64, 5, G.WithShape(1, 1, 2, 2, 1)), 5, 1, 1)
			return err
		}},
		{"Col2Im of a shape that is no patch matrix", func() error {
			_, err := Col2Im(G.NewTensor(g, G.Float64, 3, G.WithShape(1, 7, 9)), 4, 4, 3, 1, 1)
			return err
		}},
	}
	for _, c := range bad {
		if err := c.f(); !errors.Is(err, ErrShape) {
			t.Errorf("%s: err = %v; want ErrShape", c.name, err)
		}
	}
}

func TestTransposeLast(t *testing.T) {
	x := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	got := eval(t, tensor.Float64, [][]float64{x}, [][]int{{2, 2, 3}}, func(in G.Nodes) (G.Nodes, error) {
		y, err := TransposeLast(in[0])
		return G.Nodes{y}, err
	})[0]
	want := []float64{1, 4, 2, 5, 3, 6, 7, 10, 8, 11, 9, 12}
	if RelErr(got, want, 1) != 0 {
		t.Errorf("TransposeLast([2 2 3]) = %v; want %v", got, want)
	}
}

// TestKernelsParallel runs tensors large enough for the kernels to split
// over goroutines (convolution, batch normalisation, max-pooling and their
// first and second derivatives) with one and with four CPUs: the results
// must be bit-identical, and the convolution must match its definition.
func TestKernelsParallel(t *testing.T) {
	for _, tasks := range []int{1, 3} {
		t.Run(fmt.Sprintf("tasks=%d", tasks), func(t *testing.T) {
			// 128 images pool to 36 864 values: every kernel crosses parallelMin.
			c := convCase{tasks: tasks, n: 128/tasks + 1, h: 12, w: 12, c: 3, f: 8, k: 3, stride: 1, pad: 1}
			xs, ws, bs, ys := c.shapes()
			rng := rand.New(rand.NewPCG(8, uint64(tasks)))
			x := randn(rng, tensor.Shape(xs).TotalSize())
			w := randn(rng, tensor.Shape(ws).TotalSize())
			b := randn(rng, tensor.Shape(bs).TotalSize())
			gb := randn(rng, 2*tasks*c.f)
			shapes := [][]int{xs, ws, bs, {2, tasks, c.f}}
			build := func(in G.Nodes) (G.Nodes, error) {
				y, err := Conv2D(in[0], in[1], in[2], c.stride, c.pad)
				if err != nil {
					return nil, err
				}
				gamma := part(G.Must(G.Reshape(in[3], tensor.Shape{2 * tasks * c.f})), 0, tasks, c.f)
				beta := part(G.Must(G.Reshape(in[3], tensor.Shape{2 * tasks * c.f})), tasks*c.f, tasks, c.f)
				z, err := BatchNorm(y, gamma, beta, 1e-5)
				if err != nil {
					return nil, err
				}
				p, err := MaxPool2D(G.Must(G.Tanh(z)), 2)
				if err != nil {
					return nil, err
				}
				cost := G.Must(SumAll(G.Must(G.HadamardProd(p, p))))
				d, err := Grad(cost, in[0], in[1], in[3])
				if err != nil {
					return nil, err
				}
				// A second derivative: the gradient of Σ ∂cost/∂w.
				d2, err := Grad(G.Must(SumAll(d[1])), in[0], in[3])
				if err != nil {
					return nil, err
				}
				return append(append(G.Nodes{y, cost}, d...), d2...), nil
			}
			for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
				run := func(procs int) [][]float64 {
					defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
					return eval(t, dt, [][]float64{x, w, b, gb}, shapes, build)
				}
				one, four := run(1), run(4)
				for i := range one {
					for j := range one[i] {
						if math.Float64bits(one[i][j]) != math.Float64bits(four[i][j]) {
							t.Fatalf("%v: output %d[%d] = %v on one CPU, %v on four", dt, i, j, one[i][j], four[i][j])
						}
					}
				}
				tol := 1e-12
				if dt == tensor.Float32 {
					tol = 1e-5
				}
				if e := RelErr(four[0], directConv(c, x, w, b), 1); e > tol {
					t.Errorf("%v: Conv2D %v on four CPUs differs from its definition by %.3g", dt, ys, e)
				}
			}
		})
	}
}
