package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/learners/weighting"
	"github.com/spf13/pflag"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// maxToyPoints bounds the trajectory points kept per run.
const maxToyPoints = 100000

// toyConfig is what "medusa toy" runs.
type toyConfig struct {
	methods []string
	iters   int
	lr      float64
	every   int
	seed    uint64
	out     string
	csv     string
}

// toyMethods are the names "medusa toy" accepts: "mean" (gradient descent
// on the mean loss), equal weighting and the gradient-manipulation
// methods. Uncertainty weighting, GradNorm and DWA need positive losses,
// and the toy losses are negative over much of the plane.
func toyMethods() []string {
	return []string{"mean", "ew", "pcgrad", "mgda", "cagrad", "imtl", "nash"}
}

func newToyMethod(name string) (weighting.Method, error) {
	if name == "mean" {
		return weighting.EW{Mean: true}, nil
	}
	if !slices.Contains(toyMethods(), name) {
		return nil, fmt.Errorf("unknown toy method %q", name)
	}
	return weighting.New(name, 2)
}

func parseToy(args []string, stderr io.Writer) (*toyConfig, error) {
	fs := pflag.NewFlagSet("medusa toy", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	methods := fs.String("weighting", "mean,mgda,pcgrad,cagrad,imtl,nash", "comma-separated methods: "+strings.Join(toyMethods(), ", "))
	iters := fs.Int("iters", 100000, "Adam iterations per run")
	lr := fs.Float64("lr", 1e-3, "Adam learning rate")
	every := fs.Int("every", 100, "record the trajectory every N iterations")
	seed := fs.Uint64("seed", 1, "random seed (PCGrad's task order)")
	out := fs.String("out", "toy.png", "PNG plot of the trajectories (empty: none)")
	csvPath := fs.String("csv", "toy.csv", "CSV of the trajectories (empty: none)")
	usage := usageOf(fs, stderr, `Usage: medusa toy [flags]

Runs multi-task weighting methods on the two-objective toy problem of Liu
et al. (2021, CAGrad) from its six starting points, as CAGrad's toy.py
does (unscaled losses, Adam), and reports for each run where it ended and
at which iteration it reached the Pareto set (the curve where the two
task gradients are anti-parallel, |x1| ≤ 7). Writes the trajectories as a
PNG plot and a CSV table.

Flags:
`)
	fs.Usage = usage
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, nil
		}
		return nil, badUsage(stderr, usage, "%v", err)
	}
	bad := func(format string, a ...any) (*toyConfig, error) { return nil, badUsage(stderr, usage, format, a...) }
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	c := &toyConfig{iters: *iters, lr: *lr, every: *every, seed: *seed, out: *out, csv: *csvPath}
	for _, m := range strings.Split(*methods, ",") {
		m = strings.TrimSpace(m)
		if _, err := newToyMethod(m); err != nil {
			return bad("--weighting: unknown method %q (want one of %s)", m, strings.Join(toyMethods(), ", "))
		}
		c.methods = append(c.methods, m)
	}
	if c.iters < 1 || c.every < 1 {
		return bad("--iters %d, --every %d: both must be at least 1", c.iters, c.every)
	}
	if c.iters/c.every > maxToyPoints {
		return bad("--iters %d, --every %d: more than %d trajectory points per run; raise --every", c.iters, c.every, maxToyPoints)
	}
	if math.IsNaN(c.lr) || math.IsInf(c.lr, 0) || c.lr <= 0 {
		return bad("--lr %v: must be a positive finite number", c.lr)
	}
	for _, f := range []struct{ flag, path string }{{"out", c.out}, {"csv", c.csv}} {
		if f.path != "" {
			if err := checkWritable(f.path); err != nil {
				return bad("--%s %q: %v", f.flag, f.path, err)
			}
		}
	}
	return c, nil
}

// toyResult is one method's run from one start.
type toyResult struct {
	method string
	start  [2]float64
	run    learners.ToyRun
	err    error
}

func toy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseToy(args, stderr)
	if err != nil || c == nil {
		return err
	}
	starts := tasks.ToyStarts()
	results := make([]toyResult, len(c.methods)*len(starts))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range jobs {
				mi, si := k/len(starts), k%len(starts)
				r := &results[k]
				r.method, r.start = c.methods[mi], starts[si]
				m, err := newToyMethod(r.method)
				if err != nil {
					r.err = err
					continue
				}
				rng := rand.New(rand.NewPCG(c.seed, uint64(si)))
				r.run, r.err = learners.RunToy(ctx, m, r.start, learners.ToyConfig{Iters: c.iters, LR: c.lr, Every: c.every}, rng)
			}
		}()
	}
	for k := range results {
		jobs <- k
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("toy runs interrupted: %w", err)
	}
	fmt.Fprintf(stdout, "two-objective toy problem, %d Adam iterations of %g from each start; Pareto set: |x1| <= 7.05, |x2 - p(x1)| < 0.05\n", c.iters, c.lr)
	fmt.Fprintf(stdout, "  %-8s %-14s %10s   %s\n", "method", "start", "reached at", "end point")
	for _, r := range results {
		st := fmt.Sprintf("(%g, %g)", r.start[0], r.start[1])
		if r.err != nil {
			fmt.Fprintf(stdout, "  %-8s %-14s %10s   failed: %v\n", r.method, st, "-", r.err)
			continue
		}
		reached := "never"
		if r.run.Reached >= 0 {
			reached = strconv.Itoa(r.run.Reached)
		}
		fmt.Fprintf(stdout, "  %-8s %-14s %10s   (%.4f, %.4f)\n", r.method, st, reached, r.run.End[0], r.run.End[1])
	}
	if c.csv != "" {
		if err := writeToyCSV(c.csv, results); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s\n", c.csv)
	}
	if c.out != "" {
		if err := plotToy(c.out, c.methods, results); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s\n", c.out)
	}
	return nil
}

func writeToyCSV(path string, results []toyResult) error {
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write([]string{"method", "start_x1", "start_x2", "point", "x1", "x2"})
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for _, r := range results {
		for i, p := range r.run.Trajectory {
			w.Write([]string{r.method, f(r.start[0]), f(r.start[1]), strconv.Itoa(i), f(p[0]), f(p[1])})
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return graph.WriteFileAtomic(path, []byte(b.String()))
}

// plotToy draws one panel per method: contours of the mean loss, the
// Pareto set, and each start's trajectory.
func plotToy(path string, methods []string, results []toyResult) error {
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
			if r.method != name {
				continue
			}
			col := colours[si%len(colours)]
			si++
			if len(r.run.Trajectory) > 0 {
				xy := make(plotter.XYs, len(r.run.Trajectory))
				for i, q := range r.run.Trajectory {
					xy[i] = plotter.XY{X: q[0], Y: q[1]}
				}
				ln, err := plotter.NewLine(xy)
				if err != nil {
					return err
				}
				ln.Color, ln.Width = col, vg.Points(1.2)
				p.Add(ln)
			}
			ends := plotter.XYs{{X: r.start[0], Y: r.start[1]}, {X: r.run.End[0], Y: r.run.End[1]}}
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
