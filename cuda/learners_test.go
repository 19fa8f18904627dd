package cuda

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/learners/weighting"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// testDevice is the device the learner tests compare with the CPU: a GPU
// when MEDUSA_TEST_DEVICE=cuda (or cuda:N), the CPU emulation otherwise.
func testDevice(t *testing.T) *Device {
	t.Helper()
	spec := os.Getenv("MEDUSA_TEST_DEVICE")
	if spec == "" || spec == "emulated" {
		return emulated(t)
	}
	var ordinal int
	if _, err := fmt.Sscanf(spec, "cuda:%d", &ordinal); err != nil && spec != "cuda" {
		t.Fatalf("MEDUSA_TEST_DEVICE=%q: want cuda, cuda:N or emulated", spec)
	}
	gpuOnce.Do(func() { gpuDev, gpuErr = Open(ordinal) })
	if gpuErr != nil {
		t.Fatalf("MEDUSA_TEST_DEVICE=%s: %v", spec, gpuErr)
	}
	return gpuDev
}

var (
	gpuOnce sync.Once
	gpuDev  *Device
	gpuErr  error
)

// counting is a Device that counts the kernels it prepared and the ops it
// refused, so that a test can tell the device did the work.
type counting struct {
	*Device
	kernels int
	kinds   map[string]int // the kernels prepared, by kind
	refused map[string]int
}

func (c *counting) Kernel(op graph.OpSpec) (graph.Kernel, error) {
	k, err := c.Device.Kernel(op)
	if err == nil {
		c.kernels++
		if c.kinds == nil {
			c.kinds = make(map[string]int)
		}
		c.kinds[op.Kind]++
	} else {
		if c.refused == nil {
			c.refused = make(map[string]int)
		}
		c.refused[op.Kind]++
	}
	return k, err
}

// check fails t unless the device prepared kernels and refused none.
func (c *counting) check(t *testing.T) {
	t.Helper()
	if c.kernels == 0 || len(c.refused) > 0 {
		t.Errorf("%d kernels on the device; refused %v", c.kernels, c.refused)
	}
}

// learnerTolerance is the acceptance bound on relative differences between
// device and CPU after a few steps.
func learnerTolerance(dt tensor.Dtype) float64 {
	if dt == tensor.Float32 {
		return 1e-4
	}
	return 1e-10
}

// agreement compares device and CPU results within a relative tolerance
// and keeps the largest relative difference seen, which report logs (the
// GPU check prints it).
type agreement struct {
	t     *testing.T
	tol   float64
	worst float64
}

func agree(t *testing.T, dt tensor.Dtype) *agreement {
	return &agreement{t: t, tol: learnerTolerance(dt)}
}

// value compares one number.
func (a *agreement) value(what string, cpu, dev float64) {
	a.t.Helper()
	d := math.Abs(cpu-dev) / math.Max(1, math.Abs(cpu))
	if d > a.tol || math.IsNaN(dev) != math.IsNaN(cpu) {
		a.t.Fatalf("%s: device %v, CPU %v", what, dev, cpu)
	}
	a.worst = math.Max(a.worst, d)
}

// params compares two parameter sets element by element.
func (a *agreement) params(what string, cpu, dev *graph.Params) {
	a.t.Helper()
	for i := 0; i < cpu.Len(); i++ {
		x, y := graph.Float64s(cpu.At(i).Value), graph.Float64s(dev.At(i).Value)
		for j := range x {
			a.value(fmt.Sprintf("%s: %s[%d]", what, cpu.At(i).Name, j), x[j], y[j])
		}
	}
}

// report logs the largest relative difference.
func (a *agreement) report() {
	a.t.Logf("largest relative difference from the CPU: %.2g (tolerance %g)", a.worst, a.tol)
}

// metaLearner is the part of the meta-learners these tests use.
type metaLearner interface {
	Step(context.Context, *tasks.Batch) (learners.Stats, error)
}

