package graph

import (
	"fmt"
	"math"
	"sync"
	"unsafe"

	"gonum.org/v1/gonum/blas"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Convolutions fused with their patches. Conv2D is a product with
// Im2Col's patches, and its derivatives are products with them too, or
// Col2Im of a product:
//
//	conv:  y  = Im2Col(x)·Wᵀ       [tasks, rows, f]
//	corr:  dW = gᵀ·Im2Col(x)       [tasks, f, k·k·c]
//	convT: dx = Col2Im(g·W)        [tasks, n, h, w, c]
//
// The patches are k·k times the images: 17 MB a task for a 32-channel
// 14×14 layer of 75 images, written once and read twice from memory. A
// CPU plan instead computes each of these products a few images at a
// time, making those images' patches (or, for convT, the product's rows)
// in a buffer that stays in the cache, and never materialises the whole
// tensor. The graph is unchanged: a plan fuses an Im2Col node when every
// op reading it is one of the products above, and a product feeding only
// a Col2Im, and leaves every other node as it is. Fused products sum in a
// different order from the unfused ones (corr adds the images' parts one
// after another), so their bits differ, by rounding; they do not depend
// on the number of CPUs.

// fuseBytes is about how much of the cache a fused convolution's patch
// buffer takes. Tests lower it.
var fuseBytes = 512 << 10

// fuseChannels is the fewest channels of a fused convolution's images.
// With fewer (an input layer), the patches are small enough for the
// cache already, and making them once beats making them for each
// product.
const fuseChannels = 2

// convFusion is a fused convolution: kind "conv", "corr" or "convT", on
// tasks batches of n images im with window win and f filters.
type convFusion struct {
	kind  string
	im    image
	win   window
	tasks int
	f     int
	out   tensor.Shape
}

func (cf convFusion) String() string {
	return fmt.Sprintf("fused %s{%d×%d×%d×%d, k=%d, stride=%d, pad=%d, f=%d}", cf.kind, cf.im.n, cf.im.h, cf.im.w, cf.im.c, cf.win.k, cf.win.stride, cf.win.pad, cf.f)
}

// fusion is what a plan runs for a fused node: its kernel and the nodes
// it reads, in place of its op's inputs.
type fusion struct {
	args G.Nodes
	kern nativeKernel
	// Memory of its own, beside the plan's values: kept from Run to Run
	// (side), and a buffer for each goroutine that runs it (scratch).
	side, scratch int64
}

// kernelOf returns the kernel of n's op if it is a K.
func kernelOf[K kernel](n *G.Node) (K, bool) {
	switch o := n.Op().(type) {
	case bufferOp[K]:
		return o.k, true
	case op[K]:
		return o.k, true
	}
	var zero K
	return zero, false
}

// planFusions finds the convolutions, the poolings after batch
// normalisation (planPoolFusion) and the filter gradients of batch
// normalisation's input gradients (planBNCorrFusion), of nodes (a
// topological order) that a CPU plan of outputs can fuse. It returns the
// fused nodes with what they run, and the nodes no longer run (patches,
// products, scaled values and gradients that only a fused node read).
func planFusions(nodes, outputs G.Nodes) (fused map[*G.Node]fusion, dead map[*G.Node]bool) {
	readers := make(map[*G.Node]G.Nodes)
	for _, n := range nodes {
		for _, c := range inputs(n) {
			readers[c] = append(readers[c], n)
		}
	}
	out := make(map[*G.Node]bool, len(outputs))
	for _, o := range outputs {
		out[o] = true
	}
	fused, dead = make(map[*G.Node]fusion), make(map[*G.Node]bool)
	pos := make(map[*G.Node]int, len(nodes))
	for i, n := range nodes {
		pos[n] = i
	}
	for _, n := range nodes {
		if n.Op() == nil {
			continue
		}
		if am, ok := kernelOf[poolArgMaxOp](n); ok {
			planPoolFusion(n, am, readers, out, fused, dead)
			continue
		}
		if planBNCorrFusion(n, readers, out, fused, dead) {
			continue
		}
		if op, ok := kernelOf[normalizeOp](n); ok && planNormProductFusion(n, op, pos, readers, out, fused, dead) {
			continue
		}
		if !isFloat(n.Dtype()) {
			continue
		}
		if ic, ok := kernelOf[im2colOp](n); ok && ic.c >= fuseChannels && !out[n] {
			x := inputs(n)[0]
			tasks := x.Shape()[0]
			kkc, rows := ic.win.k*ic.win.k*ic.c, ic.n*ic.win.out(ic.h)*ic.win.out(ic.w)
			plans := make(map[*G.Node]fusion)
			for _, r := range readers[n] {
				mm, ok := kernelOf[matMulOp](r)
				in := inputs(r)
				if !ok || out[r] || len(in) != 2 || in[0] == in[1] || r.Dtype() != n.Dtype() {
					plans = nil
					break
				}
				switch {
				case in[0] == n && !mm.transA && mm.transB && filters(in[1], tasks, kkc): // Im2Col(x)·Wᵀ
					f := in[1].Shape()[1]
					cf := convFusion{kind: "conv", im: ic.image, win: ic.win, tasks: tasks, f: f, out: r.Shape().Clone()}
					plans[r] = fusion{args: G.Nodes{x, in[1]}, kern: cf.kernel(n.Dtype()), scratch: cf.scratchBytes(n.Dtype())}
				case in[1] == n && mm.transA && !mm.transB && gradients(in[0], tasks, rows): // gᵀ·Im2Col(x)
					f := in[0].Shape()[2]
					cf := convFusion{kind: "corr", im: ic.image, win: ic.win, tasks: tasks, f: f, out: r.Shape().Clone()}
					plans[r] = fusion{args: G.Nodes{in[0], x}, kern: cf.kernel(n.Dtype()), scratch: cf.scratchBytes(n.Dtype())}
				default:
					plans = nil
				}
				if plans == nil {
					break
				}
			}
			if len(plans) == 0 {
				continue
			}
			dead[n] = true
			for r, fu := range plans {
				fused[r] = fu
			}
			continue
		}
		if ci, ok := kernelOf[col2imOp](n); ok && ci.c >= fuseChannels {
			m := inputs(n)[0]
			mm, ok := kernelOf[matMulOp](m)
			if !ok || out[m] || mm.transA || mm.transB || len(readers[m]) != 1 || m.Dtype() != n.Dtype() {
				continue
			}
			in := inputs(m)
			tasks := n.Shape()[0]
			if !gradients(in[0], tasks, ci.n*ci.win.out(ci.h)*ci.win.out(ci.w)) || !filters(in[1], tasks, ci.win.k*ci.win.k*ci.c) {
				continue
			}
			cf := convFusion{kind: "convT", im: ci.image, win: ci.win, tasks: tasks, f: in[0].Shape()[2], out: n.Shape().Clone()}
			fused[n] = fusion{args: G.Nodes{in[0], in[1]}, kern: cf.kernel(n.Dtype()), scratch: cf.scratchBytes(n.Dtype())}
			dead[m] = true
		}
	}
	// A dead node must have no reader left but fused ones, through their
	// new arguments, and a fused node's arguments must come before it.
	for n, fu := range fused {
		for _, a := range fu.args {
			if pos[a] >= pos[n] {
				return nil, nil
			}
		}
	}
	for _, n := range nodes {
		if dead[n] {
			continue
		}
		args := inputs(n)
		if fu, ok := fused[n]; ok {
			args = fu.args
		}
		for _, a := range args {
			if dead[a] {
				return nil, nil
			}
		}
	}
	return fused, dead
}

// filters reports whether w is [tasks, f, kkc], and gradients whether g
// is [tasks, rows, f], for some f.
func filters(w *G.Node, tasks, kkc int) bool {
	s := w.Shape()
	return len(s) == 3 && s[0] == tasks && s[2] == kkc
}

func gradients(g *G.Node, tasks, rows int) bool {
	s := g.Shape()
	return len(s) == 3 && s[0] == tasks && s[1] == rows
}

func (cf convFusion) kernel(dt tensor.Dtype) nativeKernel {
	if dt == tensor.Float32 {
		return convKernel[float32](cf)
	}
	return convKernel[float64](cf)
}

// rows is the number of patches of one task, and kkc the size of one.
func (cf convFusion) rows() int { return cf.im.n * cf.win.out(cf.im.h) * cf.win.out(cf.im.w) }
func (cf convFusion) kkc() int  { return cf.win.k * cf.win.k * cf.im.c }

// scratchBytes is the size of runConv's buffer for each goroutine.
func (cf convFusion) scratchBytes(dt tensor.Dtype) int64 {
	size := dt.Size()
	per := cf.win.out(cf.im.h) * cf.win.out(cf.im.w)
	return int64((cf.chunk(int(size))*per*cf.kkc() + cf.f*cf.kkc()) * int(size))
}

// chunk is how many images' patches fill about fuseBytes.
func (cf convFusion) chunk(size int) int {
	per := cf.win.out(cf.im.h) * cf.win.out(cf.im.w) * cf.kkc() * size
	return max(1, min(cf.im.n, fuseBytes/max(per, 1)))
}

// convKernel runs cf on its two arguments: (x, W) for conv, (g, x) for
// corr and (g, W) for convT, with x [tasks, n, h, w, c], W [tasks, f,
// k·k·c] and g [tasks, rows, f].
func convKernel[T float](cf convFusion) nativeKernel {
	return func(pre G.Value, in []G.Value) (G.Value, bool) {
		a, as, err := floats[T](in[0])
		if err != nil {
			return nil, false
		}
		b, bs, err := floats[T](in[1])
		if err != nil {
			return nil, false
		}
		img := cf.im.shape(cf.tasks)
		filt := tensor.Shape{cf.tasks, cf.f, cf.kkc()}
		grad := tensor.Shape{cf.tasks, cf.rows(), cf.f}
		want := map[string][2]tensor.Shape{"conv": {img, filt}, "corr": {grad, img}, "convT": {grad, filt}}[cf.kind]
		if !as.Eq(want[0]) || !bs.Eq(want[1]) {
			return nil, false
		}
		out := reuse[T](pre, cf.out.TotalSize())
		if err := runConv(cf, out, a, b); err != nil {
			return nil, false
		}
		return wrap(pre, out, cf.out), true
	}
}

// scratch holds buffers for the fused convolutions' patches, by type.
var scratch32, scratch64 sync.Pool

// getScratch returns a buffer of n elements from the pool, aligned for
// gonum's gemm; putScratch gives it back.
func getScratch[T float](n int) *[]T {
	pool := &scratch64
	if isF32[T]() {
		pool = &scratch32
	}
	if b, ok := pool.Get().(*[]T); ok && len(*b) >= n {
		return b
	}
	b := aligned[T](n)[:n]
	return &b
}

func putScratch[T float](b *[]T) {
	if isF32[T]() {
		scratch32.Put(b)
		return
	}
	scratch64.Put(b)
}

// runConv computes cf on a and b into out, splitting the tasks, and for
// conv and convT their chunks of images, over the CPUs.
func runConv[T float](cf convFusion, out, a, b []T) (err error) {
	rows, kkc, f := cf.rows(), cf.kkc(), cf.f
	per := cf.win.out(cf.im.h) * cf.win.out(cf.im.w) // patches per image
	size := cf.im.h * cf.im.w * cf.im.c              // values per image
	var z T
	chunk := cf.chunk(int(unsafe.Sizeof(z)))
	chunks := (cf.im.n + chunk - 1) / chunk
	units := cf.tasks * chunks
	if cf.kind == "corr" {
		units = cf.tasks
	}
	if units == 0 || chunks == 0 {
		clear(out)
		return nil
	}
	cost := chunk * per * kkc * f / macsPerTouch
	if cf.kind == "corr" {
		cost *= chunks
	}
	var mu sync.Mutex
	work := func(first, end int) {
		buf := getScratch[T](chunk*per*kkc + f*kkc)
		defer putScratch(buf)
		cols, part := (*buf)[:chunk*per*kkc], (*buf)[chunk*per*kkc:chunk*per*kkc+f*kkc]
		for u := first; u < end; u++ {
			var e error
			switch cf.kind {
			case "conv":
				t, q := u/chunks, u%chunks
				i0, i1 := q*chunk, min(cf.im.n, (q+1)*chunk)
				p := (i1 - i0) * per
				c := cols[:p*kkc]
				im2colImages(c, a[(t*cf.im.n+i0)*size:(t*cf.im.n+i1)*size], 0, i1-i0, cf.im, cf.win)
				e = product(out[(t*rows+i0*per)*f:(t*rows+i1*per)*f], blas.NoTrans, blas.Trans, p, f, kkc, c, kkc, b[t*f*kkc:(t+1)*f*kkc], kkc)
			case "convT":
				t, q := u/chunks, u%chunks
				i0, i1 := q*chunk, min(cf.im.n, (q+1)*chunk)
				p := (i1 - i0) * per
				c := cols[:p*kkc]
				e = product(c, blas.NoTrans, blas.NoTrans, p, kkc, f, a[(t*rows+i0*per)*f:(t*rows+i1*per)*f], f, b[t*f*kkc:(t+1)*f*kkc], kkc)
				col2imImages(out[(t*cf.im.n+i0)*size:(t*cf.im.n+i1)*size], c, 0, i1-i0, cf.im, cf.win)
			case "corr":
				t := u
				acc := out[t*f*kkc : (t+1)*f*kkc]
				for q := range chunks {
					i0, i1 := q*chunk, min(cf.im.n, (q+1)*chunk)
					p := (i1 - i0) * per
					c := cols[:p*kkc]
					im2colImages(c, b[(t*cf.im.n+i0)*size:(t*cf.im.n+i1)*size], 0, i1-i0, cf.im, cf.win)
					dst := acc
					if q > 0 {
						dst = part
					}
					if e = product(dst, blas.Trans, blas.NoTrans, f, kkc, p, a[(t*rows+i0*per)*f:(t*rows+i1*per)*f], f, c, kkc); e != nil {
						break
					}
					if q > 0 {
						addTo(acc, part)
					}
				}
			}
			if e != nil {
				mu.Lock()
				err = e
				mu.Unlock()
				return
			}
		}
	}
	if parallelWorth(units, cost) && concurrentGemm(chunk*per, f, kkc, isF32[T]()) {
		parallelFor(units, cost, work)
	} else {
		work(0, units)
	}
	return err
}

// product computes the m×n product c = op(a)·op(b) with gemmFor's gemm.
func product[T float](c []T, ta, tb blas.Transpose, m, n, k int, a []T, lda int, b []T, ldb int) error {
	s, d, alignS, alignD, err := gemmFor(m, n, k)
	if err != nil {
		return err
	}
	switch c := any(c).(type) {
	case []float32:
		gemmBatch(c, s, alignS, ta, tb, 1, m, n, k, any(a).([]float32), lda, len(a), any(b).([]float32), ldb, len(b))
	case []float64:
		gemmBatch(c, d, alignD, ta, tb, 1, m, n, k, any(a).([]float64), lda, len(a), any(b).([]float64), ldb, len(b))
	}
	return nil
}

// Pooling fused with batch normalisation's scale and shift. In a ConvNet
// block, MaxPool2D takes its windows' maxima of affineChannels(x̂, γ, β)
// (through a reshape to images), whose value nothing else reads: a CPU
// plan computes the scaled and shifted values a band of window rows at a
// time, in a buffer in the cache, finds their maxima there, and never
// writes the whole tensor. The values, positions and maxima are the bits
// of the unfused ops.

// planPoolFusion fuses the arg-max node n with the affineChannels node
// behind it, and the gather of the maxima, when nothing else reads the
// scaled values; it reports whether it did.
func planPoolFusion(n *G.Node, am poolArgMaxOp, readers map[*G.Node]G.Nodes, out map[*G.Node]bool, fused map[*G.Node]fusion, dead map[*G.Node]bool) bool {
	rs := inputs(n)[0]
	if rs.Op() == nil || out[rs] || len(readers[rs]) != 2 {
		return false
	}
	if kind, _, _ := describeOp(rs.Op()); kind != "reshape" {
		return false
	}
	a := inputs(rs)[0]
	if a.Op() == nil || out[a] || len(readers[a]) != 1 {
		return false
	}
	if _, ok := kernelOf[affineChannelsOp](a); !ok {
		return false
	}
	var gather *G.Node
	for _, r := range readers[rs] {
		if r == n {
			continue
		}
		in := inputs(r)
		if g, ok := kernelOf[gatherOp](r); ok && g.pool == am.k && len(in) == 2 && in[0] == rs && in[1] == n {
			gather = r
		}
	}
	if s := a.Shape(); gather == nil || a.Dtype() != rs.Dtype() || len(s) != 3 || s[1] != am.n*am.h*am.w || s[2] != am.c {
		return false
	}
	size := int64(a.Dtype().Size())
	side, scratch := int64(gather.Shape().TotalSize())*size, int64(am.k*am.w*am.c)*size
	switch a.Dtype() {
	case tensor.Float32:
		sh := &sharedMax[float32]{}
		fused[n] = fusion{args: inputs(a), kern: argMaxAffine(am, sh), side: side, scratch: scratch}
		fused[gather] = fusion{args: G.Nodes{n}, kern: pooledCopy(sh)}
	case tensor.Float64:
		sh := &sharedMax[float64]{}
		fused[n] = fusion{args: inputs(a), kern: argMaxAffine(am, sh), side: side, scratch: scratch}
		fused[gather] = fusion{args: G.Nodes{n}, kern: pooledCopy(sh)}
	default:
		return false
	}
	dead[rs], dead[a] = true, true
	return true
}

// argMaxAffine is poolArgMaxOp's kernel on affineChannels(x̂, γ, β), from
// x̂ [tasks, n·h·w, c] and γ, β [tasks, c], writing the maxima into sh.
func argMaxAffine[T float](op poolArgMaxOp, sh *sharedMax[T]) nativeKernel {
	return func(pre G.Value, in []G.Value) (G.Value, bool) {
		sh.ok = false
		x, xs, err := floats[T](in[0])
		if err != nil {
			return nil, false
		}
		g, gs, err := floats[T](in[1])
		if err != nil {
			return nil, false
		}
		b, bs, err := floats[T](in[2])
		if err != nil || len(xs) != 3 || xs[1] != op.n*op.h*op.w || xs[2] != op.c || !gs.Eq(tensor.Shape{xs[0], op.c}) || !bs.Eq(gs) {
			return nil, false
		}
		shape, _ := op.outShape(op.shape(xs[0]))
		n := shape.TotalSize()
		if cap(sh.vals) < n {
			sh.vals = make([]T, n)
		}
		sh.vals = sh.vals[:n]
		idx := reuseInts(pre, n)
		poolAffine(idx, sh.vals, x, g, b, xs[0], op.image, op.k)
		sh.ok = true
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(idx)), true
	}
}

