package tasks

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// idSet returns a class set of 2×2 images in which every image spells its
// own index and class: pixels (index mod 256, index / 256, class, 255).
// Class c has sizes[c] images, numbered consecutively.
func idSet(sizes ...int) *ClassSet {
	s := &ClassSet{Rows: 2, Cols: 2, Images: make([][]int, len(sizes))}
	i := 0
	for c, n := range sizes {
		for k := 0; k < n; k++ {
			s.Pixels = append(s.Pixels, byte(i%256), byte(i/256), byte(c), 255)
			s.Images[c] = append(s.Images[c], i)
			i++
		}
	}
	return s
}

// decode returns the image index and class spelled by a batch row.
func decode(t *testing.T, row []float64) (index, class int) {
	t.Helper()
	var b [4]int
	for j, v := range row {
		b[j] = int(v*255 + 0.5)
		if float64(b[j])/255 != v {
			t.Fatalf("pixel %d of row %v is not an intensity/255", j, row)
		}
	}
	if b[3] != 255 {
		t.Fatalf("row %v does not end in 1", row)
	}
	return b[0] + 256*b[1], b[2]
}

func label(t *testing.T, onehot []float64) int {
	t.Helper()
	l := -1
	for j, v := range onehot {
		switch {
		case v == 1 && l < 0:
			l = j
		case v != 0:
			t.Fatalf("target %v is not one-hot", onehot)
		}
	}
	if l < 0 {
		t.Fatalf("target %v is not one-hot", onehot)
	}
	return l
}

func TestEpisodesSample(t *testing.T) {
	set := idSet(30, 25, 40, 20, 21, 22, 23, 24, 25, 26)
	split := []int{1, 2, 4, 5, 6, 7, 9}
	for _, c := range []struct {
		name    string
		e       Episodes
		ways    int
		shots   int
		query   int
		shuffle bool
	}{
		{"defaults", Episodes{Set: set, Classes: split}, 5, 1, 15, false},
		{"3-way 5-shot", Episodes{Set: set, Classes: split, Ways: 3, Shots: 5, Query: 2}, 3, 5, 2, false},
		{"shuffled", Episodes{Set: set, Classes: split, Ways: 4, Shots: 2, Query: 3, Shuffle: true}, 4, 2, 3, true},
		{"all classes", Episodes{Set: set, Ways: 10, Shots: 1, Query: 19}, 10, 1, 19, false},
		{"all query", Episodes{Set: set, Classes: split, Ways: 2, Shots: 3, Query: AllQuery}, 2, 3, 18, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			const tasks = 50
			b, err := c.e.Sample(rand.New(rand.NewPCG(3, 4)), tasks)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Validate(); err != nil {
				t.Fatal(err)
			}
			if b.Tasks != tasks || b.Support != c.ways*c.shots || b.Query != c.ways*c.query || b.In != 4 || b.Out != c.ways {
				t.Fatalf("Sample = %d tasks, %d support, %d query, in %d, out %d; want %d, %d, %d, 4, %d",
					b.Tasks, b.Support, b.Query, b.In, b.Out, tasks, c.ways*c.shots, c.ways*c.query, c.ways)
			}
			inSplit := split
			if c.e.Classes == nil {
				inSplit = ClassIDs(set.Classes())
			}
			labelsOf := map[int]map[int]bool{} // class → labels it was given
			for task := 0; task < tasks; task++ {
				classOf := make([]int, c.ways) // label → class
				for i := range classOf {
					classOf[i] = -1
				}
				used := map[int]bool{}
				ordered := true
				check := func(x, y []float64, n, perClass int) {
					for k := 0; k < n; k++ {
						idx, cls := decode(t, x[(task*n+k)*4:(task*n+k+1)*4])
						l := label(t, y[(task*n+k)*c.ways:(task*n+k+1)*c.ways])
						if !slices.Contains(inSplit, cls) {
							t.Fatalf("task %d uses class %d, not in the split %v", task, cls, inSplit)
						}
						if classOf[l] >= 0 && classOf[l] != cls {
							t.Fatalf("task %d gives label %d to classes %d and %d", task, l, classOf[l], cls)
						}
						classOf[l] = cls
						if used[idx] {
							t.Fatalf("task %d uses image %d twice", task, idx)
						}
						used[idx] = true
						if l != k/perClass {
							ordered = false
						}
					}
				}
				check(b.SupportX, b.SupportY, b.Support, c.shots)
				check(b.QueryX, b.QueryY, b.Query, c.query)
				seen := map[int]bool{}
				for l, cls := range classOf {
					if cls < 0 || seen[cls] {
						t.Fatalf("task %d: label → class %v, want %d distinct classes", task, classOf, c.ways)
					}
					seen[cls] = true
					if labelsOf[cls] == nil {
						labelsOf[cls] = map[int]bool{}
					}
					labelsOf[cls][l] = true
				}
				if ordered == c.shuffle {
					t.Errorf("task %d: class-major order %v, want %v", task, ordered, !c.shuffle)
				}
			}
			// Labels are assigned at random: over 50 tasks each class
			// of the split gets more than one label.
			for _, cls := range inSplit {
				if len(labelsOf[cls]) < 2 {
					t.Errorf("class %d got labels %v in %d tasks, want several", cls, labelsOf[cls], tasks)
				}
			}

			again, err := c.e.Sample(rand.New(rand.NewPCG(3, 4)), tasks)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(b.SupportX, again.SupportX) || !slices.Equal(b.QueryY, again.QueryY) {
				t.Errorf("two batches from one seed differ")
			}
			other, err := c.e.Sample(rand.New(rand.NewPCG(5, 6)), tasks)
			if err != nil {
				t.Fatal(err)
			}
			if slices.Equal(b.SupportX, other.SupportX) {
				t.Errorf("batches from two seeds are the same")
			}
		})
	}
}

