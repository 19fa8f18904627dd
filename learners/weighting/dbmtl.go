package weighting

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/medusa-ml/medusa/graph"
)

// DB-MTL's defaults, LibMTL's: the rate β of the moving average of the
// log-loss gradients, and the exponent σ of its decay β_k = β/k^σ (0: no
// decay).
const (
	DefaultDBMTLBeta      = 0.9
	DefaultDBMTLBetaSigma = 0
)

// dbmtlEps is LibMTL's guard in the log-losses, log(L_t + 1e-8).
const dbmtlEps = 1e-8

// DBMTL is dual-balancing multi-task learning (Lin, Ye, Zhang and Kwok
// 2023, "Dual-Balancing for Multi-Task Learning"). It balances the
// losses' scales by descending the log-losses log(L_t + 1e-8), whose
// gradients are g_t/(L_t + 1e-8) for the gradients g_t of the losses, and
// the gradients' magnitudes by rescaling each task's to the largest. At
// step k it moves a moving average ĝ_t of each task's log-loss gradient,
// starting at 0,
//
//	ĝ_t ← β_k·ĝ_t + (1−β_k)·g_t/(L_t + 1e-8),  β_k = Beta/k^BetaSigma,
//
// and returns the shared gradient
//
//	Σ_t α_t·ĝ_t,  α_t = max_j ‖ĝ_j‖ / ‖ĝ_t‖,
//
// every task's averaged direction at the norm of the largest. The weights
// are the scales α_t; the heads descend their own log-losses, their
// gradients scaled by 1/(L_t + 1e-8) (HeadWeights), as in LibMTL.
//
// Choices, following LibMTL: β = 0.9 without decay (BetaSigma 0), the
// average without a bias correction, and the step k the trainer's
// 1-based Input.Step. LibMTL divides by ‖ĝ_t‖ + 1e-8; here a task whose
// averaged gradient is 0, which no scale can lengthen, gets α_t = 1, and
// if every one is 0 the shared gradient is 0.
//
// The averaged gradients are state: MarshalState saves them, so that a
// resumed run continues exactly. The number of tasks and the length D of
// the gradients are fixed by the first call: with gradients with respect
// to a representation (learners.MTL's RepGrad), whose length follows the
// minibatch's rows, every minibatch must have as many rows (LibMTL
// refuses representation gradients). Steps must be numbered from 1 and
// increase. Use a new DBMTL (or Reset) for a new training run.
type DBMTL struct {
	// Beta ∈ [0, 1) is the moving average's rate β; 0 means
	// DefaultDBMTLBeta, negative values no averaging (β = 0).
	Beta float64
	// BetaSigma ≥ 0 is the exponent σ of β's decay β/k^σ; the zero value
	// is DefaultDBMTLBetaSigma, no decay.
	BetaSigma float64

	tasks, dim int
	lastStep   int
	avg        []float64 // ĝ, T×D row-major
}

var (
	_ Method         = (*DBMTL)(nil)
	_ StateMarshaler = (*DBMTL)(nil)
)

// Name returns "dbmtl".
func (*DBMTL) Name() string { return "dbmtl" }

// Needs returns SharedGrads.
func (*DBMTL) Needs() Needs { return SharedGrads }

// Reset forgets the averaged gradients, keeping the settings.
func (m *DBMTL) Reset() { *m = DBMTL{Beta: m.Beta, BetaSigma: m.BetaSigma} }

// beta returns the moving average's rate at the 1-based step.
func (m *DBMTL) beta(step int) (float64, error) {
	b, s := m.Beta, m.BetaSigma
	switch {
	case b == 0:
		b = DefaultDBMTLBeta
	case b < 0:
		b = 0
	}
	if !(b < 1) || !(s >= 0) || math.IsInf(s, 0) {
		return 0, fmt.Errorf("weighting: dbmtl: Beta %v and BetaSigma %v, want Beta below 1 and a finite BetaSigma of at least 0", m.Beta, m.BetaSigma)
	}
	return b / math.Pow(float64(step), s), nil
}