// pooledCopy is the gather's kernel, fused: it copies the maxima in sh.
func pooledCopy[T float](sh *sharedMax[T]) nativeKernel {
	return func(pre G.Value, in []G.Value) (G.Value, bool) {
		ok := sh.ok
		sh.ok = false
		if !ok || in[0] == nil || in[0].Shape().TotalSize() != len(sh.vals) {
			return nil, false
		}
		out := reuse[T](pre, len(sh.vals))
		copy(out, sh.vals)
		return wrap(pre, out, in[0].Shape().Clone()), true
	}
}

// poolAffine writes the arg-max positions and the maxima of the k×k
// windows of x·γ + β (per task and channel) into idx and vals, computing
// x·γ + β one band of k image rows at a time.
func poolAffine[T float](idx []int, vals, x, g, b []T, tasks int, im image, k int) {
	ho, wo, c := im.h/k, im.w/k, im.c
	if ho == 0 || wo == 0 || c == 0 {
		return
	}
	band := k * im.w // pixels in a band
	parallelFor(tasks*im.n, im.h*im.w*c, func(first, end int) {
		buf := make([]T, band*c)
		for i := first; i < end; i++ {
			t := i / im.n
			gt, bt := g[t*c:(t+1)*c], b[t*c:(t+1)*c]
			for oh := range ho {
				p0 := (i*im.h + oh*k) * im.w // the band's first pixel
				affineRows(buf, x[p0*c:(p0+band)*c], gt, bt, 0, band, c)
				r := (i*ho + oh) * wo
				poolBand(idx[r*c:(r+wo)*c], vals[r*c:(r+wo)*c], buf, p0*c, wo, c, im.w*c, k)
			}
		}
	})
}