// Draw followed by Batch gives Sample's batch, and the episodes say which
// images the batch holds.
func TestEpisodesDrawBatch(t *testing.T) {
	set := idSet(10, 11, 12, 13, 14, 15)
	set.Names = []string{"a", "b", "c", "d", "e", "f"}
	e := Episodes{Set: set, Ways: 3, Shots: 2, Query: 4, Shuffle: true}
	eps, err := e.Draw(rand.New(rand.NewPCG(1, 1)), 7)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Batch(eps)
	if err != nil {
		t.Fatal(err)
	}
	want, err := e.Sample(rand.New(rand.NewPCG(1, 1)), 7)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.SupportX, want.SupportX) || !slices.Equal(b.SupportY, want.SupportY) ||
		!slices.Equal(b.QueryX, want.QueryX) || !slices.Equal(b.QueryY, want.QueryY) {
		t.Fatalf("Batch(Draw(rng)) differs from Sample(rng)")
	}
	for task, ep := range eps {
		for k, i := range ep.Query {
			idx, cls := decode(t, b.QueryX[(task*12+k)*4:(task*12+k+1)*4])
			if idx != i || cls != ep.Classes[ep.QueryLabels[k]] {
				t.Fatalf("task %d query %d is image %d of class %d; episode says image %d of class %d",
					task, k, idx, cls, i, ep.Classes[ep.QueryLabels[k]])
			}
		}
	}

	// Evaluation on fixed episodes with more queries: the batch shape
	// follows the episodes.
	e.Query = AllQuery
	eps, err = e.Draw(rand.New(rand.NewPCG(1, 1)), 2)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = e.Batch(eps); err != nil {
		t.Fatal(err)
	}
	if b.Query != 3*8 { // the smallest class has 10 images: 2 shots + 8 queries
		t.Errorf("AllQuery batch has %d query examples; want 24", b.Query)
	}

	bad := []struct {
		name string
		edit func(eps []Episode)
		want string
	}{
		{"image out of range", func(eps []Episode) { eps[1].Support[0] = 1000 }, "episode 1 uses image 1000, want 0 to 74"},
		{"label out of range", func(eps []Episode) { eps[0].QueryLabels[2] = 3 }, "episode 0 has label 3, want 0 to 2"},
		{"shape", func(eps []Episode) { eps[1].Query = eps[1].Query[:3] }, "episode 1 has 3 classes, 6 support and 3 query examples"},
		{"no support", func(eps []Episode) { eps[0].Support = nil }, "episode 0 has 3 classes, 0 support"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			eps, err := e.Draw(rand.New(rand.NewPCG(1, 1)), 2)
			if err != nil {
				t.Fatal(err)
			}
			c.edit(eps)
			if _, err := e.Batch(eps); err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "tasks: ") {
				t.Errorf("Batch = %v; want an error containing %q", err, c.want)
			}
		})
	}
	if _, err := e.Batch(nil); err == nil {
		t.Errorf("Batch(nil) = nil error; want one")
	}
}

