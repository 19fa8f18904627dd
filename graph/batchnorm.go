package graph

import (
	"fmt"
	"math"
	"runtime"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// BatchNorm normalises x [tasks, ..., c] per task and per channel (the last
// axis) with the statistics of x itself, then scales and shifts it:
//
//	y = γ·(x − μ)/√(σ² + eps) + β
//
// where μ and σ² are the mean and the biased variance over every axis but
// the first and the last (for images [tasks, n, h, w, c]: over n·h·w, as
// PyTorch's BatchNorm2d computes them in training mode), and gamma and beta
// are [tasks, c]. This is the transductive batch normalisation that MAML
// uses (Finn et al. 2017): no running statistics are kept, and the test
// batch is normalised with its own statistics. PyTorch's default eps is
// 1e-5; eps must be positive.
//
// BatchNorm is two fused ops, standardisation and a per-channel affine
// map, whose derivatives are fused ops with differentiable derivatives of
// their own, so it can be differentiated any number of times; the forward
// pass makes three passes over the data and the gradient four. Statistics
// accumulate in float64.
func BatchNorm(x, gamma, beta *G.Node, eps float64) (out *G.Node, err error) {
	defer recoverError(&err, "BatchNorm")
	if !(eps > 0) || math.IsInf(eps, 0) {
		return nil, fmt.Errorf("graph: BatchNorm: eps is %v, want a positive finite number", eps)
	}
	s := x.Shape()
	if x.Dims() < 2 {
		return nil, &ShapeError{Op: "BatchNorm", Want: "[tasks, ..., c]", Got: fmt.Sprint(s)}
	}
	tasks, c := s[0], s[len(s)-1]
	m := s.TotalSize() / (tasks * c)
	for _, p := range []struct {
		name string
		n    *G.Node
	}{{"gamma", gamma}, {"beta", beta}} {
		if !p.n.Shape().Eq(tensor.Shape{tasks, c}) {
			return nil, &ShapeError{Op: "BatchNorm " + p.name, Want: fmt.Sprint(tensor.Shape{tasks, c}), Got: fmt.Sprint(p.n.Shape())}
		}
	}
	x3 := x
	if x.Dims() != 3 {
		if x3, err = G.Reshape(x, tensor.Shape{tasks, m, c}); err != nil {
			return nil, err
		}
	}
	xhat, err := apply(normalizeOp{eps: eps}, x3)
	if err != nil {
		return nil, err
	}
	y, err := apply(affineChannelsOp{}, xhat, gamma, beta)
	if err != nil {
		return nil, err
	}
	if x.Dims() != 3 {
		return G.Reshape(y, s.Clone())
	}
	return y, nil
}

// The per-channel ops below work on x [tasks, m, c] and per-channel values
// [tasks, c]. Batch normalisation is x̂ = normalize(x), then
// y = affineChannels(x̂, γ, β). With s = 1/√(σ² + eps) and means over m,
//
//	normalize(x)             = (x − mean x)·s        d/dx: normBack(g, x̂, s), s = invStd(x);
//	                                                 for g = scaleChannels(g′, γ):
//	                                                 bnBack(g′, x̂, s, γ, sumRows(g′), dotChannels(g′, x̂))
//	invStd(x)                = s                     d/dx: scaleChannels(x̂, −u·s²/m)
//	normBack(g, x̂, s)        = s·(g − mean g − x̂·mean(g·x̂))
//	                                                 d/dg: normBack(u, x̂, s)
//	                                                 d/dx̂: −scaleChannels(g, s·mean(u·x̂)) − scaleChannels(u, s·mean(g·x̂))
//	                                                 d/ds: dotChannels(u, normBack(g, x̂, s))/s
//	bnBack(g, x̂, s, γ, a, b) = s·γ·(g − a/m − x̂·b/m)  (see bnBackOp)
//	affineChannels(x, γ, β)  = x·γ + β               d/dx: scaleChannels(g, γ), d/dγ: dotChannels(g, x), d/dβ: sumRows(g)
//	scaleChannels(x, s)      = x·s                   d/dx: scaleChannels(g, s), d/ds: dotChannels(g, x)
//	dotChannels(a, b)        = Σ_m a·b               d/da: scaleChannels(b, g), d/db: scaleChannels(a, g)
//	addChannels(x, s)        = x + s                 d/dx: g, d/ds: sumRows(g)
//	sumRows(x)               = Σ_m x                 d/dx: Broadcast(u, 1, m)
//
// (g is the upstream gradient of a first derivative, u of a second), so
// batch normalisation differentiates any number of times. Its gradient
// sums g and g·x̂ for γ and β, and bnBack reuses those sums: with the
// statistics for s, four passes over the data. Sums accumulate in
// float64.

func checkChannels(op string, x, s *G.Node) error {
	xs := x.Shape()
	if x.Dims() != 3 || !s.Shape().Eq(tensor.Shape{xs[0], xs[2]}) {
		return &ShapeError{Op: op, Want: "[tasks, m, c] and [tasks, c]", Got: fmt.Sprintf("%v and %v", xs, s.Shape())}
	}
	return nil
}

// scaleChannels returns x [tasks, m, c] times s [tasks, c] broadcast over m.
func scaleChannels(x, s *G.Node) (out *G.Node, err error) {
	defer recoverError(&err, "scaleChannels")
	if err := checkChannels("scaleChannels", x, s); err != nil {
		return nil, err
	}
	return apply(scaleChannelsOp{}, x, s)
}

// addChannels returns x [tasks, m, c] plus s [tasks, c] broadcast over m.
func addChannels(x, s *G.Node) (out *G.Node, err error) {
	defer recoverError(&err, "addChannels")
	if err := checkChannels("addChannels", x, s); err != nil {
		return nil, err
	}
	return apply(addChannelsOp{}, x, s)
}

// dotChannels returns Σ_m a·b for a and b [tasks, m, c]: [tasks, c].
func dotChannels(a, b *G.Node) (out *G.Node, err error) {
	defer recoverError(&err, "dotChannels")
	if a.Dims() != 3 || !a.Shape().Eq(b.Shape()) {
		return nil, &ShapeError{Op: "dotChannels", Want: "two [tasks, m, c] tensors", Got: fmt.Sprintf("%v and %v", a.Shape(), b.Shape())}
	}
	return apply(dotChannelsOp{}, a, b)
}

// channelArgs returns the data of x [tasks, m, c] and s [tasks, c] as
// slices of one element type, with the sizes.
func channelArgs[T float](op fmt.Stringer, in []G.Value) (x, s []T, tasks, m, c int, err error) {
	xd, xs, err := dense(in[0])
	if err != nil {
		return nil, nil, 0, 0, 0, err
	}
	sd, ss, err := dense(in[1])
	if err != nil {
		return nil, nil, 0, 0, 0, err
	}
	x, ok1 := xd.([]T)
	s, ok2 := sd.([]T)
	if !ok1 || !ok2 {
		return nil, nil, 0, 0, 0, fmt.Errorf("graph: %v: unsupported or mixed data %T and %T", op, xd, sd)
	}
	if len(xs) != 3 || !ss.Eq(tensor.Shape{xs[0], xs[2]}) {
		return nil, nil, 0, 0, 0, &ShapeError{Op: op.String(), Want: "[tasks, m, c] and [tasks, c]", Got: fmt.Sprintf("%v and %v", xs, ss)}
	}
	return x, s, xs[0], xs[1], xs[2], nil
}

// isFloat64 reports whether v holds float64s.
func isFloat64(v G.Value) bool { return v.Dtype() == tensor.Float64 }

type scaleChannelsOp struct{}

func (op scaleChannelsOp) arity() int { return 2 }
func (op scaleChannelsOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(3, a), tensorType(2, a), tensorType(3, a))
}
func (op scaleChannelsOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	return in[0].Clone(), nil
}
func (op scaleChannelsOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	if isFloat64(in[0]) {
		return channelDo[float64](op, pre, in, scaleChannelsKernel[float64])
	}
	return channelDo[float32](op, pre, in, scaleChannelsKernel[float32])
}
func (op scaleChannelsOp) String() string  { return "ScaleChannels" }
func (op scaleChannelsOp) diffWRT() []bool { return []bool{true, true} }
func (op scaleChannelsOp) symDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dx, err := scaleChannels(grad, in[1])
	if err != nil {
		return nil, err
	}
	ds, err := dotChannels(grad, in[0])
	return G.Nodes{dx, ds}, err
}

