package weighting

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/medusa-ml/medusa/graph"
)

// MoCo's defaults, LibMTL's: the tracking rate β and the weights' step
// size γ, each decayed as c/k^σ at step k, and the weights' regulariser ρ.
const (
	DefaultMoCoBeta       = 0.5
	DefaultMoCoBetaSigma  = 0.5
	DefaultMoCoGamma      = 0.1
	DefaultMoCoGammaSigma = 0.5
	DefaultMoCoRho        = 0
)

// MoCo is multi-objective gradient correction (Fernando, Shen, Liu,
// Chaudhury, Murugesan and Chen 2023, "Mitigating Gradient Bias in
// Multi-objective Learning: A Provably Convergent Approach"): MGDA's
// min-norm weighting computed on tracked gradients, whose bias from
// minibatch noise vanishes, and approached by one projected gradient
// step per training step instead of solved. It keeps, for every task, a
// tracked gradient y_t (0 at first) and weights λ on the probability
// simplex (1/T at first), and at step k moves
//
//	y_t ← y_t − β_k·(y_t − h_t),  β_k = Beta/k^BetaSigma,
//	λ ← Π_Δ(λ − γ_k·(Y·Yᵀ + ρI)·λ),  γ_k = Gamma/k^GammaSigma,
//
// Π_Δ being the Euclidean projection onto the simplex and Y the T×D
// matrix of the y_t; the shared gradient is Yᵀλ = Σ_t λ_t·y_t, which
// descends every task's loss when the tracked gradients agree with the
// true ones. The weights are λ; the heads keep their own unweighted
// gradients, as in LibMTL.
//
// Choices, following LibMTL (which follows the authors' code): β = 0.5,
// γ = 0.1, both decayed with σ = 0.5 (the step k being the trainer's
// 1-based Input.Step), ρ = 0 (the paper's analysis wants ρ > 0), no
// projection of y_t onto a ball (the paper's Π_{L_t}), and the gradient
// tracked is h_t = L_t·g_t/‖g_t‖, the task's gradient g_t normalised and
// scaled by its loss (0 if g_t is 0, where LibMTL divides by ‖g_t‖ +
// 1e-8); with RawGrads h_t = g_t, as in the paper's algorithm. LibMTL
// takes the weights through a softmax, λ ← softmax(λ − γ_k·(Y·Yᵀ + ρI)·λ),
// where the paper projects onto the simplex; this projects.
//
// The tracked gradients and the weights are state: MarshalState saves
// them, so that a resumed run continues exactly. The number of tasks and
// the length D of the gradients are fixed by the first call: with
// gradients with respect to a representation (learners.MTL's RepGrad),
// whose length follows the minibatch's rows, every minibatch must have as
// many rows (LibMTL refuses representation gradients). Steps must be
// numbered from 1 and increase. Without RawGrads the losses must not be
// negative. Use a new MoCo (or Reset) for a new training run.
type MoCo struct {
	// Beta ∈ (0, 1] is the tracking rate; 0 means DefaultMoCoBeta.
	Beta float64
	// BetaSigma is the exponent of Beta's decay; 0 means
	// DefaultMoCoBetaSigma, negative no decay.
	BetaSigma float64
	// Gamma > 0 is the weights' step size; 0 means DefaultMoCoGamma.
	Gamma float64
	// GammaSigma is the exponent of Gamma's decay; 0 means
	// DefaultMoCoGammaSigma, negative no decay.
	GammaSigma float64
	// Rho ≥ 0 is the regulariser ρ of the weights' update; the zero
	// value is DefaultMoCoRho, none.
	Rho float64
	// RawGrads tracks the tasks' gradients as they are, as the paper's
	// algorithm does, instead of LibMTL's unit gradients scaled by the
	// losses.
	RawGrads bool

	tasks, dim int
	lastStep   int
	y          []float64 // tracked gradients, T×D row-major
	lambda     []float64 // λ
}

var (
	_ Method         = (*MoCo)(nil)
	_ StateMarshaler = (*MoCo)(nil)
)

// Name returns "moco".
func (*MoCo) Name() string { return "moco" }

// Needs returns SharedGrads.
func (*MoCo) Needs() Needs { return SharedGrads }

// Reset forgets the tracked gradients and the weights, keeping the
// settings.
func (m *MoCo) Reset() {
	*m = MoCo{Beta: m.Beta, BetaSigma: m.BetaSigma, Gamma: m.Gamma, GammaSigma: m.GammaSigma, Rho: m.Rho, RawGrads: m.RawGrads}
}

// rates returns β_k, γ_k and ρ at the 1-based step k.
func (m *MoCo) rates(step int) (beta, gamma, rho float64, err error) {
	orDefault := func(v, def float64) float64 {
		if v == 0 {
			return def
		}
		return v
	}
	noDecay := func(v float64) float64 { return math.Max(v, 0) } // negative: none
	beta, gamma, rho = orDefault(m.Beta, DefaultMoCoBeta), orDefault(m.Gamma, DefaultMoCoGamma), m.Rho
	bs := noDecay(orDefault(m.BetaSigma, DefaultMoCoBetaSigma))
	gs := noDecay(orDefault(m.GammaSigma, DefaultMoCoGammaSigma))
	if !(beta > 0 && beta <= 1) || !(gamma > 0) || math.IsInf(gamma, 0) || !(rho >= 0) || math.IsInf(rho, 0) ||
		math.IsNaN(bs) || math.IsInf(bs, 0) || math.IsNaN(gs) || math.IsInf(gs, 0) {
		return 0, 0, 0, fmt.Errorf("weighting: moco: Beta %v, BetaSigma %v, Gamma %v, GammaSigma %v and Rho %v, want Beta in (0, 1], a finite positive Gamma, a finite Rho of at least 0 and finite exponents",
			m.Beta, m.BetaSigma, m.Gamma, m.GammaSigma, m.Rho)
	}
	k := float64(step)
	return beta / math.Pow(k, bs), gamma / math.Pow(k, gs), rho, nil
}