func TestEpisodesErrors(t *testing.T) {
	set := idSet(20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 4, 20, 20)
	named := idSet(20, 3, 20)
	named.Names = []string{"x", "Latin/character02", "z"}
	for _, c := range []struct {
		name  string
		e     Episodes
		tasks int
		want  string
	}{
		{"too few classes", Episodes{Set: set, Classes: []int{0, 1, 2}}, 1, "tasks: episodes: split has 3 classes, 5-way episodes need at least 5"},
		{"too few examples", Episodes{Set: set}, 1, "tasks: episodes: class 17 has 4 examples, 1 shot + 15 query need 16"},
		{"too many shots", Episodes{Set: set, Shots: 5}, 1, "tasks: episodes: class 17 has 4 examples, fewer than the 5 shots"},
		{"shots plural", Episodes{Set: set, Shots: 2, Query: 3}, 1, "class 17 has 4 examples, 2 shots + 3 query need 5"},
		{"no query left", Episodes{Set: set, Shots: 4, Query: AllQuery}, 1, "class 17 has 4 examples, none left for queries after 4 shots"},
		{"named class", Episodes{Set: named, Ways: 2, Shots: 1, Query: 5}, 1, `class 1 ("Latin/character02") has 3 examples, 1 shot + 5 query need 6`},
		{"one way", Episodes{Set: set, Ways: 1}, 1, "1 ways, want at least 2"},
		{"negative shots", Episodes{Set: set, Shots: -1}, 1, "-1 shots"},
		{"negative query", Episodes{Set: set, Query: -2}, 1, "-2 query examples per class"},
		{"class out of range", Episodes{Set: set, Classes: []int{0, 1, 2, 3, 20}}, 1, "class 20 in the split, want 0 to 19"},
		{"class twice", Episodes{Set: set, Classes: []int{0, 1, 2, 3, 3}}, 1, "class 3 twice in the split"},
		{"no tasks", Episodes{Set: set, Classes: []int{0, 1, 2, 3, 4}}, 0, "0 tasks"},
		{"huge batch", Episodes{Set: set, Classes: []int{0, 1, 2, 3, 4}}, 1 << 40, "exceed"},
		{"nil set", Episodes{}, 1, "tasks: nil class set"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.e.Sample(rand.New(rand.NewPCG(1, 2)), c.tasks)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Sample = %v; want an error containing %q", err, c.want)
			}
			if b != nil {
				t.Errorf("Sample returned a batch with its error")
			}
			if _, err := c.e.Draw(rand.New(rand.NewPCG(1, 2)), c.tasks); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Draw = %v; want an error containing %q", err, c.want)
			}
		})
	}
	if _, err := (Episodes{Set: set}).Sample(nil, 1); err == nil {
		t.Errorf("Sample(nil rng) = nil error; want one")
	}
}