// TestMetaLearnersOnDevice takes three meta-training steps of every
// meta-learner on the device and on the CPU from the same start and
// batches, and checks losses and parameters agree: float32 within 1e-4
// relative, float64 within 1e-10.
func TestMetaLearnersOnDevice(t *testing.T) {
	type setup struct {
		name string
		make func(p *graph.Params, model nets.MLP, d graph.Device) metaLearner
	}
	setups := []setup{
		{"maml-1", func(p *graph.Params, m nets.MLP, d graph.Device) metaLearner {
			return &learners.MAML{Model: m, Params: p, Device: d}
		}},
		{"maml-5", func(p *graph.Params, m nets.MLP, d graph.Device) metaLearner {
			return &learners.MAML{Model: m, Params: p, InnerSteps: 5, Device: d}
		}},
		{"maml-sgd", func(p *graph.Params, m nets.MLP, d graph.Device) metaLearner {
			return &learners.MAML{Model: m, Params: p, Device: d, Optimizer: &learners.SGD{LR: 0.05}}
		}},
		{"maml-sgd-momentum", func(p *graph.Params, m nets.MLP, d graph.Device) metaLearner {
			return &learners.MAML{Model: m, Params: p, Device: d, Optimizer: &learners.SGD{LR: 0.05, Momentum: 0.9}}
		}},
		{"fomaml", func(p *graph.Params, m nets.MLP, d graph.Device) metaLearner {
			return &learners.MAML{Model: m, Params: p, FirstOrder: true, InnerSteps: 2, Device: d}
		}},
		{"anil", func(p *graph.Params, m nets.MLP, d graph.Device) metaLearner {
			return &learners.ANIL{MAML: learners.MAML{Model: m, Params: p, Device: d}}
		}},
		{"metasgd", func(p *graph.Params, m nets.MLP, d graph.Device) metaLearner {
			return &learners.MetaSGD{MAML: learners.MAML{Model: m, Params: p, Device: d}}
		}},
		{"reptile", func(p *graph.Params, m nets.MLP, d graph.Device) metaLearner {
			return &learners.Reptile{Model: m, Params: p, InnerSteps: 3, Rand: rand.New(rand.NewPCG(5, 5)), Device: d}
		}},
	}
	for _, s := range setups {
		for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
			t.Run(fmt.Sprintf("%s/%v", s.name, dt), func(t *testing.T) {
				model := nets.MLP{In: 1, Out: 1, Hidden: []int{40, 40}, Activation: nets.ReLU}
				dev := &counting{Device: testDevice(t)}
				defer dev.check(t)
				if s.name != "reptile" {
					defer func() {
						if dev.kinds["adam"]+dev.kinds["sgd"] == 0 || dev.kinds["nonfinite"] == 0 {
							t.Errorf("the optimiser did not run on the device: kernels %v", dev.kinds)
						}
					}()
				}
				var params [2]*graph.Params
				var ls [2]metaLearner
				for i, d := range []graph.Device{nil, dev} {
					p, err := model.Init(rand.New(rand.NewPCG(1, 1)), dt)
					if err != nil {
						t.Fatal(err)
					}
					params[i], ls[i] = p, s.make(p, model, d)
				}
				rng := rand.New(rand.NewPCG(2, 2))
				a := agree(t, dt)
				for step := range 3 {
					batch, _, err := tasks.Sinusoid{}.Sample(rng, 6, 5, 7)
					if err != nil {
						t.Fatal(err)
					}
					var stats [2]learners.Stats
					for i := range ls {
						if stats[i], err = ls[i].Step(context.Background(), batch); err != nil {
							t.Fatal(err)
						}
					}
					a.value(fmt.Sprintf("step %d pre-adaptation loss", step), stats[0].PreLoss, stats[1].PreLoss)
					a.value(fmt.Sprintf("step %d post-adaptation loss", step), stats[0].PostLoss, stats[1].PostLoss)
					a.params(fmt.Sprintf("step %d", step), params[0], params[1])
				}
				a.report()
			})
		}
	}
}

