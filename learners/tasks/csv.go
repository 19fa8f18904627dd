package tasks

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// CSVOptions says how to read a CSV file into a Table. Targets is
// required, except to read features alone (a table to predict for): with
// Features set and no Targets, the named feature columns are read and
// every other column is ignored.
type CSVOptions struct {
	// Targets names the target columns, in the order of the table's
	// targets, with their kinds. Labels of a Binary target must be 0 or
	// 1; labels of a Multiclass target must be integers in
	// [0, Classes). A Multiclass target with Classes 0 has
	// 1 + its largest label classes, at least 2 and at most 65536.
	Targets []Target
	// Features names the feature columns, in the order of the table's
	// features; nil means every column that is not a target, in the
	// order of the file.
	Features []string
	// Comma is the field separator; default ','.
	Comma rune
	// MaxAbs, when positive, is the largest magnitude a cell may hold:
	// math.MaxFloat32 for a table that trains in float32, where larger
	// values would overflow. Zero means any finite float64.
	MaxAbs float64
	// MaxLine is the longest line, in bytes, that is read; default
	// DefaultMaxLine. A longer line is an error before it is held in
	// memory whole.
	MaxLine int
}

// DefaultMaxLine is CSVOptions.MaxLine's default: 16 MiB, a row of some
// 800,000 twenty-character cells.
const DefaultMaxLine = 16 << 20

// CSVError reports a problem with a CSV input, at a line and column where
// there is one.
type CSVError struct {
	Path   string // the file named to LoadCSV; "" for ReadCSV
	Line   int    // 1-based line number; 0 if the problem is not at one line
	Column int    // 1-based column number (a ragged row's first missing or extra one); 0 if none
	Name   string // the column's name in the header, if known
	Err    error
}

func (e *CSVError) Error() string {
	var b strings.Builder
	b.WriteString("tasks: ")
	if e.Path != "" {
		b.WriteString(e.Path)
	} else {
		b.WriteString("CSV")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, " line %d", e.Line)
	}
	if e.Column > 0 {
		fmt.Fprintf(&b, " column %d", e.Column)
	}
	if e.Name != "" {
		fmt.Fprintf(&b, " (%q)", e.Name)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *CSVError) Unwrap() error { return e.Err }

// maxInferredClasses bounds the class count inferred from the labels of a
// Multiclass target whose Classes is 0.
const maxInferredClasses = 1 << 16

// LoadCSV reads the CSV file at path with ReadCSV; errors name the path.
func LoadCSV(path string, opts CSVOptions) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tasks: %v", err)
	}
	defer f.Close()
	return readCSV(f, opts, path)
}

// ReadCSV reads a multi-task table from CSV text: a header row naming the
// columns, then one row per example with a number in every cell. Header
// names are trimmed of spaces (and a leading UTF-8 byte order mark) and
// must be unique and not empty; cells are trimmed of spaces and parsed
// with strconv.ParseFloat. Empty lines are skipped.
//
// An empty cell in a target column is a missing label, NaN in the table:
// the row then takes no part in that task's loss and metrics.
//
// Every problem is reported as a *CSVError naming the line, and the
// column by number and name where there is one: a missing header, a
// duplicate or empty column name, a target or feature column the header
// lacks (the error lists the columns it has), a row with too few or too
// many cells, an empty feature cell or a non-numeric cell, NaN or ±Inf
// (also from overflow), a label invalid for its target's kind, a row with
// no label for any target, and no data rows.
//
// Memory grows with the rows actually read, never with counts taken from
// the input.
func ReadCSV(r io.Reader, opts CSVOptions) (*Table, error) {
	return readCSV(r, opts, "")
}

