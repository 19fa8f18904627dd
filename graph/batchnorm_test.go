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

// directBatchNorm computes batch normalisation from its definition in
// float64, with two-pass statistics.
func directBatchNorm(x, gamma, beta []float64, tasks, m, c int, eps float64) []float64 {
	out := make([]float64, len(x))
	for t := 0; t < tasks; t++ {
		for ch := 0; ch < c; ch++ {
			mean := 0.0
			for r := 0; r < m; r++ {
				mean += x[(t*m+r)*c+ch]
			}
			mean /= float64(m)
			v := 0.0
			for r := 0; r < m; r++ {
				d := x[(t*m+r)*c+ch] - mean
				v += d * d
			}
			v /= float64(m)
			for r := 0; r < m; r++ {
				i := (t*m+r)*c + ch
				out[i] = gamma[t*c+ch]*(x[i]-mean)/math.Sqrt(v+eps) + beta[t*c+ch]
			}
		}
	}
	return out
}

var bnShapes = [][]int{
	{1, 4, 1},          // [tasks, m, c]
	{2, 5, 3},          // [tasks, m, c]
	{2, 2, 3, 3, 2},    // images [tasks, n, h, w, c]
	{3, 1, 2, 2, 4},    // one image per task
	{1, 3, 1},          // three values
	{2, 3, 2, 1, 1, 2}, // more axes
}

func TestBatchNormValues(t *testing.T) {
	for _, s := range bnShapes {
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			tasks, c := s[0], s[len(s)-1]
			size := tensor.Shape(s).TotalSize()
			rng := rand.New(rand.NewPCG(uint64(size), 1))
			x := randn(rng, size)
			for i := range x {
				x[i] = 3 + 2*x[i] // a mean and scale far from 0 and 1
			}
			gamma, beta := randn(rng, tasks*c), randn(rng, tasks*c)
			for _, eps := range []float64{1e-5, 0.5} {
				want := directBatchNorm(x, gamma, beta, tasks, size/(tasks*c), c, eps)
				for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
					got := eval(t, dt, [][]float64{x, gamma, beta}, [][]int{s, {tasks, c}, {tasks, c}}, func(in G.Nodes) (G.Nodes, error) {
						y, err := BatchNorm(in[0], in[1], in[2], eps)
						if err != nil {
							return nil, err
						}
						if !y.Shape().Eq(tensor.Shape(s)) {
							return nil, fmt.Errorf("BatchNorm shape %v; want %v", y.Shape(), s)
						}
						return G.Nodes{y}, nil
					})[0]
					// float32: the inputs are rounded to 6e-8 relative at
					// scale 5, and normalising divides by σ ≈ 2: 1e-5.
					tol := 1e-12
					if dt == tensor.Float32 {
						tol = 1e-5
					}
					if e := RelErr(got, want, 1); e > tol {
						t.Errorf("%v, eps %v: BatchNorm = %.6v; want %.6v (err %.3g > %g)", dt, eps, got, want, e, tol)
					}
				}
			}
		})
	}
}

// TestBatchNormConstantChannel: a channel with zero variance normalises to
// β, with a finite gradient (eps keeps the division finite).
func TestBatchNormConstantChannel(t *testing.T) {
	x := []float64{2, 2, 2, 2}
	got := eval(t, tensor.Float32, [][]float64{x, {3}, {0.5}}, [][]int{{1, 4, 1}, {1, 1}, {1, 1}}, func(in G.Nodes) (G.Nodes, error) {
		y, err := BatchNorm(in[0], in[1], in[2], 1e-5)
		return G.Nodes{y}, err
	})[0]
	for _, v := range got {
		if v != 0.5 {
			t.Fatalf("BatchNorm of a constant channel = %v; want β = 0.5 everywhere", got)
		}
	}
}

// TestBatchNormSecondOrder checks gradients and Hessian-vector products of
// a nonlinear function of BatchNorm with respect to x, γ and β together.
func TestBatchNormSecondOrder(t *testing.T) {
	for _, s := range bnShapes {
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			tasks, c := s[0], s[len(s)-1]
			nx := tensor.Shape(s).TotalSize()
			n := nx + 2*tasks*c
			x0 := randn(rand.New(rand.NewPCG(uint64(n), 2)), n)
			// Weights on the outputs, so that the cost is not invariant to
			// the normalisation (Σ y² would be constant in x for γ = 1).
			wts := randn(rand.New(rand.NewPCG(uint64(n), 3)), nx)
			r := newDerivRig(t, n, func(v *G.Node) (*G.Node, error) {
				y, err := BatchNorm(part(v, 0, s...), part(v, nx, tasks, c), part(v, nx+tasks*c, tasks, c), 1e-5)
				if err != nil {
					return nil, err
				}
				w := G.NewConstant(tensor.New(tensor.WithShape(s...), tensor.WithBacking(wts)), G.In(v.Graph()))
				th := G.Must(G.Tanh(G.Must(G.HadamardProd(y, w))))
				return SumAll(G.Must(G.HadamardProd(th, y)))
			})
			r.check(t, x0, rand.New(rand.NewPCG(6, 6)))
		})
	}
}

// TestNormalizeSecondOrder checks normalize's derivative for an upstream
// gradient that is not affineChannels' scaled one (normBack rather than
// bnBack), to second order.
func TestNormalizeSecondOrder(t *testing.T) {
	s := []int{2, 6, 3}
	n := tensor.Shape(s).TotalSize()
	x0 := randn(rand.New(rand.NewPCG(uint64(n), 4)), n)
	wts := randn(rand.New(rand.NewPCG(uint64(n), 5)), n)
	r := newDerivRig(t, n, func(v *G.Node) (*G.Node, error) {
		y, err := apply(normalizeOp{eps: 1e-3}, part(v, 0, s...))
		if err != nil {
			return nil, err
		}
		w := G.NewConstant(tensor.New(tensor.WithShape(s...), tensor.WithBacking(wts)), G.In(v.Graph()))
		th := G.Must(G.Tanh(G.Must(G.HadamardProd(y, w))))
		return SumAll(G.Must(G.HadamardProd(th, y)))
	})
	r.check(t, x0, rand.New(rand.NewPCG(7, 7)))
}

