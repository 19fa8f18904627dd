package learners

import (
	"errors"
	"fmt"
	"io"
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
	// updateOnDevice takes one step on the device of u.plan. It reports
	// false, having changed nothing, when the device does not run the
	// optimiser: the caller then updates on the host.
	updateOnDevice(u *deviceUpdate) (bool, error)
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
	dev     graph.Device
	key     string           // the parameters' layout, the kind and its attributes
	state   [][]graph.Buffer // [state tensor][parameter]
	update  []graph.Kernel
	check   []graph.Kernel
	counts  []graph.Buffer       // per parameter, its non-finite count (float64 scalar)
	hyper   graph.Buffer         // float64 hyper-parameters
	own     map[int]graph.Buffer // parameters the plan does not hold
	scratch []any                // per parameter, where its update is downloaded
	counted []float64            // one element, reused
	host    [][][]float64        // the host's state tensors the device's mirror
	ahead   bool                 // the device's state is newer than the host's

	refused graph.Device // a device that does not run the optimiser
	lost    error        // the state was lost on the device; only LoadState clears it
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
// kernels of kind with hyper hyper-parameters and attributes attr. It
// reports false when the device does not run kind.
func (d *deviceState) prepare(u *deviceUpdate, host [][][]float64, kind string, hyper int, attr map[string]int) (bool, error) {
	if d.lost != nil {
		return false, d.lost
	}
	dev := u.plan.Device()
	if dev == d.refused {
		return false, nil
	}
	key := fmt.Sprintf("%s|%s%v", layoutOf(u.params), kind, attr)
	if d.dev == dev && d.key == key && d.state != nil {
		return true, nil
	}
	if err := d.sync(); err != nil {
		return false, err
	}
	d.release()
	if err := d.build(u, dev, host, kind, hyper, attr); err != nil {
		d.release()
		if errors.Is(err, graph.ErrUnsupported) {
			d.refused = dev
			return false, nil
		}
		return false, err
	}
	d.key = key
	return true, nil
}

// build allocates the state, uploads it and prepares the kernels.
func (d *deviceState) build(u *deviceUpdate, dev graph.Device, host [][][]float64, kind string, hyper int, attr map[string]int) error {
	d.dev = dev
	alloc := func(n int) (graph.Buffer, error) { return dev.Alloc(tensor.Float64, n) }
	var err error
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
			d.state[k] = append(d.state[k], b)
			if err := dev.Upload(b, t); err != nil {
				return err
			}
		}
	}
	for i := 0; i < u.params.Len(); i++ {
		v := u.params.At(i).Value
		dt, s := v.Dtype(), v.Shape()
		count, err := alloc(1)
		if err != nil {
			return err
		}
		d.counts = append(d.counts, count)
		check, err := dev.Kernel(graph.OpSpec{Kind: "nonfinite", Dtype: tensor.Float64, In: []tensor.Shape{s},
			Dtypes: []tensor.Dtype{dt}, Out: tensor.ScalarShape()})
		if err != nil {
			return err
		}
		d.check = append(d.check, check)
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
		d.update = append(d.update, update)
		switch dt {
		case tensor.Float32:
			d.scratch = append(d.scratch, make([]float32, s.TotalSize()))
		case tensor.Float64:
			d.scratch = append(d.scratch, make([]float64, s.TotalSize()))
		default:
			return fmt.Errorf("learners: parameter %s is %v: %w", u.params.At(i).Name, dt, graph.ErrUnsupported)
		}
	}
	d.counted, d.host = make([]float64, 1), host
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
		if err := d.check[i].Run(d.counts[i], []graph.Buffer{b}); err != nil {
			return err
		}
	}
	for i := range u.grads {
		if err := d.dev.Download(d.counted, d.counts[i]); err != nil {
			return err
		}
		if d.counted[0] != 0 {
			return &NonFiniteError{Step: u.step, What: u.what(i)}
		}
	}
	return nil
}

