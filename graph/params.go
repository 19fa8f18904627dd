package graph

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"gorgonia.org/tensor"
)

// Param is one named parameter and its value.
type Param struct {
	Name  string
	Value *tensor.Dense
}

// Params is an ordered set of named parameters. Order is the order of Add
// and is what every learner iterates in, so results never depend on map
// order. The zero value is an empty set ready to use. Params is not safe for
// concurrent mutation.
type Params struct {
	list  []Param
	index map[string]int
}

// Add appends a parameter. Names must be unique and non-empty, and the value
// must be a float32 or float64 tensor.
func (p *Params) Add(name string, v *tensor.Dense) error {
	if name == "" {
		return fmt.Errorf("graph: Params.Add: empty name")
	}
	if v == nil {
		return fmt.Errorf("graph: Params.Add %q: nil value", name)
	}
	if !isFloat(v.Dtype()) {
		return fmt.Errorf("graph: Params.Add %q: dtype %v, want float32 or float64", name, v.Dtype())
	}
	if v.Dims() == 0 {
		return &ShapeError{Op: "Params.Add " + name, Want: "at least one axis (store a scalar as shape [1])", Got: "a scalar"}
	}
	if _, dup := p.index[name]; dup {
		return fmt.Errorf("graph: Params.Add: duplicate name %q", name)
	}
	if p.index == nil {
		p.index = make(map[string]int)
	}
	p.index[name] = len(p.list)
	p.list = append(p.list, Param{Name: name, Value: v})
	return nil
}

// Len returns the number of parameters.
func (p *Params) Len() int { return len(p.list) }

// At returns the i-th parameter.
func (p *Params) At(i int) Param { return p.list[i] }

// Get returns the value of the parameter called name.
func (p *Params) Get(name string) (*tensor.Dense, bool) {
	i, ok := p.index[name]
	if !ok {
		return nil, false
	}
	return p.list[i].Value, true
}

// Names returns the parameter names in order.
func (p *Params) Names() []string {
	out := make([]string, len(p.list))
	for i, q := range p.list {
		out[i] = q.Name
	}
	return out
}

// Size returns the total number of scalars.
func (p *Params) Size() int {
	n := 0
	for _, q := range p.list {
		n += q.Value.Shape().TotalSize()
	}
	return n
}

// Clone returns a deep copy.
func (p *Params) Clone() *Params {
	c := &Params{list: make([]Param, len(p.list)), index: make(map[string]int, len(p.list))}
	for i, q := range p.list {
		c.list[i] = Param{Name: q.Name, Value: q.Value.Clone().(*tensor.Dense)}
		c.index[q.Name] = i
	}
	return c
}

// CopyFrom overwrites p's values with src's. Both must hold the same names,
// shapes and dtypes in the same order.
func (p *Params) CopyFrom(src *Params) error {
	if src.Len() != p.Len() {
		return fmt.Errorf("graph: Params.CopyFrom: %d parameters, want %d", src.Len(), p.Len())
	}
	for i, q := range p.list {
		s := src.list[i]
		if s.Name != q.Name || !s.Value.Shape().Eq(q.Value.Shape()) || s.Value.Dtype() != q.Value.Dtype() {
			return &ShapeError{Op: "Params.CopyFrom " + q.Name, Want: fmt.Sprintf("%s %v %v", q.Name, q.Value.Shape(), q.Value.Dtype()),
				Got: fmt.Sprintf("%s %v %v", s.Name, s.Value.Shape(), s.Value.Dtype())}
		}
		if err := tensor.Copy(q.Value, s.Value); err != nil {
			return fmt.Errorf("graph: Params.CopyFrom %s: %v", q.Name, err)
		}
	}
	return nil
}

// Flatten returns every parameter's elements, in order, as float64.
func (p *Params) Flatten() []float64 {
	out := make([]float64, 0, p.Size())
	for _, q := range p.list {
		out = append(out, Float64s(q.Value)...)
	}
	return out
}

