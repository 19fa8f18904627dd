package graph

import (
	"fmt"
	"math"
	"sync"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// MaxPool2D returns the maximum of each k×k window of images x [tasks, n,
// h, w, c] (channels last), windows at stride k without padding: [tasks,
// n, h/k, w/k, c], rounding down, so trailing rows and columns that do not
// fill a window are dropped (PyTorch's default). Within a window the first
// maximum in row-major order wins ties; a NaN wins over any number, so NaNs
// propagate as in PyTorch.
//
// The positions of the maxima are computed once, as an integer node, and
// the pooled values are gathered from x at those positions. The derivative
// of the gather scatters the gradient to the same positions, and the
// derivative of that scatter gathers again: max-pooling is linear in x
// once the positions are fixed, so its derivatives of every order are
// exact wherever the maxima are unique.
func MaxPool2D(x *G.Node, k int) (out *G.Node, err error) {
	defer recoverError(&err, "MaxPool2D")
	s := x.Shape()
	if x.Dims() != 5 {
		return nil, &ShapeError{Op: "MaxPool2D", Want: "images [tasks, n, h, w, c]", Got: fmt.Sprint(s)}
	}
	if k < 1 || s[2] < k || s[3] < k {
		return nil, &ShapeError{Op: "MaxPool2D", Want: fmt.Sprintf("a window size in [1, %d]", min(s[2], s[3])), Got: fmt.Sprint(k)}
	}
	idx, err := apply(poolArgMaxOp{image: image{n: s[1], h: s[2], w: s[3], c: s[4]}, k: k}, x)
	if err != nil {
		return nil, err
	}
	return apply(gatherOp{from: s.Clone(), dims: 5, pool: k}, x, idx)
}

// poolArgMaxOp returns, for every k×k window at stride k of images [tasks,
// n, h, w, c] and every channel, the flat index into x of the window's
// maximum: an int tensor [tasks, n, h/k, w/k, c].
type poolArgMaxOp struct {
	image
	k int
}

func (op poolArgMaxOp) arity() int { return 1 }
func (op poolArgMaxOp) typ() hm.Type {
	return hm.NewFnType(tensorType(5, hm.TypeVariable('a')), tensorType(5, tensor.Int))
}
func (op poolArgMaxOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	s := in[0]
	if len(s) != 5 || !s.Eq(op.shape(s[0])) {
		return nil, &ShapeError{Op: op.String(), Want: fmt.Sprintf("[tasks %d %d %d %d]", op.n, op.h, op.w, op.c), Got: fmt.Sprint(s)}
	}
	return tensor.Shape{s[0], op.n, op.h / op.k, op.w / op.k, op.c}, nil
}
func (op poolArgMaxOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	data, s, err := dense(in[0])
	if err != nil {
		return nil, err
	}
	shape, err := op.outShape(s)
	if err != nil {
		return nil, err
	}
	idx := reuseInts(pre, shape.TotalSize())
	imgs := s[0] * op.n
	switch x := data.(type) {
	case []float64:
		poolArgMax(idx, nil, x, imgs, op.image, op.k)
	case []float32:
		poolArgMax(idx, nil, x, imgs, op.image, op.k)
	default:
		return nil, fmt.Errorf("graph: %v: unsupported data %T", op, data)
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(idx)), nil
}
func (op poolArgMaxOp) String() string {
	return fmt.Sprintf("PoolArgMax{n=%d, h=%d, w=%d, c=%d, k=%d}", op.n, op.h, op.w, op.c, op.k)
}

// reuseInts is reuse for int buffers.
func reuseInts(prealloc G.Value, n int) []int {
	if t, ok := prealloc.(*tensor.Dense); ok && !t.IsView() {
		if d, ok := t.Data().([]int); ok && len(d) == n {
			return d
		}
	}
	return make([]int, n)
}

// poolArgMax writes the arg-max indices of x's windows into idx and,
// unless vals is nil, the maxima into vals.
func poolArgMax[T float](idx []int, vals, x []T, imgs int, im image, k int) {
	if x32, ok := any(x).([]float32); ok && k == 2 {
		v32, _ := any(vals).([]float32)
		poolArgMax2(idx, v32, x32, imgs, im)
		return
	}
	ho, wo, c := im.h/k, im.w/k, im.c
	parallelFor(imgs, im.h*im.w*c, func(first, end int) {
		best := make([]T, c)
		for i := first; i < end; i++ {
			r := i * ho * wo
			for oh := 0; oh < ho; oh++ {
				for ow := 0; ow < wo; ow++ {
					at := idx[r*c : (r+1)*c]
					r++
					windowMax(at, best, x, ((i*im.h+oh*k)*im.w+ow*k)*c, k, c, im.w*c)
					if vals != nil {
						copy(vals[(r-1)*c:r*c], best)
					}
				}
			}
		}
	})
}

// windowMax finds the maximum of each of c channels over a k×k window
// whose row kh, column kw starts at x[start + kh·wc + kw·c]: its position
// in at and its value in best. A NaN is larger than any number, and of
// equal values the first (in row order) is kept.
func windowMax[T float](at []int, best, x []T, start, k, c, wc int) {
	for kh := range k {
		for kw := range k {
			base := start + kh*wc + kw*c
			row := x[base : base+c]
			if kh == 0 && kw == 0 {
				copy(best, row)
				for j := range at {
					at[j] = base + j
				}
				continue
			}
			for j, v := range row {
				if v > best[j] || v != v && best[j] == best[j] {
					best[j], at[j] = v, base+j
				}
			}
		}
	}
}

// poolArgMax2 is poolArgMax for 2×2 windows of float32 images, the
// convolutional networks' case. It compares integer keys that order the
// floats as poolArgMax does, with masks instead of branches: which value of
// a window is largest is a coin toss, and mispredicted branches cost more
// than the comparisons.
func poolArgMax2(idx []int, vals, x []float32, imgs int, im image) {
	ho, wo, c := im.h/2, im.w/2, im.c
	if wo == 0 || c == 0 {
		return
	}
	parallelFor(imgs, im.h*im.w*c, func(first, end int) {
		for i := first; i < end; i++ {
			for oh := 0; oh < ho; oh++ {
				r := (i*ho + oh) * wo
				b0 := (i*im.h + 2*oh) * im.w * c // the first window's top left
				at := idx[r*c : (r+wo)*c]
				var v []float32
				if vals != nil {
					v = vals[r*c : (r+wo)*c]
				}
				poolRow2(at, v, x, b0, wo, c, im.w*c, 0)
			}
		}
	})
}

// poolRow2Go is poolRow2 in Go: window q's top left value of channel j is
// x[b0 + 2·q·c + j], its top right c elements on, its bottom row wc on.
func poolRow2Go(at []int, vals, x []float32, b0, n, c, wc, off int) {
	poolRowKeys(at, x, b0, n, c, wc)
	for j, a := range at[:n*c] {
		if vals != nil {
			vals[j] = x[a]
		}
		at[j] = a + off
	}
}

// poolRowKeys is poolRow2Go's arg max, by orderKey.
func poolRowKeys(at []int, x []float32, b0, n, c, wc int) {
	for q := range n {
		b0, at := b0+2*q*c, at[q*c:(q+1)*c]
		b2 := b0 + wc // bottom left; bottom right is b2+c
		x0, x1 := x[b0:b0+c], x[b0+c:b0+2*c]
		x2, x3 := x[b2:b2+c], x[b2+c:b2+2*c]
		x1, x2, x3, at = x1[:len(x0)], x2[:len(x0)], x3[:len(x0)], at[:len(x0)]
		for j, v := range x0 {
			k0, k1, k2, k3 := orderKey(v), orderKey(x1[j]), orderKey(x2[j]), orderKey(x3[j])
			m := (k0 - k1) >> 63 // all ones if k1 > k0: the later one wins only if larger
			ka, ia := k0+(k1-k0)&m, b0+j+c&int(m)
			m = (k2 - k3) >> 63
			kb, ib := k2+(k3-k2)&m, b2+j+c&int(m)
			m = (ka - kb) >> 63
			at[j] = ia + (ib-ia)&int(m)
		}
	}
}

// orderKey maps a float32 to an integer that orders as the floats do,
// with −0 equal to +0 and every NaN above +Inf and equal to one another.
// Keys lie within ±2⁴⁰, so differences of keys do not overflow.
func orderKey(v float32) int64 {
	b := int64(int32(math.Float32bits(v)))
	mag := b & 0x7fffffff
	sign := b >> 63
	key := (mag ^ sign) - sign // sign and magnitude to two's complement
	nan := (0x7f800000 - mag) >> 63
	return key&^nan | nan&(1<<40)
}

// gatherOp returns x[idx] for an int tensor idx of flat indices into x:
// out has idx's shape. Its derivative with respect to x is scatterAddOp.
type gatherOp struct {
	from tensor.Shape // x's shape
	dims int          // idx's number of axes
	// pool is MaxPool2D's window size k when idx holds a position in each
	// k×k window (x is images [tasks, n, h, w, c], idx [tasks, n, h/k,
	// w/k, c]), which lets scatterAddOp fill its result one band of k
	// rows at a time (scatterPool); 0 otherwise.
	pool int
}

func (op gatherOp) arity() int { return 2 }
func (op gatherOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(len(op.from), a), tensorType(op.dims, tensor.Int), tensorType(op.dims, a))
}
func (op gatherOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	return in[1].Clone(), nil
}
func (op gatherOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	data, _, err := dense(in[0])
	if err != nil {
		return nil, err
	}
	id, is, err := dense(in[1])
	if err != nil {
		return nil, err
	}
	idx, ok := id.([]int)
	if !ok {
		return nil, fmt.Errorf("graph: %v: indices are %T, want []int", op, id)
	}
	switch x := data.(type) {
	case []float64:
		out, err := gather(reuse[float64](pre, len(idx)), x, idx)
		return newValue(out, is), err
	case []float32:
		out, err := gather(reuse[float32](pre, len(idx)), x, idx)
		return newValue(out, is), err
	}
	return nil, fmt.Errorf("graph: %v: unsupported data %T", op, data)
}
func (op gatherOp) String() string {
	if op.pool > 0 {
		return fmt.Sprintf("Gather{from=%v, dims=%d, pool=%d}", op.from, op.dims, op.pool)
	}
	return fmt.Sprintf("Gather{from=%v, dims=%d}", op.from, op.dims)
}
func (op gatherOp) diffWRT() []bool { return []bool{true, false} }
func (op gatherOp) symDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := apply(scatterAddOp(op), grad, in[1])
	return G.Nodes{d, nil}, err
}