// run updates every parameter on the device with hyper-parameters h and
// copies the results into u.params, all or nothing: on an error the
// host's parameters are as they were, and the optimiser's state, which
// may be half updated on the device, is lost (until LoadState).
func (d *deviceState) run(u *deviceUpdate, h []float64) error {
	if err := d.dev.Upload(d.hyper, h); err != nil {
		return err
	}
	d.ahead = true
	fail := func(err error) error {
		d.lost = fmt.Errorf("learners: step %d failed on %s after the optimiser's state began to change there, so it is lost: load a checkpoint to go on: %v", u.step, d.dev, err)
		return d.lost
	}
	xs := make([]graph.Buffer, len(u.grads))
	for i := range u.grads {
		x, err := d.param(u, i)
		if err != nil {
			return fail(err)
		}
		g, err := u.plan.Buffer(u.grads[i])
		if err != nil {
			return fail(err)
		}
		args := []graph.Buffer{g}
		for k := range d.state {
			args = append(args, d.state[k][i])
		}
		if err := d.update[i].Run(x, append(args, d.hyper)); err != nil {
			return fail(err)
		}
		xs[i] = x
	}
	for i, x := range xs {
		if err := d.dev.Download(d.scratch[i], x); err != nil {
			return fail(err)
		}
	}
	for i, x := range d.scratch {
		switch dst := u.params.At(i).Value.Data().(type) {
		case []float32:
			copy(dst, x.([]float32))
		case []float64:
			copy(dst, x.([]float64))
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

// sync copies the device's state into the host's when it is ahead.
func (d *deviceState) sync() error {
	if d.lost != nil {
		return d.lost
	}
	if !d.ahead {
		return nil
	}
	for k := range d.state {
		for i, b := range d.state[k] {
			if err := d.dev.Download(d.host[k][i], b); err != nil {
				d.lost = fmt.Errorf("learners: the optimiser's state is on %s and cannot be copied back, so it is lost: load a checkpoint to go on: %v", d.dev, err)
				d.release()
				return d.lost
			}
		}
	}
	d.ahead = false
	return nil
}

// toHost brings the optimiser's state from the device, where it is newer,
// and frees the device's copy when release is set (the host is about to
// change the state).
func (d *deviceState) toHost(release bool) error {
	if err := d.sync(); err != nil {
		return err
	}
	if release {
		d.release()
	}
	return nil
}

// release frees the device state; the host's copy is then the state. What
// the device refused and a lost state are kept.
func (d *deviceState) release() {
	refused, lost := d.refused, d.lost
	if d.dev != nil {
		bufs := append([]graph.Buffer{d.hyper}, d.counts...)
		for _, bs := range d.state {
			bufs = append(bufs, bs...)
		}
		for _, b := range d.own {
			bufs = append(bufs, b)
		}
		for _, b := range bufs {
			if b != nil {
				d.dev.Free(b)
			}
		}
		for _, k := range append(d.update, d.check...) {
			if c, ok := k.(io.Closer); ok {
				c.Close()
			}
		}
	}
	*d = deviceState{refused: refused, lost: lost}
}

// reset forgets the device state, lost or not: the host's state, just
// loaded, replaces it.
func (d *deviceState) reset() {
	d.release()
	*d = deviceState{}
}

// updateOnDevice implements deviceOptimizer.
func (a *Adam) updateOnDevice(u *deviceUpdate) (bool, error) {
	lr, b1, b2, eps := orDefault(a.LR, 1e-3), orDefault(a.Beta1, 0.9), orDefault(a.Beta2, 0.999), orDefault(a.Eps, 1e-8)
	if a.m == nil {
		a.m, a.v = zerosFor(u.params), zerosFor(u.params)
	}
	if !fits(a.m, u.params) {
		return true, fmt.Errorf("learners: Adam: parameters changed shape since the first update; use a new Adam")
	}
	if ok, err := a.dev.prepare(u, a.state(), "adam", 6, nil); !ok || err != nil {
		return ok || err != nil, err
	}
	if err := a.dev.checkFinite(u); err != nil {
		return true, err
	}
	step := a.step + 1
	h := []float64{lr, b1, b2, eps, 1 - math.Pow(b1, float64(step)), 1 - math.Pow(b2, float64(step))}
	if err := a.dev.run(u, h); err != nil {
		return true, err
	}
	a.step = step
	return true, nil
}

// updateOnDevice implements deviceOptimizer.
func (s *SGD) updateOnDevice(u *deviceUpdate) (bool, error) {
	momentum := 0
	if s.Momentum != 0 {
		momentum = 1
		if s.vel == nil {
			s.vel = zerosFor(u.params)
		}
	}
	if s.vel != nil && !fits(s.vel, u.params) {
		return true, fmt.Errorf("learners: SGD: parameters changed shape since the first update; use a new SGD")
	}
	state := s.state()
	if momentum == 0 {
		state = nil // no state tensor without momentum (vel, if any, is kept as it is)
	}
	if ok, err := s.dev.prepare(u, state, "sgd", 2, map[string]int{"momentum": momentum}); !ok || err != nil {
		return ok || err != nil, err
	}
	if err := s.dev.checkFinite(u); err != nil {
		return true, err
	}
	return true, s.dev.run(u, []float64{orDefault(s.LR, 1e-3), s.Momentum})
}

// Release copies Adam's state from the device it last ran on back to the
// host and frees the device's copy. Call it before closing that device
// while the optimiser is still in use, or to free the device's memory; a
// later update on a device copies the state there again.
func (a *Adam) Release() error { return a.dev.toHost(true) }

// Release copies SGD's momentum from the device it last ran on back to the
// host and frees the device's copy, as Adam.Release does.
func (s *SGD) Release() error { return s.dev.toHost(true) }

// releaser is an optimiser with device state to release.
type releaser interface{ Release() error }

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

// closeLearner closes a learner's plans (freeing their device buffers) and
// releases its optimisers' device state, keeping the first error.
func closeLearner[K comparable, P interface{ machine() *graph.Plan }](programs map[K]P, opts ...Optimizer) error {
	closePlans(programs)
	var first error
	for _, o := range opts {
		if r, ok := o.(releaser); ok {
			if err := r.Release(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// Close frees what m holds on its Device: the compiled graphs' buffers
// and the optimiser's state, which comes back to the host first. Call it
// before closing the Device; m remains usable, and compiles again on its
// next Step.
func (m *MAML) Close() error {
	err := closeLearner(m.programs, m.Optimizer)
	closeCk(m.ckPrograms)
	m.programs, m.ckPrograms, m.built, m.last = nil, nil, "", nil
	return err
}

// Close frees what r holds on its Device, as MAML.Close does.
func (r *Reptile) Close() error {
	err := closeLearner(r.programs)
	r.programs, r.built, r.last = nil, "", nil
	return err
}

// Close frees what m holds on its Device, as MAML.Close does.
func (m *MTL) Close() error {
	err := closeLearner(m.programs, m.Optimizer, m.WeightingOptimizer)
	m.programs, m.built, m.last = nil, "", nil
	return err
}
