package nets

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

var _ interface {
	Init(*rand.Rand, tensor.Dtype) (*graph.Params, error)
	Forward(*G.Node, G.Nodes) (*G.Node, error)
} = ConvNet{}

func TestConvNetParams(t *testing.T) {
	cases := []struct {
		net   ConvNet
		names []string
		sizes [][]int
	}{
		{ConvNet{Side: 28, Out: 5}, nil, [][]int{
			{64, 1, 3, 3}, {64}, {64}, {64},
			{64, 64, 3, 3}, {64}, {64}, {64},
			{64, 64, 3, 3}, {64}, {64}, {64},
			{64, 64, 3, 3}, {64}, {64}, {64},
			{5, 64}, {5}, // 28 → 14 → 7 → 3 → 1
		}},
		{ConvNet{Side: 84, Channels: 3, Filters: 32, Out: 5}, nil, [][]int{
			{32, 3, 3, 3}, {32}, {32}, {32},
			{32, 32, 3, 3}, {32}, {32}, {32},
			{32, 32, 3, 3}, {32}, {32}, {32},
			{32, 32, 3, 3}, {32}, {32}, {32},
			{5, 32 * 5 * 5}, {5}, // 84 → 42 → 21 → 10 → 5, as MiniImagenet's 800 features
		}},
		{ConvNet{Side: 6, Filters: 2, Blocks: 2, Out: 3},
			[]string{"blocks.0.conv.weight", "blocks.0.conv.bias", "blocks.0.bn.weight", "blocks.0.bn.bias",
				"blocks.1.conv.weight", "blocks.1.conv.bias", "blocks.1.bn.weight", "blocks.1.bn.bias",
				"head.weight", "head.bias"},
			[][]int{{2, 1, 3, 3}, {2}, {2}, {2}, {2, 2, 3, 3}, {2}, {2}, {2}, {3, 2}, {3}}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%+v", c.net), func(t *testing.T) {
			p, err := c.net.Init(rand.New(rand.NewPCG(1, 2)), tensor.Float32)
			if err != nil {
				t.Fatal(err)
			}
			if p.Len() != len(c.sizes) {
				t.Fatalf("Init gave %d parameters; want %d", p.Len(), len(c.sizes))
			}
			if c.names != nil && !slices.Equal(p.Names(), c.names) {
				t.Errorf("names = %v; want %v", p.Names(), c.names)
			}
			for i := 0; i < p.Len(); i++ {
				q := p.At(i)
				if !q.Value.Shape().Eq(tensor.Shape(c.sizes[i])) || q.Value.Dtype() != tensor.Float32 {
					t.Errorf("%s: %v %v; want %v float32", q.Name, q.Value.Shape(), q.Value.Dtype(), c.sizes[i])
				}
			}
			if got := c.net.HeadParams(); p.At(p.Len()-got).Name != "head.weight" || got != 2 {
				t.Errorf("HeadParams() = %d; want the 2 head parameters", got)
			}
		})
	}
}

