package nets

import (
	"errors"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestLinear checks Linear's values on a small case worked by hand, with
// and without a bias, and its shape errors.
func TestLinear(t *testing.T) {
	g := G.NewGraph()
	val := func(name string, shape []int, data []float64) *G.Node {
		return G.NewTensor(g, G.Float64, len(shape), G.WithShape(shape...), G.WithName(name),
			G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))))
	}
	// Two tasks, two examples of three inputs, two outputs.
	x := val("x", []int{2, 2, 3}, []float64{1, 2, 3, 4, 5, 6, 1, 0, -1, 2, 2, 2})
	w := val("w", []int{2, 2, 3}, []float64{1, 0, 0, 0, 1, 1, 1, 1, 1, 0.5, 0, -0.5})
	b := val("b", []int{2, 2}, []float64{10, 20, -1, 1})
	y, err := Linear(x, w, b)
	if err != nil {
		t.Fatal(err)
	}
	y0, err := Linear(x, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := graph.Compile(g, y, y0)
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Run(); err != nil {
		t.Fatal(err)
	}
	noBias := []float64{1, 5, 4, 11, 0, 1, 6, 0}
	withBias := []float64{11, 25, 14, 31, -1, 2, 5, 1}
	for _, c := range []struct {
		node *G.Node
		want []float64
	}{{y, withBias}, {y0, noBias}} {
		got, err := plan.ReadFloat64s(c.node)
		if err != nil {
			t.Fatal(err)
		}
		if !c.node.Shape().Eq(tensor.Shape{2, 2, 2}) || graph.RelErr(got, c.want, 1) != 0 {
			t.Errorf("Linear = %v %v, want [2 2 2] %v", c.node.Shape(), got, c.want)
		}
	}
	for _, c := range []struct {
		name    string
		x, w, b *G.Node
	}{
		{"inputs", x, val("w4", []int{2, 2, 4}, make([]float64, 16)), nil},
		{"tasks", val("x3", []int{3, 2, 3}, make([]float64, 18)), w, nil},
		{"bias", x, w, val("b3", []int{2, 3}, make([]float64, 6))},
		{"rank", val("x2", []int{2, 3}, make([]float64, 6)), w, nil},
	} {
		if _, err := Linear(c.x, c.w, c.b); !errors.Is(err, graph.ErrShape) {
			t.Errorf("%s mismatch: err = %v, want ErrShape", c.name, err)
		}
	}
}
