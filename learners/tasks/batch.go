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

// Concat returns the tasks of bs, in order, as one batch. The batches
// must agree in every size but Tasks.
func Concat(bs ...*Batch) (*Batch, error) {
	if len(bs) == 0 {
		return nil, fmt.Errorf("tasks: Concat: no batches")
	}
	out := &Batch{Support: bs[0].Support, Query: bs[0].Query, In: bs[0].In, Out: bs[0].Out}
	for i, b := range bs {
		if err := b.Validate(); err != nil {
			return nil, fmt.Errorf("tasks: Concat: batch %d: %w", i, err)
		}
		if s := b.Shape(); s.Support != out.Support || s.Query != out.Query || s.In != out.In || s.Out != out.Out {
			return nil, fmt.Errorf("tasks: Concat: batch %d has shape %+v, batch 0 %+v", i, s, bs[0].Shape())
		}
		out.Tasks += b.Tasks
	}
	for _, b := range bs {
		out.SupportX = append(out.SupportX, b.SupportX...)
		out.SupportY = append(out.SupportY, b.SupportY...)
		out.QueryX = append(out.QueryX, b.QueryX...)
		out.QueryY = append(out.QueryY, b.QueryY...)
	}
	return out, nil
}

// Slice returns tasks lo to hi−1 of b as a batch that shares b's memory.
// It returns an error if b's sizes and slices disagree or the range is
// not within b.
func (b *Batch) Slice(lo, hi int) (*Batch, error) {
	if b == nil {
		return nil, fmt.Errorf("tasks: nil batch")
	}
	if err := b.Shape().Validate(); err != nil {
		return nil, err
	}
	sizes := []int{b.Support * b.In, b.Support * b.Out, b.Query * b.In, b.Query * b.Out}
	for i, d := range [][]float64{b.SupportX, b.SupportY, b.QueryX, b.QueryY} {
		if len(d) != b.Tasks*sizes[i] {
			return nil, fmt.Errorf("tasks: Slice: the batch's %s has %d values, want %d", [4]string{"SupportX", "SupportY", "QueryX", "QueryY"}[i], len(d), b.Tasks*sizes[i])
		}
	}
	if lo < 0 || hi > b.Tasks || lo >= hi {
		return nil, fmt.Errorf("tasks: Slice(%d, %d) of a batch of %d tasks", lo, hi, b.Tasks)
	}
	sx, sy, qx, qy := b.Support*b.In, b.Support*b.Out, b.Query*b.In, b.Query*b.Out
	return &Batch{Tasks: hi - lo, Support: b.Support, Query: b.Query, In: b.In, Out: b.Out,
		SupportX: b.SupportX[lo*sx : hi*sx : hi*sx], SupportY: b.SupportY[lo*sy : hi*sy : hi*sy],
		QueryX: b.QueryX[lo*qx : hi*qx : hi*qx], QueryY: b.QueryY[lo*qy : hi*qy : hi*qy]}, nil
}
