package tasks

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
)

// BenchmarkNames are the task distributions Benchmark knows.
var BenchmarkNames = []string{"sinusoid", "classification", "mnist", "doublemnist", "omniglot", "folder"}

// Benchmark names one of the meta-learning benchmarks medusa reproduces
// and the shape of its tasks; Load builds its task distribution.
type Benchmark struct {
	// Name is one of BenchmarkNames:
	//   - sinusoid: Sinusoid's regressions (Finn et al. 2017);
	//   - classification: a new synthetic Classification problem per task;
	//   - mnist: N-way episodes of MNIST, digits 0-4 to train, 5-9 to test;
	//   - doublemnist: episodes of DoubleMNIST's 100 two-digit classes,
	//     64 to train and 20 to test;
	//   - omniglot: episodes of the Omniglot characters under Data, with
	//     their rotations, split by OmniglotSplit drawing with Seed;
	//   - folder: episodes of the image dataset under Data, read by
	//     ImageFolder (miniImageNet's layout, split folders as CIFAR-FS's
	//     or class folders, then split 64/16/20 like miniImageNet's
	//     classes by SplitClasses drawing with Seed).
	Name string
	// Ways is the number of classes of a classification task (1 for
	// sinusoids). WithDefaults sets this and the next fields when 0.
	Ways int
	// Shots is the number of support examples of a sinusoid, or per class.
	Shots int
	// Query and TestQuery are the query examples of a training and a test
	// task (per class for classification).
	Query, TestQuery int
	// Data is a directory: the MNIST IDX files (mnist, doublemnist; ""
	// for the GoMNIST module's copy) or Omniglot roots, comma-separated.
	Data string
	// Seed seeds the generators that build DoubleMNIST's images and draw
	// Omniglot's meta-training characters, so that the data depend on it
	// alone.
	Seed uint64
	// Side and Channels are the size of a folder's images once read
	// (ImageFolder's Side and Channels: 84 and 3 when 0).
	Side, Channels int
	// Augment changes the meta-training images of a folder (see Augment);
	// the validation and test images are left as they are.
	Augment Augment
}

// WithDefaults returns b with the task shape its zero fields leave open
// set to the benchmark's usual protocol: for sinusoids K = 10 support
// points, as many query points and 100 at test (Finn et al. 2017); for
// synthetic classification 2-way 5-shot with 15 query examples per
// class; for images 5-way 1-shot with 15 query images per class.
func (b Benchmark) WithDefaults() Benchmark {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	switch b.Name {
	case "sinusoid":
		def(&b.Ways, 1)
		def(&b.Shots, 10)
		def(&b.Query, b.Shots)
		def(&b.TestQuery, 100)
	case "classification":
		def(&b.Ways, 2)
		def(&b.Shots, 5)
	default:
		def(&b.Ways, 5)
		def(&b.Shots, 1)
	}
	def(&b.Query, 15)
	def(&b.TestQuery, 15)
	return b
}

// Images reports whether b's tasks are N-way K-shot image classification.
func (b Benchmark) Images() bool {
	return b.Name == "mnist" || b.Name == "doublemnist" || b.Name == "omniglot" || b.Name == "folder"
}

// Source is a benchmark's task distribution, as Benchmark.Load builds it.
type Source struct {
	In, Out int // features and outputs of an example
	// Side and Channels give an image benchmark's images, In =
	// Side·Side·Channels; 0 for the others.
	Side, Channels int
	// Train and Test draw n tasks of the meta-training and meta-test
	// splits, with Query and TestQuery query examples.
	Train, Test func(rng *rand.Rand, n int) (*Batch, error)
	// Val draws n tasks of the meta-validation split, shaped as Test's,
	// for model selection: episodes of DoubleMNIST's 16 validation
	// classes, fresh tasks for sinusoid and synthetic classification
	// (whose tasks share no classes); nil when the benchmark has no
	// validation classes (mnist, omniglot), or too few for its episodes.
	Val func(rng *rand.Rand, n int) (*Batch, error)
	// Pooled, for synthetic classification, draws about n examples pooled
	// from many tasks, 20 a task, to train one model for all of them;
	// nil otherwise.
	Pooled func(rng *rand.Rand, n int) (*Table, error)
	About  string // one line on the data
}

