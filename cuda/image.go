package cuda

import (
	"fmt"

	"github.com/medusa-ml/medusa/graph"
	"gorgonia.org/tensor"
)

// imageKernel prepares the ops of convolutional networks: im2col, col2im,
// transposelast, pooling, gather and scatter-add, batch normalisation's
// ops, sumrows, slice and concat. The kernels reproduce the CPU's
// (graph/conv.go, pool.go, batchnorm.go) to the last bit: sums run in the
// CPU's order and precision.
func (d *Device) imageKernel(op graph.OpSpec) (graph.Kernel, error) {
	dt, n := op.Dtype, op.Out.TotalSize()
	attr := op.Attr
	switch op.Kind {
	case "im2col", "col2im":
		if err := argTypes(op, dt); err != nil {
			return nil, err
		}
		h, w, ch, k, stride, pad := attr["h"], attr["w"], attr["c"], attr["k"], attr["stride"], attr["pad"]
		if k < 1 || stride < 1 || pad < 0 || h+2*pad < k || w+2*pad < k || ch < 1 {
			return nil, unsupported(op, "window does not fit")
		}
		ho, wo := (h+2*pad-k)/stride+1, (w+2*pad-k)/stride+1
		imgs, cols := op.In[0], op.Out
		if op.Kind == "col2im" {
			imgs, cols = cols, imgs
		}
		if len(imgs) != 5 || !imgs[1:].Eq(tensor.Shape{attr["n"], h, w, ch}) ||
			!cols.Eq(tensor.Shape{imgs[0], attr["n"] * ho * wo, k * k * ch}) {
			return nil, unsupported(op, "shapes do not match the window")
		}
		return d.kernel(op.Kind, dt, n, c(n), c(h), c(w), c(ch), c(k), c(stride), c(pad), c(ho), c(wo), in(0), out)
	case "transposelast":
		s := op.In[0]
		if len(s) != 3 || argTypes(op, dt) != nil {
			return nil, unsupported(op, "not a batch of matrices")
		}
		return d.kernel("transposelast", dt, n, c(s[0]), c(s[1]), c(s[2]), in(0), out)
	case "poolargmax":
		// The result is int; the kernel is the one for x's type.
		if len(op.Dtypes) != 1 || (op.Dtypes[0] != tensor.Float32 && op.Dtypes[0] != tensor.Float64) || dt != tensor.Int {
			return nil, unsupported(op, "wants float images and int indices")
		}
		h, w, ch, k := attr["h"], attr["w"], attr["c"], attr["k"]
		s := op.In[0]
		if k < 1 || h < k || w < k || len(s) != 5 || !s[1:].Eq(tensor.Shape{attr["n"], h, w, ch}) ||
			!op.Out.Eq(tensor.Shape{s[0], attr["n"], h / k, w / k, ch}) {
			return nil, unsupported(op, "shapes do not match the window")
		}
		return d.kernel("poolargmax", op.Dtypes[0], n, c(n), c(h), c(w), c(ch), c(k), c(h/k), c(w/k), in(0), out)
	case "gather":
		if err := argTypes(op, dt, tensor.Int); err != nil {
			return nil, err
		}
		return d.kernel("gather", dt, n, c(n), c(op.In[0].TotalSize()), in(0), in(1), out)
	case "scatteradd":
		if err := argTypes(op, dt, tensor.Int); err != nil {
			return nil, err
		}
		if op.In[0].TotalSize() != op.In[1].TotalSize() {
			return nil, unsupported(op, "gradient and indices differ in size")
		}
		return d.scatterAdd(op)
	case "scalechannels", "addchannels", "affinechannels", "dotchannels", "sumrows", "invstd", "normalize", "normback", "bnback":
		return d.channelOp(op)
	case "slice":
		return d.slice(op)
	case "concat":
		return d.concat(op)
	}
	return nil, unsupported(op, "no kernel")
}

// argTypes checks the arguments' element types.
func argTypes(op graph.OpSpec, want ...tensor.Dtype) error {
	if len(op.Dtypes) != len(want) || len(op.In) != len(want) {
		return unsupported(op, fmt.Sprintf("%d arguments, want %d", len(op.In), len(want)))
	}
	for i, dt := range op.Dtypes {
		if dt != want[i] {
			return unsupported(op, fmt.Sprintf("argument %d is %v, want %v", i, dt, want[i]))
		}
	}
	return nil
}

