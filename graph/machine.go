package graph

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Machine executes a graph that was compiled once: bind inputs by name, run,
// read outputs. Implementations may change (a static-plan executor with
// preallocated buffers, a GPU backend) without touching the code that uses
// them.
//
// A Machine is not safe for concurrent use; separate machines may run
// concurrently.
type Machine interface {
	// Let binds the input node called name to v. The value is used, not
	// copied, until it is bound again.
	Let(name string, v tensor.Tensor) error
	// Run executes the graph once with the bound inputs.
	Run() error
	// Read returns n's value from the last Run. The value belongs to the
	// machine and is replaced by the next Run.
	Read(n *G.Node) (G.Value, error)
	// Close releases the machine's resources.
	Close() error
}

// Plan is a Machine that runs each op of the graph once per Run, in
// topological order. An op that can write into a given buffer (gorgonia's
// UsePreallocDoer) gets one to overwrite, others allocate afresh. The
// requested outputs keep their buffers from Run to Run. A CPU plan
// compiled for given outputs reuses the buffer of an intermediate value
// once the last op that reads it has run (see reuse.go); a plan of every
// node, or on a Device, keeps every node's buffer. No buffer is
// overwritten while a value in it can still be read, so Plan is immune to
// the in-place overwrites that gorgonia's TapeMachine register allocator
// makes on graphs holding higher-order gradients (a gradient of log x
// there comes out as 1/x²).
type Plan struct {
	g      *G.ExprGraph
	nodes  G.Nodes // topological order, children first
	args   [][]int
	index  map[*G.Node]int
	vals   []G.Value
	inputs map[string]int
	shapes []tensor.Shape     // of the inputs, cloned once (a node's Shape clones)
	unused map[string]*G.Node // inputs of g that no output depends on
	fixed  []bool             // constants, computed at compile time
	bound  []bool             // inputs bound with Let
	owned  []bool             // vals[i] is a buffer node i's op made and may overwrite
	native []nativeKernel     // medusa's kernel for node i's op (native.go); nil: the op's Do
	fused  []bool             // node i runs a fused kernel (fuse.go) on p.args[i]
	side   int64              // bytes the fused and shared kernels hold beside the values (fuse.go, share.go)

	// On a Device (all nil for a CPU plan):
	dev    Device
	onDev  []bool   // node i runs on the device (views: shares its argument's buffer)
	view   []bool   // node i is a view on the device: buf[i] is its argument's
	kern   []Kernel // the device kernel of node i
	buf    []Buffer // node i's device buffer
	hostOK []bool   // vals[i] holds node i's current value
	devOK  []bool   // buf[i] holds node i's current value
	read   []bool   // node i is an output, which Read downloads
	copies Copies   // of the last Run

	// Recording (see Recorder): every op is on a Recorder device.
	recordable bool
	runs       int       // successful Runs so far
	rec        Recording // from the second Run on

	reuse *reuseState // buffer reuse (reuse.go); nil: every node keeps its buffer
}

var _ Machine = (*Plan)(nil)

// Compile returns a Plan that computes outputs (every node of g if none are
// given) on the CPU. Input nodes must have unique names. A plan of given
// outputs fuses some ops (fuse.go): the intermediate values a fused kernel
// does without, such as a convolution's patches, are not in it (Has
// reports false for them), unless they are outputs.
func Compile(g *G.ExprGraph, outputs ...*G.Node) (*Plan, error) {
	return CompileOn(nil, g, outputs...)
}