// channelDo runs a kernel out = f(x [tasks, m, c], s [tasks, c]); more
// per-channel arguments that f holds must have the shapes extra.
func channelDo[T float](op fmt.Stringer, pre G.Value, in []G.Value, f func(out, x, s []T, tasks, m, c int), extra ...tensor.Shape) (G.Value, error) {
	x, s, tasks, m, c, err := channelArgs[T](op, in)
	if err != nil {
		return nil, err
	}
	for _, e := range extra {
		if !e.Eq(tensor.Shape{tasks, c}) {
			return nil, &ShapeError{Op: op.String(), Want: fmt.Sprint(tensor.Shape{tasks, c}), Got: fmt.Sprint(e)}
		}
	}
	out := reuse[T](pre, len(x))
	f(out, x, s, tasks, m, c)
	return newValue(out, tensor.Shape{tasks, m, c}), nil
}

func scaleChannelsKernel[T float](out, x, s []T, tasks, m, c int) {
	affineKernel(out, x, s, nil, tasks, m, c)
}

type addChannelsOp struct{}

func (op addChannelsOp) arity() int { return 2 }
func (op addChannelsOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(3, a), tensorType(2, a), tensorType(3, a))
}
func (op addChannelsOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	return in[0].Clone(), nil
}
func (op addChannelsOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	if isFloat64(in[0]) {
		return channelDo[float64](op, pre, in, addChannelsKernel[float64])
	}
	return channelDo[float32](op, pre, in, addChannelsKernel[float32])
}
func (op addChannelsOp) String() string  { return "AddChannels" }
func (op addChannelsOp) diffWRT() []bool { return []bool{true, true} }
func (op addChannelsOp) symDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	ds, err := sumRows(grad)
	return G.Nodes{grad, ds}, err
}

func addChannelsKernel[T float](out, x, s []T, tasks, m, c int) {
	parallelFor(tasks*m, c, func(first, end int) {
		for r := first; r < end; r++ {
			st := s[r/m*c : (r/m+1)*c]
			src, dst := x[r*c:(r+1)*c], out[r*c:(r+1)*c]
			st, dst = st[:len(src)], dst[:len(src)]
			for j, v := range src {
				dst[j] = v + st[j]
			}
		}
	})
}

