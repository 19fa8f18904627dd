package nets

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

type multiModel interface {
	Init(rng *rand.Rand, dt tensor.Dtype) (*graph.Params, error)
	Owners() []int
	Forward(x *G.Node, p G.Nodes) (G.Nodes, error)
}

// multiRig evaluates Σ_t c_t·sum(out_t²) of a multi-head network and its
// gradient with respect to all parameters, flattened in Init's order.
type multiRig struct {
	plan   *graph.Plan
	params G.Nodes
	loss   *G.Node
	grads  G.Nodes
	shapes [][]int
}

func newMultiRig(t *testing.T, m multiModel, p *graph.Params, x []float64, n, in int) *multiRig {
	t.Helper()
	g := G.NewGraph()
	r := &multiRig{}
	for i := 0; i < p.Len(); i++ {
		s := append([]int{1}, p.At(i).Value.Shape()...)
		r.shapes = append(r.shapes, s)
		r.params = append(r.params, G.NewTensor(g, G.Float64, len(s), G.WithShape(s...), G.WithName(p.At(i).Name)))
	}
	xn := G.NewConstant(tensor.New(tensor.WithShape(1, n, in), tensor.WithBacking(x)), G.In(g), G.WithName("x"))
	outs, err := m.Forward(xn, r.params)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range outs {
		s := G.Must(graph.SumAll(G.Must(G.Square(o))))
		s = G.Must(graph.Scale(s, float64(i+1)))
		if r.loss == nil {
			r.loss = s
		} else {
			r.loss = G.Must(G.Add(r.loss, s))
		}
	}
	if r.grads, err = graph.Grad(r.loss, r.params...); err != nil {
		t.Fatal(err)
	}
	if r.plan, err = graph.Compile(g, append(G.Nodes{r.loss}, r.grads...)...); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *multiRig) eval(t *testing.T, flat []float64) (float64, []float64) {
	t.Helper()
	for i, n := range r.params {
		size := tensor.Shape(r.shapes[i]).TotalSize()
		v, err := graph.NewTensor(tensor.Float64, r.shapes[i], flat[:size])
		if err != nil {
			t.Fatal(err)
		}
		if err := r.plan.Let(n.Name(), v); err != nil {
			t.Fatal(err)
		}
		flat = flat[size:]
	}
	if err := r.plan.Run(); err != nil {
		t.Fatal(err)
	}
	l, _ := r.plan.ReadFloat64s(r.loss)
	var grad []float64
	for _, n := range r.grads {
		g, _ := r.plan.ReadFloat64s(n)
		grad = append(grad, g...)
	}
	return l[0], grad
}

// TestMultiHeadGradients checks the gradients of hard-sharing and MMoE
// networks against central differences (h = 1e-5 in float64: truncation
// error ~1e-10 at unit scale, so 1e-6 relative is a strict bound).
func TestMultiHeadGradients(t *testing.T) {
	heads := []Head{{Name: "a", Out: 1}, {Name: "b", Out: 3, Hidden: []int{4}}}
	for _, c := range []struct {
		name string
		m    multiModel
		in   int
	}{
		{"multitask", MultiTask{Trunk: Trunk{In: 3, Hidden: []int{5, 4}, Activation: Tanh}, Heads: heads}, 3},
		{"multitask-linear-trunk", MultiTask{Trunk: Trunk{In: 3}, Heads: heads}, 3},
		{"mmoe", MMoE{In: 3, Experts: 3, ExpertHidden: []int{4, 5}, Activation: Tanh, Heads: heads}, 3},
		{"mmoe-one-expert", MMoE{In: 3, Experts: 1, ExpertHidden: []int{4}, Activation: Sigmoid, Heads: heads}, 3},
	} {
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
			f := func(v []float64) float64 { l, _ := r.eval(t, v); return l }
			_, grad := r.eval(t, flat)
			if e := graph.RelErr(grad, graph.NumGrad(f, flat, 1e-5), 1e-3); e > 1e-6 {
				t.Errorf("gradient rel err %.3g > 1e-6", e)
			}
		})
	}
}

