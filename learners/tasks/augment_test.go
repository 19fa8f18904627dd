package tasks

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// randomImage returns rows×cols pixels of ch values in (0, 1], none
// zero, so that the black of a crop's padding shows.
func randomImage(rng *rand.Rand, rows, cols, ch int) []float64 {
	img := make([]float64, rows*cols*ch)
	for i := range img {
		img[i] = float64(1+rng.IntN(255)) / 255
	}
	return img
}

func TestFlip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range [][3]int{{3, 5, 3}, {4, 4, 1}, {2, 6, 2}, {1, 1, 3}} {
		rows, cols, ch := size[0], size[1], size[2]
		orig := randomImage(rng, rows, cols, ch)
		img := slices.Clone(orig)
		flip(img, rows, cols, ch)
		for r := range rows {
			for c := range cols {
				for k := range ch {
					if got, want := img[(r*cols+c)*ch+k], orig[(r*cols+cols-1-c)*ch+k]; got != want {
						t.Fatalf("flip(%d×%d×%d) channel %d of pixel (%d, %d) = %v; want %v, that of (%d, %d)", rows, cols, ch, k, r, c, got, want, r, cols-1-c)
					}
				}
			}
		}
		flip(img, rows, cols, ch)
		if !slices.Equal(img, orig) {
			t.Errorf("flip(flip(%d×%d×%d image)) differs from the image", rows, cols, ch)
		}
	}
}

// shiftRef is shift written pixel by pixel.
func shiftRef(src []float64, rows, cols, ch, dy, dx int) []float64 {
	out := make([]float64, len(src))
	for r := range rows {
		for c := range cols {
			if y, x := r+dy, c+dx; y >= 0 && y < rows && x >= 0 && x < cols {
				copy(out[(r*cols+c)*ch:(r*cols+c+1)*ch], src[(y*cols+x)*ch:(y*cols+x+1)*ch])
			}
		}
	}
	return out
}

func TestShift(t *testing.T) {
	const rows, cols, ch = 3, 4, 2
	orig := randomImage(rand.New(rand.NewPCG(1, 2)), rows, cols, ch)
	scratch := make([]float64, len(orig))
	for dy := -rows; dy <= rows; dy++ {
		for dx := -cols; dx <= cols; dx++ {
			img := slices.Clone(orig)
			shift(img, scratch, rows, cols, ch, dy, dx)
			if want := shiftRef(orig, rows, cols, ch, dy, dx); !slices.Equal(img, want) {
				t.Fatalf("shift(%d, %d) = %v; want %v", dy, dx, img, want)
			}
		}
	}
}

// The crop moves an image by offsets drawn uniformly in [−Pad, Pad]; the
// flip mirrors half of the images.
func TestAugmentCropFlip(t *testing.T) {
	const rows, cols, ch, pad, draws = 5, 6, 3, 2, 400
	rng := rand.New(rand.NewPCG(3, 4))
	orig := randomImage(rng, rows, cols, ch)
	scratch := make([]float64, len(orig))
	seen := map[[2]int]int{}
	for range draws {
		img := slices.Clone(orig)
		Augment{Pad: pad}.apply(rng, img, scratch, rows, cols, ch)
		found := false
		for dy := -pad; dy <= pad && !found; dy++ {
			for dx := -pad; dx <= pad && !found; dx++ {
				if slices.Equal(img, shiftRef(orig, rows, cols, ch, dy, dx)) {
					seen[[2]int{dy, dx}]++
					found = true
				}
			}
		}
		if !found {
			t.Fatalf("a crop with Pad %d is not the image moved by at most %d pixels: %v", pad, pad, img)
		}
	}
	// Each of the 25 offsets is drawn 16 times on average; missing one
	// has probability below 25·(24/25)^400 < 1e-5.
	if len(seen) != (2*pad+1)*(2*pad+1) {
		t.Errorf("crops drew offsets %v; want all %d", seen, (2*pad+1)*(2*pad+1))
	}

	flipped := 0
	mirror := slices.Clone(orig)
	flip(mirror, rows, cols, ch)
	for range draws {
		img := slices.Clone(orig)
		Augment{Flip: true}.apply(rng, img, scratch, rows, cols, ch)
		switch {
		case slices.Equal(img, mirror):
			flipped++
		case !slices.Equal(img, orig):
			t.Fatalf("Flip gave an image that is neither the image nor its mirror")
		}
	}
	// Binomial(400, 1/2): mean 200, standard deviation 10.
	if flipped < 150 || flipped > 250 {
		t.Errorf("Flip mirrored %d of %d images; want about half", flipped, draws)
	}
}

// Jitter against its formulas, with factors drawn from a generator of the
// same seed.
func TestAugmentJitter(t *testing.T) {
	const rows, cols, jitter = 2, 3, 0.4
	luma := func(p []float64) float64 { return 0.299*p[0] + 0.587*p[1] + 0.114*p[2] }
	for _, ch := range []int{3, 1} {
		for seed := range uint64(20) {
			orig := randomImage(rand.New(rand.NewPCG(seed, 9)), rows, cols, ch)
			img := slices.Clone(orig)
			Augment{Jitter: jitter}.apply(rand.New(rand.NewPCG(seed, 1)), img, make([]float64, len(img)), rows, cols, ch)

			rng := rand.New(rand.NewPCG(seed, 1))
			var f [3]float64 // brightness, contrast, saturation
			for i := range f {
				f[i] = 1 + jitter*(2*rng.Float64()-1)
				if f[i] < 1-jitter || f[i] > 1+jitter {
					t.Fatalf("factor %v outside [%v, %v]", f[i], 1-jitter, 1+jitter)
				}
			}
			want := make([]float64, len(orig))
			for i, v := range orig {
				want[i] = min(f[0]*v, 1)
			}
			var mean float64
			for p := 0; p < len(want); p += ch {
				if ch == 3 {
					mean += luma(want[p:p+3]) / (rows * cols)
				} else {
					mean += want[p] / (rows * cols)
				}
			}
			for i, v := range want {
				want[i] = min(max(mean+f[1]*(v-mean), 0), 1)
			}
			if ch == 3 {
				for p := 0; p < len(want); p += 3 {
					g := luma(want[p : p+3])
					for k := range 3 {
						want[p+k] = min(max(g+f[2]*(want[p+k]-g), 0), 1)
					}
				}
			}
			for i := range want {
				if math.Abs(img[i]-want[i]) > 1e-12 {
					t.Fatalf("Jitter on %d channels, seed %d: value %d = %v; want %v", ch, seed, i, img[i], want[i])
				}
			}
		}
	}
}

