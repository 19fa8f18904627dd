package bench

import (
	"context"
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
	targets := []tasks.Target{{Name: "reg1"}, {Name: "reg2"}, {Name: "cls", Kind: tasks.Binary}}
	rng := rand.New(rand.NewPCG(1, 1))
	batch := &tasks.Table{N: 256, In: 32, Targets: targets, Y: make([][]float64, 3)}
	for range batch.N * batch.In {
		batch.X = append(batch.X, rng.NormFloat64())
	}
	for range batch.N {
		batch.Y[0] = append(batch.Y[0], rng.NormFloat64())
		batch.Y[1] = append(batch.Y[1], rng.NormFloat64())
		batch.Y[2] = append(batch.Y[2], float64(rng.IntN(2)))
	}
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
