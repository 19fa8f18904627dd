package weighting

import (
	"fmt"
	"math"

	"github.com/medusa-ml/medusa/graph"
)

// GradNorm is gradient normalisation (Chen, Badrinarayanan, Lee and
// Rabinovich 2018, "GradNorm: Gradient Normalization for Adaptive Loss
// Balancing in Deep Multitask Networks"), in LibMTL's form. The weights
// are w = T·softmax(a) for learned logits a, so they are positive and sum
// to T without renormalisation. Each step Combine measures, over the
// shared parameters, the gradient norms G_t = ‖w_t g_t‖ and their mean Ḡ,
// the relative inverse training rates r_t = (L_t/L_t⁰)/mean_k(L_k/L_k⁰),
// where L⁰ are the losses of the first call, and returns as ParamGrads
// the gradient with respect to a of
//
//	L_grad = Σ_t |G_t − Ḡ·r_t^α|,
//
// holding the target Ḡ·r_t^α constant as the paper does, computed
// analytically through the softmax. The shared gradient is Σ_t w_t g_t
// (Output.Shared is nil). LibMTL measures L⁰ as the mean loss of the first
// epoch and uses weights 1 during that epoch; here L⁰ is the first step's
// loss and the softmax weights apply from the first step.
//
// Its parameters are one float64 tensor of shape [T] named
// "weighting.gradnorm_logits", initialised to 0 (weights 1); the trainer
// updates it. Losses must be positive, as the ratios L_t/L_t⁰ need. Use
// NewGradNorm; the zero value has no parameters and its Combine returns an
// error.
type GradNorm struct {
	// Alpha is the asymmetry α ≥ 0, the strength of the pull towards
	// equal training rates; NewGradNorm sets the paper's and LibMTL's
	// 1.5. With α = 0 GradNorm equalises the gradient norms.
	Alpha float64

	params *graph.Params
	tasks  int
	first  []float64 // L⁰
}

var _ Learned = (*GradNorm)(nil)

// NewGradNorm returns GradNorm for the given number of tasks with Alpha
// 1.5 and logits 0. It returns an error if tasks < 1.
func NewGradNorm(tasks int) (*GradNorm, error) {
	p, err := vectorParam("gradnorm", "weighting.gradnorm_logits", tasks)
	if err != nil {
		return nil, err
	}
	return &GradNorm{Alpha: 1.5, params: p, tasks: tasks}, nil
}

// Name returns "gradnorm".
func (*GradNorm) Name() string { return "gradnorm" }

// Needs returns SharedGrads.
func (*GradNorm) Needs() Needs { return SharedGrads }

// Params returns the logits a, one tensor of shape [T].
func (m *GradNorm) Params() *graph.Params { return m.params }

// Combine returns the weights T·softmax(a) and, as ParamGrads, ∂L_grad/∂a.
// The first call records the losses L⁰. It returns an *InputError for a
// wrong number of losses or gradients, gradients of different lengths,
// non-finite values or a loss that is not positive, and an error if Alpha
// is negative or not finite or the parameters are missing, resized or not
// finite.
func (m *GradNorm) Combine(in Input) (Output, error) {
	t, _, err := check(m.Name(), in, m.tasks, true)
	if err != nil {
		return Output{}, err
	}
	if !(m.Alpha >= 0) || math.IsInf(m.Alpha, 0) {
		return Output{}, fmt.Errorf("weighting: gradnorm: Alpha %v, want a finite value ≥ 0", m.Alpha)
	}
	a, err := readVector(m.Name(), m.params, m.tasks)
	if err != nil {
		return Output{}, err
	}
	for i, l := range in.Losses {
		if !(l > 0) {
			return Output{}, inputErr(m.Name(), i, "loss %v is not positive", l)
		}
	}
	if m.first == nil {
		m.first = append([]float64(nil), in.Losses...)
	}
	norms := make([]float64, t)
	for i, g := range in.Grads {
		norms[i] = math.Sqrt(dot(g, g))
	}
	w := softmaxWeights(a)
	target := gradNormTarget(w, norms, in.Losses, m.first, m.Alpha)
	_, da := gradNormLoss(a, norms, target)
	return Output{Weights: w, ParamGrads: [][]float64{da}}, nil
}

// softmaxWeights returns T·softmax(a).
func softmaxWeights(a []float64) []float64 {
	mx := math.Inf(-1)
	for _, v := range a {
		mx = math.Max(mx, v)
	}
	w := make([]float64, len(a))
	s := 0.0
	for i, v := range a {
		w[i] = math.Exp(v - mx)
		s += w[i]
	}
	for i := range w {
		w[i] *= float64(len(a)) / s
	}
	return w
}

// gradNormTarget returns the constant targets Ḡ·r_t^α for weights w and
// unweighted gradient norms.
func gradNormTarget(w, norms, losses, first []float64, alpha float64) []float64 {
	t := float64(len(w))
	gbar, rbar := 0.0, 0.0
	r := make([]float64, len(w))
	for i := range w {
		gbar += w[i] * norms[i] / t
		r[i] = losses[i] / first[i]
		rbar += r[i] / t
	}
	for i := range r {
		r[i] = gbar * math.Pow(r[i]/rbar, alpha)
	}
	return r
}

// gradNormLoss returns L_grad = Σ_t |w_t·norms_t − target_t| at logits a,
// w = T·softmax(a), and its gradient with respect to a:
//
//	∂L/∂a_k = w_k·(u_k − Σ_t w_t u_t/T),  u_t = sign(G_t − target_t)·norms_t,
//
// from ∂w_t/∂a_k = w_t(δ_tk − w_k/T). At a kink (G_t = target_t) the sign
// is taken as 0, as PyTorch's abs does.
func gradNormLoss(a, norms, target []float64) (float64, []float64) {
	w := softmaxWeights(a)
	t := float64(len(a))
	loss, mean := 0.0, 0.0
	u := make([]float64, len(a))
	for i := range a {
		d := w[i]*norms[i] - target[i]
		loss += math.Abs(d)
		switch {
		case d > 0:
			u[i] = norms[i]
		case d < 0:
			u[i] = -norms[i]
		}
		mean += w[i] * u[i] / t
	}
	da := make([]float64, len(a))
	for k := range a {
		da[k] = w[k] * (u[k] - mean)
	}
	return loss, da
}
