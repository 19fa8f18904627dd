package learners

import (
	"fmt"
	"math/rand/v2"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Model is a network with a functional forward pass (see package nets).
type Model interface {
	// Init returns freshly initialised parameters.
	Init(rng *rand.Rand, dt tensor.Dtype) (*graph.Params, error)
	// Forward maps x [tasks, n, in] to [tasks, n, out] with parameters
	// that carry a leading task axis, in Init's order.
	Forward(x *G.Node, p G.Nodes) (*G.Node, error)
}

// Loss is a per-example loss.
type Loss int

// The losses. The zero value is MSE.
const (
	// MSE is the mean squared error over examples and outputs.
	MSE Loss = iota
	// CrossEntropy is the softmax cross-entropy against one-hot targets,
	// averaged over examples.
	CrossEntropy
)

// String returns the loss's name.
func (l Loss) String() string {
	switch l {
	case MSE:
		return "mse"
	case CrossEntropy:
		return "cross-entropy"
	}
	return fmt.Sprintf("Loss(%d)", int(l))
}

// perTask returns the loss of each task, a vector [tasks], for predictions
// and targets of shape [tasks, n, out].
func (l Loss) perTask(pred, target *G.Node) (*G.Node, error) {
	s := pred.Shape()
	if !s.Eq(target.Shape()) {
		return nil, &graph.ShapeError{Op: "loss", Want: fmt.Sprint(s), Got: fmt.Sprint(target.Shape())}
	}
	n, out := s[1], s[2]
	var elem *G.Node
	var scale float64
	switch l {
	case MSE:
		d, err := G.Sub(pred, target)
		if err != nil {
			return nil, fmt.Errorf("learners: loss: %v", err)
		}
		if elem, err = G.Square(d); err != nil {
			return nil, fmt.Errorf("learners: loss: %v", err)
		}
		scale = 1 / float64(n*out)
	case CrossEntropy:
		lp, err := graph.LogSoftmax(pred)
		if err != nil {
			return nil, err
		}
		if elem, err = G.HadamardProd(lp, target); err != nil {
			return nil, fmt.Errorf("learners: loss: %v", err)
		}
		scale = -1 / float64(n)
	default:
		return nil, fmt.Errorf("learners: unknown loss %d", int(l))
	}
	r, err := graph.SumAxis(elem, 2)
	if err != nil {
		return nil, err
	}
	if r, err = graph.SumAxis(r, 1); err != nil {
		return nil, err
	}
	return graph.Scale(r, scale)
}
