package learners

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	"gorgonia.org/tensor"
)

// DeltaM returns Δm, the mean relative change in percent of a multi-task
// model's metrics against those of single-task baselines, positive when
// the multi-task model is better (Maninis et al. 2019, as LibMTL reports
// it):
//
//	Δm = 100/T · Σ_t 1/N_t · Σ_i (−1)^{l_i} (M_{t,i} − B_{t,i}) / B_{t,i}
//
// over each task t's N_t metrics: the MSE of a regression (lower is
// better, l = 1), the accuracy and F1 of a classification (higher is
// better, l = 0). mtl and single hold the tasks' metrics in the same
// order, as MTL.Evaluate returns them. A metric whose baseline is 0 or not
// finite (an F1 of 0 on a rare class, no labelled rows) has no relative
// change and is left out, and so is a task with none left; it is an error
// when no task has one.
func DeltaM(mtl, single []Metrics) (float64, error) {
	if len(mtl) != len(single) || len(mtl) == 0 {
		return 0, fmt.Errorf("learners: DeltaM: %d multi-task and %d baseline tasks", len(mtl), len(single))
	}
	sum, tasksUsed := 0.0, 0
	for t, m := range mtl {
		b := single[t]
		if m.Kind != b.Kind || m.Name != b.Name {
			return 0, fmt.Errorf("learners: DeltaM: task %d is %s (%v) and its baseline %s (%v)", t, m.Name, m.Kind, b.Name, b.Kind)
		}
		type pair struct {
			m, b  float64
			lower bool
		}
		ps := []pair{{m.MSE, b.MSE, true}}
		if m.Kind != tasks.Regression {
			ps = []pair{{m.Accuracy, b.Accuracy, false}, {m.F1, b.F1, false}}
		}
		task, used := 0.0, 0
		for _, p := range ps {
			if p.b == 0 || !finite(p.b) || !finite(p.m) {
				continue
			}
			d := (p.m - p.b) / p.b
			if p.lower {
				d = -d
			}
			task, used = task+d, used+1
		}
		if used > 0 {
			sum, tasksUsed = sum+task/float64(used), tasksUsed+1
		}
	}
	if tasksUsed == 0 {
		return 0, fmt.Errorf("learners: DeltaM: no metric has a baseline to compare with (all are 0 or undefined)")
	}
	return 100 * sum / float64(tasksUsed), nil
}

// Baseline trains single-task baselines: for each target of a table, a
// network of its own with that target alone, for Steps minibatches of
// Batch rows (epoch after epoch, as EpochBatches draws them) with Adam
// at LR, equal weighting having nothing to weigh.
type Baseline struct {
	// Model returns the network for target t alone: one head.
	Model func(t tasks.Target) MultiTaskModel
	Steps int
	Batch int
	LR    float64
	// Seed seeds each network's initialisation and minibatches, with the
	// target's position.
	Seed   uint64
	Dtype  tensor.Dtype
	Device graph.Device
}

// Run trains one network per target of train and returns each one's
// metrics on test, in the targets' order. Rows missing a target's label
// take no part in its network's training or metrics.
func (b Baseline) Run(ctx context.Context, train, test *tasks.Table) ([]Metrics, error) {
	if b.Model == nil || b.Steps <= 0 || b.Batch <= 0 || !(b.LR > 0) || math.IsInf(b.LR, 0) {
		return nil, fmt.Errorf("learners: Baseline: Model, positive Steps and Batch and a finite positive LR are required (steps %d, batch %d, lr %g)", b.Steps, b.Batch, b.LR)
	}
	if err := train.Validate(); err != nil {
		return nil, err
	}
	out := make([]Metrics, len(train.Targets))
	for t, tg := range train.Targets {
		one := func(tab *tasks.Table) *tasks.Table {
			return &tasks.Table{N: tab.N, In: tab.In, X: tab.X, Targets: []tasks.Target{tg}, Y: [][]float64{tab.Y[t]}, Features: tab.Features}
		}
		model := b.Model(tg)
		params, err := model.Init(rand.New(rand.NewPCG(b.Seed, uint64(t))), b.Dtype)
		if err != nil {
			return nil, err
		}
		m := &MTL{Model: model, Params: params, Targets: []tasks.Target{tg}, Optimizer: &Adam{LR: b.LR}, Device: b.Device}
		rows := one(train)
		if rows.Labelled(0) < rows.N { // train on the labelled rows alone
			var idx []int
			for i, v := range rows.Y[0] {
				if !math.IsNaN(v) {
					idx = append(idx, i)
				}
			}
			if rows, err = rows.Rows(idx); err != nil {
				m.Close()
				return nil, err
			}
		}
		batches, err := EpochBatches(rows, b.Batch, b.Seed^uint64(t+1)*0x9e3779b97f4a7c15)
		if err != nil {
			m.Close()
			return nil, err
		}
		run := Run[*tasks.Table, MTLStats]{Steps: b.Steps, Batch: batches}
		if err := Train(ctx, m, run); err != nil {
			m.Close()
			return nil, fmt.Errorf("learners: baseline of task %s: %w", tg.Name, err)
		}
		res, err := m.Evaluate(ctx, one(test))
		m.Close()
		if err != nil {
			return nil, err
		}
		out[t] = res[0]
	}
	return out, nil
}