// poolBand finds the maxima of the wo windows of a band of k rows of wc
// values in buf, as poolArgMax does: their positions, plus base, in at,
// and their values in vals.
func poolBand[T float](at []int, vals, buf []T, base, wo, c, wc, k int) {
	if b32, ok := any(buf).([]float32); ok && k == 2 {
		poolRow2(at, any(vals).([]float32), b32, 0, wo, c, wc, base)
		return
	}
	for q := range wo {
		a := at[q*c : (q+1)*c]
		windowMax(a, vals[q*c:(q+1)*c], buf, q*k*c, k, c, wc)
		for j := range a {
			a[j] += base
		}
	}
}

// Batch normalisation's input gradient fused with the filter gradient
// that reads it. In a ConvNet's first block, whose one-channel patches
// are not fused, the filter gradient is gᵀ·P, P the patches and g
// (through reshapes) bnBack(g′, x̂, s, γ, a, b), which nothing else reads:
// a CPU plan computes g bnCorrRows rows at a time into a buffer in the
// cache and multiplies each block there, so that the whole of g is never
// written nor read back. Each block's product is added to the sum of the
// blocks before it; with sgemmFMA, whose blocks of the inner index are as
// long, those are the bits of the unfused product.

// bnCorrRows is the rows of g a block takes: sgemmFMA's block of the inner
// index (fmaKC).
const bnCorrRows = 256

