package nets

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestDSelectKLayout(t *testing.T) {
	heads := []Head{{Name: "a", Out: 1}, {Name: "b", Out: 2}}
	m := DSelectK{In: 4, Experts: 5, K: 2, ExpertHidden: []int{3}, Heads: heads}
	p, err := m.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for e := range 5 {
		want = append(want, "experts."+string(rune('0'+e))+".layers.0.weight", "experts."+string(rune('0'+e))+".layers.0.bias")
	}
	want = append(want, "gates.a.z_logits", "gates.a.w_logits", "gates.b.z_logits", "gates.b.w_logits",
		"heads.a.layers.0.weight", "heads.a.layers.0.bias", "heads.b.layers.0.weight", "heads.b.layers.0.bias")
	if got := p.Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %v; want %v", got, want)
	}
	wantOwn := append(appendN(nil, -1, 10), 0, 0, 1, 1, 0, 0, 1, 1)
	if got := m.Owners(); !slices.Equal(got, wantOwn) {
		t.Errorf("Owners() = %v; want %v", got, wantOwn)
	}
	// 5 experts need ⌈log₂ 5⌉ = 3 bits.
	if v, _ := p.Get("gates.b.z_logits"); !v.Shape().Eq(tensor.Shape{2, 3}) {
		t.Errorf("gates.b.z_logits shape %v; want [2 3]", v.Shape())
	}
	// z from U[−γ/100, γ/100], w from U[−0.05, 0.05].
	z, _ := p.Get("gates.a.z_logits")
	w, _ := p.Get("gates.a.w_logits")
	for _, v := range graph.Float64s(z) {
		if math.Abs(v) > 0.01 {
			t.Errorf("z_logits value %v outside ±γ/100", v)
		}
	}
	for _, v := range graph.Float64s(w) {
		if math.Abs(v) > 0.05 {
			t.Errorf("w_logits value %v outside ±0.05", v)
		}
	}
	if got, want := m.String(), "DSelect-k 5 experts 4-3 relu, k=2 static gates, γ=1, heads a→1 b→2"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}

	m.PerExample, m.Experts = true, 4
	q, err := m.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	names := q.Names()[8:16]
	want = []string{"gates.a.z.weight", "gates.a.z.bias", "gates.a.w.weight", "gates.a.w.bias",
		"gates.b.z.weight", "gates.b.z.bias", "gates.b.w.weight", "gates.b.w.bias"}
	if !slices.Equal(names, want) {
		t.Errorf("per-example gate names = %v; want %v", names, want)
	}
	wantOwn = append(appendN(nil, -1, 8), 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1)
	if got := m.Owners(); !slices.Equal(got, wantOwn) {
		t.Errorf("per-example Owners() = %v; want %v", got, wantOwn)
	}
	if v, _ := q.Get("gates.a.z.weight"); !v.Shape().Eq(tensor.Shape{4, 4}) {
		t.Errorf("gates.a.z.weight shape %v; want [4 4] (2 selectors × 2 bits, 4 inputs)", v.Shape())
	}
}

// TestSmoothStep checks the smooth step against its definition,
// −2t³/γ³ + 3t/(2γ) + 1/2 on [−γ/2, γ/2], 0 below and 1 above.
func TestSmoothStep(t *testing.T) {
	for _, c := range []struct {
		dt    tensor.Dtype
		gamma float64
		in    []float64
		want  []float64
	}{
		// S(0.25) = −2/64 + 3/8 + 1/2; S(−0.1) = 0.002 − 0.15 + 0.5.
		{tensor.Float64, 1, []float64{-3, -0.5, -0.1, 0, 0.25, 0.5, 0.7}, []float64{0, 0, 0.352, 0.5, 0.84375, 1, 1}},
		// γ = 2: S(0.5) = −2·0.125/8 + 3·0.5/4 + 1/2.
		{tensor.Float64, 2, []float64{-1.5, -1, 0.5, 1, 40}, []float64{0, 0, 0.84375, 1, 1}},
		// Logits far beyond the ulp of γ/2 still saturate exactly.
		{tensor.Float64, 1, []float64{-1e20, 1e20}, []float64{0, 1}},
		// In float32 too, where t ± 1/2 rounds to t above 2²⁴; 0.84375
		// and every intermediate of S(0.25) are exact binary fractions.
		{tensor.Float32, 1, []float64{-3e7, 3e7, 0.25}, []float64{0, 1, 0.84375}},
	} {
		g := G.NewGraph()
		x, err := constant(g, c.dt, []int{len(c.in)}, c.in)
		if err != nil {
			t.Fatal(err)
		}
		s, err := smoothStep(x, c.gamma)
		if err != nil {
			t.Fatal(err)
		}
		got := runNodes(t, g, G.Nodes{s})[0]
		for i := range got {
			if !near(got[i], c.want[i], 1e-15) {
				t.Errorf("smoothStep(%v) with γ = %v in %v = %v; want %v", c.in[i], c.gamma, c.dt, got[i], c.want[i])
			}
		}
	}
}

