package tasks

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
)

// ClassSet is a set of images of one size grouped by class: a class →
// images index over one pixel buffer. Unlike ImageSet, whose labels are
// bytes, it holds any number of classes (Omniglot has 1,623 characters,
// 6,492 classes with rotations) and names them. Images are grey-scale
// (one channel, as MNIST and Omniglot) or colour (three channels, red,
// green and blue, as ImageFolder reads them).
//
// A ClassSet is read, never modified, by the functions of this package, so
// it is safe to share between goroutines that do not modify it.
type ClassSet struct {
	Rows, Cols int
	// Channels is the number of values of a pixel: 0 or 1 for grey-scale
	// images, 3 for colour.
	Channels int
	// Pixels holds the images, ImageSize() intensities from 0 to 255
	// each: ink for MNIST and Omniglot (0 the background, 255 full
	// ink), light for the colour images of ImageFolder. They are stored
	// pixel by pixel, rows then columns, with a pixel's
	// channels together ("channels last", the layout of
	// nets.ConvNet.Forward's input): channel k of pixel (r, c) of image i
	// is Pixels[((i*Rows+r)*Cols+c)*Channels+k]. With one channel this is
	// Pixels[(i*Rows+r)*Cols+c], as in ImageSet.
	Pixels []byte
	// Images[c] lists the indices of class c's images. An image belongs
	// to at most one class; images in none are never drawn.
	Images [][]int
	// Names[c] names class c, for people and error messages; nil means
	// that classes are known by their numbers only.
	Names []string
}

// NewClassSet groups the images of s by label: class c of the result
// holds the images labelled c, in their order in s, and the result shares
// s.Pixels. names, when not nil, names the s.Classes classes. It returns
// an error if s is invalid or names has the wrong length.
func NewClassSet(s *ImageSet, names []string) (*ClassSet, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if names != nil && len(names) != s.Classes {
		return nil, fmt.Errorf("tasks: NewClassSet: %d names for %d classes", len(names), s.Classes)
	}
	count := make([]int, s.Classes)
	for _, l := range s.Labels {
		count[l]++
	}
	cs := &ClassSet{Rows: s.Rows, Cols: s.Cols, Pixels: s.Pixels, Images: make([][]int, s.Classes), Names: names}
	for c := range cs.Images {
		cs.Images[c] = make([]int, 0, count[c])
	}
	for i, l := range s.Labels {
		cs.Images[l] = append(cs.Images[l], i)
	}
	return cs, nil
}

// Classes returns the number of classes, len(s.Images).
func (s *ClassSet) Classes() int { return len(s.Images) }

// channels returns Channels with its default applied.
func (s *ClassSet) channels() int {
	if s.Channels == 0 {
		return 1
	}
	return s.Channels
}

// ImageSize returns the number of bytes of an image, Rows·Cols·Channels
// (Channels 0 counting as 1): the In of the batches of Episodes over s.
func (s *ClassSet) ImageSize() int { return s.Rows * s.Cols * s.channels() }

// N returns the number of images in Pixels; 0 if a size is not positive
// or Pixels holds less than one image.
func (s *ClassSet) N() int {
	n := len(s.Pixels)
	// Dividing, not multiplying, keeps huge sizes from overflowing.
	if ch := s.channels(); s.Rows <= 0 || s.Cols <= 0 || ch <= 0 || s.Cols > n/s.Rows || ch > n/(s.Rows*s.Cols) {
		return 0
	}
	return n / s.ImageSize()
}

// Image returns the bytes of image i, a slice of s.Pixels. It panics if
// i is out of range, like an index expression.
func (s *ClassSet) Image(i int) []byte {
	n := s.ImageSize()
	return s.Pixels[i*n : (i+1)*n : (i+1)*n]
}

// name returns class c for messages: its number, followed by its quoted
// name when the set has names: `17 ("Latin/character18")`.
func (s *ClassSet) name(c int) string {
	if c >= 0 && c < len(s.Names) {
		return fmt.Sprintf("%d (%q)", c, s.Names[c])
	}
	return strconv.Itoa(c)
}