// SetFlat overwrites every parameter from a flat float64 slice in Flatten's
// order, converting to each parameter's dtype.
func (p *Params) SetFlat(x []float64) error {
	if len(x) != p.Size() {
		return &ShapeError{Op: "Params.SetFlat", Want: fmt.Sprintf("%d values", p.Size()), Got: fmt.Sprintf("%d", len(x))}
	}
	for _, q := range p.list {
		n := q.Value.Shape().TotalSize()
		setFloat64s(q.Value, x[:n])
		x = x[n:]
	}
	return nil
}

// AllFinite reports whether every element of x is finite (no NaN, no
// infinity). It computes Σ x·0, which is NaN if some element is not finite
// and ±0 otherwise, in four interleaved sums so that the additions
// overlap.
func AllFinite(x []float64) bool {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += x[i] * 0
		s1 += x[i+1] * 0
		s2 += x[i+2] * 0
		s3 += x[i+3] * 0
	}
	for ; i < len(x); i++ {
		s0 += x[i] * 0
	}
	return s0+s1+s2+s3 == 0
}

// Float64s returns the elements of a float32 or float64 tensor or scalar
// value as a new float64 slice. Other values give nil.
func Float64s(v any) []float64 {
	out, ok := AppendFloat64s(nil, v)
	if !ok {
		return nil
	}
	if out == nil {
		out = []float64{}
	}
	return out
}

// AppendFloat64s appends the elements of a float32 or float64 tensor or
// scalar value to dst, converted to float64, and reports whether v was
// such a value (dst unchanged if not).
func AppendFloat64s(dst []float64, v any) ([]float64, bool) {
	var data any
	switch x := v.(type) {
	case *tensor.Dense:
		switch {
		case x.IsView() || !x.IsNativelyAccessible() || x.IsScalar():
		case x.Dtype() == tensor.Float32:
			return appendConverted(dst, x.Float32s()), true
		case x.Dtype() == tensor.Float64:
			return append(dst, x.Float64s()...), true
		}
		d, _, err := dense(x)
		if err != nil {
			return dst, false
		}
		data = d
	case []float64, []float32:
		data = x
	default:
		if val, ok := v.(interface{ Data() any }); ok {
			data = val.Data()
		}
	}
	switch d := data.(type) {
	case []float64:
		return append(dst, d...), true
	case []float32:
		return appendConverted(dst, d), true
	case float64:
		return append(dst, d), true
	case float32:
		return append(dst, float64(d)), true
	}
	return dst, false
}

func appendConverted(dst []float64, x []float32) []float64 {
	dst = slices.Grow(dst, len(x))
	for _, e := range x {
		dst = append(dst, float64(e))
	}
	return dst
}

func setFloat64s(t *tensor.Dense, x []float64) {
	switch d := t.Data().(type) {
	case []float64:
		copy(d, x)
	case []float32:
		for i := range d {
			d[i] = float32(x[i])
		}
	}
}

// NewTensor returns a tensor of the given dtype and shape holding data,
// converted from float64.
func NewTensor(dt tensor.Dtype, shape []int, data []float64) (*tensor.Dense, error) {
	n := tensor.Shape(shape).TotalSize()
	if len(shape) == 0 {
		n = 1
	}
	for _, d := range shape {
		if d <= 0 {
			return nil, &ShapeError{Op: "NewTensor", Want: "positive sizes", Got: fmt.Sprint(shape)}
		}
	}
	if data != nil && len(data) != n {
		return nil, &ShapeError{Op: "NewTensor", Want: fmt.Sprintf("%d values for shape %v", n, shape), Got: fmt.Sprint(len(data))}
	}
	var backing any
	switch dt {
	case tensor.Float64:
		b := make([]float64, n)
		copy(b, data)
		backing = b
	case tensor.Float32:
		b := make([]float32, n)
		for i := range data {
			b[i] = float32(data[i])
		}
		backing = b
	default:
		return nil, fmt.Errorf("graph: NewTensor: dtype %v, want float32 or float64", dt)
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(backing)), nil
}

