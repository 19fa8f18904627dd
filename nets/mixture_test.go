package nets

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// evalOutputs runs m.Forward on x [B, n, in] with parameters that differ
// along the task axis: flats[b] holds entry b's parameters flattened in
// Init's order (p gives their shapes). It returns each head's output
// flattened.
func evalOutputs(t *testing.T, m multiModel, p *graph.Params, flats [][]float64, x []float64, n, in int) [][]float64 {
	t.Helper()
	g := G.NewGraph()
	B := len(flats)
	var nodes G.Nodes
	off := 0
	for i := 0; i < p.Len(); i++ {
		s := p.At(i).Value.Shape()
		size := s.TotalSize()
		var data []float64
		for _, f := range flats {
			data = append(data, f[off:off+size]...)
		}
		off += size
		v, err := graph.NewTensor(tensor.Float64, append([]int{B}, s...), data)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, G.NewConstant(v, G.In(g), G.WithName(p.At(i).Name)))
	}
	xv, err := graph.NewTensor(tensor.Float64, []int{B, n, in}, x)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := m.Forward(G.NewConstant(xv, G.In(g), G.WithName("x")), nodes)
	if err != nil {
		t.Fatal(err)
	}
	return runNodes(t, g, outs)
}

// runNodes compiles and runs g and returns the values of outs.
func runNodes(t *testing.T, g *G.ExprGraph, outs G.Nodes) [][]float64 {
	t.Helper()
	plan, err := graph.Compile(g, outs...)
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Run(); err != nil {
		t.Fatal(err)
	}
	res := make([][]float64, len(outs))
	for i, o := range outs {
		if res[i], err = plan.ReadFloat64s(o); err != nil {
			t.Fatal(err)
		}
	}
	return res
}