// CompileOn is Compile for a Device: each op that dev runs is placed on it,
// the others on the CPU, and Run copies values between the two where the
// placement changes. Inputs are uploaded by every Run that a device op
// needs them in; Read downloads. A nil dev gives a CPU plan.
func CompileOn(dev Device, g *G.ExprGraph, outputs ...*G.Node) (p *Plan, err error) {
	defer recoverError(&err, "Compile")
	if g == nil {
		return nil, fmt.Errorf("graph: Compile: nil graph")
	}
	explicit := len(outputs) > 0
	if !explicit {
		outputs = g.AllNodes()
	}
	p = &Plan{g: g, index: make(map[*G.Node]int), inputs: make(map[string]int)}
	for _, o := range outputs {
		if o == nil || o.Graph() != g {
			return nil, fmt.Errorf("graph: Compile: output is not a node of the graph")
		}
		for _, n := range topoSort(o) {
			if _, seen := p.index[n]; seen {
				continue
			}
			p.index[n] = len(p.nodes)
			p.nodes = append(p.nodes, n)
		}
	}
	var fused map[*G.Node]fusion
	if dev == nil && nativeOn() {
		if explicit {
			var dead map[*G.Node]bool
			fused, dead = planFusions(p.nodes, outputs)
			if len(dead) > 0 {
				kept := make(G.Nodes, 0, len(p.nodes)-len(dead))
				for _, n := range p.nodes {
					if !dead[n] {
						kept = append(kept, n)
					}
				}
				p.nodes = kept
			}
		}
		if shareWork {
			p.nodes = orderForSharing(p.nodes)
		}
		clear(p.index)
		for i, n := range p.nodes {
			p.index[n] = i
		}
	}
	p.unused = make(map[string]*G.Node)
	for _, n := range g.AllNodes() {
		if _, used := p.index[n]; !used && n.Op() == nil {
			p.unused[n.Name()] = n
		}
	}
	p.args = make([][]int, len(p.nodes))
	p.vals = make([]G.Value, len(p.nodes))
	p.fixed = make([]bool, len(p.nodes))
	p.bound = make([]bool, len(p.nodes))
	p.owned = make([]bool, len(p.nodes))
	p.shapes = make([]tensor.Shape, len(p.nodes))
	for i, n := range p.nodes {
		args := inputs(n)
		if fu, ok := fused[n]; ok {
			args = fu.args
		}
		for _, c := range args {
			p.args[i] = append(p.args[i], p.index[c])
		}
		switch {
		case n.Op() == nil:
			if prev, dup := p.inputs[n.Name()]; dup && p.nodes[prev] != n {
				return nil, fmt.Errorf("graph: Compile: two inputs named %q", n.Name())
			}
			p.inputs[n.Name()] = i
			p.shapes[i] = n.Shape()
		case isConstant(n):
			v, err := n.Op().Do()
			if err != nil {
				return nil, fmt.Errorf("graph: Compile: constant %s: %v", n.Name(), err)
			}
			p.vals[i], p.fixed[i] = v, true
		}
	}
	if nativeOn() {
		var scratch int64
		p.native = make([]nativeKernel, len(p.nodes))
		p.fused = make([]bool, len(p.nodes))
		for i, n := range p.nodes {
			if fu, ok := fused[n]; ok {
				p.native[i], p.fused[i] = fu.kern, true
				p.side = satAdd(p.side, fu.side)
				scratch = max(scratch, fu.scratch)
			} else if n.Op() != nil && !p.fixed[i] {
				p.native[i] = nativeFor(n)
			}
		}
		// Each goroutine keeps a scratch buffer of the largest size.
		p.side = satAdd(p.side, satMul(scratch, int64(runtime.GOMAXPROCS(0))))
		if dev == nil {
			p.share()
		}
	}
	if dev != nil {
		p.read = make([]bool, len(p.nodes))
		for _, o := range outputs {
			p.read[p.index[o]] = true
		}
		if err := p.place(dev); err != nil {
			return nil, err
		}
		if mr, ok := dev.(MemoryReporter); ok {
			free, err := mr.FreeMemory()
			if err != nil {
				p.Close()
				return nil, fmt.Errorf("graph: Compile: %s: %v", dev, err)
			}
			if need := p.DeviceBytes(); need > free {
				p.Close()
				return nil, &MemoryError{What: fmt.Sprintf("graph: Compile: the compiled graph's buffers on %s", dev), Need: need, Available: free}
			}
		}
		if err := CheckMemory("graph: Compile: the compiled graph's host values", p.Bytes()); err != nil {
			p.Close()
			return nil, err
		}
		return p, nil
	}
	if explicit && reuseOn() {
		p.planReuse(outputs)
	}
	if err := CheckMemory("graph: Compile: the compiled graph", p.Bytes()); err != nil {
		// Its buffers are allocated as it runs: refuse now, before the
		// Go runtime aborts the process for want of memory.
		return nil, err
	}
	return p, nil
}

