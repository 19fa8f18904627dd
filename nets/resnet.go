package nets

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ResNet12 is the residual backbone of few-shot image classification used
// by TADAM (Oreshkin et al. 2018) and MetaOptNet (Lee et al. 2019): four
// residual blocks, each
//
//	h = LeakyReLU(BN1(Conv1(x)))
//	h = LeakyReLU(BN2(Conv2(h)))
//	h = BN3(Conv3(h)) + BN(Conv1×1(x))    (the shortcut, "downsample")
//	y = MaxPool2×2(LeakyReLU(h))
//
// with 3×3 convolutions at padding 1 and 1×1 shortcut convolutions, none
// with a bias, LeakyReLU of slope 0.1, and block widths Widths, then a
// linear head to Out classes. With the defaults, 84×84 images shrink to
// 42, 21, 10 and 5 pixels.
//
// The head sees the last block's output averaged over its pixels (global
// average pooling), Widths[3] features, so that its size does not depend
// on Side; with Flatten it sees the whole output flattened, as in
// MetaOptNet, Widths[3]·s·s features (s = FinalSide). DropBlock, which
// MetaOptNet applies in the last two blocks during training, is left out:
// it needs a random mask per forward pass, and Forward takes no random
// source.
//
// Batch normalisation is transductive, as in ConvNet: every forward pass
// normalises with its own batch statistics, per task (graph.BatchNorm,
// eps 1e-5), and no running statistics are kept. LeakyReLU is computed as
// 0.9·ReLU(x) + 0.1·x, from ops that differentiate any number of times,
// so the whole network can be differentiated twice, as second-order MAML
// needs. Each block pools before its last LeakyReLU: the function is
// increasing, so max-pooling commutes with it, and the result is
// PyTorch's add → LeakyReLU → pool with a quarter of the work.
//
// Parameters, in order, named and laid out as PyTorch stores them, for
// each block i = 0…3 of width w (in = Channels for i = 0, Widths[i−1]
// after):
//
//	layers.i.conv1.weight           [w, in, 3, 3]
//	layers.i.bn1.weight             [w]
//	layers.i.bn1.bias               [w]
//	layers.i.conv2.weight           [w, w, 3, 3]
//	layers.i.bn2.weight             [w]
//	layers.i.bn2.bias               [w]
//	layers.i.conv3.weight           [w, w, 3, 3]
//	layers.i.bn3.weight             [w]
//	layers.i.bn3.bias               [w]
//	layers.i.downsample.conv.weight [w, in, 1, 1]
//	layers.i.downsample.bn.weight   [w]
//	layers.i.downsample.bn.bias     [w]
//
// then head.weight [Out, features] and head.bias [Out] (with Flatten the
// features are in (channel, row, column) order, as torch.flatten of NCHW).
// With the default widths on 84×84×3 images and 5 outputs that is
// 12,427,525 numbers: 12,424,320 in the blocks and 3,205 in the head.
//
// The zero value of each field but Side and Out means its default, given
// in its comment. A ResNet12 satisfies learners.Model.
type ResNet12 struct {
	Side     int    // image side in pixels (images are Side×Side); required, at least 16
	Channels int    // input channels (3 for colour images); 0 means 1
	Widths   [4]int // output channels of each block; all zero means MetaOptNet's 64, 160, 320, 640 (TADAM's are 64, 128, 256, 512)
	Flatten  bool   // flatten the last block's output for the head instead of averaging it over pixels
	Out      int    // outputs (classes); required
}

// resEps is the batch normalisation eps, PyTorch's default.
const resEps = 1e-5

// leakySlope is LeakyReLU's slope for negative inputs in every block.
const leakySlope = 0.1

// paramsPerBlock is the number of parameters of one residual block.
const paramsPerBlock = 12

// String describes m in a few words: "ResNet12 84×84×3, widths
// 64-160-320-640, average-pooled, 5 outputs".
func (m ResNet12) String() string {
	w := m.widths()
	pool := "average-pooled"
	if m.Flatten {
		pool = "flattened"
	}
	return fmt.Sprintf("ResNet12 %d×%d×%d, widths %d-%d-%d-%d, %s, %d outputs", m.Side, m.Side, m.channels(), w[0], w[1], w[2], w[3], pool, m.Out)
}

func (m ResNet12) channels() int { return orDefault(m.Channels, 1) }

func (m ResNet12) widths() [4]int {
	if m.Widths == ([4]int{}) {
		return [4]int{64, 160, 320, 640}
	}
	return m.Widths
}

// In returns the number of input features, Side·Side·Channels.
func (m ResNet12) In() int { return m.Side * m.Side * m.channels() }

// FinalSide returns the side of the last block's output, Side halved
// (rounding down) once per block: Side/16.
func (m ResNet12) FinalSide() int { return max(m.Side, 0) / 16 }

// features returns the number of features the head sees.
func (m ResNet12) features() int {
	f := m.widths()[3]
	if m.Flatten {
		s := m.FinalSide()
		f *= s * s
	}
	return f
}

