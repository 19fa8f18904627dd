package graph

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ErrUnsupported is matched by the errors a Device returns for an op it
// does not run; Plan then runs that op on the CPU.
var ErrUnsupported = errors.New("op not supported by the device")

// OpSpec describes one op of a compiled graph to a Device: what it
// computes, on what element type and shapes. Kind names the op; Attr holds
// its integer attributes and Eps its one real attribute, both as listed
// below. Scalar arguments and results have the scalar shape (size 1).
//
//	kind            arguments                  attributes
//	add sub mul div a, b (same shape, or one a scalar)
//	neg square sqrt exp log tanh sigmoid abs inverse
//	                x
//	reshape         x (a view: same elements, new shape)
//	stopgradient    x (identity)
//	relu            x
//	relumask        x, g: g where x > 0, else 0
//	broadcast       x                          axis, n: a new axis of size n at axis
//	sumaxis         x                          axis: summed away
//	sumrows         x [T, r, c]: column sums [T, c]
//	matmul          a [B,m,k], b [B,k,n]       transA, transB (0 or 1)
//	transposelast   x [..., r, c] → [..., c, r]
//	im2col, col2im  x                          n, h, w, c, k, stride, pad
//	poolargmax      x [T,n,h,w,c]              n, h, w, c, k
//	gather          x, idx (int)               dims (of idx)
//	scatteradd      g, idx (int)               dims (of idx)
//	scalechannels addchannels dotchannels normback bnback affinechannels
//	                as in batchnorm.go
//	normalize invstd
//	                x                          Eps
//	logsoftmax      x (over the last axis)
//	pick            x [..., classes], labels (int)   classes
//	scatter         g, labels (int)            classes
//	slice           x                          axis, start, end, step
//	concat          x₀, x₁, …                  axis
//
// Three more kinds are not ops of a graph but what an optimiser asks of a
// device (see Plan.Buffer); for adam and sgd the Kernel's output is the
// parameter, read and written in place, and the float64 state arguments
// are updated in place too:
//
//	nonfinite       x → the number of NaN and infinite elements (a float64 scalar)
//	adam            g, m, v, h; h = [lr, β1, β2, ε, 1−β1ᵗ, 1−β2ᵗ]: one step of
//	                Adam, computed in float64 as learners.Adam does
//	sgd             g, vel, h; h = [lr, μ]      momentum (0 or 1; without it,
//	                                           no vel argument)
//
// Int arguments (labels, arg-max indices) have Dtype tensor.Int in In's
// order, which Dtypes gives; Dtype is the op's result type.
type OpSpec struct {
	Kind   string
	Dtype  tensor.Dtype
	In     []tensor.Shape
	Dtypes []tensor.Dtype // the arguments' element types, in In's order
	Out    tensor.Shape
	Attr   map[string]int
	Eps    float64
}

func (s OpSpec) String() string {
	var b strings.Builder
	b.WriteString(s.Kind)
	if len(s.Attr) > 0 {
		keys := make([]string, 0, len(s.Attr))
		for k := range s.Attr {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s=%d", k, s.Attr[k])
		}
		b.WriteByte('}')
	}
	if s.Eps != 0 {
		fmt.Fprintf(&b, "{eps=%g}", s.Eps)
	}
	fmt.Fprintf(&b, " %v → %v %v", s.In, s.Out, s.Dtype)
	return b.String()
}

// describer is implemented by medusa's ops: kind, integer attributes and
// real attribute for OpSpec.
type describer interface {
	describe() (kind string, attr map[string]int, eps float64)
}

// Describe returns the OpSpec of n's op, or false for an input, a constant
// or an op that no device is told about.
func Describe(n *G.Node) (OpSpec, bool) {
	if n == nil || n.Op() == nil || isConstant(n) {
		return OpSpec{}, false
	}
	kind, attr, eps := describeOp(n.Op())
	if kind == "" {
		return OpSpec{}, false
	}
	s := OpSpec{Kind: kind, Dtype: n.Dtype(), Out: n.Shape().Clone(), Attr: attr, Eps: eps}
	for _, c := range inputs(n) {
		s.In = append(s.In, c.Shape().Clone())
		s.Dtypes = append(s.Dtypes, c.Dtype())
	}
	return s, true
}

// gorgoniaUnary maps the names of gorgonia's element-wise unary ops to kinds.
var gorgoniaUnary = map[string]string{
	"neg": "neg", "square": "square", "sqrt": "sqrt", "exp": "exp", "ln": "log",
	"tanh": "tanh", "sigmoid": "sigmoid", "abs": "abs", "inverse": "inverse",
}

// gorgoniaBinary maps the symbols of gorgonia's arithmetic ops to kinds.
var gorgoniaBinary = map[string]string{"+": "add", "-": "sub", "⊙": "mul", "÷": "div"}

