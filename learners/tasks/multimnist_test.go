package tasks

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// overlay returns pixel (r, c) of a MultiMNIST example built from images a
// (top left) and b (bottom right), written per output pixel: find the
// canvas pixel it samples, then the digit pixels that land there.
func overlay(a, b []byte, r, c int) float64 {
	cr, cc := (2*r+1)*36/56, (2*c+1)*36/56
	var v byte
	if cr < 28 && cc < 28 {
		v = a[cr*28+cc]
	}
	if cr >= 6 && cc >= 6 && cr-6 < 28 && cc-6 < 28 {
		v = max(v, b[(cr-6)*28+cc-6])
	}
	return float64(v) / 255
}

func TestMultiMNIST(t *testing.T) {
	m := loadMNIST(t)
	for _, c := range []struct {
		name string
		src  *ImageSet
	}{{"train", &m.Train}, {"test", &m.Test}} {
		t.Run(c.name, func(t *testing.T) {
			const n = 300
			tab, err := MultiMNIST(rand.New(rand.NewPCG(1, 2)), c.src, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := tab.Validate(); err != nil {
				t.Fatal(err)
			}
			targets := []Target{{Name: "left", Kind: Multiclass, Classes: 10}, {Name: "right", Kind: Multiclass, Classes: 10}}
			if tab.N != n || tab.In != 784 || !slices.Equal(tab.Targets, targets) {
				t.Fatalf("MultiMNIST = %d rows of %d features, targets %v; want %d of 784, %v", tab.N, tab.In, tab.Targets, n, targets)
			}
			// Replay the draws: the right digit of example k is rng.IntN(N).
			rng := rand.New(rand.NewPCG(1, 2))
			for k := 0; k < n; k++ {
				left, right := k, rng.IntN(c.src.N)
				if tab.Y[0][k] != float64(c.src.Labels[left]) || tab.Y[1][k] != float64(c.src.Labels[right]) {
					t.Fatalf("example %d labels (%v, %v); want those of images %d and %d, (%d, %d)",
						k, tab.Y[0][k], tab.Y[1][k], left, right, c.src.Labels[left], c.src.Labels[right])
				}
				a, b := c.src.Image(left), c.src.Image(right)
				for r := 0; r < 28; r++ {
					for col := 0; col < 28; col++ {
						got := tab.X[k*784+r*28+col]
						if want := overlay(a, b, r, col); got != want || got < 0 || got > 1 {
							t.Fatalf("example %d pixel (%d, %d) = %v; want %v", k, r, col, got, want)
						}
					}
				}
			}
			again, err := MultiMNIST(rand.New(rand.NewPCG(1, 2)), c.src, n)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tab.X, again.X) || !slices.Equal(tab.Y[1], again.Y[1]) {
				t.Errorf("two MultiMNIST tables from one seed differ")
			}
		})
	}
}

// One pixel worked by hand: output (14, 14) samples canvas (18, 18), where
// the top-left digit's pixel (18, 18) meets the bottom-right digit's
// (12, 12); output (0, 0) samples canvas (0, 0), the top-left digit only,
// and output (27, 27) canvas (35, 35), outside both digits.
func TestMultiMNISTPixel(t *testing.T) {
	img := func(fill func(i int) byte) []byte {
		b := make([]byte, 784)
		for i := range b {
			b[i] = fill(i)
		}
		return b
	}
	a := img(func(i int) byte { return byte(i % 200) })
	b := img(func(i int) byte { return byte(255 - i%250) })
	src := &ImageSet{N: 2, Rows: 28, Cols: 28, Classes: 10, Pixels: append(a, b...), Labels: []byte{3, 8}}
	// Find a seed whose first draw pairs image 0 with image 1.
	var tab *Table
	for seed := uint64(0); tab == nil || tab.Y[1][0] != 8; seed++ {
		var err error
		if tab, err = MultiMNIST(rand.New(rand.NewPCG(seed, 0)), src, 1); err != nil {
			t.Fatal(err)
		}
	}
	px := func(r, c int) float64 { return tab.X[r*28+c] }
	if want := float64(max(a[18*28+18], b[12*28+12])) / 255; px(14, 14) != want {
		t.Errorf("pixel (14, 14) = %v; want max(a(18, 18), b(12, 12))/255 = %v", px(14, 14), want)
	}
	if want := float64(a[0]) / 255; px(0, 0) != want {
		t.Errorf("pixel (0, 0) = %v; want a(0, 0)/255 = %v", px(0, 0), want)
	}
	if px(27, 27) != 0 {
		t.Errorf("pixel (27, 27) = %v; want 0, the empty canvas corner (35, 35)", px(27, 27))
	}
	// Output (27, 20) samples canvas (35, 26): row 35 lies below both digits.
	if px(27, 20) != 0 {
		t.Errorf("pixel (27, 20) = %v; want 0", px(27, 20))
	}
	// Output (25, 25) samples canvas (32, 32), the bottom-right digit's
	// pixel (26, 26); (26, 26) samples canvas (34, 34), past both digits.
	if want := float64(b[26*28+26]) / 255; px(25, 25) != want {
		t.Errorf("pixel (25, 25) = %v; want b(26, 26)/255 = %v", px(25, 25), want)
	}
	if px(26, 26) != 0 {
		t.Errorf("pixel (26, 26) = %v; want 0", px(26, 26))
	}
}

func TestMultiMNISTBadInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	ok := &ImageSet{N: 1, Rows: 28, Cols: 28, Classes: 10, Pixels: make([]byte, 784), Labels: []byte{1}}
	small := &ImageSet{N: 1, Rows: 2, Cols: 2, Classes: 10, Pixels: make([]byte, 4), Labels: []byte{1}}
	for _, c := range []struct {
		name string
		rng  *rand.Rand
		src  *ImageSet
		n    int
	}{
		{"nil rng", nil, ok, 1},
		{"nil source", rng, nil, 1},
		{"invalid source", rng, &ImageSet{N: 2, Rows: 28, Cols: 28, Classes: 10}, 1},
		{"not 28×28", rng, small, 1},
		{"no examples", rng, ok, 0},
		{"too many examples", rng, ok, 1 << 40},
	} {
		if _, err := MultiMNIST(c.rng, c.src, c.n); err == nil {
			t.Errorf("%s: MultiMNIST gave no error", c.name)
		}
	}
}
