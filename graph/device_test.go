package graph

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// hostDevice is a Device whose memory is the host's: it runs the float64
// kinds listed in kinds with plain loops, so that the placement and copy
// logic of a device Plan can be tested on any machine.
type hostDevice struct {
	kinds   map[string]bool
	live    int   // buffers allocated and not freed
	failGet error // returned by Download when set
}

type hostBuffer struct{ data []float64 }

func (b *hostBuffer) Len() int            { return len(b.data) }
func (b *hostBuffer) Dtype() tensor.Dtype { return tensor.Float64 }

func (d *hostDevice) String() string { return "host-test" }

func (d *hostDevice) Alloc(dt tensor.Dtype, n int) (Buffer, error) {
	if dt != tensor.Float64 {
		return nil, fmt.Errorf("host-test: no %v buffers", dt)
	}
	d.live++
	return &hostBuffer{make([]float64, n)}, nil
}

func (d *hostDevice) Free(b Buffer) error { d.live--; return nil }

func (d *hostDevice) Upload(b Buffer, src any) error {
	copy(b.(*hostBuffer).data, src.([]float64))
	return nil
}

func (d *hostDevice) Download(dst any, b Buffer) error {
	if d.failGet != nil {
		return d.failGet
	}
	copy(dst.([]float64), b.(*hostBuffer).data)
	return nil
}

// recordingDevice is a hostDevice that records kernel runs (Recorder).
type recordingDevice struct {
	hostDevice
	off        bool     // Record refuses
	recording  bool     // kernels are being recorded
	log        []func() // the recording being made
	recordings int      // recordings made
	replays    int
}

type hostRecording struct {
	d   *recordingDevice
	log []func()
}

func (r *hostRecording) Replay() error {
	for _, f := range r.log {
		f()
	}
	r.d.replays++
	return nil
}

func (r *hostRecording) Free() error { return nil }

func (d *recordingDevice) Record() error {
	if d.off {
		return fmt.Errorf("host-test: recording off: %w", ErrUnsupported)
	}
	d.recording, d.log = true, nil
	return nil
}

func (d *recordingDevice) Stop() (Recording, error) {
	d.recording = false
	d.recordings++
	return &hostRecording{d: d, log: d.log}, nil
}

func (d *recordingDevice) Kernel(op OpSpec) (Kernel, error) {
	k, err := d.hostDevice.Kernel(op)
	if err != nil {
		return nil, err
	}
	return recordingKernel{d, k.(hostKernel)}, nil
}

type recordingKernel struct {
	d *recordingDevice
	k hostKernel
}

func (k recordingKernel) Run(out Buffer, in []Buffer) error {
	if k.d.recording {
		in := append([]Buffer(nil), in...)
		k.d.log = append(k.d.log, func() { k.k.Run(out, in) })
		return nil
	}
	return k.k.Run(out, in)
}

type hostKernel func(out []float64, in [][]float64)

func (k hostKernel) Run(out Buffer, in []Buffer) error {
	var args [][]float64
	for _, b := range in {
		args = append(args, b.(*hostBuffer).data)
	}
	k(out.(*hostBuffer).data, args)
	return nil
}

// at reads x[i] with a scalar broadcast.
func at(x []float64, i int) float64 {
	if len(x) == 1 {
		return x[0]
	}
	return x[i]
}

