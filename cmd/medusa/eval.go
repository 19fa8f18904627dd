package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
	"github.com/spf13/pflag"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// evalConfig is what "medusa eval" runs.
type evalConfig struct {
	checkpoint string
	tasks      int
	steps      int
	shots      int // 0: the checkpoint's
	query      int
	seed       uint64
	seedGiven  bool
	given      []string // flags set on the command line
	out        string
	fits       string
	device     string       // --device
	dev        graph.Device // the device opened for it; nil: the CPU
	maxMemory  int64        // --max-memory; 0: none
}

func parseEval(args []string, stderr io.Writer) (*evalConfig, error) {
	fs := pflag.NewFlagSet("medusa eval", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	checkpoint := fs.String("checkpoint", "", "checkpoint written by medusa train --learner maml or fomaml (required)")
	nTasks := fs.Int("tasks", 600, "fresh test tasks")
	episodes := fs.Int("episodes", 0, "the same as --tasks, for classification checkpoints: test episodes")
	steps := fs.Int("steps", 10, "most inner steps: the error is reported after 0, 1, ..., this many")
	shots := fs.Int("shots", 0, "K: support points per test task (0: the K the checkpoint was trained with, or 10)")
	query := fs.Int("query", 100, "query points per test task")
	seed := fs.Uint64("seed", 0, "random seed of the test tasks (default: the checkpoint's, which repeats the evaluation train printed)")
	out := fs.String("out", "adapt.png", "PNG plot of the test error against inner steps (empty: none)")
	device := fs.String("device", "auto", deviceHelp)
	maxMemory := fs.String("max-memory", "", memoryHelp)
	fits := fs.String("fits", "", "PNG plot of three test tasks: the truth, the K points, and the fits before and after 1 and --steps steps (empty: none)")
	usage := usageOf(fs, stderr, `Usage: medusa eval --checkpoint FILE [flags]

Adapts a meta-trained sinusoid model to fresh test tasks, as the end of
"medusa train" does, and prints the query MSE after every number of inner
steps up to --steps (mean and 95% interval, mean ± 1.96·s/√n). Plots the
error against the number of steps, and with --fits the model's fits to
three tasks as in Finn et al. (2017), figure 2.

Flags:
`)
	fs.Usage = usage
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, nil
		}
		return nil, badUsage(stderr, usage, "%v", err)
	}
	bad := func(format string, a ...any) (*evalConfig, error) { return nil, badUsage(stderr, usage, format, a...) }
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	c := &evalConfig{checkpoint: *checkpoint, tasks: *nTasks, steps: *steps, shots: *shots, query: *query,
		seed: *seed, seedGiven: fs.Changed("seed"), out: *out, fits: *fits, device: *device}
	if err := checkDevice(c.device); err != nil {
		return nil, badUsage(stderr, usage, "%v", err)
	}
	fs.Visit(func(f *pflag.Flag) { c.given = append(c.given, f.Name) })
	if *episodes > 0 {
		c.tasks = *episodes
	}
	if c.checkpoint == "" {
		return bad("--checkpoint FILE is required")
	}
	var err error
	if c.maxMemory, err = parseMemory(*maxMemory); err != nil {
		return bad("--max-memory %q: %v", *maxMemory, err)
	}
	if err := checkInts(intFlag{"tasks", c.tasks, 1, maxEvalSets}, intFlag{"steps", c.steps, 1, maxInner},
		intFlag{"shots", c.shots, 0, maxExamples}, intFlag{"query", c.query, 1, maxExamples}); err != nil {
		return bad("%v", err)
	}
	for _, f := range []struct{ flag, path string }{{"out", c.out}, {"fits", c.fits}} {
		if f.path != "" {
			if err := checkWritable(f.path); err != nil {
				return bad("--%s %q: %v", f.flag, f.path, err)
			}
		}
	}
	return c, nil
}

// mamlCheckpoint is a meta-trained sinusoid model read back from a
// checkpoint written by medusa train.
type mamlCheckpoint struct {
	learner    string
	model      nets.MLP
	params     *graph.Params
	innerLR    float64
	iterations string // "" if not recorded
	seed       uint64
	hasSeed    bool
	shots      int // the K it was trained with; 0 if not recorded
}

