package graph

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Images are channels last: a batch of images is [tasks, n, h, w, c], so
// that a convolution's output, a matrix product with the filters on the
// right, comes out in the same layout with no transposition.

// window describes a square k×k window sliding with the given stride over
// an image zero-padded by pad on every side.
type window struct{ k, stride, pad int }

// out returns the number of window positions along an axis of size n.
func (w window) out(n int) int { return (n+2*w.pad-w.k)/w.stride + 1 }

func (w window) check(op string, h, wd int) error {
	if w.k < 1 || w.stride < 1 || w.pad < 0 {
		return &ShapeError{Op: op, Want: "a positive window and stride and a non-negative padding", Got: fmt.Sprintf("k=%d stride=%d pad=%d", w.k, w.stride, w.pad)}
	}
	if h+2*w.pad < w.k || wd+2*w.pad < w.k {
		return &ShapeError{Op: op, Want: fmt.Sprintf("images of at least %d×%d after padding", w.k, w.k), Got: fmt.Sprintf("%d×%d with padding %d", h, wd, w.pad)}
	}
	return nil
}

// Im2Col returns the k×k patches of images x [tasks, n, h, w, c] (channels
// last), zero-padded by pad on every side, at the given stride, as rows of
// a matrix per task: [tasks, n·ho·wo, k·k·c] with ho = (h+2·pad−k)/stride+1
// (likewise wo), rows ordered (image, output row, output column) and each
// patch ordered (kh, kw, c), so a patch row is k runs of k·c contiguous
// values of x. Multiplying the patches by filters laid out [f, kh, kw, c]
// is a convolution (see Conv2D). Im2Col is linear; its derivative is
// Col2Im, and Col2Im's is Im2Col, so both can be differentiated any number
// of times.
func Im2Col(x *G.Node, k, stride, pad int) (out *G.Node, err error) {
	defer recoverError(&err, "Im2Col")
	if x.Dims() != 5 {
		return nil, &ShapeError{Op: "Im2Col", Want: "images [tasks, n, h, w, c]", Got: fmt.Sprint(x.Shape())}
	}
	s := x.Shape()
	op := im2colOp{image: image{n: s[1], h: s[2], w: s[3], c: s[4]}, win: window{k, stride, pad}}
	if err := op.win.check("Im2Col", op.h, op.w); err != nil {
		return nil, err
	}
	return apply(op, x)
}

// Col2Im is Im2Col's adjoint: it adds every patch of cols [tasks, n·ho·wo,
// k·k·c], laid out as Im2Col lays it out, back into images [tasks, n, h, w,
// c] at the positions Im2Col took it from (overlapping patches add up;
// padding is dropped). n and c follow from cols' shape.
func Col2Im(cols *G.Node, h, w, k, stride, pad int) (out *G.Node, err error) {
	defer recoverError(&err, "Col2Im")
	win := window{k, stride, pad}
	if err := win.check("Col2Im", h, w); err != nil {
		return nil, err
	}
	s := cols.Shape()
	per := win.out(h) * win.out(w)
	if cols.Dims() != 3 || s[1]%per != 0 || s[2]%(k*k) != 0 {
		return nil, &ShapeError{Op: "Col2Im", Want: fmt.Sprintf("patches [tasks, n·%d, %d·c]", per, k*k), Got: fmt.Sprint(s)}
	}
	return apply(col2imOp{image: image{n: s[1] / per, h: h, w: w, c: s[2] / (k * k)}, win: win}, cols)
}