// named returns p's parameters flattened in Init's order with the values
// in vals, which must name every parameter with the right size.
func named(t *testing.T, p *graph.Params, vals map[string][]float64) []float64 {
	t.Helper()
	var flat []float64
	for i, name := range p.Names() {
		v, ok := vals[name]
		if !ok || len(v) != p.At(i).Value.Shape().TotalSize() {
			t.Fatalf("parameter %s %v: got values %v", name, p.At(i).Value.Shape(), v)
		}
		flat = append(flat, v...)
	}
	if len(vals) != p.Len() {
		t.Fatalf("%d values for %d parameters", len(vals), p.Len())
	}
	return flat
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// mixtureModels are small instances of every network of this file's
// kind, for the tests that apply to all of them.
func mixtureModels() []struct {
	name string
	m    multiModel
	in   int
} {
	heads := []Head{{Name: "a", Out: 1}, {Name: "b", Out: 3, Hidden: []int{4}}}
	three := append(heads[:2:2], Head{Name: "c", Out: 2})
	return []struct {
		name string
		m    multiModel
		in   int
	}{
		{"cgc", PLE{In: 3, SharedExperts: 2, TaskExperts: 1, ExpertHidden: []int{4, 3}, Activation: Tanh, Heads: heads}, 3},
		{"ple-3-levels", PLE{In: 2, Levels: 3, SharedExperts: 1, TaskExperts: 2, ExpertHidden: []int{3}, Activation: Tanh, Heads: three}, 2},
		{"ple-relu", PLE{In: 2, Levels: 2, SharedExperts: 2, TaskExperts: 1, ExpertHidden: []int{6}, Activation: ReLU, Heads: heads}, 2},
		{"cross-stitch", CrossStitch{In: 3, Hidden: []int{5, 4}, Activation: Tanh, Heads: heads}, 3},
		{"cross-stitch-3-tasks", CrossStitch{In: 2, Hidden: []int{4}, Activation: Sigmoid, SelfWeight: 0.6, Heads: three}, 2},
		{"cross-stitch-1-task", CrossStitch{In: 2, Hidden: []int{3, 3}, Activation: Tanh, Heads: heads[:1]}, 2},
		{"dselect-k-static", DSelectK{In: 3, Experts: 4, K: 2, ExpertHidden: []int{4, 3}, Activation: Tanh, Heads: heads}, 3},
		{"dselect-k-static-5", DSelectK{In: 3, Experts: 5, K: 3, ExpertHidden: []int{4}, Activation: Tanh, Heads: three}, 3},
		{"dselect-k-per-example", DSelectK{In: 3, Experts: 3, K: 2, ExpertHidden: []int{4}, Activation: Tanh, PerExample: true, Heads: heads}, 3},
		{"dselect-k-per-example-gamma", DSelectK{In: 2, Experts: 8, K: 1, Gamma: 0.5, ExpertHidden: []int{3}, Activation: Sigmoid, PerExample: true, Heads: heads}, 2},
	}
}

// spreadGates scales DSelect-k gate logits so that some lie beyond ±γ/2,
// where the smooth step is flat, and some inside: the gradient check
// then covers both pieces of the step.
func spreadGates(m multiModel, p *graph.Params, flat []float64) {
	if _, ok := m.(DSelectK); !ok {
		return
	}
	off := 0
	for i, name := range p.Names() {
		size := p.At(i).Value.Shape().TotalSize()
		if len(name) > 6 && name[:6] == "gates." {
			for j := off; j < off+size; j++ {
				flat[j] *= 40 // z from U[−γ/100, γ/100] to U[−0.4γ, 0.4γ], w likewise
				if j%3 == 0 {
					flat[j] += 1
				}
			}
		}
		off += size
	}
}

// TestMixtureGradients checks the gradients of PLE, CrossStitch and
// DSelectK networks against central differences (h = 1e-5 in float64:
// truncation error ~1e-10 at unit scale, so 1e-6 relative is a strict
// bound; the smooth step's cubic has a kink in its second derivative only,
// so it does not spoil this).
func TestMixtureGradients(t *testing.T) {
	for _, c := range mixtureModels() {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(4, 2))
			p, err := c.m.Init(rng, tensor.Float64)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(c.m.Owners()); got != p.Len() {
				t.Fatalf("Owners() has %d entries for %d parameters", got, p.Len())
			}
			n := 5
			x := make([]float64, n*c.in)
			for i := range x {
				x[i] = rng.NormFloat64()
			}
			r := newMultiRig(t, c.m, p, x, n, c.in)
			flat := p.Flatten()
			spreadGates(c.m, p, flat)
			f := func(v []float64) float64 { l, _ := r.eval(t, v); return l }
			_, grad := r.eval(t, flat)
			if e := graph.RelErr(grad, graph.NumGrad(f, flat, 1e-5), 1e-3); e > 1e-6 {
				t.Errorf("gradient rel err %.3g > 1e-6", e)
			}
		})
	}
}

// TestMixtureTaskAxis checks that the entries of the leading task axis
// are independent networks: running two parameter sets stacked along it
// gives what running each alone gives.
func TestMixtureTaskAxis(t *testing.T) {
	for _, c := range mixtureModels() {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 7))
			p, err := c.m.Init(rng, tensor.Float64)
			if err != nil {
				t.Fatal(err)
			}
			p0 := p.Flatten()
			spreadGates(c.m, p, p0)
			q, err := c.m.Init(rng, tensor.Float64)
			if err != nil {
				t.Fatal(err)
			}
			p1 := q.Flatten()
			n := 3
			x := make([]float64, 2*n*c.in)
			for i := range x {
				x[i] = rng.NormFloat64()
			}
			both := evalOutputs(t, c.m, p, [][]float64{p0, p1}, x, n, c.in)
			first := evalOutputs(t, c.m, p, [][]float64{p0}, x[:n*c.in], n, c.in)
			second := evalOutputs(t, c.m, p, [][]float64{p1}, x[n*c.in:], n, c.in)
			for h := range both {
				want := append(append([]float64{}, first[h]...), second[h]...)
				if len(both[h]) != len(want) {
					t.Fatalf("head %d: %d outputs; want %d", h, len(both[h]), len(want))
				}
				for i := range want {
					if !near(both[h][i], want[i], 1e-12) {
						t.Fatalf("head %d output %d: stacked %v; alone %v", h, i, both[h][i], want[i])
					}
				}
			}
		})
	}
}

