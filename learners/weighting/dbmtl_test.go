package weighting

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDBMTLByHand follows DB-MTL over two steps of two tasks with the
// default β = 0.9: the averaged log-loss gradients are
//
//	step 1: ĝ_t = 0.1·g_t/(L_t + 1e-8),
//	step 2: ĝ_t ← 0.9·ĝ_t + 0.1·g_t/(L_t + 1e-8),
//
// and the shared gradient Σ_t α_t·ĝ_t with α_t = max_j ‖ĝ_j‖/‖ĝ_t‖. At
// step 1, g_1 = (3, 4) with L_1 = 1 and g_2 = (0, 1) with L_2 = 0.5, so
// ĝ_1 ≈ (0.3, 0.4), ĝ_2 ≈ (0, 0.2): α ≈ (1, 2.5) and the shared gradient
// is about (0.3, 0.9).
func TestDBMTLByHand(t *testing.T) {
	const eps = 1e-8
	m := &DBMTL{}
	steps := []struct {
		losses []float64
		grads  [][]float64
	}{
		{[]float64{1, 0.5}, [][]float64{{3, 4}, {0, 1}}},
		{[]float64{0.8, 0.25}, [][]float64{{-1, 2}, {2, 0}}},
	}
	avg := [][]float64{{0, 0}, {0, 0}}
	for k, s := range steps {
		for i := range avg {
			for j := range avg[i] {
				avg[i][j] = 0.9*avg[i][j] + 0.1*s.grads[i][j]/(s.losses[i]+eps)
			}
		}
		n0, n1 := math.Hypot(avg[0][0], avg[0][1]), math.Hypot(avg[1][0], avg[1][1])
		top := math.Max(n0, n1)
		alpha := []float64{top / n0, top / n1}
		want := []float64{alpha[0]*avg[0][0] + alpha[1]*avg[1][0], alpha[0]*avg[0][1] + alpha[1]*avg[1][1]}
		out, err := m.Combine(Input{Step: k + 1, Losses: s.losses, Grads: s.grads})
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 && (math.Abs(want[0]-0.3) > 1e-8 || math.Abs(want[1]-0.9) > 1e-8) {
			t.Fatalf("the test's step 1 gives %v; its comment says about (0.3, 0.9)", want)
		}
		for i := range want {
			if math.Abs(out.Shared[i]-want[i]) > 1e-15 || math.Abs(out.Weights[i]-alpha[i]) > 1e-14 {
				t.Errorf("step %d: shared %v, weights %v; want %v, %v", k+1, out.Shared, out.Weights, want, alpha)
				break
			}
		}
		for i, l := range s.losses {
			if want := 1 / (l + eps); out.HeadWeights[i] != want {
				t.Errorf("step %d: head weight %d = %v; want 1/(L + 1e-8) = %v", k+1, i, out.HeadWeights[i], want)
			}
		}
	}
}

