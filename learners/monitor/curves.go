package monitor

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strconv"

	"github.com/medusa-ml/medusa/graph"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// PlotCurves draws the training curves of a log's records (as ReadFile
// returns them) and writes them to path as a PNG: a panel of losses (log
// scale when all are positive), and panels of the weights and metrics
// when the records have them, against the step. smooth > 1 draws the
// moving average over that many records, the raw values faintly behind.
// NaN and infinite values are left out and counted in the legend.
func PlotCurves(path string, recs []Record, smooth int) error {
	if smooth < 1 {
		return fmt.Errorf("monitor: PlotCurves: smooth %d, want 1 or more", smooth)
	}
	panels := curvePanels(recs)
	if len(panels) == 0 {
		return fmt.Errorf("monitor: %d records but no losses, weights or metrics to draw", len(recs))
	}
	return drawCurves(path, panels, smooth)
}

// curveSeries is one named series of a log: its finite points, and how
// many values were NaN or infinite.
type curveSeries struct {
	name      string
	xy        plotter.XYs
	nonFinite int
}

// curvePanel is one group of series (losses, weights, metrics).
type curvePanel struct {
	title  string
	series []curveSeries
	logY   bool // every value is positive
}

// curvePanels groups the series of recs into panels, leaving out empty
// groups. Series keep the order in which they first appear.
func curvePanels(recs []Record) []curvePanel {
	groups := []struct {
		title string
		get   func(Record) []Value
		logY  bool // allowed
	}{
		{"losses", func(r Record) []Value { return r.Losses }, true},
		{"weights", func(r Record) []Value { return r.Weights }, false},
		{"metrics", func(r Record) []Value { return r.Metrics }, false},
	}
	var panels []curvePanel
	for _, g := range groups {
		index := map[string]int{}
		p := curvePanel{title: g.title, logY: g.logY}
		for _, r := range recs {
			for _, v := range g.get(r) {
				i, ok := index[v.Name]
				if !ok {
					i = len(p.series)
					index[v.Name] = i
					p.series = append(p.series, curveSeries{name: v.Name})
				}
				s := &p.series[i]
				if math.IsNaN(v.Value) || math.IsInf(v.Value, 0) {
					s.nonFinite++
					continue
				}
				s.xy = append(s.xy, plotter.XY{X: float64(r.Step), Y: v.Value})
				if v.Value <= 0 {
					p.logY = false
				}
			}
		}
		points := 0
		for _, s := range p.series {
			points += len(s.xy)
		}
		if points > 0 {
			panels = append(panels, p)
		}
	}
	return panels
}

// movingAverage returns the trailing mean of each point's y over the last
// n points (fewer at the start). The window's sum is kept as points enter
// and leave it, and summed again from its points when the one leaving
// outweighs what stays (a spike), whose subtraction would cancel the
// smaller values' digits. A window whose sum overflows (values near the
// largest float64) is averaged term by term instead.
func movingAverage(xy plotter.XYs, n int) plotter.XYs {
	out := make(plotter.XYs, len(xy))
	var sum float64
	for i, p := range xy {
		lo := max(i-n+1, 0) // the window is xy[lo : i+1]
		sum += p.Y
		if i >= n {
			old := xy[i-n].Y
			if sum -= old; math.Abs(old) > math.Abs(sum) || math.IsInf(sum, 0) || math.IsNaN(sum) {
				sum = 0
				for _, q := range xy[lo : i+1] {
					sum += q.Y
				}
			}
		}
		w := float64(i + 1 - lo)
		mean := sum / w
		if math.IsInf(sum, 0) || math.IsNaN(sum) {
			mean = 0
			for _, q := range xy[lo : i+1] {
				mean += q.Y / w
			}
		}
		out[i] = plotter.XY{X: p.X, Y: mean}
	}
	return out
}

// drawCurves draws the panels one above the other and writes the PNG to
// path.
func drawCurves(path string, panels []curvePanel, smooth int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("drawing %s: %v", path, r)
		}
	}()
	const width, height = 8 * vg.Inch, 3.5 * vg.Inch
	img := vgimg.New(width, height*vg.Length(len(panels)))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadX: vg.Millimeter, PadY: 2 * vg.Millimeter,
		PadTop: vg.Millimeter, PadBottom: vg.Millimeter, PadLeft: vg.Millimeter, PadRight: 2 * vg.Millimeter}
	for i, pc := range panels {
		p, err := curvePlot(pc, smooth)
		if err != nil {
			return err
		}
		p.Draw(tiles.At(dc, 0, i))
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return err
	}
	return graph.WriteFileAtomic(path, buf.Bytes())
}