type dotChannelsOp struct{}

func (op dotChannelsOp) arity() int { return 2 }
func (op dotChannelsOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(3, a), tensorType(3, a), tensorType(2, a))
}
func (op dotChannelsOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	s := in[0]
	if len(s) != 3 {
		return nil, &ShapeError{Op: op.String(), Want: "[tasks, m, c]", Got: fmt.Sprint(s)}
	}
	return tensor.Shape{s[0], s[2]}, nil
}
func (op dotChannelsOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	ad, as, err := dense(in[0])
	if err != nil {
		return nil, err
	}
	bd, bs, err := dense(in[1])
	if err != nil {
		return nil, err
	}
	if len(as) != 3 || !as.Eq(bs) {
		return nil, &ShapeError{Op: op.String(), Want: "two [tasks, m, c] tensors", Got: fmt.Sprintf("%v and %v", as, bs)}
	}
	tasks, m, c := as[0], as[1], as[2]
	shape := tensor.Shape{tasks, c}
	switch a := ad.(type) {
	case []float64:
		if b, ok := bd.([]float64); ok {
			return wrap(pre, dotChannelsKernel(reuse[float64](pre, tasks*c), a, b, tasks, m, c, nil), shape), nil
		}
	case []float32:
		if b, ok := bd.([]float32); ok {
			return wrap(pre, dotChannelsKernel(reuse[float32](pre, tasks*c), a, b, tasks, m, c, nil), shape), nil
		}
	}
	return nil, fmt.Errorf("graph: %v: unsupported or mixed data %T and %T", op, ad, bd)
}
func (op dotChannelsOp) String() string  { return "DotChannels" }
func (op dotChannelsOp) diffWRT() []bool { return []bool{true, true} }
func (op dotChannelsOp) symDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	da, err := scaleChannels(in[1], grad)
	if err != nil {
		return nil, err
	}
	db, err := scaleChannels(in[0], grad)
	return G.Nodes{da, db}, err
}

// dotChannelsKernel computes Σ_m a·b into out; with sums not nil, it also
// writes there the [tasks, c] sums Σ_m a, as sumRowsKernel computes them
// (in float64, row after row).
func dotChannelsKernel[T float](out, a, b []T, tasks, m, c int, sums []float64) []T {
	a32, b32 := float32s(a), float32s(b)
	forChannels(tasks, m, c, func(t, c0, c1 int) {
		acc := make([]float64, c1-c0)
		var acc1 []float64
		if sums != nil {
			acc1 = sums[t*c+c0 : t*c+c1]
			clear(acc1)
		}
		lo := 0
		if a32 != nil && m > 0 {
			if lo = chLanes(c1 - c0); lo > 0 {
				end := (t*m+m-1)*c + c0 + lo - 1
				_, _ = a32[end], b32[end]
				var s1 *float64
				if acc1 != nil {
					s1 = &acc1[0]
				}
				chSums32(s1, &acc[0], &a32[t*m*c+c0], &b32[t*m*c+c0], m, c, lo)
			}
		}
		for r := t * m; r < (t+1)*m && lo < c1-c0; r++ {
			ar, br := a[r*c+c0+lo:r*c+c1], b[r*c+c0+lo:r*c+c1]
			br, acc := br[:len(ar)], acc[lo:lo+len(ar)]
			for j, v := range ar {
				acc[j] += float64(v) * float64(br[j])
			}
			if acc1 != nil {
				a1 := acc1[lo : lo+len(ar)]
				for j, v := range ar {
					a1[j] += float64(v)
				}
			}
		}
		for j, v := range acc {
			out[t*c+c0+j] = T(v)
		}
	})
	return out
}

// forChannels calls f(t, c0, c1) for every task t and every block [c0, c1)
// of a partition of the channels, concurrently when the tasks' data is
// large. Each (task, channel) pair belongs to one call, which goes through
// the m rows in order, so sums do not depend on the number of CPUs.
func forChannels(tasks, m, c int, f func(t, c0, c1 int)) {
	blocks := 1
	if w := runtime.GOMAXPROCS(0); tasks < w {
		blocks = min(c, (w+tasks-1)/tasks)
	}
	parallelFor(tasks*blocks, m*c/blocks, func(first, end int) {
		for u := first; u < end; u++ {
			t, b := u/blocks, u%blocks
			f(t, c*b/blocks, c*(b+1)/blocks)
		}
	})
}

// channelStats returns the mean and 1/√(variance + eps) over the m rows of
// task t of x [tasks, m, c] for channels [c0, c1). The sums are of the
// differences from the task's first row, in float64, so that a mean far
// from zero costs no precision.
func channelStats[T float](x []T, t, m, c, c0, c1 int, eps float64) (mean, inv []float64) {
	n := c1 - c0
	mean, inv = make([]float64, n), make([]float64, n)
	if m == 0 { // no rows: no statistics
		for j := range mean {
			mean[j], inv[j] = math.NaN(), math.NaN()
		}
		return mean, inv
	}
	shift := make([]float64, n)
	for j, v := range x[t*m*c+c0 : t*m*c+c1] {
		shift[j] = float64(v)
	}
	addStats(mean, inv, shift, x[t*m*c:(t+1)*m*c], m, c, c0)
	finishStats(mean, inv, shift, m, eps)
	return mean, inv
}

