package graph

import (
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// secondOrderMLP builds, on a fresh graph, a two-layer tanh network's
// mean squared error on a batch [tasks, n, in], its gradient with respect
// to the weights, one inner step w′ = w − 0.1·∇, the loss at w′ and its
// gradient with respect to w (through the step: second-order terms). It
// returns the graph, the outputs and the inputs' values.
func secondOrderMLP(t *testing.T, tasks, n, in, width int) (*G.ExprGraph, G.Nodes, map[string]*tensor.Dense) {
	t.Helper()
	g := G.NewGraph()
	rng := rand.New(rand.NewPCG(1, 2))
	vals := map[string]*tensor.Dense{}
	input := func(name string, shape ...int) *G.Node {
		data := make([]float64, tensor.Shape(shape).TotalSize())
		for i := range data {
			data[i] = rng.NormFloat64() / 4
		}
		v, err := NewTensor(tensor.Float64, shape, data)
		if err != nil {
			t.Fatal(err)
		}
		vals[name] = v
		return G.NewTensor(g, G.Float64, len(shape), G.WithShape(shape...), G.WithName(name))
	}
	x, y := input("x", tasks, n, in), input("y", tasks, n, 1)
	w1, w2 := input("w1", tasks, in, width), input("w2", tasks, width, 1)
	loss := func(w1, w2 *G.Node) *G.Node {
		h := G.Must(G.Tanh(G.Must(BatchedMatMul(x, w1, false, false))))
		d := G.Must(G.Sub(G.Must(BatchedMatMul(h, w2, false, false)), y))
		s, err := SumAll(G.Must(G.Square(d)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	l0 := loss(w1, w2)
	inner, err := Grad(l0, w1, w2)
	if err != nil {
		t.Fatal(err)
	}
	lr := G.NewConstant(0.1)
	a1 := G.Must(G.Sub(w1, G.Must(G.Mul(inner[0], lr))))
	a2 := G.Must(G.Sub(w2, G.Must(G.Mul(inner[1], lr))))
	l1 := loss(a1, a2)
	outer, err := Grad(l1, w1, w2)
	if err != nil {
		t.Fatal(err)
	}
	return g, append(G.Nodes{l1}, outer...), vals
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestPlanBytes checks that Plan.Bytes, known before the plan runs, bounds
// the memory that building the graph, compiling and running it take, and
// that it is not a gross over-estimate either: the values are most of it.
func TestPlanBytes(t *testing.T) {
	for _, c := range []struct{ tasks, n, in, width int }{{2, 3, 4, 5}, {8, 100, 30, 200}} {
		before := heapInUse()
		g, outs, vals := secondOrderMLP(t, c.tasks, c.n, c.in, c.width)
		inputs := int64(0)
		for _, v := range vals {
			inputs += int64(v.MemSize())
		}
		p, err := Compile(g, outs...)
		if err != nil {
			t.Fatal(err)
		}
		planned := p.Bytes()
		for name, v := range vals {
			if err := p.Let(name, v); err != nil {
				t.Fatal(err)
			}
		}
		for range 3 {
			if err := p.Run(); err != nil {
				t.Fatal(err)
			}
		}
		used := heapInUse() - before - inputs
		runtime.KeepAlive(p)
		runtime.KeepAlive(g)
		values := planned - int64(g.AllNodes().Len())*NodeBytes
		t.Logf("%+v: %d nodes, %d bytes of values, planned %d, used %d", c, g.AllNodes().Len(), values, planned, used)
		if used > planned {
			t.Errorf("%+v: the plan uses %d bytes, more than its Bytes (%d)", c, used, planned)
		}
		if c.width > 100 && used < values/2 {
			t.Errorf("%+v: the plan uses %d bytes, less than half its values (%d): Bytes over-counts", c, used, values)
		}
	}
}

func TestMemoryError(t *testing.T) {
	err := error(&MemoryError{What: "this run", Need: 3 << 30, Available: 1536 << 20})
	if want := "this run needs about 3.0 GiB of memory; 1.5 GiB is available"; err.Error() != want {
		t.Errorf("Error() = %q; want %q", err, want)
	}
	if !errors.Is(err, ErrMemory) {
		t.Error("a *MemoryError does not match ErrMemory")
	}
	if runtime.GOOS != "linux" {
		return
	}
	avail, ok := AvailableMemory()
	if !ok || avail <= 0 {
		t.Fatalf("AvailableMemory() = %d, %v; want a positive figure on Linux", avail, ok)
	}
	if err := CheckMemory("a petabyte", 1<<50); !errors.Is(err, ErrMemory) {
		t.Errorf("CheckMemory(1 PiB) = %v; want a *MemoryError", err)
	}
	if err := CheckMemory("a kilobyte", 1<<10); err != nil {
		t.Errorf("CheckMemory(1 KiB) = %v", err)
	}
}

// TestCompileRefusesHugeGraph checks that a graph whose values cannot fit
// in memory is refused at compile time, with the figures, rather than
// aborting the process when it runs.
func TestCompileRefusesHugeGraph(t *testing.T) {
	if _, ok := AvailableMemory(); !ok {
		t.Skip("this system does not say how much memory is available")
	}
	g := G.NewGraph()
	x := G.NewMatrix(g, G.Float64, G.WithShape(1<<20, 1<<20), G.WithName("x"))
	y := G.Must(G.Square(x))
	_, err := Compile(g, y)
	var me *MemoryError
	if !errors.As(err, &me) || me.Need < 8<<40 {
		t.Fatalf("Compile of an 8 TiB square: err = %v; want a *MemoryError of at least 8 TiB", err)
	}
	if want := "graph: Compile: the compiled graph needs about 16 TiB of memory"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q; want it to begin %q", err, want)
	}
	// Sizes whose product overflows an int64 saturate instead of wrapping
	// round to a small or negative figure.
	for _, side := range []int{1 << 30, 1 << 31, 1 << 40} {
		g := G.NewGraph()
		x := G.NewMatrix(g, G.Float64, G.WithShape(side, side), G.WithName("x"))
		if _, err := Compile(g, G.Must(G.Square(x))); !errors.As(err, &me) {
			t.Errorf("Compile of a %d² square: err = %v; want a *MemoryError", side, err)
		}
	}
}

// TestReuseBitIdentical runs a second-order graph (an MLP's loss after an
// inner gradient step, differentiated through the step) on a plan that
// reuses buffers, with every buffer it pools filled with NaN, and on a
// plan that keeps every value (againstKeep): the outputs must agree bit
// for bit over several runs, and a buffer read after it was pooled or
// overwritten would show as a NaN or a difference. The reusing plan must
// also need less memory, and refuse to read a value it did not keep.
func TestReuseBitIdentical(t *testing.T) {
	g, outs, vals := secondOrderMLP(t, 3, 7, 4, 9)
	shapes := map[string][]int{}
	for name, v := range vals {
		shapes[name] = v.Shape().Clone()
	}
	againstKeep(t, g, outs, shapes, 4)
	reuse, err := Compile(g, outs...)
	if err != nil {
		t.Fatal(err)
	}
	keep, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	if reuse.Bytes() >= keep.Bytes() {
		t.Errorf("the reusing plan needs %d bytes, the plan that keeps every value %d", reuse.Bytes(), keep.Bytes())
	}
	for _, n := range reuse.nodes {
		if n.Op() != nil && !isConstant(n) && !reuse.reuse.output[reuse.index[n]] {
			if _, err := reuse.Read(n); err == nil || !strings.Contains(err.Error(), "not an output") {
				t.Errorf("Read of an intermediate node: err = %v; want one saying it is not an output", err)
			}
			break
		}
	}
}

// TestReuseHessian is TestReuseBitIdentical on the derivative rig of the
// gradient tests: f, ∇f and the Hessian-vector product of a function
// with reshapes, broadcasts and log-softmax.
func TestReuseHessian(t *testing.T) {
	build := func(x *G.Node) (*G.Node, error) {
		m, err := G.Reshape(x, tensor.Shape{2, 3})
		if err != nil {
			return nil, err
		}
		ls, err := LogSoftmax(G.Must(G.Tanh(m)))
		if err != nil {
			return nil, err
		}
		return SumAll(G.Must(G.HadamardProd(ls, G.Must(G.Square(m)))))
	}
	for _, poison := range []bool{false, true} {
		rig := newDerivRig(t, 6, build)
		g := rig.f.Graph()
		p, err := Compile(g, rig.f, rig.grad, rig.hvp)
		if err != nil {
			t.Fatal(err)
		}
		p.reuse.poison = poison
		x := []float64{0.3, -0.2, 0.5, 0.1, -0.7, 0.4}
		v := []float64{1, 0, -1, 0.5, 0.25, -0.5}
		f, gr, hv := rig.eval(t, x, v)
		want := [][]float64{{f}, gr, hv}
		for run := range 3 {
			for name, d := range map[string][]float64{"x": x, "v": v} {
				tv, _ := NewTensor(tensor.Float64, []int{6}, d)
				if err := p.Let(name, tv); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Run(); err != nil {
				t.Fatal(err)
			}
			for i, n := range []*G.Node{rig.f, rig.grad, rig.hvp} {
				got, err := p.ReadFloat64s(n)
				if err != nil {
					t.Fatal(err)
				}
				for j := range got {
					if math.Float64bits(got[j]) != math.Float64bits(want[i][j]) {
						t.Fatalf("poison %v, run %d, output %d[%d]: %v with reuse, %v without", poison, run, i, j, got[j], want[i][j])
					}
				}
			}
		}
	}
}

// smallDevice is a test device that reports free memory.
type smallDevice struct {
	hostDevice
	free int64
}

func (d *smallDevice) FreeMemory() (int64, error) { return d.free, nil }

// TestCompileOnRefusesDeviceOverflow checks that a plan whose buffers on
// a MemoryReporter device would exceed its free memory is refused at
// compile time, naming the device, and that one that fits compiles;
// DeviceBytes counts the ops' outputs there and the inputs uploaded.
func TestCompileOnRefusesDeviceOverflow(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, G.Float64, G.WithShape(100, 10), G.WithName("x"))
	y := G.Must(G.Square(x))
	z := G.Must(G.Add(y, x))
	kinds := map[string]bool{"square": true, "add": true}
	want := int64(3 * 100 * 10 * 8) // x uploaded, y and z
	fits := &smallDevice{hostDevice: hostDevice{kinds: kinds}, free: want}
	p, err := CompileOn(fits, g, z)
	if err != nil {
		t.Fatalf("CompileOn with %d bytes free: %v", want, err)
	}
	if got := p.DeviceBytes(); got != want {
		t.Errorf("DeviceBytes = %d; want %d", got, want)
	}
	p.Close()
	tight := &smallDevice{hostDevice: hostDevice{kinds: kinds}, free: want - 1}
	_, err = CompileOn(tight, g, z)
	var me *MemoryError
	if !errors.As(err, &me) || me.Need != want || !strings.Contains(err.Error(), "host-test") {
		t.Fatalf("CompileOn with %d bytes free: err = %v; want a *MemoryError of %d bytes naming the device", want-1, err, want)
	}
}
