package learners

import (
	"fmt"
	"math/rand/v2"
	"unsafe"

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

// Loss is a training loss over a batch of tasks. PerTask returns each
// task's loss, a vector [tasks], for predictions and targets of shape
// [tasks, n, out], built of gorgonia nodes. For second-order MAML it must
// be twice differentiable: built of the ops package graph lists as such.
// MSE and CrossEntropy are built in; LossFunc makes a Loss of a function.
type Loss interface {
	PerTask(pred, target *G.Node) (*G.Node, error)
}

// LossFunc is a Loss given as a function.
type LossFunc func(pred, target *G.Node) (*G.Node, error)

// PerTask returns f(pred, target).
func (f LossFunc) PerTask(pred, target *G.Node) (*G.Node, error) { return f(pred, target) }

// BuiltinLoss is one of the losses medusa provides.
type BuiltinLoss int

// The built-in losses.
const (
	// MSE is the mean squared error over examples and outputs.
	MSE BuiltinLoss = iota
	// CrossEntropy is the softmax cross-entropy against one-hot targets,
	// averaged over examples.
	CrossEntropy
)

// String returns the loss's name.
func (l BuiltinLoss) String() string {
	switch l {
	case MSE:
		return "mse"
	case CrossEntropy:
		return "cross-entropy"
	}
	return fmt.Sprintf("BuiltinLoss(%d)", int(l))
}

// lossKey identifies l among a learner's settings, so that its graphs
// are rebuilt when the loss changes: a LossFunc by the closure it holds
// (two closures of one function literal are different losses), any other
// Loss by its type and value. The learner keeps the loss its graphs were
// built with, so that a closure's address is not reused while it is a key.
func lossKey(l Loss) string {
	if f, ok := l.(LossFunc); ok {
		return fmt.Sprintf("LossFunc@%p", *(*unsafe.Pointer)(unsafe.Pointer(&f)))
	}
	return fmt.Sprintf("%T:%#v", l, l)
}

// lossPerTask returns l's per-task losses (MSE when l is nil), checking
// their shape and naming the loss in an error, a panic included.
func lossPerTask(l Loss, pred, target *G.Node) (out *G.Node, err error) {
	if l == nil {
		l = MSE
	}
	if s := pred.Shape(); !s.Eq(target.Shape()) {
		return nil, &graph.ShapeError{Op: "loss", Want: fmt.Sprint(s), Got: fmt.Sprint(target.Shape())}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("learners: loss %T: panic: %v", l, r)
		}
	}()
	out, err = l.PerTask(pred, target)
	if err != nil {
		if _, ok := l.(BuiltinLoss); ok {
			return nil, err
		}
		return nil, fmt.Errorf("learners: loss %T: %w", l, err)
	}
	if want := (tensor.Shape{pred.Shape()[0]}); out == nil || !out.Shape().Eq(want) {
		got := "nil"
		if out != nil {
			got = fmt.Sprint(out.Shape())
		}
		return nil, &graph.ShapeError{Op: fmt.Sprintf("loss %T", l), Want: fmt.Sprint(want) + ", one loss a task", Got: got}
	}
	return out, nil
}

// forward runs model's forward pass on x, naming the model and the input's
// shape in an error, a panic in it included (gorgonia's ops panic on
// some bad shapes).
func forward(model Model, x *G.Node, p G.Nodes) (out *G.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("learners: %T.Forward of x %v: panic: %v", model, x.Shape(), r)
		}
	}()
	if out, err = model.Forward(x, p); err != nil {
		return nil, fmt.Errorf("learners: %T.Forward of x %v: %w", model, x.Shape(), err)
	}
	return out, nil
}

// PerTask returns the loss of each task, a vector [tasks], for
// predictions and targets of shape [tasks, n, out].
func (l BuiltinLoss) PerTask(pred, target *G.Node) (*G.Node, error) {
	s := pred.Shape()
	if !s.Eq(target.Shape()) || len(s) != 3 {
		return nil, &graph.ShapeError{Op: "loss " + l.String(), Want: fmt.Sprint(s) + " of 3 axes", Got: fmt.Sprint(target.Shape())}
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
