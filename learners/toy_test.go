package learners

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/learners/weighting"
)

// TestToyPareto is the toy experiment of Liu et al. (2021) (CAGrad's
// toy.py, with its three starts and three more): 100,000 iterations of
// Adam with learning rate 1e-3 on the unscaled losses, for each method and
// start. The upper half-plane is chaotic, so the test checks only whether
// a run reaches the Pareto set and where it ends, never a trajectory.
func TestToyPareto(t *testing.T) {
	starts := tasks.ToyStarts()
	all := []bool{true, true, true, true, true, true}
	methods := []struct {
		name string
		new  func() weighting.Method
		// reach[i]: whether the run from starts[i] reaches the set. Mean
		// gradient descent from (−8.5, 7.5) and (9, 9) settles in the
		// upper half-plane, as the paper's figure shows.
		reach []bool
		// centre: runs that reach the set end near its middle, x1 = 0,
		// where the mean loss is least.
		centre bool
	}{
		{"mean", func() weighting.Method { return weighting.EW{Mean: true} }, []bool{false, true, false, true, true, true}, true},
		{"mgda", func() weighting.Method { return weighting.MGDA{} }, all, false},
		{"pcgrad", func() weighting.Method { return weighting.PCGrad{} }, all, false},
		{"cagrad", func() weighting.Method { return weighting.CAGrad{C: 0.5} }, all, true},
		{"imtl", func() weighting.Method { return weighting.IMTLG{} }, all, false},
		{"nash", func() weighting.Method { return &weighting.Nash{} }, all, false},
	}
	for _, m := range methods {
		for i, start := range starts {
			t.Run(fmt.Sprintf("%s/%v,%v", m.name, start[0], start[1]), func(t *testing.T) {
				t.Parallel()
				rng := rand.New(rand.NewPCG(1, uint64(i)))
				run, err := RunToy(context.Background(), m.new(), start, ToyConfig{}, rng)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s from %v: reached at %d, end (%.4f, %.4f)", m.name, start, run.Reached, run.End[0], run.End[1])
				if got := run.Reached >= 0; got != m.reach[i] {
					t.Errorf("RunToy(%s, %v) reached the Pareto set: %v (iteration %d, end %v); want %v", m.name, start, got, run.Reached, run.End, m.reach[i])
				}
				if !m.reach[i] {
					return
				}
				// Every run that reached the set was observed to stay on it.
				if !tasks.ToyOnPareto(run.End[0], run.End[1]) {
					t.Errorf("RunToy(%s, %v) ends at %v, off the Pareto set", m.name, start, run.End)
				}
				// Observed: |x1| ≤ 3e-4 at the end (Adam's steps of ~1e-3
				// around 0); 0.01 leaves room for platforms' rounding.
				if m.centre && math.Abs(run.End[0]) > 0.01 {
					t.Errorf("RunToy(%s, %v) ends at x1 = %v; want |x1| < 0.01", m.name, start, run.End[0])
				}
			})
		}
	}
}

func TestRunToyTrajectory(t *testing.T) {
	p0 := tasks.ToyPareto(0)
	for _, tc := range []struct {
		name    string
		start   [2]float64
		cfg     ToyConfig
		points  int
		reached int
	}{
		{"every 10", [2]float64{-8.5, -5}, ToyConfig{Iters: 100, Every: 10}, 11, -1},
		{"none", [2]float64{-8.5, -5}, ToyConfig{Iters: 100}, 0, -1},
		{"on the set", [2]float64{0, p0}, ToyConfig{Iters: 5, Every: 1}, 6, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run, err := RunToy(context.Background(), weighting.MGDA{}, tc.start, tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(run.Trajectory) != tc.points || run.Reached != tc.reached {
				t.Fatalf("RunToy: %d points, reached %d; want %d, %d", len(run.Trajectory), run.Reached, tc.points, tc.reached)
			}
			if tc.points > 0 && (run.Trajectory[0] != tc.start || run.Trajectory[tc.points-1] != run.End) {
				t.Errorf("trajectory runs %v to %v; want %v to the end %v", run.Trajectory[0], run.Trajectory[tc.points-1], tc.start, run.End)
			}
		})
	}
}

