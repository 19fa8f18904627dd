package tasks

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestMultiTaskGenerate(t *testing.T) {
	for _, c := range []struct {
		name    string
		m       SyntheticMTL
		in      int
		targets []Target
	}{
		{"defaults", SyntheticMTL{}, 32, []Target{{Name: "reg1"}, {Name: "reg2"}, {Name: "cls", Kind: Binary}}},
		{"small", SyntheticMTL{In: 5, Informative: 3, Redundant: 2, Latent: 2, Tasks: []TaskSpec{{Name: "y", Sigma: 0.1}}}, 5, []Target{{Name: "y"}}},
		{"no redundant, one latent", SyntheticMTL{In: 4, Informative: 2, Redundant: -1, Latent: 1, Tasks: []TaskSpec{{Name: "a", Kind: Binary}, {Name: "b"}}}, 4, []Target{{Name: "a", Kind: Binary}, {Name: "b"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tab, err := c.m.Generate(rand.New(rand.NewPCG(1, 2)), 500)
			if err != nil {
				t.Fatal(err)
			}
			if err := tab.Validate(); err != nil {
				t.Fatal(err)
			}
			if tab.N != 500 || tab.In != c.in || !slices.Equal(tab.Targets, c.targets) {
				t.Fatalf("Generate(500) = %d rows of %d features, targets %v; want 500 of %d, %v", tab.N, tab.In, tab.Targets, c.in, c.targets)
			}
			again, err := c.m.Generate(rand.New(rand.NewPCG(1, 2)), 500)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tab.X, again.X) || !slices.EqualFunc(tab.Y, again.Y, slices.Equal) {
				t.Fatalf("two tables from one seed differ")
			}
			other, err := c.m.Generate(rand.New(rand.NewPCG(3, 4)), 500)
			if err != nil {
				t.Fatal(err)
			}
			if slices.Equal(tab.X, other.X) {
				t.Fatalf("two tables from different seeds are equal")
			}
		})
	}
}

// The structure comes from Seed, the rows from the rng: tables drawn with
// different rngs share their tasks, and a different Seed gives other tasks.
func TestMultiTaskSeed(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	tab, err := SyntheticMTL{}.Generate(rng, 50)
	if err != nil {
		t.Fatal(err)
	}
	p0, err := SyntheticMTL{}.Bayes(tab)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := SyntheticMTL{Seed: 1}.Bayes(tab)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(p0[0], p1[0]) {
		t.Errorf("Seed 0 and Seed 1 give the same regression function")
	}
	// With no noise a regression target is its Bayes prediction.
	quiet := SyntheticMTL{Tasks: []TaskSpec{{Name: "y"}}}
	for seed := range uint64(3) {
		tab, err := quiet.Generate(rand.New(rand.NewPCG(seed, 9)), 20)
		if err != nil {
			t.Fatal(err)
		}
		p, err := quiet.Bayes(tab)
		if err != nil {
			t.Fatal(err)
		}
		for i := range p[0] {
			if math.Abs(p[0][i]-tab.Y[0][i]) > 1e-12 {
				t.Fatalf("rng %d row %d: noise-free target %v, Bayes prediction %v", seed, i, tab.Y[0][i], p[0][i])
			}
		}
	}
}

// Redundant columns are exact linear combinations of the informative ones;
// noise columns are not.
func TestMultiTaskRedundant(t *testing.T) {
	m := SyntheticMTL{}
	tab, err := m.Generate(rand.New(rand.NewPCG(7, 8)), 200)
	if err != nil {
		t.Fatal(err)
	}
	const inf, red = 8, 8 // the defaults
	col := func(j int) []float64 {
		c := make([]float64, tab.N)
		for i := range c {
			c[i] = tab.X[i*tab.In+j]
		}
		return c
	}
	basis := make([][]float64, inf)
	for j := range basis {
		basis[j] = col(j)
	}
	for j := inf; j < tab.In; j++ {
		res := lstsqResidual(basis, col(j))
		if j < inf+red && res > 1e-9 {
			t.Errorf("redundant column %d: least-squares residual %g on the informative columns; want 0", j, res)
		}
		// A noise column of 200 N(0, 1) values keeps about (200−8)/200
		// of its sum of squares; 0.5 leaves a wide margin.
		if j >= inf+red && res < 0.5 {
			t.Errorf("noise column %d: relative residual %g on the informative columns; want near 1", j, res)
		}
	}
}