func gather[T float](out, x []T, idx []int) ([]T, error) {
	var mu sync.Mutex
	bad := -1 // the first position holding an index outside x
	parallelFor(len(idx), 1, func(first, end int) {
		for j, i := range idx[first:end] {
			if uint(i) >= uint(len(x)) {
				mu.Lock()
				if bad < 0 || first+j < bad {
					bad = first + j
				}
				mu.Unlock()
				return
			}
			out[first+j] = x[i]
		}
	})
	if bad >= 0 {
		return nil, fmt.Errorf("graph: Gather: index %d at position %d is outside [0, %d)", idx[bad], bad, len(x))
	}
	return out, nil
}

// scatterAddOp is gatherOp's adjoint: a tensor of shape from, zero but for
// out[idx[j]] += g[j].
type scatterAddOp struct {
	from tensor.Shape // the output's shape
	dims int          // idx's number of axes
	pool int          // as in gatherOp
}

func (op scatterAddOp) arity() int { return 2 }
func (op scatterAddOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(op.dims, a), tensorType(op.dims, tensor.Int), tensorType(len(op.from), a))
}
func (op scatterAddOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	return op.from.Clone(), nil
}
func (op scatterAddOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	data, gs, err := dense(in[0])
	if err != nil {
		return nil, err
	}
	id, is, err := dense(in[1])
	if err != nil {
		return nil, err
	}
	idx, ok := id.([]int)
	if !ok {
		return nil, fmt.Errorf("graph: %v: indices are %T, want []int", op, id)
	}
	if gs.TotalSize() != is.TotalSize() {
		return nil, &ShapeError{Op: op.String(), Want: fmt.Sprint(is), Got: fmt.Sprint(gs)}
	}
	n := op.from.TotalSize()
	switch g := data.(type) {
	case []float64:
		out, err := op.scatter(reuse[float64](pre, n), g, idx, is)
		return newValue(out, op.from), err
	case []float32:
		out, err := op.scatter(reuse[float32](pre, n), g, idx, is)
		return newValue(out, op.from), err
	}
	return nil, fmt.Errorf("graph: %v: unsupported data %T", op, data)
}
func (op scatterAddOp) String() string {
	if op.pool > 0 {
		return fmt.Sprintf("ScatterAdd{to=%v, dims=%d, pool=%d}", op.from, op.dims, op.pool)
	}
	return fmt.Sprintf("ScatterAdd{to=%v, dims=%d}", op.from, op.dims)
}
func (op scatterAddOp) diffWRT() []bool { return []bool{true, false} }
func (op scatterAddOp) symDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := apply(gatherOp(op), grad, in[1])
	return G.Nodes{d, nil}, err
}

