package bench

import (
	"context"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/medusa-ml/medusa/cuda"
	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/learners/weighting"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// benchDevice opens the device named by MEDUSA_BENCH_DEVICE: "cuda" (the
// default) or "cuda:N" for a GPU, "cpu" for none. A missing GPU skips the
// benchmark with the reason.
func benchDevice(b *testing.B) graph.Device {
	b.Helper()
	spec := os.Getenv("MEDUSA_BENCH_DEVICE")
	switch {
	case spec == "cpu":
		return nil
	case spec == "" || spec == "cuda":
		spec = "cuda:0"
	}
	var ordinal int
	if n, ok := strings.CutPrefix(spec, "cuda:"); !ok || len(n) != 1 || n[0] < '0' || n[0] > '9' {
		b.Fatalf("MEDUSA_BENCH_DEVICE=%q: want cuda, cuda:N or cpu", spec)
	} else {
		ordinal = int(n[0] - '0')
	}
	d, err := cuda.Open(ordinal)
	if err != nil {
		b.Skipf("no GPU to benchmark on: %v", err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}

// BenchmarkGPU times the three GPU workloads that medusa is compared with
// PyTorch on (bench/gpucheck/torch_ref.py does the same work), on the
// device of MEDUSA_BENCH_DEVICE:
//
//   - maml-convnet: one second-order MAML meta-iteration of the four-block
//     ConvNet with 64 filters, 5-way 1-shot, 15 query images per class,
//     meta-batch 32, 28×28 inputs, float32, Adam;
//   - maml-sinusoid: one second-order MAML meta-iteration on sinusoids
//     with 1,000 tasks, K = 10 support and 10 query points, 1-40-40-1
//     ReLU, float32, Adam;
//   - mtl: one equal-weighting multi-task step, 32 inputs, a 1024-1024
//     ReLU trunk, three heads (two regression, one binary), batch 8,192,
//     float32, Adam.
func BenchmarkGPU(b *testing.B) {
	ctx := context.Background()
	b.Run("maml-convnet", func(b *testing.B) {
		dev := benchDevice(b)
		eps := tasks.Episodes{Set: randomClasses(20), Ways: 5, Shots: 1, Query: 15}
		model := nets.ConvNet{Side: 28, Filters: 64, Out: 5}
		p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
		if err != nil {
			b.Fatal(err)
		}
		m := &learners.MAML{Model: model, Params: p, Loss: learners.CrossEntropy, InnerLR: 0.4, Device: dev}
		batch, err := eps.Sample(rand.New(rand.NewPCG(2, 2)), 32)
		if err != nil {
			b.Fatal(err)
		}
		timeSteps(b, 32, "tasks/s", func() error { _, err := m.Step(ctx, batch); return err })
	})
	b.Run("maml-sinusoid", func(b *testing.B) {
		dev := benchDevice(b)
		model := nets.MLP{In: 1, Out: 1, Hidden: []int{40, 40}, Activation: nets.ReLU}
		p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
		if err != nil {
			b.Fatal(err)
		}
		m := &learners.MAML{Model: model, Params: p, Device: dev}
		batch, _, err := tasks.Sinusoid{}.Sample(rand.New(rand.NewPCG(2, 2)), 1000, 10, 10)
		if err != nil {
			b.Fatal(err)
		}
		timeSteps(b, 1000, "tasks/s", func() error { _, err := m.Step(ctx, batch); return err })
	})
	b.Run("mtl", func(b *testing.B) {
		dev := benchDevice(b)
		batch := randomTable(8192)
		targets := batch.Targets
		model := nets.MultiTask{
			Trunk: nets.Trunk{In: 32, Hidden: []int{1024, 1024}},
			Heads: []nets.Head{{Name: "reg1", Out: 1}, {Name: "reg2", Out: 1}, {Name: "cls", Out: 1}},
		}
		p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
		if err != nil {
			b.Fatal(err)
		}
		w, err := weighting.New("ew", len(targets))
		if err != nil {
			b.Fatal(err)
		}
		m := &learners.MTL{Model: model, Params: p, Targets: targets, Weighting: w, Device: dev}
		timeSteps(b, batch.N, "rows/s", func() error { _, err := m.Step(ctx, batch); return err })
	})
}

// timeSteps runs step once to compile, then times it, reporting items per
// second under unit.
func timeSteps(b *testing.B, items int, unit string, step func() error) {
	b.Helper()
	if err := step(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := step(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*float64(items)/b.Elapsed().Seconds(), unit)
}
