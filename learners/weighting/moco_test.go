package weighting

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// project2 is the Euclidean projection of (a, b) onto the 2-simplex:
// shift both by the same amount to sum to 1, then clip.
func project2(a, b float64) []float64 {
	s := (1 - a - b) / 2
	a, b = a+s, b+s
	switch {
	case a < 0:
		return []float64{0, 1}
	case b < 0:
		return []float64{1, 0}
	}
	return []float64{a, b}
}

// TestMoCoByHand follows MoCo over two steps of two tasks with the
// defaults β_k = 0.5/√k, γ_k = 0.1/√k, ρ = 0, tracking h_t = L_t·g_t/‖g_t‖.
//
// Step 1: g = ((3, 4), (0, −1)), L = (2, 1): h = ((1.2, 1.6), (0, −1));
// y = 0.5·h = ((0.6, 0.8), (0, −0.5)); Y·Yᵀ = [[1, −0.4], [−0.4, 0.25]],
// so λ − 0.1·Y·Yᵀ·λ from λ = (½, ½) is (0.47, 0.5075), projected onto the
// simplex (0.48125, 0.51875); the shared gradient λ_1·y_1 + λ_2·y_2 =
// (0.28875, 0.125625).
//
// Step 2: g = ((0, 2), (1, 0)), L = (1, 0.5): h = ((0, 1), (0.5, 0)),
// computed below with β_2 = 0.5/√2 and γ_2 = 0.1/√2.
func TestMoCoByHand(t *testing.T) {
	m := &MoCo{}
	out, err := m.Combine(Input{Step: 1, Losses: []float64{2, 1}, Grads: [][]float64{{3, 4}, {0, -1}}})
	if err != nil {
		t.Fatal(err)
	}
	near := func(what string, got, want []float64) {
		t.Helper()
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-15 {
				t.Errorf("%s = %v; want %v", what, got, want)
				return
			}
		}
	}
	near("step 1 weights", out.Weights, []float64{0.48125, 0.51875})
	near("step 1 shared gradient", out.Shared, []float64{0.28875, 0.125625})
	near("step 1 tracked gradients", m.y, []float64{0.6, 0.8, 0, -0.5})
	if !slices.Equal(out.HeadWeights, []float64{1, 1}) {
		t.Errorf("head weights %v; want [1 1]", out.HeadWeights)
	}

	b2, g2 := 0.5/math.Sqrt2, 0.1/math.Sqrt2
	y1 := []float64{0.6 - b2*(0.6-0), 0.8 - b2*(0.8-1)}
	y2 := []float64{0 - b2*(0-0.5), -0.5 - b2*(-0.5-0)}
	m11, m12, m22 := y1[0]*y1[0]+y1[1]*y1[1], y1[0]*y2[0]+y1[1]*y2[1], y2[0]*y2[0]+y2[1]*y2[1]
	l1, l2 := 0.48125, 0.51875
	lambda := project2(l1-g2*(m11*l1+m12*l2), l2-g2*(m12*l1+m22*l2))
	shared := []float64{lambda[0]*y1[0] + lambda[1]*y2[0], lambda[0]*y1[1] + lambda[1]*y2[1]}
	out, err = m.Combine(Input{Step: 2, Losses: []float64{1, 0.5}, Grads: [][]float64{{0, 2}, {1, 0}}})
	if err != nil {
		t.Fatal(err)
	}
	near("step 2 weights", out.Weights, lambda)
	near("step 2 shared gradient", out.Shared, shared)
	near("step 2 tracked gradients", m.y, append(slices.Clone(y1), y2...))
}

// TestMoCoMGDA: with constant gradients tracked as they are (RawGrads)
// and no decay, y_t → g_t and λ converges to the minimiser of ‖Gᵀλ‖²
// over the simplex, MGDA's weights.
func TestMoCoMGDA(t *testing.T) {
	rng := rand.New(rand.NewPCG(95, 96))
	for _, sz := range [][2]int{{2, 3}, {3, 5}, {4, 3}} {
		g := randGrads(rng, sz[0], sz[1])
		want, err := MGDA{}.Combine(Input{Step: 1, Losses: make([]float64, sz[0]), Grads: g})
		if err != nil {
			t.Fatal(err)
		}
		// γ = 0.02 is below 2/λ_max(G·Gᵀ) for these unit-variance
		// gradients, so projected gradient descent converges, at a
		// linear rate where G·Gᵀ is definite.
		m := &MoCo{RawGrads: true, BetaSigma: -1, Gamma: 0.02, GammaSigma: -1}
		var out Output
		for step := 1; step <= 20000; step++ {
			if out, err = m.Combine(Input{Step: step, Losses: make([]float64, sz[0]), Grads: g}); err != nil {
				t.Fatal(err)
			}
		}
		// Compare the min-norm points Gᵀλ, which are unique even where λ
		// is not (more tasks than dimensions).
		got, min := combine(out.Weights, g), combine(want.Weights, g)
		for i := range min {
			if math.Abs(got[i]-min[i]) > 1e-6 {
				t.Errorf("sizes %v: MoCo's weights after 20000 steps %v give %v; want MGDA's %v, %v", sz, out.Weights, got, want.Weights, min)
				break
			}
		}
	}
}

