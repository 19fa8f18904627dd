package weighting

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSTCHPhases follows STCH with Warmup 1 and EpochSteps 2: steps 1 and
// 2 are the warm-up (epoch 0) and steps 3 and 4 the averaging epoch, all
// with the log-loss weights 1/(L_t + 1e-20); from step 5 on the nadir
// point is the mean loss of steps 3 and 4, n = (0.5, 2).
func TestSTCHPhases(t *testing.T) {
	m := &STCH{Warmup: 1, EpochSteps: 2}
	losses := [][]float64{{4, 8}, {2, 4}, {0.6, 3}, {0.4, 1}, {0.5, 4}}
	for k, l := range losses {
		out, err := m.Combine(Input{Step: k + 1, Losses: l})
		if err != nil {
			t.Fatal(err)
		}
		var want []float64
		if k < 4 {
			want = []float64{1 / (l[0] + 1e-20), 1 / (l[1] + 1e-20)}
		} else {
			// f = log(L/n) = (0, log 2), s = softmax(f) = (1/3, 2/3) with
			// μ = 1, w_t = T·s_t/L_t.
			want = []float64{2 * (1.0 / 3) / 0.5, 2 * (2.0 / 3) / 4}
		}
		for i := range want {
			if math.Abs(out.Weights[i]-want[i]) > 1e-15*want[i] {
				t.Errorf("step %d: weights %v; want %v", k+1, out.Weights, want)
				break
			}
		}
	}
	if !slices.Equal(m.nadir, []float64{0.5, 2}) {
		t.Errorf("nadir point %v; want [0.5 2]", m.nadir)
	}
}

// stchAfterWarmup returns an STCH with smoothing mu whose nadir point is
// n: no warm-up, and n as the losses of its one averaging step.
func stchAfterWarmup(t *testing.T, mu float64, n []float64) *STCH {
	t.Helper()
	m := &STCH{Mu: mu, Warmup: -1}
	if _, err := m.Combine(Input{Step: 1, Losses: n}); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSTCHGradient checks the weights after the warm-up against central
// differences of the objective μ·T·log Σ_t exp(log(L_t/n_t + 1e-20)/μ).
func TestSTCHGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(91, 92))
	for _, mu := range []float64{0.1, 1, 5} {
		for tasks := 1; tasks <= 4; tasks++ {
			n := randLosses(rng, tasks)
			l := randLosses(rng, tasks)
			m := stchAfterWarmup(t, mu, n)
			out, err := m.Combine(Input{Step: 2, Losses: l})
			if err != nil {
				t.Fatal(err)
			}
			obj := func(l []float64) float64 {
				s := 0.0
				for i := range l {
					s += math.Exp(math.Log(l[i]/n[i]+1e-20) / mu)
				}
				return mu * float64(len(l)) * math.Log(s)
			}
			for i := range l {
				// Truncation O(h²) and rounding O(ε·obj/h) are both about
				// 1e-10 for losses and μ of order 1.
				const h = 1e-6
				lp, lm := slices.Clone(l), slices.Clone(l)
				lp[i] += h
				lm[i] -= h
				fd := (obj(lp) - obj(lm)) / (2 * h)
				if math.Abs(out.Weights[i]-fd) > 1e-7*math.Max(1, math.Abs(fd)) {
					t.Errorf("μ %v, %d tasks: w_%d = %v; finite difference %v", mu, tasks, i, out.Weights[i], fd)
				}
			}
		}
	}
}

