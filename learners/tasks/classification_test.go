package tasks

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// lstsqClassifier fits one-hot targets by ridge-regularised least squares
// (λ = 10⁻⁶, which only matters for the exactly collinear redundant
// features) on features plus a constant, and returns a function giving
// the predicted class of a row.
func lstsqClassifier(t *testing.T, x []float64, labels []int, in, classes int) func(row []float64) int {
	t.Helper()
	n := len(labels)
	a := mat.NewDense(n, in+1, nil)
	y := mat.NewDense(n, classes, nil)
	for i := range n {
		for j := range in {
			a.Set(i, j, x[i*in+j])
		}
		a.Set(i, in, 1)
		y.Set(i, labels[i], 1)
	}
	var ata, aty, w mat.Dense
	ata.Mul(a.T(), a)
	for j := range in + 1 {
		ata.Set(j, j, ata.At(j, j)+1e-6)
	}
	aty.Mul(a.T(), y)
	if err := w.Solve(&ata, &aty); err != nil {
		t.Fatal(err)
	}
	return func(row []float64) int {
		best, arg := math.Inf(-1), 0
		for c := range classes {
			s := w.At(in, c)
			for j, v := range row {
				s += v * w.At(j, c)
			}
			if s > best {
				best, arg = s, c
			}
		}
		return arg
	}
}

// lstsqAccuracy fits a least-squares classifier to train examples of a
// task and returns its accuracy on test examples of the same task.
func lstsqAccuracy(t *testing.T, task *ClassificationTask, rng *rand.Rand, train, test int) float64 {
	t.Helper()
	c := task.cfg
	x, l, err := task.Generate(rng, train)
	if err != nil {
		t.Fatal(err)
	}
	predict := lstsqClassifier(t, x, l, c.Features, c.Classes)
	x, l, err = task.Generate(rng, test)
	if err != nil {
		t.Fatal(err)
	}
	right := 0
	for i, li := range l {
		if predict(x[i*c.Features:(i+1)*c.Features]) == li {
			right++
		}
	}
	return float64(right) / float64(len(l))
}

func TestClassificationSample(t *testing.T) {
	for _, c := range []struct {
		name     string
		cfg      Classification
		in, out  int
		balanced bool
	}{
		{"defaults", Classification{}, 20, 2, false},
		{"no flips", Classification{Flip: -1}, 20, 2, true},
		{"5 classes", Classification{Features: 12, Informative: 4, Redundant: -1, Classes: 5, ClustersPerClass: 2, Flip: -1, ShuffleFeatures: true}, 12, 5, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			const tasks, support, query = 8, 3, 7
			b, err := c.cfg.Sample(rand.New(rand.NewPCG(1, 2)), tasks, support, query)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Validate(); err != nil {
				t.Fatal(err)
			}
			if b.Tasks != tasks || b.Support != c.out*support || b.Query != c.out*query || b.In != c.in || b.Out != c.out {
				t.Fatalf("Sample = %d tasks, %d support, %d query, in %d, out %d; want %d, %d, %d, %d, %d",
					b.Tasks, b.Support, b.Query, b.In, b.Out, tasks, c.out*support, c.out*query, c.in, c.out)
			}
			flipped := 0
			for _, set := range []struct {
				y        []float64
				n, per   int
				setName  string
				examples int
			}{{b.SupportY, b.Support, support, "support", 0}, {b.QueryY, b.Query, query, "query", 0}} {
				for task := range tasks {
					for k := range set.n {
						l := label(t, set.y[(task*set.n+k)*c.out:(task*set.n+k+1)*c.out])
						if l != k/set.per {
							flipped++
							if c.balanced {
								t.Fatalf("task %d %s example %d has label %d; want class-major %d", task, set.setName, k, l, k/set.per)
							}
						}
					}
				}
			}
			// Defaults: 160 labels, each replaced with probability 0.01
			// by one of 2 classes, so changed with probability 0.005:
			// more than 5 changes has probability below 10⁻⁴.
			if flipped > 5 {
				t.Errorf("%d labels flipped of %d", flipped, tasks*(b.Support+b.Query))
			}
			again, err := c.cfg.Sample(rand.New(rand.NewPCG(1, 2)), tasks, support, query)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(b.SupportX, again.SupportX) || !slices.Equal(b.QueryY, again.QueryY) {
				t.Errorf("two batches from one seed differ")
			}
			// Tasks differ: the same class's mean differs across tasks.
			if slices.Equal(b.SupportX[:c.in], b.SupportX[b.Support*c.in:(b.Support+1)*c.in]) {
				t.Errorf("two tasks begin with the same example")
			}
		})
	}
}