// TestMoCoSimplex runs MoCo on random inputs: the weights stay on the
// simplex and the shared gradient is Σ_t λ_t·y_t.
func TestMoCoSimplex(t *testing.T) {
	rng := rand.New(rand.NewPCG(97, 98))
	m := &MoCo{Rho: 0.1}
	for step := 1; step <= 300; step++ {
		g := randGrads(rng, 4, 6)
		for j := range g[0] {
			g[0][j] *= 100 // one task far larger
		}
		out, err := m.Combine(Input{Step: step, Losses: randLosses(rng, 4), Grads: g})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(sum(out.Weights)-1) > 1e-12 || slices.Min(out.Weights) < 0 {
			t.Fatalf("step %d: weights %v; want a point of the simplex", step, out.Weights)
		}
		rows := [][]float64{m.y[0:6], m.y[6:12], m.y[12:18], m.y[18:24]}
		want := combine(out.Weights, rows)
		if !slices.Equal(out.Shared, want) {
			t.Fatalf("step %d: shared %v; want Σ λ_t·y_t = %v", step, out.Shared, want)
		}
	}
}

// TestMoCoResume: MoCo restored from its state midway continues with the
// same outputs, bit for bit.
func TestMoCoResume(t *testing.T) {
	straight, _ := checkStateRoundTrip(t, func() Method { return &MoCo{Gamma: 2} }, func(step int, _ *rand.Rand) Input {
		rng := rand.New(rand.NewPCG(99, uint64(step)))
		return Input{Step: step, Losses: randLosses(rng, 3), Grads: randGrads(rng, 3, 5)}
	}, 5, 9)
	// The weights have moved away from 1/3 by then, so the state matters.
	if w := straight.(*MoCo).lambda; slices.Equal(w, []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}) {
		t.Error("weights still 1/3 at step 9")
	}
}

// TestMoCoBadInputs checks MoCo's own errors, that a failed Combine
// leaves its state as it was, and that corrupt state is refused.
func TestMoCoBadInputs(t *testing.T) {
	ok := [][]float64{{1, 2}, {3, 4}}
	m := &MoCo{}
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
		{"negative loss", Input{Step: 2, Losses: []float64{-1, 1}, Grads: ok}, 0},
		{"repeated step", Input{Step: 1, Losses: []float64{1, 1}, Grads: ok}, -1},
		{"shorter gradients", Input{Step: 2, Losses: []float64{1, 1}, Grads: [][]float64{{1}, {2}}}, -1},
		{"three tasks", Input{Step: 2, Losses: []float64{1, 1, 1}, Grads: [][]float64{{1, 2}, {3, 4}, {5, 6}}}, -1},
		{"Inf loss", Input{Step: 2, Losses: []float64{1, math.Inf(1)}, Grads: ok}, 1},
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
	if _, err := (&MoCo{RawGrads: true}).Combine(Input{Step: 1, Losses: []float64{-1, -2}, Grads: ok}); err != nil {
		t.Errorf("MoCo{RawGrads: true} with negative losses: %v", err)
	}
	for _, bad := range []*MoCo{{Beta: 1.5}, {Beta: -0.5}, {Gamma: -1}, {Gamma: math.Inf(1)}, {Rho: -1}, {BetaSigma: math.NaN()}, {GammaSigma: math.Inf(1)}} {
		if _, err := bad.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: ok}); err == nil {
			t.Errorf("%+v.Combine: no error", bad)
		}
	}
	state := func(s mocoState) string {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, b := range []string{
		`{`,
		state(mocoState{Tasks: 2, Dim: 2, LastStep: 1, Y: packed{1, 2, 3, 4}, Lambda: []float64{0.5, 0.6}}),  // not on the simplex
		state(mocoState{Tasks: 2, Dim: 2, LastStep: 1, Y: packed{1, 2, 3, 4}, Lambda: []float64{1.5, -0.5}}), // negative weight
		state(mocoState{Tasks: 2, Dim: 2, LastStep: 1, Y: packed{1, 2, 3}, Lambda: []float64{0.5, 0.5}}),     // wrong length
		state(mocoState{Tasks: 2, Dim: 2, LastStep: 1, Y: packed{1, 2, 3, 4}}),                               // no weights
		state(mocoState{Tasks: 2, Dim: 2, LastStep: 1, Y: packed{1, 2, 3, math.Inf(1)}, Lambda: []float64{0.5, 0.5}}),
	} {
		if err := (&MoCo{}).UnmarshalState([]byte(b)); err == nil {
			t.Errorf("UnmarshalState(%s): no error", b)
		}
	}
}
