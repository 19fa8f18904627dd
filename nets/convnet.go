package nets

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ConvNet is the convolutional backbone of few-shot image classification
// used by MAML (Finn et al. 2017) after matching networks (Vinyals et al.
// 2016): Blocks blocks of a 3×3 convolution with Filters filters and
// padding 1, batch normalisation, ReLU and 2×2 max-pooling, then a linear
// head to Out classes. With the defaults, 28×28 images shrink to 14, 7, 3
// and 1 pixels, and the head sees 64 features.
//
// Batch normalisation is transductive, as in MAML: every forward pass
// normalises with its own batch statistics, per task (graph.BatchNorm,
// eps 1e-5), and no running statistics are kept. Because it subtracts each
// channel's batch mean, a bias added by the convolution before it cancels
// exactly: the network keeps blocks.i.conv.bias, as PyTorch's does, so
// that parameters and checkpoints carry over, but Forward does not add it,
// and its gradient is zero (in PyTorch it is zero up to rounding). Each block pools before
// its ReLU: ReLU is monotone, so max-pooling commutes with it, and the
// result is PyTorch's conv → norm → ReLU → pool with a quarter of the ReLU
// work.
//
// Parameters, in order, named and laid out as PyTorch stores them:
//
//	blocks.i.conv.weight [Filters, in, 3, 3]  (in = Channels for i = 0, Filters after)
//	blocks.i.conv.bias   [Filters]
//	blocks.i.bn.weight   [Filters]
//	blocks.i.bn.bias     [Filters]
//	head.weight          [Out, Filters·s·s]   (s the final side; features in (filter, row, column) order, as torch.flatten of NCHW)
//	head.bias            [Out]
//
// The zero value of each field but Side and Out means its default, given
// in its comment. A ConvNet satisfies learners.Model.
type ConvNet struct {
	Side     int // image side in pixels (images are Side×Side); required
	Channels int // input channels; 0 means 1
	Filters  int // filters of every convolution; 0 means 64
	Blocks   int // convolutional blocks; 0 means 4
	Out      int // outputs (classes); required
}

// convEps is the batch normalisation eps, PyTorch's default.
const convEps = 1e-5

// String describes m in a few words: "ConvNet 28×28, 4 blocks of 64
// filters, 5 outputs".
func (m ConvNet) String() string {
	return fmt.Sprintf("ConvNet %d×%d, %d blocks of %d filters, %d outputs", m.Side, m.Side, m.blocks(), m.filters(), m.Out)
}

func (m ConvNet) channels() int { return orDefault(m.Channels, 1) }
func (m ConvNet) filters() int  { return orDefault(m.Filters, 64) }
func (m ConvNet) blocks() int   { return orDefault(m.Blocks, 4) }

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// In returns the number of input features, Side·Side·Channels.
func (m ConvNet) In() int { return m.Side * m.Side * m.channels() }

// FinalSide returns the side of the last block's output, Side halved
// (rounding down) once per block.
func (m ConvNet) FinalSide() int {
	s := m.Side
	for i := 0; i < m.blocks() && s > 0; i++ {
		s /= 2
	}
	return s
}

// HeadParams returns how many parameters, at the end of Init's order,
// belong to the linear head (head.weight and head.bias): the parameters
// that ANIL adapts.
func (m ConvNet) HeadParams() int { return 2 }

// NormParams returns the positions, in Init's order, of the batch
// normalisation weights and biases (blocks.i.bn.weight and .bias).
func (m ConvNet) NormParams() []int {
	var out []int
	for i := range m.blocks() {
		out = append(out, 4*i+2, 4*i+3)
	}
	return out
}

// Validate reports whether the configuration can be built; errors match
// ErrConfig.
func (m ConvNet) Validate() error {
	switch {
	case m.Side <= 0 || m.Out <= 0:
		return fmt.Errorf("nets: ConvNet: Side and Out must be positive, got side=%d out=%d: %w", m.Side, m.Out, ErrConfig)
	case m.Channels < 0 || m.Filters < 0 || m.Blocks < 0:
		return fmt.Errorf("nets: ConvNet: Channels, Filters and Blocks must be positive (or 0 for the default), got %d, %d, %d: %w", m.Channels, m.Filters, m.Blocks, ErrConfig)
	case m.FinalSide() < 1:
		return fmt.Errorf("nets: ConvNet: %d×%d images are too small for %d blocks (each halves the side): %w", m.Side, m.Side, m.blocks(), ErrConfig)
	}
	return nil
}

// shapes returns every parameter's name and shape in Init's order.
func (m ConvNet) shapes() (names []string, shapes [][]int) {
	f := m.filters()
	in := m.channels()
	for i := range m.blocks() {
		p := fmt.Sprintf("blocks.%d.", i)
		names = append(names, p+"conv.weight", p+"conv.bias", p+"bn.weight", p+"bn.bias")
		shapes = append(shapes, []int{f, in, 3, 3}, []int{f}, []int{f}, []int{f})
		in = f
	}
	s := m.FinalSide()
	names = append(names, "head.weight", "head.bias")
	shapes = append(shapes, []int{m.Out, f * s * s}, []int{m.Out})
	return names, shapes
}

