package nets

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ErrConfig is matched by errors reporting an invalid network configuration.
var ErrConfig = errors.New("invalid network configuration")

// Activation is a pointwise nonlinearity.
type Activation int

// The activations. The zero value is ReLU.
const (
	ReLU Activation = iota
	Tanh
	Sigmoid
	Identity
)

var activationNames = []string{"relu", "tanh", "sigmoid", "identity"}

// String returns the activation's name as ParseActivation accepts it.
func (a Activation) String() string {
	if a < 0 || int(a) >= len(activationNames) {
		return fmt.Sprintf("Activation(%d)", int(a))
	}
	return activationNames[a]
}

// ParseActivation returns the activation called name (case-insensitive).
func ParseActivation(name string) (Activation, error) {
	for i, n := range activationNames {
		if strings.EqualFold(name, n) {
			return Activation(i), nil
		}
	}
	return 0, fmt.Errorf("nets: unknown activation %q (want one of %s): %w", name, strings.Join(activationNames, ", "), ErrConfig)
}

// Apply applies the activation to x.
func (a Activation) Apply(x *G.Node) (out *G.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("nets: %v: %v", a, r)
		}
	}()
	switch a {
	case ReLU:
		return graph.ReLU(x)
	case Tanh:
		return G.Tanh(x)
	case Sigmoid:
		return G.Sigmoid(x)
	case Identity:
		return x, nil
	}
	return nil, fmt.Errorf("nets: unknown activation %d: %w", int(a), ErrConfig)
}

// MLP is a multi-layer perceptron: Linear layers of widths In → Hidden... →
// Out with Activation between them (none after the last). With no hidden
// layers it is a linear model (or, with a softmax cross-entropy loss, a
// logistic regression). Parameters are named layers.i.weight [out, in] and
// layers.i.bias [out], i counting Linear layers from 0.
type MLP struct {
	In, Out    int
	Hidden     []int
	Activation Activation
}

// String describes m in a few words: "MLP 1-40-40-1 relu".
func (m MLP) String() string {
	w := make([]string, len(m.widths()))
	for i, n := range m.widths() {
		w[i] = strconv.Itoa(n)
	}
	return fmt.Sprintf("MLP %s %v", strings.Join(w, "-"), m.Activation)
}

// Validate reports whether the configuration can be built.
func (m MLP) Validate() error {
	if m.In <= 0 || m.Out <= 0 {
		return fmt.Errorf("nets: MLP: input and output sizes must be positive, got in=%d out=%d: %w", m.In, m.Out, ErrConfig)
	}
	for i, h := range m.Hidden {
		if h <= 0 {
			return fmt.Errorf("nets: MLP: hidden layer %d has width %d, want a positive width: %w", i, h, ErrConfig)
		}
	}
	if m.Activation < 0 || int(m.Activation) >= len(activationNames) {
		return fmt.Errorf("nets: MLP: unknown activation %d: %w", int(m.Activation), ErrConfig)
	}
	return nil
}

func (m MLP) widths() []int {
	w := append([]int{m.In}, m.Hidden...)
	return append(w, m.Out)
}

// Init returns freshly initialised parameters as PyTorch's nn.Linear
// initialises them: weight and bias drawn from U[−1/√in, 1/√in].
func (m MLP) Init(rng *rand.Rand, dt tensor.Dtype) (*graph.Params, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	w := m.widths()
	p := new(graph.Params)
	for i := 0; i+1 < len(w); i++ {
		a := 1 / math.Sqrt(float64(w[i]))
		wt, err := graph.NewParam(rng, dt, []int{w[i+1], w[i]}, graph.Uniform(-a, a))
		if err != nil {
			return nil, err
		}
		bt, err := graph.NewParam(rng, dt, []int{w[i+1]}, graph.Uniform(-a, a))
		if err != nil {
			return nil, err
		}
		if err := p.Add(fmt.Sprintf("layers.%d.weight", i), wt); err != nil {
			return nil, err
		}
		if err := p.Add(fmt.Sprintf("layers.%d.bias", i), bt); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Forward applies the network to x of shape [tasks, n, In] with parameters
// p in Init's order, each with a leading task axis ([tasks, out, in],
// [tasks, out]). It returns [tasks, n, Out].
func (m MLP) Forward(x *G.Node, p G.Nodes) (out *G.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("nets: MLP.Forward: %v", r)
		}
	}()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	w := m.widths()
	if len(p) != 2*(len(w)-1) {
		return nil, &graph.ShapeError{Op: "MLP.Forward", Want: fmt.Sprintf("%d parameters", 2*(len(w)-1)), Got: fmt.Sprint(len(p))}
	}
	xs := x.Shape()
	if x.Dims() != 3 || xs[2] != m.In {
		return nil, &graph.ShapeError{Op: "MLP.Forward input", Want: fmt.Sprintf("[tasks, n, %d]", m.In), Got: fmt.Sprint(xs)}
	}
	tasks := xs[0]
	h := x
	for i := 0; i+1 < len(w); i++ {
		W, b := p[2*i], p[2*i+1]
		if !W.Shape().Eq(tensor.Shape{tasks, w[i+1], w[i]}) {
			return nil, &graph.ShapeError{Op: fmt.Sprintf("MLP.Forward layers.%d.weight", i), Want: fmt.Sprint(tensor.Shape{tasks, w[i+1], w[i]}), Got: fmt.Sprint(W.Shape())}
		}
		if !b.Shape().Eq(tensor.Shape{tasks, w[i+1]}) {
			return nil, &graph.ShapeError{Op: fmt.Sprintf("MLP.Forward layers.%d.bias", i), Want: fmt.Sprint(tensor.Shape{tasks, w[i+1]}), Got: fmt.Sprint(b.Shape())}
		}
		if h, err = Linear(h, W, b); err != nil {
			return nil, fmt.Errorf("nets: MLP.Forward layer %d: %w", i, err)
		}
		if i+2 < len(w) {
			if h, err = m.Activation.Apply(h); err != nil {
				return nil, err
			}
		}
	}
	return h, nil
}
