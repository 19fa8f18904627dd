package weighting

import (
	"encoding/json"
	"fmt"
	"math"
)

// FAMO's defaults: the logits' Adam learning rate of the paper's code and
// LibMTL, and LibMTL's weight decay γ (the paper's code defaults to 0.01,
// and the paper chooses γ per benchmark).
const (
	DefaultFAMOLR    = 0.025
	DefaultFAMOGamma = 1e-3
)

// famoEps is the reference code's guard in log(L − L*): D = L − L* + 1e-8.
const famoEps = 1e-8

// Adam's constants for the logits, PyTorch's defaults as the reference
// code uses them.
const (
	famoBeta1 = 0.9
	famoBeta2 = 0.999
	famoAdamE = 1e-8
)

// FAMO is fast adaptive multitask optimisation (Liu, Liu, Stone and Liu
// 2023, "FAMO: Fast Adaptive Multitask Optimization"): a loss weighting
// that needs no per-task gradients yet balances the rates at which the
// tasks' log-losses fall. It keeps task logits ξ (0 at first) and
// descends, in effect, Σ_t z_t·log D_t with z = softmax(ξ) and
// D_t = L_t − L*_t + 1e-8 (L* the MinLosses, 0 by default), whose
// gradient is Σ_t w_t ∇L_t with
//
//	w_t = (z_t/D_t) / Σ_k (z_k/D_k),
//
// so the weights sum to 1. After each update it measures each task's
// log-loss decrease δ_t = log D_t(before) − log D_t(after) and moves ξ one
// Adam step (learning rate LR, L2 weight decay Gamma, PyTorch's betas) down
// the gradient of zᵀδ with respect to ξ, z∘(δ − zᵀδ): tasks whose loss
// fell slowly gain weight.
//
// The reference code and LibMTL compute the loss after the update by a
// second forward pass on the same minibatch. A trainer here gives Combine
// each step's losses only once, so FAMO takes the next step's loss, on
// the next minibatch, as the loss after the update, as the reference code
// does on its deterministic toy problem: Combine at step n moves ξ by
// δ = log D(L_{n−1}) − log D(L_n). To make the weights of a step known
// before its forward pass, so that FAMO is a Weighter and a trainer
// computes the gradient of Σ_t w_t L_t in one backward pass (FAMO's O(1)
// cost per step), the weights of step n use the logits and the losses
// known after step n−1: D from L_{n−1}, and ξ moved up to
// δ = log D(L_{n−2}) − log D(L_{n−1}). At step 1 the weights are 1/T, and
// at step 2 softmax(0)/D(L_1), normalised. The reference code also clips
// the shared gradient to norm 1; LibMTL does not, and neither does this.
//
// The losses must stay above MinLosses (set them below the losses'
// infimum when losses can be negative; the reference code's toy problem
// uses −21). Steps must be numbered from 1 and increase. The logits, their
// Adam moments and the last losses are state: MarshalState saves them so
// that a resumed run continues exactly. The zero value uses LR 0.025,
// Gamma 1e-3 and MinLosses 0; the number of tasks is fixed by the first
// call. Use a new FAMO (or Reset) for a new training run.
type FAMO struct {
	LR        float64   // the logits' Adam learning rate; default DefaultFAMOLR
	Gamma     float64   // the logits' weight decay; default DefaultFAMOGamma, negative for none
	MinLosses []float64 // the losses' lower bounds L*_t; nil for 0

	tasks    int
	lastStep int
	xi       []float64 // logits ξ
	m, v     []float64 // Adam's moments of ξ
	adam     int       // Adam steps taken
	prev     []float64 // the losses of lastStep
}

var (
	_ Weighter       = (*FAMO)(nil)
	_ StateMarshaler = (*FAMO)(nil)
)

// Name returns "famo".
func (*FAMO) Name() string { return "famo" }

// Needs returns LossesOnly.
func (*FAMO) Needs() Needs { return LossesOnly }

