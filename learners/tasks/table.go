package tasks

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// Kind is the kind of a multi-task target.
type Kind int

// The target kinds. The zero value is Regression.
const (
	// Regression targets are real numbers, scored by mean squared error.
	Regression Kind = iota
	// Binary targets are 0 or 1, scored by the logistic loss, accuracy
	// and F1.
	Binary
	// Multiclass targets are class indices 0..Classes-1, scored by the
	// softmax cross-entropy and accuracy (and macro F1).
	Multiclass
)

var kindNames = []string{"regression", "binary", "multiclass"}

// String returns the kind's name.
func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// ParseKind returns the kind called name (case-insensitive).
func ParseKind(name string) (Kind, error) {
	for i, n := range kindNames {
		if strings.EqualFold(name, n) {
			return Kind(i), nil
		}
	}
	return 0, fmt.Errorf("tasks: unknown target kind %q (want one of %s)", name, strings.Join(kindNames, ", "))
}

// Target describes one task of a multi-task table.
type Target struct {
	Name    string
	Kind    Kind
	Classes int // Multiclass: the number of classes (at least 2); ignored otherwise
}

// Outputs returns the number of network outputs the target needs: 1 for
// regression and binary targets, Classes for multi-class ones.
func (t Target) Outputs() int {
	if t.Kind == Multiclass {
		return t.Classes
	}
	return 1
}

// Table is a multi-task dataset in memory: N rows, each with In features
// and one target per task. Row i's features are X[i*In : (i+1)*In] and its
// target for task t is Y[t][i]: a real value, a 0/1 label or a class index
// stored as a float64, or NaN when the row has no label for the task (a
// missing label, which training and evaluation leave out).
type Table struct {
	N, In   int
	X       []float64
	Targets []Target
	Y       [][]float64
	// Features names the In feature columns, as a CSV file named them;
	// nil means "x1", "x2", ... (see FeatureNames).
	Features []string
}

// Labelled returns how many rows of target k have a label: a missing
// label is NaN (an empty cell of a CSV file).
func (t *Table) Labelled(k int) int {
	n := 0
	for _, v := range t.Y[k] {
		if !math.IsNaN(v) {
			n++
		}
	}
	return n
}

// FeatureNames returns t.Features, or "x1", ..., "xIn" when it is nil:
// the columns WriteCSV writes and a model trained on t predicts from.
func (t *Table) FeatureNames() []string {
	if t.Features != nil {
		return slices.Clone(t.Features)
	}
	out := make([]string, t.In)
	for j := range out {
		out[j] = "x" + strconv.Itoa(j+1)
	}
	return out
}

// ErrTable is matched by errors reporting an inconsistent table.
var ErrTable = errors.New("invalid table")

// Validate reports whether the table's sizes agree, every value is finite
// and every label is valid for its target's kind.
func (t *Table) Validate() error {
	if t == nil {
		return fmt.Errorf("tasks: nil table: %w", ErrTable)
	}
	if t.N <= 0 || t.In <= 0 {
		return fmt.Errorf("tasks: table has %d rows of %d features, want both positive: %w", t.N, t.In, ErrTable)
	}
	if len(t.X) != t.N*t.In {
		return fmt.Errorf("tasks: table X has %d values, want %d×%d: %w", len(t.X), t.N, t.In, ErrTable)
	}
	if len(t.Targets) == 0 || len(t.Y) != len(t.Targets) {
		return fmt.Errorf("tasks: table has %d targets and %d target columns, want the same positive number: %w", len(t.Targets), len(t.Y), ErrTable)
	}
	if t.Features != nil && len(t.Features) != t.In {
		return fmt.Errorf("tasks: table names %d features and has %d: %w", len(t.Features), t.In, ErrTable)
	}
	for i, v := range t.X {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("tasks: table row %d feature %d is %v: %w", i/t.In, i%t.In, v, ErrTable)
		}
	}
	for k, tg := range t.Targets {
		if tg.Kind < Regression || tg.Kind > Multiclass {
			return fmt.Errorf("tasks: target %q has unknown kind %d: %w", tg.Name, int(tg.Kind), ErrTable)
		}
		if tg.Kind == Multiclass && tg.Classes < 2 {
			return fmt.Errorf("tasks: multi-class target %q has %d classes, want at least 2: %w", tg.Name, tg.Classes, ErrTable)
		}
		if len(t.Y[k]) != t.N {
			return fmt.Errorf("tasks: target %q has %d values for %d rows: %w", tg.Name, len(t.Y[k]), t.N, ErrTable)
		}
		for i, v := range t.Y[k] {
			if math.IsNaN(v) { // missing
				continue
			}
			if err := checkLabel(tg, v); err != nil {
				return fmt.Errorf("tasks: target %q row %d: %v: %w", tg.Name, i, err, ErrTable)
			}
		}
	}
	return nil
}