func TestMultiTaskLayout(t *testing.T) {
	m := MultiTask{Trunk: Trunk{In: 4, Hidden: []int{8, 6}}, Heads: []Head{{Name: "reg", Out: 1}, {Name: "cls", Out: 10, Hidden: []int{5}}}}
	p, err := m.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{
		"trunk.layers.0.weight", "trunk.layers.0.bias", "trunk.layers.1.weight", "trunk.layers.1.bias",
		"heads.reg.layers.0.weight", "heads.reg.layers.0.bias",
		"heads.cls.layers.0.weight", "heads.cls.layers.0.bias", "heads.cls.layers.1.weight", "heads.cls.layers.1.bias",
	}
	if got := p.Names(); !slices.Equal(got, wantNames) {
		t.Errorf("Names() = %v; want %v", got, wantNames)
	}
	if got, want := m.Owners(), []int{-1, -1, -1, -1, 0, 0, 1, 1, 1, 1}; !slices.Equal(got, want) {
		t.Errorf("Owners() = %v; want %v", got, want)
	}
	if s := p.At(6).Value.Shape(); !s.Eq(tensor.Shape{5, 6}) {
		t.Errorf("heads.cls.layers.0.weight shape = %v; want [5 6]", s)
	}
	mm := MMoE{In: 4, Experts: 2, ExpertHidden: []int{3}, Heads: []Head{{Name: "a", Out: 1}, {Name: "b", Out: 2}}}
	q, err := mm.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	wantNames = []string{
		"experts.0.layers.0.weight", "experts.0.layers.0.bias", "experts.1.layers.0.weight", "experts.1.layers.0.bias",
		"gates.a.weight", "gates.a.bias", "gates.b.weight", "gates.b.bias",
		"heads.a.layers.0.weight", "heads.a.layers.0.bias", "heads.b.layers.0.weight", "heads.b.layers.0.bias",
	}
	if got := q.Names(); !slices.Equal(got, wantNames) {
		t.Errorf("MMoE Names() = %v; want %v", got, wantNames)
	}
	if got, want := mm.Owners(), []int{-1, -1, -1, -1, 0, 0, 1, 1, 0, 0, 1, 1}; !slices.Equal(got, want) {
		t.Errorf("MMoE Owners() = %v; want %v", got, want)
	}
}

// TestMMoEGatesMix checks the MMoE forward pass against a direct
// computation: with identity activations and one-layer experts, a task's
// representation is Σ_e softmax(gate)_e·(W_e x + b_e).
func TestMMoEGatesMix(t *testing.T) {
	m := MMoE{In: 2, Experts: 2, ExpertHidden: []int{1}, Activation: Identity, Heads: []Head{{Name: "a", Out: 1}}}
	p, err := m.Init(rand.New(rand.NewPCG(3, 3)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	// Expert e: W_e = [e+1, 0], b_e = 0; gate logits: [x0, 0]; head: identity.
	vals := map[string][]float64{
		"experts.0.layers.0.weight": {1, 0}, "experts.0.layers.0.bias": {0},
		"experts.1.layers.0.weight": {2, 0}, "experts.1.layers.0.bias": {0},
		"gates.a.weight": {1, 0, 0, 0}, "gates.a.bias": {0, 0},
		"heads.a.layers.0.weight": {1}, "heads.a.layers.0.bias": {0},
	}
	var flat []float64
	for _, name := range p.Names() {
		flat = append(flat, vals[name]...)
	}
	if err := p.SetFlat(flat); err != nil {
		t.Fatal(err)
	}
	x := []float64{0.5, 9}
	r := newMultiRig(t, m, p, x, 1, 2)
	loss, _ := r.eval(t, flat)
	// softmax([0.5, 0]) = [σ(0.5), 1−σ(0.5)]; experts give 0.5 and 1.
	s := 1 / (1 + math.Exp(-0.5))
	want := s*0.5 + (1-s)*1
	if d := loss - want*want; d > 1e-12 || d < -1e-12 {
		t.Errorf("MMoE output² = %v; want %v", loss, want*want)
	}
}

func TestMultiHeadBadConfig(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, c := range []struct {
		name string
		m    multiModel
	}{
		{"no heads", MultiTask{Trunk: Trunk{In: 3, Hidden: []int{4}}}},
		{"unnamed head", MultiTask{Trunk: Trunk{In: 3}, Heads: []Head{{Out: 1}}}},
		{"duplicate head", MultiTask{Trunk: Trunk{In: 3}, Heads: []Head{{Name: "a", Out: 1}, {Name: "a", Out: 2}}}},
		{"zero output", MultiTask{Trunk: Trunk{In: 3}, Heads: []Head{{Name: "a"}}}},
		{"bad trunk width", MultiTask{Trunk: Trunk{In: 3, Hidden: []int{0}}, Heads: []Head{{Name: "a", Out: 1}}}},
		{"no input", MultiTask{Heads: []Head{{Name: "a", Out: 1}}}},
		{"no experts", MMoE{In: 3, ExpertHidden: []int{4}, Heads: []Head{{Name: "a", Out: 1}}}},
		{"no expert layers", MMoE{In: 3, Experts: 2, Heads: []Head{{Name: "a", Out: 1}}}},
	} {
		if _, err := c.m.Init(rng, tensor.Float64); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Init err = %v; want ErrConfig", c.name, err)
		}
	}
}