// loadMAMLCheckpoint reads path and checks that it holds a MAML or
// first-order MAML sinusoid model whose parameters fit the network its
// metadata describes. Errors name the file and what is wrong.
func loadMAMLCheckpoint(path string) (*mamlCheckpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read checkpoint: %v", err)
	}
	f.Close()
	ck, err := graph.LoadCheckpoint(path)
	if err != nil {
		return nil, err
	}
	meta := func(key string) (string, error) {
		v, ok := ck.Meta[key]
		if !ok {
			return "", fmt.Errorf("%s: no %q in the checkpoint's metadata (medusa eval reads checkpoints written by medusa train)", path, key)
		}
		return v, nil
	}
	learner, err := meta("learner")
	if err != nil {
		return nil, err
	}
	if learner != "maml" && learner != "fomaml" {
		return nil, fmt.Errorf("%s is a checkpoint of learner %q; medusa eval evaluates maml and fomaml checkpoints", path, learner)
	}
	task, err := meta("task")
	if err != nil {
		return nil, err
	}
	if task != "sinusoid" {
		return nil, fmt.Errorf("%s was trained on task %q; medusa eval evaluates sinusoid models", path, task)
	}
	m := &mamlCheckpoint{learner: learner, params: ck.Params, iterations: ck.Meta["iterations"]}
	hidden, err := meta("hidden")
	if err != nil {
		return nil, err
	}
	if hidden != "" {
		for _, w := range strings.Split(hidden, "-") {
			n, err := strconv.Atoi(w)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("%s: metadata hidden=%q: want positive widths joined by \"-\"", path, hidden)
			}
			m.model.Hidden = append(m.model.Hidden, n)
		}
	}
	act, err := meta("activation")
	if err != nil {
		return nil, err
	}
	if m.model.Activation, err = nets.ParseActivation(act); err != nil {
		return nil, fmt.Errorf("%s: metadata activation=%q: not an activation", path, act)
	}
	m.model.In, m.model.Out = 1, 1
	lr, err := meta("inner_lr")
	if err != nil {
		return nil, err
	}
	if m.innerLR, err = strconv.ParseFloat(lr, 64); err != nil || math.IsInf(m.innerLR, 0) || !(m.innerLR > 0) {
		return nil, fmt.Errorf("%s: metadata inner_lr=%q: want a positive finite number", path, lr)
	}
	if s, ok := ck.Meta["seed"]; ok {
		if m.seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			return nil, fmt.Errorf("%s: metadata seed=%q: want a whole number", path, s)
		}
		m.hasSeed = true
	}
	if raw, ok := ck.Meta[flagsKey]; ok {
		var flags map[string]string
		if json.Unmarshal([]byte(raw), &flags) == nil {
			if k, err := strconv.Atoi(flags["shots"]); err == nil && k > 0 {
				m.shots = k
			}
		}
	}
	if err := m.checkParams(path); err != nil {
		return nil, err
	}
	return m, nil
}

// checkParams reports whether the parameters are those of m.model, in
// order, all of one dtype.
func (m *mamlCheckpoint) checkParams(path string) error {
	if m.params.Len() == 0 {
		return fmt.Errorf("%s: no parameters", path)
	}
	dt := m.params.At(0).Value.Dtype()
	want, err := m.model.Init(rand.New(rand.NewPCG(0, 0)), dt)
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	net := "1-" + joinInts(m.model.Hidden) + "-1"
	if len(m.model.Hidden) == 0 {
		net = "1-1"
	}
	if m.params.Len() != want.Len() {
		return fmt.Errorf("%s: %d parameter tensors; a %s network has %d", path, m.params.Len(), net, want.Len())
	}
	for i := 0; i < want.Len(); i++ {
		got, w := m.params.At(i), want.At(i)
		if got.Name != w.Name {
			return fmt.Errorf("%s: parameter %d is %q; a %s network's is %q", path, i, got.Name, net, w.Name)
		}
		if !got.Value.Shape().Eq(w.Value.Shape()) {
			return fmt.Errorf("%s: parameter %s has shape %v; a %s network's has %v", path, got.Name, got.Value.Shape(), net, w.Value.Shape())
		}
		if got.Value.Dtype() != dt {
			return fmt.Errorf("%s: parameter %s is %v, the others %v", path, got.Name, got.Value.Dtype(), dt)
		}
	}
	return nil
}

