package weighting

import (
	"encoding/json"
	"fmt"
	"math"
)

// STCH's defaults, LibMTL's and the authors' code's: the smoothing μ and
// the epochs of warm-up before the nadir point is measured.
const (
	DefaultSTCHMu     = 1
	DefaultSTCHWarmup = 4
)

// stchEps is LibMTL's guard in the log-losses, log(L_t + 1e-20).
const stchEps = 1e-20

// STCH is smooth Tchebycheff scalarisation (Lin, Zhang, Yang, Liu, Wang
// and Zhang 2024, "Smooth Tchebycheff Scalarization for Multi-Objective
// Optimization"): it descends a smooth maximum of the tasks' losses
// measured from a reference point z,
//
//	g_μ = μ·T·log Σ_t exp((f_t − z_t)/μ),
//
// whose gradient is Σ_t w_t·∇f_t with w = T·softmax((f − z)/μ): the
// task furthest above its reference gets the most weight, all of it as μ
// → 0 (the Tchebycheff scalarisation max_t (f_t − z_t)), and the tasks
// equal weight as μ → ∞. The paper leaves the objectives f, the
// reference z and the preference (here equal) to the application; this
// follows the multi-task code of its authors and LibMTL. Training is
// divided into epochs of EpochSteps steps. For the first Warmup epochs
// STCH descends the sum of the log-losses Σ_t log(L_t + 1e-20), weights
// 1/(L_t + 1e-20); during the next epoch it does the same and averages
// each task's loss over the epoch, the nadir point n; from then on the
// objectives are the log-losses relative to it,
//
//	f_t = log(L_t/n_t + 1e-20),  z = 0,
//
// so that every task's loss is measured on the scale it had after the
// warm-up, and the weights of the losses are
//
//	w_t = T·s_t/(L_t + 1e-20·n_t),  s = softmax(f/μ).
//
// LibMTL reports weights 1 while back-propagating these objectives; the
// weights here are those of the gradient it back-propagates. If Combine
// sees no step of the averaging epoch (steps that skip it), the nadir
// point is the losses of the first step after it.
//
// The losses must not be negative, and the nadir point must be positive.
// Input.Step places a step in its epoch, (Step−1)/EpochSteps; steps must
// be numbered from 1 and increase. The losses of the averaging epoch and
// the nadir point are state: MarshalState saves them, so that a resumed
// run continues exactly. The zero value uses Mu 1, Warmup 4 and
// EpochSteps 1; a trainer sets EpochSteps to its steps per epoch. The
// number of tasks is fixed by the first call; use a new STCH (or Reset)
// for a new training run.
type STCH struct {
	Mu         float64 // smoothing μ > 0; default DefaultSTCHMu
	Warmup     int     // epochs of log-loss descent before the averaging epoch; default DefaultSTCHWarmup, negative for none
	EpochSteps int     // steps per epoch; default 1

	tasks    int
	lastStep int
	sum      []float64 // loss sums of the averaging epoch
	n        int       // its steps seen
	nadir    []float64 // n_t, once known
}

var (
	_ Method         = (*STCH)(nil)
	_ StateMarshaler = (*STCH)(nil)
)

// Name returns "stch".
func (*STCH) Name() string { return "stch" }

// Needs returns LossesOnly.
func (*STCH) Needs() Needs { return LossesOnly }

// Reset forgets the averaged losses and the nadir point, keeping the
// settings.
func (m *STCH) Reset() { *m = STCH{Mu: m.Mu, Warmup: m.Warmup, EpochSteps: m.EpochSteps} }

func (m *STCH) settings() (mu float64, warmup, steps int, err error) {
	mu, warmup, steps = m.Mu, m.Warmup, m.EpochSteps
	if mu == 0 {
		mu = DefaultSTCHMu
	}
	switch {
	case warmup == 0:
		warmup = DefaultSTCHWarmup
	case warmup < 0:
		warmup = 0
	}
	if steps == 0 {
		steps = 1
	}
	if !(mu > 0) || math.IsInf(mu, 0) || steps < 0 {
		return 0, 0, 0, fmt.Errorf("weighting: stch: Mu %v and EpochSteps %d, want a finite positive Mu and positive EpochSteps", m.Mu, m.EpochSteps)
	}
	return mu, warmup, steps, nil
}

