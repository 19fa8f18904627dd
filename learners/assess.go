package learners

import (
	"context"
	"fmt"

	"github.com/medusa-ml/medusa/learners/tasks"
)

// Assessor is a meta-learner that Assess evaluates: MAML, ANIL, MetaSGD
// and Reptile.
type Assessor interface {
	Evaluate(b *tasks.Batch, steps int) ([][]float64, error)
	EvaluateClassifier(b *tasks.Batch, steps int) (Evaluation, error)
}

// Assessment configures Assess. Tasks and Draw are required.
type Assessment struct {
	// Tasks is the number of test tasks.
	Tasks int
	// Steps is the number of inner steps: the scores are taken after 0,
	// 1, ..., Steps.
	Steps int
	// Classify scores accuracy and macro F1 besides the loss; the query
	// targets must then be one-hot rows.
	Classify bool
	// Draw returns n fresh test tasks. Assess asks for DrawUnit tasks at a
	// time (the last draw fewer; all at once when DrawUnit is 0), whatever
	// Batch is, so that which tasks are drawn does not depend on how many
	// are adapted at once.
	Draw     func(n int) (*tasks.Batch, error)
	DrawUnit int
	// Batch is how many test tasks are adapted at once (25 when 0): a
	// larger batch is faster and takes more memory. Each task's
	// adaptation is computed alone, so the scores do not depend on it.
	Batch int
	// Each, if set, is called with every batch once it is adapted.
	Each func(b *tasks.Batch)
}

// Assess adapts a to s.Tasks fresh test tasks and returns every task's
// scores after 0, 1, ..., s.Steps inner steps, indexed [step][task] in
// the order the tasks were drawn; MeanCI summarises each step's. A test
// task whose query loss is not finite, in regression (Classify unset), is
// an error wrapping ErrNonFinite that names the task and the step. An
// interrupt through ctx stops the assessment between batches.
func Assess(ctx context.Context, a Assessor, s Assessment) (Evaluation, error) {
	if s.Draw == nil {
		return Evaluation{}, fmt.Errorf("learners: Assess: no Draw function")
	}
	if s.Tasks <= 0 || s.Steps < 0 {
		return Evaluation{}, fmt.Errorf("learners: Assess: %d tasks and %d steps, want at least 1 and 0", s.Tasks, s.Steps)
	}
	batch := s.Batch
	if batch <= 0 {
		batch = 25
	}
	unit := s.DrawUnit
	if unit <= 0 {
		unit = s.Tasks
	}
	stream := &testStream{draw: s.Draw, unit: unit, left: s.Tasks}
	out := Evaluation{Loss: make([][]float64, s.Steps+1)}
	if s.Classify {
		out.Accuracy, out.F1 = make([][]float64, s.Steps+1), make([][]float64, s.Steps+1)
	}
	for done := 0; done < s.Tasks; done += batch {
		if err := ctx.Err(); err != nil {
			return Evaluation{}, fmt.Errorf("learners: evaluation interrupted after %d of %d test tasks: %w", done, s.Tasks, err)
		}
		b, err := stream.next(min(batch, s.Tasks-done))
		if err != nil {
			return Evaluation{}, err
		}
		var e Evaluation
		if s.Classify {
			e, err = a.EvaluateClassifier(b, s.Steps)
		} else {
			e.Loss, err = a.Evaluate(b, s.Steps)
		}
		if err != nil {
			return Evaluation{}, err
		}
		for st := range out.Loss {
			if !s.Classify {
				for t, v := range e.Loss[st] {
					if !finite(v) {
						return Evaluation{}, fmt.Errorf("learners: test task %d has a non-finite query loss after %d inner steps: %w", done+t, st, ErrNonFinite)
					}
				}
			}
			out.Loss[st] = append(out.Loss[st], e.Loss[st]...)
			if s.Classify {
				out.Accuracy[st] = append(out.Accuracy[st], e.Accuracy[st]...)
				out.F1[st] = append(out.F1[st], e.F1[st]...)
			}
		}
		if s.Each != nil {
			s.Each(b)
		}
	}
	return out, nil
}

// testStream draws test tasks unit at a time and hands them out in
// batches of any size, so that which tasks are drawn does not depend on
// the batches.
type testStream struct {
	draw func(n int) (*tasks.Batch, error)
	unit int
	left int          // tasks not drawn yet
	have *tasks.Batch // drawn and not handed out; nil: none
}

// next returns the next n test tasks.
func (s *testStream) next(n int) (*tasks.Batch, error) {
	var parts []*tasks.Batch
	got := 0
	if s.have != nil {
		parts, got, s.have = append(parts, s.have), s.have.Tasks, nil
	}
	for got < n {
		if s.left <= 0 {
			return nil, fmt.Errorf("learners: evaluation: %d more test tasks asked for than were to be drawn", n-got)
		}
		b, err := s.draw(min(s.unit, s.left))
		if err != nil {
			return nil, err
		}
		if b.Tasks <= 0 {
			return nil, fmt.Errorf("learners: evaluation: Draw(%d) returned no tasks", min(s.unit, s.left))
		}
		s.left -= b.Tasks
		parts, got = append(parts, b), got+b.Tasks
	}
	b := parts[0]
	if len(parts) > 1 {
		var err error
		if b, err = tasks.Concat(parts...); err != nil {
			return nil, err
		}
	}
	if got == n {
		return b, nil
	}
	var err error
	if s.have, err = b.Slice(n, got); err != nil {
		return nil, err
	}
	return b.Slice(0, n)
}

// Score assesses a as Assess does and returns one figure to select models
// by, higher being better: the mean accuracy after s.Steps inner steps
// when s.Classify is set, the mean query loss negated otherwise.
func Score(ctx context.Context, a Assessor, s Assessment) (float64, error) {
	ev, err := Assess(ctx, a, s)
	if err != nil {
		return 0, err
	}
	if s.Classify {
		m, _ := MeanCI(ev.Accuracy[s.Steps])
		return m, nil
	}
	m, _ := MeanCI(ev.Loss[s.Steps])
	return -m, nil
}
