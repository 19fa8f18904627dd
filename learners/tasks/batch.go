package tasks

import (
	"fmt"
	"math"
)

// Batch is a meta-batch of tasks. Regression targets are real vectors of
// size Out; classification targets are one-hot rows of size Out.
type Batch struct {
	Tasks   int // number of tasks
	Support int // support examples per task
	Query   int // query examples per task
	In, Out int // input and target sizes

	SupportX, SupportY []float64 // [Tasks, Support, In], [Tasks, Support, Out]
	QueryX, QueryY     []float64 // [Tasks, Query, In], [Tasks, Query, Out]
}

// Validate reports whether the sizes are positive, the slices have the
// lengths the sizes imply, and every value is finite.
func (b *Batch) Validate() error {
	if b == nil {
		return fmt.Errorf("tasks: nil batch")
	}
	if err := b.Shape().Validate(); err != nil {
		return err
	}
	for _, c := range []struct {
		name string
		data []float64
		n    int
	}{
		{"SupportX", b.SupportX, b.Tasks * b.Support * b.In},
		{"SupportY", b.SupportY, b.Tasks * b.Support * b.Out},
		{"QueryX", b.QueryX, b.Tasks * b.Query * b.In},
		{"QueryY", b.QueryY, b.Tasks * b.Query * b.Out},
	} {
		if len(c.data) != c.n {
			return fmt.Errorf("tasks: batch %s has %d values, want %d", c.name, len(c.data), c.n)
		}
		for i, v := range c.data {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("tasks: batch %s[%d] is %v", c.name, i, v)
			}
		}
	}
	return nil
}

// Shape is the shape of a Batch: all that the graphs compiled for it
// depend on.
type Shape struct {
	Tasks, Support, Query, In, Out int
}

// Shape returns b's shape.
func (b *Batch) Shape() Shape { return Shape{b.Tasks, b.Support, b.Query, b.In, b.Out} }

// Validate reports whether every size is positive.
func (s Shape) Validate() error {
	if s.Tasks <= 0 || s.Support <= 0 || s.Query <= 0 || s.In <= 0 || s.Out <= 0 {
		return fmt.Errorf("tasks: batch sizes must be positive: tasks=%d support=%d query=%d in=%d out=%d",
			s.Tasks, s.Support, s.Query, s.In, s.Out)
	}
	return nil
}

// Bytes returns the memory the four slices of a Batch of this shape hold.
func (s Shape) Bytes() int64 {
	return 8 * int64(s.Tasks) * int64(s.Support+s.Query) * int64(s.In+s.Out)
}
