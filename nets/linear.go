package nets

import (
	"fmt"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Linear returns x·wᵀ + b task by task, the fully connected layer with a
// leading task axis: x [tasks, n, in], w [tasks, out, in] (nn.Linear's
// layout), b [tasks, out], or nil for none; the result is [tasks, n, out].
// It is the layer every network here is built from, and the one a
// Model's Forward should use on the parameters a learner passes it.
// Shapes that do not fit give a *graph.ShapeError.
func Linear(x, w, b *G.Node) (out *G.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("nets: Linear: %v", r)
		}
	}()
	xs, ws := x.Shape(), w.Shape()
	if x.Dims() != 3 || w.Dims() != 3 || ws[0] != xs[0] || ws[2] != xs[2] {
		return nil, &graph.ShapeError{Op: "Linear", Want: "x [tasks, n, in] and w [tasks, out, in]", Got: fmt.Sprintf("%v and %v", xs, ws)}
	}
	if b != nil && !b.Shape().Eq(tensor.Shape{ws[0], ws[1]}) {
		return nil, &graph.ShapeError{Op: "Linear bias", Want: fmt.Sprint(tensor.Shape{ws[0], ws[1]}), Got: fmt.Sprint(b.Shape())}
	}
	if out, err = graph.BatchedMatMul(x, w, false, true); err != nil {
		return nil, err
	}
	if b == nil {
		return out, nil
	}
	bb, err := graph.Broadcast(b, 1, xs[1])
	if err != nil {
		return nil, err
	}
	if out, err = G.Add(out, bb); err != nil {
		return nil, fmt.Errorf("nets: Linear bias: %v", err)
	}
	return out, nil
}
