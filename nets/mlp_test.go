package nets

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// hvpRig computes an MLP's MSE loss, its gradient and its Hessian-vector
// product with respect to all parameters, flattened in Init's order.
type hvpRig struct {
	plan         *graph.Plan
	params, vecs G.Nodes
	loss         *G.Node
	grads, hvps  G.Nodes
	shapes       [][]int
}

func newHVPRig(t *testing.T, m MLP, tasks, n int, rng *rand.Rand) *hvpRig {
	t.Helper()
	p, err := m.Init(rng, tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	g := G.NewGraph()
	r := &hvpRig{}
	for i := 0; i < p.Len(); i++ {
		s := append([]int{tasks}, p.At(i).Value.Shape()...)
		r.shapes = append(r.shapes, s)
		r.params = append(r.params, G.NewTensor(g, G.Float64, len(s), G.WithShape(s...), G.WithName(p.At(i).Name)))
		r.vecs = append(r.vecs, G.NewTensor(g, G.Float64, len(s), G.WithShape(s...), G.WithName("v."+p.At(i).Name)))
	}
	xd := make([]float64, tasks*n*m.In)
	yd := make([]float64, tasks*n*m.Out)
	for i := range xd {
		xd[i] = rng.NormFloat64()
	}
	for i := range yd {
		yd[i] = rng.NormFloat64()
	}
	x := G.NewConstant(tensor.New(tensor.WithShape(tasks, n, m.In), tensor.WithBacking(xd)), G.In(g), G.WithName("x"))
	y := G.NewConstant(tensor.New(tensor.WithShape(tasks, n, m.Out), tensor.WithBacking(yd)), G.In(g), G.WithName("y"))
	pred, err := m.Forward(x, r.params)
	if err != nil {
		t.Fatal(err)
	}
	d := G.Must(G.Sub(pred, y))
	if r.loss, err = graph.MeanAll(G.Must(G.Square(d))); err != nil {
		t.Fatal(err)
	}
	if r.grads, err = graph.Grad(r.loss, r.params...); err != nil {
		t.Fatal(err)
	}
	var dot *G.Node
	for i, gr := range r.grads {
		s := G.Must(graph.SumAll(G.Must(G.HadamardProd(gr, r.vecs[i]))))
		if dot == nil {
			dot = s
		} else {
			dot = G.Must(G.Add(dot, s))
		}
	}
	if r.hvps, err = graph.Grad(dot, r.params...); err != nil {
		t.Fatal(err)
	}
	outs := append(append(G.Nodes{r.loss}, r.grads...), r.hvps...)
	if r.plan, err = graph.Compile(g, outs...); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *hvpRig) eval(t *testing.T, x, v []float64) (loss float64, grad, hvp []float64) {
	t.Helper()
	bind := func(nodes G.Nodes, flat []float64) {
		for i, n := range nodes {
			size := tensor.Shape(r.shapes[i]).TotalSize()
			tt, err := graph.NewTensor(tensor.Float64, r.shapes[i], flat[:size])
			if err != nil {
				t.Fatal(err)
			}
			if err := r.plan.Let(n.Name(), tt); err != nil {
				t.Fatal(err)
			}
			flat = flat[size:]
		}
	}
	if v == nil {
		v = make([]float64, len(x))
	}
	bind(r.params, x)
	bind(r.vecs, v)
	if err := r.plan.Run(); err != nil {
		t.Fatal(err)
	}
	l, _ := r.plan.ReadFloat64s(r.loss)
	for i := range r.grads {
		g, _ := r.plan.ReadFloat64s(r.grads[i])
		h, _ := r.plan.ReadFloat64s(r.hvps[i])
		grad = append(grad, g...)
		hvp = append(hvp, h...)
	}
	return l[0], grad, hvp
}

// TestMLPHessianVector checks the gradient and the Hessian-vector product
// of an MLP's loss against central differences (h = 1e-5: error ≈ 1e-10 at
// unit scale, so 1e-6 relative is a strict bound).
func TestMLPHessianVector(t *testing.T) {
	for _, act := range []Activation{ReLU, Tanh, Sigmoid} {
		t.Run(act.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(9, uint64(act)))
			m := MLP{In: 3, Out: 2, Hidden: []int{5, 4}, Activation: act}
			r := newHVPRig(t, m, 2, 6, rng)
			var x []float64
			for _, s := range r.shapes {
				for i := 0; i < tensor.Shape(s).TotalSize(); i++ {
					x = append(x, 0.5*rng.NormFloat64())
				}
			}
			f := func(x []float64) float64 { l, _, _ := r.eval(t, x, nil); return l }
			gradf := func(x []float64) []float64 { _, g, _ := r.eval(t, x, nil); return g }
			_, grad, _ := r.eval(t, x, nil)
			if e := graph.RelErr(grad, graph.NumGrad(f, x, 1e-5), 1e-3); e > 1e-6 {
				t.Errorf("gradient rel err %.3g > 1e-6", e)
			}
			v := make([]float64, len(x))
			for i := range v {
				v[i] = rng.NormFloat64()
			}
			_, _, hvp := r.eval(t, x, v)
			if e := graph.RelErr(hvp, graph.NumHVP(gradf, x, v, 1e-5), 1e-3); e > 1e-6 {
				t.Errorf("Hessian-vector product rel err %.3g > 1e-6", e)
			}
		})
	}
}

