package learners

import (
	"strings"
	"testing"
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
