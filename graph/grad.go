package graph

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Grad returns the gradients of the scalar cost with respect to each node
// in wrt, as new nodes of cost's graph.
//
// Unlike gorgonia.Grad it keeps the adjoints in its own map and never reads
// or writes a node's cached derivative, so it may be called any number of
// times on one graph, and cost may depend on the results of earlier Grad
// calls: differentiating a gradient gives exact second (and higher) order
// derivatives. Any node may be a target, not only inputs. A target that
// cost does not depend on gets a zero gradient.
//
// Each op is differentiated through its gorgonia.SDOp SymDiff method. Ops
// that are not differentiable with respect to an input (comparisons,
// argmax, anything producing a non-float output) contribute a zero
// gradient. An op that should carry a gradient but cannot is reported as an
// error wrapping ErrNotDifferentiable that names the op.
func Grad(cost *G.Node, wrt ...*G.Node) (grads G.Nodes, err error) {
	defer recoverError(&err, "Grad")
	if cost == nil {
		return nil, fmt.Errorf("graph: Grad: nil cost")
	}
	if cost.Shape().TotalSize() != 1 {
		return nil, &ShapeError{Op: "Grad", Want: "a scalar cost", Got: fmt.Sprint(cost.Shape())}
	}
	if !isFloat(cost.Dtype()) {
		return nil, fmt.Errorf("graph: Grad: cost has dtype %v, want float32 or float64", cost.Dtype())
	}
	g := cost.Graph()
	targets := make(map[*G.Node]bool, len(wrt))
	for i, w := range wrt {
		if w == nil {
			return nil, fmt.Errorf("graph: Grad: target %d is nil", i)
		}
		if w.Graph() != g {
			return nil, fmt.Errorf("graph: Grad: target %d (%s) belongs to another graph", i, w.Name())
		}
		targets[w] = true
	}

	order := topoSort(cost)

	// needs[n]: some target lies at or below n, so n's adjoint must flow on.
	needs := make(map[*G.Node]bool, len(order))
	for _, n := range order {
		if !isFloat(n.Dtype()) {
			continue
		}
		if targets[n] {
			needs[n] = true
			continue
		}
		for _, c := range inputs(n) {
			if needs[c] {
				needs[n] = true
				break
			}
		}
	}

	terms := make(map[*G.Node]G.Nodes, len(order))
	adjoint := make(map[*G.Node]*G.Node, len(wrt))
	seed, err := onesLike(cost)
	if err != nil {
		return nil, err
	}
	terms[cost] = G.Nodes{seed}

	for i := len(order) - 1; i >= 0; i-- {
		n := order[i]
		if !needs[n] || len(terms[n]) == 0 {
			continue
		}
		adj, err := sumTerms(n, terms[n])
		if err != nil {
			return nil, err
		}
		delete(terms, n)
		if targets[n] {
			adjoint[n] = adj
		}
		if n.Op() == nil {
			continue
		}
		children := inputs(n)
		flows := false
		for _, c := range children {
			flows = flows || needs[c]
		}
		if !flows {
			continue
		}
		sd, ok := n.Op().(G.SDOp)
		if broken, why := brokenSymDiff(n.Op()); broken {
			return nil, fmt.Errorf("graph: Grad: op %v (node %s): %s: %w", n.Op(), n.Name(), why, ErrNotDifferentiable)
		}
		if !ok {
			return nil, fmt.Errorf("graph: Grad: op %v (node %s): %w", n.Op(), n.Name(), ErrNotDifferentiable)
		}
		diffs, err := diffWRT(sd, len(children))
		if err != nil {
			return nil, fmt.Errorf("graph: Grad: op %v (node %s): %v: %w", n.Op(), n.Name(), err, ErrNotDifferentiable)
		}
		flowsThrough := false
		for j, c := range children {
			if j < len(diffs) && diffs[j] && needs[c] {
				flowsThrough = true
			}
		}
		if !flowsThrough {
			continue // e.g. comparisons: zero gradient
		}
		cg, err := symDiff(sd, children, n, adj)
		if err != nil {
			return nil, fmt.Errorf("graph: Grad: op %v (node %s): %v: %w", n.Op(), n.Name(), err, ErrNotDifferentiable)
		}
		for j, c := range children {
			if j >= len(diffs) || !diffs[j] || !needs[c] || j >= len(cg) || cg[j] == nil {
				continue
			}
			terms[c] = append(terms[c], cg[j])
		}
	}

	grads = make(G.Nodes, len(wrt))
	for i, w := range wrt {
		if a, ok := adjoint[w]; ok {
			grads[i] = a
			continue
		}
		if grads[i], err = zerosLike(w); err != nil {
			return nil, err
		}
	}
	return grads, nil
}

// diffWRT calls op's DiffWRT, returning a panic in it as an error: some
// of gorgonia's derivative ops (SoftMax's) panic when differentiated.
func diffWRT(op G.SDOp, inputs int) (d []bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return op.DiffWRT(inputs), nil
}