func readCSV(r io.Reader, opts CSVOptions, path string) (*Table, error) {
	fail := func(line, col int, name string, format string, args ...any) error {
		return &CSVError{Path: path, Line: line, Column: col, Name: name, Err: fmt.Errorf(format, args...)}
	}
	featuresOnly := len(opts.Targets) == 0 && opts.Features != nil
	if len(opts.Targets) == 0 && !featuresOnly {
		return nil, fail(0, 0, "", "no target columns named in the options")
	}
	maxLine := opts.MaxLine
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	cr := csv.NewReader(&lineLimit{r: r, max: maxLine, line: 1, path: path})
	cr.Comma = ','
	if opts.Comma != 0 {
		cr.Comma = opts.Comma
	}
	cr.FieldsPerRecord = -1 // checked below, with a clearer message
	cr.ReuseRecord = true

	header, err := cr.Read()
	if err == io.EOF {
		return nil, fail(0, 0, "", "empty input, want a header row")
	}
	if err != nil {
		return nil, csvReadError(err, path)
	}
	names := make([]string, len(header))
	index := make(map[string]int, len(header))
	for j, h := range header {
		if j == 0 {
			h = strings.TrimPrefix(h, "\uFEFF")
		}
		h = strings.TrimSpace(h)
		line, _ := cr.FieldPos(j)
		names[j] = h
		if featuresOnly && (h == "" || !slices.Contains(opts.Features, h)) {
			continue // ignored: an unnamed index column, say
		}
		if h == "" {
			return nil, fail(line, j+1, "", "empty column name")
		}
		if k, dup := index[h]; dup {
			return nil, fail(line, j+1, h, "column name already used by column %d", k+1)
		}
		index[h] = j
	}
	headerLine, _ := cr.FieldPos(0)

	lookup := func(name, role string) (int, error) {
		j, ok := index[name]
		if !ok {
			return 0, fail(headerLine, 0, "", "no %s column %q; the columns are %s", role, name, listNames(names))
		}
		return j, nil
	}
	isTarget := make(map[int]bool, len(opts.Targets))
	tcols := make([]int, len(opts.Targets))
	targets := make([]Target, len(opts.Targets))
	for k, tg := range opts.Targets {
		if tg.Kind < Regression || tg.Kind > Multiclass {
			return nil, fail(0, 0, "", "target %q has unknown kind %d", tg.Name, int(tg.Kind))
		}
		if tg.Kind == Multiclass && (tg.Classes < 0 || tg.Classes == 1) {
			return nil, fail(0, 0, "", "multi-class target %q has %d classes, want at least 2 (or 0 to infer them)", tg.Name, tg.Classes)
		}
		j, err := lookup(tg.Name, "target")
		if err != nil {
			return nil, err
		}
		if isTarget[j] {
			return nil, fail(0, 0, "", "target %q named twice", tg.Name)
		}
		isTarget[j] = true
		tcols[k] = j
		targets[k] = tg
		if tg.Kind != Multiclass {
			targets[k].Classes = 0
		}
	}
	var fcols []int
	if opts.Features != nil {
		seen := make(map[int]bool, len(opts.Features))
		for _, name := range opts.Features {
			j, err := lookup(name, "feature")
			if err != nil {
				return nil, err
			}
			if isTarget[j] {
				return nil, fail(0, 0, "", "column %q named as both a feature and a target", name)
			}
			if seen[j] {
				return nil, fail(0, 0, "", "feature %q named twice", name)
			}
			seen[j] = true
			fcols = append(fcols, j)
		}
	} else {
		for j := range names {
			if !isTarget[j] {
				fcols = append(fcols, j)
			}
		}
	}
	if len(fcols) == 0 {
		return nil, fail(headerLine, 0, "", "no feature columns: every column is a target")
	}

	tab := &Table{In: len(fcols), Targets: targets, Y: make([][]float64, len(targets)), Features: make([]string, len(fcols))}
	for i, j := range fcols {
		tab.Features[i] = names[j]
	}
	if featuresOnly {
		tab.Targets, tab.Y = nil, nil
	}
	cell := func(rec []string, j int) (float64, error) {
		line, _ := cr.FieldPos(j)
		s := strings.TrimSpace(rec[j])
		if s == "" {
			return 0, fail(line, j+1, names[j], "empty cell")
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, fail(line, j+1, names[j], "%q is not a number", truncate(s))
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fail(line, j+1, names[j], "%q is not a finite number", truncate(s))
		}
		if opts.MaxAbs > 0 && math.Abs(v) > opts.MaxAbs {
			return 0, fail(line, j+1, names[j], "%q is larger in magnitude than %g, the largest the training type holds", truncate(s), opts.MaxAbs)
		}
		return v, nil
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvReadError(err, path)
		}
		// Reading features alone, a row may end before the columns it
		// does not use, or run past the header with empty fields (a
		// trailing comma); no row may hold more values than the header
		// names.
		if len(rec) != len(names) && !(featuresOnly && len(rec) > slices.Max(fcols) && (len(rec) < len(names) || blank(rec[len(names):]))) {
			line, _ := cr.FieldPos(0)
			col, name := len(names)+1, ""
			if len(rec) < len(names) {
				col, name = len(rec)+1, names[len(rec)]
			}
			return nil, fail(line, col, name, "row has %d fields, want %d as in the header", len(rec), len(names))
		}
		for _, j := range fcols {
			v, err := cell(rec, j)
			if err != nil {
				return nil, err
			}
			tab.X = append(tab.X, v)
		}
		labelled := false
		for k, j := range tcols {
			if strings.TrimSpace(rec[j]) == "" { // a missing label
				tab.Y[k] = append(tab.Y[k], math.NaN())
				continue
			}
			labelled = true
			v, err := cell(rec, j)
			if err != nil {
				return nil, err
			}
			tg := targets[k]
			if tg.Kind == Multiclass && tg.Classes == 0 {
				tg.Classes = maxInferredClasses
			}
			if err := checkLabel(tg, v); err != nil {
				line, _ := cr.FieldPos(j)
				return nil, fail(line, j+1, names[j], "%v for %v target %q", err, tg.Kind, tg.Name)
			}
			tab.Y[k] = append(tab.Y[k], v)
		}
		if !labelled && len(tcols) > 0 {
			line, _ := cr.FieldPos(0)
			return nil, fail(line, 0, "", "row has no label for any target (%s)", listNames(targetNames(targets)))
		}
		tab.N++
	}
	if tab.N == 0 {
		return nil, fail(0, 0, "", "no data rows after the header")
	}
	for k := range targets {
		if targets[k].Kind != Multiclass || targets[k].Classes != 0 {
			continue
		}
		top := 0.0
		for _, v := range tab.Y[k] {
			if !math.IsNaN(v) {
				top = max(top, v)
			}
		}
		if top < 1 {
			return nil, fail(0, 0, names[tcols[k]], "multi-class target has only class 0; set its Classes")
		}
		targets[k].Classes = int(top) + 1
	}
	if featuresOnly {
		return tab, nil
	}
	if err := tab.Validate(); err != nil {
		return nil, fail(0, 0, "", "%v", err) // not reached: every cell was checked
	}
	return tab, nil
}

