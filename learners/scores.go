package learners

import (
	"fmt"
	"math"

	"github.com/medusa-ml/medusa/learners/tasks"
)

// Evaluation is what a learner measures on a batch of classification
// tasks after adapting to each task's support set for 0, 1, ..., S steps.
// Index [s][t] holds the value for task t after s steps.
type Evaluation struct {
	// Loss is each task's mean query loss.
	Loss [][]float64
	// Accuracy is the fraction of each task's query examples whose largest
	// output (the first, on ties) is at the target's class.
	Accuracy [][]float64
	// F1 is each task's macro F1 over the classes that occur among its
	// query labels or predictions (scikit-learn's average="macro").
	F1 [][]float64
}

// classLabels returns the class of every query example of b, whose query
// targets must be one-hot rows.
func classLabels(b *tasks.Batch) ([]int, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	labels := make([]int, b.Tasks*b.Query)
	for r := range labels {
		row := b.QueryY[r*b.Out : (r+1)*b.Out]
		labels[r] = -1
		for j, v := range row {
			switch {
			case v == 1 && labels[r] < 0:
				labels[r] = j
			case v != 0:
				labels[r] = -2
			}
		}
		if labels[r] < 0 {
			return nil, fmt.Errorf("learners: query target %d (task %d) is %v, not a one-hot row", r%b.Query, r/b.Query, row)
		}
	}
	return labels, nil
}

// accuracyPerTask returns, for predictions [tasks, n, classes] and the n
// labels of each task, the fraction of each task's rows whose arg-max is
// the label.
func accuracyPerTask(pred []float64, labels []int, nTasks, classes int) []float64 {
	n := len(labels) / nTasks
	acc := make([]float64, nTasks)
	for r, want := range labels {
		row := pred[r*classes : (r+1)*classes]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if best == want {
			acc[r/n]++
		}
	}
	for t := range acc {
		acc[t] /= float64(n)
	}
	return acc
}

// f1PerTask returns, for predictions [tasks, n, classes] and the n labels
// of each task, each task's macro F1 over the classes that occur among
// its labels or arg-max predictions.
func f1PerTask(pred []float64, labels []int, nTasks, classes int) []float64 {
	n := len(labels) / nTasks
	out := make([]float64, nTasks)
	tp, fp, fn := make([]int, classes), make([]int, classes), make([]int, classes)
	for t := range nTasks {
		clear(tp)
		clear(fp)
		clear(fn)
		for r := t * n; r < (t+1)*n; r++ {
			row := pred[r*classes : (r+1)*classes]
			best := 0
			for j, v := range row {
				if v > row[best] {
					best = j
				}
			}
			if want := labels[r]; best == want {
				tp[want]++
			} else {
				fp[best]++
				fn[want]++
			}
		}
		seen := 0
		for c := range classes {
			if tp[c]+fp[c]+fn[c] == 0 {
				continue
			}
			seen++
			out[t] += 2 * float64(tp[c]) / float64(2*tp[c]+fp[c]+fn[c])
		}
		out[t] /= float64(seen)
	}
	return out
}

// average returns the mean of x.
func average(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// MeanCI returns the mean of x and the half-width of its normal 95%
// confidence interval, 1.96·s/√n with s the sample standard deviation:
// the figures an evaluation over n test tasks reports as mean ± half.
// With fewer than two values the half-width is NaN, and the mean of none
// is NaN too.
func MeanCI(x []float64) (mean, half float64) {
	n := float64(len(x))
	if len(x) == 0 {
		return math.NaN(), math.NaN()
	}
	for _, v := range x {
		mean += v
	}
	mean /= n
	if len(x) < 2 {
		return mean, math.NaN()
	}
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	return mean, 1.96 * math.Sqrt(ss/(n-1)) / math.Sqrt(n)
}