// TestConvNetInit checks PyTorch's initialisation: U(±1/√fanIn) for
// convolutions and the head (weights and biases), 1 and 0 for the norms.
func TestConvNetInit(t *testing.T) {
	m := ConvNet{Side: 12, Channels: 2, Filters: 8, Blocks: 3, Out: 4}
	p, err := m.Init(rand.New(rand.NewPCG(3, 4)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	bounds := map[string]float64{}
	for i := 0; i < 3; i++ {
		in := 8
		if i == 0 {
			in = 2
		}
		a := 1 / math.Sqrt(float64(in*9))
		bounds[fmt.Sprintf("blocks.%d.conv.weight", i)] = a
		bounds[fmt.Sprintf("blocks.%d.conv.bias", i)] = a
	}
	bounds["head.weight"] = 1 / math.Sqrt(8) // 12 → 6 → 3 → 1: 8 features
	bounds["head.bias"] = 1 / math.Sqrt(8)
	for i := 0; i < p.Len(); i++ {
		q := p.At(i)
		v := graph.Float64s(q.Value)
		a, uniform := bounds[q.Name]
		for _, x := range v {
			switch {
			case uniform && math.Abs(x) > a:
				t.Fatalf("%s holds %v outside ±%v", q.Name, x, a)
			case !uniform && q.Name[len(q.Name)-6:] == "weight" && x != 1:
				t.Fatalf("%s holds %v; want 1", q.Name, x)
			case !uniform && q.Name[len(q.Name)-4:] == "bias" && x != 0:
				t.Fatalf("%s holds %v; want 0", q.Name, x)
			}
		}
		if uniform && len(v) >= 64 {
			// The spread of U(±a) is 2a/√12: a crude check that the
			// bound is the one drawn from.
			if sd := stddev(v); sd < 0.4*a || sd > 0.8*a {
				t.Errorf("%s: standard deviation %v; want about %v", q.Name, sd, a/math.Sqrt(3))
			}
		}
	}
}

func stddev(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m += x
	}
	m /= float64(len(v))
	s := 0.0
	for _, x := range v {
		s += (x - m) * (x - m)
	}
	return math.Sqrt(s / float64(len(v)))
}

func TestConvNetBadConfig(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, m := range []ConvNet{
		{Side: 0, Out: 5},
		{Side: 28, Out: 0},
		{Side: 28, Out: 5, Channels: -1},
		{Side: 28, Out: 5, Filters: -2},
		{Side: 28, Out: 5, Blocks: -1},
		{Side: 8, Out: 5, Blocks: 4}, // 8 → 4 → 2 → 1 → 0
		{Side: 1, Out: 5, Blocks: 1},
		{Side: 28, Out: 5, Blocks: 1 << 40},
	} {
		if _, err := m.Init(rng, tensor.Float64); !errors.Is(err, ErrConfig) {
			t.Errorf("ConvNet%+v.Init: err = %v; want ErrConfig", m, err)
		}
		g := G.NewGraph()
		x := G.NewTensor(g, G.Float64, 3, G.WithShape(1, 1, max(1, m.Side*m.Side)), G.WithName("x"))
		if _, err := m.Forward(x, nil); !errors.Is(err, ErrConfig) {
			t.Errorf("ConvNet%+v.Forward: err = %v; want ErrConfig", m, err)
		}
	}
}

// paramNodes declares inputs for p's parameters with a leading task axis.
func paramNodes(g *G.ExprGraph, p *graph.Params, tasks int, prefix string) (G.Nodes, [][]int) {
	var nodes G.Nodes
	var shapes [][]int
	for i := 0; i < p.Len(); i++ {
		s := append([]int{tasks}, p.At(i).Value.Shape()...)
		shapes = append(shapes, s)
		nodes = append(nodes, G.NewTensor(g, p.At(i).Value.Dtype(), len(s), G.WithShape(s...), G.WithName(prefix+p.At(i).Name)))
	}
	return nodes, shapes
}

func TestConvNetForwardErrors(t *testing.T) {
	m := ConvNet{Side: 6, Filters: 2, Blocks: 2, Out: 3}
	p, err := m.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	g := G.NewGraph()
	nodes, _ := paramNodes(g, p, 2, "")
	good := G.NewTensor(g, G.Float64, 3, G.WithShape(2, 4, 36), G.WithName("x"))
	out, err := m.Forward(good, nodes)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Shape().Eq(tensor.Shape{2, 4, 3}) {
		t.Errorf("Forward output shape = %v; want [2 4 3]", out.Shape())
	}
	bad := []struct {
		name  string
		x     *G.Node
		nodes G.Nodes
	}{
		{"35 input features", G.NewTensor(g, G.Float64, 3, G.WithShape(2, 4, 35), G.WithName("x35")), nodes},
		{"2-d input", G.NewMatrix(g, G.Float64, G.WithShape(4, 36), G.WithName("x2")), nodes},
		{"9 of 10 parameters", good, nodes[:9]},
		{"3 tasks for parameters of 2", G.NewTensor(g, G.Float64, 3, G.WithShape(3, 4, 36), G.WithName("x3")), nodes},
		{"a parameter of the wrong shape", good, append(slices.Clone(nodes[:9]), nodes[5])},
	}
	for _, c := range bad {
		if _, err := m.Forward(c.x, c.nodes); !errors.Is(err, graph.ErrShape) {
			t.Errorf("Forward with %s: err = %v; want ErrShape", c.name, err)
		}
	}
}

// referenceConvNet computes the network from its definition, the way
// PyTorch lays it out: images NCHW, conv → batch norm (batch statistics) →
// ReLU → max-pool per block, then torch.flatten and the linear head. flat
// holds the parameters of every task in Init's order, each with a leading
// task axis.
func referenceConvNet(m ConvNet, x []float64, tasks, n int, flat []float64) []float64 {
	names, shapes := m.shapes()
	sizes := make([]int, len(names))
	for i, s := range shapes {
		sizes[i] = tensor.Shape(s).TotalSize()
	}
	param := func(i, t int) []float64 {
		off := 0
		for j := 0; j < i; j++ {
			off += tasks * sizes[j]
		}
		return flat[off+t*sizes[i] : off+(t+1)*sizes[i]]
	}
	var out []float64
	for t := 0; t < tasks; t++ {
		c, side := m.channels(), m.Side
		// act[img][ch][h][w]
		act := make([][]float64, n)
		for i := range act {
			act[i] = make([]float64, c*side*side)
			for h := 0; h < side; h++ {
				for w := 0; w < side; w++ {
					for ch := 0; ch < c; ch++ {
						act[i][(ch*side+h)*side+w] = x[((t*n+i)*side*side+h*side+w)*c+ch]
					}
				}
			}
		}
		for b := 0; b < m.blocks(); b++ {
			f := m.filters()
			wt, bias, gamma, beta := param(4*b, t), param(4*b+1, t), param(4*b+2, t), param(4*b+3, t)
			conv := make([][]float64, n)
			for i := range conv {
				conv[i] = make([]float64, f*side*side)
				for o := 0; o < f; o++ {
					for h := 0; h < side; h++ {
						for w := 0; w < side; w++ {
							s := bias[o]
							for ch := 0; ch < c; ch++ {
								for kh := 0; kh < 3; kh++ {
									for kw := 0; kw < 3; kw++ {
										ih, iw := h-1+kh, w-1+kw
										if ih >= 0 && ih < side && iw >= 0 && iw < side {
											s += wt[((o*c+ch)*3+kh)*3+kw] * act[i][(ch*side+ih)*side+iw]
										}
									}
								}
							}
							conv[i][(o*side+h)*side+w] = s
						}
					}
				}
			}
			for o := 0; o < f; o++ {
				mean, v := 0.0, 0.0
				cnt := float64(n * side * side)
				for i := range conv {
					for j := 0; j < side*side; j++ {
						mean += conv[i][o*side*side+j]
					}
				}
				mean /= cnt
				for i := range conv {
					for j := 0; j < side*side; j++ {
						d := conv[i][o*side*side+j] - mean
						v += d * d
					}
				}
				v /= cnt
				for i := range conv {
					for j := 0; j < side*side; j++ {
						y := gamma[o]*(conv[i][o*side*side+j]-mean)/math.Sqrt(v+1e-5) + beta[o]
						conv[i][o*side*side+j] = math.Max(y, 0)
					}
				}
			}
			half := side / 2
			for i := range conv {
				pooled := make([]float64, f*half*half)
				for o := 0; o < f; o++ {
					for h := 0; h < half; h++ {
						for w := 0; w < half; w++ {
							best := math.Inf(-1)
							for kh := 0; kh < 2; kh++ {
								for kw := 0; kw < 2; kw++ {
									best = math.Max(best, conv[i][(o*side+2*h+kh)*side+2*w+kw])
								}
							}
							pooled[(o*half+h)*half+w] = best
						}
					}
				}
				act[i] = pooled
			}
			c, side = f, half
		}
		hw, hb := param(len(names)-2, t), param(len(names)-1, t)
		feat := len(act[0])
		for i := range act {
			for o := 0; o < m.Out; o++ {
				s := hb[o]
				for j, v := range act[i] {
					s += hw[o*feat+j] * v
				}
				out = append(out, s)
			}
		}
	}
	return out
}

// TestConvNetMatchesReference compares Forward with the PyTorch-layout
// reference, with different parameters for each task and, in the second
// case, a final side above 1 so that the head's feature order matters.
func TestConvNetMatchesReference(t *testing.T) {
	for _, m := range []ConvNet{
		{Side: 7, Channels: 2, Filters: 3, Blocks: 2, Out: 4},  // 7 → 3 → 1
		{Side: 10, Channels: 3, Filters: 2, Blocks: 2, Out: 3}, // 10 → 5 → 2
		{Side: 9, Filters: 4, Blocks: 1, Out: 2},               // 9 → 4, one channel
	} {
		t.Run(fmt.Sprintf("%+v", m), func(t *testing.T) {
			const tasks, n = 2, 3
			rng := rand.New(rand.NewPCG(uint64(m.Side), 7))
			x, flat := randomPoint(t, m, tasks, n, rng)
			want := referenceConvNet(m, x, tasks, n, flat)
			for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
				got := forwardAt(t, m, dt, x, flat, tasks, n)
				// float32 rounds each of a few hundred terms to 6e-8
				// relative: 1e-4 at the outputs' unit scale.
				tol := 1e-10
				if dt == tensor.Float32 {
					tol = 1e-4
				}
				if e := graph.RelErr(got, want, 1); e > tol {
					t.Errorf("%v: Forward = %.6v; reference %.6v (err %.3g > %g)", dt, got, want, e, tol)
				}
			}
		})
	}
}