// curvePlot draws one panel.
func curvePlot(pc curvePanel, smooth int) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = pc.title
	if smooth > 1 {
		p.Title.Text += fmt.Sprintf(" (moving average of %d)", smooth)
	}
	p.X.Label.Text = "step"
	p.Add(plotter.NewGrid())
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range pc.series {
		for _, q := range s.xy {
			lo, hi = min(lo, q.Y), max(hi, q.Y)
		}
	}
	if math.IsInf(hi-lo, 0) { // an axis that wide has no ticks to find
		return nil, fmt.Errorf("monitor: %s: values from %g to %g, a range wider than a float64 holds", pc.title, lo, hi)
	}
	for i, s := range pc.series {
		if len(s.xy) == 0 {
			continue
		}
		col := plotutil.Color(i)
		label := s.name
		if s.nonFinite > 0 {
			label += fmt.Sprintf(" (%d without a finite value, not drawn)", s.nonFinite)
		}
		drawn := s.xy
		if smooth > 1 {
			raw, err := plotter.NewLine(s.xy)
			if err != nil {
				return nil, err
			}
			raw.Color, raw.Width = faint(col), vg.Points(0.8)
			p.Add(raw)
			drawn = movingAverage(s.xy, smooth)
		}
		ln, err := plotter.NewLine(drawn)
		if err != nil {
			return nil, err
		}
		ln.Color, ln.Width = col, vg.Points(1.5)
		p.Add(ln)
		if len(drawn) == 1 { // a line of one point is invisible
			sc, err := plotter.NewScatter(drawn)
			if err != nil {
				return nil, err
			}
			sc.Color, sc.Shape = col, draw.CircleGlyph{}
			p.Add(sc)
		}
		p.Legend.Add(label, ln)
	}
	p.Legend.Top = !crowdedTopRight(pc, lo, hi)
	if pc.logY {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, logTicks{}
		if lo == hi { // one value: give the axis some room
			p.Y.Min, p.Y.Max = lo/2, hi*2
		}
		p.Y.Label.Text = pc.title + " (log scale)"
	} else {
		p.Y.Label.Text = pc.title
	}
	return p, nil
}

// crowdedTopRight reports whether more of the points in the right third
// of the panel lie in its upper half than in its lower half, where the
// legend would hide them.
func crowdedTopRight(pc curvePanel, lo, hi float64) bool {
	x0, x1 := math.Inf(1), math.Inf(-1)
	for _, s := range pc.series {
		for _, q := range s.xy {
			x0, x1 = min(x0, q.X), max(x1, q.X)
		}
	}
	pos := func(y float64) float64 {
		if pc.logY {
			return math.Log(y/lo) / math.Log(hi/lo)
		}
		return (y - lo) / (hi - lo)
	}
	up, down := 0, 0
	for _, s := range pc.series {
		for _, q := range s.xy {
			if q.X < x1-(x1-x0)/3 || hi == lo {
				continue
			}
			if pos(q.Y) > 0.5 {
				up++
			} else {
				down++
			}
		}
	}
	return up > down
}

// faint returns c at a quarter of its opacity.
func faint(c color.Color) color.Color {
	r, g, b, a := c.RGBA()
	return color.NRGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 10)}
}

// logTicks marks a log axis at 1, 2, ..., 9 times powers of ten, labelling
// the powers of ten, and also 2 and 5 times them when the axis spans at
// most two decades, and every mark when fewer than two would be labelled.
// An axis narrower than the gap between two marks gets linear ticks.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(lo > 0 && hi >= lo) || math.IsInf(hi, 0) {
		return nil
	}
	e0, e1 := int(math.Floor(math.Log10(lo))), int(math.Ceil(math.Log10(hi)))
	in := func(v float64) bool { return v >= lo*(1-1e-9) && v <= hi*(1+1e-9) }
	label := func(m int) bool { return m == 1 || (e1-e0 <= 2 && (m == 2 || m == 5)) }
	var ticks []plot.Tick
	labelled := 0
	for e := e0; e <= e1; e++ {
		for m := 1; m <= 9; m++ {
			v := float64(m) * math.Pow10(e)
			if !in(v) {
				continue
			}
			t := plot.Tick{Value: v}
			if label(m) {
				t.Label = strconv.FormatFloat(v, 'g', 4, 64)
				labelled++
			}
			ticks = append(ticks, t)
		}
	}
	if len(ticks) < 2 {
		return plot.DefaultTicks{}.Ticks(lo, hi) // within one mark: linear ticks
	}
	if labelled < 2 {
		for i := range ticks {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'g', 4, 64)
		}
	}
	return ticks
}
