package learners

import (
	"fmt"
	"math"
	"strconv"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/weighting"
	"gorgonia.org/tensor"
)

var (
	_ graph.Stateful = (*Adam)(nil)
	_ graph.Stateful = (*SGD)(nil)
	_ graph.Stateful = (*MAML)(nil)
	_ graph.Stateful = (*MTL)(nil)
	_ graph.Stateful = (*Reptile)(nil)
)

// saveVectors stores each slice of vs as a float64 tensor named
// prefix+"i".
func saveVectors(c *graph.Checkpoint, prefix string, vs [][]float64) error {
	for i, v := range vs {
		t, err := graph.NewTensor(tensor.Float64, []int{max(len(v), 1)}, v)
		if len(v) == 0 {
			return fmt.Errorf("learners: state %s%d is empty", prefix, i)
		}
		if err != nil {
			return err
		}
		if err := c.State.Add(prefix+strconv.Itoa(i), t); err != nil {
			return err
		}
	}
	return nil
}

// loadVectors reads n vectors saved by saveVectors, checking each is
// finite.
func loadVectors(c *graph.Checkpoint, prefix string, n int) ([][]float64, error) {
	out := make([][]float64, n)
	for i := range out {
		v, err := c.Float64sState(prefix+strconv.Itoa(i), -1)
		if err != nil {
			return nil, err
		}
		for j, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("learners: checkpoint state %s%d[%d] is %v", prefix, i, j, x)
			}
		}
		out[i] = v
	}
	return out, nil
}

// SaveState records Adam's step count and moments (as PyTorch names them,
// exp_avg and exp_avg_sq, one float64 tensor per parameter in order) under
// prefix.
func (a *Adam) SaveState(prefix string, c *graph.Checkpoint) error {
	if err := a.dev.toHost(false); err != nil {
		return err
	}
	c.Meta[prefix+"kind"] = "adam"
	c.Meta[prefix+"step"] = strconv.Itoa(a.step)
	c.Meta[prefix+"params"] = strconv.Itoa(len(a.m))
	if err := saveVectors(c, prefix+"exp_avg.", a.m); err != nil {
		return err
	}
	return saveVectors(c, prefix+"exp_avg_sq.", a.v)
}

// LoadState restores what SaveState recorded. The hyper-parameters (LR,
// betas, ε) are not part of the state: they come from the caller.
func (a *Adam) LoadState(prefix string, c *graph.Checkpoint) error {
	if k := c.Meta[prefix+"kind"]; k != "adam" {
		return fmt.Errorf("learners: checkpoint optimiser %q is %q, want adam", prefix, k)
	}
	step, err := c.MetaInt(prefix + "step")
	if err != nil {
		return err
	}
	n, err := c.MetaInt(prefix + "params")
	if err != nil {
		return err
	}
	if step < 0 || n < 0 || n > c.State.Len() {
		return fmt.Errorf("learners: checkpoint optimiser %q: step %d, %d parameters", prefix, step, n)
	}
	m, err := loadVectors(c, prefix+"exp_avg.", n)
	if err != nil {
		return err
	}
	v, err := loadVectors(c, prefix+"exp_avg_sq.", n)
	if err != nil {
		return err
	}
	if !sameSizes(m, v) {
		return fmt.Errorf("learners: checkpoint optimiser %q: moments of different sizes", prefix)
	}
	a.dev.reset() // the loaded state replaces the device's, even a lost one
	a.step, a.m, a.v = step, m, v
	if n == 0 {
		a.m, a.v = nil, nil
	}
	return nil
}

// SaveState records SGD's momentum buffers under prefix.
func (s *SGD) SaveState(prefix string, c *graph.Checkpoint) error {
	if err := s.dev.toHost(false); err != nil {
		return err
	}
	c.Meta[prefix+"kind"] = "sgd"
	c.Meta[prefix+"params"] = strconv.Itoa(len(s.vel))
	return saveVectors(c, prefix+"momentum_buffer.", s.vel)
}

// LoadState restores what SaveState recorded.
func (s *SGD) LoadState(prefix string, c *graph.Checkpoint) error {
	if k := c.Meta[prefix+"kind"]; k != "sgd" {
		return fmt.Errorf("learners: checkpoint optimiser %q is %q, want sgd", prefix, k)
	}
	n, err := c.MetaInt(prefix + "params")
	if err != nil {
		return err
	}
	if n < 0 || n > c.State.Len() {
		return fmt.Errorf("learners: checkpoint optimiser %q: %d parameters", prefix, n)
	}
	vel, err := loadVectors(c, prefix+"momentum_buffer.", n)
	if err != nil {
		return err
	}
	s.dev.reset() // the loaded state replaces the device's, even a lost one
	s.vel = vel
	if n == 0 {
		s.vel = nil
	}
	return nil
}

// saveOptimizer records o's state if it has any.
func saveOptimizer(o Optimizer, prefix string, c *graph.Checkpoint) error {
	if s, ok := o.(graph.Stateful); ok {
		return s.SaveState(prefix, c)
	}
	return nil
}