// addStats adds, for rows rows of x (stride c) and the len(shift)
// channels from c0, the differences from shift to s1 and their squares to
// s2, row after row.
func addStats[T float](s1, s2, shift []float64, x []T, rows, c, c0 int) {
	n := len(shift)
	lo := 0
	if x32 := float32s(x); x32 != nil && rows > 0 {
		if lo = chLanes(n); lo > 0 {
			_ = x32[(rows-1)*c+c0+lo-1]
			chStats32(&s1[0], &s2[0], &shift[0], &x32[c0], rows, c, lo)
		}
	}
	for r := 0; r < rows && lo < n; r++ {
		row := x[r*c+c0+lo : r*c+c0+n]
		sh, s1, s2 := shift[lo:lo+len(row)], s1[lo:lo+len(row)], s2[lo:lo+len(row)]
		for j, v := range row {
			d := float64(v) - sh[j]
			s1[j] += d
			s2[j] += d * d
		}
	}
}

// finishStats turns the sums s1 and s2 of addStats over m rows into the
// mean and 1/√(variance + eps), in place.
func finishStats(s1, s2, shift []float64, m int, eps float64) {
	for j := range s1 {
		d := s1[j] / float64(m)
		variance := max(s2[j]/float64(m)-d*d, 0)
		s1[j] = shift[j] + d
		s2[j] = 1 / math.Sqrt(variance+eps)
	}
}

// normalizeOp standardises x [tasks, m, c] per task and channel:
// (x − mean)/√(variance + eps).
type normalizeOp struct {
	eps float64
}

func (op normalizeOp) arity() int { return 1 }
func (op normalizeOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(3, a), tensorType(3, a))
}
func (op normalizeOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	s := in[0]
	if len(s) != 3 {
		return nil, &ShapeError{Op: op.String(), Want: "[tasks, m, c]", Got: fmt.Sprint(s)}
	}
	return s.Clone(), nil
}
func (op normalizeOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	data, s, err := dense(in[0])
	if err != nil {
		return nil, err
	}
	if _, err := op.outShape(s); err != nil {
		return nil, err
	}
	switch x := data.(type) {
	case []float64:
		return wrap(pre, normalizeKernel(reuse[float64](pre, len(x)), x, s[0], s[1], s[2], op.eps, nil), s), nil
	case []float32:
		return wrap(pre, normalizeKernel(reuse[float32](pre, len(x)), x, s[0], s[1], s[2], op.eps, nil), s), nil
	}
	return nil, fmt.Errorf("graph: %v: unsupported data %T", op, data)
}
func (op normalizeOp) String() string  { return fmt.Sprintf("Normalize{eps=%v}", op.eps) }
func (op normalizeOp) diffWRT() []bool { return []bool{true} }
func (op normalizeOp) symDiff(in G.Nodes, xhat, grad *G.Node) (G.Nodes, error) {
	s, err := apply(invStdOp(op), in[0])
	if err != nil {
		return nil, err
	}
	if g, gamma, ok := scaledChannels(grad); ok {
		// grad = g·γ, as affineChannelsOp's derivative gives it: bnBack
		// takes g, γ and the sums Σg and Σg·x̂, the same nodes as
		// affineChannelsOp's derivatives for γ and β.
		a, err := sumRows(g)
		if err != nil {
			return nil, err
		}
		b, err := dotChannels(g, xhat)
		if err != nil {
			return nil, err
		}
		d, err := apply(bnBackOp{}, g, xhat, s, gamma, a, b)
		return G.Nodes{d}, err
	}
	d, err := apply(normBackOp{}, grad, xhat, s)
	return G.Nodes{d}, err
}

// scaledChannels returns x and s when n is scaleChannels(x, s).
func scaledChannels(n *G.Node) (x, s *G.Node, ok bool) {
	if n.Op() == nil {
		return nil, nil, false
	}
	if kind, _, _ := describeOp(n.Op()); kind != "scalechannels" {
		return nil, nil, false
	}
	in := inputs(n)
	return in[0], in[1], true
}

// normalizeKernel standardises x into out; with invs not nil, it also
// writes there the [tasks, c] values of 1/√(variance + eps), as
// invStdKernel computes them.
func normalizeKernel[T float](out, x []T, tasks, m, c int, eps float64, invs []float64) []T {
	forChannels(tasks, m, c, func(t, c0, c1 int) {
		mean, inv := channelStats(x, t, m, c, c0, c1, eps)
		if invs != nil {
			copy(invs[t*c+c0:t*c+c1], inv)
		}
		normRows(out[t*m*c:(t+1)*m*c], x[t*m*c:(t+1)*m*c], m, c, c0, mean, inv)
	})
	return out
}