func checkLabel(tg Target, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("value %v", v)
	}
	switch tg.Kind {
	case Binary:
		if v != 0 && v != 1 {
			return fmt.Errorf("binary label %v, want 0 or 1", v)
		}
	case Multiclass:
		if v != math.Trunc(v) || v < 0 || v >= float64(tg.Classes) {
			return fmt.Errorf("class %v, want an integer in [0, %d)", v, tg.Classes)
		}
	}
	return nil
}

// Rows returns a new table holding the given rows of t, in that order.
func (t *Table) Rows(idx []int) (*Table, error) {
	if t == nil || t.In <= 0 || len(t.X) != t.N*t.In || len(t.Y) != len(t.Targets) {
		return nil, fmt.Errorf("tasks: Rows of an inconsistent table: %w", ErrTable)
	}
	for k := range t.Y {
		if len(t.Y[k]) != t.N {
			return nil, fmt.Errorf("tasks: Rows: target %d has %d values for %d rows: %w", k, len(t.Y[k]), t.N, ErrTable)
		}
	}
	out := &Table{N: len(idx), In: t.In, Targets: t.Targets, Features: t.Features, X: make([]float64, 0, len(idx)*t.In), Y: make([][]float64, len(t.Y))}
	for k := range out.Y {
		out.Y[k] = make([]float64, 0, len(idx))
	}
	for _, i := range idx {
		if i < 0 || i >= t.N {
			return nil, fmt.Errorf("tasks: row %d out of range [0, %d)", i, t.N)
		}
		out.X = append(out.X, t.X[i*t.In:(i+1)*t.In]...)
		for k := range t.Y {
			out.Y[k] = append(out.Y[k], t.Y[k][i])
		}
	}
	return out, nil
}

// Split shuffles the rows with rng and returns the first n−⌊frac·n⌋ rows
// as train and the rest as test. frac must lie in (0, 1) and leave at
// least one row on each side.
func (t *Table) Split(rng *rand.Rand, frac float64) (train, test *Table, err error) {
	nTest := int(frac * float64(t.N))
	if !(frac > 0 && frac < 1) || nTest < 1 || nTest >= t.N {
		return nil, nil, fmt.Errorf("tasks: cannot split %d rows with test fraction %v", t.N, frac)
	}
	perm := rng.Perm(t.N)
	if train, err = t.Rows(perm[:t.N-nTest]); err != nil {
		return nil, nil, err
	}
	if test, err = t.Rows(perm[t.N-nTest:]); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// Batches yields the table's rows in minibatches of size n (the last one
// smaller if n does not divide N), in an order shuffled by rng; with a nil
// rng the order is kept.
func (t *Table) Batches(rng *rand.Rand, n int) ([]*Table, error) {
	if n <= 0 {
		return nil, fmt.Errorf("tasks: batch size %d, want positive", n)
	}
	var order []int
	if rng != nil {
		order = rng.Perm(t.N)
	} else {
		order = make([]int, t.N)
		for i := range order {
			order[i] = i
		}
	}
	var out []*Table
	for lo := 0; lo < t.N; lo += n {
		b, err := t.Rows(order[lo:min(lo+n, t.N)])
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}
