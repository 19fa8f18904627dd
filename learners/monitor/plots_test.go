package monitor

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// pngSize decodes the PNG at path and returns its size in pixels.
func pngSize(t *testing.T, path string) (w, h int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cfg.Width, cfg.Height
}

func TestPlotAdaptation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "adapt.png")
	if err := PlotAdaptation(path, "title", "query MSE", []float64{3, 1, 0.5}, []float64{0.3, 0.1, math.NaN()}); err != nil {
		t.Fatal(err)
	}
	// 6 × 4 inches at 96 dots per inch.
	if w, h := pngSize(t, path); w != 576 || h != 384 {
		t.Errorf("%s is %d×%d; want 576×384", path, w, h)
	}
}

func TestPlotFits(t *testing.T) {
	x := []float64{-1, 0, 1}
	f := Fit{Title: "task", X: x, Truth: []float64{1, 0, 1}, SupportX: []float64{0.5}, SupportY: []float64{0.25},
		Steps: []int{0, 1, 5}, Preds: [][]float64{{0, 0, 0}, {0.5, 0, 0.5}, {1, 0, 1}}}
	path := filepath.Join(t.TempDir(), "fits.png")
	if err := PlotFits(path, []Fit{f, f}); err != nil {
		t.Fatal(err)
	}
	// Two 4 × 3.5 inch panels and a 2.4 inch legend at 96 dots per inch.
	if w, h := pngSize(t, path); w != 998 || h != 336 {
		t.Errorf("%s is %d×%d; want 998×336", path, w, h)
	}
	bad := f
	bad.Preds = bad.Preds[:2]
	if err := PlotFits(path, []Fit{bad}); err == nil {
		t.Error("PlotFits with fewer predictions than steps: no error")
	}
	bad = f
	bad.Preds = [][]float64{{0}, {0}, {0}}
	if err := PlotFits(path, []Fit{bad}); err == nil {
		t.Error("PlotFits with predictions shorter than x: no error")
	}
	if err := PlotFits(path, nil); err == nil {
		t.Error("PlotFits of no tasks: no error")
	}
}
