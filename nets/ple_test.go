package nets

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gorgonia.org/tensor"
)

func TestPLELayout(t *testing.T) {
	heads := []Head{{Name: "a", Out: 1}, {Name: "b", Out: 2}}
	cgc := PLE{In: 4, SharedExperts: 1, TaskExperts: 1, ExpertHidden: []int{3}, Heads: heads}
	p, err := cgc.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{
		"levels.0.shared.experts.0.layers.0.weight", "levels.0.shared.experts.0.layers.0.bias",
		"levels.0.tasks.a.experts.0.layers.0.weight", "levels.0.tasks.a.experts.0.layers.0.bias",
		"levels.0.tasks.a.gate.weight", "levels.0.tasks.a.gate.bias",
		"levels.0.tasks.b.experts.0.layers.0.weight", "levels.0.tasks.b.experts.0.layers.0.bias",
		"levels.0.tasks.b.gate.weight", "levels.0.tasks.b.gate.bias",
		"heads.a.layers.0.weight", "heads.a.layers.0.bias", "heads.b.layers.0.weight", "heads.b.layers.0.bias",
	}
	if got := p.Names(); !slices.Equal(got, wantNames) {
		t.Errorf("CGC Names() = %v; want %v", got, wantNames)
	}
	if got, want := cgc.Owners(), []int{-1, -1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1}; !slices.Equal(got, want) {
		t.Errorf("CGC Owners() = %v; want %v", got, want)
	}
	if s := p.At(4).Value.Shape(); !s.Eq(tensor.Shape{2, 4}) {
		t.Errorf("levels.0.tasks.a.gate.weight shape = %v; want [2 4] (1 task + 1 shared expert, 4 inputs)", s)
	}

	ple := PLE{In: 4, Levels: 2, SharedExperts: 2, TaskExperts: 1, ExpertHidden: []int{3}, Heads: heads}
	q, err := ple.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, level := range []string{"levels.0.", "levels.1."} {
		want = append(want,
			level+"shared.experts.0.layers.0.weight", level+"shared.experts.0.layers.0.bias",
			level+"shared.experts.1.layers.0.weight", level+"shared.experts.1.layers.0.bias",
			level+"tasks.a.experts.0.layers.0.weight", level+"tasks.a.experts.0.layers.0.bias",
			level+"tasks.a.gate.weight", level+"tasks.a.gate.bias",
			level+"tasks.b.experts.0.layers.0.weight", level+"tasks.b.experts.0.layers.0.bias",
			level+"tasks.b.gate.weight", level+"tasks.b.gate.bias")
		if level == "levels.0." {
			want = append(want, level+"shared.gate.weight", level+"shared.gate.bias")
		}
	}
	want = append(want, "heads.a.layers.0.weight", "heads.a.layers.0.bias", "heads.b.layers.0.weight", "heads.b.layers.0.bias")
	if got := q.Names(); !slices.Equal(got, want) {
		t.Errorf("PLE Names() = %v; want %v", got, want)
	}
	// Below the last level the task experts feed the shared gate, and are
	// shared; the task gates feed the last level's task experts alone.
	level0 := []int{-1, -1, -1, -1, -1, -1, 0, 0, -1, -1, 1, 1}
	level1 := []int{-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1}
	wantOwn := slices.Concat(level0, []int{-1, -1}, level1, []int{0, 0, 1, 1})
	if got := ple.Owners(); !slices.Equal(got, wantOwn) {
		t.Errorf("PLE Owners() = %v; want %v", got, wantOwn)
	}
	shapes := map[string]tensor.Shape{
		"levels.0.shared.gate.weight":                {4, 4}, // 2 tasks × 1 + 2 shared experts, 4 inputs
		"levels.1.tasks.b.gate.weight":               {3, 3}, // 1 + 2 experts, the width 3 of level 0
		"levels.1.shared.experts.1.layers.0.weight":  {3, 3},
		"levels.0.tasks.b.experts.0.layers.0.weight": {3, 4},
	}
	for name, s := range shapes {
		if v, ok := q.Get(name); !ok || !v.Shape().Eq(s) {
			t.Errorf("%s shape = %v; want %v", name, v.Shape(), s)
		}
	}
	if got, want := cgc.String(), "CGC 1 shared + 1 per-task experts 4-3 relu, heads a→1 b→2"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
	if got, want := ple.String(), "PLE 2 levels of 2 shared + 1 per-task experts 4-3 relu, heads a→1 b→2"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
}

