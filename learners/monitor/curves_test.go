package monitor

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot/plotter"
)

func TestSupersede(t *testing.T) {
	steps := func(rs []Record) []int {
		var s []int
		for _, r := range rs {
			s = append(s, r.Step)
		}
		return s
	}
	var in []Record
	// A run logged steps 10..50, was interrupted, and resumed from its
	// checkpoint at step 30, logging 40..60 again.
	for _, s := range []int{10, 20, 30, 40, 50, 40, 50, 60} {
		in = append(in, Record{Step: s, Time: float64(len(in))})
	}
	got := supersede(in)
	if g := steps(got); len(g) != 6 || g[3] != 40 || g[5] != 60 {
		t.Fatalf("supersede steps = %v; want [10 20 30 40 50 60]", g)
	}
	if got[3].Time != 5 {
		t.Errorf("step 40 kept from record %v; want the later one, 5", got[3].Time)
	}
}

func TestMovingAverage(t *testing.T) {
	xy := plotter.XYs{{X: 1, Y: 1}, {X: 2, Y: 3}, {X: 3, Y: 5}, {X: 4, Y: 7}}
	want := []float64{1, 2, 3, 5} // windows [1], [1 3], [1 3 5], [3 5 7]
	got := movingAverage(xy, 3)
	for i := range want {
		if got[i].Y != want[i] || got[i].X != xy[i].X {
			t.Errorf("movingAverage(%v, 3)[%d] = %v; want (%v, %v)", xy, i, got[i], xy[i].X, want[i])
		}
	}
}

// A spike leaving the window does not take the small values' digits with
// it.
func TestMovingAverageAfterSpike(t *testing.T) {
	xy := plotter.XYs{{X: 1, Y: 0.5}, {X: 2, Y: 1e17}, {X: 3, Y: 0.5}, {X: 4, Y: 0.5}, {X: 5, Y: 0.25}}
	got := movingAverage(xy, 2)
	for i, want := range map[int]float64{3: 0.5, 4: 0.375} {
		if got[i].Y != want {
			t.Errorf("movingAverage(…, 2)[%d] = %v; want %v", i, got[i].Y, want)
		}
	}
	// Values whose sum overflows: averaged term by term, and finite
	// again once the window has passed them.
	big := plotter.XYs{{X: 1, Y: 1e308}, {X: 2, Y: 1e308}, {X: 3, Y: 1}, {X: 4, Y: 1}, {X: 5, Y: 3}}
	got = movingAverage(big, 2)
	for i, want := range []float64{1e308, 1e308, 5e307, 1, 2} {
		if got[i].Y != want {
			t.Errorf("movingAverage(big, 2)[%d] = %v; want %v", i, got[i].Y, want)
		}
	}
}

func TestLogTicks(t *testing.T) {
	labels := func(lo, hi float64) []string {
		var l []string
		for _, tk := range (logTicks{}).Ticks(lo, hi) {
			if tk.Label != "" {
				l = append(l, tk.Label)
			}
		}
		return l
	}
	for _, tt := range []struct {
		lo, hi float64
		want   string
	}{
		{0.01, 100, "0.01 0.1 1 10 100"},    // four decades: powers of ten
		{0.15, 3, "0.2 0.5 1 2"},            // two decades: 1, 2, 5
		{0.31, 0.38, "0.32 0.34 0.36 0.38"}, // between two marks: linear
		{0.25, 0.45, "0.3 0.4"},             // no 1, 2 or 5: every mark
	} {
		if got := strings.Join(labels(tt.lo, tt.hi), " "); got != tt.want {
			t.Errorf("logTicks.Ticks(%v, %v) labels %q; want %q", tt.lo, tt.hi, got, tt.want)
		}
	}
	if tk := (logTicks{}).Ticks(0, 1); tk != nil {
		t.Errorf("logTicks.Ticks(0, 1) = %v; want none", tk)
	}
}

func TestPlotCurves(t *testing.T) {
	dir := t.TempDir()
	recs := []Record{
		{Step: 1, Losses: []Value{{"a", 2}}, Weights: []Value{{"a", 1}}},
		{Step: 2, Losses: []Value{{"a", math.NaN()}}, Weights: []Value{{"a", 0.5}}},
		{Step: 3, Losses: []Value{{"a", 0.5}}, Weights: []Value{{"a", 0.25}}},
	}
	path := filepath.Join(dir, "curves.png")
	if err := PlotCurves(path, recs, 2); err != nil {
		t.Fatal(err)
	}
	// 8 × 3.5 inches a panel at vgimg's 96 dots per inch: two panels,
	// losses and weights.
	if w, h := pngSize(t, path); w != 768 || h != 672 {
		t.Errorf("%s is %d×%d; want 768×672 (two panels)", path, w, h)
	}
	if err := PlotCurves(path, []Record{{Step: 1}}, 1); err == nil || !strings.Contains(err.Error(), "no losses") {
		t.Errorf("PlotCurves of records without values = %v; want an error saying there is nothing to draw", err)
	}
	if err := PlotCurves(path, recs, 0); err == nil {
		t.Error("PlotCurves with smooth 0: no error")
	}
	// Values whose range overflows: an error, not an axis search that
	// never ends.
	wide := []Record{{Step: 1, Losses: []Value{{"a", 1e308}}}, {Step: 2, Losses: []Value{{"a", -1e308}}}}
	if err := PlotCurves(path, wide, 1); err == nil || !strings.Contains(err.Error(), "wider than a float64 holds") {
		t.Errorf("PlotCurves of ±1e308 = %v; want an error about the range", err)
	}
}
