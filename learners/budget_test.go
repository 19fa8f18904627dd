package learners

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

func TestBudget(t *testing.T) {
	b := NewBudget(0)
	start := b.Total()
	b.Add("graphs", 1<<20)
	b.Add("model", 1000)
	b.Add("graphs", 1<<20) // the same part grows
	if got := b.Total() - start; got != 2<<20+1000 {
		t.Errorf("Total grew by %d; want %d", got, 2<<20+1000)
	}
	if s := b.String(); !strings.Contains(s, "graphs 2.0 MiB") || !strings.Contains(s, "model 1000 B") || strings.Count(s, "graphs") != 1 {
		t.Errorf("String = %q; want one graphs part of 2.0 MiB and a model of 1000 B", s)
	}
	b.Max = b.Total()
	if err := b.Check(); err != nil {
		t.Errorf("Check at the limit: %v", err)
	}
	if _, room, ok := b.Room(); !ok || room != 0 {
		t.Errorf("Room at the limit = %d, %v; want 0, true", room, ok)
	}
	b.Add("batches", 1)
	if err := b.Check(); err == nil || !strings.Contains(err.Error(), "more than the memory limit") {
		t.Errorf("Check one byte over the limit = %v; want an error", err)
	}
	if _, err := b.Enforce(); err == nil {
		t.Error("Enforce over the limit: no error")
	}
	if got := ModelBytes(10, 4); got != 10*(3*4+4*8) {
		t.Errorf("ModelBytes(10, 4) = %d", got)
	}
}

// fakePreparer's graphs take perTask bytes a task.
type fakePreparer struct {
	perTask  int64
	prepared []int // the task counts of the evaluation graphs compiled
}

func (f *fakePreparer) PrepareStep(s tasks.Shape) (int64, error) {
	return f.perTask * int64(s.Tasks), nil
}
func (f *fakePreparer) PrepareEvaluate(s tasks.Shape, steps int) (int64, error) {
	f.prepared = append(f.prepared, s.Tasks)
	return f.perTask * int64(s.Tasks), nil
}

func TestPlanAssess(t *testing.T) {
	s := tasks.Shape{Support: 5, Query: 75, In: 784, Out: 5}
	for _, tt := range []struct {
		shrink    bool
		room      int64 // the limit above the budget's start
		wantBatch int
		wantLast  []int // the graphs compiled for the assessment
	}{
		{false, 1 << 30, 25, []int{25, 10}}, // 60 tasks: 25, 25, 10
		// A quarter of the limit (64 MiB of margin and 100 MiB) holds 6
		// tasks' graphs: 25 → 13 → 7 → 4.
		{true, 100 << 20, 4, []int{4}},
	} {
		b := NewBudget(0)
		b.Max = b.Total() + tt.room
		f := &fakePreparer{perTask: 6 << 20}
		a := Assessment{Tasks: 60, Steps: 3, Batch: 25}
		if err := b.PlanAssess(f, &a, s, tt.shrink); err != nil {
			t.Fatalf("shrink %v: %v", tt.shrink, err)
		}
		if a.Batch != tt.wantBatch {
			t.Errorf("shrink %v: batch %d; want %d", tt.shrink, a.Batch, tt.wantBatch)
		}
		if got := f.prepared[len(f.prepared)-len(tt.wantLast):]; !slices.Equal(got, tt.wantLast) {
			t.Errorf("shrink %v: graphs compiled for %v tasks; want the last %v", tt.shrink, f.prepared, tt.wantLast)
		}
	}
	b := NewBudget(0)
	b.Max = b.Total() + 1<<20
	a := Assessment{Tasks: 60, Steps: 3, Batch: 25}
	if err := b.PlanAssess(&fakePreparer{perTask: 1 << 20}, &a, s, false); err == nil {
		t.Error("PlanAssess of 25 MiB of graphs within 1 MiB: no error")
	}
	if err := b.PlanStep(&fakePreparer{perTask: 1 << 20}, tasks.Shape{Tasks: 4, Support: 5, In: 1, Out: 1}); err == nil {
		t.Error("PlanStep over the limit: no error")
	}
}

func TestPlanMTL(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	train, test := mtlTable(rng, 10), mtlTable(rng, 6)
	m := newMTL(t, nets.MultiTask{Trunk: nets.Trunk{In: 4, Hidden: []int{8}},
		Heads: []nets.Head{{Name: "sum", Out: 1}, {Name: "sign", Out: 1}, {Name: "argmax", Out: 3}}}, 1, tensor.Float64)
	b := NewBudget(0)
	start := b.Total()
	if err := b.PlanMTL(m, train, test, 4); err != nil {
		t.Fatal(err)
	}
	// Graphs of 4 and 2 rows, of the evaluation, and two copies of the
	// 10 rows of 4 features and 3 targets.
	var graphs int64
	for _, rows := range []int{4, 2} {
		n, err := m.PrepareStep(rows, 4)
		if err != nil {
			t.Fatal(err)
		}
		graphs += n
	}
	ev, err := m.PrepareEvaluate(6, 4)
	if err != nil {
		t.Fatal(err)
	}
	if want := graphs + ev + 2*10*7*8; b.Total()-start != want {
		t.Errorf("PlanMTL added %d bytes; want %d", b.Total()-start, want)
	}
	b.Max = b.Total() - 1
	if err := b.PlanMTL(m, train, test, 4); err == nil {
		t.Error("PlanMTL over the limit: no error")
	}
}