// colourSet returns a class set of 5×6 three-channel images of random
// bytes, classes of perClass images each.
func colourSet(classes, perClass int) *ClassSet {
	rng := rand.New(rand.NewPCG(7, 8))
	s := &ClassSet{Rows: 5, Cols: 6, Channels: 3, Images: make([][]int, classes)}
	for c := range classes {
		for range perClass {
			s.Images[c] = append(s.Images[c], s.N())
			for range 5 * 6 * 3 {
				s.Pixels = append(s.Pixels, byte(rng.IntN(256)))
			}
		}
	}
	return s
}

func TestEpisodesAugment(t *testing.T) {
	set := colourSet(6, 8)
	plain := Episodes{Set: set, Ways: 3, Shots: 2, Query: 3, Shuffle: true}
	aug := plain
	aug.Augment = Augment{Pad: 2, Flip: true, Jitter: 0.4}
	sample := func(e Episodes, seed uint64) *Batch {
		t.Helper()
		b, err := e.Sample(rand.New(rand.NewPCG(seed, 5)), 4)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	same := func(a, b *Batch) bool {
		return slices.Equal(a.SupportX, b.SupportX) && slices.Equal(a.QueryX, b.QueryX) &&
			slices.Equal(a.SupportY, b.SupportY) && slices.Equal(a.QueryY, b.QueryY)
	}
	b := sample(aug, 1)
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	if !same(b, sample(aug, 1)) {
		t.Errorf("two augmented batches from one seed differ")
	}
	if same(b, sample(aug, 2)) {
		t.Errorf("augmented batches from two seeds are the same")
	}
	// Augmentation draws after the episodes: the same seed gives the same
	// episodes, with other inputs.
	p := sample(plain, 1)
	if !slices.Equal(b.SupportY, p.SupportY) || !slices.Equal(b.QueryY, p.QueryY) {
		t.Errorf("augmentation changed the episodes drawn")
	}
	for _, x := range [][2][]float64{{b.SupportX, p.SupportX}, {b.QueryX, p.QueryX}} {
		for k := 0; k < len(x[0]); k += b.In {
			if slices.Equal(x[0][k:k+b.In], x[1][k:k+b.In]) {
				t.Errorf("input %d is unchanged by augmentation", k/b.In)
			}
		}
	}
	for _, v := range slices.Concat(b.SupportX, b.QueryX) {
		if v < 0 || v > 1 {
			t.Fatalf("augmented input value %v outside [0, 1]", v)
		}
	}
	// The zero Augment and Batch leave the images as they are.
	eps, err := aug.Draw(rand.New(rand.NewPCG(1, 5)), 4)
	if err != nil {
		t.Fatal(err)
	}
	fromEps, err := aug.Batch(eps)
	if err != nil {
		t.Fatal(err)
	}
	if !same(fromEps, p) {
		t.Errorf("Batch(Draw(rng)) with Augment set differs from the unaugmented Sample(rng)")
	}
	for k := 0; k < len(p.SupportX); k += p.In {
		i := eps[k/p.In/p.Support].Support[k/p.In%p.Support]
		for j, v := range set.Image(i) {
			if p.SupportX[k+j] != float64(v)/255 {
				t.Fatalf("unaugmented input %d differs from image %d", k/p.In, i)
			}
		}
	}
	// Flip alone: each input is its image or its mirror, both occur.
	flips := plain
	flips.Augment = Augment{Flip: true}
	f := sample(flips, 1)
	counts := [2]int{}
	for k := 0; k < len(f.QueryX); k += f.In {
		mirror := slices.Clone(p.QueryX[k : k+f.In])
		flip(mirror, set.Rows, set.Cols, 3)
		switch row := f.QueryX[k : k+f.In]; {
		case slices.Equal(row, p.QueryX[k:k+f.In]):
			counts[0]++
		case slices.Equal(row, mirror):
			counts[1]++
		default:
			t.Fatalf("Flip: query input %d is neither its image nor the mirror", k/f.In)
		}
	}
	if counts[0] == 0 || counts[1] == 0 {
		t.Errorf("Flip left %d and mirrored %d of the query inputs; want some of each", counts[0], counts[1])
	}

	for _, c := range []struct {
		a    Augment
		want string
	}{
		{Augment{Pad: -1}, "Augment.Pad = -1, want 0 to 5"},
		{Augment{Pad: 6}, "Augment.Pad = 6, want 0 to 5 (the side of the 5×6 images)"},
		{Augment{Jitter: 1.5}, "Augment.Jitter = 1.5, want 0 to 1"},
		{Augment{Jitter: math.NaN()}, "Augment.Jitter = NaN"},
	} {
		e := plain
		e.Augment = c.a
		if _, err := e.Sample(rand.New(rand.NewPCG(1, 2)), 1); err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "tasks: episodes: ") {
			t.Errorf("Sample with %+v = %v; want an error containing %q", c.a, err, c.want)
		}
	}
}
