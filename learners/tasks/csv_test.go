package tasks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestReadCSV(t *testing.T) {
	reg := []Target{{Name: "y"}}
	for _, c := range []struct {
		name    string
		in      string
		opts    CSVOptions
		x       []float64
		targets []Target
		y       [][]float64
	}{
		{"one target", "a,b,y\n1,2,3\n4,5,6\n", CSVOptions{Targets: reg},
			[]float64{1, 2, 4, 5}, reg, [][]float64{{3, 6}}},
		{"target first, spaces, CRLF, blank line", " y , a\r\n 0.5 , -1e3 \r\n\r\n2,+3\r\n", CSVOptions{Targets: reg},
			[]float64{-1000, 3}, reg, [][]float64{{0.5, 2}}},
		{"byte order mark", "\uFEFFy,a\n1,2\n", CSVOptions{Targets: reg},
			[]float64{2}, reg, [][]float64{{1}}},
		{"features chosen and reordered", "a,b,c,y\n1,2,3,4\n", CSVOptions{Targets: reg, Features: []string{"c", "a"}},
			[]float64{3, 1}, reg, [][]float64{{4}}},
		{"quoted cells", "\"a\",\"y\"\n\"1\",\" 2 \"\n", CSVOptions{Targets: reg},
			[]float64{1}, reg, [][]float64{{2}}},
		{"semicolons", "a;y\n1;2\n", CSVOptions{Targets: reg, Comma: ';'},
			[]float64{1}, reg, [][]float64{{2}}},
		{"several kinds, classes inferred", "x,b,m,r\n0.1,1,2,7\n0.2,0,0,8\n",
			CSVOptions{Targets: []Target{{Name: "m", Kind: Multiclass}, {Name: "b", Kind: Binary, Classes: 9}, {Name: "r"}}},
			[]float64{0.1, 0.2},
			[]Target{{Name: "m", Kind: Multiclass, Classes: 3}, {Name: "b", Kind: Binary}, {Name: "r"}},
			[][]float64{{2, 0}, {1, 0}, {7, 8}}},
		{"classes given", "x,m\n1,0\n2,1\n", CSVOptions{Targets: []Target{{Name: "m", Kind: Multiclass, Classes: 10}}},
			[]float64{1, 2}, []Target{{Name: "m", Kind: Multiclass, Classes: 10}}, [][]float64{{0, 1}}},
		{"no final newline", "a,y\n1,2", CSVOptions{Targets: reg},
			[]float64{1}, reg, [][]float64{{2}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tab, err := ReadCSV(strings.NewReader(c.in), c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := tab.Validate(); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tab.X, c.x) || !slices.Equal(tab.Targets, c.targets) || !slices.EqualFunc(tab.Y, c.y, slices.Equal) {
				t.Errorf("ReadCSV(%q) = X %v, targets %v, Y %v; want %v, %v, %v", c.in, tab.X, tab.Targets, tab.Y, c.x, c.targets, c.y)
			}
			if tab.N != len(c.y[0]) || tab.In != len(c.x)/tab.N {
				t.Errorf("ReadCSV(%q) has %d rows of %d features; want %d of %d", c.in, tab.N, tab.In, len(c.y[0]), len(c.x)/len(c.y[0]))
			}
		})
	}
}

