package weighting

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// GradDrop is gradient sign dropout (Chen, Ngiam, Huang, Luong,
// Kretzschmar, Chai and Anguelov 2020, "Just Pick a Sign: Optimizing Deep
// Multitask Models with Gradient Sign Dropout"). For every element i of
// the shared gradient it computes the positive sign purity of the tasks'
// values there,
//
//	P_i = ½·(1 + Σ_t g_t[i] / Σ_t |g_t[i]|),
//
// 1 when every task pushes that element up and 0 when every task pushes
// it down, draws U_i uniformly from (0, 1) with Input.Rand, and keeps the
// positive values g_t[i] > 0 if P_i > U_i, the negative ones if P_i < U_i.
// The others are dropped (multiplied by Leak):
//
//	shared[i] = Σ_t g_t[i]·(Leak + (1−Leak)·M_t[i]),
//
// M_t[i] being 1 for a kept value and 0 for a dropped one. Elements where
// the tasks agree in sign are kept whole; where they conflict, one sign
// wins, with a probability that grows with its share of the gradient.
// The weights are 1, so the heads keep their own gradients.
//
// LibMTL applies GradDrop to the gradients with respect to the shared
// representation only (its rep_grad mode, refusing parameter gradients),
// and first sums each task's per-example gradients over the minibatch,
// multiplied by the sign of the representation, as the paper does for
// batched inputs. Here GradDrop applies to whatever shared gradients it
// is given, element by element: those of the shared parameters, or, with
// a trainer that passes gradients with respect to the representation
// (learners.MTL's RepGrad), each example's value of it, without the sum
// over the minibatch. Other choices: U_i is drawn from the open interval
// (0, 1), so that an element where every task agrees is always kept (from
// [0, 1), as in LibMTL, a draw of exactly 0 drops the negative values of
// an element with P_i = 0); one U_i is drawn for every element, in order,
// whether or not its tasks conflict, so every step draws D values; and no
// 1e-7 is added to Σ_t |g_t[i]| as in LibMTL, an element where every
// task's value is 0 being 0 whatever the draw.
//
// The zero value uses Leak 0, LibMTL's default.
type GradDrop struct {
	// Leak ∈ [0, 1] is the factor of the dropped values: 0 drops them,
	// 1 keeps everything (the sum of the gradients).
	Leak float64
}

var _ Method = GradDrop{}

// Name returns "graddrop".
func (GradDrop) Name() string { return "graddrop" }

// Needs returns SharedGrads.
func (GradDrop) Needs() Needs { return SharedGrads }

// Combine returns weights 1 and the masked shared gradient. It returns an
// *InputError for a wrong number of losses or gradients, gradients of
// different lengths, non-finite values or a nil Input.Rand, and an error
// if Leak is outside [0, 1].
func (m GradDrop) Combine(in Input) (Output, error) {
	t, d, err := check(m.Name(), in, 0, true)
	if err != nil {
		return Output{}, err
	}
	if !(m.Leak >= 0 && m.Leak <= 1) {
		return Output{}, fmt.Errorf("weighting: graddrop: Leak %v, want a value in [0, 1]", m.Leak)
	}
	if in.Rand == nil {
		return Output{}, inputErr(m.Name(), -1, "Input.Rand is nil; GradDrop draws its masks from it")
	}
	shared := make([]float64, d)
	for i := range shared {
		u := openUniform(in.Rand)
		s, a := 0.0, 0.0
		for _, g := range in.Grads {
			s += g[i]
			a += math.Abs(g[i])
		}
		if a == 0 {
			continue
		}
		p := (1 + s/a) / 2
		keepPos, keepNeg := p > u, p < u
		for _, g := range in.Grads {
			v := g[i]
			if v > 0 && keepPos || v < 0 && keepNeg {
				shared[i] += v
			} else {
				shared[i] += m.Leak * v
			}
		}
	}
	return Output{Weights: ones(t), Shared: shared}, nil
}

// openUniform returns a uniform draw from the open interval (0, 1): the
// midpoints of the 2⁵³ equal cells of [0, 1).
func openUniform(rng *rand.Rand) float64 {
	return (float64(rng.Uint64()>>11) + 0.5) * 0x1p-53
}