// planBNCorrFusion fuses the product n = gᵀ·P with the bnBack node behind
// g and the reshapes between; it reports whether it did.
func planBNCorrFusion(n *G.Node, readers map[*G.Node]G.Nodes, out map[*G.Node]bool, fused map[*G.Node]fusion, dead map[*G.Node]bool) bool {
	mm, ok := kernelOf[matMulOp](n)
	if !ok || !mm.transA || mm.transB || !isFloat(n.Dtype()) {
		return false
	}
	if _, done := fused[n]; done {
		return false
	}
	in := inputs(n)
	if len(in) != 2 || in[0] == in[1] {
		return false
	}
	var chain G.Nodes // the reshapes from bnBack's value to g
	g := in[0]
	for {
		if g.Op() == nil || out[g] || dead[g] || len(readers[g]) != 1 {
			return false
		}
		if kind, _, _ := describeOp(g.Op()); kind != "reshape" {
			break
		}
		chain = append(chain, g)
		g = inputs(g)[0]
	}
	if _, ok := kernelOf[bnBackOp](g); !ok {
		return false
	}
	if _, done := fused[g]; done {
		return false
	}
	s, ps := g.Shape(), in[1].Shape()
	if len(s) != 3 || !in[0].Shape().Eq(s) || len(ps) != 3 || ps[0] != s[0] || ps[1] != s[1] ||
		g.Dtype() != n.Dtype() || in[1].Dtype() != n.Dtype() {
		return false
	}
	tasks, m, c, k := s[0], s[1], s[2], ps[2]
	fu := fusion{
		args:    append(append(G.Nodes{}, inputs(g)...), in[1]),
		scratch: int64(bnCorrRows*c+c*k)*int64(n.Dtype().Size()) + int64(3*c*8),
	}
	switch n.Dtype() {
	case tensor.Float32:
		fu.kern = bnCorrKernel[float32](tasks, m, c, k)
	case tensor.Float64:
		fu.kern = bnCorrKernel[float64](tasks, m, c, k)
	default:
		return false
	}
	fused[n] = fu
	dead[g] = true
	for _, r := range chain {
		dead[r] = true
	}
	return true
}

