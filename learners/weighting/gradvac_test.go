package weighting

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// gradVacWith returns a GradVac for two tasks whose targets are φ̂_12 and
// φ̂_21, set through its state.
func gradVacWith(t *testing.T, beta, t12, t21 float64) *GradVac {
	t.Helper()
	b, err := json.Marshal(gradVacState{Tasks: 2, Targets: []float64{0, t12, t21, 0}})
	if err != nil {
		t.Fatal(err)
	}
	m := &GradVac{Beta: beta}
	if err := m.UnmarshalState(b); err != nil {
		t.Fatal(err)
	}
	return m
}

func cosine(a, b []float64) float64 { return dot(a, b) / math.Sqrt(dot(a, a)*dot(b, b)) }

// TestGradVacTwoTasks checks GradVac on two gradients: where their cosine
// similarity φ is at least the target, the gradients are left alone (the
// weights are 1); where it is below, each g′_i = g_i + c_ij·g_j has
// cosine exactly φ̂_ij with g_j. With two tasks the weights are
// (1 + c_21, 1 + c_12). Either way each target moves to (1−β)·φ̂ + β·φ.
func TestGradVacTwoTasks(t *testing.T) {
	s3 := math.Sqrt(3) / 2
	for _, tc := range []struct {
		name     string
		g1, g2   []float64
		t12, t21 float64
		alone    bool
	}{
		{"above 0", []float64{1, 0}, []float64{1, 1}, 0, 0, true},       // φ = 1/√2
		{"above 0.5", []float64{1, 0}, []float64{1, 1}, 0.5, 0.7, true}, // 1/√2 > 0.7
		{"orthogonal at 0", []float64{1, 0}, []float64{0, 2}, 0, 0, true},
		{"orthogonal below", []float64{1, 0}, []float64{0, 2}, 0.3, 0.6, false},
		{"120° at 0", []float64{1, 0}, []float64{-0.5, s3}, 0, 0, false},
		{"120° at 0.5", []float64{1, 0}, []float64{-0.5, s3}, 0.5, 0.5, false},
		{"120° at −0.9", []float64{1, 0}, []float64{-0.5, s3}, -0.9, -0.9, true},
		{"acute below", []float64{2, 1}, []float64{1, 3}, 0.9, 0.95, false},
		{"one each", []float64{2, 1}, []float64{1, 3}, 0.9, 0.1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const beta = 0.25
			m := gradVacWith(t, beta, tc.t12, tc.t21)
			g := [][]float64{tc.g1, tc.g2}
			out, err := m.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: g, Rand: rand.New(rand.NewPCG(1, 1))})
			if err != nil {
				t.Fatal(err)
			}
			phi := cosine(tc.g1, tc.g2)
			if tc.alone && !slices.Equal(out.Weights, []float64{1, 1}) {
				t.Errorf("GradVac(%v, %v) with targets %v, %v above φ = %v: weights %v; want [1 1]", tc.g1, tc.g2, tc.t12, tc.t21, phi, out.Weights)
			}
			for i, target := range []float64{tc.t12, tc.t21} {
				gi, gj := g[i], g[1-i]
				c := out.Weights[1-i] - 1 // c_ij
				p := slices.Clone(gi)
				for k := range p {
					p[k] += c * gj[k]
				}
				want := math.Max(phi, target)
				if got := cosine(p, gj); math.Abs(got-want) > 1e-14 {
					t.Errorf("GradVac(%v, %v), targets %v, %v: cos(g′_%d, g_%d) = %v; want %v", tc.g1, tc.g2, tc.t12, tc.t21, i+1, 2-i, got, want)
				}
				if got, want := m.targets[i*2+1-i], (1-beta)*target+beta*phi; math.Abs(got-want) > 1e-15 {
					t.Errorf("target φ̂_%d%d moved to %v; want %v", i+1, 2-i, got, want)
				}
			}
			if !slices.Equal(out.HeadWeights, []float64{1, 1}) {
				t.Errorf("head weights %v; want [1 1]", out.HeadWeights)
			}
		})
	}
}

// TestGradVacFirstStep: with its targets at 0, GradVac on two tasks
// projects each gradient off the other where they conflict, as PCGrad
// does.
func TestGradVacFirstStep(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	for range 50 {
		g := randGrads(rng, 2, 1+rng.IntN(6))
		out, err := (&GradVac{}).Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: g, Rand: rng})
		if err != nil {
			t.Fatal(err)
		}
		pc, err := PCGrad{}.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: g, Rand: rng})
		if err != nil {
			t.Fatal(err)
		}
		got := shared(out, g)
		for j := range got {
			if math.Abs(got[j]-pc.Shared[j]) > 1e-12*(1+math.Abs(pc.Shared[j])) {
				t.Fatalf("GradVac(%v) at step 1 = %v; want PCGrad's %v", g, got, pc.Shared)
			}
		}
	}
}

// TestGradVacResume: GradVac restored from its state midway continues
// with the same weights, bit for bit, given the same random stream.
func TestGradVacResume(t *testing.T) {
	_, resumed := checkStateRoundTrip(t, func() Method { return &GradVac{} }, func(step int, rng *rand.Rand) Input {
		return Input{Step: step, Losses: make([]float64, 4), Grads: randGrads(rand.New(rand.NewPCG(53, uint64(step))), 4, 7), Rand: rng}
	}, 7, 12)
	// The targets have moved away from 0 by then, so the state matters.
	if slices.Equal(resumed.(*GradVac).targets, make([]float64, 16)) {
		t.Error("targets still 0 after 12 steps")
	}
}

// TestGradVacBadInputs checks GradVac's own errors, and that state from a
// corrupt checkpoint is refused.
func TestGradVacBadInputs(t *testing.T) {
	ok := [][]float64{{1, 2}, {3, 4}}
	rng := rand.New(rand.NewPCG(55, 56))
	m := &GradVac{}
	if _, err := m.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: ok, Rand: rng}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		m    *GradVac
		in   Input
	}{
		{"nil Rand", &GradVac{}, Input{Step: 1, Losses: []float64{1, 1}, Grads: ok}},
		{"three tasks after two", m, Input{Step: 2, Losses: []float64{1, 1, 1}, Grads: [][]float64{{1}, {2}, {3}}, Rand: rng}},
		{"NaN gradient", m, Input{Step: 2, Losses: []float64{1, 1}, Grads: [][]float64{{1, math.NaN()}, {3, 4}}, Rand: rng}},
	} {
		if _, err := tc.m.Combine(tc.in); !errors.Is(err, ErrInput) {
			t.Errorf("%s: error %v; want ErrInput", tc.name, err)
		}
	}
	for _, beta := range []float64{-0.1, 1.5, math.NaN()} {
		if _, err := (&GradVac{Beta: beta}).Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: ok, Rand: rng}); err == nil {
			t.Errorf("GradVac{Beta: %v}: no error", beta)
		}
	}
	for _, b := range []string{
		`{`,
		`{"Tasks":2,"Targets":[0,1.5,0,0]}`, // not a cosine
		`{"Tasks":2,"Targets":[0,0,0]}`,     // wrong length
		`{"Tasks":2,"Targets":null}`,
		`{"Tasks":-1,"Targets":null}`,
	} {
		if err := (&GradVac{}).UnmarshalState([]byte(b)); err == nil {
			t.Errorf("UnmarshalState(%s): no error", b)
		}
	}
}