// Reset forgets the logits and losses, keeping the settings.
func (m *FAMO) Reset() { *m = FAMO{LR: m.LR, Gamma: m.Gamma, MinLosses: m.MinLosses} }

// Weights returns the weights Combine will use at step, which depend only
// on earlier steps. Where Combine will return an error it returns NaN
// weights.
func (m *FAMO) Weights(step, tasks int) []float64 {
	w, err := m.weights(step, tasks)
	if err != nil {
		return nanWeights(tasks)
	}
	return w
}

// settings returns the learning rate, weight decay and lower bounds for t
// tasks.
func (m *FAMO) settings(t int) (lr, gamma float64, low []float64, err error) {
	lr, gamma = m.LR, m.Gamma
	if lr == 0 {
		lr = DefaultFAMOLR
	}
	switch {
	case gamma == 0:
		gamma = DefaultFAMOGamma
	case gamma < 0:
		gamma = 0
	}
	if !(lr > 0) || math.IsInf(lr, 0) || math.IsNaN(gamma) || math.IsInf(gamma, 0) {
		return 0, 0, nil, fmt.Errorf("weighting: famo: LR %v and Gamma %v, want a finite positive LR and a finite Gamma", m.LR, m.Gamma)
	}
	low = m.MinLosses
	if low == nil {
		low = make([]float64, t)
	}
	if len(low) != t || !finiteLen(low, t) {
		return 0, 0, nil, fmt.Errorf("weighting: famo: %d MinLosses for %d tasks, want one finite value per task", len(m.MinLosses), t)
	}
	return lr, gamma, low, nil
}

// weights returns the weights of step for t tasks, without changing m.
func (m *FAMO) weights(step, t int) ([]float64, error) {
	_, _, low, err := m.settings(t)
	if err != nil {
		return nil, err
	}
	if step < 1 || step <= m.lastStep {
		return nil, inputErr(m.Name(), -1, "step %d after step %d, want 1-based increasing steps", step, m.lastStep)
	}
	if m.tasks != 0 && t != m.tasks {
		return nil, inputErr(m.Name(), -1, "%d losses, want %d", t, m.tasks)
	}
	z := softmax(m.xi, t)
	if m.prev == nil {
		return z, nil
	}
	sum := 0.0
	for i := range z {
		d := m.prev[i] - low[i] + famoEps
		if !(d > 0) {
			return nil, inputErr(m.Name(), i, "last loss %v is not above its minimum %v", m.prev[i], low[i])
		}
		z[i] /= d
		sum += z[i]
	}
	for i := range z {
		z[i] /= sum
	}
	return z, nil
}

// Combine returns the step's weights, announced by Weights, then moves
// the logits by the change of the log-losses since the last step and
// records the losses. It returns an *InputError if the losses are not
// finite, are not above MinLosses, or their number changes between calls,
// or if Step is below 1 or does not increase, and an error for a bad LR,
// Gamma or MinLosses, or for an update of the logits that is not finite;
// a failed call leaves the state as it was.
func (m *FAMO) Combine(in Input) (Output, error) {
	t, _, err := check(m.Name(), in, m.tasks, false)
	if err != nil {
		return Output{}, err
	}
	lr, gamma, low, err := m.settings(t)
	if err != nil {
		return Output{}, err
	}
	for i, l := range in.Losses {
		if !(l-low[i]+famoEps > 0) {
			return Output{}, inputErr(m.Name(), i, "loss %v is not above its minimum %v", l, low[i])
		}
	}
	w, err := m.weights(in.Step, t)
	if err != nil {
		return Output{}, err
	}
	if m.tasks == 0 {
		m.tasks = t
		m.xi, m.m, m.v = make([]float64, t), make([]float64, t), make([]float64, t)
	}
	if m.prev != nil {
		if err := m.update(in.Losses, low, lr, gamma); err != nil {
			return Output{}, err
		}
	}
	m.prev = append(m.prev[:0], in.Losses...)
	m.lastStep = in.Step
	return Output{Weights: w}, nil
}