func (d *hostDevice) Kernel(op OpSpec) (Kernel, error) {
	if !d.kinds[op.Kind] || op.Dtype != tensor.Float64 {
		return nil, fmt.Errorf("host-test: %s: %w", op.Kind, ErrUnsupported)
	}
	binary := func(f func(a, b float64) float64) hostKernel {
		return func(out []float64, in [][]float64) {
			for i := range out {
				out[i] = f(at(in[0], i), at(in[1], i))
			}
		}
	}
	switch op.Kind {
	case "add":
		return binary(func(a, b float64) float64 { return a + b }), nil
	case "sub":
		return binary(func(a, b float64) float64 { return a - b }), nil
	case "square":
		return hostKernel(func(out []float64, in [][]float64) {
			for i := range out {
				out[i] = in[0][i] * in[0][i]
			}
		}), nil
	case "relumask":
		return hostKernel(func(out []float64, in [][]float64) {
			for i := range out {
				out[i] = 0
				if in[0][i] > 0 {
					out[i] = in[1][i]
				}
			}
		}), nil
	case "broadcast":
		s, axis := op.In[0], op.Attr["axis"]
		outer, inner := 1, 1
		for i, d := range s {
			if i < axis {
				outer *= d
			} else {
				inner *= d
			}
		}
		n := op.Attr["n"]
		return hostKernel(func(out []float64, in [][]float64) {
			broadcastKernel(out, in[0], outer, n, inner)
		}), nil
	case "mul":
		return binary(func(a, b float64) float64 { return a * b }), nil
	case "exp":
		return hostKernel(func(out []float64, in [][]float64) {
			for i := range out {
				out[i] = math.Exp(in[0][i])
			}
		}), nil
	case "relu":
		return hostKernel(func(out []float64, in [][]float64) {
			for i := range out {
				out[i] = math.Max(in[0][i], 0)
			}
		}), nil
	case "matmul":
		as, bs := op.In[0], op.In[1]
		ta, tb := op.Attr["transA"] == 1, op.Attr["transB"] == 1
		batch, m, n := op.Out[0], op.Out[1], op.Out[2]
		k := as[2]
		if ta {
			k = as[1]
		}
		return hostKernel(func(out []float64, in [][]float64) {
			for b := range batch {
				a, x := in[0][b*as[1]*as[2]:], in[1][b*bs[1]*bs[2]:]
				for i := range m {
					for j := range n {
						var s float64
						for l := range k {
							ai, bi := i*as[2]+l, l*bs[2]+j
							if ta {
								ai = l*as[2] + i
							}
							if tb {
								bi = j*bs[2] + l
							}
							s += a[ai] * x[bi]
						}
						out[b*m*n+i*n+j] = s
					}
				}
			}
		}), nil
	case "sumaxis":
		outer, inner := splitShape(op.In[0], op.Attr["axis"])
		n := op.In[0][op.Attr["axis"]]
		return hostKernel(func(out []float64, in [][]float64) {
			sumAxisKernel(out, in[0], outer, n, inner)
		}), nil
	}
	return nil, fmt.Errorf("host-test: %s: %w", op.Kind, ErrUnsupported)
}

// secondOrderGraph builds a graph with a second-order term (the gradient of
// a sum that holds a gradient) over inputs x [2,3,4] and w [2,4,5].
func secondOrderGraph(t *testing.T) (*G.ExprGraph, G.Nodes) {
	t.Helper()
	g := G.NewGraph()
	x := G.NewTensor(g, G.Float64, 3, G.WithShape(2, 3, 4), G.WithName("x"))
	w := G.NewTensor(g, G.Float64, 3, G.WithShape(2, 4, 5), G.WithName("w"))
	h := G.Must(BatchedMatMul(x, w, false, false))
	r := G.Must(ReLU(h))
	e := G.Must(G.Exp(G.Must(Scale(r, -0.5))))
	s := G.Must(G.Add(e, G.Must(G.Square(h))))
	b := G.Must(Broadcast(G.Must(SumAxis(s, 1)), 1, 3))
	inner := G.Must(SumAll(G.Must(G.HadamardProd(b, s))))
	gw, err := Grad(inner, w)
	if err != nil {
		t.Fatal(err)
	}
	outer := G.Must(G.Add(inner, G.Must(SumAll(G.Must(G.Square(gw[0]))))))
	grads, err := Grad(outer, x, w)
	if err != nil {
		t.Fatal(err)
	}
	return g, append(G.Nodes{outer, inner, r, gw[0]}, grads...)
}

func bindXW(t *testing.T, p *Plan, seed float64) {
	t.Helper()
	xd, wd := make([]float64, 24), make([]float64, 40)
	for i := range xd {
		xd[i] = math.Sin(seed*float64(i+1)) * 0.7
	}
	for i := range wd {
		wd[i] = math.Cos(seed*float64(i+3)) * 0.5
	}
	if err := p.Let("x", tensor.New(tensor.WithShape(2, 3, 4), tensor.WithBacking(xd))); err != nil {
		t.Fatal(err)
	}
	if err := p.Let("w", tensor.New(tensor.WithShape(2, 4, 5), tensor.WithBacking(wd))); err != nil {
		t.Fatal(err)
	}
}