// TestRunToyDeterministic checks that a seed fixes PCGrad's run.
func TestRunToyDeterministic(t *testing.T) {
	var ends [2][2]float64
	for k := range ends {
		run, err := RunToy(context.Background(), weighting.PCGrad{}, [2]float64{-8.5, 7.5}, ToyConfig{Iters: 3000}, rand.New(rand.NewPCG(7, 8)))
		if err != nil {
			t.Fatal(err)
		}
		ends[k] = run.End
	}
	if ends[0] != ends[1] {
		t.Errorf("two runs with one seed end at %v and %v", ends[0], ends[1])
	}
}

// TestRunToyLearned checks that a method's learned parameters are trained.
func TestRunToyLearned(t *testing.T) {
	m, err := weighting.NewUncertainty(2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RunToy(context.Background(), m, [2]float64{-8.5, -5}, ToyConfig{Iters: 200}, nil); err != nil {
		t.Fatal(err)
	}
	s := m.Params().Flatten()
	// There L1 ≈ tanh(2.5)·4.1 > 1 and L2 ≈ tanh(2.5)·(−19.7) < 0, so
	// ∂/∂s_t = −L_t/(2e^s_t) + 1/2 is negative for s_1 and positive for
	// s_2, and Adam moves each by about 1e-3 per iteration.
	if !(s[0] > 0.1 && s[1] < -0.1) {
		t.Errorf("log variances %v after 200 iterations; want s_1 > 0.1, s_2 < −0.1", s)
	}
}

func TestRunToyErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := RunToy(ctx, weighting.MGDA{}, [2]float64{1, 1}, ToyConfig{Iters: 5000}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("RunToy with a cancelled context: error %v; want context.Canceled", err)
	}
	for _, tc := range []struct {
		name  string
		m     weighting.Method
		start [2]float64
		cfg   ToyConfig
	}{
		{"nil method", nil, [2]float64{1, 1}, ToyConfig{}},
		{"negative iterations", weighting.MGDA{}, [2]float64{1, 1}, ToyConfig{Iters: -1}},
		{"negative LR", weighting.MGDA{}, [2]float64{1, 1}, ToyConfig{LR: -1}},
		{"NaN start", weighting.MGDA{}, [2]float64{math.NaN(), 1}, ToyConfig{}},
		{"PCGrad without rng", weighting.PCGrad{}, [2]float64{1, 1}, ToyConfig{Iters: 10}},
	} {
		if _, err := RunToy(context.Background(), tc.m, tc.start, tc.cfg, nil); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// TestRunToys checks that the concurrent runs give what RunToy gives run
// by run, in order, and that a method that cannot be built is reported.
func TestRunToys(t *testing.T) {
	starts := tasks.ToyStarts()[:3]
	cfg := ToyConfig{Iters: 200, Every: 50}
	newMethod := func(name string) (weighting.Method, error) { return weighting.New(name, 2) }
	got := RunToys(context.Background(), []string{"pcgrad", "nosuch", "mgda"}, newMethod, starts, cfg, 7)
	if len(got) != 9 {
		t.Fatalf("%d results; want 9", len(got))
	}
	for k, r := range got {
		name, si := []string{"pcgrad", "nosuch", "mgda"}[k/3], k%3
		if r.Method != name || r.Start != starts[si] {
			t.Errorf("result %d is %s from %v; want %s from %v", k, r.Method, r.Start, name, starts[si])
		}
		if name == "nosuch" {
			if r.Err == nil {
				t.Errorf("result %d: no error for an unknown method", k)
			}
			continue
		}
		m, _ := newMethod(name)
		want, err := RunToy(context.Background(), m, starts[si], cfg, rand.New(rand.NewPCG(7, uint64(si))))
		if err != nil || r.Err != nil {
			t.Fatalf("result %d: %v, %v", k, r.Err, err)
		}
		if !reflect.DeepEqual(r.Run, want) {
			t.Errorf("result %d (%s from %v) = %+v; RunToy gives %+v", k, name, starts[si], r.Run, want)
		}
	}
}