// symDiff calls op's SymDiff, returning a panic in it as an error.
func symDiff(op G.SDOp, children G.Nodes, n, adj *G.Node) (cg G.Nodes, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return op.SymDiff(children, n, adj)
}

// brokenSymDiff reports gorgonia ops whose SymDiff gives wrong results
// rather than an error. sliceIncrOp (the derivative of Slice) declares
// itself differentiable in its shape-only input and not in the gradient it
// carries, so differentiating it again would be silently wrong.
func brokenSymDiff(op G.Op) (bool, string) {
	switch fmt.Sprintf("%T", op) {
	case "gorgonia.sliceIncrOp", "*gorgonia.sliceIncrOp":
		return true, "gorgonia's derivative of Slice cannot be differentiated again (its DiffWRT is reversed)"
	}
	return false, ""
}

// topoSort returns the nodes that root depends on, root included, children
// before parents.
func topoSort(root *G.Node) G.Nodes {
	var order G.Nodes
	visited := make(map[*G.Node]bool)
	type frame struct {
		n        *G.Node
		children G.Nodes
		next     int
	}
	stack := []frame{{n: root, children: inputs(root)}}
	visited[root] = true
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.next < len(top.children) {
			c := top.children[top.next]
			top.next++
			if !visited[c] {
				visited[c] = true
				stack = append(stack, frame{n: c, children: inputs(c)})
			}
			continue
		}
		order = append(order, top.n)
		stack = stack[:len(stack)-1]
	}
	return order
}

// inputs returns n's operands in order.
func inputs(n *G.Node) G.Nodes {
	it := n.Graph().From(n.ID())
	if it == nil {
		return nil
	}
	out := make(G.Nodes, 0, it.Len())
	for it.Next() {
		out = append(out, it.Node().(*G.Node))
	}
	return out
}

// sumTerms adds the adjoint contributions to n, reshaping contributions
// that hold the right number of elements in another shape.
func sumTerms(n *G.Node, ts G.Nodes) (*G.Node, error) {
	want := n.Shape()
	var sum *G.Node
	for _, t := range ts {
		if !t.Shape().Eq(want) {
			if !sameSqueezed(t.Shape(), want) {
				return nil, &ShapeError{Op: fmt.Sprintf("Grad: adjoint of %s", n.Name()), Want: fmt.Sprint(want), Got: fmt.Sprint(t.Shape())}
			}
			var err error
			if want.IsScalar() {
				t, err = SumAll(t) // [1] or [1, 1] to a scalar
			} else {
				t, err = G.Reshape(t, want.Clone())
			}
			if err != nil {
				return nil, fmt.Errorf("graph: Grad: reshaping adjoint of %s: %v", n.Name(), err)
			}
		}
		if sum == nil {
			sum = t
			continue
		}
		var err error
		if sum, err = G.Add(sum, t); err != nil {
			return nil, fmt.Errorf("graph: Grad: summing adjoints of %s: %v", n.Name(), err)
		}
	}
	return sum, nil
}

// sameSqueezed reports whether a and b are equal once their size-1 axes
// are dropped (a scalar, [1] and [1, 1] are all the same).
func sameSqueezed(a, b tensor.Shape) bool {
	squeeze := func(s tensor.Shape) []int {
		var out []int
		for _, d := range s {
			if d != 1 {
				out = append(out, d)
			}
		}
		return out
	}
	sa, sb := squeeze(a), squeeze(b)
	if len(sa) != len(sb) {
		return false
	}
	for i := range sa {
		if sa[i] != sb[i] {
			return false
		}
	}
	return true
}

func isFloat(dt tensor.Dtype) bool { return dt == tensor.Float64 || dt == tensor.Float32 }

// onesLike returns a constant of n's shape and dtype filled with ones.
func onesLike(n *G.Node) (*G.Node, error) { return fillLike(n, 1) }

// zerosLike returns a constant of n's shape and dtype filled with zeros.
func zerosLike(n *G.Node) (*G.Node, error) { return fillLike(n, 0) }

func fillLike(n *G.Node, v float64) (*G.Node, error) {
	dt := n.Dtype()
	s := n.Shape()
	if s.IsScalar() {
		switch dt {
		case tensor.Float64:
			return G.NewConstant(v, G.In(n.Graph())), nil
		case tensor.Float32:
			return G.NewConstant(float32(v), G.In(n.Graph())), nil
		}
		return nil, fmt.Errorf("graph: constant of dtype %v not supported", dt)
	}
	t := tensor.New(tensor.WithShape(s.Clone()...), tensor.Of(dt))
	if v != 0 {
		fill(t, v)
	}
	return G.NewConstant(t, G.In(n.Graph()), G.WithName(fmt.Sprintf("fill(%v, %v)", s, v))), nil
}