// lstsqResidual returns ‖y − Xβ‖/‖y‖ for the least-squares β, where X's
// columns are basis, solving the normal equations by Gaussian elimination.
func lstsqResidual(basis [][]float64, y []float64) float64 {
	k := len(basis)
	a := make([][]float64, k)
	for i := range a {
		a[i] = make([]float64, k+1)
		for j := range k {
			a[i][j] = vecDot(basis[i], basis[j])
		}
		a[i][k] = vecDot(basis[i], y)
	}
	for p := range k {
		piv := p
		for r := p + 1; r < k; r++ {
			if math.Abs(a[r][p]) > math.Abs(a[piv][p]) {
				piv = r
			}
		}
		a[p], a[piv] = a[piv], a[p]
		for r := range k {
			if r != p {
				f := a[r][p] / a[p][p]
				for c := p; c <= k; c++ {
					a[r][c] -= f * a[p][c]
				}
			}
		}
	}
	r := slices.Clone(y)
	for j := range k {
		beta := a[j][k] / a[j][j]
		for i := range r {
			r[i] -= beta * basis[j][i]
		}
	}
	return math.Sqrt(vecDot(r, r) / vecDot(y, y))
}

func TestMultiTaskFloors(t *testing.T) {
	f, err := SyntheticMTL{}.Floors()
	if err != nil {
		t.Fatal(err)
	}
	h := -0.02*math.Log(0.02) - 0.98*math.Log(0.98) // binary entropy of the default flip
	want := []Floor{
		{Target: Target{Name: "reg1"}, Loss: 0.03},
		{Target: Target{Name: "reg2"}, Loss: 0.25},
		{Target: Target{Name: "cls", Kind: Binary}, Loss: h, Accuracy: 0.98},
	}
	if len(f) != len(want) {
		t.Fatalf("Floors() = %v; want %v", f, want)
	}
	for i := range f {
		if f[i].Target != want[i].Target || math.Abs(f[i].Loss-want[i].Loss) > 1e-15 || f[i].Accuracy != want[i].Accuracy {
			t.Errorf("Floors()[%d] = %+v; want %+v", i, f[i], want[i])
		}
	}
}

