package weighting

import "slices"

// PCGrad is projecting conflicting gradients (Yu, Kumar, Gupta, Levine,
// Hausman and Finn 2020, "Gradient Surgery for Multi-Task Learning"). For
// each task t, in turn, it walks the tasks in an order shuffled by
// Input.Rand (a new order for each t) and, whenever the projected gradient
// g′_t conflicts with task j's original gradient (g′_t·g_j < 0), removes
// the conflicting component:
//
//	g′_t ← g′_t − (g′_t·g_j/‖g_j‖²)·g_j.
//
// The shared gradient is Σ_t g′_t; the weights are 1. As in the paper's
// and LibMTL's code, the walk includes task t itself, which only matters
// if earlier projections have turned g′_t against g_t. The zero value is
// ready to use.
type PCGrad struct{}

var _ Method = PCGrad{}

// Name returns "pcgrad".
func (PCGrad) Name() string { return "pcgrad" }

// Needs returns SharedGrads.
func (PCGrad) Needs() Needs { return SharedGrads }

// Combine returns weights 1 and the projected shared gradient. It returns
// an *InputError for a wrong number of losses or gradients, gradients of
// different lengths, non-finite values, or a nil Input.Rand.
func (m PCGrad) Combine(in Input) (Output, error) {
	t, d, err := check(m.Name(), in, 0, true)
	if err != nil {
		return Output{}, err
	}
	if in.Rand == nil {
		return Output{}, inputErr(m.Name(), -1, "Input.Rand is nil; PCGrad shuffles the task order")
	}
	sq := make([]float64, t)
	for j, g := range in.Grads {
		sq[j] = dot(g, g)
	}
	shared := make([]float64, d)
	order := make([]int, t)
	for _, gi := range in.Grads {
		p := slices.Clone(gi)
		for k := range order {
			order[k] = k
		}
		in.Rand.Shuffle(t, func(a, b int) { order[a], order[b] = order[b], order[a] })
		for _, j := range order {
			gj := in.Grads[j]
			if c := dot(p, gj); c < 0 && sq[j] > 0 {
				f := c / sq[j]
				for k := range p {
					p[k] -= f * gj[k]
				}
			}
		}
		for k, v := range p {
			shared[k] += v
		}
	}
	w := make([]float64, t)
	for i := range w {
		w[i] = 1
	}
	return Output{Weights: w, Shared: shared}, nil
}