func loadOptimizer(o Optimizer, prefix string, c *graph.Checkpoint) error {
	if s, ok := o.(graph.Stateful); ok {
		return s.LoadState(prefix, c)
	}
	return nil
}

// SaveState records the step count and the optimiser's state (under
// prefix+"optim."). The parameters themselves are c.Params.
func (m *MAML) SaveState(prefix string, c *graph.Checkpoint) error {
	c.Meta[prefix+"step"] = strconv.Itoa(m.steps)
	if m.Optimizer == nil {
		m.Optimizer = &Adam{}
	}
	return saveOptimizer(m.Optimizer, prefix+"optim.", c)
}

// LoadState restores what SaveState recorded; m.Optimizer must be of the
// kind that was saved (Adam by default).
func (m *MAML) LoadState(prefix string, c *graph.Checkpoint) error {
	n, err := c.MetaInt(prefix + "step")
	if err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("learners: checkpoint %sstep is %d, want at least 0", prefix, n)
	}
	if m.Optimizer == nil {
		m.Optimizer = &Adam{}
	}
	if err := loadOptimizer(m.Optimizer, prefix+"optim.", c); err != nil {
		return err
	}
	m.steps = max(n, 0)
	return nil
}

// SaveState records the step count, the outer optimiser's state over θ
// and the rates (under prefix+"optim.") and the rates α, as state tensors
// named prefix + their own names ("lr.layers.0.weight", ...). The
// parameters θ themselves are c.Params.
func (s *MetaSGD) SaveState(prefix string, c *graph.Checkpoint) error {
	if err := s.prepare(); err != nil {
		return err
	}
	if err := s.MAML.SaveState(prefix, c); err != nil {
		return err
	}
	c.Meta[prefix+"lrs"] = strconv.Itoa(s.LRs.Len())
	for i := 0; i < s.LRs.Len(); i++ {
		q := s.LRs.At(i)
		if err := c.State.Add(prefix+q.Name, q.Value); err != nil {
			return err
		}
	}
	return nil
}

// LoadState restores what SaveState recorded. s.Params must hold θ (the
// checkpoint's parameters); the rates are created if s.LRs is nil and
// overwritten; s.Optimizer must be of the kind that was saved (Adam by
// default).
func (s *MetaSGD) LoadState(prefix string, c *graph.Checkpoint) error {
	n, err := c.MetaInt(prefix + "lrs")
	if err != nil {
		return err
	}
	if err := s.prepare(); err != nil {
		return err
	}
	if n != s.LRs.Len() {
		return fmt.Errorf("learners: checkpoint holds %d inner rate tensors, model has %d parameters", n, s.LRs.Len())
	}
	lrs := make([][]float64, n)
	for i := range lrs {
		q := s.LRs.At(i)
		if lrs[i], err = c.Float64sState(prefix+q.Name, q.Value.Shape().TotalSize()); err != nil {
			return err
		}
		if !graph.AllFinite(lrs[i]) {
			return fmt.Errorf("learners: checkpoint state %s%s is not finite", prefix, q.Name)
		}
	}
	if err := s.MAML.LoadState(prefix, c); err != nil {
		return err
	}
	for i, v := range lrs {
		if err := setValues(s.LRs.At(i).Value, v); err != nil {
			return fmt.Errorf("learners: restoring %s: %v", s.LRs.At(i).Name, err)
		}
	}
	return nil
}

// SaveState records the step count, which fixes the annealing of the
// outer step ε, and the inner Adam state carried between Steps (its step
// count under prefix+"inner_adam.step", its moments as state tensors
// prefix+"inner_adam.exp_avg.i" and ...exp_avg_sq.i). The random
// generator in Rand is the caller's to save; the parameters are c.Params.
func (r *Reptile) SaveState(prefix string, c *graph.Checkpoint) error {
	c.Meta[prefix+"step"] = strconv.Itoa(r.steps)
	if r.adam == nil {
		c.Meta[prefix+"inner_adam.params"] = "0"
		return nil
	}
	c.Meta[prefix+"inner_adam.params"] = strconv.Itoa(len(r.adam.m))
	c.Meta[prefix+"inner_adam.step"] = strconv.Itoa(r.adam.step)
	if err := saveVectors(c, prefix+"inner_adam.exp_avg.", r.adam.m); err != nil {
		return err
	}
	return saveVectors(c, prefix+"inner_adam.exp_avg_sq.", r.adam.v)
}