// Conv2D returns the 2-d convolution (cross-correlation, as PyTorch
// computes it) of images x [tasks, n, h, w, c] with filters w [tasks, f, c,
// k, k] (PyTorch's layout, with a leading task axis) plus the bias b
// [tasks, f] (nil for none), at the given stride and zero padding: [tasks,
// n, ho, wo, f], channels last. Each task's convolution is one matrix
// product of Im2Col's patches with the filters, so its derivatives, of any
// order, are Im2Col, Col2Im and matrix products. A CPU plan runs these
// products a few images at a time without the whole tensor of patches
// (fuse.go).
func Conv2D(x, w, b *G.Node, stride, pad int) (out *G.Node, err error) {
	defer recoverError(&err, "Conv2D")
	xs, ws := x.Shape(), w.Shape()
	if x.Dims() != 5 || w.Dims() != 5 || ws[0] != xs[0] || ws[2] != xs[4] || ws[3] != ws[4] {
		return nil, &ShapeError{Op: "Conv2D", Want: "images [tasks, n, h, w, c] and filters [tasks, f, c, k, k]", Got: fmt.Sprintf("%v and %v", xs, ws)}
	}
	tasks, n, c, f, k := xs[0], xs[1], xs[4], ws[1], ws[3]
	if b != nil && !b.Shape().Eq(tensor.Shape{tasks, f}) {
		return nil, &ShapeError{Op: "Conv2D bias", Want: fmt.Sprint(tensor.Shape{tasks, f}), Got: fmt.Sprint(b.Shape())}
	}
	cols, err := Im2Col(x, k, stride, pad)
	if err != nil {
		return nil, err
	}
	// [tasks, f, c, k, k] → [tasks·f, c, k·k] → [tasks·f, k·k, c] →
	// [tasks, f, k·k·c]: the filters in the patches' (kh, kw, c) order.
	wf, err := G.Reshape(w, tensor.Shape{tasks * f, c, k * k})
	if err != nil {
		return nil, err
	}
	if wf, err = TransposeLast(wf); err != nil {
		return nil, err
	}
	if wf, err = G.Reshape(wf, tensor.Shape{tasks, f, k * k * c}); err != nil {
		return nil, err
	}
	y, err := BatchedMatMul(cols, wf, false, true)
	if err != nil {
		return nil, err
	}
	if b != nil {
		if y, err = addChannels(y, b); err != nil {
			return nil, err
		}
	}
	win := window{k, stride, pad}
	return G.Reshape(y, tensor.Shape{tasks, n, win.out(xs[2]), win.out(xs[3]), f})
}

// image is the size of one task's images.
type image struct{ n, h, w, c int }

func (im image) shape(tasks int) tensor.Shape { return tensor.Shape{tasks, im.n, im.h, im.w, im.c} }

// colsShape returns the shape of Im2Col's output for tasks tasks.
func colsShape(tasks int, im image, win window) tensor.Shape {
	return tensor.Shape{tasks, im.n * win.out(im.h) * win.out(im.w), win.k * win.k * im.c}
}

type im2colOp struct {
	image
	win window
}

func (op im2colOp) arity() int { return 1 }
func (op im2colOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(5, a), tensorType(3, a))
}
func (op im2colOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	s := in[0]
	if len(s) != 5 || !s.Eq(op.shape(s[0])) {
		return nil, &ShapeError{Op: op.String(), Want: fmt.Sprintf("[tasks %d %d %d %d]", op.n, op.h, op.w, op.c), Got: fmt.Sprint(s)}
	}
	return colsShape(s[0], op.image, op.win), nil
}
func (op im2colOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	data, s, err := dense(in[0])
	if err != nil {
		return nil, err
	}
	shape, err := op.outShape(s)
	if err != nil {
		return nil, err
	}
	imgs := s[0] * op.n
	switch x := data.(type) {
	case []float64:
		return wrap(pre, im2col(reuse[float64](pre, shape.TotalSize()), x, imgs, op.image, op.win), shape), nil
	case []float32:
		return wrap(pre, im2col(reuse[float32](pre, shape.TotalSize()), x, imgs, op.image, op.win), shape), nil
	}
	return nil, fmt.Errorf("graph: %v: unsupported data %T", op, data)
}
func (op im2colOp) String() string {
	return fmt.Sprintf("Im2Col{n=%d, h=%d, w=%d, c=%d, k=%d, stride=%d, pad=%d}", op.n, op.h, op.w, op.c, op.win.k, op.win.stride, op.win.pad)
}
func (op im2colOp) diffWRT() []bool { return []bool{true} }
func (op im2colOp) symDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := apply(col2imOp(op), grad)
	return G.Nodes{d}, err
}

