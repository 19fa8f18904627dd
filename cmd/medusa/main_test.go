package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/monitor"
)

func runCLI(args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	err = run(context.Background(), args, &o, &e)
	return o.String(), e.String(), err
}

func TestBadUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string // in the one-line message
	}{
		{[]string{}, "Usage"},
		{[]string{"fly"}, `unknown command "fly"`},
		{[]string{"train", "--iters", "0"}, "--iters 0: must be at least 1"},
		{[]string{"train", "--iters", "ten"}, "invalid argument"},
		{[]string{"train", "--hidden", "40,0"}, "width 0 must be between 1 and 65536"},
		{[]string{"train", "--hidden", "40,1000000"}, "width 1000000 must be between"},
		{[]string{"train", "--hidden", "40,x"}, `"x" is not a whole number`},
		{[]string{"train", "--activation", "swish"}, `--activation "swish"`},
		{[]string{"train", "--learner", "reptyle"}, `--learner "reptyle"`},
		{[]string{"train", "--learner", "fomaml", "--grad-checkpoint"}, "--grad-checkpoint applies to second-order learners"},
		{[]string{"train", "--task", "imagenet"}, `--task "imagenet"`},
		{[]string{"train", "--task", "omniglot"}, "--task omniglot needs --data"},
		{[]string{"train", "--ways", "3"}, "--ways is for classification tasks"},
		{[]string{"train", "--task", "mnist", "--ways", "1"}, "--ways 1"},
		{[]string{"train", "--dtype", "float16"}, `--dtype "float16"`},
		{[]string{"train", "--meta-batch", "-3"}, "--meta-batch -3"},
		{[]string{"train", "--shots", "-1"}, "--shots -1"},
		{[]string{"train", "--inner-lr", "NaN"}, "--inner-lr NaN"},
		{[]string{"train", "--meta-lr", "-1"}, "--meta-lr -1"},
		{[]string{"train", "--no-such-flag"}, "unknown flag"},
		{[]string{"train", "extra"}, `unexpected argument "extra"`},
		{[]string{"train", "--out", "/no/such/dir/m.safetensors"}, "cannot write there"},
		{[]string{"train", "--device", "gpu"}, `--device "gpu": want auto, cpu, cuda or cuda:N`},
		{[]string{"train", "--device", "cuda:-1"}, `--device "cuda:-1"`},
		{[]string{"mtl", "--device", "tpu"}, `--device "tpu"`},
		{[]string{"eval", "--checkpoint", "x", "--device", "cuda:x"}, `--device "cuda:x"`},
		// Values that would exhaust memory or never finish a step.
		{[]string{"train", "--meta-batch", "1000000000"}, "--meta-batch 1000000000: must be at most 10000"},
		{[]string{"train", "--shots", "1000000000"}, "--shots 1000000000: must be at most 100000"},
		{[]string{"train", "--query", "1000000000"}, "--query 1000000000: must be at most 100000"},
		{[]string{"train", "--inner-steps", "1000000000"}, "--inner-steps 1000000000: must be at most 1000"},
		{[]string{"train", "--eval-steps", "1000000000"}, "--eval-steps 1000000000: must be at most 1000"},
		{[]string{"train", "--eval-query", "1000000000"}, "--eval-query 1000000000: must be at most 100000"},
		{[]string{"train", "--eval-tasks", "1000000000"}, "--eval-tasks 1000000000: must be at most 100000"},
		{[]string{"mtl", "--batch", "1000000000"}, "--batch 1000000000: must be at most 10000000"},
		{[]string{"mtl", "--train-rows", "1000000000"}, "--train-rows 1000000000: must be at most 10000000"},
		{[]string{"eval", "--checkpoint", "x", "--steps", "1000000000"}, "--eval-steps 1000000000: must be at most 1000"},
		{[]string{"eval", "--checkpoint", "x", "--shots", "1000000000"}, "--shots 1000000000: must be at most 100000"},
		{[]string{"eval", "--checkpoint", "x", "--query", "1000000000"}, "--query 1000000000: must be at most 100000"},
		{[]string{"eval", "--checkpoint", "x", "--tasks", "1000000000"}, "--tasks 1000000000: must be at most 100000"},
	}
	for _, tt := range tests {
		_, stderr, err := runCLI(tt.args...)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("medusa %v: err = %v; want a usage error (exit status 2)", tt.args, err)
			continue
		}
		if !strings.Contains(stderr, tt.want) {
			t.Errorf("medusa %v: stderr = %q; want it to contain %q", tt.args, stderr, tt.want)
		}
		if !strings.Contains(stderr, "Usage") {
			t.Errorf("medusa %v: stderr = %q; want the usage text", tt.args, stderr)
		}
		if first := strings.SplitN(stderr, "\n", 2)[0]; len(tt.args) > 0 && !strings.HasPrefix(first, "medusa: ") {
			t.Errorf("medusa %v: first line = %q; want one line starting \"medusa: \"", tt.args, first)
		}
		if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
			t.Errorf("medusa %v: stderr has a stack trace: %q", tt.args, stderr)
		}
	}
}