// update moves the logits one Adam step down ∂(zᵀδ)/∂ξ, δ the decrease
// of the log-losses from m.prev to losses. If a logit or moment would not
// be finite (too large an LR or Gamma) it returns an error and leaves them
// as they were.
func (m *FAMO) update(losses, low []float64, lr, gamma float64) error {
	t := len(losses)
	z := softmax(m.xi, t)
	zd := 0.0
	delta := make([]float64, t)
	for i := range t {
		delta[i] = math.Log(m.prev[i]-low[i]+famoEps) - math.Log(losses[i]-low[i]+famoEps)
		zd += z[i] * delta[i]
	}
	adam := m.adam + 1
	bc1 := 1 - math.Pow(famoBeta1, float64(adam))
	bc2 := 1 - math.Pow(famoBeta2, float64(adam))
	xi, mo, v := make([]float64, t), make([]float64, t), make([]float64, t)
	for i := range t {
		g := z[i]*(delta[i]-zd) + gamma*m.xi[i]
		mo[i] = famoBeta1*m.m[i] + (1-famoBeta1)*g
		v[i] = famoBeta2*m.v[i] + (1-famoBeta2)*g*g
		xi[i] = m.xi[i] - lr/bc1*mo[i]/(math.Sqrt(v[i])/math.Sqrt(bc2)+famoAdamE)
	}
	if !finiteLen(xi, t) || !finiteLen(mo, t) || !finiteLen(v, t) {
		return fmt.Errorf("weighting: famo: the logits' update is not finite (LR %v, Gamma %v)", lr, gamma)
	}
	m.xi, m.m, m.v, m.adam = xi, mo, v, adam
	return nil
}

type famoState struct {
	Tasks, LastStep, Adam int
	Xi, M, V, Prev        []float64
}

// MarshalState encodes FAMO's logits, their Adam moments and the last
// losses.
func (m *FAMO) MarshalState() ([]byte, error) {
	return json.Marshal(famoState{m.tasks, m.lastStep, m.adam, m.xi, m.m, m.v, m.prev})
}

// UnmarshalState restores what MarshalState encoded. It returns an error,
// leaving m as it was, for inconsistent state.
func (m *FAMO) UnmarshalState(b []byte) error {
	var s famoState
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("weighting: famo state: %v", err)
	}
	n := s.Tasks
	ok := n >= 0 && s.LastStep >= 0 && s.Adam >= 0 &&
		finiteLen(s.Xi, n) && finiteLen(s.M, n) && finiteLen(s.V, n) && finiteLen(s.Prev, n) &&
		(n == 0) == (s.Xi == nil) && (s.Xi == nil) == (s.M == nil) && (s.M == nil) == (s.V == nil) &&
		(s.Prev == nil) == (s.LastStep == 0) && (s.Prev == nil || n > 0) && s.Adam < max(s.LastStep, 1)
	for _, v := range s.V {
		ok = ok && v >= 0
	}
	if !ok {
		return fmt.Errorf("weighting: famo state is inconsistent")
	}
	m.tasks, m.lastStep, m.adam = s.Tasks, s.LastStep, s.Adam
	m.xi, m.m, m.v, m.prev = s.Xi, s.M, s.V, s.Prev
	return nil
}

// softmax returns softmax(x), or t values 1/t if x is nil.
func softmax(x []float64, t int) []float64 {
	z := make([]float64, t)
	if x == nil {
		for i := range z {
			z[i] = 1 / float64(t)
		}
		return z
	}
	top := math.Inf(-1)
	for _, v := range x {
		top = math.Max(top, v)
	}
	sum := 0.0
	for i, v := range x {
		z[i] = math.Exp(v - top)
		sum += z[i]
	}
	for i := range z {
		z[i] /= sum
	}
	return z
}