// place asks dev for a kernel for every op.
func (p *Plan) place(dev Device) error {
	k := len(p.nodes)
	p.dev = dev
	p.onDev, p.view, p.kern = make([]bool, k), make([]bool, k), make([]Kernel, k)
	p.buf, p.hostOK, p.devOK = make([]Buffer, k), make([]bool, k), make([]bool, k)
	for i, n := range p.nodes {
		if n.Op() == nil || p.fixed[i] {
			p.hostOK[i] = p.fixed[i]
			continue
		}
		spec, ok := Describe(n)
		if !ok {
			continue
		}
		if spec.Kind == "reshape" || spec.Kind == "stopgradient" {
			// A view: on the device when its argument can be there.
			a := p.args[i][0]
			p.onDev[i] = p.onDev[a] || p.nodes[a].Op() == nil || p.fixed[a]
			p.view[i] = p.onDev[i]
			continue
		}
		kern, err := dev.Kernel(spec)
		switch {
		case err == nil:
			p.onDev[i], p.kern[i] = true, kern
		case !errors.Is(err, ErrUnsupported):
			p.closeKernels()
			return fmt.Errorf("graph: Compile: %s on %s: %w", spec, dev, err)
		}
	}
	_, p.recordable = dev.(Recorder)
	for i, n := range p.nodes {
		if n.Op() != nil && !p.fixed[i] && !p.onDev[i] {
			p.recordable = false
		}
	}
	return nil
}

// replay runs the plan from its recording, making it on the first call;
// it reports false when the device cannot record, and the plan then runs
// op by op from now on.
func (p *Plan) replay() (bool, error) {
	for i, n := range p.nodes {
		if n.Op() == nil {
			if !p.bound[i] {
				if p.vals[i] = n.Value(); p.vals[i] == nil {
					return true, fmt.Errorf("graph: Run: input %q is not bound", n.Name())
				}
			}
			p.hostOK[i], p.devOK[i] = true, false
			if err := p.toDevice(i); err != nil {
				return true, fmt.Errorf("graph: Run: input %q to %s: %v", n.Name(), p.dev, err)
			}
		}
	}
	if p.rec == nil {
		r := p.dev.(Recorder)
		if err := r.Record(); err != nil {
			// Recording off, or not possible here: run op by op.
			p.recordable = false
			return false, nil
		}
		rec, err := p.record(r)
		if err != nil {
			// Nothing ran while recording: run op by op instead.
			p.recordable = false
			if rec != nil {
				rec.Free()
			}
			return false, nil
		}
		p.rec = rec
	}
	if err := p.rec.Replay(); err != nil {
		return true, fmt.Errorf("graph: Run: replaying on %s: %v", p.dev, err)
	}
	for i, n := range p.nodes {
		if n.Op() != nil && !p.fixed[i] {
			p.devOK[i], p.hostOK[i] = true, false
		}
	}
	return true, nil
}

// record runs the device ops while r records them, stopping the recording
// however the run ends.
func (p *Plan) record(r Recorder) (rec Recording, err error) {
	stopped := false
	defer func() {
		if !stopped {
			r.Stop() // after a panic: the recording must not outlive the run
		}
	}()
	var ins []Buffer
	for i, n := range p.nodes {
		if n.Op() == nil || p.fixed[i] {
			continue
		}
		if ins, err = p.runDevice(i, ins); err != nil {
			break
		}
	}
	rec, serr := r.Stop()
	stopped = true
	if err == nil {
		err = serr
	}
	return rec, err
}

// closeKernels closes the kernels that hold device memory of their own.
func (p *Plan) closeKernels() error {
	var first error
	for i, k := range p.kern {
		if c, ok := k.(io.Closer); ok {
			if err := c.Close(); err != nil && first == nil {
				first = err
			}
		}
		p.kern[i] = nil
	}
	return first
}