// TestMTLOnDevice takes three steps of multi-task training with every
// weighting on the device and on the CPU and compares as above.
func TestMTLOnDevice(t *testing.T) {
	targets := []tasks.Target{{Name: "reg1"}, {Name: "reg2"}, {Name: "cls", Kind: tasks.Binary}}
	rng := rand.New(rand.NewPCG(1, 1))
	batch := &tasks.Table{N: 24, In: 6, Targets: targets, Y: make([][]float64, 3)}
	for range batch.N * batch.In {
		batch.X = append(batch.X, rng.NormFloat64())
	}
	for range batch.N {
		batch.Y[0] = append(batch.Y[0], rng.NormFloat64())
		batch.Y[1] = append(batch.Y[1], rng.NormFloat64())
		batch.Y[2] = append(batch.Y[2], float64(rng.IntN(2)))
	}
	for _, name := range weighting.Names() {
		for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
			t.Run(fmt.Sprintf("%s/%v", name, dt), func(t *testing.T) {
				model := nets.MultiTask{
					Trunk: nets.Trunk{In: 6, Hidden: []int{16, 16}},
					Heads: []nets.Head{{Name: "reg1", Out: 1}, {Name: "reg2", Out: 1}, {Name: "cls", Out: 1}},
				}
				dev := &counting{Device: testDevice(t)}
				defer dev.check(t)
				if name == "ew" { // one backward pass: the update runs on the device
					defer func() {
						if dev.kinds["adam"] == 0 {
							t.Errorf("the optimiser did not run on the device: kernels %v", dev.kinds)
						}
					}()
				}
				var params [2]*graph.Params
				var ms [2]*learners.MTL
				for i, d := range []graph.Device{nil, dev} {
					p, err := model.Init(rand.New(rand.NewPCG(1, 1)), dt)
					if err != nil {
						t.Fatal(err)
					}
					w, err := weighting.New(name, len(targets))
					if err != nil {
						t.Fatal(err)
					}
					params[i] = p
					ms[i] = &learners.MTL{Model: model, Params: p, Targets: targets, Weighting: w, Device: d, Rand: rand.New(rand.NewPCG(3, 3))}
				}
				a := agree(t, dt)
				for step := range 3 {
					var stats [2]learners.MTLStats
					for i, m := range ms {
						var err error
						if stats[i], err = m.Step(context.Background(), batch); err != nil {
							t.Fatal(err)
						}
					}
					for k := range stats[0].Losses {
						a.value(fmt.Sprintf("step %d loss %d", step, k), stats[0].Losses[k], stats[1].Losses[k])
					}
					a.params(fmt.Sprintf("step %d", step), params[0], params[1])
				}
				a.report()
			})
		}
	}
}

// TestDeviceDeterministic takes three MAML steps on the device twice from
// the same seed and checks the parameters are identical, bit for bit.
func TestDeviceDeterministic(t *testing.T) {
	dev := testDevice(t)
	var runs [2][]float64
	for r := range runs {
		model := nets.MLP{In: 1, Out: 1, Hidden: []int{40, 40}, Activation: nets.ReLU}
		p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
		if err != nil {
			t.Fatal(err)
		}
		m := &learners.MAML{Model: model, Params: p, InnerSteps: 2, Device: dev}
		rng := rand.New(rand.NewPCG(2, 2))
		for range 3 {
			batch, _, err := tasks.Sinusoid{}.Sample(rng, 50, 10, 10)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Step(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
		}
		if pl := m.Placement(); pl.OnHost != 0 || pl.OnDevice == 0 || !pl.Recorded || pl.Device != dev.String() {
			t.Errorf("Placement() = %+v; want every op on %s, recorded", pl, dev)
		}
		for i := 0; i < p.Len(); i++ {
			runs[r] = append(runs[r], graph.Float64s(p.At(i).Value)...)
		}
	}
	for i := range runs[0] {
		if math.Float64bits(runs[0][i]) != math.Float64bits(runs[1][i]) {
			t.Fatalf("parameter %d: %v, then %v from the same seed", i, runs[0][i], runs[1][i])
		}
	}
}

// TestConvNetMAMLOnDevice takes two second-order MAML steps of a small
// ConvNet on 5-way 1-shot episodes on the device and on the CPU and
// compares as TestMetaLearnersOnDevice does.
func TestConvNetMAMLOnDevice(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	set := &tasks.ClassSet{Rows: 12, Cols: 12, Images: make([][]int, 8)}
	for c := range set.Images {
		for range 4 {
			set.Images[c] = append(set.Images[c], len(set.Pixels)/(12*12))
			for range 12 * 12 {
				set.Pixels = append(set.Pixels, byte(rng.IntN(256)))
			}
		}
	}
	eps := tasks.Episodes{Set: set, Ways: 5, Shots: 1, Query: 2}
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		t.Run(dt.String(), func(t *testing.T) {
			dev := &counting{Device: testDevice(t)}
			defer dev.check(t)
			model := nets.ConvNet{Side: 12, Filters: 6, Blocks: 2, Out: 5}
			var params [2]*graph.Params
			var ms [2]*learners.MAML
			for i, d := range []graph.Device{nil, dev} {
				p, err := model.Init(rand.New(rand.NewPCG(1, 1)), dt)
				if err != nil {
					t.Fatal(err)
				}
				params[i] = p
				ms[i] = &learners.MAML{Model: model, Params: p, Loss: learners.CrossEntropy, InnerLR: 0.4, Device: d}
			}
			brng := rand.New(rand.NewPCG(2, 2))
			a := agree(t, dt)
			for step := range 2 {
				batch, err := eps.Sample(brng, 3)
				if err != nil {
					t.Fatal(err)
				}
				var stats [2]learners.Stats
				for i, m := range ms {
					if stats[i], err = m.Step(context.Background(), batch); err != nil {
						t.Fatal(err)
					}
				}
				a.value(fmt.Sprintf("step %d pre-adaptation loss", step), stats[0].PreLoss, stats[1].PreLoss)
				a.value(fmt.Sprintf("step %d post-adaptation loss", step), stats[0].PostLoss, stats[1].PostLoss)
				a.params(fmt.Sprintf("step %d", step), params[0], params[1])
			}
			a.report()
		})
	}
}