// TestConvNetHessianVector checks the gradient and a Hessian-vector
// product of a small ConvNet's softmax cross-entropy, with respect to all
// 150 parameters of two tasks, against central differences (h = 1e-5,
// 1e-6 relative, as for the MLP). The O(h²) truncation error of a plain
// central difference of the gradient can reach 1e-6 along a random
// direction, so the Hessian-vector product is compared with the
// Richardson extrapolation of two central differences, whose error is
// O(h⁴).
func TestConvNetHessianVector(t *testing.T) {
	m := ConvNet{Side: 6, Filters: 2, Blocks: 2, Out: 3}
	d := newDerivs(t, m, m.Out, 2, 4, rand.New(rand.NewPCG(11, 12)))
	if e := graph.RelErr(d.grad, graph.NumGrad(d.f, d.theta, 1e-5), 1e-3); e > 1e-6 {
		t.Errorf("gradient rel err %.3g > 1e-6", e)
	}
	if e := graph.RelErr(d.hvp, richardsonHVP(d.gradf, d.theta, d.v, 1e-5), 1e-3); e > 1e-6 {
		t.Errorf("Hessian-vector product rel err %.3g > 1e-6", e)
	}
}

// richardsonHVP returns (4·D(h/2) − D(h))/3 for the central difference
// D(h) of the gradient along v: the h² error terms cancel.
func richardsonHVP(grad func([]float64) []float64, x, v []float64, h float64) []float64 {
	d1 := graph.NumHVP(grad, x, v, h)
	d2 := graph.NumHVP(grad, x, v, h/2)
	for i := range d1 {
		d1[i] = (4*d2[i] - d1[i]) / 3
	}
	return d1
}