// Load builds b's task distribution, loading its images if it has any.
// An image benchmark whose splits have too few classes or examples for
// b's tasks is an error now, rather than at the first draw.
func (b Benchmark) Load() (*Source, error) {
	switch b.Name {
	case "sinusoid":
		d := Sinusoid{}
		sample := func(query int) func(*rand.Rand, int) (*Batch, error) {
			return func(rng *rand.Rand, n int) (*Batch, error) {
				bt, _, err := d.Sample(rng, n, b.Shots, query)
				return bt, err
			}
		}
		return &Source{In: 1, Out: 1, Train: sample(b.Query), Test: sample(b.TestQuery), Val: sample(b.TestQuery),
			About: "sine waves A·sin(x−φ), A~U[0.1,5], φ~U[0,π], x~U[−5,5]"}, nil
	case "classification":
		// Each class sits on a vertex of a hypercube of the informative
		// features: 2 of them (the default) for up to 4 classes, more
		// beyond.
		d := Classification{Classes: b.Ways, Informative: max(2, bits.Len(uint(b.Ways-1)))}
		if err := d.Validate(); err != nil {
			return nil, err
		}
		sample := func(query int) func(*rand.Rand, int) (*Batch, error) {
			return func(rng *rand.Rand, n int) (*Batch, error) { return d.Sample(rng, n, b.Shots, query) }
		}
		in := d.Features
		if in == 0 {
			in = 20
		}
		return &Source{In: in, Out: b.Ways, Train: sample(b.Query), Test: sample(b.TestQuery), Val: sample(b.TestQuery),
			Pooled: func(rng *rand.Rand, n int) (*Table, error) { return d.Pooled(rng, max(n/20, 1), 20) },
			About:  fmt.Sprintf("synthetic %d-class problems of %d features, a new one per task", b.Ways, in)}, nil
	}
	if !slices.Contains(BenchmarkNames, b.Name) {
		return nil, fmt.Errorf("tasks: unknown benchmark %q (want %s)", b.Name, strings.Join(BenchmarkNames, ", "))
	}
	set, sp, about, err := b.imageClasses()
	if err != nil {
		return nil, err
	}
	episodes := func(classes []int, query int, aug Augment) func(*rand.Rand, int) (*Batch, error) {
		e := Episodes{Set: set, Classes: classes, Ways: b.Ways, Shots: b.Shots, Query: query, Augment: aug}
		return func(rng *rand.Rand, n int) (*Batch, error) { return e.Sample(rng, n) }
	}
	var unusable string // why the validation split cannot serve, if it cannot
	for _, s := range []struct {
		name    string
		classes []int
		query   int
	}{{"meta-training", sp.train, b.Query}, {"meta-validation", sp.val, b.TestQuery}, {"meta-test", sp.test, b.TestQuery}} {
		if len(s.classes) == 0 {
			continue
		}
		_, err := episodes(s.classes, s.query, b.Augment)(rand.New(rand.NewPCG(0, 0)), 1)
		switch {
		case err != nil && s.name == "meta-validation": // needed only to validate
			unusable = fmt.Sprintf(" (unusable for these episodes: %v)", err)
		case err != nil:
			return nil, fmt.Errorf("%s %s classes: %v", b.Name, s.name, err)
		}
	}
	src := &Source{In: set.ImageSize(), Out: b.Ways, Side: set.Rows, Channels: max(set.Channels, 1), Train: episodes(sp.train, b.Query, b.Augment), Test: episodes(sp.test, b.TestQuery, Augment{}),
		About: fmt.Sprintf("%s, %d meta-training and %d meta-test classes", about, len(sp.train), len(sp.test))}
	if len(sp.val) > 0 {
		src.About = fmt.Sprintf("%s, %d meta-training, %d meta-validation%s and %d meta-test classes", about, len(sp.train), len(sp.val), unusable, len(sp.test))
		if unusable == "" {
			src.Val = episodes(sp.val, b.TestQuery, Augment{})
		}
	}
	return src, nil
}

