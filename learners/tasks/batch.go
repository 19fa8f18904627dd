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
	if b.Tasks <= 0 || b.Support <= 0 || b.Query <= 0 || b.In <= 0 || b.Out <= 0 {
		return fmt.Errorf("tasks: batch sizes must be positive: tasks=%d support=%d query=%d in=%d out=%d",
			b.Tasks, b.Support, b.Query, b.In, b.Out)
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
