package monitor

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"

	"github.com/medusa-ml/medusa/graph"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// PlotAdaptation draws a figure's mean over test tasks (query error, or
// accuracy) against the number of inner steps, means[s] after s steps,
// with its 95% interval, ± halves[s], as a band, and writes the PNG to
// path. label names the figure on the y axis.
func PlotAdaptation(path, title, label string, means, halves []float64) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text, p.Y.Label.Text = "inner gradient steps", label+" (mean and 95% interval)"
	p.Add(plotter.NewGrid())
	mean := make(plotter.XYs, len(means))
	var band plotter.XYs
	for s, m := range means {
		mean[s] = plotter.XY{X: float64(s), Y: m}
		if !math.IsNaN(halves[s]) {
			band = append(band, plotter.XY{X: float64(s), Y: m + halves[s]})
		}
	}
	if len(band) == len(means) {
		for s := len(means) - 1; s >= 0; s-- {
			band = append(band, plotter.XY{X: float64(s), Y: means[s] - halves[s]})
		}
		poly, err := plotter.NewPolygon(band)
		if err != nil {
			return err
		}
		poly.Color, poly.LineStyle.Width = color.NRGBA{0x1f, 0x77, 0xb4, 0x40}, 0
		p.Add(poly)
		p.Legend.Add("95% interval", poly)
	}
	ln, pts, err := plotter.NewLinePoints(mean)
	if err != nil {
		return err
	}
	ln.Color, ln.Width = color.NRGBA{0x1f, 0x77, 0xb4, 0xff}, vg.Points(1.5)
	pts.Color, pts.Shape = ln.Color, draw.CircleGlyph{}
	p.Add(ln, pts)
	p.Legend.Add("mean", ln, pts)
	p.Legend.Top = true
	p.Y.Min = 0
	if len(means) <= 21 {
		var ticks plot.ConstantTicks
		for s := range means {
			ticks = append(ticks, plot.Tick{Value: float64(s), Label: strconv.Itoa(s)})
		}
		p.X.Tick.Marker = ticks
	}
	return savePlot(path, p, 6*vg.Inch, 4*vg.Inch)
}

// savePlot draws p at the given size and writes it to path as a PNG.
func savePlot(path string, p *plot.Plot, w, h vg.Length) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("monitor: drawing %s: %v", path, r)
		}
	}()
	img := vgimg.New(w, h)
	p.Draw(draw.New(img))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return err
	}
	return graph.WriteFileAtomic(path, buf.Bytes())
}

// Fit is one task of a one-dimensional regression to draw with
// PlotFits.
type Fit struct {
	Title              string
	X, Truth           []float64   // the true function on a grid of x
	SupportX, SupportY []float64   // the points adapted to
	Steps              []int       // numbers of inner steps: at most 3
	Preds              [][]float64 // the model's outputs at X after each of Steps
}

// PlotFits draws one panel per task: the true function, the support
// points, and the model's fit after each number of inner steps, with one
// legend for all (as Finn et al. 2017, figure 2), and writes the PNG to
// path.
func PlotFits(path string, fits []Fit) (err error) {
	if len(fits) == 0 {
		return fmt.Errorf("monitor: PlotFits: no tasks")
	}
	for i, f := range fits {
		if len(f.Truth) != len(f.X) || len(f.SupportY) != len(f.SupportX) || len(f.Preds) != len(f.Steps) || len(f.Steps) > 3 {
			return fmt.Errorf("monitor: PlotFits: task %d: %d x and %d truth, %d support x and %d y, %d steps (at most 3) and %d predictions",
				i, len(f.X), len(f.Truth), len(f.SupportX), len(f.SupportY), len(f.Steps), len(f.Preds))
		}
		for j, p := range f.Preds {
			if len(p) != len(f.X) {
				return fmt.Errorf("monitor: PlotFits: task %d: %d predictions after %d steps, want %d", i, len(p), f.Steps[j], len(f.X))
			}
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("monitor: drawing %s: %v", path, r)
		}
	}()
	n := len(fits)
	const panelW, panelH, legendW = 4 * vg.Inch, 3.5 * vg.Inch, 2.4 * vg.Inch
	img := vgimg.New(panelW*vg.Length(n)+legendW, panelH)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: n, PadX: 2 * vg.Millimeter, PadY: vg.Millimeter,
		PadTop: vg.Millimeter, PadBottom: vg.Millimeter, PadLeft: vg.Millimeter, PadRight: 2 * vg.Millimeter}
	panels := draw.Crop(dc, 0, -legendW, 0, 0)
	legend := plot.NewLegend()
	legend.Left, legend.Top = true, true
	legend.YOffs = -vg.Inch / 4
	styles := []struct {
		col  color.Color
		dash []vg.Length
	}{
		{color.NRGBA{0x2c, 0xa0, 0x2c, 0xff}, []vg.Length{vg.Points(2), vg.Points(2)}},
		{color.NRGBA{0x1f, 0x77, 0xb4, 0xff}, []vg.Length{vg.Points(6), vg.Points(2)}},
		{color.NRGBA{0xd6, 0x27, 0x28, 0xff}, nil},
	}
	for t, f := range fits {
		p := plot.New()
		p.Title.Text = f.Title
		p.X.Label.Text = "x"
		if len(f.X) > 0 {
			p.X.Min, p.X.Max = slices.Min(f.X), slices.Max(f.X)
		}
		p.Add(plotter.NewGrid())
		add := func(label string, th plot.Thumbnailer) {
			if t == 0 { // one legend for all panels
				legend.Add(label, th)
			}
		}
		line := func(y []float64) plotter.XYs {
			xy := make(plotter.XYs, len(f.X))
			for i := range xy {
				xy[i] = plotter.XY{X: f.X[i], Y: y[i]}
			}
			return xy
		}
		truth, err := plotter.NewLine(line(f.Truth))
		if err != nil {
			return err
		}
		truth.Color, truth.Width = color.Black, vg.Points(2)
		p.Add(truth)
		add("ground truth", truth)
		for k, s := range f.Steps {
			ln, err := plotter.NewLine(line(f.Preds[k]))
			if err != nil {
				return err
			}
			ln.Color, ln.Width, ln.Dashes = styles[k].col, vg.Points(1.5), styles[k].dash
			p.Add(ln)
			label := fmt.Sprintf("after %d steps", s)
			switch s {
			case 0:
				label = "pre-update"
			case 1:
				label = "after 1 step"
			}
			add(label, ln)
		}
		support := make(plotter.XYs, len(f.SupportX))
		for k := range support {
			support[k] = plotter.XY{X: f.SupportX[k], Y: f.SupportY[k]}
		}
		sc, err := plotter.NewScatter(support)
		if err != nil {
			return err
		}
		sc.Color, sc.Shape, sc.Radius = color.NRGBA{0x94, 0x67, 0xbd, 0xff}, draw.PyramidGlyph{}, vg.Points(4)
		p.Add(sc)
		add(fmt.Sprintf("the %d points adapted to", len(support)), sc)
		p.Draw(tiles.At(panels, t, 0))
	}
	legend.Draw(draw.Crop(dc, panelW*vg.Length(n), 0, 0, 0))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return err
	}
	return graph.WriteFileAtomic(path, buf.Bytes())
}
