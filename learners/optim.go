package learners

import (
	"fmt"
	"math"

	"github.com/medusa-ml/medusa/graph"
	"gorgonia.org/tensor"
)

// Optimizer updates parameters from their gradients, given in the
// parameters' order as float64s.
type Optimizer interface {
	// Update applies one step of grads, one slice per parameter of p in
	// order. It must not keep grads: learners reuse them.
	Update(p *graph.Params, grads [][]float64) error
}

// Adam is the optimiser of Kingma and Ba (2015), in the form PyTorch's
// torch.optim.Adam implements (bias-corrected moments, ε added to the
// square root). Its zero value uses LR 1e-3, Beta1 0.9, Beta2 0.999, Eps
// 1e-8. Its moment state is kept between calls and sized on the first one.
type Adam struct {
	LR, Beta1, Beta2, Eps float64

	step int
	m, v [][]float64
	dev  deviceState // on a device (device.go)
}

// SGD is stochastic gradient descent with optional momentum (PyTorch's
// convention: v ← μv + g, p ← p − lr·v). Its zero value uses LR 1e-3 and no
// momentum.
type SGD struct {
	LR, Momentum float64

	vel [][]float64
	dev deviceState // on a device (device.go)
}

var (
	_ Optimizer = (*Adam)(nil)
	_ Optimizer = (*SGD)(nil)
)

// sameSizes reports whether state has one slice of each gradient's length.
func sameSizes(state, grads [][]float64) bool {
	if len(state) != len(grads) {
		return false
	}
	for i := range state {
		if len(state[i]) != len(grads[i]) {
			return false
		}
	}
	return true
}

func checkGrads(p *graph.Params, grads [][]float64) error {
	if len(grads) != p.Len() {
		return fmt.Errorf("learners: %d gradients for %d parameters", len(grads), p.Len())
	}
	for i, g := range grads {
		if n := p.At(i).Value.Shape().TotalSize(); len(g) != n {
			return fmt.Errorf("learners: gradient of %s has %d values, want %d", p.At(i).Name, len(g), n)
		}
	}
	return nil
}

func orDefault(v, d float64) float64 {
	if v == 0 {
		return d
	}
	return v
}

func zerosLike(grads [][]float64) [][]float64 {
	out := make([][]float64, len(grads))
	for i, g := range grads {
		out[i] = make([]float64, len(g))
	}
	return out
}

// Update implements Optimizer.
func (a *Adam) Update(p *graph.Params, grads [][]float64) error {
	if err := checkGrads(p, grads); err != nil {
		return err
	}
	if err := a.dev.toHost(true); err != nil {
		return err
	}
	lr, b1, b2, eps := orDefault(a.LR, 1e-3), orDefault(a.Beta1, 0.9), orDefault(a.Beta2, 0.999), orDefault(a.Eps, 1e-8)
	if a.m == nil {
		a.m, a.v = zerosLike(grads), zerosLike(grads)
	}
	if !sameSizes(a.m, grads) {
		return fmt.Errorf("learners: Adam: parameters changed shape since the first update; use a new Adam")
	}
	a.step++
	c1 := 1 - math.Pow(b1, float64(a.step))
	c2 := 1 - math.Pow(b2, float64(a.step))
	for i, g := range grads {
		m, v := a.m[i], a.v[i]
		update(p.At(i).Value, func(j int, x float64) float64 {
			m[j] = b1*m[j] + (1-b1)*g[j]
			v[j] = b2*v[j] + (1-b2)*g[j]*g[j]
			return x - lr*(m[j]/c1)/(math.Sqrt(v[j]/c2)+eps)
		})
	}
	return nil
}

// Update implements Optimizer.
func (s *SGD) Update(p *graph.Params, grads [][]float64) error {
	if err := checkGrads(p, grads); err != nil {
		return err
	}
	if err := s.dev.toHost(true); err != nil {
		return err
	}
	lr := orDefault(s.LR, 1e-3)
	if s.Momentum != 0 && s.vel == nil {
		s.vel = zerosLike(grads)
	}
	if s.vel != nil && !sameSizes(s.vel, grads) {
		return fmt.Errorf("learners: SGD: parameters changed shape since the first update; use a new SGD")
	}
	for i, g := range grads {
		update(p.At(i).Value, func(j int, x float64) float64 {
			d := g[j]
			if s.Momentum != 0 {
				s.vel[i][j] = s.Momentum*s.vel[i][j] + d
				d = s.vel[i][j]
			}
			return x - lr*d
		})
	}
	return nil
}

// update replaces each element x_j of t (float32 or float64) by f(j, x_j),
// computing in float64.
func update(t *tensor.Dense, f func(j int, x float64) float64) {
	switch t.Dtype() {
	case tensor.Float64:
		d := t.Float64s()
		for j, x := range d {
			d[j] = f(j, x)
		}
	case tensor.Float32:
		d := t.Float32s()
		for j, x := range d {
			d[j] = float32(f(j, float64(x)))
		}
	}
}