// TestDeviceOptimizerState takes two MAML steps with the optimiser on the
// device and saves a checkpoint, takes two more steps, goes back to the
// checkpoint and takes them again, beside the same on the CPU: the
// optimiser's state comes back from the device for the checkpoint and the
// loaded state replaces the device's, so both runs agree throughout.
func TestDeviceOptimizerState(t *testing.T) {
	for _, opt := range []string{"adam", "sgd-momentum"} {
		t.Run(opt, func(t *testing.T) {
			dev := testDevice(t)
			model := nets.MLP{In: 1, Out: 1, Hidden: []int{16}, Activation: nets.Tanh}
			newLearner := func(d graph.Device) *learners.MAML {
				p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
				if err != nil {
					t.Fatal(err)
				}
				var o learners.Optimizer = &learners.Adam{LR: 0.01}
				if opt != "adam" {
					o = &learners.SGD{LR: 0.01, Momentum: 0.9}
				}
				return &learners.MAML{Model: model, Params: p, Device: d, Optimizer: o}
			}
			rng := rand.New(rand.NewPCG(2, 2))
			var batches []*tasks.Batch
			for range 4 {
				b, _, err := tasks.Sinusoid{}.Sample(rng, 5, 5, 5)
				if err != nil {
					t.Fatal(err)
				}
				batches = append(batches, b)
			}
			ms := [2]*learners.MAML{newLearner(nil), newLearner(dev)}
			a := agree(t, tensor.Float64)
			var ckpts [2]*graph.Checkpoint
			for i, m := range ms {
				for _, b := range batches[:2] {
					if _, err := m.Step(context.Background(), b); err != nil {
						t.Fatal(err)
					}
				}
				ckpts[i] = graph.NewCheckpoint(m.Params)
				if err := m.SaveState("train.", ckpts[i]); err != nil {
					t.Fatal(err)
				}
			}
			for k := 0; k < ckpts[0].State.Len(); k++ {
				x, y := ckpts[0].State.At(k), ckpts[1].State.At(k)
				xs, ys := graph.Float64s(x.Value), graph.Float64s(y.Value)
				for j := range xs {
					a.value("checkpoint state "+x.Name, xs[j], ys[j])
				}
			}
			// Two more steps, then back to the checkpoint in the same
			// learners (the device's state must give way to the loaded
			// one), and the same two steps again.
			for i, c := range ckpts {
				for range 2 {
					for _, b := range batches[2:] {
						if _, err := ms[i].Step(context.Background(), b); err != nil {
							t.Fatal(err)
						}
					}
					if err := ms[i].Params.CopyFrom(c.Params); err != nil {
						t.Fatal(err)
					}
					if err := ms[i].LoadState("train.", c); err != nil {
						t.Fatal(err)
					}
				}
				for _, b := range batches[2:] {
					if _, err := ms[i].Step(context.Background(), b); err != nil {
						t.Fatal(err)
					}
				}
			}
			a.params("after resuming", ms[0].Params, ms[1].Params)
			a.report()
		})
	}
}

// refusing is a Device that does not run one kind, like a device without
// the optimiser's kernels.
type refusing struct {
	*Device
	kind string
}

func (r *refusing) Kernel(op graph.OpSpec) (graph.Kernel, error) {
	if op.Kind == r.kind {
		return nil, fmt.Errorf("refusing %s: %w", op.Kind, graph.ErrUnsupported)
	}
	return r.Device.Kernel(op)
}

// failing is a Device whose adam kernels fail from the n-th run on.
type failing struct {
	*Device
	runs, n int
}

type failingKernel struct {
	graph.Kernel
	f *failing
}

func (k failingKernel) Run(out graph.Buffer, in []graph.Buffer) error {
	if k.f.runs++; k.f.runs >= k.f.n {
		return errors.New("injected device error")
	}
	return k.Kernel.Run(out, in)
}

func (f *failing) Kernel(op graph.OpSpec) (graph.Kernel, error) {
	k, err := f.Device.Kernel(op)
	if err != nil || op.Kind != "adam" {
		return k, err
	}
	return failingKernel{k, f}, nil
}