// Has reports whether the plan computes n or takes it as an input that an
// output depends on.
func (p *Plan) Has(n *G.Node) bool {
	_, ok := p.index[n]
	return ok
}

// Device returns the device the plan was compiled for, or nil.
func (p *Plan) Device() Device { return p.dev }

// Buffer returns the device buffer that holds n's value from the last Run,
// uploading the value first if it is only on the host. It lets an
// optimiser work on gradients and parameters where they are. Writing into
// the buffer of an op's output changes what the plan holds for it (Read
// downloads it again), and for views of it, until the next Run, which
// recomputes every op; writing into an input's lasts until the next Run
// uploads the input again, and does not change the caller's tensor. The
// buffer of a constant must not be written.
func (p *Plan) Buffer(n *G.Node) (Buffer, error) {
	if p.dev == nil {
		return nil, fmt.Errorf("graph: Buffer: the plan runs on the CPU")
	}
	if p.vals == nil {
		return nil, fmt.Errorf("graph: Buffer: the machine is closed")
	}
	i, ok := p.index[n]
	if !ok {
		return nil, fmt.Errorf("graph: Buffer: node is not computed by this machine")
	}
	if !p.devOK[i] && !p.hostOK[i] {
		return nil, fmt.Errorf("graph: Buffer %s: no value (has Run been called?)", n.Name())
	}
	if err := p.toDevice(i); err != nil {
		return nil, fmt.Errorf("graph: Buffer %s: copying to %s: %v", n.Name(), p.dev, err)
	}
	if n.Op() != nil && !p.fixed[i] {
		p.hostOK[i] = false // the caller may write into it
	}
	return p.buf[i], nil
}

// Placement reports where the plan runs its ops.
func (p *Plan) Placement() Placement {
	pl := Placement{HostOps: make(map[string]int)}
	if p.dev != nil {
		pl.Device = p.dev.String()
	}
	for i, n := range p.nodes {
		if n.Op() == nil || p.fixed[i] {
			continue
		}
		if p.dev != nil && p.onDev[i] {
			pl.OnDevice++
			pl.Recorded = p.rec != nil
			continue
		}
		pl.OnHost++
		if p.dev != nil {
			name := n.Op().String()
			if spec, ok := Describe(n); ok {
				name = spec.Kind
			}
			pl.HostOps[name]++
		}
	}
	return pl
}

// Copies returns the copies between host and device made by the last Run
// and the Reads since.
func (p *Plan) Copies() Copies { return p.copies }

// toDevice makes buf[i] hold node i's value, uploading it if needed.
func (p *Plan) toDevice(i int) error {
	if p.devOK[i] {
		return nil
	}
	data, _, err := dense(p.vals[i])
	if err != nil {
		return err
	}
	n := p.nodes[i]
	if p.buf[i] == nil {
		if p.buf[i], err = p.dev.Alloc(n.Dtype(), n.Shape().TotalSize()); err != nil {
			return err
		}
	}
	if err := p.dev.Upload(p.buf[i], data); err != nil {
		return err
	}
	p.devOK[i] = true
	p.copies.Up++
	p.copies.UpBytes += n.Shape().TotalSize() * int(n.Dtype().Size())
	return nil
}

// toHost makes vals[i] hold node i's value, downloading it if needed.
func (p *Plan) toHost(i int) error {
	if p.hostOK[i] {
		return nil
	}
	n := p.nodes[i]
	size := n.Shape().TotalSize()
	var data any
	if t, ok := p.vals[i].(*tensor.Dense); ok && !t.IsView() && t.Dtype() == n.Dtype() && t.Size() == size {
		data = t.Data()
	} else {
		switch n.Dtype() {
		case tensor.Float64:
			data = aligned[float64](size)[:size:size]
		case tensor.Float32:
			data = aligned[float32](size)[:size:size]
		case tensor.Int:
			data = make([]int, size)
		default:
			return fmt.Errorf("no host copy of %v values", n.Dtype())
		}
	}
	if err := p.dev.Download(data, p.buf[i]); err != nil {
		return err
	}
	if s := n.Shape(); s.IsScalar() {
		p.vals[i] = newValue(data, s)
	} else if t, ok := p.vals[i].(*tensor.Dense); !ok || t.Data() == nil || !sameData(t.Data(), data) {
		p.vals[i] = tensor.New(tensor.WithShape(s.Clone()...), tensor.WithBacking(data))
	}
	p.hostOK[i] = true
	p.copies.Down++
	p.copies.DownBytes += size * int(n.Dtype().Size())
	return nil
}

