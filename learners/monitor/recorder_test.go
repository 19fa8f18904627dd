package monitor

import (
	"bytes"
	"io"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// logged runs steps with a Recorder of a run of total steps printing
// every given number on out, logging to a new log, and returns the log's
// records.
func logged(t *testing.T, total, every int, out io.Writer, lr float64, steps func(r *Recorder) error) []Record {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run.jsonl")
	log, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := steps(&Recorder{Progress: NewProgress(out, "step", 0, total, every), Log: log, LR: lr}); err != nil {
		t.Fatal(err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestRecorder(t *testing.T) {
	var out bytes.Buffer
	recs := logged(t, 5, 2, &out, 0.5, func(r *Recorder) error {
		for n := 1; n <= 5; n++ {
			// Losses 1, 2, 3, 4, 5; the weight is the step's.
			if err := r.Record(n, []Value{{"a", float64(n)}}, []Value{{"a", float64(10 * n)}}); err != nil {
				return err
			}
		}
		return nil
	})
	// Records at steps 2, 4 and the last, 5, with the means of steps 1-2,
	// 3-4 and 5.
	want := []struct{ step, loss, weight float64 }{{2, 1.5, 20}, {4, 3.5, 40}, {5, 5, 50}}
	if len(recs) != len(want) {
		t.Fatalf("%d records; want %d", len(recs), len(want))
	}
	for i, w := range want {
		r := recs[i]
		if float64(r.Step) != w.step || r.Losses[0].Value != w.loss || r.Weights[0].Value != w.weight || r.LR != 0.5 {
			t.Errorf("record %d = %+v; want step %v, loss %v, weight %v, lr 0.5", i, r, w.step, w.loss, w.weight)
		}
	}
	if lines := strings.Count(out.String(), "\n"); lines != 3 || !strings.Contains(out.String(), "step 4/5  a 3.5000") {
		t.Errorf("progress:\n%s\nwant 3 lines, step 4 showing the mean 3.5", out.String())
	}
}

// TestRecorderNote: a noted metric is written with the next step's
// record, off the cadence, which restarts the averages.
func TestRecorderNote(t *testing.T) {
	var out bytes.Buffer
	recs := logged(t, 4, 2, &out, 0, func(r *Recorder) error {
		for n := 1; n <= 4; n++ {
			if n == 3 {
				r.Note(Value{"val accuracy", 0.75})
			}
			if err := r.Record(n, []Value{{"a", float64(n)}}, nil); err != nil {
				return err
			}
		}
		return nil
	})
	want := []struct {
		step    int
		loss    float64
		metrics int
	}{{2, 1.5, 0}, {3, 3, 1}, {4, 4, 0}}
	if len(recs) != len(want) {
		t.Fatalf("%d records %+v; want %d", len(recs), recs, len(want))
	}
	for i, w := range want {
		if r := recs[i]; r.Step != w.step || r.Losses[0].Value != w.loss || len(r.Metrics) != w.metrics {
			t.Errorf("record %d = %+v; want step %d, loss %v, %d metrics", i, r, w.step, w.loss, w.metrics)
		}
	}
	if m := recs[1].Metrics; len(m) == 1 && (m[0].Name != "val accuracy" || m[0].Value != 0.75) {
		t.Errorf("step 3's metrics %+v, want val accuracy 0.75", m)
	}
	if !strings.Contains(out.String(), "step 4/4  a 4.0000  val accuracy 0.7500") {
		t.Errorf("progress:\n%s\nwant the last note shown after the losses", out.String())
	}
}

// TestRecorderUnmeasured: a NaN loss is a step that did not measure it,
// left out of the average; an interval that never measured it logs NaN.
func TestRecorderUnmeasured(t *testing.T) {
	pre := []float64{1, math.NaN(), 4, math.NaN(), math.NaN(), math.NaN()}
	recs := logged(t, 6, 3, io.Discard, 0, func(r *Recorder) error {
		for n := 1; n <= 6; n++ {
			if err := r.Record(n, []Value{{"pre", pre[n-1]}, {"post", float64(n)}}, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if len(recs) != 2 {
		t.Fatalf("%d records; want 2", len(recs))
	}
	if got := recs[0].Losses; got[0].Value != 2.5 || got[1].Value != 2 {
		t.Errorf("step 3: %v; want pre 2.5 (steps 1 and 3), post 2", got)
	}
	if got := recs[1].Losses; !math.IsNaN(got[0].Value) || got[1].Value != 5 {
		t.Errorf("step 6: %v; want pre NaN (not measured), post 5", got)
	}
}

// TestRecorderFlush: a run stopped between two records writes the steps
// since the last one, once.
func TestRecorderFlush(t *testing.T) {
	recs := logged(t, 10, 3, io.Discard, 0, func(r *Recorder) error {
		for n := 1; n <= 5; n++ {
			if err := r.Record(n, []Value{{"a", float64(n)}}, nil); err != nil {
				return err
			}
		}
		if err := r.Flush(); err != nil {
			return err
		}
		return r.Flush() // nothing left: no second record
	})
	if len(recs) != 2 || recs[0].Step != 3 || recs[1].Step != 5 || recs[1].Losses[0].Value != 4.5 {
		t.Errorf("records %+v; want steps 3 and 5, the second the mean 4.5 of steps 4 and 5", recs)
	}
}