// Combine moves the averaged log-loss gradients and returns their
// balanced sum. It returns an *InputError for a wrong number of losses or
// gradients (or a number of tasks or a gradient length different from the
// first call's), gradients of different lengths, non-finite values,
// negative losses, or a Step below 1 or not above the last one, and an
// error for a bad Beta or BetaSigma. A failed call leaves the state as it
// was.
func (m *DBMTL) Combine(in Input) (Output, error) {
	t, d, err := check(m.Name(), in, m.tasks, true)
	if err != nil {
		return Output{}, err
	}
	if m.dim != 0 && d != m.dim {
		return Output{}, inputErr(m.Name(), -1, "gradients of %d values, want %d as at the first step", d, m.dim)
	}
	if in.Step < 1 || in.Step <= m.lastStep {
		return Output{}, inputErr(m.Name(), -1, "step %d after step %d, want 1-based increasing steps", in.Step, m.lastStep)
	}
	for i, l := range in.Losses {
		if l < 0 {
			return Output{}, inputErr(m.Name(), i, "loss %v is negative; DB-MTL takes the logarithm of the losses", l)
		}
	}
	beta, err := m.beta(in.Step)
	if err != nil {
		return Output{}, err
	}
	prev := m.avg
	if prev == nil {
		prev = make([]float64, t*d)
	}
	avg := make([]float64, t*d)
	norms := make([]float64, t)
	head := make([]float64, t)
	top := 0.0
	for i, g := range in.Grads {
		head[i] = 1 / (in.Losses[i] + dbmtlEps)
		a, p := avg[i*d:(i+1)*d], prev[i*d:(i+1)*d]
		f := (1 - beta) * head[i]
		for j, v := range g {
			a[j] = beta*p[j] + f*v
		}
		norms[i] = math.Sqrt(dot(a, a))
		top = math.Max(top, norms[i])
	}
	if !graph.AllFinite(avg) || math.IsInf(top, 0) {
		return Output{}, inputErr(m.Name(), -1, "the averaged log-loss gradients overflow")
	}
	w := make([]float64, t)
	rows := make([][]float64, t)
	for i := range w {
		w[i] = 1
		if norms[i] > 0 {
			w[i] = top / norms[i]
		}
		rows[i] = avg[i*d : (i+1)*d]
	}
	shared := combine(w, rows)
	if !graph.AllFinite(shared) {
		return Output{}, inputErr(m.Name(), -1, "the balanced gradient overflows")
	}
	m.tasks, m.dim, m.lastStep, m.avg = t, d, in.Step, avg
	return Output{Weights: w, HeadWeights: head, Shared: shared}, nil
}

type dbmtlState struct {
	Tasks, Dim, LastStep int
	Avg                  packed
}

// MarshalState encodes DB-MTL's averaged gradients, as the JSON of a
// dbmtlState.
func (m *DBMTL) MarshalState() ([]byte, error) {
	b := fmt.Appendf(nil, `{"Tasks":%d,"Dim":%d,"LastStep":%d,"Avg":`, m.tasks, m.dim, m.lastStep)
	b = packed(m.avg).appendJSON(b)
	return append(b, '}'), nil
}

// UnmarshalState restores what MarshalState encoded. It returns an error,
// leaving m as it was, for inconsistent state.
func (m *DBMTL) UnmarshalState(b []byte) error {
	var s dbmtlState
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("weighting: dbmtl state: %v", err)
	}
	fresh := s.Tasks == 0 && s.Dim == 0 && s.LastStep == 0 && s.Avg == nil
	used := s.Tasks > 0 && s.Dim > 0 && s.LastStep > 0 && s.Tasks <= len(s.Avg) && len(s.Avg)/s.Tasks == s.Dim &&
		len(s.Avg)%s.Tasks == 0 && graph.AllFinite(s.Avg)
	if !fresh && !used {
		return fmt.Errorf("weighting: dbmtl state is inconsistent")
	}
	m.tasks, m.dim, m.lastStep, m.avg = s.Tasks, s.Dim, s.LastStep, s.Avg
	return nil
}