// sameData reports whether a and b are the same slice.
func sameData(a, b any) bool {
	switch x := a.(type) {
	case []float64:
		y, ok := b.([]float64)
		return ok && len(x) == len(y) && (len(x) == 0 || &x[0] == &y[0])
	case []float32:
		y, ok := b.([]float32)
		return ok && len(x) == len(y) && (len(x) == 0 || &x[0] == &y[0])
	case []int:
		y, ok := b.([]int)
		return ok && len(x) == len(y) && (len(x) == 0 || &x[0] == &y[0])
	}
	return false
}

// runDevice runs node i on the device.
func (p *Plan) runDevice(i int, ins []Buffer) ([]Buffer, error) {
	for _, a := range p.args[i] {
		if err := p.toDevice(a); err != nil {
			return ins, err
		}
	}
	if p.view[i] {
		p.buf[i] = p.buf[p.args[i][0]]
	} else {
		n := p.nodes[i]
		if p.buf[i] == nil {
			var err error
			if p.buf[i], err = p.dev.Alloc(n.Dtype(), n.Shape().TotalSize()); err != nil {
				return ins, err
			}
		}
		ins = ins[:0]
		for _, a := range p.args[i] {
			ins = append(ins, p.buf[a])
		}
		if err := p.kern[i].Run(p.buf[i], ins); err != nil {
			return ins, err
		}
	}
	p.devOK[i], p.hostOK[i] = true, false
	return ins, nil
}

// Let implements Machine.
func (p *Plan) Let(name string, v tensor.Tensor) error {
	if v == nil {
		return fmt.Errorf("graph: Let %s: nil value", name)
	}
	i, ok := p.inputs[name]
	if !ok {
		if n, ok := p.unused[name]; ok {
			// No output needs it: check, then ignore.
			if !n.Shape().Eq(v.Shape()) || n.Dtype() != v.Dtype() {
				return &ShapeError{Op: "Let " + name, Want: fmt.Sprint(n.Shape(), n.Dtype()), Got: fmt.Sprint(v.Shape(), v.Dtype())}
			}
			return nil
		}
		return fmt.Errorf("graph: Let: no input named %q", name)
	}
	n, shape := p.nodes[i], p.shapes[i]
	if n.Dtype() != v.Dtype() {
		return fmt.Errorf("graph: Let %s: want dtype %v, got %v", name, n.Dtype(), v.Dtype())
	}
	if shape.IsScalar() {
		if v.Shape().TotalSize() != 1 {
			return &ShapeError{Op: "Let " + name, Want: "a scalar", Got: fmt.Sprint(v.Shape())}
		}
		d, _, err := dense(v)
		if err != nil {
			return fmt.Errorf("graph: Let %s: %v", name, err)
		}
		p.vals[i], p.bound[i] = newValue(d, tensor.ScalarShape()), true
		return nil
	}
	if !shape.Eq(v.Shape()) {
		return &ShapeError{Op: "Let " + name, Want: fmt.Sprint(shape), Got: fmt.Sprint(v.Shape())}
	}
	p.vals[i], p.bound[i] = v, true
	return nil
}