// gateWeights evaluates the static DSelect-k gate of m with the given
// logits, z [K, m] flattened and w [K].
func gateWeights(t *testing.T, m DSelectK, z, w []float64) []float64 {
	t.Helper()
	g := G.NewGraph()
	zn, err := constant(g, tensor.Float64, []int{1, m.K, m.bits()}, z)
	if err != nil {
		t.Fatal(err)
	}
	wn, err := constant(g, tensor.Float64, []int{1, m.K}, w)
	if err != nil {
		t.Fatal(err)
	}
	x := G.NewTensor(g, G.Float64, 3, G.WithShape(1, 1, m.In), G.WithName("x"))
	q, err := m.gate(x, G.Nodes{zn, wn})
	if err != nil {
		t.Fatal(err)
	}
	return runNodes(t, g, G.Nodes{q})[0]
}

// TestDSelectKSelector checks one selector on a hand-computed case: with
// 4 experts (2 bits) and smooth steps s1, s2 of its logits, the weights
// are [(1−s1)(1−s2), (1−s1)s2, s1(1−s2), s1s2], the first bit the most
// significant.
func TestDSelectKSelector(t *testing.T) {
	m := DSelectK{In: 1, Experts: 4, K: 1, ExpertHidden: []int{1}, Heads: []Head{{Name: "a", Out: 1}}}
	s1, s2 := 0.84375, 0.352 // S(0.25), S(−0.1), as in TestSmoothStep
	got := gateWeights(t, m, []float64{0.25, -0.1}, []float64{0.3})
	want := []float64{(1 - s1) * (1 - s2), (1 - s1) * s2, s1 * (1 - s2), s1 * s2}
	for i := range want {
		if !near(got[i], want[i], 1e-15) {
			t.Errorf("gate weights = %v; want %v", got, want)
			break
		}
	}
	// 3 experts: code 3 (bits 11) selects none, and its weight s1·s2 is
	// dropped.
	m.Experts = 3
	got = gateWeights(t, m, []float64{0.25, -0.1}, []float64{0.3})
	if len(got) != 3 || !near(got[0]+got[1]+got[2], 1-s1*s2, 1e-15) || !near(got[2], s1*(1-s2), 1e-15) {
		t.Errorf("3-expert gate weights = %v; want %v, summing to 1 − s1·s2 = %v", got, want[:3], 1-s1*s2)
	}
}

// TestDSelectKConverges checks that a selector (k = 1) tends to a
// one-hot choice as its logits grow, and is one-hot once every logit is
// beyond ±γ/2: z = c·[1, −1] selects expert 2 (binary 10) with weight
// S(c)², exactly 1 for c ≥ 1/2.
func TestDSelectKConverges(t *testing.T) {
	m := DSelectK{In: 1, Experts: 4, K: 1, ExpertHidden: []int{1}, Heads: []Head{{Name: "a", Out: 1}}}
	prev := 0.0
	for _, c := range []float64{0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.49, 0.5, 1, 100} {
		q := gateWeights(t, m, []float64{c, -c}, []float64{0})
		if !near(q[0]+q[1]+q[2]+q[3], 1, 1e-12) {
			t.Errorf("c = %v: weights %v do not sum to 1", c, q)
		}
		if q[2] < prev {
			t.Errorf("c = %v: weight of expert 2 fell from %v to %v", c, prev, q[2])
		}
		prev = q[2]
		if c >= 0.5 && !slices.Equal(q, []float64{0, 0, 1, 0}) {
			t.Errorf("c = %v: weights %v; want one-hot [0 0 1 0]", c, q)
		}
		if c < 0.5 && q[2] == 1 {
			t.Errorf("c = %v: weights %v already one-hot", c, q)
		}
	}
	if q := gateWeights(t, m, []float64{0, 0}, []float64{0}); !slices.Equal(q, []float64{0.25, 0.25, 0.25, 0.25}) {
		t.Errorf("z = 0: weights %v; want uniform", q)
	}
}

