package weighting

import (
	"encoding/json"
	"fmt"
	"math"
)

// DefaultGradVacBeta is the rate of GradVac's moving average of the
// gradients' cosine similarities in the paper's experiments (β = 1e-2),
// the one the zero value and New("gradvac", ...) use.
const DefaultGradVacBeta = 0.01

// GradVac is gradient vaccine (Wang, Tsvetkov, Firat and Cao 2021,
// "Gradient Vaccine: Investigating and Improving Multi-task Optimization
// in Massively Multilingual Models"), the paper's Algorithm 1 on the
// whole shared gradient. It keeps, for every ordered pair of tasks
// (i, j), a target φ̂_ij for the cosine similarity of their gradients, an
// exponential moving average starting at 0. For each task i, in turn, it
// walks the other tasks in an order shuffled by Input.Rand (a new order
// for each i) and compares the cosine similarity φ_ij of the modified
// gradient g′_i with task j's original gradient g_j to the target; when
// φ_ij < φ̂_ij it adds the multiple of g_j that raises the similarity to
// exactly φ̂_ij,
//
//	g′_i ← g′_i + ‖g′_i‖·(φ̂_ij·sqrt(1−φ_ij²) − φ_ij·sqrt(1−φ̂_ij²))/(‖g_j‖·sqrt(1−φ̂_ij²))·g_j,
//
// and, either way, moves the target: φ̂_ij ← (1−β)·φ̂_ij + β·φ_ij. The
// shared gradient is Σ_i g′_i. With all targets 0 (the first step) this is
// PCGrad without the task itself in its walk.
//
// Choices: β is the paper's 1e-2, where LibMTL's and TorchJD's defaults
// are 0.5. The target moves after every comparison, as the paper's
// Algorithm 1 and TorchJD do; LibMTL moves it only when it corrects,
// which keeps every target at or below 0. The granularity is the whole
// shared gradient, one target per pair: LibMTL's "whole_model" (its
// default), where the paper also applies it per layer or per matrix. No
// 1e-8 is added to the denominators, as LibMTL and TorchJD do; instead a
// pair in which either gradient is 0 (no direction) is skipped, neither
// corrected nor averaged, and so is a correction towards a target of ±1,
// which no finite multiple of g_j reaches.
//
// The corrections are computed from the Gram matrix of the gradients, as
// TorchJD does, so that g′_i = Σ_k C_ik g_k; the weights are the column
// sums w_k = Σ_i C_ik, and the shared gradient is Σ_k w_k g_k. The heads
// keep their own unweighted gradients, as in LibMTL.
//
// The targets are state: MarshalState saves them, so that a resumed run
// continues exactly (the task order comes from Input.Rand, which the
// trainer's checkpoints restore). The number of tasks is fixed by the
// first call; use a new GradVac (or Reset) for a new training run.
type GradVac struct {
	// Beta is the rate β ∈ (0, 1] of the targets' moving average; 0
	// means DefaultGradVacBeta.
	Beta float64

	tasks   int
	targets []float64 // φ̂, T×T row-major; the diagonal is unused
}

var (
	_ Method         = (*GradVac)(nil)
	_ StateMarshaler = (*GradVac)(nil)
)

// Name returns "gradvac".
func (*GradVac) Name() string { return "gradvac" }

// Needs returns SharedGrads.
func (*GradVac) Needs() Needs { return SharedGrads }

// Reset forgets the targets, keeping Beta.
func (m *GradVac) Reset() { *m = GradVac{Beta: m.Beta} }

// Combine returns the weights of the vaccinated gradients and moves the
// targets. It returns an *InputError for a wrong number of losses or
// gradients (or a number of tasks different from the first call's),
// gradients of different lengths, non-finite values or a nil Input.Rand,
// and an error if Beta is outside [0, 1].
func (m *GradVac) Combine(in Input) (Output, error) {
	t, _, err := check(m.Name(), in, m.tasks, true)
	if err != nil {
		return Output{}, err
	}
	beta := m.Beta
	if beta == 0 {
		beta = DefaultGradVacBeta
	}
	if !(beta > 0 && beta <= 1) {
		return Output{}, fmt.Errorf("weighting: gradvac: Beta %v, want a value in (0, 1]", m.Beta)
	}
	if in.Rand == nil {
		return Output{}, inputErr(m.Name(), -1, "Input.Rand is nil; GradVac shuffles the task order")
	}
	if m.tasks == 0 {
		m.tasks, m.targets = t, make([]float64, t*t)
	}
	gg := gram(in.Grads)
	norm := make([]float64, t) // ‖g_j‖
	for j := range t {
		norm[j] = math.Sqrt(gg[j*t+j])
	}
	c := make([]float64, t*t) // g′_i = Σ_k C_ik g_k
	cg := make([]float64, t)  // g′_i·g_k = (C_i·G)_k
	order := make([]int, 0, t-1)
	for i := range t {
		ci := c[i*t : (i+1)*t]
		ci[i] = 1
		copy(cg, gg[i*t:(i+1)*t])
		order = order[:0]
		for j := range t {
			if j != i {
				order = append(order, j)
			}
		}
		in.Rand.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		for _, j := range order {
			ni := math.Sqrt(math.Max(dot(ci, cg), 0)) // ‖g′_i‖
			if ni == 0 || norm[j] == 0 {
				continue
			}
			phi := math.Max(-1, math.Min(1, cg[j]/(ni*norm[j])))
			target := m.targets[i*t+j]
			if s := math.Sqrt(1 - target*target); phi < target && s > 0 {
				f := ni * (target*math.Sqrt(1-phi*phi) - phi*s) / (norm[j] * s)
				ci[j] += f
				for k := range cg {
					cg[k] += f * gg[j*t+k]
				}
			}
			m.targets[i*t+j] = (1-beta)*target + beta*phi
		}
	}
	w := make([]float64, t)
	for i := range t {
		for k := range t {
			w[k] += c[i*t+k]
		}
	}
	return Output{Weights: w, HeadWeights: ones(t)}, nil
}

type gradVacState struct {
	Tasks   int
	Targets []float64
}

// MarshalState encodes GradVac's targets.
func (m *GradVac) MarshalState() ([]byte, error) {
	return json.Marshal(gradVacState{m.tasks, m.targets})
}

// UnmarshalState restores what MarshalState encoded. It returns an error,
// leaving m as it was, for state that is not T×T cosine similarities in
// [−1, 1].
func (m *GradVac) UnmarshalState(b []byte) error {
	var s gradVacState
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("weighting: gradvac state: %v", err)
	}
	if s.Tasks < 0 || s.Tasks > 1<<15 || !finiteLen(s.Targets, s.Tasks*s.Tasks) || s.Tasks > 0 && s.Targets == nil {
		return fmt.Errorf("weighting: gradvac state is inconsistent")
	}
	for _, v := range s.Targets {
		if v < -1 || v > 1 {
			return fmt.Errorf("weighting: gradvac state has a target %v outside [−1, 1]", v)
		}
	}
	m.tasks, m.targets = s.Tasks, s.Targets
	return nil
}
