package main

import (
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medusa-ml/medusa/graph"
)

// TestFewShotLearners trains every meta-learner briefly on synthetic
// classification tasks and checks the report: accuracy and F1 after 0, 1
// and 2 steps, and the pooled baseline.
func TestFewShotLearners(t *testing.T) {
	for _, l := range metaLearners {
		stdout, stderr, err := runCLI("train", "--learner", l, "--task", "classification", "--iters", "5", "--meta-batch", "2",
			"--hidden", "8", "--eval-tasks", "10", "--eval-steps", "2")
		if err != nil {
			t.Fatalf("%s: %v\n%s", l, err, stderr)
		}
		for _, want := range []string{"test accuracy on 10 fresh tasks (2-way 5-shot", "macro F1", "\n      2 ", "pooled from 1000 tasks"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%s: output lacks %q:\n%s", l, want, stdout)
			}
		}
	}
}

// TestFewShotMNIST trains a tiny ConvNet on MNIST episodes, saves it, and
// evaluates the checkpoint with medusa eval.
func TestFewShotMNIST(t *testing.T) {
	ck := filepath.Join(t.TempDir(), "conv.safetensors")
	stdout, stderr, err := runCLI("train", "--task", "mnist", "--filters", "2", "--blocks", "2", "--iters", "2", "--meta-batch", "2",
		"--query", "2", "--eval-tasks", "4", "--eval-steps", "1", "--out", ck)
	if err != nil {
		t.Fatalf("train: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "5-way 1-shot") || !strings.Contains(stdout, "ConvNet 28×28, 2 blocks of 2 filters") {
		t.Errorf("train output:\n%s", stdout)
	}
	stdout, stderr, err = runCLI("eval", "--checkpoint", ck, "--episodes", "4", "--steps", "1")
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "test accuracy on 4 fresh tasks") {
		t.Errorf("eval output:\n%s", stdout)
	}
}