// With Flip = 1 every label is a uniform random class: about a half of
// them differ from the generating class with two classes.
func TestClassificationFlip(t *testing.T) {
	b, err := Classification{Flip: 1}.Sample(rand.New(rand.NewPCG(5, 5)), 50, 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	changed, total := 0, 0
	for task := range b.Tasks {
		for k := range b.Query {
			if label(t, b.QueryY[(task*b.Query+k)*2:(task*b.Query+k+1)*2]) != k/10 {
				changed++
			}
			total++
		}
	}
	// Binomial(1000, 0.5): standard deviation 16; allow 4 of them.
	if changed < 436 || changed > 564 {
		t.Errorf("Flip = 1 changed %d of %d labels; want about half", changed, total)
	}
}

// Without label noise a task is nearly linearly separable: least squares
// fitted to 500 examples classify fresh examples of the task well. This
// is what makes Pooled's logistic-regression baseline and a meta-learned
// linear model meaningful.
func TestClassificationSeparable(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	cfg := Classification{Flip: -1}
	const tasks = 20
	var sum float64
	worst := 1.0
	for range tasks {
		task, err := cfg.Task(rng)
		if err != nil {
			t.Fatal(err)
		}
		acc := lstsqAccuracy(t, task, rng, 250, 1000) // 250 per class: 500 examples
		sum += acc
		worst = min(worst, acc)
	}
	t.Logf("least-squares accuracy over %d tasks: mean %.3f, worst %.3f", tasks, sum/tasks, worst)
	// Measured with this seed: mean 0.933, worst 0.858 (over 400 tasks:
	// mean 0.933, worst 0.768); 0.85 on average is the claim.
	if sum/tasks < 0.85 {
		t.Errorf("mean least-squares accuracy %.3f over %d tasks; want above 0.85", sum/tasks, tasks)
	}
	// A classifier fitted on one task is no better than chance on
	// others, on average: the tasks are different problems.
	var cross float64
	for range tasks {
		a, _ := cfg.Task(rng)
		b, _ := cfg.Task(rng)
		x, l, _ := a.Generate(rng, 250)
		predict := lstsqClassifier(t, x, l, 20, 2)
		x, l, _ = b.Generate(rng, 500)
		right := 0
		for i, li := range l {
			if predict(x[i*20:(i+1)*20]) == li {
				right++
			}
		}
		cross += float64(right) / float64(len(l))
	}
	t.Logf("accuracy on other tasks: mean %.3f", cross/tasks)
	if cross/tasks > 0.7 {
		t.Errorf("a classifier of one task scores %.3f on others; want near chance", cross/tasks)
	}
}

// The redundant columns are exact linear combinations of the informative
// ones and the noise columns are not.
func TestClassificationRedundant(t *testing.T) {
	cfg := Classification{Features: 10, Informative: 3, Redundant: 4, Classes: 3}
	task, err := cfg.Task(rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	x, _, err := task.Generate(rand.New(rand.NewPCG(2, 2)), 40)
	if err != nil {
		t.Fatal(err)
	}
	n := len(x) / 10
	col := func(j int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = x[i*10+j]
		}
		return v
	}
	basis := mat.NewDense(n, 3, nil)
	for j := range 3 {
		basis.SetCol(j, col(j))
	}
	residual := func(y []float64) float64 {
		var w, fit mat.Dense
		yv := mat.NewDense(n, 1, y)
		if err := w.Solve(basis, yv); err != nil {
			t.Fatal(err)
		}
		fit.Mul(basis, &w)
		fit.Sub(&fit, yv)
		return mat.Norm(&fit, 2) / mat.Norm(yv, 2)
	}
	for j := 3; j < 10; j++ {
		r := residual(col(j))
		if redundant := j < 7; redundant && r > 1e-10 || !redundant && r < 0.5 {
			t.Errorf("column %d: relative least-squares residual on the informative columns %.3g (redundant: %v)", j, r, redundant)
		}
	}
}

// Cluster centroids are distinct hypercube vertices, each class owning
// ClustersPerClass of them.
func TestClassificationCentroids(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, c := range []struct{ classes, clusters, inf int }{{2, 1, 2}, {4, 1, 2}, {2, 2, 2}, {3, 2, 5}, {8, 4, 70}} {
		cfg := Classification{Features: c.inf + 1, Informative: c.inf, Redundant: -1, Classes: c.classes, ClustersPerClass: c.clusters, ClassSep: 2}
		task, err := cfg.Task(rng)
		if err != nil {
			t.Fatal(err)
		}
		if len(task.centroids) != c.classes*c.clusters {
			t.Fatalf("%+v: %d centroids", c, len(task.centroids))
		}
		seen := map[string]bool{}
		for _, v := range task.centroids {
			for _, vi := range v {
				if vi != 2 && vi != -2 {
					t.Fatalf("%+v: centroid %v is not a vertex of the cube of side 4", c, v)
				}
			}
			key := fmt.Sprint(v)
			if seen[key] {
				t.Fatalf("%+v: centroid %v twice", c, v)
			}
			seen[key] = true
		}
	}
	// All 2^3 vertices for 8 clusters of 3 informative features.
	v := hypercubeVertices(rng, 8, 3)
	seen := map[string]bool{}
	for _, b := range v {
		seen[fmt.Sprint(b)] = true
	}
	if len(seen) != 8 {
		t.Errorf("hypercubeVertices(8, 3) = %v; want all 8 vertices", v)
	}
}

func TestClassificationPooled(t *testing.T) {
	cfg := Classification{Classes: 3, Informative: 3, Flip: -1}
	tab, err := cfg.Pooled(rand.New(rand.NewPCG(1, 2)), 10, 30)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []Target{{Name: "label", Kind: Multiclass, Classes: 3}}
	if tab.N != 300 || tab.In != 20 || !slices.Equal(tab.Targets, want) {
		t.Fatalf("Pooled = %d rows of %d features, targets %v; want 300 of 20, %v", tab.N, tab.In, tab.Targets, want)
	}
	var count [3]int
	for _, y := range tab.Y[0] {
		count[int(y)]++
	}
	if count != [3]int{100, 100, 100} {
		t.Errorf("Pooled class counts %v; want 100 each", count)
	}
	// Shuffled: the first rows are not class 0, 1, 2, 0, ... .
	cycle := true
	for i := range 12 {
		cycle = cycle && tab.Y[0][i] == float64(i%3)
	}
	if cycle {
		t.Errorf("Pooled rows are in generation order")
	}
	again, _ := cfg.Pooled(rand.New(rand.NewPCG(1, 2)), 10, 30)
	if !slices.Equal(tab.X, again.X) {
		t.Errorf("two pooled tables from one seed differ")
	}
}

func TestClassificationBadInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		name string
		cfg  Classification
		want string
	}{
		{"features", Classification{Features: -1}, "-1 features, want 1 to 65536"},
		{"too many features", Classification{Features: 1 << 17}, "131072 features"},
		{"no room", Classification{Features: 5, Informative: 4, Redundant: 2}, "4 informative and 2 redundant features do not fit in 5 features"},
		{"informative", Classification{Informative: -2}, "-2 informative"},
		{"one class", Classification{Classes: 1}, "1 classes, want 2 to 1024"},
		{"clusters", Classification{ClustersPerClass: -1}, "-1 clusters per class"},
		{"vertices", Classification{Classes: 3, ClustersPerClass: 2}, "3 classes of 2 clusters need 6 hypercube vertices, 2 informative features give 4"},
		{"huge matrices", Classification{Features: 60000, Informative: 50000, Redundant: -1}, "more than 16777216 values"},
		{"separation", Classification{ClassSep: -1}, "ClassSep = -1"},
		{"infinite separation", Classification{ClassSep: math.Inf(1)}, "ClassSep = +Inf"},
		{"flip", Classification{Flip: 1.5}, "Flip = 1.5"},
		{"NaN flip", Classification{Flip: math.NaN()}, "Flip = NaN"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for name, err := range map[string]error{
				"Task":    func() error { _, err := c.cfg.Task(rng); return err }(),
				"Sample":  func() error { _, err := c.cfg.Sample(rng, 1, 1, 1); return err }(),
				"Pooled":  func() error { _, err := c.cfg.Pooled(rng, 1, 1); return err }(),
				"nil rng": func() error { _, err := c.cfg.Sample(nil, 1, 1, 1); return err }(),
			} {
				if err == nil || !strings.HasPrefix(err.Error(), "tasks: Classification: ") {
					t.Errorf("%s = %v; want an error", name, err)
				} else if name != "nil rng" && !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s = %v; want an error containing %q", name, err, c.want)
				}
			}
		})
	}
	var cfg Classification
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"no tasks", func() error { _, err := cfg.Sample(rng, 0, 1, 1); return err }(), "must be positive, got 0, 1, 1"},
		{"no query", func() error { _, err := cfg.Sample(rng, 1, 1, 0); return err }(), "got 1, 1, 0"},
		{"huge batch", func() error { _, err := cfg.Sample(rng, 1<<30, 1, 1); return err }(), "exceed"},
		{"huge support", func() error { _, err := cfg.Sample(rng, 1, 1<<40, 1); return err }(), "exceed"},
		{"pooled none", func() error { _, err := cfg.Pooled(rng, 1, 0); return err }(), "got 1, 0"},
		{"huge pooled", func() error { _, err := cfg.Pooled(rng, 1<<40, 1<<40); return err }(), "exceed"},
		{"nil pooled rng", func() error { _, err := cfg.Pooled(nil, 1, 1); return err }(), "nil rng"},
		{"nil task rng", func() error { _, err := cfg.Task(nil); return err }(), "nil rng"},
		{"generate none", func() error {
			task, _ := cfg.Task(rng)
			_, _, err := task.Generate(rng, 0)
			return err
		}(), "0 examples per class"},
		{"generate nil rng", func() error {
			task, _ := cfg.Task(rng)
			_, _, err := task.Generate(nil, 1)
			return err
		}(), "nil rng"},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: %v; want an error containing %q", c.name, c.err, c.want)
		}
	}
}

func ExampleClassification() {
	rng := rand.New(rand.NewPCG(1, 2))
	// 5-shot binary tasks with 15 query examples per class.
	b, err := Classification{}.Sample(rng, 16, 5, 15)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d tasks, %d support and %d query examples of %d features, %d classes\n", b.Tasks, b.Support, b.Query, b.In, b.Out)
	// Output:
	// 16 tasks, 10 support and 30 query examples of 20 features, 2 classes
}