type col2imOp struct {
	image
	win window
}

func (op col2imOp) arity() int { return 1 }
func (op col2imOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(3, a), tensorType(5, a))
}
func (op col2imOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	s := in[0]
	if len(s) != 3 || !s.Eq(colsShape(s[0], op.image, op.win)) {
		return nil, &ShapeError{Op: op.String(), Want: fmt.Sprint(colsShape(0, op.image, op.win)[1:]), Got: fmt.Sprint(s)}
	}
	return op.shape(s[0]), nil
}
func (op col2imOp) do(pre G.Value, in []G.Value) (G.Value, error) {
	data, s, err := dense(in[0])
	if err != nil {
		return nil, err
	}
	shape, err := op.outShape(s)
	if err != nil {
		return nil, err
	}
	imgs := s[0] * op.n
	switch c := data.(type) {
	case []float64:
		return wrap(pre, col2im(reuse[float64](pre, shape.TotalSize()), c, imgs, op.image, op.win), shape), nil
	case []float32:
		return wrap(pre, col2im(reuse[float32](pre, shape.TotalSize()), c, imgs, op.image, op.win), shape), nil
	}
	return nil, fmt.Errorf("graph: %v: unsupported data %T", op, data)
}
func (op col2imOp) String() string {
	return fmt.Sprintf("Col2Im{n=%d, h=%d, w=%d, c=%d, k=%d, stride=%d, pad=%d}", op.n, op.h, op.w, op.c, op.win.k, op.win.stride, op.win.pad)
}
func (op col2imOp) diffWRT() []bool { return []bool{true} }
func (op col2imOp) symDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := apply(im2colOp(op), grad)
	return G.Nodes{d}, err
}

