package weighting

import (
	"errors"
	"fmt"
	"math"

	"github.com/medusa-ml/medusa/graph"
)

// ErrInput is matched, with errors.Is, by every *InputError.
var ErrInput = errors.New("bad input")

// ErrSingular is matched by errors from methods whose linear system has no
// unique solution for the step's gradients (IMTL-G when two tasks' unit
// gradients coincide).
var ErrSingular = errors.New("singular system")

// InputError reports an Input that a Method cannot use: the wrong number
// of losses or gradients, gradients of different lengths, or a value that
// is not finite (or, for methods that take ratios of losses, not
// positive).
type InputError struct {
	Method string // the method's Name
	Task   int    // the task at fault, or -1 when no single task is
	Msg    string // what is wrong
}

func (e *InputError) Error() string {
	if e.Task < 0 {
		return fmt.Sprintf("weighting: %s: %s", e.Method, e.Msg)
	}
	return fmt.Sprintf("weighting: %s: task %d: %s", e.Method, e.Task, e.Msg)
}

// Is reports whether target is ErrInput.
func (e *InputError) Is(target error) bool { return target == ErrInput }

func inputErr(method string, task int, format string, args ...any) error {
	return &InputError{Method: method, Task: task, Msg: fmt.Sprintf(format, args...)}
}

// check validates in for the method called name. want is the number of
// tasks the method was built for, or 0 to take it from in.Losses. With
// grads set it also requires one gradient per task, all of one length
// D > 0, and finite. It returns the number of tasks T and D (0 without
// grads).
func check(name string, in Input, want int, grads bool) (t, d int, err error) {
	t = len(in.Losses)
	switch {
	case t == 0:
		return 0, 0, inputErr(name, -1, "no losses")
	case want > 0 && t != want:
		return 0, 0, inputErr(name, -1, "%d losses, want %d", t, want)
	}
	for i, l := range in.Losses {
		if math.IsNaN(l) || math.IsInf(l, 0) {
			return 0, 0, inputErr(name, i, "loss %v is not finite", l)
		}
	}
	if !grads {
		return t, 0, nil
	}
	if len(in.Grads) != t {
		return 0, 0, inputErr(name, -1, "%d gradients for %d losses", len(in.Grads), t)
	}
	d = len(in.Grads[0])
	if d == 0 {
		return 0, 0, inputErr(name, 0, "empty gradient")
	}
	for i, g := range in.Grads {
		if len(g) != d {
			return 0, 0, inputErr(name, i, "gradient has %d values, want %d (task 0's)", len(g), d)
		}
		if graph.AllFinite(g) {
			continue
		}
		for j, v := range g {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, 0, inputErr(name, i, "gradient element %d is %v", j, v)
			}
		}
	}
	return t, d, nil
}
