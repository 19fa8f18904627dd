package learners_test

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/medusa-ml/medusa/learners"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// ExampleMAML meta-trains a small network on sinusoid tasks with exact
// second-order MAML, then adapts it to fresh tasks.
func ExampleMAML() {
	rng := rand.New(rand.NewPCG(1, 2))
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{40, 40}, Activation: nets.ReLU}
	params, err := model.Init(rng, tensor.Float64)
	if err != nil {
		fmt.Println(err)
		return
	}
	m := &learners.MAML{Model: model, Params: params, InnerLR: 0.01, Optimizer: &learners.Adam{LR: 1e-3}}
	for i := 0; i < 300; i++ {
		b, _, _ := tasks.Sinusoid{}.Sample(rng, 10, 10, 10)
		if _, err := m.Step(context.Background(), b); err != nil {
			fmt.Println(err)
			return
		}
	}
	test, _, _ := tasks.Sinusoid{}.Sample(rng, 100, 10, 50)
	losses, err := m.Evaluate(test, 10)
	if err != nil {
		fmt.Println(err)
		return
	}
	mean := func(x []float64) float64 {
		s := 0.0
		for _, v := range x {
			s += v
		}
		return s / float64(len(x))
	}
	fmt.Printf("adaptation helps: %v\n", mean(losses[10]) < mean(losses[0]))
	// Output: adaptation helps: true
}
