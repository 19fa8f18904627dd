package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

func runEval(args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	err = evalCmd(context.Background(), args, &o, &e)
	return o.String(), e.String(), err
}

// testMeta is the metadata medusa train writes for a 1-8-1 ReLU network,
// with the flags given changed, or removed when their value is "".
func testMeta(t *testing.T, change map[string]string) map[string]string {
	t.Helper()
	flags := map[string]string{"learner": "maml", "task": "sinusoid", "hidden": "8", "activation": "relu", "inner-lr": "0.01", "seed": "3"}
	for k, v := range change {
		if v == "" {
			delete(flags, k)
		} else {
			flags[k] = v
		}
	}
	b, err := json.Marshal(flags)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"learner": flags["learner"], "task": flags["task"], "iterations": "0", flagsKey: string(b)}
}

// saveTestCheckpoint writes freshly initialised parameters of a 1-hidden-1
// network with the given metadata.
func saveTestCheckpoint(t *testing.T, path string, hidden []int, meta map[string]string) {
	t.Helper()
	p, err := nets.MLP{In: 1, Out: 1, Hidden: hidden}.Init(rand.New(rand.NewPCG(1, 2)), tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	ck := graph.NewCheckpoint(p)
	ck.Meta = meta
	if err := graph.SaveCheckpoint(path, ck); err != nil {
		t.Fatal(err)
	}
}

func TestEvalRepeatsTrain(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "m.safetensors")
	trainOut, stderr, err := runCLI("train", "--iters", "5", "--meta-batch", "2", "--hidden", "8", "--shots", "5",
		"--eval-tasks", "20", "--eval-steps", "3", "--seed", "4", "--out", ckpt)
	if err != nil {
		t.Fatalf("train: %v\n%s", err, stderr)
	}
	adapt, fits := filepath.Join(dir, "adapt.png"), filepath.Join(dir, "fits.png")
	out, stderr, err := runEval("--checkpoint", ckpt, "--tasks", "20", "--eval-steps", "3", "--out", adapt, "--fits", fits)
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, stderr)
	}
	// With the checkpoint's seed and K, eval draws the tasks train's final
	// evaluation drew, and reports the same numbers.
	row := regexp.MustCompile(`(?m)^ +[0-9]+ +[0-9.]+ +±[0-9.]+$`)
	header := regexp.MustCompile(`(?m)^test MSE on .*$`)
	if h := header.FindString(out); h == "" || h != header.FindString(trainOut) {
		t.Errorf("eval header %q; train's %q", h, header.FindString(trainOut))
	}
	rows := row.FindAllString(out, -1)
	if len(rows) != 4 {
		t.Fatalf("eval printed %d rows; want steps 0 to 3:\n%s", len(rows), out)
	}
	want := row.FindAllString(trainOut, -1) // steps 0, 1 and 3
	if len(want) != 3 || rows[0] != want[0] || rows[1] != want[1] || rows[3] != want[2] {
		t.Errorf("eval rows:\n%s\ntrain's:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(out, "maml checkpoint "+ckpt+": MLP 1-8-1 relu on sinusoid, float32, 5 iterations, seed 4") {
		t.Errorf("eval did not describe the checkpoint:\n%s", out)
	}
	// 6 × 4 inches, and three 4 × 3.5 inch panels and a 2.4 inch legend,
	// at 96 dots per inch.
	if w, h := pngSize(t, adapt); w != 576 || h != 384 {
		t.Errorf("adaptation plot is %d×%d; want 576×384", w, h)
	}
	if w, h := pngSize(t, fits); w != 1382 || h != 336 {
		t.Errorf("fits plot is %d×%d; want 1382×336", w, h)
	}

	// Another seed draws other tasks.
	other, otherErr, err := runEval("--checkpoint", ckpt, "--tasks", "20", "--steps", "1", "--seed", "5", "--out", "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(otherErr, "--steps is now --eval-steps") {
		t.Errorf("eval --steps does not say it is now --eval-steps:\n%s", otherErr)
	}
	if r := row.FindAllString(other, -1); len(r) != 2 || r[0] == rows[0] {
		t.Errorf("--seed 5 rows %q; want two rows differing from seed 4's %q", r, rows[0])
	}

	// --shots and --query set the test tasks' shape.
	shaped, _, err := runEval("--checkpoint", ckpt, "--tasks", "20", "--eval-steps", "1", "--shots", "3", "--query", "7", "--out", "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(shaped, "(K=3 support, 7 query points)") {
		t.Errorf("eval --shots 3 --query 7:\n%s\nwant tasks of 3 support and 7 query points", shaped)
	}
}