// normRows sets rows rows of out to those of x (stride c) standardised
// with mean and inv, for the len(mean) channels from c0.
func normRows[T float](out, x []T, rows, c, c0 int, mean, inv []float64) {
	n := len(mean)
	o32, x32 := float32s(out), float32s(x)
	lo := 0
	if x32 != nil && rows > 0 {
		if lo = chLanes(n); lo > 0 {
			end := (rows-1)*c + c0 + lo - 1
			_, _ = o32[end], x32[end]
			chNorm32(&o32[c0], &x32[c0], &mean[0], &inv[0], rows, c, lo)
		}
	}
	for r := 0; r < rows && lo < n; r++ {
		src, dst := x[r*c+c0+lo:r*c+c0+n], out[r*c+c0+lo:r*c+c0+n]
		dst, mu, is := dst[:len(src)], mean[lo:lo+len(src)], inv[lo:lo+len(src)]
		for j, v := range src {
			dst[j] = T((float64(v) - mu[j]) * is[j])
		}
	}
}

// invStdOp returns 1/√(variance + eps) of x [tasks, m, c] per task and
// channel: [tasks, c].
type invStdOp struct {
	eps float64
}

func (op invStdOp) arity() int { return 1 }
func (op invStdOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(3, a), tensorType(2, a))
}
func (op invStdOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	s := in[0]
	if len(s) != 3 {
		return nil, &ShapeError{Op: op.String(), Want: "[tasks, m, c]", Got: fmt.Sprint(s)}
	}
	return tensor.Shape{s[0], s[2]}, nil
}
func (op invStdOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	data, s, err := dense(in[0])
	if err != nil {
		return nil, err
	}
	shape, err := op.outShape(s)
	if err != nil {
		return nil, err
	}
	switch x := data.(type) {
	case []float64:
		return wrap(pre, invStdKernel(reuse[float64](pre, shape.TotalSize()), x, s[0], s[1], s[2], op.eps), shape), nil
	case []float32:
		return wrap(pre, invStdKernel(reuse[float32](pre, shape.TotalSize()), x, s[0], s[1], s[2], op.eps), shape), nil
	}
	return nil, fmt.Errorf("graph: %v: unsupported data %T", op, data)
}
func (op invStdOp) String() string  { return fmt.Sprintf("InvStd{eps=%v}", op.eps) }
func (op invStdOp) diffWRT() []bool { return []bool{true} }

// SymDiff: ∂s/∂x = −s³·(x − mean)/m = −s²·x̂/m.
func (op invStdOp) symDiff(in G.Nodes, s, grad *G.Node) (G.Nodes, error) {
	xhat, err := apply(normalizeOp(op), in[0])
	if err != nil {
		return nil, err
	}
	s2, err := G.HadamardProd(s, s)
	if err != nil {
		return nil, err
	}
	k, err := G.HadamardProd(grad, s2)
	if err != nil {
		return nil, err
	}
	if k, err = Scale(k, -1/float64(in[0].Shape()[1])); err != nil {
		return nil, err
	}
	d, err := scaleChannels(xhat, k)
	return G.Nodes{d}, err
}

func invStdKernel[T float](out, x []T, tasks, m, c int, eps float64) []T {
	forChannels(tasks, m, c, func(t, c0, c1 int) {
		_, inv := channelStats(x, t, m, c, c0, c1, eps)
		for j, v := range inv {
			out[t*c+c0+j] = T(v)
		}
	})
	return out
}

// normBackOp is normalizeOp's derivative: for the upstream gradient g, the
// standardised x̂ and s = 1/√(variance + eps), all per task and channel,
// s·(g − mean g − x̂·mean(g·x̂)). It is linear and self-adjoint in g.
type normBackOp struct{}

func (op normBackOp) arity() int { return 3 }
func (op normBackOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(3, a), tensorType(3, a), tensorType(2, a), tensorType(3, a))
}
func (op normBackOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	return in[0].Clone(), nil
}
func (op normBackOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	gd, gs, err := dense(in[0])
	if err != nil {
		return nil, err
	}
	xd, xs, err := dense(in[1])
	if err != nil {
		return nil, err
	}
	sd, ss, err := dense(in[2])
	if err != nil {
		return nil, err
	}
	if len(gs) != 3 || !gs.Eq(xs) || !ss.Eq(tensor.Shape{gs[0], gs[2]}) {
		return nil, &ShapeError{Op: op.String(), Want: "[tasks, m, c] twice and [tasks, c]", Got: fmt.Sprintf("%v, %v and %v", gs, xs, ss)}
	}
	switch g := gd.(type) {
	case []float64:
		x, ok1 := xd.([]float64)
		s, ok2 := sd.([]float64)
		if ok1 && ok2 {
			return wrap(pre, normBackKernel(reuse[float64](pre, len(g)), g, x, s, gs[0], gs[1], gs[2]), gs), nil
		}
	case []float32:
		x, ok1 := xd.([]float32)
		s, ok2 := sd.([]float32)
		if ok1 && ok2 {
			return wrap(pre, normBackKernel(reuse[float32](pre, len(g)), g, x, s, gs[0], gs[1], gs[2]), gs), nil
		}
	}
	return nil, fmt.Errorf("graph: %v: unsupported or mixed data %T, %T and %T", op, gd, xd, sd)
}
func (op normBackOp) String() string  { return "NormBack" }
func (op normBackOp) diffWRT() []bool { return []bool{true, true, true} }
func (op normBackOp) symDiff(in G.Nodes, out, u *G.Node) (G.Nodes, error) {
	g, xhat, s := in[0], in[1], in[2]
	m := float64(g.Shape()[1])
	dg, err := apply(normBackOp{}, u, xhat, s)
	if err != nil {
		return nil, err
	}
	// d/dx̂ of −s·x̂·mean(g·x̂): −s·(g·mean(u·x̂) + u·mean(g·x̂)).
	coef := func(v *G.Node) (*G.Node, error) { // −s·mean(v·x̂)
		d, err := dotChannels(v, xhat)
		if err != nil {
			return nil, err
		}
		if d, err = G.HadamardProd(d, s); err != nil {
			return nil, err
		}
		return Scale(d, -1/m)
	}
	cu, err := coef(u)
	if err != nil {
		return nil, err
	}
	cg, err := coef(g)
	if err != nil {
		return nil, err
	}
	a, err := scaleChannels(g, cu)
	if err != nil {
		return nil, err
	}
	b, err := scaleChannels(u, cg)
	if err != nil {
		return nil, err
	}
	dx, err := G.Add(a, b)
	if err != nil {
		return nil, err
	}
	// The output is linear in s: d/ds = Σ_m u·out / s.
	ds, err := dotChannels(u, out)
	if err != nil {
		return nil, err
	}
	if ds, err = G.HadamardDiv(ds, s); err != nil {
		return nil, err
	}
	return G.Nodes{dg, dx, ds}, nil
}