// TestMixtureForwardShapes checks the outputs' shapes and that wrong
// inputs and parameters are errors matching graph.ErrShape, not panics.
func TestMixtureForwardShapes(t *testing.T) {
	for _, c := range mixtureModels() {
		t.Run(c.name, func(t *testing.T) {
			p, err := c.m.Init(rand.New(rand.NewPCG(1, 2)), tensor.Float64)
			if err != nil {
				t.Fatal(err)
			}
			// build runs Forward on x [tasks, n, in] with parameters of
			// p's shapes behind a task axis of size tasks; change, if not
			// nil, edits the parameter shapes first.
			build := func(x []int, tasks int, change func([][]int) [][]int) (G.Nodes, error) {
				g := G.NewGraph()
				var shapes [][]int
				for i := 0; i < p.Len(); i++ {
					shapes = append(shapes, append([]int{tasks}, p.At(i).Value.Shape()...))
				}
				if change != nil {
					shapes = change(shapes)
				}
				var nodes G.Nodes
				for i, s := range shapes {
					nodes = append(nodes, G.NewTensor(g, G.Float64, len(s), G.WithShape(s...), G.WithName(p.Names()[min(i, p.Len()-1)]+string(rune('a'+i%26)))))
				}
				xn := G.NewTensor(g, G.Float64, len(x), G.WithShape(x...), G.WithName("x"))
				return c.m.Forward(xn, nodes)
			}
			outs, err := build([]int{2, 7, c.in}, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantOut := map[string]int{"a": 1, "b": 3, "c": 2}
			for i, o := range outs {
				name := []string{"a", "b", "c"}[i]
				if want := (tensor.Shape{2, 7, wantOut[name]}); !o.Shape().Eq(want) {
					t.Errorf("output %d shape %v; want %v", i, o.Shape(), want)
				}
			}
			for _, bad := range []struct {
				name   string
				x      []int
				change func([][]int) [][]int
			}{
				{"x features", []int{2, 7, c.in + 1}, nil},
				{"x dims", []int{7, c.in}, nil},
				{"too few parameters", []int{2, 7, c.in}, func(s [][]int) [][]int { return s[:len(s)-1] }},
				{"too many parameters", []int{2, 7, c.in}, func(s [][]int) [][]int { return append(s, []int{2, 1}) }},
			} {
				if _, err := build(bad.x, 2, bad.change); !errors.Is(err, graph.ErrShape) {
					t.Errorf("%s: Forward err = %v; want graph.ErrShape", bad.name, err)
				}
			}
			// Every parameter with one axis one larger, and with a task
			// axis that does not match x's.
			for i := 0; i < p.Len(); i++ {
				grow := func(s [][]int) [][]int {
					s[i] = append([]int{}, s[i]...)
					s[i][len(s[i])-1]++
					return s
				}
				if _, err := build([]int{2, 7, c.in}, 2, grow); !errors.Is(err, graph.ErrShape) {
					t.Errorf("%s grown: Forward err = %v; want graph.ErrShape", p.Names()[i], err)
				}
				tasks := func(s [][]int) [][]int {
					s[i] = append([]int{3}, s[i][1:]...)
					return s
				}
				if _, err := build([]int{2, 7, c.in}, 2, tasks); !errors.Is(err, graph.ErrShape) {
					t.Errorf("%s with 3 tasks for 2: Forward err = %v; want graph.ErrShape", p.Names()[i], err)
				}
			}
		})
	}
}

// TestMixtureParamNamesUnique checks that Init's names are distinct even
// when a head is called like a part of the network.
func TestMixtureParamNamesUnique(t *testing.T) {
	heads := []Head{{Name: "shared", Out: 1}, {Name: "gate", Out: 1}, {Name: "experts", Out: 1}}
	for _, m := range []multiModel{
		PLE{In: 2, Levels: 2, SharedExperts: 1, TaskExperts: 1, ExpertHidden: []int{2}, Heads: heads},
		CrossStitch{In: 2, Hidden: []int{2}, Heads: heads},
		DSelectK{In: 2, Experts: 2, K: 1, ExpertHidden: []int{2}, Heads: heads},
	} {
		if _, err := m.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32); err != nil {
			t.Errorf("%T with heads named shared, gate, experts: %v", m, err)
		}
	}
}

