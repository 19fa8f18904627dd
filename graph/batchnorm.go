package graph

import (
	"fmt"
	"hash"
	"math"

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
// BatchNorm is built from ops whose derivatives are themselves
// differentiable (centring, per-channel sums of products and scaling), so
// it can be differentiated any number of times.
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
	xc, err := G.ApplyOp(centerOp{}, x3)
	if err != nil {
		return nil, err
	}
	ss, err := dotChannels(xc, xc)
	if err != nil {
		return nil, err
	}
	variance, err := Scale(ss, 1/float64(m))
	if err != nil {
		return nil, err
	}
	e, err := constantLike(variance, eps)
	if err != nil {
		return nil, err
	}
	// 1/√(σ²+eps) as Inverse(Sqrt(·)): gorgonia's InverseSqrt has a wrong
	// derivative (−g/(2y³) instead of −g·y³/2).
	ve, err := G.Add(variance, e)
	if err != nil {
		return nil, err
	}
	sd, err := G.Sqrt(ve)
	if err != nil {
		return nil, err
	}
	inv, err := G.Inverse(sd)
	if err != nil {
		return nil, err
	}
	scale, err := G.HadamardProd(inv, gamma)
	if err != nil {
		return nil, err
	}
	y, err := scaleChannels(xc, scale)
	if err != nil {
		return nil, err
	}
	if y, err = addChannels(y, beta); err != nil {
		return nil, err
	}
	if x.Dims() != 3 {
		return G.Reshape(y, s.Clone())
	}
	return y, nil
}

// constantLike returns the scalar constant v in n's dtype.
func constantLike(n *G.Node, v float64) (*G.Node, error) {
	switch n.Dtype() {
	case tensor.Float64:
		return G.NewConstant(v, G.In(n.Graph())), nil
	case tensor.Float32:
		return G.NewConstant(float32(v), G.In(n.Graph())), nil
	}
	return nil, fmt.Errorf("graph: dtype %v not supported", n.Dtype())
}

// The per-channel ops below work on x [tasks, m, c] and per-channel values
// s [tasks, c]. They are linear in each argument and close under
// differentiation:
//
//	center(x)            = x − mean over m          d/dx: center(g)
//	scaleChannels(x, s)  = x·s                       d/dx: scaleChannels(g, s), d/ds: dotChannels(g, x)
//	dotChannels(a, b)    = Σ_m a·b                   d/da: scaleChannels(b, g), d/db: scaleChannels(a, g)
//	addChannels(x, s)    = x + s                     d/dx: g, d/ds: SumAxis(g, 1)
//
// so batch normalisation built from them differentiates any number of
// times. Sums accumulate in float64.

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
	return G.ApplyOp(scaleChannelsOp{}, x, s)
}

// addChannels returns x [tasks, m, c] plus s [tasks, c] broadcast over m.
func addChannels(x, s *G.Node) (out *G.Node, err error) {
	defer recoverError(&err, "addChannels")
	if err := checkChannels("addChannels", x, s); err != nil {
		return nil, err
	}
	return G.ApplyOp(addChannelsOp{}, x, s)
}

// dotChannels returns Σ_m a·b for a and b [tasks, m, c]: [tasks, c].
func dotChannels(a, b *G.Node) (out *G.Node, err error) {
	defer recoverError(&err, "dotChannels")
	if a.Dims() != 3 || !a.Shape().Eq(b.Shape()) {
		return nil, &ShapeError{Op: "dotChannels", Want: "two [tasks, m, c] tensors", Got: fmt.Sprintf("%v and %v", a.Shape(), b.Shape())}
	}
	return G.ApplyOp(dotChannelsOp{}, a, b)
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

type scaleChannelsOp struct{ opBase }

func (op scaleChannelsOp) Arity() int { return 2 }
func (op scaleChannelsOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(3, a), tensorType(2, a), tensorType(3, a))
}
func (op scaleChannelsOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return in[0].(tensor.Shape).Clone(), nil
}
func (op scaleChannelsOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op scaleChannelsOp) UsePreallocDo(pre G.Value, in ...G.Value) (G.Value, error) {
	if isFloat64(in[0]) {
		return channelDo[float64](op, pre, in, scaleChannelsKernel[float64])
	}
	return channelDo[float32](op, pre, in, scaleChannelsKernel[float32])
}
func (op scaleChannelsOp) String() string        { return "ScaleChannels" }
func (op scaleChannelsOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op scaleChannelsOp) Hashcode() uint32      { return hashOf(op) }
func (op scaleChannelsOp) DiffWRT(int) []bool    { return []bool{true, true} }
func (op scaleChannelsOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dx, err := scaleChannels(grad, in[1])
	if err != nil {
		return nil, err
	}
	ds, err := dotChannels(grad, in[0])
	return G.Nodes{dx, ds}, err
}

// channelDo runs a kernel out = f(x [tasks, m, c], s [tasks, c]).
func channelDo[T float](op fmt.Stringer, pre G.Value, in []G.Value, f func(out, x, s []T, tasks, m, c int)) (G.Value, error) {
	x, s, tasks, m, c, err := channelArgs[T](op, in)
	if err != nil {
		return nil, err
	}
	out := reuse[T](pre, len(x))
	f(out, x, s, tasks, m, c)
	return newValue(out, tensor.Shape{tasks, m, c}), nil
}

func scaleChannelsKernel[T float](out, x, s []T, tasks, m, c int) {
	for t := 0; t < tasks; t++ {
		st := s[t*c : (t+1)*c]
		for r := 0; r < m; r++ {
			i := (t*m + r) * c
			src, dst := x[i:i+c], out[i:i+c]
			for j, v := range src {
				dst[j] = v * st[j]
			}
		}
	}
}