func TestHelp(t *testing.T) {
	_, stderr, err := runCLI("train", "--help")
	if err != nil {
		t.Fatalf("train --help: %v", err)
	}
	for _, flag := range []string{"--learner", "--task", "--iters", "--meta-batch", "--shots", "--inner-steps", "--inner-lr",
		"--meta-lr", "--hidden", "--activation", "--dtype", "--seed", "--out", "--eval-tasks"} {
		if !strings.Contains(stderr, flag) {
			t.Errorf("train --help does not explain %s", flag)
		}
	}
	stdout, _, err := runCLI("--help")
	if err != nil || !strings.Contains(stdout, "train") {
		t.Errorf("--help = %q, %v; want the command overview", stdout, err)
	}
}

func TestTrainSmallDeterministic(t *testing.T) {
	dir := t.TempDir()
	var params [2][]float64
	for i := range params {
		out := filepath.Join(dir, "run"+string(rune('a'+i))+".safetensors")
		stdout, stderr, err := runCLI("train", "--iters", "30", "--meta-batch", "4", "--hidden", "8,8",
			"--eval-tasks", "10", "--eval-steps", "3", "--seed", "7", "--out", out)
		if err != nil {
			t.Fatalf("train: %v\n%s", err, stderr)
		}
		for _, want := range []string{"test MSE on 10 fresh tasks", "\n      0 ", "\n      1 ", "\n      3 "} {
			if !strings.Contains(stdout, want) {
				t.Errorf("train output lacks %q:\n%s", want, stdout)
			}
		}
		ck, err := graph.LoadCheckpoint(out)
		if err != nil {
			t.Fatal(err)
		}
		p, meta := ck.Params, ck.Meta
		if meta["iterations"] != "30" || meta["learner"] != "maml" {
			t.Errorf("checkpoint metadata = %v", meta)
		}
		if got := p.Names(); len(got) != 6 || got[0] != "layers.0.weight" || got[5] != "layers.2.bias" {
			t.Errorf("checkpoint names = %v", got)
		}
		params[i] = p.Flatten()
	}
	for j := range params[0] {
		if math.Float64bits(params[0][j]) != math.Float64bits(params[1][j]) {
			t.Fatalf("two runs with seed 7 differ at parameter %d: %v vs %v", j, params[0][j], params[1][j])
		}
	}
}

func TestTrainNaNStops(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.safetensors")
	_, stderr, err := runCLI("train", "--iters", "20", "--meta-batch", "2", "--hidden", "4",
		"--inner-lr", "1e200", "--dtype", "float64", "--eval-tasks", "0", "--out", out)
	if err == nil {
		t.Fatal("training with --inner-lr 1e200: no error")
	}
	if !strings.Contains(stderr, "stopped at iteration 1") || !strings.Contains(err.Error(), "not finite") {
		t.Errorf("stderr = %q, err = %v; want the iteration and 'not finite' named", stderr, err)
	}
	if _, _, err := graph.LoadParams(out); err != nil {
		t.Errorf("the last good parameters were not saved: %v", err)
	}
}