func TestEvalBadInput(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	saveTestCheckpoint(t, good, []int{8}, testMeta(t, nil))
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.safetensors")
	if err := os.WriteFile(truncated, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	variant := func(name string, change map[string]string) string {
		m := testMeta(t, change)
		if name == "noflags" {
			delete(m, flagsKey)
		}
		p := filepath.Join(dir, name+".safetensors")
		saveTestCheckpoint(t, p, []int{8}, m)
		return p
	}
	mtl := variant("mtl", map[string]string{"learner": "mtl"})
	noFlags := variant("noflags", nil)
	badLR := variant("badlr", map[string]string{"inner-lr": "-1"})
	badHidden := variant("badhidden", map[string]string{"hidden": "8;8"})
	wrongNet := variant("wrongnet", map[string]string{"hidden": "16"})
	deeper := variant("deeper", map[string]string{"hidden": "8,8"})
	otherTask := variant("omniglot", map[string]string{"task": "omniglot"})
	classify := variant("classify", map[string]string{"task": "classification"})
	out := filepath.Join(dir, "adapt.png")
	for _, tt := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{}, true, "--checkpoint FILE is required"},
		{[]string{"--checkpoint", good, "--tasks", "0"}, true, "--tasks 0: must be at least 1"},
		{[]string{"--checkpoint", good, "--steps", "-1"}, true, "--eval-steps -1"},
		{[]string{"--checkpoint", good, "--shots", "-1"}, true, "--shots -1"},
		{[]string{"--checkpoint", good, "--fits", filepath.Join(dir, "no", "f.png")}, true, "cannot write there"},
		{[]string{"--checkpoint", good, "--seed", "x"}, true, "invalid argument"},
		{[]string{"--checkpoint", filepath.Join(dir, "missing.safetensors"), "--out", out}, false, "cannot read checkpoint: graph: LoadParams: open " + filepath.Join(dir, "missing.safetensors")},
		{[]string{"--checkpoint", truncated, "--out", out}, false, truncated + ": not a valid safetensors file"},
		{[]string{"--checkpoint", mtl}, false, mtl + ": the recorded settings are refused: unknown flag: --inner-lr"}, // a multi-task checkpoint recording train's flags
		{[]string{"--checkpoint", mtl, "--out", out}, false, "--out is for checkpoints of medusa train; " + mtl + " is one of medusa mtl"},
		{[]string{"--checkpoint", mtl, "--out", ""}, false, mtl + ": the recorded settings are refused"}, // no file asked for: past the flags' check
		{[]string{"--checkpoint", noFlags, "--out", out}, false, noFlags + " does not record the settings of its run"},
		{[]string{"--checkpoint", otherTask, "--out", out}, false, otherTask + ": the recorded settings are refused: --task omniglot needs --data"},
		{[]string{"--checkpoint", badLR, "--out", out}, false, "--inner-lr -1"},
		{[]string{"--checkpoint", badHidden, "--out", out}, false, `--hidden "8;8"`},
		{[]string{"--checkpoint", wrongNet, "--out", out}, false, wrongNet + ": the checkpoint does not fit the run it records: "},
		{[]string{"--checkpoint", deeper, "--out", out}, false, "4 parameters, want 6"},
		{[]string{"--checkpoint", classify, "--fits", out}, false, "--fits draws the sinusoid fits"},
	} {
		_, stderr, err := runEval(tt.args...)
		var ue *usageError
		if err == nil || errors.As(err, &ue) != tt.usage {
			t.Errorf("eval %v: err = %v; want a usage error: %v", tt.args, err, tt.usage)
			continue
		}
		msg := err.Error()
		if tt.usage {
			msg = stderr
		} else if strings.Contains(msg, "\n") {
			t.Errorf("eval %v: error %q is more than one line", tt.args, msg)
		}
		if !strings.Contains(msg, tt.want) {
			t.Errorf("eval %v: message %q; want it to contain %q", tt.args, msg, tt.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed eval wrote a plot")
	}
}