// TestDBMTLBalance checks on random gradients that every task's scaled
// averaged gradient α_t·ĝ_t has the largest norm, and the decay β/k^σ:
// with σ = 0.5, step 4 averages with β = 0.45.
func TestDBMTLBalance(t *testing.T) {
	rng := rand.New(rand.NewPCG(85, 86))
	g := randGrads(rng, 4, 6)
	for i := range g {
		for j := range g[i] {
			g[i][j] *= math.Pow(10, float64(i)) // norms 1 to 1000
		}
	}
	losses := randLosses(rng, 4)
	m := &DBMTL{BetaSigma: 0.5}
	out, err := m.Combine(Input{Step: 4, Losses: losses, Grads: g})
	if err != nil {
		t.Fatal(err)
	}
	norms := make([]float64, 4)
	for i := range g {
		for j := range g[i] {
			v := (1 - 0.45) * g[i][j] / (losses[i] + 1e-8)
			if a := m.avg[i*6+j]; math.Abs(a-v) > 1e-15*math.Abs(v) {
				t.Fatalf("ĝ_%d[%d] = %v; want (1 − 0.9/√4)·g/(L + 1e-8) = %v", i, j, a, v)
			}
			norms[i] += v * v * out.Weights[i] * out.Weights[i]
		}
		norms[i] = math.Sqrt(norms[i])
	}
	top := slices.Max(norms)
	for i, n := range norms {
		if math.Abs(n-top) > 1e-12*top || out.Weights[i] < 1 {
			t.Errorf("‖α_%d·ĝ_%d‖ = %v, α = %v; want every norm %v and α ≥ 1", i, i, n, out.Weights, top)
		}
	}
	// A task whose averaged gradient is 0 gets α = 1 and adds nothing.
	z := &DBMTL{}
	out, err = z.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: [][]float64{{0, 0}, {0, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := 0.1 * 3 / (1 + 1e-8); !slices.Equal(out.Weights, []float64{1, 1}) || math.Abs(out.Shared[1]-want) > 1e-16 || out.Shared[0] != 0 {
		t.Errorf("DBMTL with a zero gradient: weights %v, shared %v; want [1 1], (0, %v)", out.Weights, out.Shared, want)
	}
}

// TestDBMTLResume: DB-MTL restored from its state midway continues with
// the same outputs, bit for bit.
func TestDBMTLResume(t *testing.T) {
	checkStateRoundTrip(t, func() Method { return &DBMTL{BetaSigma: 0.3} }, func(step int, _ *rand.Rand) Input {
		rng := rand.New(rand.NewPCG(87, uint64(step)))
		return Input{Step: step, Losses: randLosses(rng, 3), Grads: randGrads(rng, 3, 5)}
	}, 5, 8)
}

// TestDBMTLBadInputs checks DB-MTL's own errors, that a failed Combine
// leaves its state as it was, and that corrupt state is refused.
func TestDBMTLBadInputs(t *testing.T) {
	ok := [][]float64{{1, 2}, {3, 4}}
	m := &DBMTL{}
	if _, err := m.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: ok}); err != nil {
		t.Fatal(err)
	}
	before, err := m.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   Input
		task int
	}{
		{"negative loss", Input{Step: 2, Losses: []float64{1, -0.5}, Grads: ok}, 1},
		{"repeated step", Input{Step: 1, Losses: []float64{1, 1}, Grads: ok}, -1},
		{"longer gradients", Input{Step: 2, Losses: []float64{1, 1}, Grads: [][]float64{{1, 2, 3}, {4, 5, 6}}}, -1},
		{"three tasks", Input{Step: 2, Losses: []float64{1, 1, 1}, Grads: [][]float64{{1, 2}, {3, 4}, {5, 6}}}, -1},
		{"NaN gradient", Input{Step: 2, Losses: []float64{1, 1}, Grads: [][]float64{{1, 2}, {math.NaN(), 4}}}, 1},
		{"overflow", Input{Step: 2, Losses: []float64{0, 1}, Grads: [][]float64{{1e300, 0}, {1, 1}}}, -1},
	} {
		_, err := m.Combine(tc.in)
		var ie *InputError
		if !errors.As(err, &ie) || ie.Task != tc.task {
			t.Errorf("%s: error %v; want an *InputError for task %d", tc.name, err, tc.task)
		}
		if after, _ := m.MarshalState(); !slices.Equal(after, before) {
			t.Errorf("%s: the state changed", tc.name)
		}
	}
	for _, bad := range []*DBMTL{{Beta: 1}, {Beta: math.NaN()}, {BetaSigma: -1}, {BetaSigma: math.Inf(1)}} {
		if _, err := bad.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: ok}); err == nil {
			t.Errorf("%+v.Combine: no error", bad)
		}
	}
	state := func(s dbmtlState) string {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, b := range []string{
		`{`,
		state(dbmtlState{Tasks: 2, Dim: 2, LastStep: 1, Avg: packed{1, 2, 3}}),             // wrong length
		state(dbmtlState{Tasks: 2, Dim: 2, LastStep: 1, Avg: packed{1, 2, 3, math.NaN()}}), // NaN
		state(dbmtlState{Tasks: 2, Dim: 2, LastStep: 0, Avg: packed{1, 2, 3, 4}}),          // no step
		state(dbmtlState{Tasks: 0, Dim: 0, LastStep: 3}),                                   // steps without tasks
		`{"Tasks":1,"Dim":1,"LastStep":1,"Avg":"AAAA"}`,                                    // 3 bytes
	} {
		if err := (&DBMTL{}).UnmarshalState([]byte(b)); err == nil {
			t.Errorf("UnmarshalState(%s): no error", b)
		}
	}
}

// TestPackedRoundTrip: packed values come back bit for bit, nil and empty
// as nil, and appendJSON writes what encoding/json writes.
func TestPackedRoundTrip(t *testing.T) {
	long := make(packed, 1000) // several of appendBase64's pieces
	for i := range long {
		long[i] = math.Exp(float64(i) / 10)
	}
	for _, p := range []packed{nil, {}, {0, math.Copysign(0, -1), 1, -2.5, math.SmallestNonzeroFloat64, math.MaxFloat64, math.Inf(-1), math.NaN()}, long} {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var q packed
		if err := json.Unmarshal(b, &q); err != nil {
			t.Fatal(err)
		}
		if q != nil && len(q) == 0 || len(p) != len(q) {
			t.Fatalf("packed %v encoded as %s decodes as %v", p, b, q)
		}
		if j := p.appendJSON(nil); !slices.Equal(j, b) {
			t.Errorf("packed %v: appendJSON gives %s, encoding/json %s", p, j, b)
		}
		for i := range p {
			if math.Float64bits(p[i]) != math.Float64bits(q[i]) {
				t.Errorf("packed %v encoded as %s decodes as %v", p, b, q)
				break
			}
		}
	}
}
