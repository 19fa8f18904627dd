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

// This file holds the pieces that the mixture-of-experts networks (PLE,
// CrossStitch, DSelectK) share: gates, expert stacks and constants, all
// built from ops that graph.Grad can differentiate twice.

// addLinear appends a Linear layer's parameters, name.weight [out, in]
// and name.bias [out], initialised as PyTorch's nn.Linear: U[−1/√in, 1/√in].
func addLinear(p *graph.Params, name string, out, in int, rng *rand.Rand, dt tensor.Dtype) error {
	a := 1 / math.Sqrt(float64(in))
	return addParams(p, rng, dt, graph.Uniform(-a, a), name+".weight", []int{out, in}, name+".bias", []int{out})
}

// addParams appends parameters drawn from init, given as name, shape
// pairs.
func addParams(p *graph.Params, rng *rand.Rand, dt tensor.Dtype, init graph.Init, nameShapes ...any) error {
	for i := 0; i+1 < len(nameShapes); i += 2 {
		v, err := graph.NewParam(rng, dt, nameShapes[i+1].([]int), init)
		if err != nil {
			return err
		}
		if err := p.Add(nameShapes[i].(string), v); err != nil {
			return err
		}
	}
	return nil
}

// checkShape returns a *graph.ShapeError unless n has shape want.
func checkShape(op string, n *G.Node, want tensor.Shape) error {
	if !n.Shape().Eq(want) {
		return &graph.ShapeError{Op: op, Want: fmt.Sprint(want), Got: fmt.Sprint(n.Shape())}
	}
	return nil
}

// checkInput returns a *graph.ShapeError unless x is [tasks, n, in].
func checkInput(op string, x *G.Node, in int) error {
	if x.Dims() != 3 || x.Shape()[2] != in {
		return &graph.ShapeError{Op: op, Want: fmt.Sprintf("[tasks, n, %d]", in), Got: fmt.Sprint(x.Shape())}
	}
	return nil
}

// checkParams returns a *graph.ShapeError unless p holds want nodes.
func checkParams(op string, p G.Nodes, want int) error {
	if len(p) != want {
		return &graph.ShapeError{Op: op, Want: fmt.Sprintf("%d parameters", want), Got: fmt.Sprint(len(p))}
	}
	return nil
}

// expertRows reshapes an expert's output [tasks, n, h] to
// [tasks·n, 1, h], one row per example, ready to be stacked.
func expertRows(o *G.Node) (*G.Node, error) {
	s := o.Shape()
	r, err := G.Reshape(o, tensor.Shape{s[0] * s[1], 1, s[2]})
	if err != nil {
		return nil, fmt.Errorf("nets: stacking experts: %v", err)
	}
	return r, nil
}

// stack concatenates nodes along axis 1.
func stack(parts G.Nodes) (*G.Node, error) {
	if len(parts) == 1 {
		return parts[0], nil
	}
	s, err := G.Concat(1, parts...)
	if err != nil {
		return nil, fmt.Errorf("nets: stacking experts: %v", err)
	}
	return s, nil
}

// softmax returns the softmax of x over its last axis, as exp(LogSoftmax),
// which can be differentiated twice.
func softmax(x *G.Node) (*G.Node, error) {
	ls, err := graph.LogSoftmax(x)
	if err != nil {
		return nil, err
	}
	s, err := G.Exp(ls)
	if err != nil {
		return nil, fmt.Errorf("nets: softmax: %v", err)
	}
	return s, nil
}

// mix returns Σ_e gate_e·expert_e example by example: gate [tasks, n, E]
// holds each example's weights, rows [tasks·n, E, h] the experts' outputs
// stacked by expertRows; the result is [tasks, n, h].
func mix(gate, rows *G.Node) (*G.Node, error) {
	gs, rs := gate.Shape(), rows.Shape()
	tasks, n, e, h := gs[0], gs[1], gs[2], rs[2]
	if !rs.Eq(tensor.Shape{tasks * n, e, h}) {
		return nil, &graph.ShapeError{Op: "mixture of experts", Want: fmt.Sprintf("%d experts for gate %v", e, gs), Got: fmt.Sprint(rs)}
	}
	g, err := G.Reshape(gate, tensor.Shape{tasks * n, 1, e})
	if err != nil {
		return nil, fmt.Errorf("nets: mixture of experts: %v", err)
	}
	m, err := graph.BatchedMatMul(g, rows, false, false)
	if err != nil {
		return nil, err
	}
	if m, err = G.Reshape(m, tensor.Shape{tasks, n, h}); err != nil {
		return nil, fmt.Errorf("nets: mixture of experts: %v", err)
	}
	return m, nil
}

// softmaxGate returns softmax(x·wᵀ + b) [tasks, n, E] after checking that
// w is [tasks, E, in] and b [tasks, E].
func softmaxGate(op string, x, w, b *G.Node, experts int) (*G.Node, error) {
	xs := x.Shape()
	if err := checkShape(op+".weight", w, tensor.Shape{xs[0], experts, xs[2]}); err != nil {
		return nil, err
	}
	if err := checkShape(op+".bias", b, tensor.Shape{xs[0], experts}); err != nil {
		return nil, err
	}
	logits, err := Linear(x, w, b)
	if err != nil {
		return nil, err
	}
	return softmax(logits)
}

// constant returns a constant node of g with dtype dt, the given shape and
// data (a scalar when shape is empty).
func constant(g *G.ExprGraph, dt tensor.Dtype, shape []int, data []float64) (*G.Node, error) {
	if len(shape) == 0 {
		switch dt {
		case tensor.Float64:
			return G.NewConstant(data[0], G.In(g)), nil
		case tensor.Float32:
			return G.NewConstant(float32(data[0]), G.In(g)), nil
		}
		return nil, fmt.Errorf("nets: dtype %v not supported", dt)
	}
	v, err := graph.NewTensor(dt, shape, data)
	if err != nil {
		return nil, err
	}
	return G.NewConstant(v, G.In(g)), nil
}

// addScalar returns x + c.
func addScalar(x *G.Node, c float64) (*G.Node, error) {
	k, err := constant(x.Graph(), x.Dtype(), nil, []float64{c})
	if err != nil {
		return nil, err
	}
	out, err := G.Add(x, k)
	if err != nil {
		return nil, fmt.Errorf("nets: adding a constant: %v", err)
	}
	return out, nil
}

// headsString describes heads as "a→1 b→3".
func headsString(heads []Head) string {
	s := make([]string, len(heads))
	for i, h := range heads {
		s[i] = fmt.Sprintf("%s→%d", h.Name, h.Out)
	}
	return strings.Join(s, " ")
}

// widthsString writes widths as "4-16-8".
func widthsString(in int, hidden []int) string {
	s := []string{fmt.Sprint(in)}
	for _, h := range hidden {
		s = append(s, fmt.Sprint(h))
	}
	return strings.Join(s, "-")
}

// gorgoniaError reports an error from gorgonia while building what.
func gorgoniaError(what string, err error) error {
	return fmt.Errorf("nets: %s: %v", what, err)
}