// span returns, for the window position whose first column is w0 (possibly
// negative, in the padding), the range [lo, hi) of window columns that fall
// inside an image of width wd.
func span(w0, k, wd int) (lo, hi int) {
	lo, hi = max(0, -w0), min(k, wd-w0)
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// im2col writes the patches of imgs images x into out (see Im2Col).
func im2col[T float](out, x []T, imgs int, im image, win window) []T {
	parallelFor(imgs, win.out(im.h)*win.out(im.w)*win.k*win.k*im.c, func(first, end int) {
		im2colImages(out, x, first, end, im, win)
	})
	return out
}

// im2colImages writes the patches of images first to end of x into out.
func im2colImages[T float](out, x []T, first, end int, im image, win window) {
	if im.c == 1 {
		im2colOne(out, x, first, end, im, win)
		return
	}
	im2colRuns(out, x, first, end, im, win)
}

// im2colRuns is im2col copying the runs of channels of a row of the
// window that lie in the image, and clearing the rest. It goes through
// one row of the window for a whole row of patches at a time, so that the
// patches whose windows lie inside the image take one call of copyRuns.
func im2colRuns[T float](out, x []T, first, end int, im image, win window) {
	ho, wo := win.out(im.h), win.out(im.w)
	k, c := win.k, im.c
	run := k * c
	row := k * run
	size := im.h * im.w * c
	in0, in1 := win.inside(wo, im.w)
	for i := first; i < end; i++ {
		xi := x[i*size : (i+1)*size]
		for oh := 0; oh < ho; oh++ {
			or := out[(i*ho+oh)*wo*row : (i*ho+oh+1)*wo*row]
			for kh := 0; kh < k; kh++ {
				ih := oh*win.stride - win.pad + kh
				if ih < 0 || ih >= im.h {
					for ow := 0; ow < wo; ow++ {
						clear(or[ow*row+kh*run : ow*row+(kh+1)*run])
					}
					continue
				}
				xr := xi[ih*im.w*c : (ih+1)*im.w*c]
				for ow := 0; ow < wo; ow++ {
					w0 := ow*win.stride - win.pad
					if ow == in0 && in1 > in0 {
						copyRuns(or[ow*row+kh*run:], xr[w0*c:], run, in1-in0, row, win.stride*c)
						ow = in1 - 1
						continue
					}
					lo, hi := span(w0, k, im.w)
					dst := or[ow*row+kh*run : ow*row+(kh+1)*run]
					if lo == hi {
						clear(dst)
						continue
					}
					clear(dst[:lo*c])
					copyRuns(dst[lo*c:], xr[(w0+lo)*c:], (hi-lo)*c, 1, 0, 0)
					clear(dst[hi*c:])
				}
			}
		}
	}
}

// inside returns the range [in0, in1) of the wo output columns whose
// windows lie wholly inside a row of w columns; in1 is in0 when there are
// none.
func (win window) inside(wo, w int) (in0, in1 int) {
	in0 = (win.pad + win.stride - 1) / win.stride
	if last := w - win.k + win.pad; last >= 0 {
		in1 = min(wo, last/win.stride+1)
	}
	return in0, max(in0, in1)
}

// copyRuns copies count runs of n values, the i-th from src[i*ss:] to
// dst[i*ds:], in one call of copyRunsF32 where it can.
func copyRuns[T float](dst, src []T, n, count, ds, ss int) {
	if count == 0 || n == 0 {
		return
	}
	dst, src = dst[:(count-1)*ds+n], src[:(count-1)*ss+n]
	if d32, ok := asF32(dst); ok && useAVX2 && n%8 == 0 {
		s32, _ := asF32(src)
		copyRunsF32(&d32[0], &s32[0], n, count, ds, ss)
		return
	}
	for i := range count {
		d, s := dst[i*ds:i*ds+n], src[i*ss:i*ss+n]
		if n < 16 {
			// A few channels: a call to memmove costs more than the loop.
			for j, v := range s {
				d[j] = v
			}
			continue
		}
		copy(d, s)
	}
}

// addRuns adds count runs of n values, one after the other: the i-th from
// src[i*ss:] to dst[i*ds:], where runs of dst may overlap.
func addRuns[T float](dst, src []T, n, count, ds, ss int) {
	if count == 0 || n == 0 {
		return
	}
	dst, src = dst[:(count-1)*ds+n], src[:(count-1)*ss+n]
	if d32, ok := asF32(dst); ok && useAVX2 && n%8 == 0 {
		s32, _ := asF32(src)
		addRunsF32(&d32[0], &s32[0], n, count, ds, ss)
		return
	}
	for i := range count {
		d, s := dst[i*ds:i*ds+n], src[i*ss:i*ss+n]
		if n >= 16 {
			addTo(d, s)
			continue
		}
		for j, v := range s {
			d[j] += v
		}
	}
}

// im2colOne is im2col for images of one channel (an input layer), whose
// patches are made of runs of a few values. For 3×3 windows in float32
// it writes a row of patches whose windows lie inside the image in one
// call of patches3F32, which reads a zero row for the rows of the window
// in the padding; the rest it writes value by value.
func im2colOne[T float](out, x []T, first, end int, im image, win window) {
	ho, wo := win.out(im.h), win.out(im.w)
	k := win.k
	row := k * k
	size := im.h * im.w
	in0, in1 := win.inside(wo, im.w)
	x32, _ := asF32(x)
	o32, fast := asF32(out)
	// patches3F32 writes all but the last of the inside patches.
	fast = fast && useAVX2 && k == 3 && in1-in0 >= 2 && im.w <= len(zeroRow)
	for i := first; i < end; i++ {
		xi := x[i*size : (i+1)*size]
		for oh := 0; oh < ho; oh++ {
			at := (i*ho + oh) * wo
			or := out[at*row : (at+wo)*row]
			h0 := oh*win.stride - win.pad
			if !fast {
				for ow := 0; ow < wo; ow++ {
					onePatch(or[ow*row:(ow+1)*row], xi, h0, ow*win.stride-win.pad, im, k)
				}
				continue
			}
			var r [3]*float32
			for kh := range r {
				r[kh] = &zeroRow[0]
				if ih := h0 + kh; ih >= 0 && ih < im.h {
					r[kh] = &x32[i*size+ih*im.w+in0*win.stride-win.pad]
				}
			}
			patches3F32(&o32[(at+in0)*9], r[0], r[1], r[2], in1-in0-1, win.stride)
			for ow := 0; ow < wo; ow++ {
				if ow == in0 {
					ow = in1 - 2
					continue
				}
				onePatch(or[ow*row:(ow+1)*row], xi, h0, ow*win.stride-win.pad, im, k)
			}
		}
	}
}

// zeroRow stands for a row of an image in the padding, for patches3F32.
var zeroRow = make([]float32, 256)

// onePatch writes the k×k patch of a one-channel image xi whose window
// starts at row h0 and column w0, value by value.
func onePatch[T float](d, xi []T, h0, w0 int, im image, k int) {
	for kh := 0; kh < k; kh++ {
		dr := d[kh*k : (kh+1)*k]
		ih := h0 + kh
		if ih < 0 || ih >= im.h {
			clear(dr)
			continue
		}
		xr := xi[ih*im.w : (ih+1)*im.w]
		if w0 >= 0 && w0+k <= len(xr) {
			src := xr[w0 : w0+k]
			src = src[:len(dr)]
			for j, v := range src {
				dr[j] = v
			}
			continue
		}
		for j := range dr {
			if iw := w0 + j; iw >= 0 && iw < len(xr) {
				dr[j] = xr[iw]
			} else {
				dr[j] = 0
			}
		}
	}
}

// col2im adds the patches cols of imgs images into out, which it clears
// first (see Col2Im).
func col2im[T float](out, cols []T, imgs int, im image, win window) []T {
	parallelFor(imgs, win.out(im.h)*win.out(im.w)*win.k*win.k*im.c, func(first, end int) {
		col2imImages(out, cols, first, end, im, win)
	})
	return out
}

// col2imImages adds the patches of images first to end into out, clearing
// those images first. Like im2colRuns it goes through one row of the
// window for a row of patches at a time; each pixel still receives its
// terms in the order of the patches, so the sums do not depend on it.
func col2imImages[T float](out, cols []T, first, end int, im image, win window) {
	ho, wo := win.out(im.h), win.out(im.w)
	k, c := win.k, im.c
	run := k * c
	row := k * run
	size := im.h * im.w * c
	in0, in1 := win.inside(wo, im.w)
	for i := first; i < end; i++ {
		xi := out[i*size : (i+1)*size]
		clear(xi)
		for oh := 0; oh < ho; oh++ {
			pr := cols[(i*ho+oh)*wo*row : (i*ho+oh+1)*wo*row]
			for kh := 0; kh < k; kh++ {
				ih := oh*win.stride - win.pad + kh
				if ih < 0 || ih >= im.h {
					continue
				}
				xr := xi[ih*im.w*c : (ih+1)*im.w*c]
				for ow := 0; ow < wo; ow++ {
					w0 := ow*win.stride - win.pad
					if ow == in0 && in1 > in0 {
						addRuns(xr[w0*c:], pr[ow*row+kh*run:], run, in1-in0, win.stride*c, row)
						ow = in1 - 1
						continue
					}
					if lo, hi := span(w0, k, im.w); lo < hi {
						addRuns(xr[(w0+lo)*c:], pr[ow*row+kh*run+lo*c:], (hi-lo)*c, 1, 0, 0)
					}
				}
			}
		}
	}
}

// TransposeLast transposes the last two axes of x [b, p, q], giving [b,
// q, p]: a batch of matrix transposes. It is its own derivative, so it can
// be differentiated any number of times. Networks use it to move between
// channels-last activations and PyTorch's channels-first weight layouts.
func TransposeLast(x *G.Node) (out *G.Node, err error) {
	defer recoverError(&err, "TransposeLast")
	if x.Dims() != 3 {
		return nil, &ShapeError{Op: "TransposeLast", Want: "a 3-d tensor", Got: fmt.Sprint(x.Shape())}
	}
	return apply(transposeLastOp{}, x)
}

type transposeLastOp struct{}

func (op transposeLastOp) arity() int { return 1 }
func (op transposeLastOp) typ() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(tensorType(3, a), tensorType(3, a))
}
func (op transposeLastOp) outShape(in ...tensor.Shape) (tensor.Shape, error) {
	s := in[0]
	if len(s) != 3 {
		return nil, &ShapeError{Op: op.String(), Want: "a 3-d tensor", Got: fmt.Sprint(s)}
	}
	return tensor.Shape{s[0], s[2], s[1]}, nil
}
func (op transposeLastOp) do(pre G.Value, in []G.Value) (G.Value, error) {
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
		return wrap(pre, transposeLastKernel(reuse[float64](pre, len(x)), x, s[0], s[1], s[2]), shape), nil
	case []float32:
		return wrap(pre, transposeLastKernel(reuse[float32](pre, len(x)), x, s[0], s[1], s[2]), shape), nil
	}
	return nil, fmt.Errorf("graph: %v: unsupported data %T", op, data)
}
func (op transposeLastOp) String() string  { return "TransposeLast" }
func (op transposeLastOp) diffWRT() []bool { return []bool{true} }
func (op transposeLastOp) symDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := TransposeLast(grad)
	return G.Nodes{d}, err
}

