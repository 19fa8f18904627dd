package weighting

import "sync"

// scratch holds PCGrad's projected gradient between calls.
var scratch = sync.Pool{New: func() any { return new([]float64) }}

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
	dots(sq, in.Grads, in.Grads)
	shared := make([]float64, d)
	order := make([]int, t)
	c := make([]float64, t)
	xs, ys := make([][]float64, t), make([][]float64, t)
	pp := scratch.Get().(*[]float64)
	defer scratch.Put(pp)
	if cap(*pp) < d {
		*pp = make([]float64, d)
	}
	p := (*pp)[:d]
	for _, gi := range in.Grads {
		copy(p, gi)
		for k := range order {
			order[k] = k
		}
		in.Rand.Shuffle(t, func(a, b int) { order[a], order[b] = order[b], order[a] })
		// Project p off each gradient in turn that conflicts with it. The
		// inner products with all the gradients still to visit are
		// computed together, and again only after p changes.
		rest := order
		for len(rest) > 0 {
			for k, j := range rest {
				xs[k], ys[k] = p, in.Grads[j]
			}
			dots(c[:len(rest)], xs[:len(rest)], ys[:len(rest)])
			k := 0
			for k < len(rest) {
				j := rest[k]
				k++
				if c[k-1] < 0 && sq[j] > 0 {
					f := c[k-1] / sq[j]
					gj := in.Grads[j]
					for i := range p {
						p[i] -= float64(f * gj[i])
					}
					break
				}
			}
			rest = rest[k:]
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
