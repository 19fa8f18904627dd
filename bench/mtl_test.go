package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/medusa-ml/medusa/learners"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/learners/weighting"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// BenchmarkMTLStep times one training step of the three-head synthetic
// setup: 32 inputs, a 32-128-128 ReLU trunk, two regression heads and one
// binary head, batch 256, Adam, float32. Equal weighting needs one
// backward pass; PCGrad needs one per task plus the projections.
func BenchmarkMTLStep(b *testing.B) {
	batch := randomTable(256)
	targets := batch.Targets
	for _, name := range []string{"ew", "pcgrad"} {
		b.Run("weighting="+name, func(b *testing.B) {
			model := nets.MultiTask{
				Trunk: nets.Trunk{In: 32, Hidden: []int{128, 128}},
				Heads: []nets.Head{{Name: "reg1", Out: 1}, {Name: "reg2", Out: 1}, {Name: "cls", Out: 1}},
			}
			p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
			if err != nil {
				b.Fatal(err)
			}
			w, err := weighting.New(name, len(targets))
			if err != nil {
				b.Fatal(err)
			}
			m := &learners.MTL{Model: model, Params: p, Targets: targets, Weighting: w}
			ctx := context.Background()
			if _, err := m.Step(ctx, batch); err != nil { // compile outside the loop
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Step(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(batch.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkMTLRepGrad times one MGDA and one PCGrad step on a wide trunk
// (32-1024-1024 ReLU, three heads, batch 256, float32) with the tasks'
// gradients taken with respect to the shared parameters (about 1.1
// million values a task) and with respect to the shared representation
// (256 × 1024 values a task, then one backward pass through the trunk).
func BenchmarkMTLRepGrad(b *testing.B) {
	batch := randomTable(256)
	for _, name := range []string{"mgda", "pcgrad"} {
		for _, rep := range []bool{false, true} {
			b.Run(fmt.Sprintf("weighting=%s/rep=%v", name, rep), func(b *testing.B) {
				model := nets.MultiTask{
					Trunk: nets.Trunk{In: 32, Hidden: []int{1024, 1024}},
					Heads: []nets.Head{{Name: "reg1", Out: 1}, {Name: "reg2", Out: 1}, {Name: "cls", Out: 1}},
				}
				p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
				if err != nil {
					b.Fatal(err)
				}
				w, err := weighting.New(name, len(batch.Targets))
				if err != nil {
					b.Fatal(err)
				}
				m := &learners.MTL{Model: model, Params: p, Targets: batch.Targets, Weighting: w, RepGrad: rep}
				ctx := context.Background()
				if _, err := m.Step(ctx, batch); err != nil { // compile outside the loop
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := m.Step(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// randomTable returns n rows of 32 normal features and three targets: two
// normal regression targets and one binary. The timing of a step does not
// depend on what the values are.
func randomTable(n int) *tasks.Table {
	targets := []tasks.Target{{Name: "reg1"}, {Name: "reg2"}, {Name: "cls", Kind: tasks.Binary}}
	rng := rand.New(rand.NewPCG(1, 1))
	t := &tasks.Table{N: n, In: 32, Targets: targets, Y: make([][]float64, 3)}
	for range t.N * t.In {
		t.X = append(t.X, rng.NormFloat64())
	}
	for range t.N {
		t.Y[0] = append(t.Y[0], rng.NormFloat64())
		t.Y[1] = append(t.Y[1], rng.NormFloat64())
		t.Y[2] = append(t.Y[2], float64(rng.IntN(2)))
	}
	return t
}
