package nets

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ResNet12 has the methods ConvNet has, so that callers can swap one for
// the other.
var _ interface {
	fmt.Stringer
	Validate() error
	In() int
	FinalSide() int
	HeadParams() int
	ParamCount() int64
	Init(*rand.Rand, tensor.Dtype) (*graph.Params, error)
	Forward(*G.Node, G.Nodes) (*G.Node, error)
} = ResNet12{}

// tinyWidths are the block widths of the small networks tested here.
var tinyWidths = [4]int{2, 3, 3, 4}

func TestResNet12Params(t *testing.T) {
	m := ResNet12{Side: 16, Channels: 3, Widths: tinyWidths, Out: 5}
	p, err := m.Init(rand.New(rand.NewPCG(1, 2)), tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var sizes [][]int
	in := 3
	for i, w := range tinyWidths {
		for _, q := range []struct {
			name  string
			shape []int
		}{
			{"conv1.weight", []int{w, in, 3, 3}}, {"bn1.weight", []int{w}}, {"bn1.bias", []int{w}},
			{"conv2.weight", []int{w, w, 3, 3}}, {"bn2.weight", []int{w}}, {"bn2.bias", []int{w}},
			{"conv3.weight", []int{w, w, 3, 3}}, {"bn3.weight", []int{w}}, {"bn3.bias", []int{w}},
			{"downsample.conv.weight", []int{w, in, 1, 1}}, {"downsample.bn.weight", []int{w}}, {"downsample.bn.bias", []int{w}},
		} {
			names = append(names, fmt.Sprintf("layers.%d.%s", i, q.name))
			sizes = append(sizes, q.shape)
		}
		in = w
	}
	names = append(names, "head.weight", "head.bias")
	sizes = append(sizes, []int{5, 4}, []int{5})
	if !slices.Equal(p.Names(), names) {
		t.Fatalf("names = %v; want %v", p.Names(), names)
	}
	for i := 0; i < p.Len(); i++ {
		q := p.At(i)
		if !q.Value.Shape().Eq(tensor.Shape(sizes[i])) || q.Value.Dtype() != tensor.Float32 {
			t.Errorf("%s: %v %v; want %v float32", q.Name, q.Value.Shape(), q.Value.Dtype(), sizes[i])
		}
	}
	if got := m.HeadParams(); got != 2 || p.At(p.Len()-got).Name != "head.weight" {
		t.Errorf("HeadParams() = %d; want the 2 head parameters", got)
	}
	if got := m.ParamCount(); got != int64(p.Size()) {
		t.Errorf("ParamCount() = %d; Init makes %d", got, p.Size())
	}
}

// TestResNet12DefaultSize checks the size of the published network on
// 84×84×3 images with 5 outputs. Per block of width w after in channels:
// 9·w·in + 2·9·w² (3×3 convolutions) + w·in (shortcut) + 4·2·w (norms):
// 76,160 + 564,480 + 2,357,760 + 9,425,920 = 12,424,320 for
// 3→64→160→320→640, the 12.4M of Lee et al. 2019, plus the head: 5·640+5
// = 3,205 averaged, or 5·640·5·5+5 = 80,005 flattened (84 → 42 → 21 → 10
// → 5).
func TestResNet12DefaultSize(t *testing.T) {
	m := ResNet12{Side: 84, Channels: 3, Out: 5}
	if got := m.ParamCount(); got != 12_427_525 {
		t.Errorf("%v: ParamCount() = %d; want 12427525", m, got)
	}
	if got := m.In(); got != 84*84*3 {
		t.Errorf("In() = %d; want %d", got, 84*84*3)
	}
	if got := m.FinalSide(); got != 5 {
		t.Errorf("FinalSide() = %d; want 5", got)
	}
	if got, want := m.String(), "ResNet12 84×84×3, widths 64-160-320-640, average-pooled, 5 outputs"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
	m.Flatten = true
	if got := m.ParamCount(); got != 12_504_325 {
		t.Errorf("%v: ParamCount() = %d; want 12504325", m, got)
	}
	p, err := m.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() != 50 || p.Size() != 12_504_325 {
		t.Errorf("Init made %d parameters of %d numbers; want 50 of 12504325", p.Len(), p.Size())
	}
	if s := p.At(p.Len() - 2).Value.Shape(); !s.Eq(tensor.Shape{5, 640 * 5 * 5}) {
		t.Errorf("flattened head.weight %v; want [5 16000]", s)
	}
}

// TestResNet12Init checks PyTorch's initialisation, U(±1/√fanIn) for
// convolutions and the head (its bias too), 1 and 0 for the norms, and
// that the values depend on the seed alone.
func TestResNet12Init(t *testing.T) {
	m := ResNet12{Side: 16, Channels: 2, Widths: [4]int{8, 8, 16, 16}, Out: 4}
	p, err := m.Init(rand.New(rand.NewPCG(3, 4)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	bounds := map[string]float64{
		"head.weight": 1 / math.Sqrt(16),
		"head.bias":   1 / math.Sqrt(16),
	}
	in := 2
	for i, w := range m.Widths {
		l := fmt.Sprintf("layers.%d.", i)
		bounds[l+"conv1.weight"] = 1 / math.Sqrt(float64(9*in))
		bounds[l+"conv2.weight"] = 1 / math.Sqrt(float64(9*w))
		bounds[l+"conv3.weight"] = 1 / math.Sqrt(float64(9*w))
		bounds[l+"downsample.conv.weight"] = 1 / math.Sqrt(float64(in))
		in = w
	}
	for i := 0; i < p.Len(); i++ {
		q := p.At(i)
		v := graph.Float64s(q.Value)
		a, uniform := bounds[q.Name]
		for _, x := range v {
			switch {
			case uniform && math.Abs(x) > a:
				t.Fatalf("%s holds %v outside ±%v", q.Name, x, a)
			case !uniform && strings.HasSuffix(q.Name, "weight") && x != 1:
				t.Fatalf("%s holds %v; want 1", q.Name, x)
			case !uniform && strings.HasSuffix(q.Name, "bias") && x != 0:
				t.Fatalf("%s holds %v; want 0", q.Name, x)
			}
		}
		if uniform && len(v) >= 64 {
			// The spread of U(±a) is a/√3: a crude check that the bound
			// is the one drawn from.
			if sd := stddev(v); sd < 0.4*a || sd > 0.8*a {
				t.Errorf("%s: standard deviation %v; want about %v", q.Name, sd, a/math.Sqrt(3))
			}
		}
	}
	again, err := m.Init(rand.New(rand.NewPCG(3, 4)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	other, err := m.Init(rand.New(rand.NewPCG(3, 5)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	w0 := graph.Float64s(p.At(0).Value)
	if !slices.Equal(w0, graph.Float64s(again.At(0).Value)) {
		t.Error("Init with the same seed gave different values")
	}
	if slices.Equal(w0, graph.Float64s(other.At(0).Value)) {
		t.Error("Init with different seeds gave the same values")
	}
}

func TestResNet12BadConfig(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, m := range []ResNet12{
		{Side: 0, Out: 5},
		{Side: 84, Out: 0},
		{Side: -16, Out: 5},
		{Side: 84, Out: 5, Channels: -1},
		{Side: 84, Out: 5, Widths: [4]int{64, 0, 320, 640}},
		{Side: 84, Out: 5, Widths: [4]int{2, 3, 3, -4}},
		{Side: 15, Out: 5}, // 15 → 7 → 3 → 1 → 0
		{Side: 1, Out: 5},
	} {
		if err := m.Validate(); !errors.Is(err, ErrConfig) || !strings.HasPrefix(err.Error(), "nets: ") {
			t.Errorf("ResNet12%+v.Validate() = %v; want an ErrConfig prefixed \"nets: \"", m, err)
		}
		if _, err := m.Init(rng, tensor.Float64); !errors.Is(err, ErrConfig) {
			t.Errorf("ResNet12%+v.Init: err = %v; want ErrConfig", m, err)
		}
		g := G.NewGraph()
		x := G.NewTensor(g, G.Float64, 3, G.WithShape(1, 1, max(1, m.Side*m.Side)), G.WithName("x"))
		if _, err := m.Forward(x, nil); !errors.Is(err, ErrConfig) {
			t.Errorf("ResNet12%+v.Forward: err = %v; want ErrConfig", m, err)
		}
	}
	if err := (ResNet12{Side: 16, Out: 1}).Validate(); err != nil {
		t.Errorf("ResNet12{Side: 16, Out: 1}.Validate() = %v; want nil", err)
	}
}

func TestResNet12ForwardErrors(t *testing.T) {
	m := ResNet12{Side: 16, Widths: tinyWidths, Out: 3}
	p, err := m.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	g := G.NewGraph()
	nodes, _ := paramNodes(g, p, 2, "")
	good := G.NewTensor(g, G.Float64, 3, G.WithShape(2, 4, 256), G.WithName("x"))
	out, err := m.Forward(good, nodes)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Shape().Eq(tensor.Shape{2, 4, 3}) {
		t.Errorf("Forward output shape = %v; want [2 4 3]", out.Shape())
	}
	swapped := slices.Clone(nodes)
	swapped[3], swapped[6] = swapped[6], swapped[3] // conv2 and conv3 have the same shape
	if _, err := m.Forward(good, swapped); err != nil {
		t.Errorf("Forward with conv2 and conv3 swapped: %v; want a network (the shapes fit)", err)
	}
	wrong := slices.Clone(nodes)
	wrong[9] = nodes[0] // downsample.conv.weight [2 1 1 1] given conv1.weight [2 1 3 3]
	bad := []struct {
		name  string
		x     *G.Node
		nodes G.Nodes
	}{
		{"255 input features", G.NewTensor(g, G.Float64, 3, G.WithShape(2, 4, 255), G.WithName("x255")), nodes},
		{"2-d input", G.NewMatrix(g, G.Float64, G.WithShape(4, 256), G.WithName("x2")), nodes},
		{"nil input", nil, nodes},
		{"49 of 50 parameters", good, nodes[:49]},
		{"no parameters", good, nil},
		{"3 tasks for parameters of 2", G.NewTensor(g, G.Float64, 3, G.WithShape(3, 4, 256), G.WithName("x3")), nodes},
		{"a parameter of the wrong shape", good, wrong},
		{"a nil parameter", good, append(slices.Clone(nodes[:49]), nil)},
	}
	for _, c := range bad {
		if _, err := m.Forward(c.x, c.nodes); !errors.Is(err, graph.ErrShape) {
			t.Errorf("Forward with %s: err = %v; want ErrShape", c.name, err)
		}
	}
}

// The reference below computes ResNet-12 from its definition, as PyTorch
// lays it out: one task's images NCHW, act[image][(channel·side + row)·side
// + column].

// refConv is a k×k convolution without bias, zero padding pad, stride 1,
// of w [f, c, k, k].
func refConv(act [][]float64, c, side int, w []float64, f, k, pad int) [][]float64 {
	out := make([][]float64, len(act))
	for i := range act {
		out[i] = make([]float64, f*side*side)
		for o := 0; o < f; o++ {
			for h := 0; h < side; h++ {
				for x := 0; x < side; x++ {
					s := 0.0
					for ch := 0; ch < c; ch++ {
						for kh := 0; kh < k; kh++ {
							for kw := 0; kw < k; kw++ {
								ih, iw := h-pad+kh, x-pad+kw
								if ih >= 0 && ih < side && iw >= 0 && iw < side {
									s += w[((o*c+ch)*k+kh)*k+kw] * act[i][(ch*side+ih)*side+iw]
								}
							}
						}
					}
					out[i][(o*side+h)*side+x] = s
				}
			}
		}
	}
	return out
}

// refBatchNorm normalises act in place with its batch statistics
// (biased variance, eps 1e-5), then scales and shifts.
func refBatchNorm(act [][]float64, f, side int, gamma, beta []float64) {
	pix := side * side
	cnt := float64(len(act) * pix)
	for o := 0; o < f; o++ {
		mean, v := 0.0, 0.0
		for i := range act {
			for _, a := range act[i][o*pix : (o+1)*pix] {
				mean += a
			}
		}
		mean /= cnt
		for i := range act {
			for _, a := range act[i][o*pix : (o+1)*pix] {
				v += (a - mean) * (a - mean)
			}
		}
		v /= cnt
		for i := range act {
			for j := o * pix; j < (o+1)*pix; j++ {
				act[i][j] = gamma[o]*(act[i][j]-mean)/math.Sqrt(v+1e-5) + beta[o]
			}
		}
	}
}

func refLeakyReLU(act [][]float64) {
	for _, a := range act {
		for j, v := range a {
			if v < 0 {
				a[j] = 0.1 * v
			}
		}
	}
}

// refMaxPool is 2×2 max-pooling at stride 2, dropping an odd last row
// and column.
func refMaxPool(act [][]float64, f, side int) [][]float64 {
	half := side / 2
	out := make([][]float64, len(act))
	for i := range act {
		out[i] = make([]float64, f*half*half)
		for o := 0; o < f; o++ {
			for h := 0; h < half; h++ {
				for x := 0; x < half; x++ {
					best := math.Inf(-1)
					for kh := 0; kh < 2; kh++ {
						for kw := 0; kw < 2; kw++ {
							best = math.Max(best, act[i][(o*side+2*h+kh)*side+2*x+kw])
						}
					}
					out[i][(o*half+h)*half+x] = best
				}
			}
		}
	}
	return out
}

// referenceResNet12 computes m on x [tasks, n, In] (channels last) with
// flat, the parameters of every task in Init's order, each with a leading
// task axis: conv → BN → LeakyReLU twice, conv → BN plus the 1×1
// conv → BN shortcut, LeakyReLU, max-pool, for each block; then the mean
// over pixels, or torch.flatten, and the head.
func referenceResNet12(m ResNet12, x []float64, tasks, n int, flat []float64) []float64 {
	ps := m.params()
	param := func(i, t int) []float64 {
		off := 0
		for j := 0; j < i; j++ {
			off += tasks * tensor.Shape(ps[j].shape).TotalSize()
		}
		size := tensor.Shape(ps[i].shape).TotalSize()
		return flat[off+t*size : off+(t+1)*size]
	}
	var out []float64
	for t := 0; t < tasks; t++ {
		c, side := m.channels(), m.Side
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
		for b, f := range m.widths() {
			q := func(j int) []float64 { return param(paramsPerBlock*b+j, t) }
			h := refConv(act, c, side, q(0), f, 3, 1)
			refBatchNorm(h, f, side, q(1), q(2))
			refLeakyReLU(h)
			h = refConv(h, f, side, q(3), f, 3, 1)
			refBatchNorm(h, f, side, q(4), q(5))
			refLeakyReLU(h)
			h = refConv(h, f, side, q(6), f, 3, 1)
			refBatchNorm(h, f, side, q(7), q(8))
			short := refConv(act, c, side, q(9), f, 1, 0)
			refBatchNorm(short, f, side, q(10), q(11))
			for i := range h {
				for j := range h[i] {
					h[i][j] += short[i][j]
				}
			}
			refLeakyReLU(h)
			act = refMaxPool(h, f, side)
			c, side = f, side/2
		}
		if !m.Flatten {
			for i := range act {
				feat := make([]float64, c)
				for o := range feat {
					for _, v := range act[i][o*side*side : (o+1)*side*side] {
						feat[o] += v / float64(side*side)
					}
				}
				act[i] = feat
			}
		}
		hw, hb := param(len(ps)-2, t), param(len(ps)-1, t)
		for i := range act {
			for o := 0; o < m.Out; o++ {
				s := hb[o]
				for j, v := range act[i] {
					s += hw[o*len(act[i])+j] * v
				}
				out = append(out, s)
			}
		}
	}
	return out
}

// TestResNet12MatchesReference compares Forward with the PyTorch-layout
// reference, with different parameters for each task, averaged and
// flattened features, and final sides of 1 and 2 (where the flattened
// head's feature order matters).
func TestResNet12MatchesReference(t *testing.T) {
	for _, m := range []ResNet12{
		{Side: 16, Widths: tinyWidths, Out: 3},                                     // 16 → 8 → 4 → 2 → 1
		{Side: 35, Channels: 2, Widths: [4]int{3, 2, 3, 2}, Out: 2},                // 35 → 17 → 8 → 4 → 2, averaged
		{Side: 35, Channels: 3, Widths: [4]int{2, 3, 2, 3}, Flatten: true, Out: 4}, // flattened
	} {
		t.Run(fmt.Sprintf("%+v", m), func(t *testing.T) {
			const tasks, n = 2, 3
			rng := rand.New(rand.NewPCG(uint64(m.Side), 9))
			x, flat := randomPoint(t, m, tasks, n, rng)
			want := referenceResNet12(m, x, tasks, n, flat)
			for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
				got := forwardAt(t, m, dt, x, flat, tasks, n)
				// float32 rounds each of a few hundred terms to 6e-8
				// relative, through 12 convolutions and batch norms
				// (the last over as few as 3·2·2 values): 1e-4 at the
				// outputs' scale of a few units.
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

// TestResNet12GradientHessianVector checks the gradient and
// Hessian-vector product of a tiny ResNet-12's softmax cross-entropy,
// with respect to every parameter of two tasks, against central
// differences in float64, as TestConvNetHessianVector does for ConvNet.
// The second case flattens a 2×2 final map and has three channels, so
// that the head weight's permutation is differentiated too.
//
// A central difference per coordinate would take two evaluations for
// each of the 2,100 to 2,400 numbers: seconds for these graphs of some
// 250 ops. The gradient is checked instead along two random unit
// directions within each parameter (both tasks' copies): 100 directional
// derivatives, ∂/∂c f(θ + c·d) at c = 0 by NumGrad, against gradᵀd. A
// wrong derivative of any parameter shows unless its error is orthogonal
// to both of its directions. The Hessian-vector product, along a random
// unit v, is compared over all coordinates with the Richardson
// extrapolation of two central differences of the gradient, whose error
// is O(h⁴).
//
// LeakyReLU and max-pooling make the loss piecewise smooth: a central
// difference whose step crosses a kink (a LeakyReLU input at 0, a tie in
// a pooling window) is off by up to the jump in the derivative, and these
// small images hold thousands of activations. Measured over 13 seeds per
// case, steps of 1e-5 crossed one at one point in five, steps of 1e-6 at
// one in 26; rounding then costs up to 5e-6 relative (floor 1e-3),
// hence h = 1e-6 and a 1e-5 tolerance. The Hessian-vector product
// uses h = 1e-4 along a unit v, where the Richardson error measured below
// 3e-7, within 1e-6; one point in 24 put a kink within that step. The
// seeds give points with none (a kink shows as an error that changes
// erratically with h; a wrong derivative's does not).
func TestResNet12GradientHessianVector(t *testing.T) {
	for _, c := range []struct {
		m    ResNet12
		seed uint64
	}{
		{ResNet12{Side: 16, Widths: tinyWidths, Out: 3}, 1},                             // 16 → 8 → 4 → 2 → 1
		{ResNet12{Side: 32, Channels: 3, Widths: tinyWidths, Flatten: true, Out: 3}, 1}, // 32 → 16 → 8 → 4 → 2
	} {
		t.Run(fmt.Sprintf("%+v", c.m), func(t *testing.T) { checkResNetDerivs(t, c.m, c.seed) })
	}
}

// checkResNetDerivs makes the checks of TestResNet12GradientHessianVector
// for m at the point drawn from seed.
func checkResNetDerivs(t *testing.T, m ResNet12, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 12))
	d := newDerivs(t, m, m.Out, 2, 2, rng)
	// dirs[k] is a unit vector on the coordinates [off[k], off[k]+len(dirs[k])).
	var dirs [][]float64
	var offs []int
	off := 0
	for _, size := range d.sizes {
		for range 2 {
			dirs, offs = append(dirs, unitVector(rng, size)), append(offs, off)
		}
		off += size
	}
	along := func(c []float64) float64 {
		x := slices.Clone(d.theta)
		for k, u := range dirs {
			for i, e := range u {
				x[offs[k]+i] += c[k] * e
			}
		}
		return d.f(x)
	}
	exact := make([]float64, len(dirs))
	for k, u := range dirs {
		for i, e := range u {
			exact[k] += d.grad[offs[k]+i] * e
		}
	}
	if e := graph.RelErr(exact, graph.NumGrad(along, make([]float64, len(dirs)), 1e-6), 1e-3); e > 1e-5 {
		t.Errorf("directional derivatives: rel err %.3g > 1e-5", e)
	}
	if e := graph.RelErr(d.hvp, richardsonHVP(d.gradf, d.theta, d.v, 1e-4), 1e-3); e > 1e-6 {
		t.Errorf("Hessian-vector product rel err %.3g > 1e-6", e)
	}
}
