package monitor

import (
	"fmt"
	"math"
	"strings"
)

// Recorder reports a training run's steps on a Progress line and, when
// Log is set, in a log: each step's losses are averaged over the steps
// since the last record, which is written every Progress.Every() steps
// and at the last step. A loss that is NaN was not measured at that step
// (a learner's losses are otherwise finite) and is left out of its
// average, which is NaN when no step since the last record measured it.
// Weights are shown and logged as they are. Call Record from
// learners.Train's Record hook. A Recorder is not safe for concurrent
// use.
type Recorder struct {
	Progress *Progress // required
	Log      *Log      // nil: none
	LR       float64   // logged with each record; 0: not logged
	// Detail is the progress line's text for the averaged losses and the
	// weights; nil shows "name value" for each loss.
	Detail func(losses, weights []Value) string

	sums  []float64
	n     []int   // the steps that measured each loss since the last record
	notes []Value // for the next record
	shown []Value // the last noted, on the progress line
	// pending is the last step recorded since the last record written,
	// with its averaged losses and its weights; nil if none.
	pending *Record
}

// Note adds metrics (a validation score, say) to the record of the step
// recorded next, which is then written to the log whatever the cadence;
// the progress line shows the last noted from then on.
func (r *Recorder) Note(metrics ...Value) {
	r.notes = append(r.notes, metrics...)
	r.shown = metrics
}

// Record records step n's losses and weights.
func (r *Recorder) Record(n int, losses, weights []Value) error {
	if len(r.sums) != len(losses) {
		r.sums, r.n = make([]float64, len(losses)), make([]int, len(losses))
	}
	mean := make([]Value, len(losses))
	for i, l := range losses {
		if !math.IsNaN(l.Value) {
			r.sums[i] += l.Value
			r.n[i]++
		}
		mean[i] = Value{Name: l.Name, Value: math.NaN()}
		if r.n[i] > 0 {
			mean[i].Value = r.sums[i] / float64(r.n[i])
		}
	}
	detail := r.Detail
	if detail == nil {
		detail = pairs
	}
	line := detail(mean, weights)
	if len(r.shown) > 0 {
		line += "  " + pairs(r.shown, nil)
	}
	p := r.Progress
	p.Update(n, line)
	r.pending = &Record{Step: n, Losses: mean, Weights: weights, LR: r.LR}
	if n%p.Every() != 0 && n != p.total && len(r.notes) == 0 {
		return nil
	}
	return r.Flush()
}

// Flush writes the steps recorded since the last record, if any, as a
// record of the last of them: the end of a run stopped between two
// records (an interrupt, a failed step) is then in the log too.
func (r *Recorder) Flush() error {
	rec := r.pending
	if rec == nil {
		return nil
	}
	clear(r.sums)
	clear(r.n)
	rec.Metrics, r.notes, r.pending = r.notes, nil, nil
	if r.Log == nil {
		return nil
	}
	return r.Log.Write(*rec)
}

// pairs shows values as "name value" pairs.
func pairs(losses, _ []Value) string {
	s := make([]string, len(losses))
	for i, l := range losses {
		s[i] = fmt.Sprintf("%s %.4f", l.Name, l.Value)
	}
	return strings.Join(s, "  ")
}