// TestDeviceOptimizerFailures checks the optimiser on a device that does
// not run it (the update falls back to the host and agrees with the CPU),
// that fails half-way through an update (the step fails with the
// parameters and step count as they were, and the optimiser refuses to go
// on until a checkpoint is loaded), and that is closed while it holds the
// optimiser's state (the same; Release first keeps the state).
func TestDeviceOptimizerFailures(t *testing.T) {
	base := testDevice(t)
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{8}, Activation: nets.Tanh}
	newLearner := func(d graph.Device) *learners.MAML {
		p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
		if err != nil {
			t.Fatal(err)
		}
		return &learners.MAML{Model: model, Params: p, Device: d, Optimizer: &learners.Adam{LR: 0.01}}
	}
	rng := rand.New(rand.NewPCG(2, 2))
	var batches []*tasks.Batch
	for range 4 {
		b, _, err := tasks.Sinusoid{}.Sample(rng, 4, 5, 5)
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, b)
	}
	steps := func(m *learners.MAML, bs []*tasks.Batch) error {
		for _, b := range bs {
			if _, err := m.Step(context.Background(), b); err != nil {
				return err
			}
		}
		return nil
	}
	cpu := newLearner(nil)
	if err := steps(cpu, batches); err != nil {
		t.Fatal(err)
	}

	t.Run("refused", func(t *testing.T) {
		for _, kind := range []string{"adam", "nonfinite"} {
			m := newLearner(&refusing{base, kind})
			if err := steps(m, batches); err != nil {
				t.Fatal(err)
			}
			a := agree(t, tensor.Float64)
			a.params("refusing "+kind, cpu.Params, m.Params)
		}
	})

	t.Run("failing", func(t *testing.T) {
		dev := &failing{Device: base, n: 1 << 30}
		m := newLearner(dev)
		if err := steps(m, batches[:2]); err != nil {
			t.Fatal(err)
		}
		ckpt := graph.NewCheckpoint(m.Params)
		if err := m.SaveState("train.", ckpt); err != nil {
			t.Fatal(err)
		}
		before := m.Params.Clone()
		dev.runs, dev.n = 0, 2 // the second parameter's update fails
		_, err := m.Step(context.Background(), batches[2])
		if err == nil || !strings.Contains(err.Error(), "injected device error") {
			t.Fatalf("Step with a failing update = %v; want the device's error", err)
		}
		if m.Steps() != 2 {
			t.Errorf("Steps() = %d after a failed step; want 2", m.Steps())
		}
		agree(t, tensor.Float64).params("after a failed step", before, m.Params)
		dev.n = 1 << 30
		if _, err := m.Step(context.Background(), batches[2]); err == nil || !strings.Contains(err.Error(), "lost") {
			t.Errorf("Step after a failed update = %v; want an error saying the optimiser's state is lost", err)
		}
		if err := m.SaveState("train.", graph.NewCheckpoint(m.Params)); err == nil {
			t.Errorf("SaveState after a failed update succeeded; the state it would save is lost")
		}
		if err := m.Params.CopyFrom(ckpt.Params); err != nil {
			t.Fatal(err)
		}
		if err := m.LoadState("train.", ckpt); err != nil {
			t.Fatal(err)
		}
		if err := steps(m, batches[2:]); err != nil {
			t.Fatal(err)
		}
		agree(t, tensor.Float64).params("after loading the checkpoint", cpu.Params, m.Params)
	})

	t.Run("closed", func(t *testing.T) {
		for _, release := range []bool{false, true} {
			dev, err := openEmulated(t.TempDir())
			if err != nil {
				t.Skip(err)
			}
			m := newLearner(dev)
			if err := steps(m, batches[:2]); err != nil {
				t.Fatal(err)
			}
			if release {
				if err := m.Close(); err != nil {
					t.Fatal(err)
				}
			}
			dev.Close()
			err = m.SaveState("train.", graph.NewCheckpoint(m.Params))
			if release && err != nil {
				t.Errorf("SaveState after Close, then closing the device = %v", err)
			}
			if !release && (err == nil || !strings.Contains(err.Error(), "closed")) {
				t.Errorf("SaveState with the optimiser's state on a closed device = %v; want an error saying so", err)
			}
			if release {
				m.Device = nil
				if err := steps(m, batches[2:]); err != nil {
					t.Fatal(err)
				}
				agree(t, tensor.Float64).params("after moving to the CPU", cpu.Params, m.Params)
			}
		}
	})
}
