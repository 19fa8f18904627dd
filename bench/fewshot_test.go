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

// randomClasses returns a class set of n classes of 20 random 28×28
// images each: the timing of a meta-iteration does not depend on what the
// pixels show.
func randomClasses(n int) *tasks.ClassSet {
	rng := rand.New(rand.NewPCG(3, 3))
	s := &tasks.ClassSet{Rows: 28, Cols: 28, Images: make([][]int, n)}
	for c := range n {
		for range 20 {
			s.Images[c] = append(s.Images[c], len(s.Pixels)/(28*28))
			for range 28 * 28 {
				s.Pixels = append(s.Pixels, byte(rng.IntN(256)))
			}
		}
	}
	return s
}

// BenchmarkMAMLConvNet times one meta-iteration of MAML on 5-way 1-shot
// episodes with 15 query images per class, meta-batch 4, 28×28 inputs, the
// four-block ConvNet (64 and 32 filters), one inner step, float32, Adam;
// second order (exact) and first order. The loss before adaptation is
// measured on one step in ten, as medusa train measures it (the PyTorch
// reference measures none).
func BenchmarkMAMLConvNet(b *testing.B) {
	eps := tasks.Episodes{Set: randomClasses(20), Ways: 5, Shots: 1, Query: 15}
	for _, filters := range []int{64, 32} {
		for _, order := range []string{"second", "first"} {
			b.Run(fmt.Sprintf("filters=%d/order=%s", filters, order), func(b *testing.B) {
				model := nets.ConvNet{Side: 28, Filters: filters, Out: 5}
				p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
				if err != nil {
					b.Fatal(err)
				}
				m := &learners.MAML{Model: model, Params: p, Loss: learners.CrossEntropy, InnerLR: 0.4, FirstOrder: order == "first", PreLossEvery: 10}
				rng := rand.New(rand.NewPCG(2, 2))
				ctx := context.Background()
				batch, err := eps.Sample(rng, 4)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := m.Step(ctx, batch); err != nil { // compile outside the loop
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := m.Step(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)*4/b.Elapsed().Seconds(), "tasks/s")
			})
		}
	}
}

// BenchmarkMAMLConvNetCheckpoint times one second-order meta-iteration of
// the settings of the few-shot results (5-way, 5 query images per class,
// meta-batch 4, 32 filters, float32) with 1 and 5 shots and 1, 5 and 10
// inner steps, unrolled and with gradient checkpointing: the compute that
// checkpointing costs. bench/memory.sh measures the memory it saves.
func BenchmarkMAMLConvNetCheckpoint(b *testing.B) {
	for _, shots := range []int{1, 5} {
		eps := tasks.Episodes{Set: randomClasses(20), Ways: 5, Shots: shots, Query: 5}
		for _, steps := range []int{1, 5, 10} {
			for _, ck := range []bool{false, true} {
				b.Run(fmt.Sprintf("shots=%d/steps=%d/checkpoint=%v", shots, steps, ck), func(b *testing.B) {
					model := nets.ConvNet{Side: 28, Filters: 32, Out: 5}
					p, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
					if err != nil {
						b.Fatal(err)
					}
					m := &learners.MAML{Model: model, Params: p, Loss: learners.CrossEntropy, InnerLR: 0.4, InnerSteps: steps, GradCheckpoint: ck}
					batch, err := eps.Sample(rand.New(rand.NewPCG(2, 2)), 4)
					if err != nil {
						b.Fatal(err)
					}
					ctx := context.Background()
					if _, err := m.Step(ctx, batch); err != nil { // compile outside the loop
						b.Fatal(err)
					}
					for b.Loop() {
						if _, err := m.Step(ctx, batch); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