// Validate reports whether the sizes are positive (Channels may be 0),
// Pixels holds a whole number of images, every index in Images names one
// of them, no image is in two classes and Names, when not nil, names
// every class.
func (s *ClassSet) Validate() error {
	if s == nil {
		return errors.New("tasks: nil class set")
	}
	// Dividing, not multiplying, keeps huge sizes from overflowing.
	if s.Rows <= 0 || s.Cols <= 0 || s.Cols > len(s.Pixels)/s.Rows {
		return fmt.Errorf("tasks: class set of %d×%d-pixel images has %d pixels, want positive sizes and at least one image", s.Rows, s.Cols, len(s.Pixels))
	}
	if ch := s.Channels; ch < 0 || ch > len(s.Pixels)/(s.Rows*s.Cols) {
		return fmt.Errorf("tasks: class set of %d×%d-pixel images of %d channels has %d bytes, want Channels ≥ 0 and at least one image", s.Rows, s.Cols, ch, len(s.Pixels))
	}
	size := s.ImageSize()
	if len(s.Pixels)%size != 0 {
		if s.channels() == 1 {
			return fmt.Errorf("tasks: class set has %d pixels, not a whole number of %d×%d images", len(s.Pixels), s.Rows, s.Cols)
		}
		return fmt.Errorf("tasks: class set has %d bytes, not a whole number of %d×%d images of %d channels", len(s.Pixels), s.Rows, s.Cols, s.Channels)
	}
	if len(s.Images) == 0 {
		return errors.New("tasks: class set has no classes")
	}
	if s.Names != nil && len(s.Names) != len(s.Images) {
		return fmt.Errorf("tasks: class set has %d names for %d classes", len(s.Names), len(s.Images))
	}
	n := len(s.Pixels) / size
	owner := make([]int32, n) // 1 + the class of each image, 0 for none
	for c, imgs := range s.Images {
		for _, i := range imgs {
			if i < 0 || i >= n {
				return fmt.Errorf("tasks: class %s lists image %d, want 0 to %d", s.name(c), i, n-1)
			}
			if o := owner[i]; o != 0 {
				return fmt.Errorf("tasks: image %d is in class %s and in class %s", i, s.name(int(o-1)), s.name(c))
			}
			owner[i] = int32(c + 1)
		}
	}
	return nil
}

// AllQuery as Episodes.Query asks for as many query examples per class as
// the split's smallest class holds after the shots.
const AllQuery = -1

// Episodes samples N-way K-shot classification tasks (Vinyals et al. 2016,
// "Matching Networks for One Shot Learning"; Finn et al. 2017, section
// 5.2) from the classes of one split of a ClassSet.
//
// A task draws Ways distinct classes from Classes without replacement;
// the k-th class drawn gets label k, so labels are assigned to classes at
// random. From each of these classes it draws Shots + Query distinct
// images: the first Shots go to the support set and the other Query to the
// query set, so no image is in both. Support and query sets are class-major
// (label 0's examples first, then label 1's, ...) unless Shuffle is set,
// when each task's support set and query set are put in an order drawn
// with the rng. A Batch input is an image's ImageSize() bytes in the
// set's order (rows, then columns, then channels), scaled to [0, 1]
// (intensity/255); a target is the one-hot row of its label, of size Ways.
// Tasks are drawn independently, so one class can appear in several tasks
// of a batch. Sample applies Augment to every input it draws; Batch never
// does.
//
// Query is the evaluation knob: meta-training usually uses a few query
// examples per class (15 here by default), while evaluation can ask for
// more, up to AllQuery, every image left after the shots in the split's
// smallest class. Draw fixes a list of episodes once, for evaluating
// several models on the same tasks.
//
// The zero value of a field means its default, given in its comment. An
// Episodes is a value and is safe for concurrent use while its Set is not
// modified.
type Episodes struct {
	// Set holds the images.
	Set *ClassSet
	// Classes lists the class ids of the split to draw from, each once;
	// nil means every class of Set.
	Classes []int
	// Ways is the number of classes per task, N; default 5, at least 2.
	Ways int
	// Shots is the number of support examples per class, K; default 1.
	Shots int
	// Query is the number of query examples per class; default 15.
	// AllQuery means as many as the split's smallest class allows.
	Query int
	// Shuffle puts each task's support and query examples in a random
	// order instead of class-major order.
	Shuffle bool
	// Augment is applied by Sample to every support and query image, an
	// augmentation for meta-training only: leave it zero (no
	// augmentation) in the Episodes that evaluate.
	Augment Augment
}

// Episode is one drawn task: which classes it uses and which images.
type Episode struct {
	// Classes[k] is the class id that has label k.
	Classes []int
	// Support and Query hold image indices into Set.Pixels, in the
	// order of the batch rows; their labels are SupportLabels and
	// QueryLabels.
	Support, Query             []int
	SupportLabels, QueryLabels []int
}