func transposeLastKernel[T float](out, x []T, b, p, q int) []T {
	for i := 0; i < b; i++ {
		src, dst := x[i*p*q:(i+1)*p*q], out[i*p*q:(i+1)*p*q]
		for r := 0; r < p; r++ {
			for c, v := range src[r*q : (r+1)*q] {
				dst[c*p+r] = v
			}
		}
	}
	return out
}

// The kernels of the convolution, pooling and normalisation ops split
// large tensors over the CPUs. Every output element is computed by one
// goroutine in a fixed order, so results do not depend on the number of
// CPUs, and every goroutine has finished when the op returns.

// parallelMin is the amount of work (elements touched) below which a
// kernel runs on the calling goroutine alone.
const parallelMin = 1 << 15

// parallelWorth reports whether parallelFor splits n items of the given
// cost over more than one goroutine.
func parallelWorth(n, cost int) bool {
	return min(runtime.GOMAXPROCS(0), n) > 1 && n*cost >= parallelMin
}

// parallelFor calls f on disjoint ranges [lo, hi) covering [0, n),
// concurrently on up to GOMAXPROCS goroutines when n·cost reaches
// parallelMin, and returns when every call has returned.
func parallelFor(n, cost int, f func(lo, hi int)) {
	if !parallelWorth(n, cost) {
		f(0, n)
		return
	}
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	// A panic on a worker goroutine is carried to this one, where Plan.Run
	// turns an op's panic into an error; left on the worker it would end
	// the process.
	var mu sync.Mutex
	var caught any
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					mu.Lock()
					caught = r
					mu.Unlock()
				}
			}()
			f(n*w/workers, n*(w+1)/workers)
		}()
	}
	f(0, n/workers)
	wg.Wait()
	if caught != nil {
		panic(caught)
	}
}
