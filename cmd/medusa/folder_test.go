package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFolder writes classes class folders of n colour images of 12×12
// pixels under a new directory: each class its own hue, each image its
// own noise.
func writeFolder(t *testing.T, classes, n int) string {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 1))
	for c := range classes {
		cd := filepath.Join(dir, fmt.Sprintf("class%02d", c))
		if err := os.Mkdir(cd, 0o755); err != nil {
			t.Fatal(err)
		}
		for k := range n {
			img := image.NewNRGBA(image.Rect(0, 0, 12, 12))
			for i := range img.Pix {
				img.Pix[i] = uint8(rng.IntN(64)) + uint8(c*37*(i%4+1))
				if i%4 == 3 {
					img.Pix[i] = 255
				}
			}
			img.Set(c%12, k%12, color.White)
			var buf bytes.Buffer
			if err := png.Encode(&buf, img); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(cd, fmt.Sprintf("%d.png", k)), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// TestFolderTask: a folder of colour class folders trains and tests with
// either backbone (MAML on the ConvNet, MAML++ on ResNet-12), validation
// choosing the checkpoint, with augmentation; eval reads the checkpoint
// back; bad combinations are refused.
func TestFolderTask(t *testing.T) {
	data := writeFolder(t, 20, 4)
	for backbone, learner := range map[string]string{"convnet": "maml", "resnet12": "mamlpp"} {
		t.Run(backbone, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run.safetensors")
			stdout, stderr, err := runCLI("train", "--task", "folder", "--data", data, "--ways", "2", "--query", "2", "--eval-query", "2", "--learner", learner, "--inner-steps", "2",
				"--backbone", backbone, "--filters", "2", "--blocks", "2", "--image-size", "16", "--augment", "--iters", "3", "--meta-batch", "2",
				"--eval-tasks", "4", "--eval-steps", "1", "--val-every", "2", "--val-tasks", "2", "--out", out)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr)
			}
			for _, want := range []string{"16×16×3 images", "12 meta-training, 3 meta-validation and 5 meta-test classes", "testing the parameters of iteration", "test accuracy"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
			if stdout, stderr, err := runCLI("eval", "--checkpoint", out, "--tasks", "2", "--out", ""); err != nil || !strings.Contains(stdout, "accuracy") {
				t.Errorf("eval: %v\n%s%s", err, stdout, stderr)
			}
		})
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--task", "folder"}, "needs --data"},
		{[]string{"--task", "mnist", "--augment"}, "for --task folder"},
		{[]string{"--task", "mnist", "--backbone", "vgg"}, "want convnet or resnet12"},
		{[]string{"--learner", "anil", "--step-rates"}, "options of --learner maml"},
		{[]string{"--learner", "mamlpp", "--grad-checkpoint"}, "without MAML++'s options"},
	} {
		if _, _, err := runCLI(append([]string{"train"}, c.args...)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("train %v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}