func normBackKernel[T float](out, g, x, s []T, tasks, m, c int) []T {
	g32, x32 := float32s(g), float32s(x)
	forChannels(tasks, m, c, func(t, c0, c1 int) {
		n := c1 - c0
		mg, mgx := make([]float64, n), make([]float64, n)
		lo := 0
		if g32 != nil && m > 0 {
			if lo = chLanes(n); lo > 0 {
				end := (t*m+m-1)*c + c0 + lo - 1
				_, _ = g32[end], x32[end]
				chSums32(&mg[0], &mgx[0], &g32[t*m*c+c0], &x32[t*m*c+c0], m, c, lo)
			}
		}
		for r := t * m; r < (t+1)*m && lo < n; r++ {
			gr, xr := g[r*c+c0+lo:r*c+c1], x[r*c+c0+lo:r*c+c1]
			xr, a, b := xr[:len(gr)], mg[lo:lo+len(gr)], mgx[lo:lo+len(gr)]
			for j, v := range gr {
				a[j] += float64(v)
				b[j] += float64(v) * float64(xr[j])
			}
		}
		for j := range mg {
			mg[j] /= float64(m)
			mgx[j] /= float64(m)
		}
		sc := make([]float64, n)
		for j, v := range s[t*c+c0 : t*c+c1] {
			sc[j] = float64(v)
		}
		normBackRows(out, g, x, t, m, c, c0, sc, mg, mgx)
	})
	return out
}

// normBackRows writes sc·(g − a − x·b) into out for task t and channels
// c0 to c0+len(sc), with per-channel sc, a and b.
func normBackRows[T float](out, g, x []T, t, m, c, c0 int, sc, a, b []float64) {
	n := len(sc)
	o32, g32, x32 := float32s(out), float32s(g), float32s(x)
	lo := 0
	if g32 != nil && m > 0 {
		if lo = chLanes(n); lo > 0 {
			end := (t*m+m-1)*c + c0 + lo - 1
			_, _, _ = o32[end], g32[end], x32[end]
			chNormBack32(&o32[t*m*c+c0], &g32[t*m*c+c0], &x32[t*m*c+c0], &sc[0], &a[0], &b[0], m, c, lo)
		}
	}
	for r := t * m; r < (t+1)*m && lo < n; r++ {
		gr, xr, dst := g[r*c+c0+lo:r*c+c0+n], x[r*c+c0+lo:r*c+c0+n], out[r*c+c0+lo:r*c+c0+n]
		xr, dst, st, a, b := xr[:len(gr)], dst[:len(gr)], sc[lo:lo+len(gr)], a[lo:lo+len(gr)], b[lo:lo+len(gr)]
		for j, v := range gr {
			dst[j] = T(st[j] * (float64(v) - a[j] - float64(xr[j])*b[j]))
		}
	}
}

// bnBackOp is normBackOp of scaleChannels(g, γ) computed from g and the
// sums that affineChannelsOp's derivative takes anyway: for g and x̂
// [tasks, m, c] and s, γ, a = Σ_m g and b = Σ_m g·x̂ per task and channel,
//
//	bnBack(g, x̂, s, γ, a, b) = s·γ·(g − a/m − x̂·b/m) = normBack(g·γ, x̂, s)
//
// in one pass over the data, where normBack of the scaled gradient takes
// three (scaling, sums, output).
type bnBackOp struct{}