// LoadState restores what SaveState recorded. The settings (rates,
// schedule, InnerAdam) come from the caller; r.Params must hold the
// checkpoint's parameters when the inner Adam state is not empty.
func (r *Reptile) LoadState(prefix string, c *graph.Checkpoint) error {
	step, err := c.MetaInt(prefix + "step")
	if err != nil {
		return err
	}
	if step < 0 {
		return fmt.Errorf("learners: checkpoint %sstep is %d, want at least 0", prefix, step)
	}
	n, err := c.MetaInt(prefix + "inner_adam.params")
	if err != nil {
		return err
	}
	if step < 0 || n < 0 || n > c.State.Len() {
		return fmt.Errorf("learners: checkpoint Reptile state %q: step %d, %d inner Adam tensors", prefix, step, n)
	}
	var adam *innerMoments
	if n > 0 {
		if r.Params == nil || n != r.Params.Len() {
			return fmt.Errorf("learners: checkpoint holds inner Adam state for %d parameters, not for Reptile.Params", n)
		}
		k, err := c.MetaInt(prefix + "inner_adam.step")
		if err != nil {
			return err
		}
		m, err := loadVectors(c, prefix+"inner_adam.exp_avg.", n)
		if err != nil {
			return err
		}
		v, err := loadVectors(c, prefix+"inner_adam.exp_avg_sq.", n)
		if err != nil {
			return err
		}
		if k < 1 || !fitsParams(m, r.Params) || !fitsParams(v, r.Params) {
			return fmt.Errorf("learners: checkpoint inner Adam state (step %d) does not fit Reptile.Params", k)
		}
		adam = &innerMoments{step: k, m: m, v: v}
	}
	r.steps, r.adam = step, adam
	return nil
}

// SaveState records the step count, the optimisers' states (under
// prefix+"optim." and prefix+"weighting_optim."), the weighting method's
// learned parameters (as state tensors under their own names) and its
// other state. The random generator in Rand is the caller's to save: its
// source is not reachable from a *rand.Rand.
func (m *MTL) SaveState(prefix string, c *graph.Checkpoint) error {
	c.Meta[prefix+"step"] = strconv.Itoa(m.steps)
	if m.Optimizer == nil {
		m.Optimizer = &Adam{}
	}
	if err := saveOptimizer(m.Optimizer, prefix+"optim.", c); err != nil {
		return err
	}
	method := m.method()
	c.Meta[prefix+"weighting"] = method.Name()
	if l, ok := method.(weighting.Learned); ok {
		p := l.Params()
		for i := 0; i < p.Len(); i++ {
			if err := c.State.Add(p.At(i).Name, p.At(i).Value); err != nil {
				return err
			}
		}
		if err := saveOptimizer(m.weightingOptimizer(), prefix+"weighting_optim.", c); err != nil {
			return err
		}
	}
	if s, ok := method.(weighting.StateMarshaler); ok {
		b, err := s.MarshalState()
		if err != nil {
			return fmt.Errorf("learners: saving %s's state: %v", method.Name(), err)
		}
		c.Meta[prefix+"weighting_state"] = string(b)
	}
	return nil
}

// LoadState restores what SaveState recorded into m, whose Weighting must
// be a method of the saved name and whose optimisers must be of the saved
// kinds.
func (m *MTL) LoadState(prefix string, c *graph.Checkpoint) error {
	n, err := c.MetaInt(prefix + "step")
	if err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("learners: checkpoint %sstep is %d, want at least 0", prefix, n)
	}
	if m.Optimizer == nil {
		m.Optimizer = &Adam{}
	}
	if err := loadOptimizer(m.Optimizer, prefix+"optim.", c); err != nil {
		return err
	}
	method := m.method()
	if w := c.Meta[prefix+"weighting"]; w != method.Name() {
		return fmt.Errorf("learners: checkpoint was trained with weighting %q, not %q", w, method.Name())
	}
	if l, ok := method.(weighting.Learned); ok {
		p := l.Params()
		for i := 0; i < p.Len(); i++ {
			name := p.At(i).Name
			v, err := c.Float64sState(name, p.At(i).Value.Shape().TotalSize())
			if err != nil {
				return err
			}
			if err := setValues(p.At(i).Value, v); err != nil {
				return fmt.Errorf("learners: restoring %s: %v", name, err)
			}
		}
		if err := loadOptimizer(m.weightingOptimizer(), prefix+"weighting_optim.", c); err != nil {
			return err
		}
	}
	if s, ok := method.(weighting.StateMarshaler); ok {
		b, ok := c.Meta[prefix+"weighting_state"]
		if !ok {
			return fmt.Errorf("learners: checkpoint has no state for weighting %s", method.Name())
		}
		if err := s.UnmarshalState([]byte(b)); err != nil {
			return fmt.Errorf("learners: restoring %s's state: %v", method.Name(), err)
		}
	}
	m.steps = max(n, 0)
	return nil
}

// setValues copies v into t, converting to t's dtype.
func setValues(t *tensor.Dense, v []float64) error {
	if t.Shape().TotalSize() != len(v) {
		return fmt.Errorf("%d values for %d", len(v), t.Shape().TotalSize())
	}
	switch d := t.Data().(type) {
	case []float64:
		copy(d, v)
	case []float32:
		for i, x := range v {
			d[i] = float32(x)
		}
	default:
		return fmt.Errorf("unsupported data %T", d)
	}
	return nil
}
