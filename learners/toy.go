package learners

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/learners/weighting"
	"gorgonia.org/tensor"
)

// ToyConfig configures RunToy. Its zero value is the setting of CAGrad's
// toy.py: 100,000 iterations of Adam with learning rate 1e-3, here
// recording no trajectory.
type ToyConfig struct {
	Iters int     // iterations; default 100,000
	LR    float64 // Adam's learning rate; default 1e-3
	Every int     // keep every Every-th point of the trajectory; 0 keeps none
}

// ToyRun is the outcome of one RunToy.
type ToyRun struct {
	// Trajectory holds x after iterations 0 (the start), Every,
	// 2·Every, ...; it is empty when Every is 0.
	Trajectory [][2]float64
	// End is x after the last iteration (after the last completed one
	// when RunToy returns an error).
	End [2]float64
	// Reached is the first iteration after which x was on the Pareto set
	// (tasks.ToyOnPareto): 0 for a start on it, −1 if x never was.
	Reached int
}

// RunToy minimises the two losses of the toy problem of Liu et al. (2021)
// (tasks.Toy, unscaled) from start, as CAGrad's toy.py does: at each
// iteration the method combines the two task gradients (and losses) at x
// into one update direction, the shared gradient (Output.Shared, or
// Σ_t w_t g_t when the method returns only weights), which Adam applies to
// x. Methods with learned parameters (weighting.Learned) have them updated
// by a second Adam with the same learning rate, as a trainer would. Use
// weighting.EW{Mean: true} for plain gradient descent on the mean loss.
//
// rng is passed to the method in every Input (PCGrad draws its task order
// from it). RunToy stops with ctx's error if ctx is cancelled, and returns
// an error for a bad configuration or start, or if the method fails or its
// update is not finite, naming the iteration. A method with state (DWA, Nash, GradNorm, ...) should be new
// for each run.
func RunToy(ctx context.Context, m weighting.Method, start [2]float64, cfg ToyConfig, rng *rand.Rand) (ToyRun, error) {
	iters, lr := cfg.Iters, orDefault(cfg.LR, 1e-3)
	if iters == 0 {
		iters = 100_000
	}
	if iters < 0 || cfg.Every < 0 || !(lr > 0) || math.IsInf(lr, 0) {
		return ToyRun{}, fmt.Errorf("learners: RunToy: Iters %d, LR %v, Every %d: want non-negative values and a finite positive LR", cfg.Iters, cfg.LR, cfg.Every)
	}
	if m == nil {
		return ToyRun{}, fmt.Errorf("learners: RunToy: nil method")
	}
	if !finite(start[0]) || !finite(start[1]) {
		return ToyRun{}, fmt.Errorf("learners: RunToy: start %v is not finite", start)
	}
	xt, err := graph.NewTensor(tensor.Float64, []int{2}, start[:])
	if err != nil {
		return ToyRun{}, fmt.Errorf("learners: RunToy: %v", err)
	}
	params := new(graph.Params)
	if err := params.Add("x", xt); err != nil {
		return ToyRun{}, fmt.Errorf("learners: RunToy: %v", err)
	}
	x := xt.Data().([]float64)
	opt := &Adam{LR: lr}
	run := ToyRun{Reached: -1}
	if tasks.ToyOnPareto(x[0], x[1]) {
		run.Reached = 0
	}
	if cfg.Every > 0 {
		run.Trajectory = append(run.Trajectory, [2]float64{x[0], x[1]})
	}
	err = runToy(ctx, m, params, opt, iters, cfg.Every, rng, &run)
	run.End = [2]float64{x[0], x[1]}
	return run, err
}

// runToy runs RunToy's iterations on x, the one parameter of params,
// filling run's trajectory and Reached.
func runToy(ctx context.Context, m weighting.Method, params *graph.Params, opt *Adam, iters, every int, rng *rand.Rand, run *ToyRun) error {
	x := params.At(0).Value.Data().([]float64)
	learned, _ := m.(weighting.Learned)
	var mopt *Adam
	if learned != nil {
		mopt = &Adam{LR: opt.LR}
	}
	needsGrads := m.Needs() == weighting.SharedGrads
	shared := make([]float64, 2)
	for it := 1; it <= iters; it++ {
		if it%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		f, g := tasks.Toy([2]float64{x[0], x[1]})
		in := weighting.Input{Step: it, Losses: f[:], Rand: rng}
		if needsGrads {
			in.Grads = [][]float64{g[0][:], g[1][:]}
		}
		out, err := m.Combine(in)
		if err != nil {
			return fmt.Errorf("learners: RunToy: iteration %d: %w", it, err)
		}
		if out.Shared != nil {
			if len(out.Shared) != 2 {
				return fmt.Errorf("learners: RunToy: iteration %d: %s returned a shared gradient of %d values, want 2", it, m.Name(), len(out.Shared))
			}
			copy(shared, out.Shared)
		} else {
			if len(out.Weights) != 2 {
				return fmt.Errorf("learners: RunToy: iteration %d: %s returned %d weights, want 2", it, m.Name(), len(out.Weights))
			}
			for j := range shared {
				shared[j] = out.Weights[0]*g[0][j] + out.Weights[1]*g[1][j]
			}
		}
		if !finite(shared[0]) || !finite(shared[1]) {
			return &NonFiniteError{Step: it, What: "toy update of " + m.Name()}
		}
		if err := opt.Update(params, [][]float64{shared}); err != nil {
			return fmt.Errorf("learners: RunToy: iteration %d: %v", it, err)
		}
		if learned != nil {
			if err := mopt.Update(learned.Params(), out.ParamGrads); err != nil {
				return fmt.Errorf("learners: RunToy: iteration %d: %s parameters: %v", it, m.Name(), err)
			}
		}
		if run.Reached < 0 && tasks.ToyOnPareto(x[0], x[1]) {
			run.Reached = it
		}
		if every > 0 && it%every == 0 {
			run.Trajectory = append(run.Trajectory, [2]float64{x[0], x[1]})
		}
	}
	return nil
}

// ToyResult is one run of RunToys.
type ToyResult struct {
	Method string // the name the method was built from
	Start  [2]float64
	Run    ToyRun
	Err    error
}

// RunToys runs RunToy from every start with every method that newMethod
// builds from names (a new one for each run), concurrently on up to
// GOMAXPROCS goroutines, and returns the results method by method, start
// by start. The run from starts[s] draws from a generator seeded with
// (seed, s), so the results do not depend on the scheduling. A run that
// fails, or that ctx interrupts, has its Err set.
func RunToys(ctx context.Context, names []string, newMethod func(name string) (weighting.Method, error), starts [][2]float64, cfg ToyConfig, seed uint64) []ToyResult {
	results := make([]ToyResult, len(names)*len(starts))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range jobs {
				mi, si := k/len(starts), k%len(starts)
				r := &results[k]
				r.Method, r.Start = names[mi], starts[si]
				m, err := newMethod(r.Method)
				if err != nil {
					r.Err = err
					continue
				}
				r.Run, r.Err = RunToy(ctx, m, r.Start, cfg, rand.New(rand.NewPCG(seed, uint64(si))))
			}
		}()
	}
	for k := range results {
		jobs <- k
	}
	close(jobs)
	wg.Wait()
	return results
}