func TestTrainInterrupted(t *testing.T) {
	// Cancel the context from the progress writer after a few iterations,
	// as a signal arriving mid-run would.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := filepath.Join(t.TempDir(), "m.safetensors")
	var o bytes.Buffer
	e := &cancelAfter{lines: 3, cancel: cancel}
	err := run(ctx, []string{"train", "--iters", "1000", "--log-every", "1", "--meta-batch", "2", "--hidden", "4", "--out", out}, &o, e)
	if err == nil || !strings.Contains(err.Error(), "interrupted after 3 of 1000") {
		t.Fatalf("cancelled training: err = %v; want interrupted after 3 of 1000 iterations", err)
	}
	_, meta, err := graph.LoadParams(out)
	if err != nil {
		t.Fatalf("parameters were not saved on interrupt: %v", err)
	}
	if meta["iterations"] != "3" {
		t.Errorf("saved iterations = %q; want 3", meta["iterations"])
	}
}

// cancelAfter calls cancel once it has been written the given number of
// progress lines.
type cancelAfter struct {
	lines  int
	cancel func()
	buf    bytes.Buffer
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.buf.Write(p)
	if strings.Count(c.buf.String(), "iter ") >= c.lines {
		c.cancel()
	}
	return len(p), nil
}

func TestMTLBadUsage(t *testing.T) {
	dir := t.TempDir()
	ragged := filepath.Join(dir, "ragged.csv")
	if err := os.WriteFile(ragged, []byte("a,b,y\n1,2,3\n4,5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	words := filepath.Join(dir, "words.csv")
	if err := os.WriteFile(words, []byte("a,b,y\n1,2,3\n4,five,6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.csv")
	if err := os.WriteFile(huge, []byte("a,b,y\n1,2,3\n4,1e308,6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args  []string
		usage bool   // a usage error (exit 2) rather than a run error
		want  string // in the message
	}{
		{[]string{"--task", "csv", "--csv", huge, "--targets", "y:regression"}, false, `line 3 column 2 ("b")`},
		{[]string{"--weighting", "best"}, true, "want one of ew, uw, gradnorm, dwa, pcgrad, mgda, cagrad, imtl, nash"},
		{[]string{"--weighting", "moco:beta=2"}, true, "want Beta in (0, 1]"},
		{[]string{"--weighting", "dbmtl:b=1"}, true, `dbmtl has no setting "b"; its settings are beta, beta_sigma`},
		{[]string{"--weighting", "famo:min_losses=0/0"}, true, "famo:min_losses=0/0"}, // the synthetic problem has 3 tasks
		{[]string{"--task", "imagenet"}, true, `--task "imagenet"`},
		{[]string{"--task", "csv"}, true, "needs --csv"},
		{[]string{"--task", "csv", "--csv", ragged, "--targets", "y:ordinal"}, true, `unknown target kind "ordinal"`},
		{[]string{"--task", "csv", "--csv", ragged, "--targets", "y:multiclass"}, true, "multiclass:N"},
		{[]string{"--arch", "transformer"}, true, `--arch "transformer"`},
		{[]string{"--batch", "0"}, true, "--batch 0"},
		{[]string{"--lr", "Inf"}, true, "--lr +Inf"},
		{[]string{"--test-frac", "1"}, true, "--test-frac 1"},
		{[]string{"--experts", "100000", "--arch", "mmoe"}, true, "--experts 100000: must be at most 1024"},
		{[]string{"--task", "csv", "--csv", ragged, "--targets", "y:multiclass:200000000"}, true, "2 ≤ N ≤ 65536"},
		{[]string{"--hidden", "", "--weighting", "pcgrad"}, false, "give the trunk a layer"},
		{[]string{"--task", "csv", "--csv", ragged, "--targets", "y:regression"}, false, "line 3"},
		{[]string{"--task", "csv", "--csv", words, "--targets", "y:regression"}, false, `line 3 column 2 ("b")`},
		{[]string{"--task", "csv", "--csv", words, "--targets", "z:regression"}, false, `"z"`},
		{[]string{"--task", "csv", "--csv", filepath.Join(dir, "missing.csv"), "--targets", "y:regression"}, false, "missing.csv"},
	} {
		args := append([]string{"mtl"}, tt.args...)
		_, stderr, err := runCLI(args...)
		var ue *usageError
		if err == nil || errors.As(err, &ue) != tt.usage {
			t.Errorf("medusa %v: err = %v; want a usage error: %v", args, err, tt.usage)
			continue
		}
		if msg := stderr + err.Error(); !strings.Contains(msg, tt.want) {
			t.Errorf("medusa %v: message %q; want it to contain %q", args, msg, tt.want)
		}
		if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
			t.Errorf("medusa %v: stderr has a stack trace: %q", args, stderr)
		}
	}
}

func TestMTLTrainSmall(t *testing.T) {
	for _, w := range []string{"ew", "uw", "pcgrad"} {
		out := filepath.Join(t.TempDir(), "mtl.safetensors")
		stdout, stderr, err := runCLI("mtl", "--weighting", w, "--train-rows", "512", "--test-rows", "256",
			"--steps", "20", "--batch", "64", "--hidden", "16", "--out", out)
		if err != nil {
			t.Fatalf("mtl %s: %v\n%s", w, err, stderr)
		}
		for _, want := range []string{"held-out metrics (256 rows)", "reg1", "reg2", "cls", "noise floor"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("mtl %s output lacks %q:\n%s", w, want, stdout)
			}
		}
		ck, err := graph.LoadCheckpoint(out)
		if err != nil {
			t.Fatal(err)
		}
		p, meta := ck.Params, ck.Meta
		if meta["weighting"] != w || meta["steps"] != "20" || meta["tasks"] != "reg1,reg2,cls" {
			t.Errorf("mtl %s checkpoint metadata = %v", w, meta)
		}
		names := p.Names()
		if names[0] != "trunk.layers.0.weight" || !slices.Contains(names, "heads.cls.layers.0.bias") {
			t.Errorf("mtl %s checkpoint names = %v", w, names)
		}
		if has := slices.Contains(ck.State.Names(), "weighting.log_var"); has != (w == "uw") {
			t.Errorf("mtl %s: checkpoint holds weighting.log_var: %v", w, has)
		}
	}
}

func TestMTLNaNStops(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "huge.csv")
	var b strings.Builder
	b.WriteString("a,b,y,c\n")
	for i := range 40 {
		fmt.Fprintf(&b, "%d,%d,1e300,%d\n", i, i%3, i%2)
	}
	if err := os.WriteFile(data, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "m.safetensors")
	_, stderr, err := runCLI("mtl", "--task", "csv", "--csv", data, "--targets", "y:regression,c:binary",
		"--steps", "5", "--batch", "8", "--hidden", "4", "--dtype", "float64", "--out", out)
	if err == nil || !strings.Contains(err.Error(), "loss of task y") {
		t.Fatalf("training on targets of 1e300: err = %v; want the task y named", err)
	}
	if !strings.Contains(stderr, "stopped at step 1") {
		t.Errorf("stderr = %q; want the step named", stderr)
	}
}

func TestToy(t *testing.T) {
	dir := t.TempDir()
	png, csvPath := filepath.Join(dir, "toy.png"), filepath.Join(dir, "toy.csv")
	stdout, stderr, err := runCLI("toy", "--weighting", "mean,cagrad", "--iters", "300", "--every", "100", "--out", png, "--csv", csvPath)
	if err != nil {
		t.Fatalf("toy: %v\n%s", err, stderr)
	}
	if n := strings.Count(stdout, "\n  cagrad "); n != 6 {
		t.Errorf("toy output has %d cagrad rows; want one per start:\n%s", n, stdout)
	}
	img, err := os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(img, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("toy plot is not a PNG: %v", err)
	}
	rows, err := os.ReadFile(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	// Two methods × six starts × points 0, 100, 200, 300, plus the header.
	if n := strings.Count(string(rows), "\n"); n != 2*6*4+1 {
		t.Errorf("toy CSV has %d lines; want 49", n)
	}
	for _, bad := range []string{"best", "gradnorm", "mean:x=1", "moco:beta=2"} {
		if _, _, err := runCLI("toy", "--weighting", "mean,"+bad); err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("toy with method %s: err = %v; want it named", bad, err)
		}
	}
	if _, _, err := runCLI("toy", "--iters", "100000000", "--every", "1"); err == nil || !strings.Contains(err.Error(), "raise --every") {
		t.Errorf("toy with 10⁸ trajectory points per run: err = %v; want a usage error", err)
	}
}

// TestPreLossLogged: with a log line every 40 iterations the loss before
// adaptation is measured on every fourth, and each record averages the
// steps that measured it.
func TestPreLossLogged(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "run.jsonl")
	_, stderr, err := runCLI("train", "--iters", "80", "--meta-batch", "2", "--hidden", "8", "--eval-tasks", "0",
		"--log", logPath, "--log-every", "40")
	if err != nil {
		t.Fatalf("train: %v\n%s", err, stderr)
	}
	recs, err := monitor.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records; want 2", len(recs))
	}
	for _, r := range recs {
		if pre := r.Losses[0]; pre.Name != "pre" || math.IsNaN(pre.Value) || pre.Value <= 0 {
			t.Errorf("step %d: %v; want a measured loss before adaptation", r.Step, r.Losses)
		}
	}
	if !regexp.MustCompile(`iter 40/80 .*pre [0-9.]+ post`).MatchString(stderr) {
		t.Errorf("progress lines lack the loss before adaptation:\n%s", stderr)
	}
}