func describeOp(op G.Op) (kind string, attr map[string]int, eps float64) {
	if d, ok := op.(describer); ok {
		return d.describe()
	}
	name := op.String()
	switch fmt.Sprintf("%T", op) {
	case "gorgonia.elemBinOp":
		sym, _, _ := strings.Cut(name, " ")
		return gorgoniaBinary[sym], nil, 0
	case "gorgonia.elemUnaryOp":
		return gorgoniaUnary[name], nil, 0
	case "gorgonia.reshapeOp":
		return "reshape", nil, 0
	case "gorgonia.concatOp":
		if axis, ok := intField(op, "axis"); ok {
			return "concat", map[string]int{"axis": axis}, 0
		}
	case "*gorgonia.sliceOp":
		s, ok := op.(tensor.Slice)
		axis, ok2 := intField(op, "along")
		if f := reflect.ValueOf(op).Elem().FieldByName("Slice"); !f.IsValid() || f.IsNil() {
			ok = false // a whole axis: gorgonia's methods would panic
		}
		if ok && ok2 {
			return "slice", map[string]int{"axis": axis, "start": s.Start(), "end": s.End(), "step": s.Step()}, 0
		}
	}
	return "", nil, 0
}

// intField reads the integer field name of a gorgonia op (a struct or a
// pointer to one); gorgonia exports no accessor for it.
func intField(op G.Op, name string) (int, bool) {
	v := reflect.ValueOf(op)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return 0, false
	}
	f := v.FieldByName(name)
	if !f.IsValid() || !f.CanInt() {
		return 0, false
	}
	return int(f.Int()), true
}

// Buffer is memory on a Device holding Len elements of Dtype.
type Buffer interface {
	Len() int
	Dtype() tensor.Dtype
}

// Kernel runs one prepared op on its Device. A Kernel that holds device
// memory of its own also has a Close method (io.Closer), which Plan.Close
// calls.
type Kernel interface {
	// Run computes the op from in (one buffer per argument, in OpSpec.In's
	// order) into out. The kernel may be queued: its results are certain
	// only after the Device's next Download or Sync.
	Run(out Buffer, in []Buffer) error
}

// Device runs ops on an accelerator. A Plan compiled for a Device asks it,
// once per node, for a Kernel; an op whose Kernel fails with ErrUnsupported
// runs on the CPU, and the Plan copies values between host and device
// where the placement changes.
//
// A Device is used by one goroutine at a time.
type Device interface {
	// String names the device in one line ("cuda:0 (NVIDIA H200)").
	String() string
	// Kernel prepares op. Its error matches ErrUnsupported when the device
	// does not run op.
	Kernel(op OpSpec) (Kernel, error)
	// Alloc returns a buffer for n elements of dt.
	Alloc(dt tensor.Dtype, n int) (Buffer, error)
	// Free releases a buffer from Alloc.
	Free(b Buffer) error
	// Upload copies src (a []float32, []float64 or []int of b's length
	// and type) into b.
	Upload(b Buffer, src any) error
	// Download copies b into dst (a slice as for Upload), waiting for the
	// kernels queued before it.
	Download(dst any, b Buffer) error
}

// Recorder is implemented by a Device that can record the kernels a Plan
// runs and replay them as one unit (CUDA graphs): a Plan whose every op is
// on such a device records its second Run and replays the recording in
// the later ones, after uploading the inputs, so that a step costs one
// launch instead of one per op.
type Recorder interface {
	// Record makes the kernels run until Stop be recorded instead of run.
	// Its error matches ErrUnsupported when recording is turned off.
	Record() error
	// Stop ends the recording and returns it; the kernels have not run.
	Stop() (Recording, error)
}

// Recording is a sequence of kernel runs that can be replayed.
type Recording interface {
	// Replay runs the recorded kernels again, on the buffers they were
	// recorded with.
	Replay() error
	// Free releases the recording.
	Free() error
}

// Placement says where a Plan runs its ops.
type Placement struct {
	Device   string         // the device's name; "" for a CPU plan
	OnDevice int            // ops run by the device (views included)
	OnHost   int            // ops run on the CPU
	Recorded bool           // runs are now replayed from a recording (see Recorder)
	HostOps  map[string]int // the ops run on the CPU, by kind or op name, with their counts
}

func (p Placement) String() string {
	if p.Device == "" {
		return fmt.Sprintf("cpu: %d ops", p.OnHost)
	}
	s := fmt.Sprintf("%s: %d ops on the device, %d on the CPU", p.Device, p.OnDevice, p.OnHost)
	if len(p.HostOps) > 0 {
		var names []string
		for k, n := range p.HostOps {
			names = append(names, fmt.Sprintf("%s×%d", k, n))
		}
		slices.Sort(names)
		s += " (" + strings.Join(names, ", ") + ")"
	}
	if p.Recorded {
		s += "; runs replayed from a recording"
	}
	return s
}

// Copies counts the values a Plan moved between host and device.
type Copies struct {
	Up, Down           int // values uploaded, downloaded
	UpBytes, DownBytes int
}

// MemoryReporter is a Device that says how much of its memory is free.
// CompileOn refuses, with a *MemoryError, a plan whose buffers on such a
// device would not fit (Plan.DeviceBytes).
type MemoryReporter interface {
	FreeMemory() (int64, error)
}
