package nets

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"gorgonia.org/tensor"
)

func TestCrossStitchLayout(t *testing.T) {
	heads := []Head{{Name: "a", Out: 1}, {Name: "b", Out: 2, Hidden: []int{3}}, {Name: "c", Out: 1}}
	m := CrossStitch{In: 4, Hidden: []int{5, 3}, Heads: heads}
	p, err := m.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, h := range []string{"a", "b", "c"} {
		want = append(want, "columns."+h+".layers.0.weight", "columns."+h+".layers.0.bias",
			"columns."+h+".layers.1.weight", "columns."+h+".layers.1.bias")
	}
	want = append(want, "stitches.0.alpha", "stitches.1.alpha",
		"heads.a.layers.0.weight", "heads.a.layers.0.bias",
		"heads.b.layers.0.weight", "heads.b.layers.0.bias", "heads.b.layers.1.weight", "heads.b.layers.1.bias",
		"heads.c.layers.0.weight", "heads.c.layers.0.bias")
	if got := p.Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %v; want %v", got, want)
	}
	wantOwn := []int{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 1, 1, 1, 1, 2, 2} // the stitches mix every column into every task
	if got := m.Owners(); !slices.Equal(got, wantOwn) {
		t.Errorf("Owners() = %v; want %v", got, wantOwn)
	}
	if v, _ := p.Get("columns.b.layers.1.weight"); !v.Shape().Eq(tensor.Shape{3, 5}) {
		t.Errorf("columns.b.layers.1.weight shape %v; want [3 5]", v.Shape())
	}
	if got, want := m.String(), "CrossStitch 3 columns 4-5-3 relu, α_S 0.9, heads a→1 b→2 c→1"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
}

// TestCrossStitchInit checks the units' initial values: α_S on the
// diagonal and (1 − α_S)/(T − 1) off it, the paper's convex combinations.
func TestCrossStitchInit(t *testing.T) {
	for _, c := range []struct {
		name  string
		self  float64
		tasks int
		want  []float64
	}{
		{"default two tasks", 0, 2, []float64{0.9, 0.1, 0.1, 0.9}},
		{"default three tasks", 0, 3, []float64{0.9, 0.05, 0.05, 0.05, 0.9, 0.05, 0.05, 0.05, 0.9}},
		{"half", 0.5, 2, []float64{0.5, 0.5, 0.5, 0.5}},
		{"independent", 1, 3, []float64{1, 0, 0, 0, 1, 0, 0, 0, 1}},
		{"one task", 0, 1, []float64{1}},
	} {
		heads := []Head{{Name: "a", Out: 1}, {Name: "b", Out: 1}, {Name: "c", Out: 1}}[:c.tasks]
		m := CrossStitch{In: 2, Hidden: []int{2, 2}, SelfWeight: c.self, Heads: heads}
		p, err := m.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"stitches.0.alpha", "stitches.1.alpha"} {
			v, _ := p.Get(name)
			got := graph.Float64s(v)
			if len(got) != len(c.want) {
				t.Fatalf("%s: %s = %v; want %v", c.name, name, got, c.want)
			}
			for i := range got {
				if !near(got[i], c.want[i], 1e-15) {
					t.Errorf("%s: %s = %v; want %v", c.name, name, got, c.want)
					break
				}
			}
		}
	}
}

// TestCrossStitchIdentity: with identity cross-stitch units the network
// is independent columns, each the hard-sharing network of one task
// whose trunk is that task's column.
func TestCrossStitchIdentity(t *testing.T) {
	heads := []Head{{Name: "a", Out: 2}, {Name: "b", Out: 1, Hidden: []int{2}}}
	m := CrossStitch{In: 3, Hidden: []int{4, 3}, Activation: Tanh, SelfWeight: 1, Heads: heads}
	rng := rand.New(rand.NewPCG(5, 5))
	p, err := m.Init(rng, tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	n := 4
	x := make([]float64, n*3)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	out := evalOutputs(t, m, p, [][]float64{p.Flatten()}, x, n, 3)
	for i, h := range heads {
		single := MultiTask{Trunk: Trunk{In: 3, Hidden: m.Hidden, Activation: Tanh}, Heads: []Head{h}}
		q, err := single.Init(rng, tensor.Float64)
		if err != nil {
			t.Fatal(err)
		}
		vals := map[string][]float64{}
		for _, name := range q.Names() {
			src := strings.Replace(name, "trunk.", "columns."+h.Name+".", 1)
			v, _ := p.Get(src)
			vals[name] = graph.Float64s(v)
		}
		want := evalOutputs(t, single, q, [][]float64{named(t, q, vals)}, x, n, 3)[0]
		for j := range want {
			if !near(out[i][j], want[j], 1e-12) {
				t.Fatalf("head %s output %d = %v; independent column gives %v", h.Name, j, out[i][j], want[j])
			}
		}
	}
}

// TestCrossStitchMixes checks a unit on a hand-computed case: row t of α
// weighs the tasks' activations into task t's.
func TestCrossStitchMixes(t *testing.T) {
	m := CrossStitch{In: 1, Hidden: []int{1}, Activation: Identity, Heads: []Head{{Name: "a", Out: 1}, {Name: "b", Out: 1}}}
	p, err := m.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	// Columns: a gives x, b gives 2x + 1. α = [[0.9, 0.1], [0.3, 0.7]].
	flat := named(t, p, map[string][]float64{
		"columns.a.layers.0.weight": {1}, "columns.a.layers.0.bias": {0},
		"columns.b.layers.0.weight": {2}, "columns.b.layers.0.bias": {1},
		"stitches.0.alpha":        {0.9, 0.1, 0.3, 0.7},
		"heads.a.layers.0.weight": {1}, "heads.a.layers.0.bias": {0},
		"heads.b.layers.0.weight": {1}, "heads.b.layers.0.bias": {0},
	})
	out := evalOutputs(t, m, p, [][]float64{flat}, []float64{2, -1}, 2, 1)
	want := [][]float64{
		{0.9*2 + 0.1*5, 0.9*-1 + 0.1*-1},
		{0.3*2 + 0.7*5, 0.3*-1 + 0.7*-1},
	}
	for h := range want {
		for i := range want[h] {
			if !near(out[h][i], want[h][i], 1e-12) {
				t.Errorf("head %d example %d = %v; want %v", h, i, out[h][i], want[h][i])
			}
		}
	}
}