// TestLogPlotEval runs the artefact chain a user runs: train with --log
// and --out, resume with --log, plot the log, evaluate the checkpoint.
func TestLogPlotEval(t *testing.T) {
	dir := t.TempDir()
	logPath, ck := filepath.Join(dir, "run.jsonl"), filepath.Join(dir, "m.safetensors")
	if _, stderr, err := runCLI("train", "--iters", "20", "--meta-batch", "2", "--hidden", "8", "--eval-tasks", "0",
		"--log", logPath, "--log-every", "5", "--out", ck); err != nil {
		t.Fatalf("train: %v\n%s", err, stderr)
	}
	if _, stderr, err := runCLI("train", "--resume", ck, "--iters", "30", "--log", logPath, "--log-every", "5"); err != nil {
		t.Fatalf("resume: %v\n%s", err, stderr)
	}
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := monitor.Read(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 6 || recs[0].Step != 5 || recs[5].Step != 30 || recs[5].Losses[1].Name != "post" {
		t.Fatalf("log records: %+v; want steps 5, 10, ..., 30 with pre and post losses", recs)
	}
	png := filepath.Join(dir, "curves.png")
	if _, stderr, err := runCLI("plot", "--log", logPath, "--out", png); err != nil {
		t.Fatalf("plot: %v\n%s", err, stderr)
	}
	adapt := filepath.Join(dir, "adapt.png")
	stdout, stderr, err := runCLI("eval", "--checkpoint", ck, "--tasks", "20", "--steps", "3", "--out", adapt)
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "\n      3 ") {
		t.Errorf("eval output lacks the 3-step row:\n%s", stdout)
	}
	for _, p := range []string{png, adapt} {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("%s is not a PNG: %v", p, err)
		}
	}
}