// Combine moves the tracked gradients and the weights and returns the
// weights and the shared gradient Yᵀλ. It returns an *InputError for a
// wrong number of losses or gradients (or a number of tasks or a gradient
// length different from the first call's), gradients of different
// lengths, non-finite values, negative losses (without RawGrads), or a
// Step below 1 or not above the last one, and an error for bad settings.
// A failed call leaves the state as it was.
func (m *MoCo) Combine(in Input) (Output, error) {
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
	if !m.RawGrads {
		for i, l := range in.Losses {
			if l < 0 {
				return Output{}, inputErr(m.Name(), i, "loss %v is negative; MoCo scales each task's unit gradient by its loss", l)
			}
		}
	}
	beta, gamma, rho, err := m.rates(in.Step)
	if err != nil {
		return Output{}, err
	}
	prev, lambda := m.y, m.lambda
	if prev == nil {
		prev = make([]float64, t*d)
		lambda = make([]float64, t)
		for i := range lambda {
			lambda[i] = 1 / float64(t)
		}
	}
	sq := make([]float64, t)
	if !m.RawGrads {
		dots(sq, in.Grads, in.Grads)
	}
	y := make([]float64, t*d)
	rows := make([][]float64, t)
	for i, g := range in.Grads {
		s := 1.0 // h_t = s·g_t
		if !m.RawGrads {
			s = 0
			if sq[i] > 0 {
				s = in.Losses[i] / math.Sqrt(sq[i])
			}
		}
		yi, pi := y[i*d:(i+1)*d], prev[i*d:(i+1)*d]
		for j, v := range g {
			yi[j] = pi[j] - beta*(pi[j]-s*v)
		}
		rows[i] = yi
	}
	if !graph.AllFinite(y) {
		return Output{}, inputErr(m.Name(), -1, "the tracked gradients overflow")
	}
	gg := gram(rows)
	for i := range t {
		gg[i*t+i] += rho
	}
	next := matVec(gg, lambda)
	for i := range next {
		next[i] = lambda[i] - gamma*next[i]
	}
	if !graph.AllFinite(next) {
		return Output{}, inputErr(m.Name(), -1, "the weights' update overflows")
	}
	projectSimplex(next)
	shared := combine(next, rows)
	if !graph.AllFinite(shared) {
		return Output{}, inputErr(m.Name(), -1, "the combined gradient overflows")
	}
	m.tasks, m.dim, m.lastStep, m.y, m.lambda = t, d, in.Step, y, next
	return Output{Weights: append([]float64(nil), next...), HeadWeights: ones(t), Shared: shared}, nil
}

type mocoState struct {
	Tasks, Dim, LastStep int
	Y                    packed
	Lambda               []float64
}

// MarshalState encodes MoCo's tracked gradients and weights, as the JSON
// of a mocoState.
func (m *MoCo) MarshalState() ([]byte, error) {
	lambda, err := json.Marshal(m.lambda)
	if err != nil {
		return nil, fmt.Errorf("weighting: moco state: %v", err)
	}
	b := fmt.Appendf(nil, `{"Tasks":%d,"Dim":%d,"LastStep":%d,"Y":`, m.tasks, m.dim, m.lastStep)
	b = packed(m.y).appendJSON(b)
	b = append(b, `,"Lambda":`...)
	b = append(b, lambda...)
	return append(b, '}'), nil
}

// UnmarshalState restores what MarshalState encoded. It returns an error,
// leaving m as it was, for inconsistent state.
func (m *MoCo) UnmarshalState(b []byte) error {
	var s mocoState
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("weighting: moco state: %v", err)
	}
	fresh := s.Tasks == 0 && s.Dim == 0 && s.LastStep == 0 && s.Y == nil && s.Lambda == nil
	used := s.Tasks > 0 && s.Dim > 0 && s.LastStep > 0 && len(s.Y)%s.Tasks == 0 && len(s.Y)/s.Tasks == s.Dim &&
		graph.AllFinite(s.Y) && finiteLen(s.Lambda, s.Tasks) && s.Lambda != nil
	if used {
		for _, v := range s.Lambda {
			used = used && v >= 0
		}
		total := 0.0
		for _, v := range s.Lambda {
			total += v
		}
		used = used && math.Abs(total-1) <= 1e-9
	}
	if !fresh && !used {
		return fmt.Errorf("weighting: moco state is inconsistent")
	}
	m.tasks, m.dim, m.lastStep, m.y, m.lambda = s.Tasks, s.Dim, s.LastStep, s.Y, s.Lambda
	return nil
}