// bnCorrKernel computes bnBack(g′, x̂, s, γ, a, b)ᵀ·P from its seven
// arguments, g′ and x̂ [tasks, m, c], s, γ, a and b [tasks, c] and P
// [tasks, m, k]: [tasks, c, k].
func bnCorrKernel[T float](tasks, m, c, k int) nativeKernel {
	rows, chans := tensor.Shape{tasks, m, c}, tensor.Shape{tasks, c}
	want := []tensor.Shape{rows, rows, chans, chans, chans, chans, {tasks, m, k}}
	return func(pre G.Value, in []G.Value) (G.Value, bool) {
		if len(in) != len(want) {
			return nil, false
		}
		var a [7][]T
		for i, v := range in {
			d, s, err := floats[T](v)
			if err != nil || !s.Eq(want[i]) {
				return nil, false
			}
			a[i] = d
		}
		res := reuse[T](pre, tasks*c*k)
		if err := runBNCorr(res, a, tasks, m, c, k); err != nil {
			return nil, false
		}
		return wrap(pre, res, tensor.Shape{tasks, c, k}), true
	}
}

// blockGemm returns a function that computes one block of a product,
// the m×n c = op(a)·op(b), with the gemm gemmFor chose for the whole
// product (wm×wk by wk×wn), so that every block rounds as that gemm does.
func blockGemm[T float](wm, wn, wk int) (func(c []T, ta, tb blas.Transpose, m, n, k int, a []T, lda int, b []T, ldb int), error) {
	sg, dg, alignS, alignD, err := gemmFor(wm, wn, wk)
	if err != nil {
		return nil, err
	}
	return func(c []T, ta, tb blas.Transpose, m, n, k int, a []T, lda int, b []T, ldb int) {
		switch c := any(c).(type) {
		case []float32:
			gemmBatch(c, sg, alignS, ta, tb, 1, m, n, k, any(a).([]float32), lda, len(a), any(b).([]float32), ldb, len(b))
		case []float64:
			gemmBatch(c, dg, alignD, ta, tb, 1, m, n, k, any(a).([]float64), lda, len(a), any(b).([]float64), ldb, len(b))
		}
	}, nil
}

