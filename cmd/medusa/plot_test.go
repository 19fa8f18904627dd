package main

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medusa-ml/medusa/learners/monitor"
)

func runPlot(args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	err = plotCmd(context.Background(), args, &o, &e)
	return o.String(), e.String(), err
}

// writeTestLog writes a log of n steps of a two-task run: losses decaying
// like 1/step, weights trading off, one NaN loss at step 7.
func writeTestLog(t *testing.T, path string, n int, weights bool) {
	t.Helper()
	l, err := monitor.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for s := 1; s <= n; s++ {
		r := monitor.Record{Step: s, LR: 1e-3, Losses: []monitor.Value{
			{Name: "reg", Value: 2 / float64(s) * (1 + 0.3*math.Sin(float64(s)))},
			{Name: "cls", Value: 0.7 / math.Sqrt(float64(s))},
		}}
		if s == 7 {
			r.Losses[1].Value = math.NaN()
		}
		if weights {
			w := 0.5 + 0.4*math.Sin(float64(s)/10)
			r.Weights = []monitor.Value{{Name: "reg", Value: w}, {Name: "cls", Value: 1 - w}}
			r.Metrics = []monitor.Value{{Name: "cls.accuracy", Value: 1 - 0.5/math.Sqrt(float64(s))}}
		}
		if err := l.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// pngSize decodes the PNG at path and returns its size in pixels.
func pngSize(t *testing.T, path string) (w, h int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("%s is not a PNG", path)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Width, cfg.Height
}

func TestPlot(t *testing.T) {
	dir := t.TempDir()
	// Panels are 8 × 3.5 inches at vgimg's 96 dots per inch: 768 × 336.
	for _, tt := range []struct {
		name    string
		weights bool
		smooth  string
		height  int
	}{
		{"losses", false, "1", 336},
		{"losses weights metrics", true, "10", 3 * 336},
	} {
		t.Run(tt.name, func(t *testing.T) {
			log, out := filepath.Join(dir, tt.name+".jsonl"), filepath.Join(dir, tt.name+".png")
			writeTestLog(t, log, 200, tt.weights)
			_, stderr, err := runPlot("--log", log, "--out", out, "--smooth", tt.smooth)
			if err != nil {
				t.Fatalf("plot: %v\n%s", err, stderr)
			}
			if !strings.Contains(stderr, "wrote "+out+" (200 records, steps 1 to 200)") {
				t.Errorf("stderr = %q", stderr)
			}
			if w, h := pngSize(t, out); w != 768 || h != tt.height {
				t.Errorf("plot is %d×%d; want 768×%d", w, h, tt.height)
			}
		})
	}
}

func TestPlotBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty := write("empty.jsonl", "\n\n")
	garbled := write("garbled.jsonl", "{\"step\":1,\"losses\":{\"a\":1}}\n{\"step\":2,\"losses\":{\"a\":1}\n")
	noValues := write("novalues.jsonl", "{\"step\":1,\"losses\":{}}\n{\"step\":2,\"losses\":{\"a\":\"NaN\"}}\n")
	good := filepath.Join(dir, "good.jsonl")
	writeTestLog(t, good, 3, false)
	out := filepath.Join(dir, "out.png")
	for _, tt := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{}, true, "--log FILE is required"},
		{[]string{"--log", good, "--smooth", "0"}, true, "--smooth 0: must be at least 1"},
		{[]string{"--log", good, "--out", filepath.Join(dir, "no", "such", "x.png")}, true, "cannot write there"},
		{[]string{"--log", good, "extra"}, true, `unexpected argument "extra"`},
		{[]string{"--logs", good}, true, "unknown flag: --logs"},
		{[]string{"--log", filepath.Join(dir, "missing.jsonl"), "--out", out}, false, "cannot read log: open " + filepath.Join(dir, "missing.jsonl")},
		{[]string{"--log", empty, "--out", out}, false, empty + ": no records"},
		{[]string{"--log", garbled, "--out", out}, false, garbled + ": line 2: "},
		{[]string{"--log", noValues, "--out", out}, false, noValues + ": monitor: 2 records but no losses"},
	} {
		_, stderr, err := runPlot(tt.args...)
		var ue *usageError
		if err == nil || errors.As(err, &ue) != tt.usage {
			t.Errorf("plot %v: err = %v; want a usage error: %v", tt.args, err, tt.usage)
			continue
		}
		msg := err.Error()
		if tt.usage {
			msg = stderr
			if !strings.HasPrefix(stderr, "medusa: ") {
				t.Errorf("plot %v: stderr = %q; want it to start with \"medusa: \"", tt.args, stderr)
			}
		} else if strings.Contains(msg, "\n") {
			t.Errorf("plot %v: error %q is more than one line", tt.args, msg)
		}
		if !strings.Contains(msg, tt.want) {
			t.Errorf("plot %v: message %q; want it to contain %q", tt.args, msg, tt.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed plot left a file behind")
	}
}