func TestReadCSVErrors(t *testing.T) {
	reg := CSVOptions{Targets: []Target{{Name: "y"}}}
	for _, c := range []struct {
		name      string
		in        string
		opts      CSVOptions
		line, col int
		column    string
		msg       string // a part of the message
	}{
		{"no targets named", "a,y\n1,2\n", CSVOptions{}, 0, 0, "", "no target columns"},
		{"empty file", "", reg, 0, 0, "", "empty input"},
		{"only blank lines", "\n\n", reg, 0, 0, "", "empty input"},
		{"header only", "a,y\n", reg, 0, 0, "", "no data rows"},
		{"missing target", "a,b\n1,2\n", reg, 1, 0, "", `no target column "y"; the columns are "a", "b"`},
		{"missing feature", "a,y\n1,2\n", CSVOptions{Targets: reg.Targets, Features: []string{"z"}}, 1, 0, "", `no feature column "z"`},
		{"duplicate column", "a,y,a\n1,2,3\n", reg, 1, 3, "a", "already used by column 1"},
		{"empty column name", "a,,y\n1,2,3\n", reg, 1, 2, "", "empty column name"},
		{"target twice", "a,y\n1,2\n", CSVOptions{Targets: []Target{{Name: "y"}, {Name: "y", Kind: Binary}}}, 0, 0, "", "named twice"},
		{"feature is target", "a,y\n1,2\n", CSVOptions{Targets: reg.Targets, Features: []string{"y"}}, 0, 0, "", "both a feature and a target"},
		{"feature twice", "a,y\n1,2\n", CSVOptions{Targets: reg.Targets, Features: []string{"a", "a"}}, 0, 0, "", "feature \"a\" named twice"},
		{"no features", "y\n1\n", reg, 1, 0, "", "no feature columns"},
		{"bad kind", "a,y\n1,2\n", CSVOptions{Targets: []Target{{Name: "y", Kind: 7}}}, 0, 0, "", "unknown kind"},
		{"one class", "a,y\n1,0\n", CSVOptions{Targets: []Target{{Name: "y", Kind: Multiclass, Classes: 1}}}, 0, 0, "", "at least 2"},
		{"short row", "a,b,y\n1,2,3\n4,5\n", reg, 3, 3, "y", "2 fields, want 3"},
		{"long row", "a,y\n1,2\n3,4,5\n", reg, 3, 3, "", "3 fields, want 2"},
		{"not a number", "a,y\n1,2\n3,abc\n", reg, 3, 2, "y", `"abc" is not a number`},
		{"empty cell", "a,b,y\n1,,3\n", reg, 2, 2, "b", "empty cell"},
		{"NaN", "a,y\nNaN,1\n", reg, 2, 1, "a", "not a finite number"},
		{"Inf", "a,y\n1,-Inf\n", reg, 2, 2, "y", "not a finite number"},
		{"overflow", "a,y\n1e999,1\n", reg, 2, 1, "a", "not a finite number"},
		{"binary label 2", "a,y\n1,1\n2,2\n", CSVOptions{Targets: []Target{{Name: "y", Kind: Binary}}}, 3, 2, "y", "binary label 2"},
		{"class not integer", "a,y\n1,1.5\n", CSVOptions{Targets: []Target{{Name: "y", Kind: Multiclass}}}, 2, 2, "y", "class 1.5"},
		{"negative class", "a,y\n1,-1\n", CSVOptions{Targets: []Target{{Name: "y", Kind: Multiclass, Classes: 3}}}, 2, 2, "y", "class -1"},
		{"class too big", "a,y\n1,3\n", CSVOptions{Targets: []Target{{Name: "y", Kind: Multiclass, Classes: 3}}}, 2, 2, "y", "class 3"},
		{"class beyond inference", "a,y\n1,1e9\n", CSVOptions{Targets: []Target{{Name: "y", Kind: Multiclass}}}, 2, 2, "y", "class 1e+09"},
		{"only class 0", "a,y\n1,0\n2,0\n", CSVOptions{Targets: []Target{{Name: "y", Kind: Multiclass}}}, 0, 0, "y", "only class 0"},
		{"bare quote", "a,y\n1,2\n3,4\"\n", reg, 3, 0, "", `bare "`},
		{"multi-line cell", "a,y\n\"1\n\",x\n", reg, 3, 2, "y", `"x" is not a number`},
	} {
		t.Run(c.name, func(t *testing.T) {
			tab, err := ReadCSV(strings.NewReader(c.in), c.opts)
			if err == nil {
				t.Fatalf("ReadCSV(%q) = %d rows, no error; want an error", c.in, tab.N)
			}
			var ce *CSVError
			if !errors.As(err, &ce) {
				t.Fatalf("ReadCSV(%q): error %v is not a *CSVError", c.in, err)
			}
			if ce.Line != c.line || ce.Column != c.col || ce.Name != c.column || !strings.Contains(err.Error(), c.msg) ||
				!strings.HasPrefix(err.Error(), "tasks: CSV") {
				t.Errorf("ReadCSV(%q) error = %q (line %d, column %d %q); want line %d, column %d %q, containing %q",
					c.in, err, ce.Line, ce.Column, ce.Name, c.line, c.col, c.column, c.msg)
			}
		})
	}
}