// evalCmd is "medusa eval".
func evalCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseEval(args, stderr)
	if err != nil || c == nil {
		return err
	}
	dev, release, err := openDevice(c.device, stderr)
	if err != nil {
		return err
	}
	defer release()
	c.dev = dev
	if generic, err := evalGeneric(ctx, c, stdout, stderr); generic || err != nil {
		return err
	}
	ck, err := loadMAMLCheckpoint(c.checkpoint)
	if err != nil {
		return err
	}
	if !c.seedGiven {
		if !ck.hasSeed {
			return fmt.Errorf("%s: no \"seed\" in the checkpoint's metadata; give --seed", c.checkpoint)
		}
		c.seed = ck.seed
	}
	if c.shots == 0 {
		c.shots = 10
		if ck.shots > 0 {
			c.shots = ck.shots
		}
	}
	m := &learners.MAML{Model: ck.model, Params: ck.params, Loss: learners.MSE, InnerLR: ck.innerLR, Device: c.dev}
	defer m.Close()
	mem := learners.NewBudget(c.maxMemory)
	test := tasks.Shape{Tasks: min(evalSinusoidChunk, c.tasks), Support: c.shots, Query: c.query, In: 1, Out: 1}
	mem.Add("batches", 2*test.Bytes())
	mem.Add("evaluation", int64(c.steps+1)*(8*int64(c.tasks)+64))
	if err := mem.Check(); err != nil {
		return err
	}
	for _, size := range evalChunks(c.tasks, evalSinusoidChunk) {
		test.Tasks = size
		n, err := m.PrepareEvaluate(test, c.steps)
		if err != nil {
			return graphError("the evaluation", err)
		}
		mem.Add("graphs", n)
	}
	lift, err := enforce(mem, stderr)
	if err != nil {
		return err
	}
	defer lift()
	iters := ""
	if ck.iterations != "" {
		iters = ", " + ck.iterations + " iterations"
	}
	fmt.Fprintf(stdout, "%s checkpoint %s: net 1-%s-1 %v, %v%s, seed %d\n", ck.learner, c.checkpoint,
		joinInts(ck.model.Hidden), ck.model.Activation, ck.params.At(0).Value.Dtype(), iters, c.seed)

	// The same stream as train's final evaluation.
	per, err := adaptationErrors(ctx, m, rand.New(rand.NewPCG(c.seed, 0x74657374)), c)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "test MSE on %d fresh tasks (K=%d support, %d query points), inner step size %g:\n",
		c.tasks, c.shots, c.query, ck.innerLR)
	fmt.Fprintf(stdout, "  %5s  %8s  %s\n", "steps", "mean", "95% interval")
	means, halves := make([]float64, len(per)), make([]float64, len(per))
	for s := range per {
		means[s], halves[s] = learners.MeanCI(per[s])
		fmt.Fprintf(stdout, "  %5d  %8.4f  ±%.4f\n", s, means[s], halves[s])
	}
	if c.out != "" {
		title := fmt.Sprintf("%s on %d fresh sinusoid tasks, K=%d", ck.learner, c.tasks, c.shots)
		if err := plotAdaptation(c.out, title, means, halves); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s\n", c.out)
	}
	if c.fits != "" {
		if err := plotFits(c.fits, m, rand.New(rand.NewPCG(c.seed, 0x66697473)), c.shots, c.steps); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s\n", c.fits)
	}
	return nil
}

// evalSinusoidChunk is how many sinusoid test tasks are adapted at once.
const evalSinusoidChunk = 100

// adaptationErrors returns the query MSE of every test task after 0, 1,
// ..., c.steps inner steps: per[s][t]. It draws the tasks 100 at a time,
// as train's evaluation does, so that the same seed gives the same tasks.
func adaptationErrors(ctx context.Context, m *learners.MAML, rng *rand.Rand, c *evalConfig) ([][]float64, error) {
	ev, err := learners.Assess(ctx, m, learners.Assessment{
		Tasks: c.tasks, Steps: c.steps, Batch: evalSinusoidChunk, DrawUnit: evalSinusoidChunk,
		Draw: func(n int) (*tasks.Batch, error) {
			b, _, err := tasks.Sinusoid{}.Sample(rng, n, c.shots, c.query)
			return b, err
		},
	})
	if errors.Is(err, learners.ErrNonFinite) {
		return nil, fmt.Errorf("%w (the checkpoint's inner step size is %g)", err, m.InnerLR)
	}
	return ev.Loss, err
}

// plotAdaptation draws the mean test error against the number of inner
// steps, with its 95% interval as a band.
func plotAdaptation(path, title string, means, halves []float64) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text, p.Y.Label.Text = "inner gradient steps", "query MSE (mean and 95% interval)"
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
			err = fmt.Errorf("drawing %s: %v", path, r)
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

// fitGrid is the number of points at which fits are drawn over [−5, 5].
const fitGrid = 201