// A batch of three-channel images: In is Rows·Cols·3 and each input is
// its image's bytes, in their order (rows, columns, channels), /255.
func TestEpisodesChannels(t *testing.T) {
	set := colourSet(4, 5)
	if set.ImageSize() != 5*6*3 || set.N() != 20 {
		t.Fatalf("ImageSize, N = %d, %d; want 90, 20", set.ImageSize(), set.N())
	}
	e := Episodes{Set: set, Ways: 2, Shots: 2, Query: 3, Shuffle: true}
	eps, err := e.Draw(rand.New(rand.NewPCG(1, 2)), 3)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Sample(rand.New(rand.NewPCG(1, 2)), 3)
	if err != nil {
		t.Fatal(err)
	}
	if b.In != 90 || b.Support != 4 || b.Query != 6 {
		t.Fatalf("Sample = in %d, %d support, %d query; want 90, 4, 6", b.In, b.Support, b.Query)
	}
	for task, ep := range eps {
		for _, part := range []struct {
			x   []float64
			idx []int
		}{{b.SupportX, ep.Support}, {b.QueryX, ep.Query}} {
			n := len(part.idx)
			for k, i := range part.idx {
				row := part.x[(task*n+k)*90 : (task*n+k+1)*90]
				for j, v := range set.Image(i) {
					if row[j] != float64(v)/255 {
						t.Fatalf("task %d input %d value %d = %v; want %d/255 from image %d", task, k, j, row[j], v, i)
					}
				}
			}
		}
	}
	if i := set.Image(7); &i[0] != &set.Pixels[7*90] || len(i) != 90 {
		t.Errorf("Image(7) is not Pixels[630:720]")
	}
	// The bound on a batch's size counts every channel: 2-way 1-shot
	// tasks with one query of 100×100×3 images take 4·(30,000 + 2) values
	// each, so this many tasks exceed 2³¹ values (and would not with one
	// channel).
	big := &ClassSet{Rows: 100, Cols: 100, Channels: 3, Pixels: make([]byte, 4*30000), Images: [][]int{{0, 1}, {2, 3}}}
	n := (1<<31)/(4*30002) + 1
	if _, err := (Episodes{Set: big, Ways: 2, Shots: 1, Query: 1}).Draw(rand.New(rand.NewPCG(1, 2)), n); err == nil || !strings.Contains(err.Error(), "exceed") {
		t.Errorf("Draw(%d tasks of 100×100×3 images) = %v; want an error on the batch's size", n, err)
	}
}

func TestClassSetValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(s *ClassSet)
		want string
	}{
		{"image in two classes", func(s *ClassSet) { s.Images[1] = append(s.Images[1], 0) }, "image 0 is in class 0 and in class 1"},
		{"image out of range", func(s *ClassSet) { s.Images[0][1] = 5 }, "class 0 lists image 5, want 0 to 4"},
		{"negative image", func(s *ClassSet) { s.Images[0][1] = -1 }, "class 0 lists image -1"},
		{"partial image", func(s *ClassSet) { s.Pixels = s.Pixels[:19] }, "19 pixels, not a whole number of 2×2 images"},
		{"no pixels", func(s *ClassSet) { s.Pixels = nil }, "has 0 pixels"},
		{"zero rows", func(s *ClassSet) { s.Rows = 0 }, "0×2-pixel images"},
		{"huge sizes", func(s *ClassSet) { s.Rows, s.Cols = 1<<40, 1<<40 }, "pixel images has 20 pixels"},
		{"names", func(s *ClassSet) { s.Names = []string{"a"} }, "1 names for 2 classes"},
		{"no classes", func(s *ClassSet) { s.Images = nil }, "no classes"},
		{"negative channels", func(s *ClassSet) { s.Channels = -1 }, "of -1 channels has 20 bytes"},
		{"too many channels", func(s *ClassSet) { s.Channels = 6 }, "of 6 channels has 20 bytes"},
		{"partial colour image", func(s *ClassSet) { s.Channels = 3 }, "20 bytes, not a whole number of 2×2 images of 3 channels"},
		{"channels: image out of range", func(s *ClassSet) { s.Channels = 5 }, "class 0 lists image 1, want 0 to 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := idSet(2, 3)
			c.edit(s)
			if err := s.Validate(); err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "tasks: ") {
				t.Errorf("Validate = %v; want an error containing %q", err, c.want)
			}
		})
	}
	if err := idSet(2, 0, 3).Validate(); err != nil {
		t.Errorf("Validate of a set with an empty class = %v", err)
	}
	if s := idSet(2, 3); s.N() != 5 || s.Classes() != 2 {
		t.Errorf("N, Classes = %d, %d; want 5, 2", s.N(), s.Classes())
	}
}

