package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners"
	"github.com/medusa-ml/medusa/learners/tasks"
)

// mtlRun is a multi-task checkpoint's network, rebuilt from the settings
// it records, with the run's data.
type mtlRun struct {
	c           *mtlConfig
	m           *learners.MTL
	train, test *tasks.Table
	floors      []float64
}

// tablesKey records in a multi-task checkpoint the layout of its tables
// (a tableLayout, JSON), so that predict rebuilds the network without
// the data.
const tablesKey = "mtl.tables"

// tableLayout is the feature columns and targets a network was trained
// on.
type tableLayout struct {
	Features []string
	Targets  []tasks.Target
}

// loadMTL rebuilds the run of the multi-task checkpoint at path: its
// settings, its network with the checkpoint's parameters, and with data
// set, or when the checkpoint does not record its tables' layout, its
// data (the same rows, from the same seed).
func loadMTL(path string, data bool) (*mtlRun, error) {
	ck, err := graph.LoadCheckpoint(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read checkpoint: %v", err)
	}
	if l := ck.Meta["learner"]; l != "mtl" {
		return nil, fmt.Errorf("%s is a checkpoint of medusa train (learner %q), not of medusa mtl", path, l)
	}
	_, settings, err := storedArgs(ck, path)
	if err != nil {
		return nil, err
	}
	c, err := parseMTL(settings, io.Discard)
	if err != nil || c == nil {
		return nil, fmt.Errorf("%s: the recorded settings are refused: %v", path, err)
	}
	r := &mtlRun{c: c}
	rng := rand.New(rand.NewPCG(c.seed, 0x6d656475)) // as medusa mtl draws them
	var layout tableLayout
	if raw, ok := ck.Meta[tablesKey]; ok && !data {
		if err := json.Unmarshal([]byte(raw), &layout); err != nil || len(layout.Targets) == 0 || len(layout.Features) == 0 {
			return nil, fmt.Errorf("%s: the recorded table layout is not valid: %v", path, err)
		}
		r.train = &tasks.Table{In: len(layout.Features), Features: layout.Features, Targets: layout.Targets}
	} else if r.train, r.test, r.floors, err = c.tables().Load(rng); err != nil {
		return nil, fmt.Errorf("%s: rebuilding the run's data: %w", path, err)
	}
	model, _ := c.model(r.train.In, r.train.Targets)
	params, err := model.Init(rng, c.dtype)
	if err != nil {
		return nil, err
	}
	if err := params.CopyFrom(ck.Params); err != nil {
		return nil, fmt.Errorf("%s: the parameters do not fit the network its settings describe: %v", path, err)
	}
	for i := range params.Len() {
		v, _ := graph.AppendFloat64s(nil, params.At(i).Value)
		if slices.ContainsFunc(v, func(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) }) {
			return nil, fmt.Errorf("%s: parameter %s holds a value that is not finite", path, params.At(i).Name)
		}
	}
	r.m = &learners.MTL{Model: model, Params: params, Targets: r.train.Targets}
	return r, nil
}

// evalMTL is "medusa eval" on a multi-task checkpoint: each task's
// metrics on the run's held-out rows, or on the table of --csv.
func evalMTL(ctx context.Context, e *evalConfig, stdout io.Writer) error {
	r, err := loadMTL(e.checkpoint, e.csv == "")
	if err != nil {
		return err
	}
	defer r.m.Close()
	test, floors := r.test, r.floors
	if e.csv != "" {
		opts := tasks.CSVOptions{Targets: r.train.Targets, Features: r.train.FeatureNames()}
		if r.c.dtype.Size() == 4 {
			opts.MaxAbs = math.MaxFloat32
		}
		if test, err = tasks.LoadCSV(e.csv, opts); err != nil {
			return err
		}
		floors = nil
	}
	_, err = printMetrics(ctx, r.m, test, floors, stdout)
	return err
}

func predictCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("medusa predict")
	checkpoint := fs.String("checkpoint", "", "checkpoint written by medusa mtl --out (required)")
	rows := fs.String("csv", "", "CSV file of the rows to predict for, with a header naming the trained feature columns; other columns are ignored (required)")
	out := fs.String("out", "predictions.csv", "CSV file to write the predictions to")
	bad, ok, err := parseFlags(fs, args, stderr, `Usage: medusa predict --checkpoint FILE --csv ROWS [--out FILE]

Runs a multi-task network trained by "medusa mtl" on new rows and writes
one line of predictions per row, in order: for each task, the predicted
value of a regression, the probability of class 1 of a binary target, and
the probability of each class of a multi-class target (columns NAME:0,
NAME:1, ...).

Flags:
`)
	if !ok {
		return err
	}
	if *checkpoint == "" || *rows == "" {
		return bad("--checkpoint and --csv are required")
	}
	if *out == "" {
		return bad("--out must name a file")
	}
	if err := checkOutputs("out", *out); err != nil {
		return bad("%v", err)
	}
	if err := checkClobber([]fileFlag{{"out", *out}}, []fileFlag{{"checkpoint", *checkpoint}, {"csv", *rows}}); err != nil {
		return bad("%v", err)
	}
	r, err := loadMTL(*checkpoint, false)
	if err != nil {
		return err
	}
	defer r.m.Close()
	maxAbs := 0.0
	if r.c.dtype.Size() == 4 {
		maxAbs = math.MaxFloat32
	}
	x, err := tasks.LoadCSV(*rows, tasks.CSVOptions{Features: r.train.FeatureNames(), MaxAbs: maxAbs})
	if err != nil {
		return err
	}
	pred, err := r.m.Predict(ctx, x)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	cols, err := tasks.WritePredictions(&buf, r.train.Targets, pred)
	if err != nil {
		return err
	}
	if err := graph.WriteFileAtomic(*out, buf.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote predictions for %d rows (%d columns) to %s\n", x.N, cols, *out)
	return nil
}