// runBNCorr computes bnCorrKernel's product of each task into res, the
// tasks over the CPUs.
func runBNCorr[T float](res []T, a [7][]T, tasks, m, c, k int) error {
	g, xh, s, gamma, sa, sb, p := a[0], a[1], a[2], a[3], a[4], a[5], a[6]
	gemm, err := blockGemm[T](c, k, m)
	if err != nil {
		return err
	}
	mul := func(dst, x, y []T, rows int) { gemm(dst, blas.Trans, blas.NoTrans, c, k, rows, x, c, y, k) }
	work := func(first, end int) {
		buf := getScratch[T](bnCorrRows*c + c*k)
		defer putScratch(buf)
		gx, part := (*buf)[:bnCorrRows*c], (*buf)[bnCorrRows*c:bnCorrRows*c+c*k]
		f := make([]float64, 3*c)
		sc, ma, mb := f[:c], f[c:2*c], f[2*c:]
		for t := first; t < end; t++ {
			for j := range c { // bnBackKernel's factors
				i := t*c + j
				sc[j] = float64(s[i]) * float64(gamma[i])
				ma[j] = float64(sa[i]) / float64(m)
				mb[j] = float64(sb[i]) / float64(m)
			}
			acc := res[t*c*k : (t+1)*c*k]
			if m == 0 {
				clear(acc)
			}
			for r0 := 0; r0 < m; r0 += bnCorrRows {
				n := min(bnCorrRows, m-r0)
				lo, hi := (t*m+r0)*c, (t*m+r0+n)*c
				normBackRows(gx[:n*c], g[lo:hi], xh[lo:hi], 0, n, c, 0, sc, ma, mb)
				dst := acc
				if r0 > 0 {
					dst = part
				}
				mul(dst, gx[:n*c], p[(t*m+r0)*k:(t*m+r0+n)*k], n)
				if r0 > 0 {
					addTo(acc, part)
				}
			}
		}
	}
	if cost := m * c * k / macsPerTouch; parallelWorth(tasks, cost) && concurrentGemm(c, k, m, isF32[T]()) {
		parallelFor(tasks, cost, work)
	} else {
		work(0, tasks)
	}
	return nil
}

