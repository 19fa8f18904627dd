package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/medusa-ml/medusa/learners"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// BenchmarkMAMLSinusoid times one meta-iteration of the MAML paper's
// sinusoid protocol: 25 tasks, K = 10 support and 10 query points, a
// 1-40-40-1 ReLU network, float32, Adam. Sampling the batch is included
// (it is part of an iteration and costs microseconds).
func BenchmarkMAMLSinusoid(b *testing.B) {
	for _, order := range []string{"second", "first"} {
		for _, steps := range []int{1, 5} {
			b.Run(fmt.Sprintf("order=%s/steps=%d", order, steps), func(b *testing.B) {
				model := nets.MLP{In: 1, Out: 1, Hidden: []int{40, 40}, Activation: nets.ReLU}
				p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
				if err != nil {
					b.Fatal(err)
				}
				m := &learners.MAML{Model: model, Params: p, InnerSteps: steps, FirstOrder: order == "first"}
				rng := rand.New(rand.NewPCG(2, 2))
				ctx := context.Background()
				sample := func() *tasks.Batch {
					batch, _, err := tasks.Sinusoid{}.Sample(rng, 25, 10, 10)
					if err != nil {
						b.Fatal(err)
					}
					return batch
				}
				if _, err := m.Step(ctx, sample()); err != nil { // compile outside the loop
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := m.Step(ctx, sample()); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)*25/b.Elapsed().Seconds(), "tasks/s")
			})
		}
	}
}