func TestNewClassSet(t *testing.T) {
	img := &ImageSet{N: 5, Rows: 1, Cols: 2, Classes: 3,
		Pixels: []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, Labels: []byte{2, 0, 2, 2, 0}}
	s, err := NewClassSet(img, []string{"zero", "one", "two"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	want := [][]int{{1, 4}, {}, {0, 2, 3}}
	if s.Classes() != 3 || !slices.EqualFunc(s.Images, want, slices.Equal) || s.Rows != 1 || s.Cols != 2 || &s.Pixels[0] != &img.Pixels[0] {
		t.Errorf("NewClassSet = %+v; want images %v sharing the pixels", s, want)
	}
	if got := s.Image(3); !slices.Equal(got, []byte{6, 7}) {
		t.Errorf("Image(3) = %v; want [6 7]", got)
	}
	if _, err := NewClassSet(img, []string{"a"}); err == nil {
		t.Errorf("NewClassSet with 1 name for 3 classes = nil error")
	}
	if _, err := NewClassSet(&ImageSet{}, nil); err == nil {
		t.Errorf("NewClassSet of an empty image set = nil error")
	}
}

func TestSplitClasses(t *testing.T) {
	all := ClassIDs(100)
	parts, err := SplitClasses(rand.New(rand.NewPCG(7, 7)), all, 64, 16, 20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for i, n := range []int{64, 16, 20} {
		if len(parts[i]) != n || !slices.IsSorted(parts[i]) {
			t.Errorf("part %d = %v; want %d sorted classes", i, parts[i], n)
		}
		for _, c := range parts[i] {
			if seen[c] || c < 0 || c >= 100 {
				t.Errorf("class %d is in two parts or out of range", c)
			}
			seen[c] = true
		}
	}
	if slices.Equal(parts[2], ClassIDs(100)[84:]) {
		t.Errorf("a random split gave the last 20 classes in order")
	}
	again, _ := SplitClasses(rand.New(rand.NewPCG(7, 7)), all, 64, 16, 20)
	if !slices.EqualFunc(parts, again, slices.Equal) {
		t.Errorf("two splits from one seed differ")
	}
	fixed, err := SplitClasses(nil, []int{9, 3, 5, 1, 7}, 2, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]int{{3, 9}, {}, {1, 5}}; !slices.EqualFunc(fixed, want, slices.Equal) {
		t.Errorf("SplitClasses(nil, ...) = %v; want %v", fixed, want)
	}
	for _, c := range []struct {
		classes []int
		counts  []int
		want    string
	}{
		{ClassIDs(10), []int{5, 6}, "parts of [5 6] classes need 11 or more, have 10"},
		{ClassIDs(10), []int{-1}, "part 0 has -1 classes"},
		{[]int{1, 2, 1}, []int{1}, "class 1 appears twice"},
	} {
		if _, err := SplitClasses(nil, c.classes, c.counts...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SplitClasses(%v, %v) = %v; want an error containing %q", c.classes, c.counts, err, c.want)
		}
	}
	if got := ClassIDs(-3); len(got) != 0 {
		t.Errorf("ClassIDs(-3) = %v; want none", got)
	}
}

// sampleDistinct draws k distinct values of [0, n), each position
// uniformly: over many draws every value appears about k/n of the time,
// by both of its methods (a dense permutation when 2k ≥ n, a sparse one
// otherwise).
func TestSampleDistinct(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ n, k int }{{10, 7}, {10, 2}, {1000, 5}, {3, 3}, {5, 0}} {
		const draws = 20000
		counts := make([]int, c.n)
		first := make([]int, c.n)
		for d := 0; d < draws; d++ {
			got := sampleDistinct(rng, nil, c.n, c.k)
			if len(got) != c.k {
				t.Fatalf("sampleDistinct(%d, %d) = %v", c.n, c.k, got)
			}
			seen := map[int]bool{}
			for _, v := range got {
				if v < 0 || v >= c.n || seen[v] {
					t.Fatalf("sampleDistinct(%d, %d) = %v", c.n, c.k, got)
				}
				seen[v] = true
				counts[v]++
			}
			if c.k > 0 {
				first[got[0]]++
			}
		}
		if c.n > 20 {
			continue // too few draws per value to test frequencies
		}
		// Binomial counts: mean draws·k/n, standard deviation below
		// √(draws·k/n); 5 of them is a generous bound.
		mean := float64(draws*c.k) / float64(c.n)
		for v, got := range counts {
			if d := float64(got) - mean; d*d > 25*mean {
				t.Errorf("n=%d k=%d: value %d drawn %d times; want about %.0f", c.n, c.k, v, got, mean)
			}
		}
		if c.k > 0 {
			mean = float64(draws) / float64(c.n)
			for v, got := range first {
				if d := float64(got) - mean; d*d > 25*mean {
					t.Errorf("n=%d k=%d: value %d drawn first %d times; want about %.0f", c.n, c.k, v, got, mean)
				}
			}
		}
	}
}

func ExampleEpisodes() {
	// Twenty classes of ten 1×1 "images" each.
	set := &ClassSet{Rows: 1, Cols: 1, Images: make([][]int, 20)}
	for i := 0; i < 200; i++ {
		set.Pixels = append(set.Pixels, byte(i))
		set.Images[i/10] = append(set.Images[i/10], i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	split, _ := SplitClasses(rng, ClassIDs(20), 12, 4, 4)
	train := Episodes{Set: set, Classes: split[0], Ways: 5, Shots: 1, Query: 5}
	b, err := train.Sample(rng, 32)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d tasks, %d support and %d query examples of %d inputs, %d outputs\n", b.Tasks, b.Support, b.Query, b.In, b.Out)
	// The test split has four classes: too few for 5-way tasks.
	test := Episodes{Set: set, Classes: split[2], Ways: 5, Shots: 1, Query: 5}
	_, err = test.Sample(rng, 1)
	fmt.Println(err)
	// Output:
	// 32 tasks, 5 support and 25 query examples of 1 inputs, 5 outputs
	// tasks: episodes: split has 4 classes, 5-way episodes need at least 5
}

// BenchmarkEpisodesSample draws meta-batches of 32 5-way 1-shot tasks with
// 15 queries per class from 100 classes of 600 28×28 images, the size of a
// DoubleMNIST set.
func BenchmarkEpisodesSample(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	set := &ClassSet{Rows: 28, Cols: 28, Pixels: make([]byte, 60000*784), Images: make([][]int, 100)}
	for i := range set.Pixels {
		set.Pixels[i] = byte(rng.IntN(256))
	}
	for i := 0; i < 60000; i++ {
		set.Images[i/600] = append(set.Images[i/600], i)
	}
	e := Episodes{Set: set, Classes: ClassIDs(64)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Sample(rng, 32); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(32*b.N)/b.Elapsed().Seconds(), "tasks/s")
}

func TestBenchmarkWithDefaults(t *testing.T) {
	for _, tt := range []struct {
		in, want Benchmark
	}{
		{Benchmark{Name: "sinusoid"}, Benchmark{Name: "sinusoid", Ways: 1, Shots: 10, Query: 10, TestQuery: 100}},
		{Benchmark{Name: "sinusoid", Shots: 5}, Benchmark{Name: "sinusoid", Ways: 1, Shots: 5, Query: 5, TestQuery: 100}},
		{Benchmark{Name: "classification"}, Benchmark{Name: "classification", Ways: 2, Shots: 5, Query: 15, TestQuery: 15}},
		{Benchmark{Name: "omniglot", Ways: 20, Query: 3}, Benchmark{Name: "omniglot", Ways: 20, Shots: 1, Query: 3, TestQuery: 15}},
	} {
		if got := tt.in.WithDefaults(); got != tt.want {
			t.Errorf("%+v.WithDefaults() = %+v; want %+v", tt.in, got, tt.want)
		}
	}
}

func TestBenchmarkLoad(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, b := range []Benchmark{
		Benchmark{Name: "sinusoid"}.WithDefaults(),
		Benchmark{Name: "classification", Ways: 3}.WithDefaults(),
	} {
		src, err := b.Load()
		if err != nil {
			t.Fatalf("%s: %v", b.Name, err)
		}
		train, err := src.Train(rng, 4)
		if err != nil {
			t.Fatal(err)
		}
		test, err := src.Test(rng, 2)
		if err != nil {
			t.Fatal(err)
		}
		want := Shape{Tasks: 4, Support: b.Ways * b.Shots, Query: b.Ways * b.Query, In: src.In, Out: src.Out}
		if train.Shape() != want || test.Tasks != 2 || test.Query != b.Ways*b.TestQuery {
			t.Errorf("%s: train %+v, test %+v; want train %+v and 2 test tasks of %d query examples", b.Name, train.Shape(), test.Shape(), want, b.Ways*b.TestQuery)
		}
		if (src.Pooled != nil) != (b.Name == "classification") {
			t.Errorf("%s: pooled baseline data %v", b.Name, src.Pooled != nil)
		}
	}
	if _, err := (Benchmark{Name: "imagenet"}).Load(); err == nil || !strings.Contains(err.Error(), "imagenet") {
		t.Errorf("Load of an unknown benchmark: %v", err)
	}
	if _, err := (Benchmark{Name: "omniglot", Data: t.TempDir()}.WithDefaults()).Load(); err == nil {
		t.Error("Load of omniglot from an empty directory: no error")
	}
}

// TestBenchmarkVal: DoubleMNIST has validation episodes, of its 16
// validation classes, shaped as the test episodes; MNIST has none.
func TestBenchmarkVal(t *testing.T) {
	loadMNIST(t)
	dm, err := Benchmark{Name: "doublemnist"}.WithDefaults().Load()
	if err != nil {
		t.Fatal(err)
	}
	if dm.Val == nil || !strings.Contains(dm.About, "16 meta-validation") {
		t.Fatalf("doublemnist: Val %v, about %q; want validation episodes of 16 classes", dm.Val != nil, dm.About)
	}
	val, err := dm.Val(rand.New(rand.NewPCG(1, 1)), 3)
	if err != nil {
		t.Fatal(err)
	}
	test, err := dm.Test(rand.New(rand.NewPCG(1, 1)), 3)
	if err != nil {
		t.Fatal(err)
	}
	if val.Shape() != test.Shape() || slices.Equal(val.QueryX, test.QueryX) {
		t.Errorf("validation batch %+v, test batch %+v: want the same shape and other images", val.Shape(), test.Shape())
	}
	m, err := Benchmark{Name: "mnist"}.WithDefaults().Load()
	if err != nil {
		t.Fatal(err)
	}
	if m.Val != nil || strings.Contains(m.About, "validation") {
		t.Errorf("mnist: Val %v, about %q; want no validation classes", m.Val != nil, m.About)
	}
}

func TestTableBenchmark(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	b := TableBenchmark{Name: "synthetic", TrainRows: 50, TestRows: 20, Seed: 3}
	train, test, floors, err := b.Load(rng)
	if err != nil {
		t.Fatal(err)
	}
	if train.N != 50 || test.N != 20 || len(floors) != len(train.Targets) {
		t.Errorf("synthetic: %d and %d rows, %d floors; want 50, 20 and one per target", train.N, test.N, len(floors))
	}
	n, err := b.GeneratedBytes()
	if want := int64(2 * 70 * (train.In + len(train.Targets)) * 8); err != nil || n != want {
		t.Errorf("GeneratedBytes = %d, %v; want %d", n, err, want)
	}
	var buf bytes.Buffer
	if err := train.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rows.csv")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	c := TableBenchmark{Name: "csv", CSV: path, CSVOptions: CSVOptions{Targets: train.Targets}, TestFrac: 0.2}
	ctrain, ctest, _, err := c.Load(rng)
	if err != nil {
		t.Fatal(err)
	}
	if ctrain.N+ctest.N != 50 || ctest.N != 10 {
		t.Errorf("csv: %d and %d rows; want 40 and 10", ctrain.N, ctest.N)
	}
	if n, err := c.GeneratedBytes(); n != 0 || err != nil {
		t.Errorf("csv GeneratedBytes = %d, %v; want 0: a file is read a line at a time", n, err)
	}
	if _, _, _, err := (TableBenchmark{Name: "parquet"}).Load(rng); err == nil {
		t.Error("Load of an unknown table benchmark: no error")
	}
}