// On a large sample the Bayes predictor's losses match the floors, the
// noise-free signals have mean 0, variance 1 and the correlations the task
// directions imply. Tolerances are four standard errors of each estimate
// for n = 100,000 rows (rounded up).
func TestMultiTaskClosedForm(t *testing.T) {
	const n = 100_000
	m := SyntheticMTL{}
	tab, err := m.Generate(rand.New(rand.NewPCG(11, 12)), n)
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Bayes(tab)
	if err != nil {
		t.Fatal(err)
	}
	floors, err := m.Floors()
	if err != nil {
		t.Fatal(err)
	}
	for k, fl := range floors {
		switch fl.Target.Kind {
		case Regression:
			// The mean of ε² for ε ~ N(0, σ²) has standard error σ²·√(2/n).
			var mse, mean, sq, m4 float64
			for i, y := range tab.Y[k] {
				s := p[k][i]
				mse += (y - s) * (y - s)
				mean += s
				sq += s * s
				m4 += s * s * s * s
			}
			mse, mean, sq, m4 = mse/n, mean/n, sq/n, m4/n
			if tol := 4 * fl.Loss * math.Sqrt(2.0/n); math.Abs(mse-fl.Loss) > tol {
				t.Errorf("%s: Bayes MSE %v; want σ² = %v ± %.2g", fl.Target.Name, mse, fl.Loss, tol)
			}
			// The signal's mean has standard error 1/√n and its mean square
			// √((E s⁴ − 1)/n), E s⁴ estimated by the sample's.
			if math.Abs(mean) > 4/math.Sqrt(n) {
				t.Errorf("%s: noise-free signal mean %v; want 0", fl.Target.Name, mean)
			}
			if tol := 4 * math.Sqrt((m4-1)/n); math.Abs(sq-1) > tol {
				t.Errorf("%s: noise-free signal mean square %v; want 1 ± %.2g", fl.Target.Name, sq, tol)
			}
		case Binary:
			// Accuracy has standard error √(p(1−p)/n) ≈ 0.00044.
			var acc, logloss float64
			for i, y := range tab.Y[k] {
				q := p[k][i]
				if (q > 0.5) == (y == 1) {
					acc++
				}
				if y == 1 {
					logloss -= math.Log(q)
				} else {
					logloss -= math.Log(1 - q)
				}
			}
			acc, logloss = acc/n, logloss/n
			if math.Abs(acc-fl.Accuracy) > 0.002 {
				t.Errorf("%s: Bayes accuracy %v; want %v", fl.Target.Name, acc, fl.Accuracy)
			}
			// The per-row loss takes two values, ln(1/0.98) and ln(1/0.02),
			// with standard deviation √(p(1−p))·ln(0.98/0.02) ≈ 0.55.
			if math.Abs(logloss-fl.Loss) > 4*0.55/math.Sqrt(n) {
				t.Errorf("%s: Bayes logistic loss %v; want H(p) = %v", fl.Target.Name, logloss, fl.Loss)
			}
		}
	}
	// The default tasks' directions meet at a₁·a₂ = ρ = 0.5; the sample
	// correlation has standard error about (1−ρ²)/√n ≈ 0.0024.
	if got := pearson(p[0], p[1]); math.Abs(got-0.5) > 0.01 {
		t.Errorf("correlation of the noise-free signals of reg1 and reg2 = %v; want ρ = 0.5", got)
	}
}

func pearson(a, b []float64) float64 {
	n := float64(len(a))
	var ma, mb float64
	for i := range a {
		ma += a[i]
		mb += b[i]
	}
	ma, mb = ma/n, mb/n
	var sab, saa, sbb float64
	for i := range a {
		sab += (a[i] - ma) * (b[i] - mb)
		saa += (a[i] - ma) * (a[i] - ma)
		sbb += (b[i] - mb) * (b[i] - mb)
	}
	return sab / math.Sqrt(saa*sbb)
}

// Task directions are unit vectors meeting at ρ while there is room for
// orthogonal private parts (Latent·(Latent+1)/2 − 1 tasks).
func TestMultiTaskRelatedness(t *testing.T) {
	many := make([]TaskSpec, 8)
	for i := range many {
		many[i] = TaskSpec{Name: string(rune('a' + i))}
	}
	for _, c := range []struct {
		name        string
		relatedness float64
		latent      int
		rho         float64
		room        int
	}{
		{"default", 0, 3, 0.5, 5},
		{"identical", 1, 3, 1, 5},
		{"unrelated", -1, 3, 0, 5},
		{"quarter", 0.25, 4, 0.25, 8},
		{"one feature", 0.3, 1, 1, 8}, // no room for a private part
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := SyntheticMTL{Relatedness: c.relatedness, Latent: c.latent, Tasks: many}.structure()
			if err != nil {
				t.Fatal(err)
			}
			for i, a := range s.dirs {
				if math.Abs(vecDot(a, a)-1) > 1e-12 {
					t.Errorf("task %d: ‖a‖² = %v; want 1", i, vecDot(a, a))
				}
				for j := range i {
					if d := vecDot(a, s.dirs[j]); i < c.room && math.Abs(d-c.rho) > 1e-12 {
						t.Errorf("tasks %d and %d: a·a' = %v; want ρ = %v", j, i, d, c.rho)
					}
				}
			}
		})
	}
}

func TestMultiTaskBadInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, c := range []struct {
		name string
		m    SyntheticMTL
	}{
		{"negative In", SyntheticMTL{In: -1}},
		{"huge In", SyntheticMTL{In: 1 << 20}},
		{"too many informative", SyntheticMTL{In: 10, Informative: 11}},
		{"informative and redundant overflow In", SyntheticMTL{In: 10, Informative: 5, Redundant: 6}},
		{"latent above informative", SyntheticMTL{Informative: 2, Latent: 3}},
		{"relatedness above 1", SyntheticMTL{Relatedness: 1.5}},
		{"relatedness NaN", SyntheticMTL{Relatedness: math.NaN()}},
		{"empty tasks", SyntheticMTL{Tasks: []TaskSpec{}}},
		{"unnamed task", SyntheticMTL{Tasks: []TaskSpec{{}}}},
		{"duplicate task", SyntheticMTL{Tasks: []TaskSpec{{Name: "a"}, {Name: "a"}}}},
		{"multiclass task", SyntheticMTL{Tasks: []TaskSpec{{Name: "a", Kind: Multiclass}}}},
		{"negative sigma", SyntheticMTL{Tasks: []TaskSpec{{Name: "a", Sigma: -1}}}},
		{"infinite sigma", SyntheticMTL{Tasks: []TaskSpec{{Name: "a", Sigma: math.Inf(1)}}}},
		{"flip 0.5", SyntheticMTL{Tasks: []TaskSpec{{Name: "a", Kind: Binary, Flip: 0.5}}}},
		{"flip NaN", SyntheticMTL{Tasks: []TaskSpec{{Name: "a", Kind: Binary, Flip: math.NaN()}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.m.Generate(rng, 10); err == nil {
				t.Errorf("Generate: no error")
			}
			if _, err := c.m.Floors(); err == nil {
				t.Errorf("Floors: no error")
			}
		})
	}
	for _, n := range []int{0, -1, math.MaxInt} {
		if _, err := (SyntheticMTL{}).Generate(rng, n); err == nil {
			t.Errorf("Generate(rng, %d): no error", n)
		}
	}
	if _, err := (SyntheticMTL{}).Generate(nil, 10); err == nil {
		t.Errorf("Generate(nil, 10): no error")
	}
	other, err := SyntheticMTL{In: 20}.Generate(rng, 5)
	if err != nil {
		t.Fatal(err)
	}
	renamed, err := SyntheticMTL{Tasks: []TaskSpec{{Name: "x"}, {Name: "reg2"}, {Name: "cls", Kind: Binary}}}.Generate(rng, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, tab := range []*Table{nil, other, renamed} {
		if _, err := (SyntheticMTL{}).Bayes(tab); err == nil {
			t.Errorf("Bayes(a table of another generator): no error")
		}
	}
}

func ExampleSyntheticMTL() {
	gen := SyntheticMTL{} // the defaults: 32 features, tasks reg1, reg2 and cls
	train, err := gen.Generate(rand.New(rand.NewPCG(1, 1)), 10000)
	if err != nil {
		fmt.Println(err)
		return
	}
	test, err := gen.Generate(rand.New(rand.NewPCG(2, 2)), 2000)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(train.N, test.N, train.In)
	floors, err := gen.Floors()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range floors {
		if f.Target.Kind == Regression {
			fmt.Printf("%s: least MSE %.2f\n", f.Target.Name, f.Loss)
		} else {
			fmt.Printf("%s: Bayes accuracy %.2f, least logistic loss %.4f\n", f.Target.Name, f.Accuracy, f.Loss)
		}
	}
	// Output:
	// 10000 2000 32
	// reg1: least MSE 0.03
	// reg2: least MSE 0.25
	// cls: Bayes accuracy 0.98, least logistic loss 0.0980
}
