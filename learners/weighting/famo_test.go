package weighting

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestFAMOByHand follows FAMO over four steps of two tasks with losses
// L¹ = (2, 1), L² = (1, 0.9), L³ = (0.5, 0.8), computing by hand the
// weights z_t/D_t normalised, D = L + 1e-8, and the two Adam steps of the
// logits (learning rate 0.025, weight decay 1e-3, betas 0.9 and 0.999,
// ε 1e-8) down z∘(δ − zᵀδ) + γξ.
func TestFAMOByHand(t *testing.T) {
	const eps, lr, gamma = 1e-8, 0.025, 1e-3
	losses := [][]float64{{2, 1}, {1, 0.9}, {0.5, 0.8}, {0.4, 0.7}}
	d := func(l []float64) []float64 { return []float64{l[0] + eps, l[1] + eps} }
	norm := func(z, d []float64) []float64 {
		a, b := z[0]/d[0], z[1]/d[1]
		return []float64{a / (a + b), b / (a + b)}
	}
	soft := func(x []float64) []float64 {
		a, b := math.Exp(x[0]), math.Exp(x[1])
		return []float64{a / (a + b), b / (a + b)}
	}
	logDrop := func(before, after []float64) []float64 {
		return []float64{math.Log(before[0]+eps) - math.Log(after[0]+eps), math.Log(before[1]+eps) - math.Log(after[1]+eps)}
	}

	// Step 1: no losses yet, z = (1/2, 1/2). Step 2: D from L¹.
	w1 := []float64{0.5, 0.5}
	w2 := norm([]float64{0.5, 0.5}, d(losses[0]))
	// After step 2, δ = log D(L¹) − log D(L²), z = (1/2, 1/2), ξ = 0:
	// g = z∘(δ − zᵀδ) = ±(δ_1 − δ_2)/4; Adam's first step is
	// −lr·g/(|g| + ε) (bias-corrected m = g, v = g²).
	delta := logDrop(losses[0], losses[1])
	g1 := []float64{(delta[0] - delta[1]) / 4, (delta[1] - delta[0]) / 4}
	xi1 := []float64{-lr * g1[0] / (math.Abs(g1[0]) + eps), -lr * g1[1] / (math.Abs(g1[1]) + eps)}
	w3 := norm(soft(xi1), d(losses[1]))
	// After step 3, the second Adam step with weight decay.
	z := soft(xi1)
	delta = logDrop(losses[1], losses[2])
	zd := z[0]*delta[0] + z[1]*delta[1]
	xi2 := make([]float64, 2)
	for i := range 2 {
		g2 := z[i]*(delta[i]-zd) + gamma*xi1[i]
		m := 0.9*(0.1*g1[i]) + 0.1*g2
		v := 0.999*(0.001*g1[i]*g1[i]) + 0.001*g2*g2
		xi2[i] = xi1[i] - lr/(1-0.9*0.9)*m/(math.Sqrt(v)/math.Sqrt(1-0.999*0.999)+eps)
	}
	w4 := norm(soft(xi2), d(losses[2]))

	m := &FAMO{}
	for step, want := range [][]float64{w1, w2, w3, w4} {
		out, err := m.Combine(Input{Step: step + 1, Losses: losses[step]})
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if math.Abs(out.Weights[i]-want[i]) > 1e-15 {
				t.Errorf("step %d: weights %v; want %v", step+1, out.Weights, want)
				break
			}
		}
		if step+1 == 3 {
			for i := range xi2 {
				if math.Abs(m.xi[i]-xi2[i]) > 1e-15 { // rounding: the order of the Adam arithmetic
					t.Errorf("logits after two Adam steps %v; want %v", m.xi, xi2)
					break
				}
			}
		}
	}
	// Task 1's log-loss fell faster at step 2, so its logit fell.
	if !(xi1[0] < xi1[1]) || !(m.xi[0] < m.xi[1]) {
		t.Errorf("logits %v after the first update, %v now; want task 1's below task 2's", xi1, m.xi)
	}
}

// TestFAMOWeighter checks that the weights announced before each step are
// exactly those Combine uses, with MinLosses below negative losses, and
// that they stay positive and sum to 1.
func TestFAMOWeighter(t *testing.T) {
	rng := rand.New(rand.NewPCG(71, 72))
	m := &FAMO{MinLosses: []float64{-2, 0, -1}}
	for step := 1; step <= 200; step++ {
		want := m.Weights(step, 3)
		l := randLosses(rng, 3)
		l[0] -= 1.5
		out, err := m.Combine(Input{Step: step, Losses: l})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(out.Weights, want) {
			t.Fatalf("step %d: Combine weights %v; Weights announced %v", step, out.Weights, want)
		}
		if math.Abs(sum(want)-1) > 1e-15 || slices.Min(want) <= 0 {
			t.Fatalf("step %d: weights %v; want positive, summing to 1", step, want)
		}
	}
}