// omniglotTree writes chars characters of n 20×20 PNG glyphs each under
// root/Alphabet/characterNN, and returns root.
func omniglotTree(t *testing.T, chars, n int) string {
	t.Helper()
	root := t.TempDir()
	for c := range chars {
		dir := filepath.Join(root, "Alphabet", "character"+string(rune('a'+c)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			img := image.NewGray(image.Rect(0, 0, 20, 20))
			for p := range img.Pix {
				img.Pix[p] = 255
			}
			for k := range 20 {
				img.SetGray((k*(c+1)+i)%20, k, color.Gray{})
			}
			f, err := os.Create(filepath.Join(dir, "glyph_"+string(rune('0'+i))+".png"))
			if err != nil {
				t.Fatal(err)
			}
			if err := png.Encode(f, img); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	return root
}

func TestFewShotOmniglot(t *testing.T) {
	root := omniglotTree(t, 6, 3)
	stdout, stderr, err := runCLI("train", "--task", "omniglot", "--data", root, "--filters", "2", "--blocks", "2", "--iters", "2",
		"--meta-batch", "2", "--query", "1", "--eval-query", "1", "--eval-tasks", "2", "--eval-steps", "1")
	if err != nil {
		t.Fatalf("train on a 6-character tree: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "6 characters, 4 rotations each") {
		t.Errorf("train output:\n%s", stdout)
	}
	// A checkpoint evaluates; one from before the split was seeded is
	// refused, its test characters being another run's.
	ck := filepath.Join(t.TempDir(), "omni.safetensors")
	if _, stderr, err := runCLI("train", "--task", "omniglot", "--data", root, "--filters", "2", "--blocks", "2", "--iters", "1",
		"--meta-batch", "1", "--query", "1", "--eval-query", "1", "--eval-tasks", "0", "--out", ck); err != nil {
		t.Fatalf("train --out: %v\n%s", err, stderr)
	}
	if _, stderr, err := runCLI("eval", "--checkpoint", ck, "--tasks", "2", "--query", "1", "--out", ""); err != nil {
		t.Fatalf("eval: %v\n%s", err, stderr)
	}
	old, err := graph.LoadCheckpoint(ck)
	if err != nil {
		t.Fatal(err)
	}
	delete(old.Meta, "omniglot_split")
	if err := graph.SaveCheckpoint(ck, old); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI("eval", "--checkpoint", ck, "--tasks", "2", "--query", "1", "--out", ""); err == nil || !strings.Contains(err.Error(), "first 1,200") {
		t.Errorf("eval of a checkpoint of the old split: %v", err)
	}

	// Too few images per class for the requested shots and queries.
	_, _, err = runCLI("train", "--task", "omniglot", "--data", root, "--shots", "2", "--query", "5", "--iters", "1")
	if err == nil || !strings.Contains(err.Error(), "2 shot") && !strings.Contains(err.Error(), "need") {
		t.Errorf("3 images per class for 2 shots + 5 queries: err = %v; want the numbers named", err)
	}
	// Too few classes for the ways.
	_, _, err = runCLI("train", "--task", "omniglot", "--data", root, "--ways", "20", "--iters", "1")
	if err == nil || !strings.Contains(err.Error(), "20-way") {
		t.Errorf("20-way episodes from 8 test classes: err = %v; want the numbers named", err)
	}
	// An unreadable PNG is named by its path.
	bad := filepath.Join(root, "Alphabet", "charactera", "glyph_9.png")
	if err := os.WriteFile(bad, []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = runCLI("train", "--task", "omniglot", "--data", root, "--iters", "1")
	if err == nil || !strings.Contains(err.Error(), "glyph_9.png") {
		t.Errorf("a broken PNG: err = %v; want its path named", err)
	}
}

// TestClassificationFiveWays checks that synthetic classification takes
// more than 4 classes (more informative features than the default 2).
func TestClassificationFiveWays(t *testing.T) {
	stdout, stderr, err := runCLI("train", "--task", "classification", "--ways", "5", "--iters", "2", "--meta-batch", "2",
		"--hidden", "4", "--eval-tasks", "4")
	if err != nil {
		t.Fatalf("5-way classification: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "5-way") {
		t.Errorf("output does not describe 5-way tasks:\n%s", stdout)
	}
}

// TestEvaluationBatchIndependent evaluates one ConvNet on MNIST episodes
// adapting 1, 2, 3 and 7 test tasks at a time: the tasks drawn, and so
// the report, must be the same.
func TestEvaluationBatchIndependent(t *testing.T) {
	c, err := parseTrain([]string{"--task", "mnist", "--filters", "2", "--blocks", "2", "--eval-tasks", "7", "--eval-steps", "2", "--eval-query", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	src, err := c.benchmark().Load()
	if err != nil {
		t.Fatal(err)
	}
	model := newModel(c, src)
	var want string
	for _, batch := range []int{2, 1, 3, 7} {
		params, err := model.Init(rand.New(rand.NewPCG(1, 2)), c.dtype)
		if err != nil {
			t.Fatal(err)
		}
		m := newLearner(c, model, params, rand.New(rand.NewPCG(3, 4)))
		c.evalBatch = batch
		var out strings.Builder
		if _, _, err := evaluateMeta(context.Background(), m, src, c, false, &out); err != nil {
			t.Fatal(err)
		}
		m.Close()
		if batch == 2 {
			want = out.String()
			continue
		}
		if out.String() != want {
			t.Errorf("adapting %d tasks at a time:\n%s\nadapting 2:\n%s", batch, out.String(), want)
		}
	}
}

// TestProtoNetCLI trains prototypical networks from the command line on
// MNIST episodes and on synthetic tasks, evaluates the checkpoint, and
// refuses them where they do not apply.
func TestProtoNetCLI(t *testing.T) {
	ck := filepath.Join(t.TempDir(), "pn.safetensors")
	stdout, stderr, err := runCLI("train", "--learner", "protonet", "--task", "mnist", "--filters", "4", "--blocks", "2", "--iters", "3",
		"--meta-batch", "2", "--query", "2", "--eval-tasks", "4", "--out", ck)
	if err != nil {
		t.Fatalf("train: %v\n%s", err, stderr)
	}
	// One row: nothing is adapted. The embedding is as wide as the filters.
	if !strings.Contains(stdout, "support prototypes") || !strings.Contains(stdout, "2 blocks of 4 filters, 4 outputs") ||
		strings.Contains(stdout, "\n      1 ") {
		t.Errorf("train output:\n%s", stdout)
	}
	evalOut, stderr, err := runCLI("eval", "--checkpoint", ck, "--tasks", "4", "--out", "")
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, stderr)
	}
	row := func(s string) string { _, r, _ := strings.Cut(s, "95% interval\n"); return r }
	if row(evalOut) == "" || row(evalOut) != row(stdout[strings.Index(stdout, "test accuracy"):]) {
		t.Errorf("eval:\n%s\ndoes not repeat train's evaluation:\n%s", evalOut, stdout)
	}
	for _, l := range []string{"protonet", "r2d2"} {
		stdout, _, err := runCLI("train", "--learner", l, "--task", "classification", "--iters", "2", "--eval-tasks", "3")
		if err != nil || !strings.Contains(stdout, map[string]string{"protonet": "support prototypes", "r2d2": "a ridge-regression head"}[l]) {
			t.Errorf("%s on synthetic classification: %v\n%s", l, err, stdout)
		}
	}
	for _, args := range [][]string{
		{"train", "--learner", "protonet"}, // sinusoids are regressions
		{"train", "--learner", "r2d2"},
		{"train", "--learner", "protonet", "--task", "mnist", "--inner-lr", "0.1"},
		{"train", "--learner", "protonet", "--task", "mnist", "--grad-checkpoint"},
	} {
		var ue *usageError
		if _, _, err := runCLI(args...); !errors.As(err, &ue) {
			t.Errorf("medusa %v: %v; want a usage error", args, err)
		}
	}
}
