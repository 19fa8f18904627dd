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

// ExampleTrain meta-trains with Train, checkpoints the run half way and
// resumes it in a fresh learner: the resumed run ends with the parameters
// an uninterrupted one would have, and Assess scores it on fresh tasks.
func ExampleTrain() {
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{40, 40}}
	params, err := model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
	if err != nil {
		fmt.Println(err)
		return
	}
	// newRun returns a learner at the same initial parameters and a run
	// whose tasks come from a fresh stream.
	newRun := func() (*learners.MAML, learners.Run[*tasks.Batch, learners.Stats]) {
		src := rand.NewPCG(2, 2) // the tasks' random stream, saved in checkpoints
		rng := rand.New(src)
		return &learners.MAML{Model: model, Params: params.Clone(), InnerLR: 0.01}, learners.Run[*tasks.Batch, learners.Stats]{
			Steps: 200,
			Batch: func(int) (*tasks.Batch, error) {
				b, _, err := tasks.Sinusoid{}.Sample(rng, 10, 10, 10)
				return b, err
			},
			Streams: []learners.Stream{{Name: "tasks", Src: src}},
		}
	}
	ctx := context.Background()
	straight, run := newRun()
	if err := learners.Train(ctx, straight, run); err != nil {
		fmt.Println(err)
		return
	}

	half, run := newRun()
	run.Steps = 100
	if err := learners.Train(ctx, half, run); err != nil {
		fmt.Println(err)
		return
	}
	ck, err := learners.Checkpoint(half.Params, half, run.Streams) // graph.SaveCheckpoint writes it
	if err != nil {
		fmt.Println(err)
		return
	}
	resumed, run := newRun()
	if err := learners.Resume(ck, resumed.Params, resumed, run.Streams); err != nil {
		fmt.Println(err)
		return
	}
	if err := learners.Train(ctx, resumed, run); err != nil {
		fmt.Println(err)
		return
	}
	a, b := straight.Params.Flatten(), resumed.Params.Flatten()
	same := len(a) == len(b)
	for i := range a {
		same = same && a[i] == b[i]
	}
	fmt.Println("resumed at step", 100, "ends at step", resumed.Steps(), "with the same parameters:", same)

	rng := rand.New(rand.NewPCG(3, 3))
	e, err := learners.Assess(ctx, resumed, learners.Assessment{Tasks: 100, Steps: 5,
		Draw: func(n int) (*tasks.Batch, error) {
			b, _, err := tasks.Sinusoid{}.Sample(rng, n, 10, 100)
			return b, err
		}})
	if err != nil {
		fmt.Println(err)
		return
	}
	before, _ := learners.MeanCI(e.Loss[0])
	after, _ := learners.MeanCI(e.Loss[5])
	fmt.Println("5 inner steps lower the test MSE:", after < before)
	// Output:
	// resumed at step 100 ends at step 200 with the same parameters: true
	// 5 inner steps lower the test MSE: true
}
