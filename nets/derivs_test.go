package nets

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// derivs builds the softmax cross-entropy of m (out classes) on n random
// inputs per task for tasks tasks, its gradient and its Hessian-vector product
// with respect to every parameter (flattened in Init's order, each with
// its task axis), and evaluates them at a random θ (Init's values, plus
// noise so that the tasks differ) and along a random v. f and grad
// evaluate the loss and its gradient at any θ.
type derivs struct {
	theta, v, grad, hvp []float64
	sizes               []int // of each parameter, task axis included
	f                   func(theta []float64) float64
	gradf               func(theta []float64) []float64
}

// derivModel is a network newDerivs differentiates.
type derivModel interface {
	Init(*rand.Rand, tensor.Dtype) (*graph.Params, error)
	Forward(*G.Node, G.Nodes) (*G.Node, error)
	In() int
	ParamCount() int64
}

func newDerivs(t *testing.T, m derivModel, out, tasks, n int, rng *rand.Rand) *derivs {
	t.Helper()
	p, err := m.Init(rng, tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	g := G.NewGraph()
	params, shapes := paramNodes(g, p, tasks, "")
	vecs, _ := paramNodes(g, p, tasks, "v.")
	xd := make([]float64, tasks*n*m.In())
	for i := range xd {
		xd[i] = rng.NormFloat64()
	}
	yd := make([]float64, tasks*n*out)
	for r := 0; r < tasks*n; r++ {
		yd[r*out+r%out] = 1
	}
	x := G.NewConstant(tensor.New(tensor.WithShape(tasks, n, m.In()), tensor.WithBacking(xd)), G.In(g), G.WithName("x"))
	y := G.NewConstant(tensor.New(tensor.WithShape(tasks, n, out), tensor.WithBacking(yd)), G.In(g), G.WithName("y"))
	logits, err := m.Forward(x, params)
	if err != nil {
		t.Fatal(err)
	}
	loss, err := graph.SoftmaxCrossEntropy(logits, y)
	if err != nil {
		t.Fatal(err)
	}
	grads, err := graph.Grad(loss, params...)
	if err != nil {
		t.Fatal(err)
	}
	var dot *G.Node
	for i, gr := range grads {
		s := G.Must(graph.SumAll(G.Must(G.HadamardProd(gr, vecs[i]))))
		if dot == nil {
			dot = s
		} else {
			dot = G.Must(G.Add(dot, s))
		}
	}
	hvps, err := graph.Grad(dot, params...)
	if err != nil {
		t.Fatal(err)
	}
	// Three plans on one graph: the loss alone for the many evaluations
	// of finite differences, the gradient for NumHVP, and everything.
	lossPlan, err := graph.Compile(g, loss)
	if err != nil {
		t.Fatal(err)
	}
	gradPlan, err := graph.Compile(g, grads...)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := graph.Compile(g, append(append(G.Nodes{loss}, grads...), hvps...)...)
	if err != nil {
		t.Fatal(err)
	}
	d := new(derivs)
	for _, s := range shapes {
		d.sizes = append(d.sizes, tensor.Shape(s).TotalSize())
	}
	bind := func(pl *graph.Plan, nodes G.Nodes, flat []float64) {
		for i, nd := range nodes {
			v, err := graph.NewTensor(tensor.Float64, shapes[i], flat[:d.sizes[i]])
			if err != nil {
				t.Fatal(err)
			}
			if err := pl.Let(nd.Name(), v); err != nil {
				t.Fatal(err)
			}
			flat = flat[d.sizes[i]:]
		}
	}
	run := func(pl *graph.Plan, outs G.Nodes) []float64 {
		if err := pl.Run(); err != nil {
			t.Fatal(err)
		}
		var all []float64
		for _, nd := range outs {
			v, err := pl.ReadFloat64s(nd)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, v...)
		}
		return all
	}
	d.f = func(theta []float64) float64 {
		bind(lossPlan, params, theta)
		return run(lossPlan, G.Nodes{loss})[0]
	}
	d.gradf = func(theta []float64) []float64 {
		bind(gradPlan, params, theta)
		return run(gradPlan, grads)
	}
	for i := 0; i < p.Len(); i++ {
		v := graph.Float64s(p.At(i).Value)
		for range tasks {
			for _, e := range v {
				d.theta = append(d.theta, e+0.3*rng.NormFloat64())
			}
		}
	}
	if want := tasks * int(m.ParamCount()); len(d.theta) != want {
		t.Fatalf("%d parameters; want %d", len(d.theta), want)
	}
	d.v = unitVector(rng, len(d.theta))
	bind(plan, params, d.theta)
	bind(plan, vecs, d.v)
	all := run(plan, append(append(G.Nodes{loss}, grads...), hvps...))
	d.grad, d.hvp = all[1:1+len(d.theta)], all[1+len(d.theta):]
	if l := d.f(d.theta); math.Abs(l-all[0]) > 1e-12 {
		t.Errorf("loss %v with the Hessian-vector product; %v alone", all[0], l)
	}
	return d
}

// unitVector returns a random vector of length n and norm 1.
func unitVector(rng *rand.Rand, n int) []float64 {
	u := make([]float64, n)
	norm := 0.0
	for i := range u {
		u[i] = rng.NormFloat64()
		norm += u[i] * u[i]
	}
	for i := range u {
		u[i] /= math.Sqrt(norm)
	}
	return u
}

// forwardAt runs m's Forward in dt on x [tasks, n, In] with the
// parameters flat (Init's order, each with its task axis, flattened) and
// returns the output.
func forwardAt(t *testing.T, m derivModel, dt tensor.Dtype, x, flat []float64, tasks, n int) []float64 {
	t.Helper()
	g := G.NewGraph()
	q, err := m.Init(rand.New(rand.NewPCG(1, 1)), dt) // for the dtype and shapes
	if err != nil {
		t.Fatal(err)
	}
	nodes, shapes := paramNodes(g, q, tasks, "")
	xn := G.NewTensor(g, dt, 3, G.WithShape(tasks, n, m.In()), G.WithName("x"))
	out, err := m.Forward(xn, nodes)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := graph.Compile(g, out)
	if err != nil {
		t.Fatal(err)
	}
	for i, nd := range nodes {
		size := tensor.Shape(shapes[i]).TotalSize()
		v, err := graph.NewTensor(dt, shapes[i], flat[:size])
		if err != nil {
			t.Fatal(err)
		}
		flat = flat[size:]
		if err := plan.Let(nd.Name(), v); err != nil {
			t.Fatal(err)
		}
	}
	xv, err := graph.NewTensor(dt, []int{tasks, n, m.In()}, x)
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Let("x", xv); err != nil {
		t.Fatal(err)
	}
	if err := plan.Run(); err != nil {
		t.Fatal(err)
	}
	got, err := plan.ReadFloat64s(out)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// randomPoint draws, from rng, normal inputs x [tasks, n, In] for m and
// normal parameters flat (Init's order, each with its task axis,
// flattened).
func randomPoint(t *testing.T, m derivModel, tasks, n int, rng *rand.Rand) (x, flat []float64) {
	t.Helper()
	p, err := m.Init(rng, tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < p.Len(); i++ {
		for range tasks * p.At(i).Value.Shape().TotalSize() {
			flat = append(flat, rng.NormFloat64())
		}
	}
	x = make([]float64, tasks*n*m.In())
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	return x, flat
}
