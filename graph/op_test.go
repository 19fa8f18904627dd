package graph

import (
	"errors"
	"testing"

	G "gorgonia.org/gorgonia"
)

// TestOpWrapper checks what apply adds to a kernel: gorgonia's Op,
// UsePreallocDo only for a kernel that takes a buffer, and no gradient
// from a kernel without a derivative.
func TestOpWrapper(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, G.Float64, G.WithShape(2, 3), G.WithName("x"))
	r, err := apply(reluOp{}, x)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Op().(G.UsePreallocDoer); !ok {
		t.Error("ReLU's op takes no buffer")
	}
	if r.Op().Hashcode() != hashOf(reluOp{}) || r.Op().String() != "ReLU" {
		t.Errorf("op %v hashes to %d; want ReLU's %d", r.Op(), r.Op().Hashcode(), hashOf(reluOp{}))
	}
	if _, err := (op[reluOp]{}).InferShape(notShape{}); err == nil {
		t.Error("InferShape of a non-shape: no error")
	}
	labels := G.NewVector(g, G.Int, G.WithShape(2), G.WithName("labels"))
	p, err := Pick(x, labels)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Op().(G.UsePreallocDoer); ok {
		t.Error("Pick's op, bufferless, takes a buffer")
	}
	a, err := apply(poolArgMaxOp{image: image{n: 1, h: 2, w: 2, c: 1}, k: 2}, G.NewTensor(g, G.Float64, 5, G.WithShape(1, 1, 2, 2, 1), G.WithName("im")))
	if err != nil {
		t.Fatal(err)
	}
	sd := a.Op().(G.SDOp)
	if d := sd.DiffWRT(1); len(d) != 1 || d[0] {
		t.Errorf("DiffWRT of the arg max = %v; want [false]", d)
	}
	if _, err := sd.SymDiff(G.Nodes{x}, a, a); !errors.Is(err, ErrNotDifferentiable) {
		t.Errorf("SymDiff of the arg max: %v; want ErrNotDifferentiable", err)
	}
}

// notShape is a DimSizer that is not a tensor.Shape.
type notShape struct{}

func (notShape) DimSize(int) (int, error) { return 0, nil }