// Init returns freshly initialised parameters as PyTorch initialises
// nn.Conv2d, nn.BatchNorm2d and nn.Linear: convolution and head weights
// and biases from U[−1/√fanIn, 1/√fanIn] (fanIn = in·3·3 for a
// convolution, the number of features for the head), batch normalisation
// weights 1 and biases 0.
func (m ConvNet) Init(rng *rand.Rand, dt tensor.Dtype) (*graph.Params, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	names, shapes := m.shapes()
	p := new(graph.Params)
	for i, name := range names {
		var init graph.Init
		switch {
		case i < 4*m.blocks() && i%4 == 2: // bn.weight
			init = graph.Constant(1)
		case i < 4*m.blocks() && i%4 == 3: // bn.bias
			init = graph.Zeros()
		default:
			w := shapes[i]
			if len(w) == 1 { // a bias: its layer's weight precedes it
				w = shapes[i-1]
			}
			fanIn, _ := graph.Fans(w)
			a := 1 / math.Sqrt(float64(fanIn))
			init = graph.Uniform(-a, a)
		}
		v, err := graph.NewParam(rng, dt, shapes[i], init)
		if err != nil {
			return nil, err
		}
		if err := p.Add(name, v); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Forward applies the network to x [tasks, n, Side·Side·Channels], each
// image's pixels in rows, channels last (for one channel: the image
// flattened row by row), with parameters p in Init's order, each with a
// leading task axis ([tasks, Filters, in, 3, 3], ...). It returns [tasks,
// n, Out].
func (m ConvNet) Forward(x *G.Node, p G.Nodes) (out *G.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("nets: ConvNet.Forward: %v", r)
		}
	}()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	names, shapes := m.shapes()
	if len(p) != len(names) {
		return nil, &graph.ShapeError{Op: "ConvNet.Forward", Want: fmt.Sprintf("%d parameters", len(names)), Got: fmt.Sprint(len(p))}
	}
	xs := x.Shape()
	if x.Dims() != 3 || xs[2] != m.In() {
		return nil, &graph.ShapeError{Op: "ConvNet.Forward input", Want: fmt.Sprintf("[tasks, n, %d]", m.In()), Got: fmt.Sprint(xs)}
	}
	tasks, n := xs[0], xs[1]
	for i, q := range p {
		want := append(tensor.Shape{tasks}, shapes[i]...)
		if q == nil || !q.Shape().Eq(want) {
			got := "nil"
			if q != nil {
				got = fmt.Sprint(q.Shape())
			}
			return nil, &graph.ShapeError{Op: "ConvNet.Forward " + names[i], Want: fmt.Sprint(want), Got: got}
		}
	}
	h, err := G.Reshape(x, tensor.Shape{tasks, n, m.Side, m.Side, m.channels()})
	if err != nil {
		return nil, err
	}
	for i := range m.blocks() {
		// The convolution's bias, p[4*i+1], is left out: batch
		// normalisation subtracts each channel's mean right after, which
		// cancels it exactly (see the type's comment).
		w, gamma, beta := p[4*i], p[4*i+2], p[4*i+3]
		if h, err = graph.Conv2D(h, w, nil, 1, 1); err != nil {
			return nil, fmt.Errorf("nets: ConvNet block %d: %w", i, err)
		}
		if h, err = graph.BatchNorm(h, gamma, beta, convEps); err != nil {
			return nil, fmt.Errorf("nets: ConvNet block %d: %w", i, err)
		}
		if h, err = graph.MaxPool2D(h, 2); err != nil {
			return nil, fmt.Errorf("nets: ConvNet block %d: %w", i, err)
		}
		if h, err = graph.ReLU(h); err != nil {
			return nil, fmt.Errorf("nets: ConvNet block %d: %w", i, err)
		}
	}
	s, f := m.FinalSide(), m.filters()
	if h, err = G.Reshape(h, tensor.Shape{tasks, n, s * s * f}); err != nil {
		return nil, err
	}
	// The activations are channels last, (row, column, filter); PyTorch's
	// head.weight takes them in (filter, row, column) order. Permute the
	// weight, which is smaller than the activations.
	hw := p[len(p)-2]
	if s > 1 {
		if hw, err = G.Reshape(hw, tensor.Shape{tasks * m.Out, f, s * s}); err != nil {
			return nil, err
		}
		if hw, err = graph.TransposeLast(hw); err != nil {
			return nil, err
		}
		if hw, err = G.Reshape(hw, tensor.Shape{tasks, m.Out, s * s * f}); err != nil {
			return nil, err
		}
	}
	if h, err = Linear(h, hw, p[len(p)-1]); err != nil {
		return nil, fmt.Errorf("nets: ConvNet head: %w", err)
	}
	return h, nil
}