// episodes is an Episodes with its defaults applied and checked.
type episodes struct {
	Episodes
	classes []int
}

func (e Episodes) resolve() (*episodes, error) {
	if e.Ways == 0 {
		e.Ways = 5
	}
	if e.Shots == 0 {
		e.Shots = 1
	}
	if e.Query == 0 {
		e.Query = 15
	}
	if err := e.Set.Validate(); err != nil {
		return nil, err
	}
	s := e.Set
	if e.Ways < 2 {
		return nil, fmt.Errorf("tasks: episodes: %d ways, want at least 2", e.Ways)
	}
	if e.Shots < 0 {
		return nil, fmt.Errorf("tasks: episodes: %d shots, want at least 1", e.Shots)
	}
	if e.Query < 0 && e.Query != AllQuery {
		return nil, fmt.Errorf("tasks: episodes: %d query examples per class, want at least 1 or AllQuery", e.Query)
	}
	if err := e.Augment.validate(s); err != nil {
		return nil, err
	}
	classes := e.Classes
	if classes == nil {
		classes = make([]int, s.Classes())
		for c := range classes {
			classes[c] = c
		}
	}
	seen := make(map[int]bool, len(classes))
	for _, c := range classes {
		if c < 0 || c >= s.Classes() {
			return nil, fmt.Errorf("tasks: episodes: class %d in the split, want 0 to %d", c, s.Classes()-1)
		}
		if seen[c] {
			return nil, fmt.Errorf("tasks: episodes: class %s twice in the split", s.name(c))
		}
		seen[c] = true
	}
	if len(classes) < e.Ways {
		return nil, fmt.Errorf("tasks: episodes: split has %d classes, %d-way episodes need at least %d", len(classes), e.Ways, e.Ways)
	}
	fewest := -1
	for _, c := range classes {
		if fewest < 0 || len(s.Images[c]) < len(s.Images[fewest]) {
			fewest = c
		}
	}
	have := len(s.Images[fewest])
	if have < e.Shots {
		return nil, fmt.Errorf("tasks: episodes: class %s has %d examples, fewer than the %d shots", s.name(fewest), have, e.Shots)
	}
	if e.Query == AllQuery {
		e.Query = have - e.Shots
		if e.Query < 1 {
			return nil, fmt.Errorf("tasks: episodes: class %s has %d examples, none left for queries after %d shots", s.name(fewest), have, e.Shots)
		}
	}
	if need := e.Shots + e.Query; have < need {
		return nil, fmt.Errorf("tasks: episodes: class %s has %d examples, %d %s + %d query need %d",
			s.name(fewest), have, e.Shots, plural(e.Shots, "shot", "shots"), e.Query, need)
	}
	return &episodes{Episodes: e, classes: classes}, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Draw draws n episodes with rng, as Sample does, without building their
// batch. It returns an error if rng is nil, n is not positive or the
// configuration does not fit the set (too few classes in the split for
// Ways, a class with fewer than Shots + Query images, ...); the error
// names the numbers.
func (e Episodes) Draw(rng *rand.Rand, n int) ([]Episode, error) {
	if rng == nil {
		return nil, errors.New("tasks: episodes: nil rng")
	}
	if n <= 0 {
		return nil, fmt.Errorf("tasks: episodes: %d tasks, want at least 1", n)
	}
	r, err := e.resolve()
	if err != nil {
		return nil, err
	}
	if err := r.checkSize(n); err != nil {
		return nil, err
	}
	return r.draw(rng, n), nil
}

// checkSize reports whether a batch of n tasks stays below maxTableValues
// float64s.
func (r *episodes) checkSize(n int) error {
	perTask := r.Ways * (r.Shots + r.Query)
	row := r.Set.ImageSize() + r.Ways
	if perTask > maxTableValues/row || n > maxTableValues/(perTask*row) {
		return fmt.Errorf("tasks: episodes: %d tasks of %d examples of %d values exceed %d values", n, perTask, row, maxTableValues)
	}
	return nil
}

func (r *episodes) draw(rng *rand.Rand, n int) []Episode {
	out := make([]Episode, n)
	pool := slices.Clone(r.classes)
	var picked []int
	for t := range out {
		ep := &out[t]
		// A partial Fisher–Yates shuffle of pool draws the classes.
		for k := 0; k < r.Ways; k++ {
			j := k + rng.IntN(len(pool)-k)
			pool[k], pool[j] = pool[j], pool[k]
		}
		ep.Classes = slices.Clone(pool[:r.Ways])
		ep.Support = make([]int, 0, r.Ways*r.Shots)
		ep.Query = make([]int, 0, r.Ways*r.Query)
		ep.SupportLabels = make([]int, 0, r.Ways*r.Shots)
		ep.QueryLabels = make([]int, 0, r.Ways*r.Query)
		for label, c := range ep.Classes {
			imgs := r.Set.Images[c]
			picked = sampleDistinct(rng, picked[:0], len(imgs), r.Shots+r.Query)
			for k, p := range picked {
				if k < r.Shots {
					ep.Support = append(ep.Support, imgs[p])
					ep.SupportLabels = append(ep.SupportLabels, label)
				} else {
					ep.Query = append(ep.Query, imgs[p])
					ep.QueryLabels = append(ep.QueryLabels, label)
				}
			}
		}
		if r.Shuffle {
			rng.Shuffle(len(ep.Support), func(i, j int) {
				ep.Support[i], ep.Support[j] = ep.Support[j], ep.Support[i]
				ep.SupportLabels[i], ep.SupportLabels[j] = ep.SupportLabels[j], ep.SupportLabels[i]
			})
			rng.Shuffle(len(ep.Query), func(i, j int) {
				ep.Query[i], ep.Query[j] = ep.Query[j], ep.Query[i]
				ep.QueryLabels[i], ep.QueryLabels[j] = ep.QueryLabels[j], ep.QueryLabels[i]
			})
		}
	}
	return out
}

// sampleDistinct appends k distinct integers from [0, n), in random order,
// to dst. It takes O(k) time and memory when k is much smaller than n
// (a partial Fisher–Yates shuffle over a sparse permutation), O(n) when k is
// close to n.
func sampleDistinct(rng *rand.Rand, dst []int, n, k int) []int {
	if 2*k >= n {
		perm := rng.Perm(n)
		return append(dst, perm[:k]...)
	}
	swapped := make(map[int]int, 2*k) // position → value, where not the identity
	at := func(i int) int {
		if v, ok := swapped[i]; ok {
			return v
		}
		return i
	}
	for i := 0; i < k; i++ {
		j := i + rng.IntN(n-i)
		vi, vj := at(i), at(j)
		swapped[i], swapped[j] = vj, vi
		dst = append(dst, vj)
	}
	return dst
}

// Sample draws a batch of tasks with rng: Tasks = tasks, Support =
// Ways·Shots, Query = Ways·Query, In = Rows·Cols·Channels, Out = Ways.
// See Episodes for how a task is drawn and laid out. The episodes are
// drawn first, as Draw draws them, then Augment draws its changes to the
// images with rng, so the same seed gives the same batch, with or without
// augmentation, and the same episodes either way. It returns the errors
// Draw returns, and an error if Augment is invalid.
func (e Episodes) Sample(rng *rand.Rand, tasks int) (*Batch, error) {
	if rng == nil {
		return nil, errors.New("tasks: episodes: nil rng")
	}
	if tasks <= 0 {
		return nil, fmt.Errorf("tasks: episodes: %d tasks, want at least 1", tasks)
	}
	r, err := e.resolve()
	if err != nil {
		return nil, err
	}
	if err := r.checkSize(tasks); err != nil {
		return nil, err
	}
	b, err := r.batch(r.draw(rng, tasks))
	if err != nil {
		return nil, err
	}
	s := r.Set
	r.Augment.batch(rng, b, s.Rows, s.Cols, s.channels())
	return b, nil
}

// Batch builds the batch of the episodes eps, drawn by Draw from an
// Episodes with the same Set (the other fields play no part: the shape
// comes from the episodes, and Augment is not applied). It returns an error if eps is empty, the
// episodes differ in shape, or one names images or labels out of range.
func (e Episodes) Batch(eps []Episode) (*Batch, error) {
	if err := e.Set.Validate(); err != nil {
		return nil, err
	}
	if len(eps) == 0 {
		return nil, errors.New("tasks: episodes: no episodes")
	}
	ways := len(eps[0].Classes)
	if ways < 1 || len(eps[0].Support)%ways != 0 || len(eps[0].Query)%ways != 0 || len(eps[0].Support) == 0 || len(eps[0].Query) == 0 {
		return nil, fmt.Errorf("tasks: episodes: episode 0 has %d classes, %d support and %d query examples, want a positive multiple of the classes of each",
			ways, len(eps[0].Support), len(eps[0].Query))
	}
	r := &episodes{Episodes: Episodes{Set: e.Set, Ways: ways, Shots: len(eps[0].Support) / ways, Query: len(eps[0].Query) / ways}}
	if err := r.checkSize(len(eps)); err != nil {
		return nil, err
	}
	n := r.Set.N()
	for t, ep := range eps {
		if len(ep.Classes) != ways || len(ep.Support) != ways*r.Shots || len(ep.SupportLabels) != len(ep.Support) ||
			len(ep.Query) != ways*r.Query || len(ep.QueryLabels) != len(ep.Query) {
			return nil, fmt.Errorf("tasks: episodes: episode %d has %d classes, %d support and %d query examples with %d and %d labels, want %d, %d and %d as episode 0",
				t, len(ep.Classes), len(ep.Support), len(ep.Query), len(ep.SupportLabels), len(ep.QueryLabels), ways, ways*r.Shots, ways*r.Query)
		}
		for _, idx := range [][]int{ep.Support, ep.Query} {
			for _, i := range idx {
				if i < 0 || i >= n {
					return nil, fmt.Errorf("tasks: episodes: episode %d uses image %d, want 0 to %d", t, i, n-1)
				}
			}
		}
		for _, ls := range [][]int{ep.SupportLabels, ep.QueryLabels} {
			for _, l := range ls {
				if l < 0 || l >= ways {
					return nil, fmt.Errorf("tasks: episodes: episode %d has label %d, want 0 to %d", t, l, ways-1)
				}
			}
		}
	}
	return r.batch(eps)
}

// batch writes the pixels and one-hot labels of checked episodes.
func (r *episodes) batch(eps []Episode) (*Batch, error) {
	s := r.Set
	in, out := s.ImageSize(), r.Ways
	ns, nq := r.Ways*r.Shots, r.Ways*r.Query
	b := &Batch{Tasks: len(eps), Support: ns, Query: nq, In: in, Out: out,
		SupportX: make([]float64, len(eps)*ns*in), SupportY: make([]float64, len(eps)*ns*out),
		QueryX: make([]float64, len(eps)*nq*in), QueryY: make([]float64, len(eps)*nq*out)}
	for t, ep := range eps {
		for k, i := range ep.Support {
			row := (t*ns + k)
			writePixels(b.SupportX[row*in:(row+1)*in], s.Image(i))
			b.SupportY[row*out+ep.SupportLabels[k]] = 1
		}
		for k, i := range ep.Query {
			row := (t*nq + k)
			writePixels(b.QueryX[row*in:(row+1)*in], s.Image(i))
			b.QueryY[row*out+ep.QueryLabels[k]] = 1
		}
	}
	return b, nil
}

// pixelScale maps an intensity to [0, 1].
var pixelScale = func() (t [256]float64) {
	for i := range t {
		t[i] = float64(i) / 255
	}
	return t
}()

func writePixels(dst []float64, img []byte) {
	for j, p := range img {
		dst[j] = pixelScale[p]
	}
}

// SplitClasses splits the class ids classes into disjoint parts of the
// given sizes, for meta-training, meta-validation and meta-test splits:
// with rng, the classes are shuffled first, so the parts are a random
// split fixed by the seed; with a nil rng, the parts are consecutive runs
// of classes in the order given. Each part is returned sorted. Classes
// beyond the sum of the counts are in no part. It returns an error if a
// count is negative, the counts add up to more than len(classes) or a
// class id appears twice.
func SplitClasses(rng *rand.Rand, classes []int, counts ...int) ([][]int, error) {
	total := 0
	for i, n := range counts {
		if n < 0 {
			return nil, fmt.Errorf("tasks: SplitClasses: part %d has %d classes, want at least 0", i, n)
		}
		if n > len(classes)-total {
			return nil, fmt.Errorf("tasks: SplitClasses: parts of %v classes need %d or more, have %d", counts, total+n, len(classes))
		}
		total += n
	}
	seen := make(map[int]bool, len(classes))
	for _, c := range classes {
		if seen[c] {
			return nil, fmt.Errorf("tasks: SplitClasses: class %d appears twice", c)
		}
		seen[c] = true
	}
	order := slices.Clone(classes)
	if rng != nil {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	parts := make([][]int, len(counts))
	for i, n := range counts {
		parts[i] = slices.Clone(order[:n])
		slices.Sort(parts[i])
		order = order[n:]
	}
	return parts, nil
}

// ClassIDs returns the class ids 0, 1, ..., n−1, for SplitClasses; n ≤ 0
// gives none.
func ClassIDs(n int) []int {
	out := make([]int, max(n, 0))
	for i := range out {
		out[i] = i
	}
	return out
}