// HeadParams returns how many parameters, at the end of Init's order,
// belong to the linear head (head.weight and head.bias): the parameters
// that ANIL adapts.
func (m ResNet12) HeadParams() int { return 2 }

// NormParams returns the positions, in Init's order, of the batch
// normalisation weights and biases (the bn1, bn2, bn3 and downsample.bn
// weights and biases of every block).
func (m ResNet12) NormParams() []int {
	var out []int
	for i, p := range m.params() {
		if strings.Contains(p.name, "bn") {
			out = append(out, i)
		}
	}
	return out
}

// Validate reports whether the configuration can be built; errors match
// ErrConfig.
func (m ResNet12) Validate() error {
	switch {
	case m.Side <= 0 || m.Out <= 0:
		return fmt.Errorf("nets: ResNet12: Side and Out must be positive, got side=%d out=%d: %w", m.Side, m.Out, ErrConfig)
	case m.Channels < 0:
		return fmt.Errorf("nets: ResNet12: Channels must be positive (or 0 for the default), got %d: %w", m.Channels, ErrConfig)
	case m.Widths != ([4]int{}) && min(m.Widths[0], m.Widths[1], m.Widths[2], m.Widths[3]) <= 0:
		return fmt.Errorf("nets: ResNet12: Widths must all be positive (or all 0 for the defaults), got %v: %w", m.Widths, ErrConfig)
	case m.FinalSide() < 1:
		return fmt.Errorf("nets: ResNet12: %d×%d images are too small for 4 blocks (each halves the side; want at least 16×16): %w", m.Side, m.Side, ErrConfig)
	}
	return nil
}

// resParam is one parameter: its name, its shape and how Init fills it.
type resParam struct {
	name  string
	shape []int
	init  graph.Init
}

// params returns every parameter in Init's order.
func (m ResNet12) params() []resParam {
	// nn.Conv2d's and nn.Linear's default initialisation, kaiming_uniform_
	// with a = √5, is U(±1/√fanIn); nn.Linear draws its bias from the same
	// range. nn.BatchNorm2d starts at weight 1, bias 0.
	uniform := func(fanIn int) graph.Init {
		a := 1 / math.Sqrt(float64(fanIn))
		return graph.Uniform(-a, a)
	}
	var ps []resParam
	conv := func(name string, w, in, k int) {
		ps = append(ps, resParam{name + ".weight", []int{w, in, k, k}, uniform(in * k * k)})
	}
	bn := func(name string, w int) {
		ps = append(ps, resParam{name + ".weight", []int{w}, graph.Constant(1)}, resParam{name + ".bias", []int{w}, graph.Zeros()})
	}
	in := m.channels()
	for i, w := range m.widths() {
		p := fmt.Sprintf("layers.%d.", i)
		conv(p+"conv1", w, in, 3)
		bn(p+"bn1", w)
		conv(p+"conv2", w, w, 3)
		bn(p+"bn2", w)
		conv(p+"conv3", w, w, 3)
		bn(p+"bn3", w)
		conv(p+"downsample.conv", w, in, 1)
		bn(p+"downsample.bn", w)
		in = w
	}
	f := m.features()
	return append(ps,
		resParam{"head.weight", []int{m.Out, f}, uniform(f)},
		resParam{"head.bias", []int{m.Out}, uniform(f)})
}

// Init returns freshly initialised parameters as PyTorch initialises
// nn.Conv2d, nn.BatchNorm2d and nn.Linear: convolution and head weights,
// and the head's bias, from U[−1/√fanIn, 1/√fanIn] (fanIn = in·k·k for a
// k×k convolution, the number of features for the head), batch
// normalisation weights 1 and biases 0. The values depend only on rng's
// state. (MetaOptNet's code redraws the convolution weights from
// kaiming_normal_ with mode fan_out; this one keeps PyTorch's default.)
func (m ResNet12) Init(rng *rand.Rand, dt tensor.Dtype) (*graph.Params, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	p := new(graph.Params)
	for _, q := range m.params() {
		v, err := graph.NewParam(rng, dt, q.shape, q.init)
		if err != nil {
			return nil, err
		}
		if err := p.Add(q.name, v); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Forward applies the network to x [tasks, n, Side·Side·Channels], each
// image's pixels in rows, channels last (for one channel: the image
// flattened row by row), with parameters p in Init's order, each with a
// leading task axis ([tasks, w, in, 3, 3], ...). It returns [tasks, n,
// Out]. An invalid configuration gives an error matching ErrConfig; inputs
// or parameters of the wrong number or shape give a *graph.ShapeError.
func (m ResNet12) Forward(x *G.Node, p G.Nodes) (out *G.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("nets: ResNet12.Forward: %v", r)
		}
	}()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	ps := m.params()
	if len(p) != len(ps) {
		return nil, &graph.ShapeError{Op: "ResNet12.Forward", Want: fmt.Sprintf("%d parameters", len(ps)), Got: fmt.Sprint(len(p))}
	}
	if x == nil || x.Dims() != 3 || x.Shape()[2] != m.In() {
		got := "nil"
		if x != nil {
			got = fmt.Sprint(x.Shape())
		}
		return nil, &graph.ShapeError{Op: "ResNet12.Forward input", Want: fmt.Sprintf("[tasks, n, %d]", m.In()), Got: got}
	}
	tasks, n := x.Shape()[0], x.Shape()[1]
	for i, q := range p {
		want := append(tensor.Shape{tasks}, ps[i].shape...)
		if q == nil || !q.Shape().Eq(want) {
			got := "nil"
			if q != nil {
				got = fmt.Sprint(q.Shape())
			}
			return nil, &graph.ShapeError{Op: "ResNet12.Forward " + ps[i].name, Want: fmt.Sprint(want), Got: got}
		}
	}
	h, err := G.Reshape(x, tensor.Shape{tasks, n, m.Side, m.Side, m.channels()})
	if err != nil {
		return nil, fmt.Errorf("nets: ResNet12 input: %v", err)
	}
	for i := range 4 {
		if h, err = residualBlock(h, p[paramsPerBlock*i:paramsPerBlock*(i+1)]); err != nil {
			return nil, fmt.Errorf("nets: ResNet12 block %d: %w", i, err)
		}
	}
	s, f := m.FinalSide(), m.widths()[3]
	hw := p[len(p)-2]
	if m.Flatten {
		h, err = G.Reshape(h, tensor.Shape{tasks, n, s * s * f})
		if err == nil && s > 1 {
			hw, err = headCHWToHWC(hw, f, s)
		}
	} else {
		h, err = meanPixels(h)
	}
	if err != nil {
		return nil, fmt.Errorf("nets: ResNet12 features: %w", err)
	}
	if h, err = Linear(h, hw, p[len(p)-1]); err != nil {
		return nil, fmt.Errorf("nets: ResNet12 head: %w", err)
	}
	return h, nil
}