type addChannelsOp struct{ opBase }

func (op addChannelsOp) Arity() int { return 2 }
func (op addChannelsOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(3, a), tensorType(2, a), tensorType(3, a))
}
func (op addChannelsOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return in[0].(tensor.Shape).Clone(), nil
}
func (op addChannelsOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op addChannelsOp) UsePreallocDo(pre G.Value, in ...G.Value) (G.Value, error) {
	if isFloat64(in[0]) {
		return channelDo[float64](op, pre, in, addChannelsKernel[float64])
	}
	return channelDo[float32](op, pre, in, addChannelsKernel[float32])
}
func (op addChannelsOp) String() string        { return "AddChannels" }
func (op addChannelsOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op addChannelsOp) Hashcode() uint32      { return hashOf(op) }
func (op addChannelsOp) DiffWRT(int) []bool    { return []bool{true, true} }
func (op addChannelsOp) SymDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	ds, err := SumAxis(grad, 1)
	return G.Nodes{grad, ds}, err
}

func addChannelsKernel[T float](out, x, s []T, tasks, m, c int) {
	for t := 0; t < tasks; t++ {
		st := s[t*c : (t+1)*c]
		for r := 0; r < m; r++ {
			i := (t*m + r) * c
			src, dst := x[i:i+c], out[i:i+c]
			for j, v := range src {
				dst[j] = v + st[j]
			}
		}
	}
}

type dotChannelsOp struct{ opBase }

func (op dotChannelsOp) Arity() int { return 2 }
func (op dotChannelsOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(3, a), tensorType(3, a), tensorType(2, a))
}
func (op dotChannelsOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s := in[0].(tensor.Shape)
	if len(s) != 3 {
		return nil, &ShapeError{Op: op.String(), Want: "[tasks, m, c]", Got: fmt.Sprint(s)}
	}
	return tensor.Shape{s[0], s[2]}, nil
}
func (op dotChannelsOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op dotChannelsOp) UsePreallocDo(pre G.Value, in ...G.Value) (G.Value, error) {
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
			return newValue(dotChannelsKernel(reuse[float64](pre, tasks*c), a, b, tasks, m, c), shape), nil
		}
	case []float32:
		if b, ok := bd.([]float32); ok {
			return newValue(dotChannelsKernel(reuse[float32](pre, tasks*c), a, b, tasks, m, c), shape), nil
		}
	}
	return nil, fmt.Errorf("graph: %v: unsupported or mixed data %T and %T", op, ad, bd)
}
func (op dotChannelsOp) String() string        { return "DotChannels" }
func (op dotChannelsOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op dotChannelsOp) Hashcode() uint32      { return hashOf(op) }
func (op dotChannelsOp) DiffWRT(int) []bool    { return []bool{true, true} }
func (op dotChannelsOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	da, err := scaleChannels(in[1], grad)
	if err != nil {
		return nil, err
	}
	db, err := scaleChannels(in[0], grad)
	return G.Nodes{da, db}, err
}

func dotChannelsKernel[T float](out, a, b []T, tasks, m, c int) []T {
	acc := make([]float64, c)
	for t := 0; t < tasks; t++ {
		clear(acc)
		for r := 0; r < m; r++ {
			i := (t*m + r) * c
			ar, br := a[i:i+c], b[i:i+c]
			for j, v := range ar {
				acc[j] += float64(v) * float64(br[j])
			}
		}
		for j, v := range acc {
			out[t*c+j] = T(v)
		}
	}
	return out
}

// centerOp subtracts from x [tasks, m, c] its mean over m, per task and
// channel. It is an orthogonal projection, so it is its own derivative.
type centerOp struct{ opBase }

func (op centerOp) Arity() int { return 1 }
func (op centerOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(3, a), tensorType(3, a))
}
func (op centerOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return in[0].(tensor.Shape).Clone(), nil
}
func (op centerOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op centerOp) UsePreallocDo(pre G.Value, in ...G.Value) (G.Value, error) {
	data, s, err := dense(in[0])
	if err != nil {
		return nil, err
	}
	if len(s) != 3 {
		return nil, &ShapeError{Op: op.String(), Want: "[tasks, m, c]", Got: fmt.Sprint(s)}
	}
	switch x := data.(type) {
	case []float64:
		return newValue(centerKernel(reuse[float64](pre, len(x)), x, s[0], s[1], s[2]), s), nil
	case []float32:
		return newValue(centerKernel(reuse[float32](pre, len(x)), x, s[0], s[1], s[2]), s), nil
	}
	return nil, fmt.Errorf("graph: %v: unsupported data %T", op, data)
}
func (op centerOp) String() string        { return "Center" }
func (op centerOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op centerOp) Hashcode() uint32      { return hashOf(op) }
func (op centerOp) DiffWRT(int) []bool    { return []bool{true} }
func (op centerOp) SymDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(centerOp{}, grad)
	return G.Nodes{d}, err
}

func centerKernel[T float](out, x []T, tasks, m, c int) []T {
	acc := make([]float64, c)
	mean := make([]T, c)
	for t := 0; t < tasks; t++ {
		clear(acc)
		block := x[t*m*c : (t+1)*m*c]
		for r := 0; r < m; r++ {
			for j, v := range block[r*c : (r+1)*c] {
				acc[j] += float64(v)
			}
		}
		for j, v := range acc {
			mean[j] = T(v / float64(m))
		}
		ob := out[t*m*c : (t+1)*m*c]
		for r := 0; r < m; r++ {
			src, dst := block[r*c:(r+1)*c], ob[r*c:(r+1)*c]
			for j, v := range src {
				dst[j] = v - mean[j]
			}
		}
	}
	return out
}