// Run implements Machine.
func (p *Plan) Run() (err error) {
	if p.vals == nil {
		return fmt.Errorf("graph: Run: the machine is closed")
	}
	if p.dev != nil {
		// After a failed Run no value of an op may be read: some would be
		// this Run's, others the last one's.
		defer func() {
			if err != nil {
				for i, n := range p.nodes {
					if n.Op() != nil && !p.fixed[i] {
						p.hostOK[i], p.devOK[i] = false, false
					}
				}
			}
		}()
	}
	var cur *G.Node
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("graph: Run: op %v (node %s): %v", cur.Op(), cur.Name(), r)
		}
		if err != nil && p.reuse != nil {
			p.reuse.reset(p)
		}
	}()
	p.copies = Copies{}
	if p.recordable && p.runs > 0 {
		if done, err := p.replay(); done {
			return err
		}
	}
	if p.reuse != nil {
		p.reuse.begin(p)
	}
	in := make([]G.Value, 0, 4)
	var ins []Buffer
	for i, n := range p.nodes {
		if p.fixed[i] {
			continue
		}
		cur = n
		if n.Op() == nil {
			if !p.bound[i] {
				// Perhaps bound with gorgonia.Let directly.
				if p.vals[i] = n.Value(); p.vals[i] == nil {
					return fmt.Errorf("graph: Run: input %q is not bound", n.Name())
				}
			}
			if p.dev != nil {
				p.hostOK[i], p.devOK[i] = true, false
			}
			continue
		}
		if p.dev != nil {
			if p.onDev[i] {
				if ins, err = p.runDevice(i, ins); err != nil {
					return fmt.Errorf("graph: Run: op %v (node %s) on %s: %v", n.Op(), n.Name(), p.dev, err)
				}
				continue
			}
			for _, a := range p.args[i] {
				if err := p.toHost(a); err != nil {
					return fmt.Errorf("graph: Run: op %v (node %s): copying its argument from %s: %v", n.Op(), n.Name(), p.dev, err)
				}
			}
			p.hostOK[i], p.devOK[i] = true, false
		}
		in = in[:0]
		for _, a := range p.args[i] {
			in = append(in, p.vals[a])
		}
		var v G.Value
		pd, prealloc := preallocDoer(n.Op())
		native := p.native != nil && p.native[i] != nil
		var buf G.Value // a buffer the op or its native kernel may write into
		var pooled *tensor.Dense
		switch {
		case (prealloc || native) && p.reuse != nil:
			if t := p.reuse.prealloc(p, i); t != nil {
				buf = t
				if !p.reuse.output[i] {
					pooled = t
				}
			}
		case (prealloc || native) && p.owned[i]:
			buf = p.vals[i]
		}
		ran := false
		if native {
			v, ran = p.native[i](buf, in)
		}
		switch {
		case ran:
		case p.fused != nil && p.fused[i]:
			// Its arguments are not its op's: the op cannot stand in.
			err = fmt.Errorf("the fused kernel declined its arguments %v", shapesOf(in))
		case buf != nil && prealloc:
			v, err = pd.UsePreallocDo(buf, in...)
		default:
			if pooled != nil { // the native kernel declined, and the op takes no buffer
				p.reuse.giveBack(i)
			}
			v, err = n.Op().Do(in...)
		}
		if err != nil {
			return fmt.Errorf("graph: Run: op %v (node %s): %v", n.Op(), n.Name(), err)
		}
		if t, ok := v.(*tensor.Dense); ok && t.Dims() == 0 && n.Shape().IsScalar() {
			// gorgonia's scalar ops want scalar values, not 0-d tensors.
			d, _, err := dense(t)
			if err != nil {
				return fmt.Errorf("graph: Run: op %v (node %s): %v", n.Op(), n.Name(), err)
			}
			v = newValue(d, tensor.ScalarShape())
		}
		p.vals[i] = v
		p.owned[i] = ownBuffer(v, in)
		if p.reuse != nil {
			p.reuse.made(p, i, v)
			p.reuse.done(p, i)
		}
	}
	if p.reuse != nil {
		p.reuse.finish()
	}
	p.runs++
	return nil
}

// preallocDoer returns op as a UsePreallocDoer if it is one that
// overwrites the buffer it is given. gorgonia's sliceIncrOp (the
// derivative of Slice) adds into it instead, so that a reused buffer
// would carry the last Run's values: it is given none.
func preallocDoer(op G.Op) (G.UsePreallocDoer, bool) {
	pd, ok := op.(G.UsePreallocDoer)
	if !ok || reflect.TypeOf(op).String() == "gorgonia.sliceIncrOp" {
		return nil, false
	}
	return pd, true
}