// residualBlock applies one block to images x [tasks, n, h, w, c] with
// its 12 parameters in Init's order, returning [tasks, n, h/2, w/2, width].
func residualBlock(x *G.Node, p G.Nodes) (*G.Node, error) {
	convBN := func(h *G.Node, w, gamma, beta *G.Node, pad int) (*G.Node, error) {
		h, err := graph.Conv2D(h, w, nil, 1, pad)
		if err != nil {
			return nil, err
		}
		return graph.BatchNorm(h, gamma, beta, resEps)
	}
	h, err := convBN(x, p[0], p[1], p[2], 1)
	if err != nil {
		return nil, err
	}
	if h, err = leakyReLU(h); err != nil {
		return nil, err
	}
	if h, err = convBN(h, p[3], p[4], p[5], 1); err != nil {
		return nil, err
	}
	if h, err = leakyReLU(h); err != nil {
		return nil, err
	}
	if h, err = convBN(h, p[6], p[7], p[8], 1); err != nil {
		return nil, err
	}
	short, err := convBN(x, p[9], p[10], p[11], 0)
	if err != nil {
		return nil, err
	}
	if h, err = G.Add(h, short); err != nil {
		return nil, fmt.Errorf("shortcut: %v", err)
	}
	if h, err = graph.MaxPool2D(h, 2); err != nil {
		return nil, err
	}
	return leakyReLU(h)
}

// leakyReLU returns max(x, 0.1·x) elementwise, as 0.9·ReLU(x) + 0.1·x:
// ReLU, scaling by a constant and addition differentiate any number of
// times, so LeakyReLU does too.
func leakyReLU(x *G.Node) (*G.Node, error) {
	r, err := graph.ReLU(x)
	if err != nil {
		return nil, err
	}
	if r, err = graph.Scale(r, 1-leakySlope); err != nil {
		return nil, err
	}
	lin, err := graph.Scale(x, leakySlope)
	if err != nil {
		return nil, err
	}
	out, err := G.Add(r, lin)
	if err != nil {
		return nil, fmt.Errorf("LeakyReLU: %v", err)
	}
	return out, nil
}

// meanPixels averages images x [tasks, n, h, w, c] over their pixels:
// [tasks, n, c].
func meanPixels(x *G.Node) (*G.Node, error) {
	xs := x.Shape()
	pixels := xs[2] * xs[3]
	h, err := G.Reshape(x, tensor.Shape{xs[0], xs[1], pixels, xs[4]})
	if err != nil {
		return nil, err
	}
	if h, err = graph.SumAxis(h, 2); err != nil || pixels == 1 {
		return h, err
	}
	return graph.Scale(h, 1/float64(pixels))
}

// headCHWToHWC permutes the columns of a head weight w [tasks, out,
// f·s·s], which takes features in PyTorch's (channel, row, column) order,
// into the (row, column, channel) order of channels-last activations.
// Permuting the weight costs less than permuting the activations.
func headCHWToHWC(w *G.Node, f, s int) (*G.Node, error) {
	ws := w.Shape()
	tasks, out := ws[0], ws[1]
	hw, err := G.Reshape(w, tensor.Shape{tasks * out, f, s * s})
	if err != nil {
		return nil, err
	}
	if hw, err = graph.TransposeLast(hw); err != nil {
		return nil, err
	}
	return G.Reshape(hw, tensor.Shape{tasks, out, s * s * f})
}