// TestCGCGates checks the gates on a hand-computed case: one shared and
// one specific expert per task, a task's gate weighing its own expert
// first and the shared one second.
func TestCGCGates(t *testing.T) {
	m := PLE{In: 1, SharedExperts: 1, TaskExperts: 1, ExpertHidden: []int{1}, Activation: Identity,
		Heads: []Head{{Name: "a", Out: 1}, {Name: "b", Out: 1}}}
	p, err := m.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	// Shared expert x; a's expert 1, b's 2. Gate a: logits [ln 3, 0], so
	// weights [3/4, 1/4]; gate b: [0, 0], weights [1/2, 1/2]. Heads: identity.
	flat := named(t, p, map[string][]float64{
		"levels.0.shared.experts.0.layers.0.weight": {1}, "levels.0.shared.experts.0.layers.0.bias": {0},
		"levels.0.tasks.a.experts.0.layers.0.weight": {0}, "levels.0.tasks.a.experts.0.layers.0.bias": {1},
		"levels.0.tasks.a.gate.weight": {0, 0}, "levels.0.tasks.a.gate.bias": {math.Log(3), 0},
		"levels.0.tasks.b.experts.0.layers.0.weight": {0}, "levels.0.tasks.b.experts.0.layers.0.bias": {2},
		"levels.0.tasks.b.gate.weight": {0, 0}, "levels.0.tasks.b.gate.bias": {0, 0},
		"heads.a.layers.0.weight": {1}, "heads.a.layers.0.bias": {0},
		"heads.b.layers.0.weight": {1}, "heads.b.layers.0.bias": {0},
	})
	out := evalOutputs(t, m, p, [][]float64{flat}, []float64{4, -2}, 2, 1)
	want := [][]float64{
		{0.75*1 + 0.25*4, 0.75*1 + 0.25*-2},
		{0.5*2 + 0.5*4, 0.5*2 + 0.5*-2},
	}
	for h := range want {
		for i := range want[h] {
			if !near(out[h][i], want[h][i], 1e-12) {
				t.Errorf("head %d example %d = %v; want %v", h, i, out[h][i], want[h][i])
			}
		}
	}
}

// TestPLESharedGate checks two extraction layers on a hand-computed case:
// the shared gate of level 0 weighs every expert (a's, b's, then the
// shared one) into the shared input of level 1, whose shared expert reads
// it while each task's expert reads that task's output of level 0.
func TestPLESharedGate(t *testing.T) {
	m := PLE{In: 1, Levels: 2, SharedExperts: 1, TaskExperts: 1, ExpertHidden: []int{1}, Activation: Identity,
		Heads: []Head{{Name: "a", Out: 1}, {Name: "b", Out: 1}}}
	p, err := m.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	x := 4.0
	// Level 0: shared expert x = 4, a's expert 1, b's 2; task gates
	// uniform, so a → (1+4)/2 = 2.5 and b → (2+4)/2 = 3; the shared gate's
	// logits [0, ln 2, ln 5] weigh [a, b, shared] by [1, 2, 5]/8: 25/8.
	// Level 1: every expert is the identity, task gates uniform:
	// a → (2.5 + 25/8)/2, b → (3 + 25/8)/2.
	vals := map[string][]float64{
		"levels.0.shared.experts.0.layers.0.weight": {1}, "levels.0.shared.experts.0.layers.0.bias": {0},
		"levels.0.tasks.a.experts.0.layers.0.weight": {0}, "levels.0.tasks.a.experts.0.layers.0.bias": {1},
		"levels.0.tasks.a.gate.weight": {0, 0}, "levels.0.tasks.a.gate.bias": {0, 0},
		"levels.0.tasks.b.experts.0.layers.0.weight": {0}, "levels.0.tasks.b.experts.0.layers.0.bias": {2},
		"levels.0.tasks.b.gate.weight": {0, 0}, "levels.0.tasks.b.gate.bias": {0, 0},
		"levels.0.shared.gate.weight": {0, 0, 0}, "levels.0.shared.gate.bias": {0, math.Log(2), math.Log(5)},
		"levels.1.shared.experts.0.layers.0.weight": {1}, "levels.1.shared.experts.0.layers.0.bias": {0},
		"levels.1.tasks.a.experts.0.layers.0.weight": {1}, "levels.1.tasks.a.experts.0.layers.0.bias": {0},
		"levels.1.tasks.a.gate.weight": {0, 0}, "levels.1.tasks.a.gate.bias": {0, 0},
		"levels.1.tasks.b.experts.0.layers.0.weight": {1}, "levels.1.tasks.b.experts.0.layers.0.bias": {0},
		"levels.1.tasks.b.gate.weight": {0, 0}, "levels.1.tasks.b.gate.bias": {0, 0},
		"heads.a.layers.0.weight": {1}, "heads.a.layers.0.bias": {0},
		"heads.b.layers.0.weight": {1}, "heads.b.layers.0.bias": {0},
	}
	out := evalOutputs(t, m, p, [][]float64{named(t, p, vals)}, []float64{x}, 1, 1)
	for h, want := range []float64{(2.5 + 25.0/8) / 2, (3 + 25.0/8) / 2} {
		if !near(out[h][0], want, 1e-12) {
			t.Errorf("head %d = %v; want %v", h, out[h][0], want)
		}
	}
}