func (op bnBackOp) arity() int { return 6 }
func (op bnBackOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(3, a), tensorType(3, a), tensorType(2, a), tensorType(2, a), tensorType(2, a), tensorType(2, a), tensorType(3, a))
}
func (op bnBackOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	if len(in) != 6 || len(in[0]) != 3 || !in[0].Eq(in[1]) {
		return nil, &ShapeError{Op: op.String(), Want: "[tasks, m, c] twice and [tasks, c] four times", Got: fmt.Sprint(in)}
	}
	for _, s := range in[2:] {
		if !s.Eq(tensor.Shape{in[0][0], in[0][2]}) {
			return nil, &ShapeError{Op: op.String(), Want: "[tasks, m, c] twice and [tasks, c] four times", Got: fmt.Sprint(in)}
		}
	}
	return in[0].Clone(), nil
}
func (op bnBackOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	shapes := make([]tensor.Shape, len(in))
	data := make([]any, len(in))
	for i, v := range in {
		d, s, err := dense(v)
		if err != nil {
			return nil, err
		}
		data[i], shapes[i] = d, s
	}
	s, err := op.outShape(shapes...)
	if err != nil {
		return nil, err
	}
	if out, ok := bnBackTyped[float64](pre, data, s); ok {
		return out, nil
	}
	if out, ok := bnBackTyped[float32](pre, data, s); ok {
		return out, nil
	}
	return nil, fmt.Errorf("graph: %v: unsupported or mixed data %T, %T, %T, %T, %T and %T", op, data[0], data[1], data[2], data[3], data[4], data[5])
}

// bnBackTyped runs bnBackKernel when every argument is a []T.
func bnBackTyped[T float](pre G.Value, data []any, s tensor.Shape) (G.Value, bool) {
	var a [6][]T
	for i, d := range data {
		v, ok := d.([]T)
		if !ok {
			return nil, false
		}
		a[i] = v
	}
	out := reuse[T](pre, s.TotalSize())
	bnBackKernel(out, a[0], a[1], a[2], a[3], a[4], a[5], s[0], s[1], s[2])
	return wrap(pre, out, s), true
}

func (op bnBackOp) String() string  { return "BNBack" }
func (op bnBackOp) diffWRT() []bool { return []bool{true, true, true, true, true, true} }

// SymDiff: with k = s·γ the output is k·(g − a/m − x̂·b/m), linear in g,
// x̂, k, a and b separately; q = Σ_m u·(g − a/m − x̂·b/m) is its
// derivative along k.
func (op bnBackOp) symDiff(in G.Nodes, _, u *G.Node) (G.Nodes, error) {
	g, xhat, s, gamma, a, b := in[0], in[1], in[2], in[3], in[4], in[5]
	m := float64(g.Shape()[1])
	k, err := G.HadamardProd(s, gamma)
	if err != nil {
		return nil, err
	}
	dg, err := scaleChannels(u, k)
	if err != nil {
		return nil, err
	}
	su, err := sumRows(u)
	if err != nil {
		return nil, err
	}
	ux, err := dotChannels(u, xhat)
	if err != nil {
		return nil, err
	}
	ug, err := dotChannels(u, g)
	if err != nil {
		return nil, err
	}
	mk, err := Scale(k, -1/m) // −k/m
	if err != nil {
		return nil, err
	}
	cx, err := G.HadamardProd(mk, b)
	if err != nil {
		return nil, err
	}
	dx, err := scaleChannels(u, cx)
	if err != nil {
		return nil, err
	}
	ta, err := G.HadamardProd(a, su)
	if err != nil {
		return nil, err
	}
	tb, err := G.HadamardProd(b, ux)
	if err != nil {
		return nil, err
	}
	t, err := G.Add(ta, tb)
	if err != nil {
		return nil, err
	}
	if t, err = Scale(t, -1/m); err != nil {
		return nil, err
	}
	q, err := G.Add(ug, t)
	if err != nil {
		return nil, err
	}
	ds, err := G.HadamardProd(gamma, q)
	if err != nil {
		return nil, err
	}
	dgamma, err := G.HadamardProd(s, q)
	if err != nil {
		return nil, err
	}
	da, err := G.HadamardProd(mk, su)
	if err != nil {
		return nil, err
	}
	db, err := G.HadamardProd(mk, ux)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dg, dx, ds, dgamma, da, db}, nil
}

func bnBackKernel[T float](out, g, x, s, gamma, a, b []T, tasks, m, c int) {
	forChannels(tasks, m, c, func(t, c0, c1 int) {
		n := c1 - c0
		sc, ma, mb := make([]float64, n), make([]float64, n), make([]float64, n)
		for j := range sc {
			i := t*c + c0 + j
			sc[j] = float64(s[i]) * float64(gamma[i])
			ma[j] = float64(a[i]) / float64(m)
			mb[j] = float64(b[i]) / float64(m)
		}
		normBackRows(out, g, x, t, m, c, c0, sc, ma, mb)
	})
}

// affineChannelsOp returns x·γ + β for x [tasks, m, c] and γ, β [tasks, c].
type affineChannelsOp struct{}

func (op affineChannelsOp) arity() int { return 3 }
func (op affineChannelsOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(3, a), tensorType(2, a), tensorType(2, a), tensorType(3, a))
}
func (op affineChannelsOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	return in[0].Clone(), nil
}
func (op affineChannelsOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	bd, bs, err := dense(in[2])
	if err != nil {
		return nil, err
	}
	if isFloat64(in[0]) {
		b, ok := bd.([]float64)
		if !ok {
			return nil, fmt.Errorf("graph: %v: mixed data %T", op, bd)
		}
		return channelDo(op, pre, in[:2], func(out, x, s []float64, tasks, m, c int) { affineKernel(out, x, s, b, tasks, m, c) }, bs)
	}
	b, ok := bd.([]float32)
	if !ok {
		return nil, fmt.Errorf("graph: %v: mixed data %T", op, bd)
	}
	return channelDo(op, pre, in[:2], func(out, x, s []float32, tasks, m, c int) { affineKernel(out, x, s, b, tasks, m, c) }, bs)
}
func (op affineChannelsOp) String() string  { return "AffineChannels" }
func (op affineChannelsOp) diffWRT() []bool { return []bool{true, true, true} }
func (op affineChannelsOp) symDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dx, err := scaleChannels(grad, in[1])
	if err != nil {
		return nil, err
	}
	dg, err := dotChannels(grad, in[0])
	if err != nil {
		return nil, err
	}
	db, err := sumRows(grad)
	return G.Nodes{dx, dg, db}, err
}

