package graph

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// directMaxPool computes max-pooling from its definition, returning the
// maxima and the flat indices of the first maximum of each window.
func directMaxPool(x []float64, tasks, n, h, w, c, k int) ([]float64, []int) {
	var out []float64
	var at []int
	for t := 0; t < tasks; t++ {
		for i := 0; i < n; i++ {
			for oh := 0; oh < h/k; oh++ {
				for ow := 0; ow < w/k; ow++ {
					for ch := 0; ch < c; ch++ {
						best, bi := math.Inf(-1), -1
						for kh := 0; kh < k; kh++ {
							for kw := 0; kw < k; kw++ {
								j := ((((t*n+i)*h+oh*k+kh)*w+ow*k+kw)*c + ch)
								if bi < 0 || x[j] > best {
									best, bi = x[j], j
								}
							}
						}
						out = append(out, best)
						at = append(at, bi)
					}
				}
			}
		}
	}
	return out, at
}

var poolCases = []struct{ tasks, n, h, w, c, k int }{
	{1, 1, 4, 4, 1, 2},
	{2, 3, 5, 5, 2, 2}, // odd: the last row and column are dropped
	{1, 2, 7, 6, 3, 3},
	{2, 1, 3, 3, 2, 1}, // identity
	{1, 1, 3, 3, 1, 3}, // one window
	{3, 2, 8, 5, 4, 2},
}

func TestMaxPool2DValues(t *testing.T) {
	for _, c := range poolCases {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(c.h), uint64(c.k)))
			x := randn(rng, c.tasks*c.n*c.h*c.w*c.c)
			want, _ := directMaxPool(x, c.tasks, c.n, c.h, c.w, c.c, c.k)
			for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
				got := eval(t, dt, [][]float64{x}, [][]int{{c.tasks, c.n, c.h, c.w, c.c}}, func(in G.Nodes) (G.Nodes, error) {
					y, err := MaxPool2D(in[0], c.k)
					if err != nil {
						return nil, err
					}
					if ws := (tensor.Shape{c.tasks, c.n, c.h / c.k, c.w / c.k, c.c}); !y.Shape().Eq(ws) {
						return nil, fmt.Errorf("MaxPool2D shape %v; want %v", y.Shape(), ws)
					}
					return G.Nodes{y}, nil
				})[0]
				if e := RelErr(got, want, 1); e > 1e-7 {
					t.Errorf("%v: MaxPool2D = %v; want %v", dt, got, want)
				}
			}
		})
	}
}

// TestMaxPool2DTies checks that the first maximum in row-major window
// order receives the gradient, and that NaN wins and propagates.
func TestMaxPool2DTies(t *testing.T) {
	nan := math.NaN()
	// One 4×4 single-channel image, four 2×2 windows:
	//   [1 1 | 0 2]
	//   [1 0 | 2 2]
	//   ---------
	//   [3 N | 5 1]
	//   [3 4 | N 6]
	x := []float64{
		1, 1, 0, 2,
		1, 0, 2, 2,
		3, nan, 5, 1,
		3, 4, nan, 6,
	}
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		g := G.NewGraph()
		v, _ := NewTensor(dt, []int{1, 1, 4, 4, 1}, x)
		xn := G.NewTensor(g, dt, 5, G.WithShape(1, 1, 4, 4, 1), G.WithName("x"))
		y, err := MaxPool2D(xn, 2)
		if err != nil {
			t.Fatal(err)
		}
		// Weights 1, 2, 3, 4 on the four outputs make the scattered
		// gradient say which output went where.
		w, _ := NewTensor(dt, []int{1, 1, 2, 2, 1}, []float64{1, 2, 3, 4})
		wts := G.NewConstant(w, G.In(g))
		s := G.Must(SumAll(G.Must(G.HadamardProd(y, wts))))
		d, err := Grad(s, xn)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Compile(g, y, d[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Let("x", v); err != nil {
			t.Fatal(err)
		}
		if err := m.Run(); err != nil {
			t.Fatal(err)
		}
		got := read(t, m, y)
		if got[0] != 1 || got[1] != 2 || !math.IsNaN(got[2]) || !math.IsNaN(got[3]) {
			t.Errorf("%v: MaxPool2D = %v; want [1 2 NaN NaN]", dt, got)
		}
		grad := read(t, m, d[0])
		want := []float64{
			1, 0, 0, 2,
			0, 0, 0, 0,
			0, 3, 0, 0,
			0, 0, 4, 0,
		}
		for i := range want {
			if grad[i] != want[i] {
				t.Errorf("%v: gradient of MaxPool2D = %v; want %v (first maximum of each window, NaN wins)", dt, grad, want)
				break
			}
		}
		m.Close()
	}
}

// TestOrderKey checks the float32 ordering keys of the 2×2 pooling kernel
// on the edge cases.
func TestOrderKey(t *testing.T) {
	inf := float32(math.Inf(1))
	ascending := []float32{-inf, -math.MaxFloat32, -1, -math.SmallestNonzeroFloat32, 0, math.SmallestNonzeroFloat32, 1, math.MaxFloat32, inf}
	for i := 1; i < len(ascending); i++ {
		if orderKey(ascending[i-1]) >= orderKey(ascending[i]) {
			t.Errorf("orderKey(%v) >= orderKey(%v)", ascending[i-1], ascending[i])
		}
	}
	if orderKey(float32(math.Copysign(0, -1))) != orderKey(0) {
		t.Errorf("orderKey(−0) != orderKey(+0)")
	}
	nan := float32(math.NaN())
	negNaN := math.Float32frombits(math.Float32bits(nan) | 1<<31)
	if orderKey(nan) <= orderKey(inf) || orderKey(negNaN) != orderKey(nan) {
		t.Errorf("orderKey(NaN) = %d, orderKey(−NaN) = %d; want equal and above orderKey(+Inf) = %d", orderKey(nan), orderKey(negNaN), orderKey(inf))
	}
}

// TestMaxPool2DSecondOrder checks gradients and Hessian-vector products of
// Σ tanh(MaxPool2D(tanh(x)))² against central differences; max-pooling
// itself has zero second derivative, so the Hessian comes from the
// nonlinearities on either side and the gather/scatter pair between them.
func TestMaxPool2DSecondOrder(t *testing.T) {
	for _, c := range poolCases {
		size := c.tasks * c.n * c.h * c.w * c.c
		if size > 100 {
			continue
		}
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			x0 := randn(rand.New(rand.NewPCG(uint64(size), 3)), size)
			r := newDerivRig(t, size, func(v *G.Node) (*G.Node, error) {
				img := G.Must(G.Reshape(v, tensor.Shape{c.tasks, c.n, c.h, c.w, c.c}))
				y, err := MaxPool2D(G.Must(G.Tanh(img)), c.k)
				if err != nil {
					return nil, err
				}
				th := G.Must(G.Tanh(y))
				return SumAll(G.Must(G.HadamardProd(th, G.Must(G.HadamardProd(th, y)))))
			})
			r.check(t, x0, rand.New(rand.NewPCG(5, 5)))
		})
	}
}