// Batch normalisation fused with the product before it. In a ConvNet's
// first block, normalize standardises y = P·Wᵀ (through reshapes), P the
// one-channel patches with few values each, and nothing but normalize and
// an invStd of y reads y: a CPU plan computes y normProductRows rows at a
// time into a buffer in the cache, twice, first for its statistics and
// then to standardise it, so that y is never written nor read back; the
// second product costs less than the passes over y it saves. invStd takes
// normalize's statistics. With sgemmFMA, whose elements do not depend on
// the rows it is given, the values are the bits of the unfused ops (the
// statistics add up the rows in order); other gemms may round otherwise.

// normProductRows is the rows of y a block takes, and normProductK the
// most values a patch may have.
const (
	normProductRows = 1024
	normProductK    = 16
)

// planNormProductFusion fuses the normalize node n with the product behind
// its argument and the reshapes between, and an invStd of the same
// argument after n (pos gives the nodes' order); it reports whether it
// did.
func planNormProductFusion(n *G.Node, op normalizeOp, pos map[*G.Node]int, readers map[*G.Node]G.Nodes, out map[*G.Node]bool, fused map[*G.Node]fusion, dead map[*G.Node]bool) bool {
	y := inputs(n)[0]
	var inv *G.Node
	for _, r := range readers[y] {
		if r == n {
			continue
		}
		// An invStd before normalize could not take its statistics.
		if is, ok := kernelOf[invStdOp](r); !ok || is.eps != op.eps || inv != nil || pos[r] < pos[n] {
			return false
		}
		inv = r
	}
	if _, done := fused[inv]; done && inv != nil {
		return false
	}
	var chain G.Nodes // the reshapes from the product to y
	x := y
	for {
		if x.Op() == nil || out[x] || dead[x] {
			return false
		}
		if _, done := fused[x]; done {
			return false
		}
		if kind, _, _ := describeOp(x.Op()); kind != "reshape" {
			break
		}
		chain = append(chain, x)
		x = inputs(x)[0]
		if len(readers[x]) != 1 {
			return false
		}
	}
	mm, ok := kernelOf[matMulOp](x)
	if !ok || mm.transA || !mm.transB {
		return false
	}
	in := inputs(x)
	s, ps, ws := x.Shape(), in[0].Shape(), in[1].Shape()
	if len(s) != 3 || !y.Shape().Eq(s) || len(ps) != 3 || len(ws) != 3 || in[0] == in[1] {
		return false
	}
	tasks, m, c, k := s[0], s[1], s[2], ps[2]
	if k > normProductK || !ps.Eq(tensor.Shape{tasks, m, k}) || !ws.Eq(tensor.Shape{tasks, c, k}) ||
		n.Dtype() != x.Dtype() || in[0].Dtype() != x.Dtype() || in[1].Dtype() != x.Dtype() {
		return false
	}
	sh := &sharedStats{}
	size := int64(n.Dtype().Size())
	fu := fusion{args: G.Nodes{in[0], in[1]}, side: int64(tasks*c) * 8, scratch: int64(normProductRows*c)*size + int64(3*c*8)}
	var take nativeKernel
	switch n.Dtype() {
	case tensor.Float32:
		fu.kern, take = normProductKernel[float32](op.eps, tasks, m, c, k, sh), channelsShared[float32](sh)
	case tensor.Float64:
		fu.kern, take = normProductKernel[float64](op.eps, tasks, m, c, k, sh), channelsShared[float64](sh)
	default:
		return false
	}
	fused[n] = fu
	if inv != nil {
		// It reads normalize's value, which comes first, for its shape.
		fused[inv] = fusion{args: G.Nodes{n}, kern: take}
	}
	dead[x] = true
	for _, r := range chain {
		dead[r] = true
	}
	return true
}