func TestReadCSVManyColumns(t *testing.T) {
	var names []string
	for i := range 30 {
		names = append(names, "c"+string(rune('A'+i)))
	}
	_, err := ReadCSV(strings.NewReader(strings.Join(names, ",")+"\n"), CSVOptions{Targets: []Target{{Name: "y"}}})
	if err == nil || !strings.Contains(err.Error(), "and 10 more") {
		t.Errorf("missing target among 30 columns: error %v; want the first 20 columns listed and \"and 10 more\"", err)
	}
}

func TestLoadCSV(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(good, []byte("a,y\n1,0\n2,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("a,y\n1,0\n2,x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := CSVOptions{Targets: []Target{{Name: "y", Kind: Binary}}}
	tab, err := LoadCSV(good, opts)
	if err != nil {
		t.Fatal(err)
	}
	if tab.N != 2 || tab.In != 1 {
		t.Errorf("LoadCSV(good) = %d rows of %d features; want 2 of 1", tab.N, tab.In)
	}
	want := "tasks: " + bad + " line 3 column 2 (\"y\"): \"x\" is not a number"
	if _, err := LoadCSV(bad, opts); err == nil || err.Error() != want {
		t.Errorf("LoadCSV(bad) error = %v; want %s", err, want)
	}
	missing := filepath.Join(dir, "missing.csv")
	if _, err := LoadCSV(missing, opts); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("LoadCSV(missing) error = %v; want one naming %s", err, missing)
	}
}

// FuzzReadCSV checks that ReadCSV never panics and that every table it
// returns is valid and shaped as the options say.
func FuzzReadCSV(f *testing.F) {
	// The seed corpus is in testdata/fuzz/FuzzReadCSV; these add the
	// simplest cases of each target kind.
	f.Add([]byte("a,b,y\n1,2,3\n"), "y", uint8(Regression), int8(0), "")
	f.Add([]byte("a,y\n1,0\n2,1\n"), "y", uint8(Binary), int8(0), "a")
	f.Add([]byte("a,y\n1,0\n2,4\n"), "y", uint8(Multiclass), int8(0), "")
	f.Fuzz(func(t *testing.T, data []byte, target string, kind uint8, classes int8, features string) {
		// A short MaxLine, so that long lines take the refusal's path.
		opts := CSVOptions{Targets: []Target{{Name: target, Kind: Kind(kind % 4), Classes: int(classes)}}, MaxLine: 256}
		if features != "" {
			opts.Features = strings.Split(features, "|")
		}
		if opts.Features != nil { // the features alone, as for prediction
			fo := opts
			fo.Targets = nil
			x, err := ReadCSV(strings.NewReader(string(data)), fo)
			var ce *CSVError
			if err != nil && !errors.As(err, &ce) {
				t.Fatalf("features only: error %v is not a *CSVError", err)
			}
			if err == nil && (x.In != len(opts.Features) || len(x.X) != x.N*x.In) {
				t.Fatalf("features only: %d rows of %d features in %d values, want %d features", x.N, x.In, len(x.X), len(opts.Features))
			}
		}
		tab, err := ReadCSV(strings.NewReader(string(data)), opts)
		if err != nil {
			var ce *CSVError
			if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "tasks: CSV") {
				t.Fatalf("error %v is not a *CSVError", err)
			}
			return
		}
		if err := tab.Validate(); err != nil {
			t.Fatalf("ReadCSV returned an invalid table: %v", err)
		}
		if len(tab.Targets) != 1 || tab.Targets[0].Name != target {
			t.Fatalf("targets %v; want one named %q", tab.Targets, target)
		}
		if opts.Features != nil && tab.In != len(opts.Features) {
			t.Fatalf("%d features; want %d", tab.In, len(opts.Features))
		}
		if tab.N*(tab.In+1)*2 > len(data)+2 {
			t.Fatalf("%d rows of %d features and a target from %d bytes", tab.N, tab.In, len(data))
		}
	})
}