func TestMaxPool2DErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, G.Float64, 5, G.WithShape(1, 1, 3, 4, 2), G.WithName("x"))
	for _, k := range []int{0, -1, 4} {
		if _, err := MaxPool2D(x, k); !errors.Is(err, ErrShape) {
			t.Errorf("MaxPool2D(3×4 images, k=%d): err = %v; want ErrShape", k, err)
		}
	}
	if _, err := MaxPool2D(G.NewTensor(g, G.Float64, 4, G.WithShape(1, 3, 4, 2)), 2); !errors.Is(err, ErrShape) {
		t.Errorf("MaxPool2D of a 4-d tensor: err = %v; want ErrShape", err)
	}
}

func TestGatherScatterBadIndex(t *testing.T) {
	x := tensor.New(tensor.WithShape(3), tensor.WithBacking([]float64{1, 2, 3}))
	idx := tensor.New(tensor.WithShape(2), tensor.WithBacking([]int{0, 3}))
	if _, err := (gatherOp{from: tensor.Shape{3}, dims: 1}).do(nil, []G.Value{x, idx}); err == nil {
		t.Errorf("gather with index 3 of 3: no error")
	}
	g := tensor.New(tensor.WithShape(2), tensor.WithBacking([]float64{1, 2}))
	if _, err := (scatterAddOp{from: tensor.Shape{3}, dims: 1}).do(nil, []G.Value{g, idx}); err == nil {
		t.Errorf("scatter with index 3 of 3: no error")
	}
}

// TestPoolArgMax2 compares the branch-free 2×2 float32 kernel with the
// general one on values with many ties, zeros of both signs and NaNs.
func TestPoolArgMax2(t *testing.T) {
	poolArgMax2(nil, nil, nil, 2, image{n: 1, h: 4, w: 4, c: 0}) // no channels: nothing to do, no panic
	rng := rand.New(rand.NewPCG(9, 9))
	levels := []float32{-2, -1, float32(math.Copysign(0, -1)), 0, 1, 3e38, float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), math.Float32frombits(0xffc00001), math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32}
	// 5 channels take the Go loop, multiples of 8 the vector one.
	for _, im := range []image{{n: 3, h: 7, w: 6, c: 5}, {n: 2, h: 4, w: 5, c: 8}, {n: 2, h: 6, w: 6, c: 24}, {n: 1, h: 3, w: 3, c: 16}} {
		x32 := make([]float32, 2*im.n*im.h*im.w*im.c)
		for i := range x32 {
			x32[i] = levels[rng.IntN(len(levels))]
		}
		x64 := make([]float64, len(x32))
		for i, v := range x32 {
			x64[i] = float64(v)
		}
		n := 2 * im.n * (im.h / 2) * (im.w / 2) * im.c
		got, want, goLoop := make([]int, n), make([]int, n), make([]int, n)
		v32, v64 := make([]float32, n), make([]float64, n)
		poolArgMax(got, v32, x32, 2*im.n, im, 2) // takes the 2×2 float32 path
		poolArgMax(want, v64, x64, 2*im.n, im, 2)
		avx2 := useAVX2
		useAVX2 = false
		poolArgMax(goLoop, nil, x32, 2*im.n, im, 2)
		useAVX2 = avx2
		for i := range got {
			if got[i] != want[i] || goLoop[i] != want[i] {
				t.Fatalf("%+v: 2×2 float32 kernel: index %d = %d (%v), Go loop %d; general kernel %d (%v)", im, i, got[i], x32[got[i]], goLoop[i], want[i], x64[want[i]])
			}
			// The maxima, with their bits (NaNs included).
			if math.Float32bits(v32[i]) != math.Float32bits(x32[got[i]]) || math.Float64bits(v64[i]) != math.Float64bits(x64[want[i]]) {
				t.Fatalf("%+v: maximum %d = %v and %v; want %v", im, i, v32[i], v64[i], x32[got[i]])
			}
		}
	}
}

