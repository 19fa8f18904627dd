package monitor

import (
	"image/color"
	"slices"
	"strings"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners"
	"github.com/medusa-ml/medusa/learners/tasks"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// PlotToy draws the runs of the two-objective toy problem (tasks.Toy),
// one panel per method in the order they first appear: contours of the
// mean loss, the Pareto set, and each start's trajectory and end point;
// and writes the PNG to path.
func PlotToy(path string, results []learners.ToyResult) error {
	var methods []string
	for _, r := range results {
		if !slices.Contains(methods, r.Method) {
			methods = append(methods, r.Method)
		}
	}
	const cols = 3
	rows := (len(methods) + cols - 1) / cols
	const panel = 3.2 * vg.Inch
	img := vgimg.New(panel*cols, panel*vg.Length(rows))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter, PadY: vg.Millimeter,
		PadTop: vg.Millimeter, PadBottom: vg.Millimeter, PadLeft: vg.Millimeter, PadRight: vg.Millimeter}
	grid := toyGrid{}
	pareto := make(plotter.XYs, 0, 141)
	for x1 := -7.0; x1 <= 7.0001; x1 += 0.1 {
		pareto = append(pareto, plotter.XY{X: x1, Y: tasks.ToyPareto(x1)})
	}
	colours := []color.Color{
		color.RGBA{0xd6, 0x27, 0x28, 0xff}, color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0x2c, 0xa0, 0x2c, 0xff},
		color.RGBA{0x94, 0x67, 0xbd, 0xff}, color.RGBA{0xff, 0x7f, 0x0e, 0xff}, color.RGBA{0x8c, 0x56, 0x4b, 0xff},
	}
	for mi, name := range methods {
		p := plot.New()
		p.Title.Text = name
		p.X.Label.Text, p.Y.Label.Text = "x1", "x2"
		p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = -10, 10, -10, 10
		levels := []float64{-15, -10, -5, 0, 2, 4, 6, 8}
		ct := plotter.NewContour(grid, levels, palette.Heat(len(levels), 0.35))
		p.Add(ct)
		pl, err := plotter.NewLine(pareto)
		if err != nil {
			return err
		}
		pl.Width, pl.Color = vg.Points(3), color.Gray{0x40}
		p.Add(pl)
		si := 0
		for _, r := range results {
			if r.Method != name {
				continue
			}
			col := colours[si%len(colours)]
			si++
			if len(r.Run.Trajectory) > 0 {
				xy := make(plotter.XYs, len(r.Run.Trajectory))
				for i, q := range r.Run.Trajectory {
					xy[i] = plotter.XY{X: q[0], Y: q[1]}
				}
				ln, err := plotter.NewLine(xy)
				if err != nil {
					return err
				}
				ln.Color, ln.Width = col, vg.Points(1.2)
				p.Add(ln)
			}
			ends := plotter.XYs{{X: r.Start[0], Y: r.Start[1]}, {X: r.Run.End[0], Y: r.Run.End[1]}}
			sc, err := plotter.NewScatter(ends)
			if err != nil {
				return err
			}
			sc.GlyphStyleFunc = func(i int) draw.GlyphStyle {
				if i == 0 {
					return draw.GlyphStyle{Color: col, Radius: vg.Points(3), Shape: draw.CircleGlyph{}}
				}
				return draw.GlyphStyle{Color: color.Black, Radius: vg.Points(4), Shape: draw.CrossGlyph{}}
			}
			p.Add(sc)
		}
		p.Draw(tiles.At(dc, mi%cols, mi/cols))
	}
	var buf strings.Builder
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return err
	}
	return graph.WriteFileAtomic(path, []byte(buf.String()))
}

// toyGrid is the mean loss (L1 + L2)/2 on a 101×101 grid over [−10, 10]².
type toyGrid struct{}

func (toyGrid) Dims() (c, r int) { return 101, 101 }
func (toyGrid) X(c int) float64  { return -10 + 0.2*float64(c) }
func (toyGrid) Y(r int) float64  { return -10 + 0.2*float64(r) }
func (g toyGrid) Z(c, r int) float64 {
	f, _ := tasks.Toy([2]float64{g.X(c), g.Y(r)})
	return (f[0] + f[1]) / 2
}
