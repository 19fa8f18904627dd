package learners

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// PooledBaseline is what meta-learning should beat on classification
// tasks: one logistic regression trained on examples pooled from many
// tasks, as tutorials do, and scored on the query sets of test tasks
// without adapting. train is a table with one multiclass target (as
// tasks.Classification.Pooled makes); the model is trained in float64 for
// 5 epochs of minibatches of 256 rows with Adam (rate 0.01), drawing its
// initial weights and row orders from rng. It returns the accuracy and
// macro F1 of every test task, in order.
func PooledBaseline(ctx context.Context, train *tasks.Table, test []*tasks.Batch, rng *rand.Rand) (acc, f1 []float64, err error) {
	if train == nil || len(train.Targets) != 1 || train.Targets[0].Kind != tasks.Multiclass {
		return nil, nil, fmt.Errorf("learners: PooledBaseline: want a table with one multiclass target")
	}
	model := nets.MultiTask{Trunk: nets.Trunk{In: train.In}, Heads: []nets.Head{{Name: "label", Out: train.Targets[0].Outputs()}}}
	params, err := model.Init(rng, tensor.Float64)
	if err != nil {
		return nil, nil, err
	}
	m := &MTL{Model: model, Params: params, Targets: train.Targets, Optimizer: &Adam{LR: 0.01}}
	defer m.Close()
	for range 5 {
		batches, err := train.Batches(rng, 256)
		if err != nil {
			return nil, nil, err
		}
		for _, b := range batches {
			if _, err := m.Step(ctx, b); err != nil {
				return nil, nil, fmt.Errorf("learners: pooled baseline: %w", err)
			}
		}
	}
	for _, b := range test {
		if b.In != train.In || b.Out != train.Targets[0].Outputs() {
			return nil, nil, fmt.Errorf("learners: PooledBaseline: test tasks of %d features and %d classes, trained on %d and %d",
				b.In, b.Out, train.In, train.Targets[0].Outputs())
		}
		for t := range b.Tasks {
			tab := &tasks.Table{N: b.Query, In: b.In, Targets: train.Targets, X: b.QueryX[t*b.Query*b.In : (t+1)*b.Query*b.In], Y: [][]float64{make([]float64, b.Query)}}
			for i := range b.Query {
				row := b.QueryY[(t*b.Query+i)*b.Out : (t*b.Query+i+1)*b.Out]
				for j, v := range row {
					if v == 1 {
						tab.Y[0][i] = float64(j)
					}
				}
			}
			res, err := m.Evaluate(ctx, tab)
			if err != nil {
				return nil, nil, fmt.Errorf("learners: pooled baseline: %w", err)
			}
			acc = append(acc, res[0].Accuracy)
			f1 = append(f1, res[0].F1)
		}
	}
	return acc, f1, nil
}