// runAndCompare runs a CPU plan and a device plan of secondOrderGraph on
// the inputs of seed and checks that every output agrees within 1e-12.
func runAndCompare(t *testing.T, cpu, p *Plan, outs G.Nodes, seed float64) {
	t.Helper()
	for _, m := range []*Plan{cpu, p} {
		bindXW(t, m, seed)
		if err := m.Run(); err != nil {
			t.Fatal(err)
		}
	}
	for k, o := range outs {
		want, got := read(t, cpu, o), read(t, p, o)
		for i := range want {
			if e := math.Abs(got[i] - want[i]); e > 1e-12*math.Max(1, math.Abs(want[i])) {
				t.Fatalf("seed %v output %d[%d]: device plan %v, CPU plan %v", seed, k, i, got[i], want[i])
			}
		}
	}
}

// TestPlanOnDevice runs a second-order graph with some kinds on a device
// and the rest on the CPU, on several inputs, and checks every output
// against the CPU plan, the placement it reports, the copies it makes and
// that Close frees every buffer.
func TestPlanOnDevice(t *testing.T) {
	for _, kinds := range [][]string{
		{"add", "mul", "exp", "relu", "matmul", "sumaxis"},
		{"matmul"},
		{"add", "exp"}, // views of inputs on the device, their consumers on the CPU
		{},
	} {
		t.Run(strings.Join(kinds, ","), func(t *testing.T) {
			dev := &hostDevice{kinds: map[string]bool{}}
			for _, k := range kinds {
				dev.kinds[k] = true
			}
			g, outs := secondOrderGraph(t)
			cpu, err := Compile(g, outs...)
			if err != nil {
				t.Fatal(err)
			}
			p, err := CompileOn(dev, g, outs...)
			if err != nil {
				t.Fatal(err)
			}
			pl := p.Placement()
			if pl.OnDevice+pl.OnHost != cpu.Placement().OnHost {
				t.Errorf("Placement() = %v; want %d ops in all", pl, cpu.Placement().OnHost)
			}
			if len(kinds) > 0 && pl.OnDevice == 0 {
				t.Errorf("Placement() = %v; want some ops on the device", pl)
			}
			for _, k := range kinds {
				if pl.HostOps[k] > 0 {
					t.Errorf("Placement() = %v; %s runs on the host", pl, k)
				}
			}
			if pl.HostOps["broadcast"] == 0 {
				t.Errorf("Placement() = %v; want the broadcast on the host", pl)
			}
			for _, seed := range []float64{1.3, 2.9, 1.3} {
				runAndCompare(t, cpu, p, outs, seed)
				c := p.Copies()
				if len(kinds) > 0 && (c.Up == 0 || c.Down == 0 || c.UpBytes < 8*c.Up) {
					t.Errorf("Copies() = %+v; want uploads and downloads", c)
				}
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if dev.live != 0 {
				t.Errorf("%d device buffers live after Close", dev.live)
			}
		})
	}
}

type failingDevice struct{ hostDevice }

func (d *failingDevice) Kernel(op OpSpec) (Kernel, error) {
	return nil, errors.New("out of registers")
}

// TestPlanOnDeviceErrors checks that a device's errors reach the caller
// naming the op and the device.
func TestPlanOnDeviceErrors(t *testing.T) {
	g, outs := secondOrderGraph(t)
	if _, err := CompileOn(&failingDevice{}, g, outs...); err == nil || !strings.Contains(err.Error(), "out of registers") || !strings.Contains(err.Error(), "host-test") {
		t.Errorf("CompileOn(failing device) = %v; want the device's error, naming the device", err)
	}
	dev := &hostDevice{kinds: map[string]bool{"add": true, "mul": true, "matmul": true, "sumaxis": true}}
	p, err := CompileOn(dev, g, outs...)
	if err != nil {
		t.Fatal(err)
	}
	bindXW(t, p, 0.3)
	dev.failGet = errors.New("illegal address")
	if err := p.Run(); err == nil || !strings.Contains(err.Error(), "illegal address") {
		t.Errorf("Run with a failing download = %v; want the device's error", err)
	}
	dev.failGet = nil
	if _, err := p.Read(outs[0]); err == nil {
		t.Errorf("Read after a failed Run succeeded; want no value")
	}
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	dev.failGet = errors.New("illegal address")
	if _, err := p.Read(outs[0]); err == nil || !strings.Contains(err.Error(), "illegal address") {
		t.Errorf("Read with a failing download = %v; want the device's error", err)
	}
}

// TestDescribe checks the OpSpecs of a few ops.
func TestDescribe(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, G.Float32, 3, G.WithShape(2, 3, 4), G.WithName("x"))
	y := G.NewTensor(g, G.Float32, 3, G.WithShape(2, 5, 4), G.WithName("y"))
	for _, c := range []struct {
		n    *G.Node
		want string
	}{
		{G.Must(BatchedMatMul(x, y, false, true)), "matmul{transA=0 transB=1} [(2, 3, 4) (2, 5, 4)] → (2, 3, 5) float32"},
		{G.Must(G.Mul(x, G.NewConstant(float32(2)))), "mul [(2, 3, 4) ()] → (2, 3, 4) float32"},
		{G.Must(G.Neg(x)), "neg [(2, 3, 4)] → (2, 3, 4) float32"},
		{G.Must(G.Exp(x)), "exp [(2, 3, 4)] → (2, 3, 4) float32"},
		{G.Must(Broadcast(x, 1, 7)), "broadcast{axis=1 n=7} [(2, 3, 4)] → (2, 7, 3, 4) float32"},
		{G.Must(G.Reshape(x, tensor.Shape{6, 4})), "reshape [(2, 3, 4)] → (6, 4) float32"},
		{G.Must(G.Slice(x, nil, G.S(1, 3))), "slice{axis=1 end=3 start=1 step=1} [(2, 3, 4)] → (2, 2, 4) float32"},
		{G.Must(G.Concat(2, x, x)), "concat{axis=2} [(2, 3, 4) (2, 3, 4)] → (2, 3, 8) float32"},
	} {
		s, ok := Describe(c.n)
		if got := fmt.Sprint(s); !ok || got != c.want {
			t.Errorf("Describe(%v) = %q, %v; want %q", c.n.Op(), got, ok, c.want)
		}
	}
	if _, ok := Describe(x); ok {
		t.Errorf("Describe(input) = _, true; want false")
	}
}