// ownBuffer reports whether v is a dense tensor whose memory none of the
// op's inputs share, so that the op may write into it next time.
func ownBuffer(v G.Value, in []G.Value) bool {
	t, ok := v.(*tensor.Dense)
	if !ok || t.IsView() || t.Dims() == 0 || t.Size() == 0 {
		return false
	}
	lo := t.Uintptr()
	hi := lo + uintptr(t.MemSize())
	for _, x := range in {
		if u, ok := x.(*tensor.Dense); ok && u.Size() > 0 {
			a := u.Uintptr()
			if a < hi && lo < a+uintptr(u.MemSize()) {
				return false
			}
		}
	}
	return true
}

// isConstant reports whether n is a gorgonia constant.
func isConstant(n *G.Node) bool {
	switch fmt.Sprintf("%T", n.Op()) {
	case "gorgonia.constantScalar", "gorgonia.constantTensor":
		return true
	}
	return false
}

// Read implements Machine.
func (p *Plan) Read(n *G.Node) (G.Value, error) {
	if p.vals == nil {
		return nil, fmt.Errorf("graph: Read: the machine is closed")
	}
	i, ok := p.index[n]
	if !ok {
		if n != nil && n.Op() != nil && isConstant(n) {
			return n.Op().Do() // a constant outside the compiled set
		}
		return nil, fmt.Errorf("graph: Read: node is not computed by this machine")
	}
	if p.dev != nil && !p.hostOK[i] {
		if !p.devOK[i] {
			return nil, fmt.Errorf("graph: Read %s: no value (has Run been called?)", n.Name())
		}
		if err := p.toHost(i); err != nil {
			return nil, fmt.Errorf("graph: Read %s: copying from %s: %v", n.Name(), p.dev, err)
		}
	}
	if p.reuse != nil && !p.reuse.output[i] && n.Op() != nil && !p.fixed[i] {
		return nil, fmt.Errorf("graph: Read %s: not an output of the plan (its buffer is reused); compile with it among the outputs", n.Name())
	}
	if p.vals[i] == nil {
		return nil, fmt.Errorf("graph: Read %s: no value (has Run been called?)", n.Name())
	}
	return p.vals[i], nil
}

// ReadFloat64s returns n's value from the last Run as float64s.
func (p *Plan) ReadFloat64s(n *G.Node) ([]float64, error) {
	v, err := p.Read(n)
	if err != nil {
		return nil, err
	}
	return Float64s(v), nil
}

// AppendFloat64s appends n's value, converted to float64, to dst.
func (p *Plan) AppendFloat64s(dst []float64, n *G.Node) ([]float64, error) {
	v, err := p.Read(n)
	if err != nil {
		return dst, err
	}
	out, ok := AppendFloat64s(dst, v)
	if !ok {
		return dst, fmt.Errorf("graph: AppendFloat64s: node %s holds %T, not float32 or float64 values", n.Name(), v)
	}
	return out, nil
}

// Close implements Machine. It frees the plan's device buffers.
func (p *Plan) Close() error {
	p.vals, p.reuse = nil, nil
	var first error
	if p.rec != nil {
		first = p.rec.Free()
		p.rec = nil
	}
	if err := p.closeKernels(); err != nil && first == nil {
		first = fmt.Errorf("graph: Close: %v", err)
	}
	for i, b := range p.buf {
		if b != nil && !p.view[i] {
			if err := p.dev.Free(b); err != nil && first == nil {
				first = fmt.Errorf("graph: Close: %v", err)
			}
		}
	}
	p.buf = nil
	return first
}

// shapesOf lists the shapes of values, for messages.
func shapesOf(vs []G.Value) []tensor.Shape {
	out := make([]tensor.Shape, len(vs))
	for i, v := range vs {
		out[i] = v.Shape()
	}
	return out
}