// affineKernel computes x·γ + β per task and channel, or x·γ for b nil.
func affineKernel[T float](out, x, s, b []T, tasks, m, c int) {
	parallelFor(tasks*m, c, func(first, end int) {
		for r := first; r < end; {
			t := r / m
			e := min(end, (t+1)*m)
			var bt []T
			if b != nil {
				bt = b[t*c : (t+1)*c]
			}
			affineRows(out, x, s[t*c:(t+1)*c], bt, r, e, c)
			r = e
		}
	})
}

// affineRows computes rows r to e of x [·, c] into out, x·s + b, with the
// per-channel s and b (nil: none) of the rows' task.
func affineRows[T float](out, x, s, b []T, r, e, c int) {
	lo := 0
	o32, x32, s32, b32 := float32s(out), float32s(x), float32s(s), float32s(b)
	if x32 != nil {
		lo = chLanes32(c)
	}
	if lo > 0 && e > r {
		_, _ = o32[e*c-1], x32[e*c-1]
		var bp *float32
		if b != nil {
			bp = &b32[0]
		}
		chAffine32(&o32[r*c], &x32[r*c], &s32[0], bp, e-r, c, lo)
	}
	if lo < c {
		st := s[lo:c]
		for ; r < e; r++ {
			src, dst := x[r*c+lo:(r+1)*c], out[r*c+lo:(r+1)*c]
			st, dst := st[:len(src)], dst[:len(src)]
			if b == nil {
				for j, v := range src {
					dst[j] = v * st[j]
				}
				continue
			}
			bt := b[lo:c]
			bt = bt[:len(src)]
			for j, v := range src {
				dst[j] = v*st[j] + bt[j]
			}
		}
	}
}

// sumRows sums x [tasks, m, c] over m: [tasks, c]. It is SumAxis(x, 1)
// split over the CPUs.
func sumRows(x *G.Node) (out *G.Node, err error) {
	defer recoverError(&err, "sumRows")
	if x.Dims() != 3 {
		return nil, &ShapeError{Op: "sumRows", Want: "[tasks, m, c]", Got: fmt.Sprint(x.Shape())}
	}
	return apply(sumRowsOp{}, x)
}

type sumRowsOp struct{}

func (op sumRowsOp) arity() int { return 1 }
func (op sumRowsOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(3, a), tensorType(2, a))
}
func (op sumRowsOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	s := in[0]
	if len(s) != 3 {
		return nil, &ShapeError{Op: op.String(), Want: "[tasks, m, c]", Got: fmt.Sprint(s)}
	}
	return tensor.Shape{s[0], s[2]}, nil
}
func (op sumRowsOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	data, s, err := dense(in[0])
	if err != nil {
		return nil, err
	}
	shape, err := op.outShape(s)
	if err != nil {
		return nil, err
	}
	switch x := data.(type) {
	case []float64:
		return wrap(pre, sumRowsKernel(reuse[float64](pre, shape.TotalSize()), x, s[0], s[1], s[2]), shape), nil
	case []float32:
		return wrap(pre, sumRowsKernel(reuse[float32](pre, shape.TotalSize()), x, s[0], s[1], s[2]), shape), nil
	}
	return nil, fmt.Errorf("graph: %v: unsupported data %T", op, data)
}
func (op sumRowsOp) String() string  { return "SumRows" }
func (op sumRowsOp) diffWRT() []bool { return []bool{true} }
func (op sumRowsOp) symDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := Broadcast(grad, 1, in[0].Shape()[1])
	return G.Nodes{d}, err
}

func sumRowsKernel[T float](out, x []T, tasks, m, c int) []T {
	x32 := float32s(x)
	forChannels(tasks, m, c, func(t, c0, c1 int) {
		acc := make([]float64, c1-c0)
		lo := 0
		if x32 != nil && m > 0 {
			if lo = wideLanes(c1 - c0); lo > 0 {
				_ = x32[(t*m+m-1)*c+c0+lo-1]
				chSumRows32(&acc[0], &x32[t*m*c+c0], m, c, lo)
			}
		}
		for r := t * m; r < (t+1)*m && lo < c1-c0; r++ {
			row := x[r*c+c0+lo : r*c+c1]
			a := acc[lo : lo+len(row)]
			for j, v := range row {
				a[j] += float64(v)
			}
		}
		for j, v := range acc {
			out[t*c+c0+j] = T(v)
		}
	})
	return out
}

// float32s returns x as []float32 when T is float32, else nil.
func float32s[T float](x []T) []float32 {
	s, ok := asF32(x)
	if !ok {
		return nil
	}
	return s
}
