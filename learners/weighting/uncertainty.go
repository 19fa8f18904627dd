package weighting

import (
	"fmt"
	"math"

	"github.com/medusa-ml/medusa/graph"
	"gorgonia.org/tensor"
)

// Uncertainty is the homoscedastic uncertainty weighting of Kendall, Gal
// and Cipolla (2018), "Multi-Task Learning Using Uncertainty to Weigh
// Losses for Scene Geometry and Semantics", in LibMTL's form: with one
// learned log variance s_t per task, the combined loss is
//
//	Σ_t L_t/(2·exp(s_t)) + s_t/2,
//
// so task t's weight is 1/(2·exp(s_t)) and the gradient of the combined
// loss with respect to s_t is −L_t/(2·exp(s_t)) + 1/2, which Combine
// returns as ParamGrads. The paper's classification variant (without the
// factor 1/2 on the loss) is not distinguished, as in LibMTL.
//
// Its parameters are one float64 tensor of shape [T] named
// "weighting.log_var", initialised to 0 (LibMTL starts at −0.5); the
// trainer updates it. Use NewUncertainty; the zero value has no
// parameters and its Combine returns an error.
type Uncertainty struct {
	params *graph.Params
	tasks  int
}

var (
	_ Learned  = (*Uncertainty)(nil)
	_ Weighter = (*Uncertainty)(nil)
)

// NewUncertainty returns uncertainty weighting for the given number of
// tasks, with every s_t = 0 (weights 1/2). It returns an error if tasks < 1.
func NewUncertainty(tasks int) (*Uncertainty, error) {
	p, err := vectorParam("uw", "weighting.log_var", tasks)
	if err != nil {
		return nil, err
	}
	return &Uncertainty{params: p, tasks: tasks}, nil
}

// vectorParam returns a parameter set holding one zero float64 vector of
// length tasks.
func vectorParam(method, name string, tasks int) (*graph.Params, error) {
	if tasks < 1 {
		return nil, fmt.Errorf("weighting: %s: %d tasks, want at least 1", method, tasks)
	}
	v, err := graph.NewTensor(tensor.Float64, []int{tasks}, nil)
	if err != nil {
		return nil, fmt.Errorf("weighting: %s: %v", method, err)
	}
	p := new(graph.Params)
	if err := p.Add(name, v); err != nil {
		return nil, fmt.Errorf("weighting: %s: %v", method, err)
	}
	return p, nil
}

// readVector returns the values of the single vector in p, checking that it
// still holds tasks finite values.
func readVector(method string, p *graph.Params, tasks int) ([]float64, error) {
	if p == nil || p.Len() != 1 {
		return nil, fmt.Errorf("weighting: %s: no parameters; use the constructor", method)
	}
	v := graph.Float64s(p.At(0).Value)
	if len(v) != tasks {
		return nil, fmt.Errorf("weighting: %s: parameter %s has %d values, want %d", method, p.At(0).Name, len(v), tasks)
	}
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("weighting: %s: parameter %s[%d] is %v", method, p.At(0).Name, i, x)
		}
	}
	return v, nil
}

// Name returns "uw".
func (*Uncertainty) Name() string { return "uw" }

// Needs returns LossesOnly.
func (*Uncertainty) Needs() Needs { return LossesOnly }

// Params returns the log variances s, one tensor of shape [T].
func (m *Uncertainty) Params() *graph.Params { return m.params }

// Weights returns the weights 1/(2·exp(s_t)) Combine will use with the
// current parameters. If the parameters are missing, resized or not
// finite, or tasks is not T, it returns NaN weights and Combine the error.
func (m *Uncertainty) Weights(step, tasks int) []float64 {
	s, err := readVector(m.Name(), m.params, m.tasks)
	if err != nil || tasks != m.tasks {
		return nanWeights(tasks)
	}
	w := make([]float64, tasks)
	for i := range w {
		w[i] = 1 / (2 * math.Exp(s[i]))
	}
	return w
}

// Combine returns the weights 1/(2·exp(s_t)) and, as ParamGrads, the
// gradient −L_t/(2·exp(s_t)) + 1/2 of the combined loss with respect to
// s. It returns an *InputError if the number of losses is not T or one is
// not finite, and an error if the parameters are missing, resized or not
// finite.
func (m *Uncertainty) Combine(in Input) (Output, error) {
	t, _, err := check(m.Name(), in, m.tasks, false)
	if err != nil {
		return Output{}, err
	}
	s, err := readVector(m.Name(), m.params, m.tasks)
	if err != nil {
		return Output{}, err
	}
	w := make([]float64, t)
	ds := make([]float64, t)
	for i, l := range in.Losses {
		w[i] = 1 / (2 * math.Exp(s[i]))
		ds[i] = -l*w[i] + 0.5
	}
	return Output{Weights: w, ParamGrads: [][]float64{ds}}, nil
}
