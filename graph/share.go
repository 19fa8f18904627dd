package graph

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Work shared between the ops of a CPU plan. Some ops pass over the same
// data as an op before them, to compute what that op had in hand: the
// earlier op's kernel keeps it, and the later op's copies it, with the
// bits it would have computed. The pairs are of one Run: the earlier op
// runs first in every Run, and the later one declines (and computes its
// own) when the values are not this Run's.

// share pairs the nodes of a CPU plan that can share work: each invStd
// with a normalize of the same argument and eps before it, each MaxPool2D
// gather with the arg-max it reads (sharePool), and each sumRows(g) with
// a dotChannels(g, ·) before it (shareSums).
func (p *Plan) share() {
	if !shareWork {
		return
	}
	p.shareStats()
	p.sharePool()
	p.shareSums()
}

// shareWork turns share on; tests turn it off to compare.
var shareWork = true

// Statistics shared. Batch normalisation's gradient needs invStd(x),
// whose statistics normalize(x) computed in the forward pass: in a CPU
// plan, normalize records them as it goes, and an invStd of the same x
// and eps later in the plan takes them instead of passing over x again.
// x cannot change in between, since the plan overwrites no value that an
// op still to run reads; the values are those invStd computes itself.

// sharedStats carries per-channel values from one op to another within a
// Run (statistics from normalize to invStd, sums from dotChannels to
// sumRows): ok while vals holds those of this Run.
type sharedStats struct {
	vals []float64
	ok   bool
}

// shareStats pairs each invStd node of p with a normalize node of the same
// argument and eps before it.
func (p *Plan) shareStats() {
	type key struct {
		x   int
		eps float64
	}
	norm := make(map[key]int)
	for i, n := range p.nodes {
		if n.Op() == nil || p.fixed[i] || p.fused[i] {
			continue
		}
		if op, ok := kernelOf[normalizeOp](n); ok {
			norm[key{p.args[i][0], op.eps}] = i
			continue
		}
		op, ok := kernelOf[invStdOp](n)
		if !ok {
			continue
		}
		j, ok := norm[key{p.args[i][0], op.eps}]
		if !ok || p.native[j] != nil {
			continue
		}
		sh := &sharedStats{}
		p.side = satAdd(p.side, int64(n.Shape().TotalSize())*8)
		switch n.Dtype() {
		case tensor.Float32:
			p.native[j], p.native[i] = normalizeSharing[float32](op.eps, sh), channelsShared[float32](sh)
		case tensor.Float64:
			p.native[j], p.native[i] = normalizeSharing[float64](op.eps, sh), channelsShared[float64](sh)
		}
	}
}

// normalizeSharing is normalizeOp's kernel recording its statistics in sh.
func normalizeSharing[T float](eps float64, sh *sharedStats) nativeKernel {
	return func(pre G.Value, in []G.Value) (G.Value, bool) {
		sh.ok = false
		x, s, err := floats[T](in[0])
		if err != nil || len(s) != 3 {
			return nil, false
		}
		n := s[0] * s[2]
		if cap(sh.vals) < n {
			sh.vals = make([]float64, n)
		}
		sh.vals = sh.vals[:n]
		out := normalizeKernel(reuse[T](pre, len(x)), x, s[0], s[1], s[2], eps, sh.vals)
		sh.ok = true
		return wrap(pre, out, s), true
	}
}

// channelsShared is the kernel of an op of x [tasks, m, c] with a [tasks,
// c] result (invStd, sumRows) that takes the values in sh; without them
// it declines, and the op computes its own.
func channelsShared[T float](sh *sharedStats) nativeKernel {
	return func(pre G.Value, in []G.Value) (G.Value, bool) {
		ok := sh.ok
		sh.ok = false
		if !ok || in[0] == nil {
			return nil, false
		}
		s := in[0].Shape()
		if len(s) != 3 || s[0]*s[2] != len(sh.vals) {
			return nil, false
		}
		out := reuse[T](pre, len(sh.vals))
		for i, v := range sh.vals {
			out[i] = T(v)
		}
		return wrap(pre, out, tensor.Shape{s[0], s[2]}), true
	}
}

// Maxima shared. MaxPool2D gathers the maxima of x at the positions its
// arg-max op found, a pass over x (every window's values) that the
// arg-max op had just made: in a CPU plan, the arg-max op also writes the
// maxima, from the rows of x it has in the cache, and the gather copies
// them.

// sharedMax carries the maxima from poolArgMax to its gather within a Run.
type sharedMax[T float] struct {
	vals []T
	ok   bool
}

// sharePool pairs each gather of p at a poolArgMax's positions with that
// poolArgMax, when the gather reads the arg-max's own argument.
func (p *Plan) sharePool() {
	for i, n := range p.nodes {
		if n.Op() == nil || p.fixed[i] || p.fused[i] || p.native[i] != nil || len(p.args[i]) != 2 {
			continue
		}
		if _, ok := kernelOf[gatherOp](n); !ok {
			continue
		}
		j := p.args[i][1]
		am, ok := kernelOf[poolArgMaxOp](p.nodes[j])
		if !ok || p.native[j] != nil || p.args[j][0] != p.args[i][0] || !n.Shape().Eq(p.nodes[j].Shape()) {
			continue
		}
		p.side = satAdd(p.side, int64(n.Shape().TotalSize())*int64(n.Dtype().Size()))
		switch n.Dtype() {
		case tensor.Float32:
			sh := &sharedMax[float32]{}
			p.native[j], p.native[i] = argMaxSharing(am, sh), gatherShared(sh)
		case tensor.Float64:
			sh := &sharedMax[float64]{}
			p.native[j], p.native[i] = argMaxSharing(am, sh), gatherShared(sh)
		}
	}
}