func TestMixtureBadConfig(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	a := []Head{{Name: "a", Out: 1}}
	for _, c := range []struct {
		name string
		m    multiModel
	}{
		{"ple no input", PLE{SharedExperts: 1, TaskExperts: 1, ExpertHidden: []int{2}, Heads: a}},
		{"ple negative levels", PLE{In: 2, Levels: -1, SharedExperts: 1, TaskExperts: 1, ExpertHidden: []int{2}, Heads: a}},
		{"ple no shared experts", PLE{In: 2, TaskExperts: 1, ExpertHidden: []int{2}, Heads: a}},
		{"ple no task experts", PLE{In: 2, SharedExperts: 1, ExpertHidden: []int{2}, Heads: a}},
		{"ple no expert layers", PLE{In: 2, SharedExperts: 1, TaskExperts: 1, Heads: a}},
		{"ple zero expert width", PLE{In: 2, SharedExperts: 1, TaskExperts: 1, ExpertHidden: []int{2, 0}, Heads: a}},
		{"ple bad activation", PLE{In: 2, SharedExperts: 1, TaskExperts: 1, ExpertHidden: []int{2}, Activation: 9, Heads: a}},
		{"ple no heads", PLE{In: 2, SharedExperts: 1, TaskExperts: 1, ExpertHidden: []int{2}}},
		{"ple duplicate heads", PLE{In: 2, SharedExperts: 1, TaskExperts: 1, ExpertHidden: []int{2}, Heads: []Head{{Name: "a", Out: 1}, {Name: "a", Out: 1}}}},
		{"cross-stitch no input", CrossStitch{Hidden: []int{2}, Heads: a}},
		{"cross-stitch no hidden", CrossStitch{In: 2, Heads: a}},
		{"cross-stitch zero width", CrossStitch{In: 2, Hidden: []int{0}, Heads: a}},
		{"cross-stitch self weight > 1", CrossStitch{In: 2, Hidden: []int{2}, SelfWeight: 1.5, Heads: a}},
		{"cross-stitch negative self weight", CrossStitch{In: 2, Hidden: []int{2}, SelfWeight: -0.1, Heads: a}},
		{"cross-stitch NaN self weight", CrossStitch{In: 2, Hidden: []int{2}, SelfWeight: math.NaN(), Heads: a}},
		{"cross-stitch unnamed head", CrossStitch{In: 2, Hidden: []int{2}, Heads: []Head{{Out: 1}}}},
		{"dselect-k no input", DSelectK{Experts: 2, K: 1, ExpertHidden: []int{2}, Heads: a}},
		{"dselect-k one expert", DSelectK{In: 2, Experts: 1, K: 1, ExpertHidden: []int{2}, Heads: a}},
		{"dselect-k no k", DSelectK{In: 2, Experts: 4, ExpertHidden: []int{2}, Heads: a}},
		{"dselect-k k > experts", DSelectK{In: 2, Experts: 4, K: 5, ExpertHidden: []int{2}, Heads: a}},
		{"dselect-k negative gamma", DSelectK{In: 2, Experts: 4, K: 1, Gamma: -1, ExpertHidden: []int{2}, Heads: a}},
		{"dselect-k infinite gamma", DSelectK{In: 2, Experts: 4, K: 1, Gamma: math.Inf(1), ExpertHidden: []int{2}, Heads: a}},
		{"dselect-k no expert layers", DSelectK{In: 2, Experts: 4, K: 1, Heads: a}},
		{"dselect-k zero output", DSelectK{In: 2, Experts: 4, K: 1, ExpertHidden: []int{2}, Heads: []Head{{Name: "a"}}}},
	} {
		if _, err := c.m.Init(rng, tensor.Float64); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Init err = %v; want ErrConfig", c.name, err)
		}
		// These describe a configuration without building it, and must
		// not panic on a bad one.
		d := c.m.(interface {
			String() string
			ParamCount() int64
		})
		_, _, _ = c.m.Owners(), d.String(), d.ParamCount()
		g := G.NewGraph()
		x := G.NewTensor(g, G.Float64, 3, G.WithShape(1, 2, 2), G.WithName("x"))
		if _, err := c.m.Forward(x, nil); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Forward err = %v; want ErrConfig", c.name, err)
		}
	}
}