// channelArity is the number of arguments of each per-channel op.
var channelArity = map[string]int{
	"scalechannels": 2, "addchannels": 2, "affinechannels": 3, "dotchannels": 2,
	"sumrows": 1, "invstd": 1, "normalize": 1, "normback": 3, "bnback": 6,
}

// channelOp prepares batch normalisation's ops on x [tasks, m, c] and
// per-channel values [tasks, c]; dotchannels, normback and bnback take a
// second [tasks, m, c].
func (d *Device) channelOp(op graph.OpSpec) (graph.Kernel, error) {
	dt, n := op.Dtype, op.Out.TotalSize()
	want := make([]tensor.Dtype, channelArity[op.Kind])
	for i := range want {
		want[i] = dt
	}
	if err := argTypes(op, want...); err != nil {
		return nil, err
	}
	x := op.In[0]
	if len(x) != 3 {
		return nil, unsupported(op, "not [tasks, m, c]")
	}
	tasks, m, ch := x[0], x[1], x[2]
	for i, s := range op.In[1:] {
		full := op.Kind == "dotchannels" || (op.Kind == "normback" || op.Kind == "bnback") && i == 0
		if full && !s.Eq(x) || !full && !s.Eq(tensor.Shape{tasks, ch}) {
			return nil, unsupported(op, fmt.Sprintf("argument %d is %v with x %v", i+1, s, x))
		}
	}
	switch op.Kind {
	case "scalechannels", "addchannels":
		return d.kernel(op.Kind, dt, n, c(n), c(m), c(ch), in(0), in(1), out)
	case "affinechannels":
		return d.kernel(op.Kind, dt, n, c(n), c(m), c(ch), in(0), in(1), in(2), out)
	case "bnback":
		return d.kernel(op.Kind, dt, n, c(n), c(m), c(ch), in(0), in(1), in(2), in(3), in(4), in(5), out)
	}
	if m == 0 && op.Kind != "sumrows" && op.Kind != "dotchannels" {
		return nil, unsupported(op, "statistics of no rows")
	}
	// Per-channel sums in two passes (reduce.cu), then for normalize and
	// normback an element-wise pass over the statistics in st.
	// The modes of chanpart and chanfinal.
	modes := map[string][2]int{
		"sumrows": {0, 0}, "dotchannels": {1, 1}, "invstd": {2, 2}, "normalize": {2, 3}, "normback": {3, 4},
	}[op.Kind]
	part, final := modes[0], modes[1]
	b := in(0) // chanpart's second argument where the mode reads one
	if op.Kind == "dotchannels" || op.Kind == "normback" {
		b = in(1)
	}
	nq, chunk := chunking(tasks*ch, m)
	p := &passes{d: d}
	sums, err := p.alloc(tensor.Float64, 2*tasks*nq*ch)
	if err != nil {
		return nil, err
	}
	st := sums // a placeholder where the final pass writes out instead
	if op.Kind == "normalize" || op.Kind == "normback" {
		if st, err = p.alloc(tensor.Float64, 2*tasks*ch); err != nil {
			p.Close()
			return nil, err
		}
	}
	p.add(&err, "chanpart", dt, tasks*nq*ch, c(tasks), c(m), c(ch), c(nq), c(chunk), c(part), in(0), b, temp(sums, 0))
	p.add(&err, "chanfinal", dt, tasks*ch, c(tasks), c(m), c(ch), c(nq), c(final), realArg(op.Eps), in(0), temp(sums, 0), out, temp(st, 0))
	switch op.Kind {
	case "normalize":
		p.add(&err, "normalize", dt, n, c(n), c(m), c(ch), in(0), temp(st, 0), out)
	case "normback":
		p.add(&err, "normback", dt, n, c(n), c(m), c(ch), in(0), in(1), in(2), temp(st, 0), out)
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// chunking returns into how many chunks of how many rows to cut m rows
// for outputs independent sums (reduce.cu): one chunk when the outputs
// alone give the device about 16,384 threads, else enough chunks of at
// least 64 rows to come near that. It depends on the shapes only, so a
// GPU's results do not depend on which GPU it is.
func chunking(outputs, m int) (nq, chunk int) {
	const threads, rows = 16384, 64
	if m <= rows || outputs >= threads {
		return 1, max(m, 1)
	}
	nq = min((m+rows-1)/rows, (threads+outputs-1)/max(outputs, 1))
	chunk = (m + nq - 1) / nq
	return (m + chunk - 1) / chunk, chunk
}

// temp passes the address of element i of a buffer the kernel owns.
func temp(b *buffer, i int) arg {
	return arg{from: -2, val: uint64(b.p) + uint64(i)*uint64(b.dt.Size())}
}

// passes is a Kernel of several launches run in order on the same
// arguments and output, with the temporary buffers they share.
type passes struct {
	d     *Device
	runs  []graph.Kernel
	temps []*buffer
}

// Run implements graph.Kernel.
func (p *passes) Run(o graph.Buffer, ins []graph.Buffer) error {
	for _, k := range p.runs {
		if err := k.Run(o, ins); err != nil {
			return err
		}
	}
	return nil
}

// Close frees the temporary buffers.
func (p *passes) Close() error {
	var first error
	for _, b := range p.temps {
		if err := p.d.Free(b); err != nil && first == nil {
			first = err
		}
	}
	p.temps = nil
	return first
}

// add appends a launch of name, keeping the first error.
func (p *passes) add(err *error, name string, dt tensor.Dtype, work int, args ...arg) {
	if *err != nil {
		return
	}
	k, e := p.d.kernel(name, dt, work, args...)
	if e != nil {
		*err = e
		return
	}
	p.runs = append(p.runs, k)
}

// alloc returns a temporary buffer of n elements of dt.
func (p *passes) alloc(dt tensor.Dtype, n int) (*buffer, error) {
	b, err := p.d.Alloc(dt, n)
	if err != nil {
		return nil, err
	}
	p.temps = append(p.temps, b.(*buffer))
	return b.(*buffer), nil
}

// slice prepares gorgonia's slice of one axis. The CPU's shape inference
// and its slicing disagree on a few slices (a step that does not divide
// the range, on an axis after the first; an empty range, which selects
// everything); those are left to the CPU.
func (d *Device) slice(op graph.OpSpec) (graph.Kernel, error) {
	if err := argTypes(op, op.Dtype); err != nil {
		return nil, err
	}
	s, axis := op.In[0], op.Attr["axis"]
	if axis < 0 || axis >= len(s) {
		return nil, unsupported(op, "no such axis")
	}
	size, start, end, step := s[axis], op.Attr["start"], op.Attr["end"], op.Attr["step"]
	if start < 0 || start >= size || end <= start {
		return nil, unsupported(op, "an empty or out-of-range slice")
	}
	end = min(end, size)
	cnt := 1
	switch {
	case step <= 0:
		if end-start != 1 {
			return nil, unsupported(op, "a step of 0 over more than one position")
		}
		step = 1
	case axis > 0 && (end-start)%step != 0:
		return nil, unsupported(op, "a step that does not divide the range")
	default:
		cnt = max((end-start)/step, 1)
	}
	outer, inner, n := prod(s[:axis]), prod(s[axis+1:]), op.Out.TotalSize()
	if n != outer*cnt*inner {
		return nil, unsupported(op, "output size does not match the slice")
	}
	return d.kernel("slice", op.Dtype, n, c(n), c(size), c(cnt), c(inner), c(start), c(step), in(0), out)
}

// concat prepares gorgonia's concatenation: one copy per argument into its
// part of the output.
func (d *Device) concat(op graph.OpSpec) (graph.Kernel, error) {
	want := make([]tensor.Dtype, len(op.In))
	for i := range want {
		want[i] = op.Dtype
	}
	if err := argTypes(op, want...); err != nil {
		return nil, err
	}
	o, axis := op.Out, op.Attr["axis"]
	if axis < 0 || axis >= len(o) || len(op.In) == 0 {
		return nil, unsupported(op, "no such axis")
	}
	inner, off := prod(o[axis+1:]), 0
	p := &passes{d: d}
	var err error
	for i, s := range op.In {
		if len(s) != len(o) || !s[:axis].Eq(o[:axis]) || !s[axis+1:].Eq(o[axis+1:]) {
			return nil, unsupported(op, "shapes differ off the axis")
		}
		p.add(&err, "concatpart", op.Dtype, s.TotalSize(), c(s.TotalSize()), c(s[axis]), c(inner), c(o[axis]), c(off), in(i), out)
		off += s[axis]
	}
	if err != nil {
		return nil, err
	}
	if off != o[axis] {
		return nil, unsupported(op, "axis sizes do not add up")
	}
	return p, nil
}

// scatterAddKernel is scatteradd: out is zero but for out[idx[j]] +=
// g[j], j in order. The launches are the same on every Run, with no
// copies to the host, so that a recorded step replays them (see pool.cu):
// for each window size k that fits the shapes as max-pooling's, the
// device reduces "every index lies in its window" to a flag, through
// passes of at most scatterChunk² and scatterChunk threads; the first k
// that holds gives each output its one term in parallel, and other
// indices (no op of medusa makes those) take the CPU's loop in one thread.
type scatterAddKernel struct {
	passes
	ks []int // the candidate window sizes
}

// scatterChunk bounds the threads of scatterAdd's reduction passes.
const scatterChunk = 256

// poolWindows returns the window sizes k, largest first and at most 8,
// for which out [tasks, n, h, w, c] pooled with k×k windows at stride k
// has idx's shape [tasks, n, h/k, w/k, c]. With one window per image
// (h/k = w/k = 1) they all start at the corner, and the largest holds the
// others' positions.
func poolWindows(out, idx tensor.Shape) []int {
	if len(out) != 5 || len(idx) != 5 || out[0] != idx[0] || out[1] != idx[1] || out[4] != idx[4] || idx[2] < 1 || idx[3] < 1 {
		return nil
	}
	var ks []int
	for k := min(out[2], out[3]); k >= 1 && len(ks) < 8; k-- {
		if out[2]/k == idx[2] && out[3]/k == idx[3] {
			ks = append(ks, k)
		}
	}
	return ks
}

func (d *Device) scatterAdd(op graph.OpSpec) (graph.Kernel, error) {
	dt, size, n := op.Dtype, op.Out.TotalSize(), op.In[1].TotalSize()
	s := &scatterAddKernel{passes: passes{d: d}, ks: poolWindows(op.Out, op.In[1])}
	o, is := op.Out, op.In[1] // as [tasks, n, h, w, c] and [tasks, n, ho, wo, c] when there are candidates
	// flags: the choice, each candidate's flag, then room for each one's
	// passes.
	f0 := max(min(n, scatterChunk*scatterChunk), 1)
	nk := len(s.ks)
	flags, err := s.alloc(tensor.Int, 1+nk*(1+f0+scatterChunk))
	if err != nil {
		return nil, err
	}
	for b, k := range s.ks {
		base, final := 1+nk+b*(f0+scatterChunk), 1+b
		at, f := base, f0
		if f == 1 {
			at = final
		}
		s.add(&err, "poolidxok", dt, f, c(n), c(o[2]), c(o[3]), c(o[4]), c(k), c(is[2]), c(is[3]), c(f), in(1), temp(flags, at))
		for f > 1 {
			next, to := scatterChunk, base+f0
			if f <= scatterChunk {
				next, to = 1, final
			}
			s.add(&err, "alltrue", dt, next, c(f), c(next), temp(flags, at), temp(flags, to))
			at, f = to, next
		}
	}
	s.add(&err, "firsttrue", dt, 1, c(nk), temp(flags, 1), temp(flags, 0))
	for b, k := range s.ks {
		s.add(&err, "poolscatter", dt, size, c(size), c(o[2]), c(o[3]), c(o[4]), c(k), c(is[2]), c(is[3]), c(b), temp(flags, 0), in(0), in(1), out)
	}
	s.add(&err, "scatteraddserial", dt, 1, c(size), c(n), temp(flags, 0), in(0), in(1), out)
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}
