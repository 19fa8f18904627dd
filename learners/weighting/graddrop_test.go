package weighting

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestGradDropAgreeing: where every task's value has one sign (P is 0 or
// 1), GradDrop keeps everything, whatever the draws: the shared gradient
// is the sum.
func TestGradDropAgreeing(t *testing.T) {
	g := [][]float64{{1, -2, 0, 3}, {0.5, -1, 0, 0}, {2, -0.25, 0, 1e-300}}
	want := []float64{3.5, -3.25, 0, 3}
	for seed := range uint64(20) {
		out, err := GradDrop{}.Combine(Input{Step: 1, Losses: []float64{1, 1, 1}, Grads: g, Rand: rand.New(rand.NewPCG(seed, 0))})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(out.Shared, want) || !slices.Equal(out.Weights, []float64{1, 1, 1}) {
			t.Fatalf("seed %d: GradDrop(%v) = %v, weights %v; want %v, weights 1", seed, g, out.Shared, out.Weights, want)
		}
	}
}

// TestGradDropByHand follows GradDrop over three elements of three tasks
// with the draws of PCG(1, 2), U = (0.7694, 0.6164, 0.7844) (the midpoints
// of the 2⁵³ cells of [0, 1) that its first three Uint64s pick):
//
//	element 0: values (3, −1, 0), P = ½(1 + 2/4) = 0.75 < U_0: the negative −1 is kept;
//	element 1: values (4, −1, 1), P = ½(1 + 4/6) = 0.83 > U_1: the positives 4 + 1 are kept;
//	element 2: values (2, 0.5, 0), P = 1: everything is kept.
//
// With Leak 0.5 the dropped values count half.
func TestGradDropByHand(t *testing.T) {
	g := [][]float64{{3, 4, 2}, {-1, -1, 0.5}, {0, 1, 0}}
	u := rand.New(rand.NewPCG(1, 2))
	for i, want := range []float64{0.76937326936507211, 0.61643622373912144, 0.78442800165902149} {
		if got := openUniform(u); math.Abs(got-want) > 1e-16 {
			t.Fatalf("draw %d = %.17g; the comment's U_%d is %.17g", i, got, i, want)
		}
	}
	for _, tc := range []struct {
		leak float64
		want []float64
	}{
		{0, []float64{-1, 5, 2.5}},
		{0.5, []float64{-1 + 0.5*3, 5 + 0.5*-1, 2.5}},
		{1, []float64{2, 4, 2.5}}, // the sum
	} {
		out, err := GradDrop{Leak: tc.leak}.Combine(Input{Step: 1, Losses: []float64{1, 1, 1}, Grads: g, Rand: rand.New(rand.NewPCG(1, 2))})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(out.Shared, tc.want) {
			t.Errorf("GradDrop{Leak: %v}(%v) = %v; want %v", tc.leak, g, out.Shared, tc.want)
		}
	}
}

// TestGradDropPurity checks that a conflicting element keeps its positive
// values with probability P: for values (3, −1), P = 0.75.
func TestGradDropPurity(t *testing.T) {
	const n = 4000
	rng := rand.New(rand.NewPCG(83, 84))
	g := [][]float64{{3}, {-1}}
	pos := 0
	for range n {
		out, err := GradDrop{}.Combine(Input{Step: 1, Losses: []float64{1, 1}, Grads: g, Rand: rng})
		if err != nil {
			t.Fatal(err)
		}
		switch out.Shared[0] {
		case 3:
			pos++
		case -1:
		default:
			t.Fatalf("GradDrop(%v) = %v; want 3 or −1", g, out.Shared)
		}
	}
	// The count is binomial(4000, 0.75): standard deviation 27, so 0.75
	// ± 0.025 is a 3.6σ band.
	if f := float64(pos) / n; math.Abs(f-0.75) > 0.025 {
		t.Errorf("positive values kept in %.3f of %d draws; want about P = 0.75", f, n)
	}
}

// TestGradDropBadInputs checks GradDrop's own errors.
func TestGradDropBadInputs(t *testing.T) {
	in := Input{Step: 1, Losses: []float64{1, 1}, Grads: [][]float64{{1, 2}, {3, 4}}}
	if _, err := (GradDrop{}).Combine(in); !errors.Is(err, ErrInput) {
		t.Errorf("GradDrop with a nil Rand: error %v; want ErrInput", err)
	}
	in.Rand = rand.New(rand.NewPCG(1, 1))
	for _, leak := range []float64{-0.1, 1.5, math.NaN()} {
		if _, err := (GradDrop{Leak: leak}).Combine(in); err == nil {
			t.Errorf("GradDrop{Leak: %v}: no error", leak)
		}
	}
}