func TestMLPBadConfig(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, m := range []MLP{
		{In: 0, Out: 1},
		{In: 1, Out: -1},
		{In: 1, Out: 1, Hidden: []int{4, 0}},
		{In: 1, Out: 1, Activation: Activation(42)},
	} {
		if _, err := m.Init(rng, tensor.Float64); !errors.Is(err, ErrConfig) {
			t.Errorf("MLP%+v.Init: err = %v; want ErrConfig", m, err)
		}
	}
	if _, err := ParseActivation("swish"); !errors.Is(err, ErrConfig) {
		t.Errorf("ParseActivation(swish): err = %v; want ErrConfig", err)
	}
	if a, err := ParseActivation("Tanh"); err != nil || a != Tanh {
		t.Errorf("ParseActivation(Tanh) = %v, %v; want tanh", a, err)
	}
}

func TestMLPForwardShapes(t *testing.T) {
	m := MLP{In: 3, Out: 2, Hidden: []int{4}}
	p, err := m.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	g := G.NewGraph()
	var nodes G.Nodes
	for i := 0; i < p.Len(); i++ {
		s := append([]int{2}, p.At(i).Value.Shape()...)
		nodes = append(nodes, G.NewTensor(g, G.Float64, len(s), G.WithShape(s...), G.WithName(p.At(i).Name)))
	}
	good := G.NewTensor(g, G.Float64, 3, G.WithShape(2, 5, 3), G.WithName("x"))
	out, err := m.Forward(good, nodes)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Shape().Eq(tensor.Shape{2, 5, 2}) {
		t.Errorf("Forward output shape = %v; want [2 5 2]", out.Shape())
	}
	bad := G.NewTensor(g, G.Float64, 3, G.WithShape(2, 5, 4), G.WithName("xbad"))
	if _, err := m.Forward(bad, nodes); !errors.Is(err, graph.ErrShape) {
		t.Errorf("Forward with 4 input features for In=3: err = %v; want ErrShape", err)
	}
	if _, err := m.Forward(good, nodes[:3]); !errors.Is(err, graph.ErrShape) {
		t.Errorf("Forward with 3 of 4 parameters: err = %v; want ErrShape", err)
	}
	wrongTasks := G.NewTensor(g, G.Float64, 3, G.WithShape(3, 5, 3), G.WithName("x3"))
	if _, err := m.Forward(wrongTasks, nodes); !errors.Is(err, graph.ErrShape) {
		t.Errorf("Forward with 3 tasks for parameters of 2: err = %v; want ErrShape", err)
	}
}

func TestNetStrings(t *testing.T) {
	for _, tt := range []struct {
		net  fmt.Stringer
		want string
	}{
		{MLP{In: 1, Out: 1, Hidden: []int{40, 40}}, "MLP 1-40-40-1 relu"},
		{MLP{In: 3, Out: 2, Activation: Tanh}, "MLP 3-2 tanh"},
		{ConvNet{Side: 28, Out: 5}, "ConvNet 28×28, 4 blocks of 64 filters, 5 outputs"},
		{ConvNet{Side: 84, Out: 5, Filters: 32, Blocks: 2}, "ConvNet 84×84, 2 blocks of 32 filters, 5 outputs"},
	} {
		if got := tt.net.String(); got != tt.want {
			t.Errorf("%#v.String() = %q; want %q", tt.net, got, tt.want)
		}
	}
}
