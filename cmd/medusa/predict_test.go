package main

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/medusa-ml/medusa/graph"
)

// TestMTLEvalPredict: eval scores a multi-task checkpoint as mtl did at
// the end of training, and on a table of --csv; predict writes one row of
// predictions per input row, probabilities where the task classifies,
// whose decisions on the held-out rows give the accuracy eval reports.
func TestMTLEvalPredict(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "mt.safetensors")
	train, stderr, err := runCLI("mtl", "--steps", "60", "--train-rows", "400", "--test-rows", "100", "--batch", "64", "--hidden", "16", "--out", ck)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	eval, stderr, err := runCLI("eval", "--checkpoint", ck)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	metrics := train[strings.Index(train, "held-out metrics"):]
	if eval != metrics {
		t.Errorf("eval printed\n%s\nmtl printed\n%s", eval, metrics)
	}

	// The held-out rows, as a CSV file: predict reads their features and
	// eval --csv scores them with their targets.
	r, err := loadMTL(ck, true)
	if err != nil {
		t.Fatal(err)
	}
	rows := filepath.Join(dir, "rows.csv")
	f, err := os.Create(rows)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.test.WriteCSV(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	byCSV, stderr, err := runCLI("eval", "--checkpoint", ck, "--csv", rows)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	strip := func(s string) string { // the noise floors are not known for a file
		var out []string
		for _, l := range strings.Split(s, "\n") {
			out = append(out, strings.SplitN(l, "   (noise floor", 2)[0])
		}
		return strings.Join(out, "\n")
	}
	if strip(byCSV) != strip(metrics) {
		t.Errorf("eval --csv of the held-out rows printed\n%s\nwant\n%s", byCSV, metrics)
	}
	res, err := r.m.Evaluate(t.Context(), r.test)
	if err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(dir, "pred.csv")
	if _, stderr, err := runCLI("predict", "--checkpoint", ck, "--csv", rows, "--out", out); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	pf, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	recs, err := csv.NewReader(pf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != r.test.N+1 || strings.Join(recs[0], ",") != "reg1,reg2,cls" {
		t.Fatalf("%d lines, header %v; want %d lines and reg1,reg2,cls", len(recs), recs[0], r.test.N+1)
	}
	correct := 0
	for i, rec := range recs[1:] {
		p, err := strconv.ParseFloat(rec[2], 64)
		if err != nil || p < 0 || p > 1 {
			t.Fatalf("row %d: probability %q", i, rec[2])
		}
		if (p > 0.5) == (r.test.Y[2][i] == 1) {
			correct++
		}
	}
	if acc := float64(correct) / float64(r.test.N); math.Abs(acc-res[2].Accuracy) > 1e-12 {
		t.Errorf("accuracy of the predicted probabilities %v, eval's %v", acc, res[2].Accuracy)
	}

	// Trained on a CSV file that is gone since, the network still
	// predicts: the checkpoint records its columns.
	data := filepath.Join(dir, "train.csv")
	if err := os.Rename(rows, data); err != nil {
		t.Fatal(err)
	}
	ck2 := filepath.Join(dir, "csv.safetensors")
	if _, stderr, err := runCLI("mtl", "--task", "csv", "--csv", data, "--targets", "reg1:regression,reg2:regression,cls:binary",
		"--steps", "5", "--hidden", "8", "--out", ck2); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	moved := filepath.Join(dir, "moved.csv")
	if err := os.Rename(data, moved); err != nil {
		t.Fatal(err)
	}
	if stdout, stderr, err := runCLI("predict", "--checkpoint", ck2, "--csv", moved, "--out", out); err != nil || !strings.Contains(stdout, "100 rows") {
		t.Errorf("predict after the training data moved: %v\n%s%s", err, stdout, stderr)
	}
	if _, _, err := runCLI("eval", "--checkpoint", ck2); err == nil || !strings.Contains(err.Error(), "rebuilding the run's data") {
		t.Errorf("eval of the run's own held-out rows, whose file moved: %v", err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"predict", "--checkpoint", ck}, "required"},
		{[]string{"predict", "--checkpoint", ck, "--csv", filepath.Join(dir, "none.csv")}, "none.csv"},
		{[]string{"eval", "--checkpoint", ck, "--csv", filepath.Join(dir, "none.csv")}, "none.csv"},
	} {
		if _, _, err := runCLI(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}

// TestMTLBaseline: --baseline single trains one network per task and
// reports Δm against them; another value is refused.
func TestMTLBaseline(t *testing.T) {
	stdout, stderr, err := runCLI("mtl", "--steps", "40", "--train-rows", "400", "--test-rows", "100", "--batch", "64", "--hidden", "16", "--baseline", "single")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	i := strings.Index(stdout, "single-task baselines")
	if i < 0 || !strings.Contains(stdout[i:], "reg1") || !strings.Contains(stdout[i:], "cls") || !strings.Contains(stdout, "Δm ") {
		t.Errorf("no baselines or Δm:\n%s", stdout)
	}
	if _, _, err := runCLI("mtl", "--baseline", "stl"); err == nil || !strings.Contains(err.Error(), "want single") {
		t.Errorf("--baseline stl: %v", err)
	}
}

// TestMTLArchFlags: every architecture's settings are checked.
func TestMTLArchFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--arch", "tower"}, "want hps, mmoe"},
		{[]string{"--arch", "mmoe", "--rep-grad"}, "--arch hps only"},
		{[]string{"--weighting", "dwa", "--rep-grad"}, "not dwa, which weighs their losses"},
		{[]string{"--arch", "ple", "--hidden", ""}, "needs at least one layer"},
		{[]string{"--arch", "dselect-k", "--experts", "2", "--k", "3"}, "k at most --experts"},
		{[]string{"--levels", "0"}, "levels"},
	} {
		if _, _, err := runCLI(append([]string{"mtl"}, c.args...)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("mtl %v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}

// TestMTLMinibatchWithoutLabel: a minibatch without a label of some task
// gives it no contribution under equal weighting; IMTL-G, which divides by
// a gradient's norm, fails the step with a message saying why, and the
// steps before it are saved.
func TestMTLMinibatchWithoutLabel(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("x1,x2,y1,y2\n")
	for i := range 40 {
		y2 := ""
		if i%4 != 0 {
			y2 = strconv.Itoa(i % 2)
		}
		fmt.Fprintf(&b, "%d,%d,%d,%s\n", i, i*i%7, i%3, y2)
	}
	data := filepath.Join(dir, "sparse.csv")
	if err := os.WriteFile(data, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "m.safetensors")
	args := []string{"mtl", "--task", "csv", "--csv", data, "--targets", "y1:regression,y2:binary", "--batch", "1", "--steps", "40", "--hidden", "4", "--out", out}
	if _, stderr, err := runCLI(args...); err != nil {
		t.Fatalf("equal weighting: %v\n%s", err, stderr)
	}
	_, stderr, err := runCLI(append(args, "--weighting", "imtl")...)
	if err == nil || !strings.Contains(err.Error(), "imtl cannot weigh task y2, which has no label in this minibatch") {
		t.Fatalf("err = %v, want a step without a y2 label\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "saved the last completed parameters") {
		t.Errorf("the steps before were not saved:\n%s", stderr)
	}
	if _, err := os.Stat(out); err != nil {
		t.Error(err)
	}
}

// TestPredictNonFiniteParameter: a checkpoint holding a parameter that is
// not finite is refused by name, before any prediction is written.
func TestPredictNonFiniteParameter(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "m.safetensors")
	if _, stderr, err := runCLI("mtl", "--steps", "2", "--train-rows", "100", "--test-rows", "20", "--hidden", "4", "--out", ck); err != nil {
		t.Fatalf("mtl: %v\n%s", err, stderr)
	}
	c, err := graph.LoadCheckpoint(ck)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Params.At(0)
	p.Value.Data().([]float32)[0] = float32(math.NaN())
	if err := graph.SaveCheckpoint(ck, c); err != nil {
		t.Fatal(err)
	}
	rows, out := filepath.Join(dir, "rows.csv"), filepath.Join(dir, "p.csv")
	if err := os.WriteFile(rows, []byte("x1\n1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"predict", "--out", out}, {"eval"}} {
		if _, _, err := runCLI(append(args, "--checkpoint", ck, "--csv", rows)...); err == nil || !strings.Contains(err.Error(), "parameter "+p.Name+" holds a value that is not finite") {
			t.Errorf("%s of a checkpoint with a NaN parameter: %v", args[0], err)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s written", out)
	}
}
