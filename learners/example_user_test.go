package learners_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/learners/weighting"
	"github.com/medusa-ml/medusa/nets"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// residualNet is a model written for this example: x + W₂·tanh(W₁·x + b₁),
// its layers built with nets.Linear, which handles the leading task axis
// of the inputs and of the parameters a learner adapts.
type residualNet struct{ width int }

func (r residualNet) Init(rng *rand.Rand, dt tensor.Dtype) (*graph.Params, error) {
	p := new(graph.Params)
	for _, q := range []struct {
		name  string
		shape []int
	}{{"in.weight", []int{r.width, 1}}, {"in.bias", []int{r.width}}, {"out.weight", []int{1, r.width}}} {
		v, err := graph.NewParam(rng, dt, q.shape, graph.Uniform(-1, 1))
		if err != nil {
			return nil, err
		}
		if err := p.Add(q.name, v); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (r residualNet) Forward(x *G.Node, p G.Nodes) (*G.Node, error) {
	h, err := nets.Linear(x, p[0], p[1])
	if err != nil {
		return nil, fmt.Errorf("in: %w", err)
	}
	if h, err = G.Tanh(h); err != nil {
		return nil, err
	}
	out, err := nets.Linear(h, p[2], nil)
	if err != nil {
		return nil, fmt.Errorf("out: %w", err)
	}
	return G.Add(x, out)
}

// absLike is a custom loss, the mean of √(d² + 0.01) over examples: close
// to the absolute error, and twice differentiable as second-order MAML
// needs (its ops are on package graph's list).
var absLike = learners.LossFunc(func(pred, target *G.Node) (*G.Node, error) {
	d, err := G.Sub(pred, target)
	if err != nil {
		return nil, err
	}
	e, err := G.Sqrt(G.Must(G.Add(G.Must(G.Square(d)), G.NewConstant(0.01))))
	if err != nil {
		return nil, err
	}
	if e, err = graph.SumAxis(e, 2); err != nil {
		return nil, err
	}
	if e, err = graph.SumAxis(e, 1); err != nil {
		return nil, err
	}
	return graph.Scale(e, 1/float64(pred.Shape()[1]))
})

// ExampleLossFunc meta-trains a model of one's own with a custom loss by
// exact second-order MAML.
func ExampleLossFunc() {
	rng := rand.New(rand.NewPCG(1, 2))
	model := residualNet{width: 32}
	params, err := model.Init(rng, tensor.Float64)
	if err != nil {
		fmt.Println(err)
		return
	}
	m := &learners.MAML{Model: model, Params: params, Loss: absLike, InnerLR: 0.01, Optimizer: &learners.Adam{LR: 3e-3}}
	defer m.Close()
	var first, last float64 // mean query losses of the first and last 50 steps
	for i := range 300 {
		b, _, err := tasks.Sinusoid{}.Sample(rng, 10, 10, 10)
		if err != nil {
			fmt.Println(err)
			return
		}
		st, err := m.Step(context.Background(), b)
		if err != nil {
			fmt.Println(err)
			return
		}
		switch {
		case i < 50:
			first += st.PostLoss / 50
		case i >= 250:
			last += st.PostLoss / 50
		}
	}
	fmt.Printf("query loss after adaptation falls: %v\n", last < first)
	// Output: query loss after adaptation falls: true
}

// ExampleMTL trains one network on two tasks of one's own arrays, a
// regression and a binary classification of the same rows, with PCGrad
// resolving the conflicts between their gradients.
func ExampleMTL() {
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 2000
	x := make([]float64, 2*n)                                // two features a row
	y := [][]float64{make([]float64, n), make([]float64, n)} // one column a task
	for i := range n {
		a, b := rng.NormFloat64(), rng.NormFloat64()
		x[2*i], x[2*i+1] = a, b
		y[0][i] = a + 2*b // the regression
		if a*b > 0 {      // the classification: same signs
			y[1][i] = 1
		}
	}
	data := &tasks.Table{N: n, In: 2, X: x, Y: y, Targets: []tasks.Target{
		{Name: "sum", Kind: tasks.Regression}, {Name: "same-sign", Kind: tasks.Binary}}}
	train, test, err := data.Split(rng, 0.2)
	if err != nil {
		fmt.Println(err)
		return
	}
	model := nets.MultiTask{Trunk: nets.Trunk{In: 2, Hidden: []int{32, 32}, Activation: nets.ReLU},
		Heads: []nets.Head{{Name: "sum", Out: 1}, {Name: "same-sign", Out: 1}}}
	params, err := model.Init(rng, tensor.Float64)
	if err != nil {
		fmt.Println(err)
		return
	}
	m := &learners.MTL{Model: model, Params: params, Targets: train.Targets, Weighting: &weighting.PCGrad{},
		Optimizer: &learners.Adam{LR: 1e-2}, Rand: rng}
	defer m.Close()
	batches, err := learners.EpochBatches(train, 64, 5)
	if err != nil {
		fmt.Println(err)
		return
	}
	run := learners.Run[*tasks.Table, learners.MTLStats]{Steps: 1500, Batch: batches}
	if err := learners.Train(context.Background(), m, run); err != nil {
		fmt.Println(err)
		return
	}
	res, err := m.Evaluate(context.Background(), test)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("sum: MSE below 0.1: %v\n", res[0].MSE < 0.1)
	fmt.Printf("same-sign: accuracy above 0.9: %v\n", res[1].Accuracy > 0.9)
	// Output:
	// sum: MSE below 0.1: true
	// same-sign: accuracy above 0.9: true
}

// ExampleMAML_Predict saves a meta-trained model, loads it back as a
// program would that only has the file, and predicts on a new task after
// adapting to its five support points.
func ExampleMAML_Predict() {
	rng := rand.New(rand.NewPCG(5, 6))
	model := nets.MLP{In: 1, Out: 1, Hidden: []int{40, 40}}
	params, err := model.Init(rng, tensor.Float64)
	if err != nil {
		fmt.Println(err)
		return
	}
	m := &learners.MAML{Model: model, Params: params, InnerLR: 0.01}
	for range 200 {
		b, _, _ := tasks.Sinusoid{}.Sample(rng, 10, 5, 10)
		if _, err := m.Step(context.Background(), b); err != nil {
			fmt.Println(err)
			return
		}
	}
	m.Close()
	dir, err := os.MkdirTemp("", "medusa-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "sine.safetensors")
	if err := graph.SaveCheckpoint(path, graph.NewCheckpoint(params)); err != nil {
		fmt.Println(err)
		return
	}

	// Later: the same model, with the parameters from the file.
	ck, err := graph.LoadCheckpoint(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	loaded, err := model.Init(rand.New(rand.NewPCG(0, 0)), tensor.Float64)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := loaded.CopyFrom(ck.Params); err != nil {
		fmt.Println(err)
		return
	}
	adapt := &learners.MAML{Model: model, Params: loaded, InnerLR: 0.01}
	defer adapt.Close()
	b, ts, err := tasks.Sinusoid{}.Sample(rng, 1, 5, 50) // one task: 5 support points, 50 to predict
	if err != nil {
		fmt.Println(err)
		return
	}
	preds, err := adapt.Predict(b, 10) // outputs after 0, 1, ..., 10 inner steps
	if err != nil {
		fmt.Println(err)
		return
	}
	mse := func(p []float64) float64 {
		s := 0.0
		for i, x := range b.QueryX {
			s += math.Pow(p[i]-ts[0].F(x), 2)
		}
		return s / float64(len(p))
	}
	fmt.Printf("the same parameters: %v\n", loaded.Flatten()[7] == params.Flatten()[7])
	fmt.Printf("10 steps on 5 points improve the prediction: %v\n", mse(preds[10]) < mse(preds[0]))
	// Output:
	// the same parameters: true
	// 10 steps on 5 points improve the prediction: true
}