// plotFits draws, for three fresh tasks, the true sine, the K support
// points, and the model's fit before adaptation and after 1 and steps
// inner steps (Finn et al. 2017, figure 2).
func plotFits(path string, m *learners.MAML, rng *rand.Rand, shots, steps int) (err error) {
	const n = 3
	b, ts, err := tasks.Sinusoid{}.Sample(rng, n, shots, 1)
	if err != nil {
		return err
	}
	b.Query = fitGrid
	b.QueryX, b.QueryY = make([]float64, n*fitGrid), make([]float64, n*fitGrid)
	for t := range ts {
		for i := range fitGrid {
			x := -5 + 10*float64(i)/(fitGrid-1)
			b.QueryX[t*fitGrid+i], b.QueryY[t*fitGrid+i] = x, ts[t].F(x)
		}
	}
	preds, err := m.Predict(b, steps)
	if err != nil {
		return err
	}
	for _, p := range preds {
		for _, v := range p {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("the fits diverge (the checkpoint's inner step size is %g)", m.InnerLR)
			}
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("drawing %s: %v", path, r)
		}
	}()
	const panelW, panelH, legendW = 4 * vg.Inch, 3.5 * vg.Inch, 2.4 * vg.Inch
	img := vgimg.New(panelW*n+legendW, panelH)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: n, PadX: 2 * vg.Millimeter, PadY: vg.Millimeter,
		PadTop: vg.Millimeter, PadBottom: vg.Millimeter, PadLeft: vg.Millimeter, PadRight: 2 * vg.Millimeter}
	panels := draw.Crop(dc, 0, -legendW, 0, 0)
	legend := plot.NewLegend()
	legend.Left, legend.Top = true, true
	legend.YOffs = -vg.Inch / 4
	curves := []struct {
		label string
		s     int
		col   color.Color
		dash  []vg.Length
	}{
		{"pre-update", 0, color.NRGBA{0x2c, 0xa0, 0x2c, 0xff}, []vg.Length{vg.Points(2), vg.Points(2)}},
		{"after 1 step", 1, color.NRGBA{0x1f, 0x77, 0xb4, 0xff}, []vg.Length{vg.Points(6), vg.Points(2)}},
		{fmt.Sprintf("after %d steps", steps), steps, color.NRGBA{0xd6, 0x27, 0x28, 0xff}, nil},
	}
	if steps == 1 {
		curves = curves[:2]
	}
	for t, task := range ts {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("A = %.2f, phase = %.2f", task.Amplitude, task.Phase)
		p.X.Label.Text = "x"
		p.X.Min, p.X.Max = -5, 5
		p.Add(plotter.NewGrid())
		add := func(label string, th plot.Thumbnailer) {
			if t == 0 { // one legend for all panels
				legend.Add(label, th)
			}
		}
		line := func(s int) plotter.XYs {
			xy := make(plotter.XYs, fitGrid)
			for i := range xy {
				x := b.QueryX[t*fitGrid+i]
				y := b.QueryY[t*fitGrid+i]
				if s >= 0 {
					y = preds[s][t*fitGrid+i]
				}
				xy[i] = plotter.XY{X: x, Y: y}
			}
			return xy
		}
		truth, err := plotter.NewLine(line(-1))
		if err != nil {
			return err
		}
		truth.Color, truth.Width = color.Black, vg.Points(2)
		p.Add(truth)
		add("ground truth", truth)
		for _, c := range curves {
			ln, err := plotter.NewLine(line(c.s))
			if err != nil {
				return err
			}
			ln.Color, ln.Width, ln.Dashes = c.col, vg.Points(1.5), c.dash
			p.Add(ln)
			add(c.label, ln)
		}
		support := make(plotter.XYs, shots)
		for k := range support {
			support[k] = plotter.XY{X: b.SupportX[t*shots+k], Y: b.SupportY[t*shots+k]}
		}
		sc, err := plotter.NewScatter(support)
		if err != nil {
			return err
		}
		sc.Color, sc.Shape, sc.Radius = color.NRGBA{0x94, 0x67, 0xbd, 0xff}, draw.PyramidGlyph{}, vg.Points(4)
		p.Add(sc)
		add(fmt.Sprintf("the %d points adapted to", shots), sc)
		p.Draw(tiles.At(panels, t, 0))
	}
	legend.Draw(draw.Crop(dc, panelW*n, 0, 0, 0))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return err
	}
	return graph.WriteFileAtomic(path, buf.Bytes())
}