// TestOutNotAFile checks that --out and --log naming something other than
// a regular file (a directory, a named pipe, a device node the test
// makes) are refused before any work, and that the thing is left as it
// was: the checkpoint writer would otherwise rename its file over it.
func TestOutNotAFile(t *testing.T) {
	dir := t.TempDir()
	targets := map[string]string{"directory": filepath.Join(dir, "sub")}
	if err := os.Mkdir(targets["directory"], 0o755); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err == nil {
		targets["named pipe"] = fifo
	} else {
		t.Logf("no named pipe here: %v", err)
	}
	node := filepath.Join(dir, "null")
	if err := syscall.Mknod(node, syscall.S_IFCHR|0o666, 1<<8|3); err == nil { // /dev/null's numbers
		targets["device"] = node
	} else {
		t.Logf("cannot make a device node (not root?): %v", err)
	}
	for what, path := range targets {
		before, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"train", "--iters", "2", "--eval-tasks", "0", "--out", path},
			{"train", "--iters", "2", "--eval-tasks", "0", "--log", path},
			{"mtl", "--steps", "2", "--out", path},
		} {
			_, stderr, err := runCLI(args...)
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(stderr, "it is a "+what+", not a file to write") {
				t.Errorf("medusa %v: err = %v, stderr %q; want a usage error saying it is %s", args, err, firstLine(stderr), what)
			}
		}
		after, err := os.Lstat(path)
		if err != nil || after.Mode() != before.Mode() {
			t.Errorf("%s %s changed: %v, %v", what, path, after.Mode(), err)
		}
	}
}