// Combine returns the step's weights, and adds its losses to the nadir
// point's average during the averaging epoch. It returns an *InputError
// if the losses are not finite or are negative, their number changes
// between calls, Step is below 1 or does not increase, or the nadir point
// has a value that is not positive, and an error for a bad Mu or
// EpochSteps. A failed call leaves the state as it was.
func (m *STCH) Combine(in Input) (Output, error) {
	t, _, err := check(m.Name(), in, m.tasks, false)
	if err != nil {
		return Output{}, err
	}
	mu, warmup, steps, err := m.settings()
	if err != nil {
		return Output{}, err
	}
	if in.Step < 1 || in.Step <= m.lastStep {
		return Output{}, inputErr(m.Name(), -1, "step %d after step %d, want 1-based increasing steps", in.Step, m.lastStep)
	}
	for i, l := range in.Losses {
		if l < 0 {
			return Output{}, inputErr(m.Name(), i, "loss %v is negative; STCH takes the logarithm of the losses", l)
		}
	}
	epoch := (in.Step - 1) / steps
	nadir := m.nadir
	if nadir == nil && epoch > warmup {
		nadir = make([]float64, t)
		for i := range nadir {
			if m.n > 0 {
				nadir[i] = m.sum[i] / float64(m.n)
			} else {
				nadir[i] = in.Losses[i]
			}
			if !(nadir[i] > 0) || math.IsInf(nadir[i], 0) {
				return Output{}, inputErr(m.Name(), i, "nadir point %v (the mean loss after the warm-up) is not finite and positive", nadir[i])
			}
		}
	}
	w := make([]float64, t)
	if nadir == nil {
		for i, l := range in.Losses {
			w[i] = 1 / (l + stchEps)
		}
	} else {
		f := make([]float64, t)
		for i, l := range in.Losses {
			f[i] = math.Log(l/nadir[i]+stchEps) / mu
		}
		for i, s := range softmax(f, t) {
			w[i] = float64(t) * s / (in.Losses[i] + stchEps*nadir[i])
		}
	}
	for i, v := range w {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Output{}, inputErr(m.Name(), i, "weight %v is not finite (loss %v)", v, in.Losses[i])
		}
	}
	m.tasks, m.lastStep, m.nadir = t, in.Step, nadir
	if nadir == nil && epoch == warmup {
		if m.sum == nil {
			m.sum = make([]float64, t)
		}
		for i, l := range in.Losses {
			m.sum[i] += l
		}
		m.n++
	}
	return Output{Weights: w}, nil
}

type stchState struct {
	Tasks, LastStep, N int
	Sum, Nadir         []float64
}

// MarshalState encodes the losses STCH has averaged and its nadir point.
func (m *STCH) MarshalState() ([]byte, error) {
	return json.Marshal(stchState{m.tasks, m.lastStep, m.n, m.sum, m.nadir})
}

// UnmarshalState restores what MarshalState encoded. It returns an error,
// leaving m as it was, for inconsistent state.
func (m *STCH) UnmarshalState(b []byte) error {
	var s stchState
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("weighting: stch state: %v", err)
	}
	ok := s.Tasks >= 0 && s.LastStep >= 0 && s.N >= 0 && s.N <= s.LastStep &&
		finiteLen(s.Sum, s.Tasks) && finiteLen(s.Nadir, s.Tasks) && positive(s.Nadir) &&
		(s.Sum == nil) == (s.N == 0) && (s.Tasks == 0) == (s.LastStep == 0) &&
		(s.Nadir == nil || s.Tasks > 0)
	for _, v := range s.Sum {
		ok = ok && v >= 0
	}
	if !ok {
		return fmt.Errorf("weighting: stch state is inconsistent")
	}
	m.tasks, m.lastStep, m.n, m.sum, m.nadir = s.Tasks, s.LastStep, s.N, s.Sum, s.Nadir
	return nil
}