// scatter is scatterAdd, or scatterPool where the indices are MaxPool2D's.
func (op scatterAddOp) scatter(out, g any, idx []int, is tensor.Shape) (any, error) {
	f := op.from
	pooled := op.pool > 0 && len(f) == 5 && len(is) == 5 &&
		is.Eq(tensor.Shape{f[0], f[1], f[2] / op.pool, f[3] / op.pool, f[4]})
	switch o := out.(type) {
	case []float64:
		if pooled && scatterPool(o, g.([]float64), idx, image{f[1], f[2], f[3], f[4]}, f[0]*f[1], op.pool) {
			return o, nil
		}
		return scatterAdd(o, g.([]float64), idx)
	case []float32:
		if pooled && scatterPool(o, g.([]float32), idx, image{f[1], f[2], f[3], f[4]}, f[0]*f[1], op.pool) {
			return o, nil
		}
		return scatterAdd(o, g.([]float32), idx)
	}
	return nil, fmt.Errorf("graph: %v: unsupported data %T", op, out)
}

// scatterPool is scatterAdd for the indices of MaxPool2D's k×k windows
// over imgs images, a band of k rows of an image at a time: it clears the
// band, then adds the gradient of the band's windows at their indices,
// while the band is in the cache, instead of clearing all of out first.
// The values are scatterAdd's: each element is the same sum in the same
// order. It reports false, having written part of out, if an index is
// not in its window's band.
func scatterPool[T float](out, g []T, idx []int, im image, imgs, k int) bool {
	ho, wo, c := im.h/k, im.w/k, im.c
	band, per := k*im.w*c, wo*c // a band's elements, and its windows' indices
	var mu sync.Mutex
	ok := true
	o32, g32 := float32s(out), float32s(g)
	parallelFor(imgs, im.h*im.w*c, func(first, end int) {
		for i := first; i < end; i++ {
			img := out[i*im.h*im.w*c : (i+1)*im.h*im.w*c]
			clear(img[ho*band:]) // rows that no window covers
			for oh := 0; oh < ho; oh++ {
				start := i*im.h*im.w*c + oh*band
				dst := img[oh*band : (oh+1)*band]
				r := (i*ho + oh) * per
				at, gr := idx[r:r+per], g[r:r+per]
				if k == 2 && o32 != nil && scatterPool2(o32[start:start+band], g32[r:r+per], at, start, wo, c, im.w) {
					for row := range 2 { // the column that no window covers
						clear(dst[row*im.w*c+2*wo*c : (row+1)*im.w*c])
					}
					continue
				}
				clear(dst)
				gr = gr[:len(at)]
				for j, p := range at {
					p -= start
					if uint(p) >= uint(len(dst)) {
						mu.Lock()
						ok = false
						mu.Unlock()
						return
					}
					dst[p] += gr[j]
				}
			}
		}
	})
	return ok
}

func scatterAdd[T float](out, g []T, idx []int) ([]T, error) {
	clear(out)
	for j, i := range idx {
		if uint(i) >= uint(len(out)) {
			return nil, fmt.Errorf("graph: ScatterAdd: index %d at position %d is outside [0, %d)", i, j, len(out))
		}
		out[i] += g[j]
	}
	return out, nil
}
