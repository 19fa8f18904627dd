package weighting

import (
	"fmt"
	"math"
)

// DWA is dynamic weight average (Liu, Johns and Davison 2019, "End-to-End
// Multi-Task Learning with Attention"). Training is divided into epochs of
// EpochSteps steps; from the third epoch on, the weights of every step of
// epoch e are
//
//	w = T·softmax(r/Temp),  r_t = L̄_t(e−1)/L̄_t(e−2),
//
// where L̄_t(k) is task t's mean loss over the steps of epoch k that
// Combine saw; during the first two epochs the weights are 1. This is
// LibMTL's form, which uses epoch means where the paper's equation writes
// the loss of one iteration.
//
// The zero value uses Temp 2 and EpochSteps 1. A trainer sets EpochSteps
// to its number of steps per epoch; with 1 each step is its own epoch and
// the rates compare the two previous steps' losses. Input.Step places a
// step in its epoch, (Step−1)/EpochSteps, so steps must be numbered from 1
// and not decrease. DWA keeps the epoch means between calls; use a new DWA
// (or Reset) for a new training run.
type DWA struct {
	Temp       float64 // softmax temperature; default 2
	EpochSteps int     // steps per epoch; default 1

	tasks       int
	lastStep    int
	epoch       int       // epoch being accumulated
	sum         []float64 // loss sums of that epoch
	n           int       // its steps seen
	prev, prev2 []float64 // mean losses of the last and second last epochs with steps
}

var _ Method = (*DWA)(nil)

// Name returns "dwa".
func (*DWA) Name() string { return "dwa" }

// Needs returns LossesOnly.
func (*DWA) Needs() Needs { return LossesOnly }

// Reset forgets the epoch means, keeping Temp and EpochSteps.
func (m *DWA) Reset() { *m = DWA{Temp: m.Temp, EpochSteps: m.EpochSteps} }

// Combine returns the step's weights and adds its losses to the epoch's
// means. It returns an *InputError if the losses are not finite, their
// number changes between calls, Step is below 1 or decreases, or a ratio
// of epoch means is not finite (an epoch whose mean loss is 0), and an
// error if Temp or EpochSteps is negative.
func (m *DWA) Combine(in Input) (Output, error) {
	t, _, err := check(m.Name(), in, m.tasks, false)
	if err != nil {
		return Output{}, err
	}
	temp, steps := m.Temp, m.EpochSteps
	if temp == 0 {
		temp = 2
	}
	if steps == 0 {
		steps = 1
	}
	if !(temp > 0) || math.IsInf(temp, 0) || steps < 0 {
		return Output{}, fmt.Errorf("weighting: dwa: Temp %v and EpochSteps %d, want positive values", m.Temp, m.EpochSteps)
	}
	if in.Step < 1 || in.Step < m.lastStep {
		return Output{}, inputErr(m.Name(), -1, "step %d after step %d, want 1-based steps that do not decrease", in.Step, m.lastStep)
	}
	if m.tasks == 0 {
		m.tasks, m.sum = t, make([]float64, t)
	}
	m.lastStep = in.Step
	if e := (in.Step - 1) / steps; e != m.epoch {
		if m.n > 0 {
			mean := make([]float64, t)
			for i, s := range m.sum {
				mean[i] = s / float64(m.n)
			}
			m.prev, m.prev2 = mean, m.prev
		}
		m.epoch, m.n = e, 0
		clear(m.sum)
	}
	w := make([]float64, t)
	if m.prev2 == nil {
		for i := range w {
			w[i] = 1
		}
	} else {
		for i := range w {
			r := m.prev[i] / m.prev2[i]
			if math.IsNaN(r) || math.IsInf(r, 0) {
				return Output{}, inputErr(m.Name(), i, "mean loss ratio %v/%v of the last two epochs is not finite", m.prev[i], m.prev2[i])
			}
			w[i] = r / temp
		}
		w = softmaxWeights(w)
	}
	for i, l := range in.Losses {
		m.sum[i] += l
	}
	m.n++
	return Output{Weights: w}, nil
}
