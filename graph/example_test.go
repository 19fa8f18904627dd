package graph_test

import (
	"fmt"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ExampleGrad differentiates x³ three times; gorgonia's own Grad gets the
// second derivative wrong on this graph.
func ExampleGrad() {
	g := G.NewGraph()
	x := G.NewScalar(g, G.Float64, G.WithName("x"))
	y := G.Must(G.Mul(G.Must(G.Mul(x, x)), x))
	d1, _ := graph.Grad(y, x)
	d2, _ := graph.Grad(d1[0], x)
	d3, _ := graph.Grad(d2[0], x)

	m, err := graph.Compile(g, y, d1[0], d2[0], d3[0])
	if err != nil {
		fmt.Println(err)
		return
	}
	v, _ := graph.NewTensor(tensor.Float64, nil, []float64{2})
	if err := m.Let("x", v); err != nil {
		fmt.Println(err)
		return
	}
	if err := m.Run(); err != nil {
		fmt.Println(err)
		return
	}
	for _, n := range []*G.Node{y, d1[0], d2[0], d3[0]} {
		out, _ := m.ReadFloat64s(n)
		fmt.Print(out[0], " ")
	}
	fmt.Println()
	// Output: 8 12 12 6
}