// TestDSelectKMixture checks the whole network on a hand-computed case
// with k = 2: one selector picks expert 0, the other expert 3, weighted
// softmax([0, ln 3]) = [1/4, 3/4]; experts output 1, 10, 100, 1000. The
// per-example gate with zero weights and these logits as biases gives
// the same.
func TestDSelectKMixture(t *testing.T) {
	for _, perExample := range []bool{false, true} {
		m := DSelectK{In: 2, Experts: 4, K: 2, ExpertHidden: []int{1}, Activation: Identity, PerExample: perExample,
			Heads: []Head{{Name: "a", Out: 1}}}
		p, err := m.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
		if err != nil {
			t.Fatal(err)
		}
		z, w := []float64{-1, -1, 1, 1}, []float64{0, math.Log(3)} // codes 00 and 11
		vals := map[string][]float64{
			"experts.0.layers.0.weight": {0, 0}, "experts.0.layers.0.bias": {1},
			"experts.1.layers.0.weight": {0, 0}, "experts.1.layers.0.bias": {10},
			"experts.2.layers.0.weight": {0, 0}, "experts.2.layers.0.bias": {100},
			"experts.3.layers.0.weight": {0, 0}, "experts.3.layers.0.bias": {1000},
			"heads.a.layers.0.weight": {1}, "heads.a.layers.0.bias": {0},
		}
		if perExample {
			vals["gates.a.z.weight"], vals["gates.a.z.bias"] = make([]float64, 8), z
			vals["gates.a.w.weight"], vals["gates.a.w.bias"] = make([]float64, 4), w
		} else {
			vals["gates.a.z_logits"], vals["gates.a.w_logits"] = z, w
		}
		out := evalOutputs(t, m, p, [][]float64{named(t, p, vals)}, []float64{0.3, -2, 7, 1}, 2, 2)
		want := 0.25*1 + 0.75*1000
		for i, o := range out[0] {
			if !near(o, want, 1e-10) {
				t.Errorf("per-example %v: output %d = %v; want %v", perExample, i, o, want)
			}
		}
	}
}

// TestDSelectKPerExample checks that per-example gates depend on the
// input: z = x selects expert 1 (binary 01) for x = [−1, 1] and expert 2
// for x = [1, −1], both beyond ±γ/2.
func TestDSelectKPerExample(t *testing.T) {
	m := DSelectK{In: 2, Experts: 4, K: 1, ExpertHidden: []int{1}, Activation: Identity, PerExample: true,
		Heads: []Head{{Name: "a", Out: 1}}}
	p, err := m.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string][]float64{
		"experts.0.layers.0.weight": {0, 0}, "experts.0.layers.0.bias": {1},
		"experts.1.layers.0.weight": {0, 0}, "experts.1.layers.0.bias": {10},
		"experts.2.layers.0.weight": {0, 0}, "experts.2.layers.0.bias": {100},
		"experts.3.layers.0.weight": {0, 0}, "experts.3.layers.0.bias": {1000},
		"gates.a.z.weight": {1, 0, 0, 1}, "gates.a.z.bias": {0, 0},
		"gates.a.w.weight": {0, 0}, "gates.a.w.bias": {0},
		"heads.a.layers.0.weight": {1}, "heads.a.layers.0.bias": {0},
	}
	out := evalOutputs(t, m, p, [][]float64{named(t, p, vals)}, []float64{-1, 1, 1, -1}, 2, 2)
	if want := []float64{10, 100}; !slices.Equal(out[0], want) {
		t.Errorf("outputs %v; want %v", out[0], want)
	}
}
