package weighting

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Parse returns the method a specification names: a name New accepts,
// optionally followed by settings of the method's exported fields, each
// ":key=value", where key is the field's name in lower case with its
// words joined by underscores (MoCo's RawGrads is raw_grads). For example
//
//	dbmtl:beta_sigma=0.5
//	moco:raw_grads=true:beta=0.9
//	famo:min_losses=-21/-21
//	mgda:norm=loss+
//
// Real numbers take Go's syntax and must be finite, integers are
// decimal, booleans true or false, lists of numbers are separated by "/",
// and MGDA's Norm takes its name. EpochSteps, which a
// trainer sets from its data, is not a setting. The method is tried on
// one step of made-up losses and gradients, so that a setting out of its
// range is reported here rather than at the first training step. Parse
// returns an error that names the specification and what is wrong with it.
func Parse(spec string, tasks int) (Method, error) {
	name, rest, colon := strings.Cut(spec, ":")
	m, err := New(name, tasks)
	if err != nil || !colon {
		return m, err
	}
	v, set := settable(m)
	seen := map[string]bool{}
	for _, kv := range strings.Split(rest, ":") {
		key, val, ok := strings.Cut(kv, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("weighting: %q: setting %q, want key=value", spec, kv)
		}
		if seen[key] {
			return nil, fmt.Errorf("weighting: %q: %s is set twice", spec, key)
		}
		seen[key] = true
		f, ok := set[key]
		if !ok {
			return nil, fmt.Errorf("weighting: %q: %s has no setting %q; its settings are %s", spec, name, key, listOr(Settings(name)))
		}
		if err := setField(v.FieldByIndex(f), val); err != nil {
			return nil, fmt.Errorf("weighting: %q: %s=%s: %v", spec, key, val, err)
		}
	}
	if reflect.TypeOf(m).Kind() != reflect.Pointer {
		m = v.Interface().(Method) // the value types New returns: the settings are in the copy
	}
	if err := try(spec, v, name, tasks); err != nil {
		return nil, err
	}
	return m, nil
}

// newKnown returns New(name, tasks) for a name and task count New has
// already accepted.
func newKnown(name string, tasks int) Method {
	m, err := New(name, tasks)
	if err != nil {
		panic(err)
	}
	return m
}

// Settings returns the setting keys Parse accepts for the method called
// name, sorted by the fields' order, or nil for a method without any or an
// unknown name.
func Settings(name string) []string {
	m, err := New(name, 1)
	if err != nil {
		return nil
	}
	_, set := settable(m)
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return set[a][0] - set[b][0] })
	return keys
}

// settable returns an addressable copy of m's struct (m's own for a
// pointer) and the index of each settable field by its key.
func settable(m Method) (reflect.Value, map[string][]int) {
	v := reflect.ValueOf(m)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	} else {
		p := reflect.New(v.Type())
		p.Elem().Set(v)
		v = p.Elem()
	}
	set := map[string][]int{}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || f.Name == "EpochSteps" || !canSet(f.Type) {
			continue
		}
		set[snake(f.Name)] = f.Index
	}
	return v, set
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func canSet(t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return true
	}
	switch t.Kind() {
	case reflect.Float64, reflect.Int, reflect.Uint64, reflect.Bool:
		return true
	case reflect.Slice:
		return t.Elem().Kind() == reflect.Float64
	}
	return false
}

func setField(f reflect.Value, s string) error {
	if u, ok := f.Addr().Interface().(encoding.TextUnmarshaler); ok {
		if err := u.UnmarshalText([]byte(s)); err != nil {
			return errors.New(strings.TrimPrefix(err.Error(), "weighting: "))
		}
		return nil
	}
	switch f.Kind() {
	case reflect.Float64:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("not a finite number")
		}
		f.SetFloat(x)
	case reflect.Int:
		x, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		f.SetInt(int64(x))
	case reflect.Uint64:
		x, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer of at least 0")
		}
		f.SetUint(x)
	case reflect.Bool:
		x, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		f.SetBool(x)
	case reflect.Slice:
		parts := strings.Split(s, "/")
		xs := make([]float64, len(parts))
		for i, p := range parts {
			x, err := strconv.ParseFloat(p, 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("element %d, %q, is not a finite number", i+1, p)
			}
			xs[i] = x
		}
		f.Set(reflect.ValueOf(xs))
	}
	return nil
}

// snake turns a Go field name into its setting key: BetaSigma is
// beta_sigma, LR lr, MaxIter max_iter.
func snake(name string) string {
	var b strings.Builder
	r := []rune(name)
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 && (unicode.IsLower(r[i-1]) || i+1 < len(r) && unicode.IsLower(r[i+1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}

// try runs a copy of the configured method, whose struct is s, for one
// step of orthogonal gradients and losses of 1 (FAMO's: 1 above its
// bounds), leaving s as it was: the copy is a new method from New with
// s's settings, its own empty state, and EpochSteps 1.
func try(spec string, s reflect.Value, name string, tasks int) error {
	m := newKnown(name, tasks)
	v, set := settable(m)
	for _, f := range set {
		v.FieldByIndex(f).Set(s.FieldByIndex(f))
	}
	if f := v.FieldByName("EpochSteps"); f.IsValid() {
		f.SetInt(1)
	}
	if reflect.TypeOf(m).Kind() != reflect.Pointer {
		m = v.Interface().(Method)
	}
	in := Input{Step: 1, Losses: make([]float64, tasks), Rand: rand.New(rand.NewPCG(1, 2))}
	for t := range tasks {
		in.Losses[t] = 1
		if f, ok := m.(*FAMO); ok && len(f.MinLosses) == tasks {
			in.Losses[t] = f.MinLosses[t] + 1
		}
		if m.Needs() == SharedGrads {
			g := make([]float64, tasks)
			g[t] = 1
			in.Grads = append(in.Grads, g)
		}
	}
	if _, err := m.Combine(in); err != nil {
		return fmt.Errorf("weighting: %q: %s", spec, strings.TrimPrefix(err.Error(), "weighting: "))
	}
	return nil
}

func listOr(keys []string) string {
	if len(keys) == 0 {
		return "none"
	}
	return strings.Join(keys, ", ")
}