// TestScatterPool checks the banded scatter of MaxPool2D's gradient
// against scatterAdd, bit for bit, on windows of 1 to 3 over images whose
// sizes leave trailing rows and columns, with gradients holding zeros of
// both signs and NaNs; with an index moved to another window of its band
// (which the banded scatter takes, adding in the same order), and with
// one moved to another band or image, which makes it fall back to
// scatterAdd. Channels in multiples of 16 take the AVX-512 bands of 2×2
// windows where the CPU has AVX-512.
func TestScatterPool(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	for _, k := range []int{1, 2, 3} {
		for _, im := range []image{{2, 4, 4, 3}, {3, 5, 7, 2}, {1, 3, 3, 1}, {2, 6, 5, 4}, {2, 5, 7, 16}, {1, 4, 6, 32}} {
			if im.h < k || im.w < k {
				continue
			}
			tasks := 2
			x := make([]float32, tasks*im.n*im.h*im.w*im.c)
			for i := range x {
				x[i] = float32(rng.IntN(5))
			}
			ho, wo := im.h/k, im.w/k
			idx := make([]int, tasks*im.n*ho*wo*im.c)
			vals := make([]float32, len(idx))
			poolArgMax(idx, vals, x, tasks*im.n, im, k)
			for j, i := range idx {
				if vals[j] != x[i] {
					t.Fatalf("k=%d, %+v: maximum %d = %v; want x[%d] = %v", k, im, j, vals[j], i, x[i])
				}
			}
			g := make([]float32, len(idx))
			for i := range g {
				switch rng.IntN(6) {
				case 0:
					g[i] = float32(math.Copysign(0, -1))
				case 1:
					g[i] = float32(math.NaN())
				default:
					g[i] = float32(rng.NormFloat64())
				}
			}
			from := tensor.Shape{tasks, im.n, im.h, im.w, im.c}
			is := tensor.Shape{tasks, im.n, ho, wo, im.c}
			op := scatterAddOp{from: from, dims: 5, pool: k}
			band := k * im.w * im.c
			for _, move := range []int{0, k * im.c, band, -band, im.h * im.w * im.c} {
				at := slices.Clone(idx)
				j := len(at) / 2
				if at[j]+move < 0 || at[j]+move >= len(x) {
					continue
				}
				at[j] += move
				want, err := scatterAdd(make([]float32, len(x)), g, at)
				if err != nil {
					t.Fatal(err)
				}
				out := make([]float32, len(x))
				for i := range out {
					out[i] = 9
				}
				got, err := op.scatter(out, g, at, is)
				if err != nil {
					t.Fatal(err)
				}
				if !sameBits(got.([]float32), want) {
					t.Fatalf("k=%d, %+v, index moved by %d: %v, want %v", k, im, move, got, want)
				}
				if move == 0 && k == 2 && im.c%16 == 0 && useAVX512 {
					// Every band takes the AVX-512 loop.
					band, per := 2*im.w*im.c, wo*im.c
					for b := range tasks * im.n * ho {
						i, oh := b/ho, b%ho
						start := i*im.h*im.w*im.c + oh*band
						if !scatterPool2(out[start:start+band], g[b*per:(b+1)*per], at[b*per:(b+1)*per], start, wo, im.c, im.w) {
							t.Fatalf("%+v: band %d: scatterPool2 declined", im, b)
						}
					}
				}
				size := im.h * im.w * im.c
				start := idx[j]/size*size + idx[j]%size/band*band // the band of the index's window
				inBand := at[j] >= start && at[j] < start+band
				if ok := scatterPool(make([]float32, len(x)), g, at, im, tasks*im.n, k); ok != inBand {
					t.Fatalf("k=%d, %+v, index moved by %d: scatterPool took it %v, want %v", k, im, move, ok, inBand)
				}
			}
		}
	}
}
