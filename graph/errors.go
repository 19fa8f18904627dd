package graph

import (
	"errors"
	"fmt"
)

// ErrShape is matched (with errors.Is) by every *ShapeError.
var ErrShape = errors.New("shape mismatch")

// ErrNotDifferentiable is matched by errors from Grad when the reverse pass
// meets an op it cannot differentiate.
var ErrNotDifferentiable = errors.New("not differentiable")

// ShapeError reports that an operation received an input whose shape does
// not fit.
type ShapeError struct {
	Op   string // the operation or parameter that complained
	Want string // what was expected, in words or as a shape
	Got  string // what was received
}

func (e *ShapeError) Error() string {
	return fmt.Sprintf("graph: %s: shape mismatch: want %s, got %s", e.Op, e.Want, e.Got)
}

// Is reports whether target is ErrShape.
func (e *ShapeError) Is(target error) bool { return target == ErrShape }

// recoverError turns a panic raised while building or running gorgonia
// nodes into an error naming op. It is used as
//
//	defer recoverError(&err, "op")
func recoverError(err *error, op string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("graph: %s: %v", op, r)
	}
}
