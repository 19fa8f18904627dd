package weighting

import "math"

// GLS is the geometric loss strategy (Chennupati, Sistu, Yogamani and
// Rawashdeh 2019, "MultiNet++: Multi-Stream Feature Aggregation and
// Geometric Loss Strategy for Multi-Task Learning"). Its objective is the
// geometric mean of the T task losses,
//
//	GLS = (Π_t L_t)^(1/T),
//
// whose gradient is Σ_t w_t·∇L_t with
//
//	w_t = ∂GLS/∂L_t = GLS/(T·L_t):
//
// the gradient of the mean log-loss scaled by GLS, so that each task
// counts by the relative change of its loss, whatever its scale. The
// weights depend on the step's losses, so GLS is not a Weighter: a
// trainer computes each task's gradient and sums them with these weights.
// LibMTL back-propagates GLS itself and reports L_t/(T·Π_k L_k) as its
// weights; these are the weights of the gradient it back-propagates.
//
// The losses must be positive. The zero value is ready to use.
type GLS struct{}

var _ Method = GLS{}

// Name returns "gls".
func (GLS) Name() string { return "gls" }

// Needs returns LossesOnly.
func (GLS) Needs() Needs { return LossesOnly }

// Combine returns the weights GLS/(T·L_t). It returns an *InputError if
// there are no losses or one is not finite or not positive.
func (m GLS) Combine(in Input) (Output, error) {
	t, _, err := check(m.Name(), in, 0, false)
	if err != nil {
		return Output{}, err
	}
	logs := make([]float64, t)
	for i, l := range in.Losses {
		if !(l > 0) {
			return Output{}, inputErr(m.Name(), i, "loss %v is not positive; GLS takes the geometric mean of the losses", l)
		}
		logs[i] = math.Log(l)
	}
	// GLS/(T·L_t) = exp(mean_k log L_k − log L_t)/T, which neither
	// overflows nor underflows where the product of the losses would; the
	// mean is taken of the differences from log L_0, so that the large
	// logs of large or small losses do not round it.
	mean := 0.0
	for _, lg := range logs {
		mean += lg - logs[0]
	}
	mean /= float64(t)
	w := make([]float64, t)
	for i, lg := range logs {
		w[i] = math.Exp(mean-(lg-logs[0])) / float64(t)
	}
	return Output{Weights: w}, nil
}
