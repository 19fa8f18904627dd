package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"strconv"

	"github.com/spf13/pflag"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// plotConfig is what "medusa plot" runs.
type plotConfig struct {
	log    string
	out    string
	smooth int
}

func parsePlot(args []string, stderr io.Writer) (*plotConfig, error) {
	fs := pflag.NewFlagSet("medusa plot", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	logPath := fs.String("log", "", "training log written by train --log (required)")
	out := fs.String("out", "curves.png", "PNG file to write")
	smooth := fs.Int("smooth", 1, "moving average over this many logged steps (1: none; the raw values are drawn faintly)")
	usage := usageOf(fs, stderr, `Usage: medusa plot --log FILE [flags]

Draws the training curves of a log written by "medusa train --log": a
panel of losses (log scale when all are positive), and panels of the
task weights and metrics when the log has them, against the step. Where
a resumed run repeats steps, its records replace the earlier ones.

Flags:
`)
	fs.Usage = usage
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, nil
		}
		return nil, badUsage(stderr, usage, "%v", err)
	}
	bad := func(format string, a ...any) (*plotConfig, error) { return nil, badUsage(stderr, usage, format, a...) }
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	c := &plotConfig{log: *logPath, out: *out, smooth: *smooth}
	if c.log == "" {
		return bad("--log FILE is required")
	}
	if c.out == "" {
		return bad("--out must name a file")
	}
	if c.smooth < 1 {
		return bad("--smooth %d: must be at least 1", c.smooth)
	}
	if err := checkWritable(c.out); err != nil {
		return bad("--out %q: %v", c.out, err)
	}
	return c, nil
}

// plotCmd is "medusa plot".
func plotCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parsePlot(args, stderr)
	if err != nil || c == nil {
		return err
	}
	recs, err := readLogFile(c.log)
	if err != nil {
		return err
	}
	panels := curvePanels(recs)
	if len(panels) == 0 {
		return fmt.Errorf("%s: %d records but no losses, weights or metrics to draw", c.log, len(recs))
	}
	if err := drawCurves(c.out, panels, c.smooth); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s (%d records, steps %d to %d)\n", c.out, len(recs), recs[0].Step, recs[len(recs)-1].Step)
	return nil
}

// readLogFile reads the training log at path, keeping for each step the
// record written last (a resumed run repeats the steps after its
// checkpoint). Errors name the file and, for bad content, the line.
func readLogFile(path string) ([]logRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read log: %v", err)
	}
	defer f.Close()
	recs, err := readRunLog(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s: no records (is it a log written by medusa train --log?)", path)
	}
	return supersede(recs), nil
}

// supersede drops the records that a later record's step goes back over:
// in a log appended to by a resumed run, the steps repeated after the
// checkpoint replace the ones written before the interruption.
func supersede(recs []logRecord) []logRecord {
	out := recs[:0:0]
	for _, r := range recs {
		for len(out) > 0 && out[len(out)-1].Step >= r.Step {
			out = out[:len(out)-1]
		}
		out = append(out, r)
	}
	return out
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
func curvePanels(recs []logRecord) []curvePanel {
	groups := []struct {
		title string
		get   func(logRecord) []namedValue
		logY  bool // allowed
	}{
		{"losses", func(r logRecord) []namedValue { return r.Losses }, true},
		{"weights", func(r logRecord) []namedValue { return r.Weights }, false},
		{"metrics", func(r logRecord) []namedValue { return r.Metrics }, false},
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
// n points (fewer at the start).
func movingAverage(xy plotter.XYs, n int) plotter.XYs {
	out := make(plotter.XYs, len(xy))
	var sum float64
	for i, p := range xy {
		sum += p.Y
		if i >= n {
			sum -= xy[i-n].Y
		}
		out[i] = plotter.XY{X: p.X, Y: sum / float64(min(i+1, n))}
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
	return writeFileAtomic(path, buf.Bytes())
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
	for i, s := range pc.series {
		if len(s.xy) == 0 {
			continue
		}
		col := plotutil.Color(i)
		label := s.name
		if s.nonFinite > 0 {
			label += fmt.Sprintf(" (%d not finite, not drawn)", s.nonFinite)
		}
		for _, q := range s.xy {
			lo, hi = min(lo, q.Y), max(hi, q.Y)
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