// TestSTCHLimits: as μ → 0 every weight goes to the task furthest above
// its nadir point, log(L_t/n_t) largest, whose weight is T/L_t (the
// gradient of T·max_t log(L_t/n_t)); as μ → ∞ the weights are those of
// the summed log-losses, 1/L_t.
func TestSTCHLimits(t *testing.T) {
	n := []float64{1, 0.1, 2}
	l := []float64{0.5, 0.09, 1.5} // L/n = (0.5, 0.9, 0.75): task 1 is the worst
	out, err := stchAfterWarmup(t, 1e-6, n).Combine(Input{Step: 2, Losses: l})
	if err != nil {
		t.Fatal(err)
	}
	// exp((log 0.75 − log 0.9)/1e-6) underflows to 0.
	if want := []float64{0, 3 / (0.09 + 1e-20*0.1), 0}; !slices.Equal(out.Weights, want) {
		t.Errorf("STCH{Mu: 1e-6} weights %v; want %v", out.Weights, want)
	}
	out, err = stchAfterWarmup(t, 1e9, n).Combine(Input{Step: 2, Losses: l})
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range out.Weights {
		// softmax(f/μ) = 1/T + O(|f|/μ), |f| < 1.
		if want := 1 / l[i]; math.Abs(w-want) > 1e-8*want {
			t.Errorf("STCH{Mu: 1e9} weights %v; want 1/L", out.Weights)
			break
		}
	}
}

// TestSTCHResume: STCH restored from its state in the middle of its
// averaging epoch (steps 7 to 9) gives the same weights, bit for bit.
func TestSTCHResume(t *testing.T) {
	straight, resumed := checkStateRoundTrip(t, func() Method { return &STCH{Warmup: 2, EpochSteps: 3, Mu: 0.5} }, func(step int, _ *rand.Rand) Input {
		return Input{Step: step, Losses: randLosses(rand.New(rand.NewPCG(93, uint64(step))), 3)}
	}, 8, 14)
	if n := resumed.(*STCH).nadir; n == nil || !slices.Equal(n, straight.(*STCH).nadir) {
		t.Errorf("nadir point %v after a state round trip; want %v", n, straight.(*STCH).nadir)
	}
}

// TestSTCHBadInputs checks STCH's own errors, that a failed Combine
// leaves its state as it was, and that corrupt state is refused.
func TestSTCHBadInputs(t *testing.T) {
	m := &STCH{Warmup: -1}
	if _, err := m.Combine(Input{Step: 1, Losses: []float64{0, 1}}); err != nil {
		t.Fatal(err)
	}
	before, _ := m.MarshalState()
	for _, tc := range []struct {
		name string
		in   Input
		task int
	}{
		// The averaging epoch's mean loss of task 0 is 0.
		{"zero nadir", Input{Step: 2, Losses: []float64{1, 1}}, 0},
		{"negative loss", Input{Step: 2, Losses: []float64{1, -1}}, 1},
		{"repeated step", Input{Step: 1, Losses: []float64{1, 1}}, -1},
		{"three losses", Input{Step: 2, Losses: []float64{1, 1, 1}}, -1},
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
	for _, bad := range []*STCH{{Mu: -1}, {Mu: math.NaN()}, {Mu: math.Inf(1)}, {EpochSteps: -2}} {
		if _, err := bad.Combine(Input{Step: 1, Losses: []float64{1, 1}}); err == nil {
			t.Errorf("%+v.Combine: no error", bad)
		}
	}
	for _, b := range []string{
		`{`,
		`{"Tasks":2,"LastStep":3,"N":1,"Sum":[1],"Nadir":null}`,    // wrong length
		`{"Tasks":2,"LastStep":3,"N":1,"Sum":[1,1],"Nadir":[1,0]}`, // zero nadir
		`{"Tasks":2,"LastStep":3,"N":0,"Sum":[1,1],"Nadir":null}`,  // sums without steps
		`{"Tasks":2,"LastStep":3,"N":4,"Sum":[1,1],"Nadir":null}`,  // more steps averaged than taken
		`{"Tasks":2,"LastStep":3,"N":1,"Sum":[-1,1],"Nadir":null}`, // negative sum
		`{"Tasks":0,"LastStep":0,"N":0,"Sum":null,"Nadir":[1,1]}`,  // nadir without tasks
	} {
		if err := (&STCH{}).UnmarshalState([]byte(b)); err == nil {
			t.Errorf("UnmarshalState(%s): no error", b)
		}
	}
}