// split is a benchmark's classes for meta-training, meta-validation (nil
// for none) and meta-test.
type split struct{ train, val, test []int }

// doubleMNISTPerClass is the number of images of a DoubleMNIST class.
const doubleMNISTPerClass = 600

// imageClasses loads the images of an image benchmark and its class split.
func (b Benchmark) imageClasses() (set *ClassSet, sp split, about string, err error) {
	if b.Name == "folder" {
		return b.folderClasses()
	}
	if b.Name == "omniglot" {
		o := Omniglot{Rotations: true}
		if set, err = o.Load(strings.Split(b.Data, ",")...); err != nil {
			return nil, split{}, "", err
		}
		chars := set.Classes() / 4
		if sp.train, sp.test, err = OmniglotSplit(rand.New(rand.NewPCG(b.Seed, 0x6f6d6e69)), chars); err != nil {
			return nil, split{}, "", fmt.Errorf("omniglot in %s: %w", b.Data, err)
		}
		return set, sp, fmt.Sprintf("Omniglot from %s (%d characters, 4 rotations each)", b.Data, chars), nil
	}
	dir := b.Data
	if dir == "" {
		if dir, err = MNISTDir(); err != nil {
			return nil, split{}, "", err
		}
	}
	mnist, err := LoadMNIST(dir)
	if err != nil {
		return nil, split{}, "", err
	}
	if b.Name == "mnist" {
		if set, err = NewClassSet(&mnist.Train, nil); err != nil {
			return nil, split{}, "", err
		}
		sp.train, _, sp.test = MNISTSplit()
		return set, sp, "MNIST digits", nil
	}
	img, err := DoubleMNIST(rand.New(rand.NewPCG(b.Seed, 0x646d6e)), &mnist.Train, doubleMNISTPerClass)
	if err != nil {
		return nil, split{}, "", err
	}
	if set, err = NewClassSet(img, DoubleMNISTNames()); err != nil {
		return nil, split{}, "", err
	}
	sp.train, sp.val, sp.test = DoubleMNISTSplit()
	return set, sp, fmt.Sprintf("DoubleMNIST (%d images per two-digit class)", doubleMNISTPerClass), nil
}

// folderClasses reads a folder benchmark's images and its split: the one
// its files give, or 64%, 16% and 20% of its classes drawn with b.Seed.
func (b Benchmark) folderClasses() (*ClassSet, split, string, error) {
	if b.Data == "" {
		return nil, split{}, "", fmt.Errorf("tasks: the folder benchmark needs a directory (Data)")
	}
	d, err := ImageFolder{Side: b.Side, Channels: b.Channels}.Load(b.Data)
	if err != nil {
		return nil, split{}, "", err
	}
	sp, how := split{d.Train, d.Val, d.Test}, "split by its files"
	if d.Train == nil {
		n := d.Set.Classes()
		train, val := n*64/100, n*16/100
		parts, err := SplitClasses(rand.New(rand.NewPCG(b.Seed, 0x666f6c64)), ClassIDs(n), train, val, n-train-val)
		if err != nil {
			return nil, split{}, "", fmt.Errorf("tasks: %s: %w", b.Data, err)
		}
		sp, how = split{parts[0], parts[1], parts[2]}, "split 64/16/20 at random"
	}
	return d.Set, sp, fmt.Sprintf("%d×%d×%d images of %s (%s)", d.Set.Rows, d.Set.Cols, max(d.Set.Channels, 1), b.Data, how), nil
}