// TestPlanRecords runs a plan whose every op is on a recording device:
// the second Run records, the later ones replay, with the inputs of each
// Run, and every output matches the CPU plan. A device that refuses to
// record runs op by op.
func TestPlanRecords(t *testing.T) {
	all := map[string]bool{}
	for _, k := range []string{"add", "sub", "mul", "exp", "square", "relu", "relumask", "matmul", "sumaxis", "broadcast"} {
		all[k] = true
	}
	for _, off := range []bool{false, true} {
		dev := &recordingDevice{hostDevice: hostDevice{kinds: all}, off: off}
		g, outs := secondOrderGraph(t)
		cpu, err := Compile(g, outs...)
		if err != nil {
			t.Fatal(err)
		}
		p, err := CompileOn(dev, g, outs...)
		if err != nil {
			t.Fatal(err)
		}
		if pl := p.Placement(); pl.OnHost != 0 || pl.Recorded {
			t.Fatalf("Placement() = %+v; want every op on the device, not yet recorded", pl)
		}
		seeds := []float64{1.3, 2.9, 0.7, 1.3, 4.1}
		for _, seed := range seeds {
			runAndCompare(t, cpu, p, outs, seed)
		}
		wantRec, wantReplays := 1, len(seeds)-1
		if off {
			wantRec, wantReplays = 0, 0
		}
		if pl := p.Placement(); pl.Recorded != !off {
			t.Errorf("recording off=%v: Placement().Recorded = %v after %d runs", off, pl.Recorded, len(seeds))
		}
		if dev.recordings != wantRec || dev.replays != wantReplays {
			t.Errorf("recording off=%v: %d recordings, %d replays; want %d, %d", off, dev.recordings, dev.replays, wantRec, wantReplays)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if dev.live != 0 {
			t.Errorf("%d device buffers live after Close", dev.live)
		}
	}
}

// TestDescribeWholeAxisSlice checks that a slice taking a whole axis
// (gorgonia keeps a nil part) is described as no kind, not a panic.
func TestDescribeWholeAxisSlice(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, G.Float64, 2, G.WithShape(3, 4), G.WithName("x"))
	y, err := G.Slice(x, nil, G.S(1, 3))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range g.AllNodes() {
		Describe(n) // must not panic
	}
	if s, ok := Describe(y); ok && s.Kind != "slice" {
		t.Errorf("Describe(slice) = %v", s)
	}
}
