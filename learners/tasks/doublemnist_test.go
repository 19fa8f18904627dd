package tasks

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestDoubleMNIST(t *testing.T) {
	m := loadMNIST(t)
	const per = 30
	set, err := DoubleMNIST(rand.New(rand.NewPCG(1, 2)), &m.Train, per)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Validate(); err != nil {
		t.Fatal(err)
	}
	if set.N != 100*per || set.Rows != 28 || set.Cols != 28 || set.Classes != 100 {
		t.Fatalf("DoubleMNIST = %d images of %d×%d in %d classes; want %d of 28×28 in 100", set.N, set.Rows, set.Cols, set.Classes, 100*per)
	}
	var byDigit [10][]int
	for i, l := range m.Train.Labels {
		byDigit[l] = append(byDigit[l], i)
	}
	// Replay the draws (no pair repeats with this seed: a repeat would
	// make the replay fail) and rebuild every image from its two digits.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < set.N; i++ {
		c := i / per
		if int(set.Labels[i]) != c {
			t.Fatalf("image %d has label %d; want %d", i, set.Labels[i], c)
		}
		left, right := byDigit[c/10], byDigit[c%10]
		a, b := m.Train.Image(left[rng.IntN(len(left))]), m.Train.Image(right[rng.IntN(len(right))])
		img := set.Image(i)
		for r := 0; r < 28; r++ {
			for j := 0; j < 28; j++ {
				// Columns 0 to 13 average pairs of the left digit's
				// columns, 14 to 27 pairs of the right digit's.
				src, col := a, 2*j
				if j >= 14 {
					src, col = b, 2*j-28
				}
				want := (int(src[r*28+col]) + int(src[r*28+col+1]) + 1) / 2
				if int(img[r*28+j]) != want {
					t.Fatalf("image %d pixel (%d, %d) = %d; want %d", i, r, j, img[r*28+j], want)
				}
			}
		}
	}
	again, err := DoubleMNIST(rand.New(rand.NewPCG(1, 2)), &m.Train, per)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(set.Pixels, again.Pixels) {
		t.Errorf("two DoubleMNIST sets from one seed differ")
	}

	// Episodes over the meta-training classes use only those classes.
	cs, err := NewClassSet(set, DoubleMNISTNames())
	if err != nil {
		t.Fatal(err)
	}
	train, _, _ := DoubleMNISTSplit()
	eps, err := Episodes{Set: cs, Classes: train, Ways: 5, Shots: 5, Query: 15}.Draw(rand.New(rand.NewPCG(9, 9)), 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		for _, c := range ep.Classes {
			if !slices.Contains(train, c) {
				t.Fatalf("episode uses class %s, not a meta-training class", cs.Names[c])
			}
		}
		for k, i := range ep.Support {
			if got := ep.Classes[ep.SupportLabels[k]]; int(set.Labels[i]) != got {
				t.Fatalf("support image %d of class %d labelled as class %d", i, set.Labels[i], got)
			}
		}
	}
}

// A source with two images per digit has four pairs per class: four
// images per class use each pair once, five are an error.
func TestDoubleMNISTPairs(t *testing.T) {
	src := &ImageSet{N: 20, Rows: 2, Cols: 3, Classes: 10, Pixels: make([]byte, 20*6), Labels: make([]byte, 20)}
	for i := range src.Labels {
		src.Labels[i] = byte(i % 10)
		for j := 0; j < 6; j++ {
			src.Pixels[i*6+j] = byte(10*i + j) // image i, pixel j
		}
	}
	set, err := DoubleMNIST(rand.New(rand.NewPCG(1, 2)), src, 4)
	if err != nil {
		t.Fatal(err)
	}
	if set.Rows != 2 || set.Cols != 3 || set.N != 400 {
		t.Fatalf("DoubleMNIST = %d images of %d×%d; want 400 of 2×3", set.N, set.Rows, set.Cols)
	}
	for c := 0; c < 100; c++ {
		pairs := map[[2]byte]bool{}
		for k := 0; k < 4; k++ {
			img := set.Image(c*4 + k)
			// With odd Cols = 3 the wide row is l0 l1 l2 r0 r1 r2:
			// pixel 0 averages l0 and l1, pixel 1 l2 and r0, pixel 2 r1
			// and r2. Pixel 0 identifies the left image (pixels 10i and
			// 10i+1 average to 10i+1), pixel 2 the right one (10i+1 and
			// 10i+2 average to 10i+2).
			l, r := (int(img[0])-1)/10, (int(img[2])-2)/10
			if l%10 != c/10 || r%10 != c%10 {
				t.Fatalf("class %02d image %d uses images %d and %d of digits %d and %d", c, k, l, r, l%10, r%10)
			}
			if want := (int(src.Pixels[l*6+2]) + int(src.Pixels[r*6]) + 1) / 2; int(img[1]) != want {
				t.Fatalf("class %02d image %d middle pixel %d; want %d", c, k, img[1], want)
			}
			pairs[[2]byte{byte(l), byte(r)}] = true
		}
		if len(pairs) != 4 {
			t.Fatalf("class %02d uses %d distinct pairs in 4 images; want 4", c, len(pairs))
		}
	}
	if _, err := DoubleMNIST(rand.New(rand.NewPCG(1, 2)), src, 5); err == nil || !strings.Contains(err.Error(), "class 00 has 4 distinct pairs of source images, fewer than 5 images per class") {
		t.Errorf("DoubleMNIST with 5 images per class from 4 pairs = %v", err)
	}
}