// normProductKernel computes normalize(P·Wᵀ) from P [tasks, m, k] and W
// [tasks, c, k], recording 1/√(variance + eps) in sh.
func normProductKernel[T float](eps float64, tasks, m, c, k int, sh *sharedStats) nativeKernel {
	want := []tensor.Shape{{tasks, m, k}, {tasks, c, k}}
	return func(pre G.Value, in []G.Value) (G.Value, bool) {
		sh.ok = false
		if len(in) != 2 {
			return nil, false
		}
		var a [2][]T
		for i, v := range in {
			d, s, err := floats[T](v)
			if err != nil || !s.Eq(want[i]) {
				return nil, false
			}
			a[i] = d
		}
		if cap(sh.vals) < tasks*c {
			sh.vals = make([]float64, tasks*c)
		}
		sh.vals = sh.vals[:tasks*c]
		res := reuse[T](pre, tasks*m*c)
		if err := runNormProduct(res, a[0], a[1], sh.vals, eps, tasks, m, c, k); err != nil {
			return nil, false
		}
		sh.ok = true
		return wrap(pre, res, tensor.Shape{tasks, m, c}), true
	}
}

// runNormProduct computes normProductKernel's value into res and the
// inverse deviations into invs, the tasks over the CPUs.
func runNormProduct[T float](res, p, w []T, invs []float64, eps float64, tasks, m, c, k int) error {
	gemm, err := blockGemm[T](m, c, k)
	if err != nil {
		return err
	}
	mul := func(dst, a, b []T, rows int) { gemm(dst, blas.NoTrans, blas.Trans, rows, c, k, a, k, b, k) }
	work := func(first, end int) {
		buf := getScratch[T](normProductRows * c)
		defer putScratch(buf)
		f := make([]float64, 3*c)
		s1, s2, shift := f[:c], f[c:2*c], f[2*c:]
		for t := first; t < end; t++ {
			wt := w[t*c*k : (t+1)*c*k]
			block := func(r0 int) (y []T, n int) {
				n = min(normProductRows, m-r0)
				y = (*buf)[:n*c]
				mul(y, p[(t*m+r0)*k:(t*m+r0+n)*k], wt, n)
				return y, n
			}
			if m == 0 {
				for j := range c {
					invs[t*c+j] = math.NaN()
				}
				continue
			}
			clear(s1)
			clear(s2)
			for r0 := 0; r0 < m; r0 += normProductRows {
				y, n := block(r0)
				if r0 == 0 {
					for j, v := range y[:c] {
						shift[j] = float64(v)
					}
				}
				addStats(s1, s2, shift, y, n, c, 0)
			}
			finishStats(s1, s2, shift, m, eps)
			copy(invs[t*c:(t+1)*c], s2)
			for r0 := 0; r0 < m; r0 += normProductRows {
				y, n := block(r0)
				normRows(res[(t*m+r0)*c:(t*m+r0+n)*c], y, n, c, 0, s1, s2)
			}
		}
	}
	if cost := 2 * m * c * k / macsPerTouch; parallelWorth(tasks, cost) && concurrentGemm(m, c, k, isF32[T]()) {
		parallelFor(tasks, cost, work)
	} else {
		work(0, tasks)
	}
	return nil
}
