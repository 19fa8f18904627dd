package learners

import (
	"fmt"
	"math"

	"github.com/medusa-ml/medusa/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Optimisers on a device. When a learner's graphs run on a Device, Adam
// and SGD update the parameters there: the gradients never leave the
// device, the optimiser's state (Adam's moments, SGD's momentum) stays on
// it between steps, and each step downloads the updated parameters, so
// that the learner's Params are current after every Step, and one scalar
// per parameter, the count of non-finite gradient elements. The state is
// copied back to the host when it is saved or used there.

// deviceOptimizer is an Optimizer that can also update parameters whose
// gradients a device plan holds.
type deviceOptimizer interface {
	Optimizer
	updateOnDevice(u *deviceUpdate) error
}

var (
	_ deviceOptimizer = (*Adam)(nil)
	_ deviceOptimizer = (*SGD)(nil)
)

// deviceUpdate is one optimiser step on the device of plan.
type deviceUpdate struct {
	plan   *graph.Plan
	params *graph.Params
	inputs G.Nodes            // the parameters' input nodes, in params' order
	grads  G.Nodes            // their gradients
	what   func(i int) string // names gradient i in a NonFiniteError
	step   int                // the learner's step, for errors
}

// deviceState is an optimiser's side of a device: its state tensors there
// (float64, in the order of the host's), the kernels that check and
// update each parameter, and whether the host's copy of the state is
// behind.
type deviceState struct {
	dev      graph.Device
	layout   string
	state    [][]graph.Buffer // [state tensor][parameter]
	update   []graph.Kernel
	check    []graph.Kernel
	count    graph.Buffer         // float64 scalar
	hyper    graph.Buffer         // float64 hyper-parameters
	ahead    bool                 // the device's state is newer than the host's
	counted  []float64            // one element, reused
	momentum int                  // SGD: whether the kernels were prepared with momentum
	own      map[int]graph.Buffer // parameters the plan does not hold
}

// layoutOf describes the parameters' shapes and types.
func layoutOf(p *graph.Params) string {
	s := ""
	for i := 0; i < p.Len(); i++ {
		v := p.At(i).Value
		s += fmt.Sprintf("%v%v;", v.Shape(), v.Dtype())
	}
	return s
}

// prepare makes the device state fit u's device and parameters: on first
// use, or when either changed, it uploads the host's state (host[k][i],
// one float64 slice per state tensor k and parameter i) and prepares the
// kernels of kind with hyper hyper-parameters and attributes attr.
func (d *deviceState) prepare(u *deviceUpdate, host [][][]float64, kind string, hyper int, attr map[string]int) error {
	dev, layout := u.plan.Device(), layoutOf(u.params)
	if d.dev == dev && d.layout == layout && d.state != nil {
		return nil
	}
	if err := d.sync(host); err != nil {
		return err
	}
	d.release()
	d.dev, d.layout = dev, layout
	alloc := func(n int) (graph.Buffer, error) { return dev.Alloc(tensor.Float64, n) }
	var err error
	if d.count, err = alloc(1); err != nil {
		return err
	}
	if d.hyper, err = alloc(hyper); err != nil {
		return err
	}
	d.state = make([][]graph.Buffer, len(host))
	for k, tensors := range host {
		for _, t := range tensors {
			b, err := alloc(len(t))
			if err != nil {
				return err
			}
			if err := dev.Upload(b, t); err != nil {
				return err
			}
			d.state[k] = append(d.state[k], b)
		}
	}
	for i := 0; i < u.params.Len(); i++ {
		v := u.params.At(i).Value
		dt, s := v.Dtype(), v.Shape()
		check, err := dev.Kernel(graph.OpSpec{Kind: "nonfinite", Dtype: tensor.Float64, In: []tensor.Shape{s},
			Dtypes: []tensor.Dtype{dt}, Out: tensor.ScalarShape()})
		if err != nil {
			return err
		}
		in := []tensor.Shape{s}
		dts := []tensor.Dtype{dt}
		for range host {
			in, dts = append(in, s), append(dts, tensor.Float64)
		}
		update, err := dev.Kernel(graph.OpSpec{Kind: kind, Dtype: dt, In: append(in, tensor.Shape{hyper}),
			Dtypes: append(dts, tensor.Float64), Out: s, Attr: attr})
		if err != nil {
			return err
		}
		d.check, d.update = append(d.check, check), append(d.update, update)
	}
	d.counted = make([]float64, 1)
	return nil
}

// checkFinite fails, before anything changes, if a gradient holds a NaN or
// an infinity.
func (d *deviceState) checkFinite(u *deviceUpdate) error {
	for i, g := range u.grads {
		b, err := u.plan.Buffer(g)
		if err != nil {
			return err
		}
		if err := d.check[i].Run(d.count, []graph.Buffer{b}); err != nil {
			return err
		}
		if err := d.dev.Download(d.counted, d.count); err != nil {
			return err
		}
		if d.counted[0] != 0 {
			return &NonFiniteError{Step: u.step, What: u.what(i)}
		}
	}
	return nil
}

// run updates every parameter on the device with hyper-parameters h and
// downloads it into u.params.
func (d *deviceState) run(u *deviceUpdate, h []float64) error {
	if err := d.dev.Upload(d.hyper, h); err != nil {
		return err
	}
	d.ahead = true
	for i := range u.grads {
		x, err := d.param(u, i)
		if err != nil {
			return err
		}
		g, err := u.plan.Buffer(u.grads[i])
		if err != nil {
			return err
		}
		args := []graph.Buffer{g}
		for k := range d.state {
			args = append(args, d.state[k][i])
		}
		if err := d.update[i].Run(x, append(args, d.hyper)); err != nil {
			return err
		}
		if err := d.dev.Download(u.params.At(i).Value.Data(), x); err != nil {
			return err
		}
	}
	return nil
}

// param returns the device buffer of parameter i: the plan's, or, for a
// parameter no output depends on (its gradient is zero), one of the
// state's own, uploaded.
func (d *deviceState) param(u *deviceUpdate, i int) (graph.Buffer, error) {
	if u.plan.Has(u.inputs[i]) {
		return u.plan.Buffer(u.inputs[i])
	}
	if d.own == nil {
		d.own = make(map[int]graph.Buffer)
	}
	v := u.params.At(i).Value
	b, ok := d.own[i]
	if !ok {
		var err error
		if b, err = d.dev.Alloc(v.Dtype(), v.Shape().TotalSize()); err != nil {
			return nil, err
		}
		d.own[i] = b
	}
	return b, d.dev.Upload(b, v.Data())
}

// sync copies the device's state into host when it is ahead.
func (d *deviceState) sync(host [][][]float64) error {
	if !d.ahead {
		return nil
	}
	for k := range d.state {
		for i, b := range d.state[k] {
			if err := d.dev.Download(host[k][i], b); err != nil {
				return fmt.Errorf("learners: copying the optimiser's state from %s: %v", d.dev, err)
			}
		}
	}
	d.ahead = false
	return nil
}

// release frees the device state; the host's copy is then the state.
func (d *deviceState) release() {
	if d.dev == nil {
		return
	}
	for _, b := range []graph.Buffer{d.count, d.hyper} {
		if b != nil {
			d.dev.Free(b)
		}
	}
	for _, b := range d.own {
		d.dev.Free(b)
	}
	for _, bs := range d.state {
		for _, b := range bs {
			d.dev.Free(b)
		}
	}
	for _, k := range append(d.update, d.check...) {
		if c, ok := k.(interface{ Close() error }); ok {
			c.Close()
		}
	}
	*d = deviceState{}
}

// updateOnDevice implements deviceOptimizer.
func (a *Adam) updateOnDevice(u *deviceUpdate) error {
	lr, b1, b2, eps := orDefault(a.LR, 1e-3), orDefault(a.Beta1, 0.9), orDefault(a.Beta2, 0.999), orDefault(a.Eps, 1e-8)
	if a.m == nil {
		a.m, a.v = zerosFor(u.params), zerosFor(u.params)
	}
	if !fits(a.m, u.params) {
		return fmt.Errorf("learners: Adam: parameters changed shape since the first update; use a new Adam")
	}
	if err := a.dev.prepare(u, a.state(), "adam", 6, nil); err != nil {
		return err
	}
	if err := a.dev.checkFinite(u); err != nil {
		return err
	}
	step := a.step + 1
	h := []float64{lr, b1, b2, eps, 1 - math.Pow(b1, float64(step)), 1 - math.Pow(b2, float64(step))}
	if err := a.dev.run(u, h); err != nil {
		return err
	}
	a.step = step
	return nil
}

// updateOnDevice implements deviceOptimizer.
func (s *SGD) updateOnDevice(u *deviceUpdate) error {
	momentum := 0
	var state [][][]float64 // no state without momentum
	if s.Momentum != 0 {
		momentum = 1
		if s.vel == nil {
			s.vel = zerosFor(u.params)
		}
		state = [][][]float64{s.vel}
	}
	if s.vel != nil && !fits(s.vel, u.params) {
		return fmt.Errorf("learners: SGD: parameters changed shape since the first update; use a new SGD")
	}
	if s.dev.layout != "" && s.dev.momentum != momentum {
		if err := s.dev.sync(s.state()); err != nil {
			return err
		}
		s.dev.release() // Momentum was changed: prepare anew
	}
	s.dev.momentum = momentum
	if err := s.dev.prepare(u, state, "sgd", 2, map[string]int{"momentum": momentum}); err != nil {
		return err
	}
	if err := s.dev.checkFinite(u); err != nil {
		return err
	}
	return s.dev.run(u, []float64{orDefault(s.LR, 1e-3), s.Momentum})
}

// zerosFor returns a zero float64 slice of each parameter's size.
func zerosFor(p *graph.Params) [][]float64 {
	out := make([][]float64, p.Len())
	for i := range out {
		out[i] = make([]float64, p.At(i).Value.Shape().TotalSize())
	}
	return out
}

// fits reports whether state has one slice of each parameter's size.
func fits(state [][]float64, p *graph.Params) bool {
	if len(state) != p.Len() {
		return false
	}
	for i, s := range state {
		if len(s) != p.At(i).Value.Shape().TotalSize() {
			return false
		}
	}
	return true
}

// state returns Adam's state tensors as the device state orders them.
func (a *Adam) state() [][][]float64 { return [][][]float64{a.m, a.v} }

// state returns SGD's state tensors as the device state orders them.
func (s *SGD) state() [][][]float64 {
	if s.vel == nil {
		return nil
	}
	return [][][]float64{s.vel}
}

// toHost brings the optimiser's state from the device, where it is newer,
// and lets go of the device's copy when the host is about to change it.
func (d *deviceState) toHost(host [][][]float64, release bool) error {
	if err := d.sync(host); err != nil {
		return err
	}
	if release {
		d.release()
	}
	return nil
}