func ExampleReadCSV() {
	in := `age,income,smoker,risk
34,52000,0,1.5
51,61000,1,3.25
`
	tab, err := ReadCSV(strings.NewReader(in), CSVOptions{Targets: []Target{
		{Name: "risk", Kind: Regression},
		{Name: "smoker", Kind: Binary},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tab.N, "rows of", tab.In, "features:", tab.X)
	fmt.Println(tab.Targets[0].Name, tab.Y[0], tab.Targets[1].Name, tab.Y[1])

	_, err = ReadCSV(strings.NewReader("age,risk\n34,high\n"), CSVOptions{Targets: []Target{{Name: "risk"}}})
	fmt.Println(err)
	// Output:
	// 2 rows of 2 features: [34 52000 51 61000]
	// risk [1.5 3.25] smoker [0 1]
	// tasks: CSV line 2 column 2 ("risk"): "high" is not a number
}

// TestCSVLimits checks MaxAbs (a value the training type cannot hold is
// refused naming its line and column) and MaxLine (a long line is refused
// naming it, without being held whole: a line of 64 MiB is read with
// little memory).
func TestCSVLimits(t *testing.T) {
	opts := CSVOptions{Targets: []Target{{Name: "y"}}, MaxAbs: math.MaxFloat32}
	_, err := ReadCSV(strings.NewReader("a,y\n1,2\n1e308,3\n"), opts)
	var ce *CSVError
	if !errors.As(err, &ce) || ce.Line != 3 || ce.Column != 1 || !strings.Contains(err.Error(), "larger in magnitude than") {
		t.Errorf("ReadCSV(1e308 in float32) = %v; want a *CSVError at line 3, column 1", err)
	}
	if _, err := ReadCSV(strings.NewReader("a,y\n1e308,3\n"), CSVOptions{Targets: opts.Targets}); err != nil {
		t.Errorf("ReadCSV(1e308 without MaxAbs) = %v; want it accepted", err)
	}

	long := io.MultiReader(strings.NewReader("a,y\n1,2\n"), io.LimitReader(repeatByte('7'), 64<<20), strings.NewReader(",1\n"))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = ReadCSV(long, CSVOptions{Targets: opts.Targets, MaxLine: 1 << 20})
	runtime.ReadMemStats(&after)
	if !errors.As(err, &ce) || ce.Line != 3 || !strings.Contains(err.Error(), "longer than MaxLine") {
		t.Errorf("ReadCSV(a 64 MiB line) = %v; want a *CSVError at line 3 saying it is too long", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("ReadCSV allocated %d MiB for a line it refused", grew>>20)
	}
}

// repeatByte is an endless stream of one byte.
type repeatByte byte

func (r repeatByte) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func TestParseTargets(t *testing.T) {
	got, err := ParseTargets("y:regression, c:binary,d:multiclass:10")
	if err != nil {
		t.Fatal(err)
	}
	want := []Target{{Name: "y", Kind: Regression}, {Name: "c", Kind: Binary}, {Name: "d", Kind: Multiclass, Classes: 10}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseTargets = %+v; want %+v", got, want)
	}
	for _, bad := range []string{"", "y", ":regression", "y:ordinal", "y:multiclass", "y:multiclass:1", "y:multiclass:x", "y:regression:2", "y:multiclass:65537"} {
		if got, err := ParseTargets(bad); err == nil {
			t.Errorf("ParseTargets(%q) = %+v; want an error", bad, got)
		}
	}
}

// TestWriteCSV checks that ReadCSV reads back what WriteCSV writes, bit
// for bit.
func TestWriteCSV(t *testing.T) {
	tab, err := SyntheticMTL{Seed: 3}.Generate(rand.New(rand.NewPCG(1, 2)), 50)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tab.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadCSV(&buf, CSVOptions{Targets: tab.Targets})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Features, tab.FeatureNames()) {
		t.Errorf("read back features %v, want %v", back.Features, tab.FeatureNames())
	}
	back.Features = nil // a generated table's names are implied
	if !reflect.DeepEqual(back, tab) {
		t.Errorf("read back a different table")
	}

	// Features alone, for prediction: other columns ignored, in the order asked.
	feats, err := ReadCSV(strings.NewReader("b,y,a\n1,9,2\n3,9,4\n"), CSVOptions{Features: []string{"a", "b"}})
	if err != nil || feats.N != 2 || !slices.Equal(feats.X, []float64{2, 1, 4, 3}) || feats.Targets != nil {
		t.Errorf("features only: %+v, %v; want rows (2, 1) and (4, 3) and no targets", feats, err)
	}
	if _, err := ReadCSV(strings.NewReader("b,y\n1,9\n"), CSVOptions{Features: []string{"a", "b"}}); err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("a missing feature column: %v", err)
	}
	// An unnamed index column and repeated names among the ignored
	// columns are ignored too; a row too short for the features is an
	// error naming its line, not a panic.
	feats, err = ReadCSV(strings.NewReader(",b,z,a,z\n0,1,9,2,9\n1,3,9,4\n"), CSVOptions{Features: []string{"a", "b"}})
	if err != nil || !slices.Equal(feats.X, []float64{2, 1, 4, 3}) {
		t.Errorf("features among ignored columns: %+v, %v", feats, err)
	}
	var ce *CSVError
	if _, err := ReadCSV(strings.NewReader("a,b,c\n1,2,3\n1\n"), CSVOptions{Features: []string{"a", "b"}}); !errors.As(err, &ce) || ce.Line != 3 {
		t.Errorf("a short row: %v, want an error at line 3", err)
	}
	if _, err := ReadCSV(strings.NewReader("a,b,c\n1,2,3\n1,2,3,4,5\n"), CSVOptions{Features: []string{"a", "b"}}); !errors.As(err, &ce) || ce.Line != 3 || ce.Column != 4 {
		t.Errorf("a row longer than the header: %v, want an error at line 3 column 4", err)
	}
	if feats, err := ReadCSV(strings.NewReader("a,b\n1,2,\n3,4, \n"), CSVOptions{Features: []string{"a", "b"}}); err != nil || feats.N != 2 {
		t.Errorf("rows with a trailing comma: %v; want them read", err)
	}
	clash := &Table{N: 1, In: 2, X: []float64{1, 2}, Targets: []Target{{Name: "x2", Kind: Regression}}, Y: [][]float64{{0}}}
	if err := clash.WriteCSV(&buf); err == nil {
		t.Error("WriteCSV of a target named x2 beside two features: no error")
	}
}

// TestCSVMissingLabels: an empty target cell is a missing label (NaN),
// written back as an empty cell; a row with no label at all is an error
// naming its line; an empty feature cell is still an error.
func TestCSVMissingLabels(t *testing.T) {
	opts := CSVOptions{Targets: []Target{{Name: "y", Kind: Regression}, {Name: "c", Kind: Binary}}}
	tab, err := ReadCSV(strings.NewReader("a,y,c\n1,2,\n3,,1\n5,6,0\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(tab.Y[1][0]) || !math.IsNaN(tab.Y[0][1]) || tab.Y[0][2] != 6 || tab.Labelled(0) != 2 || tab.Labelled(1) != 2 {
		t.Errorf("labels %v: want NaN where the cells are empty, 2 labelled rows per target", tab.Y)
	}
	if err := tab.Validate(); err != nil {
		t.Errorf("a table with missing labels is invalid: %v", err)
	}
	var buf bytes.Buffer
	if err := tab.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "\n1,2,\n3,,1\n") {
		t.Errorf("written back as\n%s", buf.String())
	}
	_, err = ReadCSV(strings.NewReader("a,y,c\n1,2,0\n3, ,\n"), opts)
	var ce *CSVError
	if !errors.As(err, &ce) || ce.Line != 3 || !strings.Contains(err.Error(), "no label") {
		t.Errorf("a row without labels: %v, want an error at line 3", err)
	}
	if _, err := ReadCSV(strings.NewReader("a,y,c\n,2,0\n"), opts); err == nil || !strings.Contains(err.Error(), "empty cell") {
		t.Errorf("an empty feature cell: %v", err)
	}
}

// TestWritePredictions: one column per regression or binary target, one
// per class of a multi-class one, the values as given; mismatched sizes
// are errors.
func TestWritePredictions(t *testing.T) {
	targets := []Target{{Name: "y", Kind: Regression}, {Name: "c", Kind: Multiclass, Classes: 3}, {Name: "b", Kind: Binary}}
	var buf bytes.Buffer
	n, err := WritePredictions(&buf, targets, [][]float64{{1.5, -2}, {0.2, 0.3, 0.5, 1, 0, 0}, {0.25, 0.75}})
	if err != nil || n != 5 || buf.String() != "y,c:0,c:1,c:2,b\n1.5,0.2,0.3,0.5,0.25\n-2,1,0,0,0.75\n" {
		t.Errorf("WritePredictions = %d, %v:\n%s", n, err, buf.String())
	}
	if _, err := WritePredictions(&buf, targets, [][]float64{{1.5, -2}, {0.2, 0.3, 0.5}, {0.25, 0.75}}); err == nil {
		t.Errorf("3 values for 2 rows of 3 classes: no error")
	}
}