// Init fills dst, the elements of a parameter of the given shape, with
// initial values drawn from rng.
type Init func(rng *rand.Rand, shape []int, dst []float64)

// Fans returns the fan-in and fan-out of a parameter shaped as PyTorch
// stores it: [out, in, k...] for weights, [n] for vectors.
func Fans(shape []int) (in, out int) {
	switch len(shape) {
	case 0:
		return 1, 1
	case 1:
		return shape[0], shape[0]
	}
	receptive := 1
	for _, d := range shape[2:] {
		receptive *= d
	}
	return shape[1] * receptive, shape[0] * receptive
}

// Zeros initialises to 0.
func Zeros() Init { return Constant(0) }

// Constant initialises every element to v.
func Constant(v float64) Init {
	return func(_ *rand.Rand, _ []int, dst []float64) {
		for i := range dst {
			dst[i] = v
		}
	}
}

// Uniform draws from U[lo, hi).
func Uniform(lo, hi float64) Init {
	return func(rng *rand.Rand, _ []int, dst []float64) {
		for i := range dst {
			dst[i] = lo + (hi-lo)*rng.Float64()
		}
	}
}

// Normal draws from N(mean, std²).
func Normal(mean, std float64) Init {
	return func(rng *rand.Rand, _ []int, dst []float64) {
		for i := range dst {
			dst[i] = mean + std*rng.NormFloat64()
		}
	}
}

// TruncatedNormal draws from N(mean, std²) redrawing values more than two
// standard deviations from the mean.
func TruncatedNormal(mean, std float64) Init {
	return func(rng *rand.Rand, _ []int, dst []float64) {
		for i := range dst {
			z := rng.NormFloat64()
			for math.Abs(z) > 2 {
				z = rng.NormFloat64()
			}
			dst[i] = mean + std*z
		}
	}
}

// GlorotUniform draws from U[−a, a] with a = gain·√(6/(fanIn+fanOut))
// (Glorot & Bengio 2010).
func GlorotUniform(gain float64) Init {
	return func(rng *rand.Rand, shape []int, dst []float64) {
		in, out := Fans(shape)
		a := gain * math.Sqrt(6/float64(in+out))
		Uniform(-a, a)(rng, shape, dst)
	}
}

// GlorotNormal draws from N(0, s²) with s = gain·√(2/(fanIn+fanOut)).
func GlorotNormal(gain float64) Init {
	return func(rng *rand.Rand, shape []int, dst []float64) {
		in, out := Fans(shape)
		Normal(0, gain*math.Sqrt(2/float64(in+out)))(rng, shape, dst)
	}
}

// HeUniform draws from U[−a, a] with a = gain·√(3/fanIn); gain √2 suits
// ReLU layers (He et al. 2015).
func HeUniform(gain float64) Init {
	return func(rng *rand.Rand, shape []int, dst []float64) {
		in, _ := Fans(shape)
		a := gain * math.Sqrt(3/float64(in))
		Uniform(-a, a)(rng, shape, dst)
	}
}

// HeNormal draws from N(0, s²) with s = gain/√fanIn.
func HeNormal(gain float64) Init {
	return func(rng *rand.Rand, shape []int, dst []float64) {
		in, _ := Fans(shape)
		Normal(0, gain/math.Sqrt(float64(in)))(rng, shape, dst)
	}
}

// NewParam returns a tensor of the given dtype and shape initialised by
// init with rng.
func NewParam(rng *rand.Rand, dt tensor.Dtype, shape []int, init Init) (*tensor.Dense, error) {
	if rng == nil || init == nil {
		return nil, fmt.Errorf("graph: NewParam: nil rng or init")
	}
	n := 1
	for _, d := range shape {
		if d <= 0 {
			return nil, &ShapeError{Op: "NewParam", Want: "positive sizes", Got: fmt.Sprint(shape)}
		}
		n *= d
	}
	vals := make([]float64, n)
	init(rng, shape, vals)
	return NewTensor(dt, shape, vals)
}
