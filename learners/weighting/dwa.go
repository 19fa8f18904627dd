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

var _ Weighter = (*DWA)(nil)

// Name returns "dwa".
func (*DWA) Name() string { return "dwa" }

// Needs returns LossesOnly.
func (*DWA) Needs() Needs { return LossesOnly }

// Reset forgets the epoch means, keeping Temp and EpochSteps.
func (m *DWA) Reset() { *m = DWA{Temp: m.Temp, EpochSteps: m.EpochSteps} }

// Weights returns the weights Combine will use at step, which depend only
// on earlier epochs. Where Combine will return an error it returns NaN
// weights.
func (m *DWA) Weights(step, tasks int) []float64 {
	w, err := m.weights(step, tasks)
	if err != nil {
		return nanWeights(tasks)
	}
	return w
}

func nanWeights(tasks int) []float64 {
	w := make([]float64, max(tasks, 0))
	for i := range w {
		w[i] = math.NaN()
	}
	return w
}

func (m *DWA) settings() (temp float64, steps int, err error) {
	temp, steps = m.Temp, m.EpochSteps
	if temp == 0 {
		temp = 2
	}
	if steps == 0 {
		steps = 1
	}
	if !(temp > 0) || math.IsInf(temp, 0) || steps < 0 {
		return 0, 0, fmt.Errorf("weighting: dwa: Temp %v and EpochSteps %d, want positive values", m.Temp, m.EpochSteps)
	}
	return temp, steps, nil
}

// weights returns the weights of step for t tasks, without changing m.
func (m *DWA) weights(step, t int) ([]float64, error) {
	temp, steps, err := m.settings()
	if err != nil {
		return nil, err
	}
	if step < 1 || step < m.lastStep {
		return nil, inputErr(m.Name(), -1, "step %d after step %d, want 1-based steps that do not decrease", step, m.lastStep)
	}
	if m.tasks != 0 && t != m.tasks {
		return nil, inputErr(m.Name(), -1, "%d losses, want %d", t, m.tasks)
	}
	prev, prev2 := m.prev, m.prev2
	if (step-1)/steps != m.epoch && m.n > 0 {
		prev, prev2 = m.epochMean(), m.prev
	}
	w := make([]float64, t)
	if prev2 == nil {
		for i := range w {
			w[i] = 1
		}
		return w, nil
	}
	for i := range w {
		r := prev[i] / prev2[i]
		if math.IsNaN(r) || math.IsInf(r, 0) {
			return nil, inputErr(m.Name(), i, "mean loss ratio %v/%v of the last two epochs is not finite", prev[i], prev2[i])
		}
		w[i] = r / temp
	}
	return softmaxWeights(w), nil
}

// epochMean returns the mean losses of the epoch being accumulated.
func (m *DWA) epochMean() []float64 {
	mean := make([]float64, len(m.sum))
	for i, s := range m.sum {
		mean[i] = s / float64(m.n)
	}
	return mean
}

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
	w, err := m.weights(in.Step, t)
	if err != nil {
		return Output{}, err
	}
	_, steps, _ := m.settings()
	if m.tasks == 0 {
		m.tasks, m.sum = t, make([]float64, t)
	}
	m.lastStep = in.Step
	if e := (in.Step - 1) / steps; e != m.epoch {
		if m.n > 0 {
			m.prev, m.prev2 = m.epochMean(), m.prev
		}
		m.epoch, m.n = e, 0
		clear(m.sum)
	}
	for i, l := range in.Losses {
		m.sum[i] += l
	}
	m.n++
	return Output{Weights: w}, nil
}
