package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners"
)

// TestValidation: --val-every keeps the best step's parameters beside
// --out and tests them; a run resumed halfway keeps the same best and
// ends with the same bits; medusa eval reads the best checkpoint; a task
// without validation classes is refused.
func TestValidation(t *testing.T) {
	args := []string{"train", "--task", "classification", "--learner", "metasgd", "--meta-batch", "3", "--hidden", "8",
		"--val-every", "3", "--val-tasks", "20", "--eval-tasks", "20", "--eval-steps", "2"}
	dir := t.TempDir()
	straight, part := filepath.Join(dir, "straight.safetensors"), filepath.Join(dir, "part.safetensors")
	out1, stderr, err := runCLI(append(args, "--iters", "11", "--out", straight)...)
	if err != nil {
		t.Fatalf("straight run: %v\n%s", err, stderr)
	}
	if _, stderr, err := runCLI(append(args, "--iters", "5", "--out", part)...); err != nil {
		t.Fatalf("first part: %v\n%s", err, stderr)
	}
	out2, stderr, err := runCLI("train", "--resume", part, "--iters", "11")
	if err != nil {
		t.Fatalf("resumed run: %v\n%s", err, stderr)
	}
	tested := func(out string) string {
		i := strings.Index(out, "testing the parameters of iteration")
		if i < 0 {
			t.Fatalf("no word of the best parameters being tested:\n%s", out)
		}
		return out[i:]
	}
	if a, b := tested(out1), tested(out2); a != b {
		t.Errorf("the resumed run tests another model:\n%s\nvs\n%s", a, b)
	}
	for _, p := range []string{"", ".best"} {
		p1, s1 := loadBits(t, strings.TrimSuffix(straight, ".safetensors")+p+".safetensors")
		p2, s2 := loadBits(t, strings.TrimSuffix(part, ".safetensors")+p+".safetensors")
		requireSameBits(t, "parameters"+p, p1, p2)
		requireSameBits(t, "state"+p, s1, s2)
	}
	ck, err := graph.LoadCheckpoint(straight)
	if err != nil {
		t.Fatal(err)
	}
	best, err := graph.LoadCheckpoint(learners.BestPath(straight))
	if err != nil {
		t.Fatal(err)
	}
	step := ck.Meta["train.val_best_step"]
	if best.Meta["iterations"] != step || !strings.Contains(out1, "iteration "+step+",") {
		t.Errorf("best step %q, the best checkpoint's iterations %q:\n%s", step, best.Meta["iterations"], out1)
	}
	if _, last := loadBits(t, straight); step != "11" && slices.Equal(last, best.State.Flatten()) {
		t.Errorf("the best checkpoint of step %s holds the last step's state", step)
	}
	if stdout, stderr, err := runCLI("eval", "--checkpoint", learners.BestPath(straight), "--tasks", "5", "--out", ""); err != nil || !strings.Contains(stdout, "accuracy") {
		t.Errorf("eval of the best checkpoint: %v\n%s%s", err, stdout, stderr)
	}

	// Resumed to another file, the best so far goes beside it too.
	other := filepath.Join(dir, "other.safetensors")
	if _, stderr, err := runCLI("train", "--resume", straight, "--iters", "12", "--out", other); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if _, err := os.Stat(learners.BestPath(other)); err != nil {
		t.Errorf("resumed with --out %s: %v", other, err)
	}

	// Resuming without the best checkpoint says so and starts afresh.
	if err := os.Remove(learners.BestPath(part)); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := runCLI("train", "--resume", part, "--iters", "12"); err != nil || !strings.Contains(stderr, "validation starts afresh") {
		t.Errorf("resumed without the best checkpoint: %v\n%s", err, stderr)
	}
	if _, _, err := runCLI("train", "--task", "mnist", "--iters", "2", "--val-every", "1"); err == nil || !strings.Contains(err.Error(), "no validation classes") {
		t.Errorf("--val-every on mnist: %v", err)
	}
}