// TestBatchNormOneBackPass: BatchNorm's gradient is one bnBack, whose sums
// are the nodes of the gradients of γ and β, and no normBack or scaled
// copy of the upstream gradient.
func TestBatchNormOneBackPass(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 3, G.WithShape(2, 5, 3), G.WithName("x"))
	gamma := G.NewMatrix(g, tensor.Float32, G.WithShape(2, 3), G.WithName("gamma"))
	beta := G.NewMatrix(g, tensor.Float32, G.WithShape(2, 3), G.WithName("beta"))
	w := G.NewTensor(g, tensor.Float32, 3, G.WithShape(2, 5, 3), G.WithName("w"))
	y := G.Must(BatchNorm(x, gamma, beta, 1e-5))
	grads, err := Grad(G.Must(SumAll(G.Must(G.HadamardProd(y, w)))), x, gamma, beta)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	var back *G.Node
	for _, n := range topoSort(grads[0]) {
		if n.Op() == nil {
			continue
		}
		k, _, _ := describeOp(n.Op())
		kinds[k]++
		if k == "bnback" {
			back = n
		}
	}
	if kinds["bnback"] != 1 || kinds["normback"] != 0 || kinds["scalechannels"] != 0 {
		t.Fatalf("the gradient of x has ops %v; want one bnback, no normback or scalechannels", kinds)
	}
	in := inputs(back)
	if in[4] != grads[2] || in[5] != grads[1] {
		t.Errorf("bnBack's sums are %v and %v; want the gradients of β and γ, %v and %v", in[4], in[5], grads[2], grads[1])
	}
}

func TestBatchNormErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, G.Float64, 3, G.WithShape(2, 5, 3), G.WithName("x"))
	gamma := G.NewMatrix(g, G.Float64, G.WithShape(2, 3), G.WithName("gamma"))
	beta := G.NewMatrix(g, G.Float64, G.WithShape(2, 3), G.WithName("beta"))
	for _, eps := range []float64{0, -1e-5, math.NaN(), math.Inf(1)} {
		if _, err := BatchNorm(x, gamma, beta, eps); err == nil {
			t.Errorf("BatchNorm with eps %v: no error", eps)
		}
	}
	wrong := G.NewMatrix(g, G.Float64, G.WithShape(2, 4), G.WithName("wrong"))
	if _, err := BatchNorm(x, wrong, beta, 1e-5); !errors.Is(err, ErrShape) {
		t.Errorf("BatchNorm with γ [2 4] for 3 channels: err = %v; want ErrShape", err)
	}
	if _, err := BatchNorm(x, gamma, wrong, 1e-5); !errors.Is(err, ErrShape) {
		t.Errorf("BatchNorm with β [2 4] for 3 channels: err = %v; want ErrShape", err)
	}
	if _, err := BatchNorm(G.NewVector(g, G.Float64, G.WithShape(3)), gamma, beta, 1e-5); !errors.Is(err, ErrShape) {
		t.Errorf("BatchNorm of a vector: err = %v; want ErrShape", err)
	}
}

// TestChannelOpsNoRows runs batch normalisation's ops on tasks of no rows,
// with the channels in blocks of every width that forChannels makes:
// sums are zeros, statistics NaN, and nothing panics.
func TestChannelOpsNoRows(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	x := tensor.New(tensor.WithShape(2, 0, 40), tensor.Of(tensor.Float32))
	s := tensor.New(tensor.WithShape(2, 40), tensor.Of(tensor.Float32))
	for _, procs := range []int{1, 2, 8} {
		runtime.GOMAXPROCS(procs)
		for _, c := range []struct {
			name string
			op   interface {
				do(G.Value, []G.Value) (G.Value, error)
			}
			in   []G.Value
			want float64 // every element of a [2, 40] result; -1: an empty result
		}{
			{"sumRows", sumRowsOp{}, []G.Value{x}, 0},
			{"dotChannels", dotChannelsOp{}, []G.Value{x, x}, 0},
			{"invStd", invStdOp{eps: 1e-5}, []G.Value{x}, math.NaN()},
			{"normalize", normalizeOp{eps: 1e-5}, []G.Value{x}, -1},
			{"normBack", normBackOp{}, []G.Value{x, x, s}, -1},
			{"bnBack", bnBackOp{}, []G.Value{x, x, s, s, s, s}, -1},
			{"affineChannels", affineChannelsOp{}, []G.Value{x, s, s}, -1},
		} {
			v, err := c.op.do(nil, c.in)
			if err != nil {
				t.Fatalf("%s, GOMAXPROCS %d: %v", c.name, procs, err)
			}
			data, _, err := dense(v)
			if err != nil {
				t.Fatalf("%s, GOMAXPROCS %d: %v", c.name, procs, err)
			}
			got := data.([]float32)
			if c.want < 0 {
				if len(got) != 0 {
					t.Errorf("%s, GOMAXPROCS %d: %d values; want none", c.name, procs, len(got))
				}
				continue
			}
			for i, g := range got {
				if g != float32(c.want) && !(math.IsNaN(c.want) && isNaN32(g)) {
					t.Fatalf("%s, GOMAXPROCS %d: element %d = %v; want %v", c.name, procs, i, g, c.want)
				}
			}
		}
	}
}