// TestFAMOResume: FAMO restored from its state midway announces and uses
// the same weights, bit for bit, as the uninterrupted one.
func TestFAMOResume(t *testing.T) {
	loss := func(step int) []float64 { return randLosses(rand.New(rand.NewPCG(73, uint64(step))), 3) }
	straight, resumed := checkStateRoundTrip(t, func() Method { return &FAMO{} }, func(step int, _ *rand.Rand) Input {
		return Input{Step: step, Losses: loss(step)}
	}, 6, 10)
	if w, want := resumed.(*FAMO).Weights(11, 3), straight.(*FAMO).Weights(11, 3); !slices.Equal(w, want) {
		t.Errorf("restored FAMO announces %v for step 11; want %v", w, want)
	}
}

// TestFAMOBadInputs checks FAMO's own errors, and that a failed Combine
// leaves its state as it was.
func TestFAMOBadInputs(t *testing.T) {
	m := &FAMO{}
	if _, err := m.Combine(Input{Step: 1, Losses: []float64{1, 2}}); err != nil {
		t.Fatal(err)
	}
	before, _ := m.MarshalState()
	for _, tc := range []struct {
		name string
		in   Input
		task int
	}{
		{"negative loss", Input{Step: 2, Losses: []float64{1, -0.5}}, 1},
		{"repeated step", Input{Step: 1, Losses: []float64{1, 1}}, -1},
		{"step 0", Input{Step: 0, Losses: []float64{1, 1}}, -1},
		{"three losses", Input{Step: 2, Losses: []float64{1, 1, 1}}, -1},
		{"NaN loss", Input{Step: 2, Losses: []float64{math.NaN(), 1}}, 0},
	} {
		_, err := m.Combine(tc.in)
		var ie *InputError
		if !errors.As(err, &ie) || ie.Task != tc.task {
			t.Errorf("%s: error %v; want an *InputError for task %d", tc.name, err, tc.task)
		}
		if after, _ := m.MarshalState(); !slices.Equal(after, before) {
			t.Errorf("%s: the state changed to %s from %s", tc.name, after, before)
		}
	}
	if w := m.Weights(1, 2); !math.IsNaN(w[0]) {
		t.Errorf("Weights for a past step = %v; want NaN", w)
	}
	for _, bad := range []*FAMO{{MinLosses: []float64{0}}, {LR: -1}, {LR: math.Inf(1)}, {Gamma: math.NaN()}} {
		if _, err := bad.Combine(Input{Step: 1, Losses: []float64{1, 1}}); err == nil {
			t.Errorf("%+v.Combine: no error", bad)
		}
	}
	for _, b := range []string{
		`{`,
		`{"Tasks":2,"LastStep":1,"Adam":0,"Xi":[0,0],"M":[0,0],"V":[0,0],"Prev":null}`,    // losses missing
		`{"Tasks":2,"LastStep":3,"Adam":3,"Xi":[0,0],"M":[0,0],"V":[0,0],"Prev":[1,1]}`,   // more Adam steps than updates
		`{"Tasks":2,"LastStep":3,"Adam":1,"Xi":[0,0],"M":[0,0],"V":[0,-1],"Prev":[1,1]}`,  // negative second moment
		`{"Tasks":2,"LastStep":3,"Adam":1,"Xi":[0,0,0],"M":[0,0],"V":[0,0],"Prev":[1,1]}`, // wrong length
		`{"Tasks":0,"LastStep":0,"Adam":0,"Xi":null,"M":null,"V":null,"Prev":[1,1]}`,      // losses without tasks
	} {
		if err := (&FAMO{}).UnmarshalState([]byte(b)); err == nil {
			t.Errorf("UnmarshalState(%s): no error", b)
		}
	}
}

// An LR so large that the logits overflow fails the step that would make
// them so and leaves the state finite, so that it can still be saved.
func TestFAMOUpdateNotFinite(t *testing.T) {
	m := &FAMO{LR: 1e200}
	var err error
	for step := 1; step <= 50 && err == nil; step++ {
		_, err = m.Combine(Input{Step: step, Losses: []float64{1 + float64(step%3), 2 / float64(step)}})
	}
	if err == nil || !strings.Contains(err.Error(), "not finite") {
		t.Fatalf("50 steps at LR 1e200: err = %v; want a step whose update is not finite", err)
	}
	if _, err := m.MarshalState(); err != nil {
		t.Errorf("the state after the failed step cannot be saved: %v", err)
	}
}