func TestDoubleMNISTBadInput(t *testing.T) {
	good := &ImageSet{N: 10, Rows: 1, Cols: 1, Classes: 10, Pixels: make([]byte, 10), Labels: []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}
	noNine := &ImageSet{N: 10, Rows: 1, Cols: 1, Classes: 10, Pixels: make([]byte, 10), Labels: []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 8}}
	five := &ImageSet{N: 5, Rows: 1, Cols: 1, Classes: 5, Pixels: make([]byte, 5), Labels: []byte{0, 1, 2, 3, 4}}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		name string
		rng  *rand.Rand
		src  *ImageSet
		per  int
		want string
	}{
		{"nil rng", nil, good, 1, "nil rng"},
		{"nil source", rng, nil, 1, "nil image set"},
		{"five classes", rng, five, 1, "source has 5 classes, want the 10 digits"},
		{"missing digit", rng, noNine, 1, "no image of digit 9"},
		{"zero per class", rng, good, 0, "0 images per class, want 1 to 10000"},
		{"too many per class", rng, good, 10001, "10001 images per class"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := DoubleMNIST(c.rng, c.src, c.per); err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "tasks: ") {
				t.Errorf("DoubleMNIST = %v; want an error containing %q", err, c.want)
			}
		})
	}
}

func TestDoubleMNISTSplit(t *testing.T) {
	train, val, test := DoubleMNISTSplit()
	if len(train) != 64 || len(val) != 16 || len(test) != 20 {
		t.Fatalf("DoubleMNISTSplit = %d, %d, %d classes; want 64, 16, 20", len(train), len(val), len(test))
	}
	seen := map[int]bool{}
	for _, part := range [][]int{train, val, test} {
		if !slices.IsSorted(part) {
			t.Errorf("part %v is not sorted", part)
		}
		for _, c := range part {
			if c < 0 || c >= 100 || seen[c] {
				t.Errorf("class %d out of range or in two parts", c)
			}
			seen[c] = true
		}
	}
	train[0] = 99
	if again, _, _ := DoubleMNISTSplit(); again[0] != 0 {
		t.Errorf("DoubleMNISTSplit returns a slice its callers can change")
	}
	names := DoubleMNISTNames()
	if len(names) != 100 || names[0] != "00" || names[7] != "07" || names[42] != "42" || names[99] != "99" {
		t.Errorf("DoubleMNISTNames = %v", names)
	}

	mtrain, mval, mtest := MNISTSplit()
	if !slices.Equal(mtrain, []int{0, 1, 2, 3, 4}) || len(mval) != 0 || !slices.Equal(mtest, []int{5, 6, 7, 8, 9}) {
		t.Errorf("MNISTSplit = %v, %v, %v", mtrain, mval, mtest)
	}
}

// 5-way episodes over MNIST digits: the meta-test split's tasks use the
// digits 5 to 9, and a batch row is an MNIST image scaled to [0, 1].
func TestMNISTEpisodes(t *testing.T) {
	m := loadMNIST(t)
	cs, err := NewClassSet(&m.Test, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, test := MNISTSplit()
	e := Episodes{Set: cs, Classes: test, Ways: 5, Shots: 1, Query: 10}
	eps, err := e.Draw(rand.New(rand.NewPCG(1, 2)), 4)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Batch(eps)
	if err != nil {
		t.Fatal(err)
	}
	for task, ep := range eps {
		if c := slices.Sorted(slices.Values(ep.Classes)); !slices.Equal(c, test) {
			t.Errorf("task %d uses digits %v; want %v", task, c, test)
		}
		for k, i := range ep.Support {
			img := m.Test.Image(i)
			row := b.SupportX[(task*5+k)*784 : (task*5+k+1)*784]
			for j := range row {
				if row[j] != float64(img[j])/255 {
					t.Fatalf("task %d support %d pixel %d = %v; want %v", task, k, j, row[j], float64(img[j])/255)
				}
			}
			if int(m.Test.Labels[i]) != ep.Classes[ep.SupportLabels[k]] {
				t.Fatalf("task %d support %d is a %d labelled as %d", task, k, m.Test.Labels[i], ep.Classes[ep.SupportLabels[k]])
			}
		}
	}
}