// argMaxSharing is poolArgMaxOp's kernel writing the maxima into sh.
func argMaxSharing[T float](op poolArgMaxOp, sh *sharedMax[T]) nativeKernel {
	return func(pre G.Value, in []G.Value) (G.Value, bool) {
		sh.ok = false
		x, s, err := floats[T](in[0])
		if err != nil {
			return nil, false
		}
		shape, err := op.outShape(s)
		if err != nil {
			return nil, false
		}
		n := shape.TotalSize()
		if cap(sh.vals) < n {
			sh.vals = make([]T, n)
		}
		sh.vals = sh.vals[:n]
		idx := reuseInts(pre, n)
		poolArgMax(idx, sh.vals, x, s[0]*op.n, op.image, op.k)
		sh.ok = true
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(idx)), true
	}
}

// gatherShared is the gather's kernel copying the maxima in sh; without
// them it declines, and the gather runs.
func gatherShared[T float](sh *sharedMax[T]) nativeKernel {
	return func(pre G.Value, in []G.Value) (G.Value, bool) {
		ok := sh.ok
		sh.ok = false
		if !ok || in[1] == nil || in[1].Shape().TotalSize() != len(sh.vals) {
			return nil, false
		}
		s := in[1].Shape()
		out := reuse[T](pre, len(sh.vals))
		copy(out, sh.vals)
		return wrap(pre, out, s.Clone()), true
	}
}

// Sums shared. The gradients of batch normalisation's γ and β are
// dotChannels(g, x̂) and sumRows(g): in a CPU plan, the first also sums g
// in its pass over it, and the second copies those sums, which are the
// bits sumRows computes (the same float64 sums, row after row).

// orderForSharing returns nodes (a topological order) with each
// dotChannels(g, x) that comes after a sumRows(g) moved to just before
// it, where g and x are already computed, so that shareSums pairs them.
func orderForSharing(nodes G.Nodes) G.Nodes {
	pos := make(map[*G.Node]int, len(nodes))
	sums := make(map[*G.Node]*G.Node) // g → the first sumRows(g)
	for i, n := range nodes {
		pos[n] = i
		if n.Op() == nil {
			continue
		}
		if _, ok := kernelOf[sumRowsOp](n); ok {
			g := inputs(n)[0]
			if _, seen := sums[g]; !seen {
				sums[g] = n
			}
		}
	}
	before := make(map[*G.Node]*G.Node) // sumRows → the dotChannels moved before it
	moved := make(map[*G.Node]bool)
	for i, n := range nodes {
		if n.Op() == nil {
			continue
		}
		if _, ok := kernelOf[dotChannelsOp](n); !ok {
			continue
		}
		in := inputs(n)
		s, ok := sums[in[0]]
		if !ok || pos[s] > i || before[s] != nil || pos[in[1]] > pos[s] {
			continue
		}
		before[s], moved[n] = n, true
	}
	if len(moved) == 0 {
		return nodes
	}
	out := make(G.Nodes, 0, len(nodes))
	for _, n := range nodes {
		if moved[n] {
			continue
		}
		if d := before[n]; d != nil {
			out = append(out, d)
		}
		out = append(out, n)
	}
	return out
}

// shareSums pairs each sumRows node of p with a dotChannels node before it
// whose first argument is the same.
func (p *Plan) shareSums() {
	dots := make(map[int]int) // argument → dotChannels node
	for i, n := range p.nodes {
		if n.Op() == nil || p.fixed[i] || p.fused[i] {
			continue
		}
		if _, ok := kernelOf[dotChannelsOp](n); ok && p.native[i] == nil {
			if _, seen := dots[p.args[i][0]]; !seen {
				dots[p.args[i][0]] = i
			}
			continue
		}
		if _, ok := kernelOf[sumRowsOp](n); !ok || p.native[i] != nil {
			continue
		}
		j, ok := dots[p.args[i][0]]
		if !ok {
			continue
		}
		delete(dots, p.args[i][0]) // one sumRows per dotChannels
		sh := &sharedStats{}
		p.side = satAdd(p.side, int64(n.Shape().TotalSize())*8)
		switch n.Dtype() {
		case tensor.Float32:
			p.native[j], p.native[i] = dotSharing[float32](sh), channelsShared[float32](sh)
		case tensor.Float64:
			p.native[j], p.native[i] = dotSharing[float64](sh), channelsShared[float64](sh)
		}
	}
}

// dotSharing is dotChannelsOp's kernel also summing its first argument
// into sh.
func dotSharing[T float](sh *sharedStats) nativeKernel {
	return func(pre G.Value, in []G.Value) (G.Value, bool) {
		sh.ok = false
		a, as, err := floats[T](in[0])
		if err != nil {
			return nil, false
		}
		b, bs, err := floats[T](in[1])
		if err != nil || len(as) != 3 || !as.Eq(bs) {
			return nil, false
		}
		tasks, m, c := as[0], as[1], as[2]
		if cap(sh.vals) < tasks*c {
			sh.vals = make([]float64, tasks*c)
		}
		sh.vals = sh.vals[:tasks*c]
		out := dotChannelsKernel(reuse[T](pre, tasks*c), a, b, tasks, m, c, sh.vals)
		sh.ok = true
		return wrap(pre, out, tensor.Shape{tasks, c}), true
	}
}