// lineLimit passes r through, failing with a *CSVError when a line grows
// longer than max bytes.
type lineLimit struct {
	r    io.Reader
	max  int
	n    int // bytes of the current line so far
	line int
	path string
}

func (l *lineLimit) Read(p []byte) (int, error) {
	k, err := l.r.Read(p)
	for i, b := range p[:k] {
		if b == '\n' {
			l.n, l.line = 0, l.line+1
			continue
		}
		if l.n++; l.n > l.max {
			return i, &CSVError{Path: l.path, Line: l.line, Err: fmt.Errorf("line longer than MaxLine = %d bytes", l.max)}
		}
	}
	return k, err
}

// csvReadError turns an error of encoding/csv into a *CSVError.
func csvReadError(err error, path string) error {
	var ce *CSVError
	if errors.As(err, &ce) {
		return ce
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		// pe.Column counts bytes, not fields: keep it in the message.
		return &CSVError{Path: path, Line: pe.Line, Err: fmt.Errorf("byte %d: %w", pe.Column, pe.Err)}
	}
	return &CSVError{Path: path, Err: err}
}

// listNames lists column names for an error message, at most 20 of them.
func listNames(names []string) string {
	const most = 20
	q := make([]string, 0, min(len(names), most))
	for _, n := range names[:min(len(names), most)] {
		q = append(q, strconv.Quote(truncate(n)))
	}
	s := strings.Join(q, ", ")
	if len(names) > most {
		s += fmt.Sprintf(" and %d more", len(names)-most)
	}
	return s
}

// truncate shortens s to at most 40 bytes for an error message.
func truncate(s string) string {
	if len(s) <= 40 {
		return s
	}
	return s[:37] + "..."
}

// maxTargetClasses bounds the classes of a target ParseTargets accepts.
const maxTargetClasses = 1 << 16