// TestOutputDestroysNoInput: an output flag naming the file an input
// flag reads (or another output's, or a hard link to it) is refused
// before anything is written, and the input is left as it was; --out
// naming the checkpoint --resume continues is the default, and allowed.
func TestOutputDestroysNoInput(t *testing.T) {
	dir := t.TempDir()
	at := func(name string) string { return filepath.Join(dir, name) }
	table := "a,b,price\n1,2,3\n4,5,6\n7,8,9\n1,1,1\n2,2,2\n"
	if err := os.WriteFile(at("t.csv"), []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(at("big.csv"), []byte("a,b,price\n1,2,3\n4,5,1e300\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(at("t.csv"), at("link.csv")); err != nil {
		t.Fatal(err)
	}
	mtl := []string{"mtl", "--task", "csv", "--csv", at("t.csv"), "--targets", "price:regression", "--steps", "2", "--hidden", "4"}
	if _, stderr, err := runCLI(append(mtl, "--out", at("m.safetensors"), "--log", at("m.jsonl"))...); err != nil {
		t.Fatalf("mtl: %v\n%s", err, stderr)
	}
	files := []string{"t.csv", "m.safetensors", "m.jsonl"}
	before := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(at(f))
		if err != nil {
			t.Fatal(err)
		}
		before[f] = b
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append(mtl, "--out", at("t.csv")), `--out "` + at("t.csv") + `" is the file --csv reads`},
		{append(mtl, "--out", at("link.csv")), "is the file --csv reads"},
		{append(mtl, "--out", at("x.safetensors"), "--log", at("t.csv")), "is the file --csv reads"},
		{[]string{"mtl", "--resume", at("m.safetensors"), "--steps", "4", "--log", at("m.safetensors")}, "is the file --resume reads"},
		{[]string{"predict", "--checkpoint", at("m.safetensors"), "--csv", at("t.csv"), "--out", at("m.safetensors")}, "is the file --checkpoint reads"},
		{[]string{"predict", "--checkpoint", at("m.safetensors"), "--csv", at("t.csv"), "--out", at("t.csv")}, "is the file --csv reads"},
		{[]string{"predict", "--checkpoint", at("m.safetensors"), "--csv", at("t.csv"), "--out", ""}, "--out must name a file"},
		{[]string{"eval", "--checkpoint", at("m.safetensors"), "--out", at("m.safetensors")}, "is the file --checkpoint reads"},
		{[]string{"eval", "--checkpoint", at("m.safetensors"), "--csv", at("t.csv"), "--fits", at("t.csv")}, "is the file --csv reads"},
		{[]string{"plot", "--log", at("m.jsonl"), "--out", at("m.jsonl")}, "is the file --log reads"},
		// Not clobbers, but refused before anything is written too.
		{[]string{"eval", "--checkpoint", at("m.safetensors"), "--csv", at("big.csv")}, `line 3 column 3 ("price"): "1e300" is larger in magnitude than`},
		{[]string{"eval", "--checkpoint", at("m.safetensors"), "--tasks", "3", "--fits", at("f.png")}, "--tasks, --fits are for checkpoints of medusa train"},
		{[]string{"toy", "--iters", "10", "--out", at("toy.out"), "--csv", at("toy.out")}, "name the same file"},
	} {
		_, stderr, err := runCLI(c.args...)
		if err == nil || !strings.Contains(stderr+err.Error(), c.want) {
			t.Errorf("medusa %v: err = %v, stderr %q; want %q", c.args, err, firstLine(stderr), c.want)
		}
	}
	for _, f := range files {
		if b, err := os.ReadFile(at(f)); err != nil || !bytes.Equal(b, before[f]) {
			t.Errorf("%s changed (%v)", f, err)
		}
	}
	// Continuing a run in place is what --resume does by default.
	if _, stderr, err := runCLI("mtl", "--resume", at("m.safetensors"), "--steps", "4", "--out", at("m.safetensors")); err != nil {
		t.Errorf("resuming in place: %v\n%s", err, stderr)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestOutputLocked checks that a run whose --out or --log another run is
// writing fails at once, saying so, and that the lock goes with the run.
func TestOutputLocked(t *testing.T) {
	dir := t.TempDir()
	out, log := filepath.Join(dir, "m.safetensors"), filepath.Join(dir, "run.log")
	for _, held := range []string{out, log} {
		unlock, err := graph.LockFiles(held)
		if err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"train", "--iters", "2", "--eval-tasks", "0", "--out", out, "--log", log},
			{"mtl", "--steps", "2", "--out", out, "--log", log},
		} {
			_, _, err := runCLI(args...)
			if err == nil || !strings.Contains(err.Error(), "another run is writing "+held) {
				t.Errorf("medusa %v while %s is locked: err = %v; want it to say another run is writing it", args, held, err)
			}
		}
		unlock()
	}
	if _, _, err := runCLI("train", "--iters", "2", "--eval-tasks", "0", "--out", out, "--log", out); err == nil || !strings.Contains(err.Error(), "named for two outputs") {
		t.Errorf("--out and --log the same file: err = %v; want it refused", err)
	}
	// What a run killed while writing its checkpoint leaves: removed.
	stale := filepath.Join(dir, ".m.safetensors.tmp123456")
	if err := os.WriteFile(stale, []byte("half a checkpoint"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := runCLI("train", "--iters", "2", "--eval-tasks", "0", "--out", out, "--log", log); err != nil {
		t.Fatalf("after the locks were released: %v\n%s", err, stderr)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the stale temporary file %s is still there: %v", stale, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".lock") {
			t.Errorf("lock file %s left behind", e.Name())
		}
	}
}

// TestMTLCommand checks that multi-task learning is "medusa mtl" and that
// each command sends the other's checkpoints to it.
func TestMTLCommand(t *testing.T) {
	dir := t.TempDir()
	mtl, meta := filepath.Join(dir, "mtl.safetensors"), filepath.Join(dir, "maml.safetensors")
	if _, stderr, err := runCLI("mtl", "--steps", "2", "--train-rows", "64", "--test-rows", "32", "--out", mtl); err != nil {
		t.Fatalf("medusa mtl: %v\n%s", err, stderr)
	}
	if _, stderr, err := runCLI("train", "--iters", "2", "--eval-tasks", "0", "--out", meta); err != nil {
		t.Fatalf("medusa train: %v\n%s", err, stderr)
	}
	_, stderr, err := runCLI("train", "--learner", "mtl")
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(stderr, "medusa mtl") {
		t.Errorf("train --learner mtl: %v; want a usage error naming medusa mtl\n%s", err, stderr)
	}
	for _, tt := range []struct{ cmd, total, path, want string }{
		{"train", "--iters", mtl, "resume it with medusa mtl --resume " + mtl},
		{"train", "--steps", mtl, "resume it with medusa mtl --resume " + mtl}, // mtl's flag, not train's
		{"mtl", "--steps", meta, "resume it with medusa train --resume " + meta},
		{"mtl", "--iters", meta, "resume it with medusa train --resume " + meta},
	} {
		if _, _, err := runCLI(tt.cmd, "--resume", tt.path, tt.total, "5"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("medusa %s --resume %s: %v; want %q", tt.cmd, tt.path, err, tt.want)
		}
	}
}

// TestHelpEveryCommand checks that "medusa help" lists every command and
// that each command's --help, and "medusa help <command>", explain it.
func TestHelpEveryCommand(t *testing.T) {
	overview, _, err := runCLI("help")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"train", "mtl", "eval", "predict", "toy", "plot", "devices"} {
		if !strings.Contains(overview, "\n  "+cmd+" ") {
			t.Errorf("medusa help does not list %s:\n%s", cmd, overview)
		}
		for _, args := range [][]string{{cmd, "--help"}, {"help", cmd}} {
			stdout, stderr, err := runCLI(args...)
			if err != nil || !strings.Contains(stdout+stderr, "Usage: medusa "+cmd) {
				t.Errorf("medusa %v = %v; want the usage of %s", args, err, cmd)
			}
		}
	}
	// Every flag of mtl is in its own --help.
	_, stderr, _ := runCLI("mtl", "--help")
	for _, flag := range []string{"--weighting", "--arch", "--experts", "--steps", "--batch", "--lr", "--csv", "--targets", "--train-rows"} {
		if !strings.Contains(stderr, flag) {
			t.Errorf("mtl --help does not explain %s", flag)
		}
	}
}
