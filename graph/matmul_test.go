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

// TestBatchedMatMulSecondOrder checks gradients and Hessian-vector products
// through BatchedMatMul for every transpose combination, with the variable
// as either operand and as both.
func TestBatchedMatMulSecondOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	other := make([]float64, 2*3*3)
	for i := range other {
		other[i] = rng.NormFloat64()
	}
	x0 := make([]float64, 2*3*3)
	for i := range x0 {
		x0[i] = rng.NormFloat64()
	}
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			for _, which := range []string{"a", "b", "both"} {
				t.Run(fmt.Sprintf("transA=%v/transB=%v/var=%s", tA, tB, which), func(t *testing.T) {
					r := newDerivRig(t, len(x0), func(x *G.Node) (*G.Node, error) {
						v := G.Must(G.Reshape(x, tensor.Shape{2, 3, 3}))
						c := G.NewConstant(tensor.New(tensor.WithShape(2, 3, 3), tensor.WithBacking(other)), G.In(x.Graph()))
						a, b := v, c
						switch which {
						case "b":
							a, b = c, v
						case "both":
							a, b = v, v
						}
						p, err := BatchedMatMul(a, b, tA, tB)
						if err != nil {
							return nil, err
						}
						th := G.Must(G.Tanh(p))
						return SumAll(G.Must(G.HadamardProd(th, th)))
					})
					r.check(t, x0, rand.New(rand.NewPCG(1, 1)))
				})
			}
		}
	}
}

func TestBatchedMatMulValues(t *testing.T) {
	g := G.NewGraph()
	// a [1,2,3], b [1,3,2]: a·b = [[4 5] [10 11]] for these values.
	a := G.NewConstant(tensor.New(tensor.WithShape(1, 2, 3), tensor.WithBacking([]float64{1, 2, 3, 4, 5, 6})), G.In(g))
	b := G.NewConstant(tensor.New(tensor.WithShape(1, 3, 2), tensor.WithBacking([]float64{1, 0, 0, 1, 1, 1})), G.In(g))
	c, err := BatchedMatMul(a, b, false, false)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(g, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Run(); err != nil {
		t.Fatal(err)
	}
	got, _ := m.ReadFloat64s(c)
	want := []float64{4, 5, 10, 11}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("BatchedMatMul = %v; want %v", got, want)
		}
	}
	if _, err := BatchedMatMul(a, a, false, false); err == nil {
		t.Errorf("BatchedMatMul of [1 2 3] by [1 2 3]: no error")
	}
}

// TestMatMulEmpty: products with an empty batch or an empty side give an
// empty result, and an empty inner size gives zeros, without a panic.
func TestMatMulEmpty(t *testing.T) {
	for _, c := range []struct{ a, b, want tensor.Shape }{
		{tensor.Shape{0, 2, 3}, tensor.Shape{0, 3, 4}, tensor.Shape{0, 2, 4}},
		{tensor.Shape{1, 0, 3}, tensor.Shape{1, 3, 4}, tensor.Shape{1, 0, 4}},
		{tensor.Shape{1, 2, 0}, tensor.Shape{1, 0, 4}, tensor.Shape{1, 2, 4}},
	} {
		for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
			a := tensor.New(tensor.Of(dt), tensor.WithShape(c.a...))
			b := tensor.New(tensor.Of(dt), tensor.WithShape(c.b...))
			v, err := matMulOp{}.do(nil, []G.Value{a, b})
			if err != nil {
				t.Fatalf("%v × %v (%v): %v", c.a, c.b, dt, err)
			}
			got := Float64s(v)
			if len(got) != c.want.TotalSize() {
				t.Fatalf("%v × %v (%v): %d values, want %d", c.a, c.b, dt, len(got), c.want.TotalSize())
			}
			for _, x := range got {
				if x != 0 {
					t.Fatalf("%v × %v (%v): %v, want zeros", c.a, c.b, dt, got)
				}
			}
		}
	}
}

// TestBatchedMatMulAcrossCPUs: batches large enough to be split over the
// CPUs give the same bits on one CPU and on four, for medusa's small
// kernel (many small products) and the large products' gemm, and the
// products they should.
func TestBatchedMatMulAcrossCPUs(t *testing.T) {
	defer func(m int) { macsPerTouch = m }(macsPerTouch)
	macsPerTouch = 1 // split batches far below the usual threshold
	rng := rand.New(rand.NewPCG(7, 8))
	for _, s := range [][4]int{{30, 10, 40, 40}, {4, 30, 40, 100}} {
		batch, m, n, k := s[0], s[1], s[2], s[3]
		a, b := randn(rng, batch*m*k), randn(rng, batch*k*n)
		want := make([]float64, batch*m*n)
		for i := range batch {
			for r := range m {
				for j := range n {
					for l := range k {
						want[(i*m+r)*n+j] += a[(i*m+r)*k+l] * b[(i*k+l)*n+j]
					}
				}
			}
		}
		for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
			run := func(procs int) []float64 {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				out := eval(t, dt, [][]float64{a, b}, [][]int{{batch, m, k}, {batch, k, n}}, func(in G.Nodes) (G.Nodes, error) {
					c, err := BatchedMatMul(in[0], in[1], false, false)
					return G.Nodes{c}, err
				})
				return out[0]
			}
			one, four := run(1), run(4)
			for i := range one {
				if math.Float64bits(one[i]) != math.Float64bits(four[i]) {
					t.Fatalf("%v %v: element %d = %v on one CPU, %v on four", dt, s, i, one[i], four[i])
				}
			}
			tol := 1e-12
			if dt == tensor.Float32 {
				tol = 1e-5
			}
			if e := RelErr(four, want, 1); e > tol {
				t.Errorf("%v %v: relative error %.3g against the product", dt, s, e)
			}
		}
	}
}

// TestParallelSplitThreshold: a batch of MAML sinusoid products (25 tasks
// of 10×40 by 40×40) is not worth another thread and stays on the calling
// goroutine, so it makes no closure; a ConvNet's is split.
func TestParallelSplitThreshold(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	if parallelWorth(25, 10*40*40/macsPerTouch) {
		t.Error("25 products of 10×40 by 40×40 would be split over the CPUs")
	}
	if !parallelWorth(4, 14700*32*288/macsPerTouch) {
		t.Error("4 products of 14700×288 by 288×32 would not be split over the CPUs")
	}
}

// TestParallelForPanic: a panic on one of parallelFor's worker goroutines
// reaches the caller, where Plan.Run turns it into an error, instead of
// ending the process.
func TestParallelForPanic(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	defer func() {
		if r := recover(); r != "worker" {
			t.Errorf("recovered %v, want the worker's panic", r)
		}
	}()
	parallelFor(8, parallelMin, func(lo, hi int) {
		if lo > 0 {
			panic("worker")
		}
	})
	t.Error("parallelFor returned without the worker's panic")
}