// ParseTargets parses a list of target columns, "name:kind,...", with
// kind regression, binary or multiclass:N (N classes, 2 to 65536).
func ParseTargets(s string) ([]Target, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("tasks: name at least one target column")
	}
	var out []Target
	for _, f := range strings.Split(s, ",") {
		parts := strings.Split(strings.TrimSpace(f), ":")
		if len(parts) < 2 || parts[0] == "" {
			return nil, fmt.Errorf("tasks: target %q: want name:kind", f)
		}
		k, err := ParseKind(parts[1])
		if err != nil {
			return nil, fmt.Errorf("tasks: target %q: %v", f, err)
		}
		tg := Target{Name: parts[0], Kind: k}
		switch {
		case k == Multiclass && len(parts) == 3:
			if tg.Classes, err = strconv.Atoi(parts[2]); err != nil || tg.Classes < 2 || tg.Classes > maxTargetClasses {
				return nil, fmt.Errorf("tasks: target %q: want multiclass:N with 2 ≤ N ≤ %d classes", f, maxTargetClasses)
			}
		case len(parts) != 2:
			return nil, fmt.Errorf("tasks: target %q: want name:kind (multiclass:N for N classes)", f)
		case k == Multiclass:
			return nil, fmt.Errorf("tasks: target %q: say how many classes: multiclass:N", f)
		}
		out = append(out, tg)
	}
	return out, nil
}

// WriteCSV writes t as CSV text that ReadCSV reads back exactly: a header
// of the feature columns, named x1, x2, ..., then the targets' names, and
// one row per example, every number in the shortest form that parses back
// to the same float64 (labels as whole numbers). A target named like a
// feature column is an error.
func (t *Table) WriteCSV(w io.Writer) error {
	if err := t.Validate(); err != nil {
		return err
	}
	header := make([]string, 0, t.In+len(t.Targets))
	header = append(header, t.FeatureNames()...)
	for _, tg := range t.Targets {
		if slices.Contains(header[:t.In], tg.Name) {
			return fmt.Errorf("tasks: WriteCSV: target %q has a feature column's name", tg.Name)
		}
		header = append(header, tg.Name)
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return fmt.Errorf("tasks: WriteCSV: %v", err)
	}
	row := make([]string, len(header))
	for i := range t.N {
		for j := range t.In {
			row[j] = strconv.FormatFloat(t.X[i*t.In+j], 'g', -1, 64)
		}
		for k := range t.Targets {
			row[t.In+k] = ""
			if v := t.Y[k][i]; !math.IsNaN(v) { // empty: a missing label
				row[t.In+k] = strconv.FormatFloat(v, 'g', -1, 64)
			}
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("tasks: WriteCSV: %v", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("tasks: WriteCSV: %v", err)
	}
	return nil
}

func targetNames(ts []Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

// WritePredictions writes a model's predictions for n rows as CSV, as
// learners.MTL.Predict returns them (preds[t] holds n rows of
// targets[t].Outputs() values): a header, then one line per row with, for
// each target, a regression's value (column NAME), a binary target's
// probability of class 1 (NAME), and a multi-class target's probability
// of each class (NAME:0, NAME:1, ...). It returns the number of columns.
func WritePredictions(w io.Writer, targets []Target, preds [][]float64) (int, error) {
	if len(preds) != len(targets) || len(targets) == 0 {
		return 0, fmt.Errorf("tasks: WritePredictions: %d prediction columns for %d targets", len(preds), len(targets))
	}
	var header []string
	for _, tg := range targets {
		if tg.Kind != Multiclass {
			header = append(header, tg.Name)
			continue
		}
		for k := range tg.Classes {
			header = append(header, tg.Name+":"+strconv.Itoa(k))
		}
	}
	n := len(preds[0]) / max(targets[0].Outputs(), 1)
	for t, tg := range targets {
		if len(preds[t]) != n*tg.Outputs() {
			return 0, fmt.Errorf("tasks: WritePredictions: %d values for target %s, want %d rows of %d", len(preds[t]), tg.Name, n, tg.Outputs())
		}
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return 0, fmt.Errorf("tasks: WritePredictions: %v", err)
	}
	line := make([]string, 0, len(header))
	for i := range n {
		line = line[:0]
		for t, tg := range targets {
			k := tg.Outputs()
			for _, v := range preds[t][i*k : (i+1)*k] {
				line = append(line, strconv.FormatFloat(v, 'g', -1, 64))
			}
		}
		if err := cw.Write(line); err != nil {
			return 0, fmt.Errorf("tasks: WritePredictions: %v", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return 0, fmt.Errorf("tasks: WritePredictions: %v", err)
	}
	return len(header), nil
}

// blank reports whether every field is empty or spaces.
func blank(fields []string) bool {
	for _, f := range fields {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}
