package learners

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	"gorgonia.org/tensor"
)

// StepLRPrefix begins the name of every learned per-step rate of MAMLPP:
// the rate of parameter "blocks.0.conv.weight" at inner step 2 (counted
// from 0) is "lslr.2.blocks.0.conv.weight".
const StepLRPrefix = "lslr."

// StepNormPrefix begins the name of every per-step copy of a
// normalisation weight of MAMLPP: the copy of "blocks.0.bn.weight" for the
// passes after 1 inner step is "stepnorm.1.blocks.0.bn.weight".
const StepNormPrefix = "stepnorm."

// Normed is a Model that says which of its parameters are normalisation
// weights and biases, by their positions in its parameters (nets.ConvNet
// and nets.ResNet12 are), for MAMLPP's PerStepNorm.
type Normed interface {
	Model
	NormParams() []int
}

// MAMLPP is MAML with the training changes of MAML++ (Antoniou, Edwards
// and Storkey 2019, "How to train your MAML"), each on its own field:
//
//   - StepRates (LSLR): the inner step of each parameter tensor at each
//     inner step is a learned rate, meta-trained with θ by the same
//     Optimizer through the exact meta-gradient;
//   - MultiStep (MSL): for the first MultiStep iterations the
//     meta-objective is a weighted sum of the query losses after every
//     inner step, the weights annealed towards the last step's loss
//     alone (MAML.multiStepWeights gives them), which it is afterwards;
//   - FirstOrderFor (DA): the first FirstOrderFor iterations take
//     first-order meta-gradients, the later ones second-order;
//   - PerStepNorm (BNWB): the model's normalisation weights and biases
//     (the Model must be Normed) have one copy for each number of inner
//     steps taken, 0 to InnerSteps−1, meta-learned and left as they are
//     by the inner loop: the forward passes after k inner steps use copy
//     min(k, InnerSteps−1), copy 0 being θ's own.
//
// The paper's fifth change, per-step running statistics, is not here:
// medusa's networks normalise with each batch's statistics in training
// and in evaluation alike (transductive batch normalisation, as MAML does)
// and keep no running statistics.
//
// The embedded MAML's fields keep their meaning and defaults; InnerLR is
// the value every learned rate starts at. LRs holds the rates: for each
// inner step s < InnerSteps and each parameter of θ, in θ's order, a
// tensor of shape [1] named StepLRPrefix + s + "." + the parameter's
// name; nil means they are created on first use. An evaluation with more
// inner steps than InnerSteps takes the last step's rates for the steps
// beyond. Norms holds the copies of the normalisation weights for 1 to
// InnerSteps−1 steps, named StepNormPrefix + k + "." + the weight's name;
// nil means they are made on first use from θ's values. GradCheckpoint
// cannot be combined with these options. MAMLPP is not safe for
// concurrent use.
type MAMLPP struct {
	MAML
	StepRates     bool
	MultiStep     int
	FirstOrderFor int
	PerStepNorm   bool
	LRs           *graph.Params
	Norms         *graph.Params
}

var _ graph.Stateful = (*MAMLPP)(nil)

// prepare checks the options, creates the rates if needed and hands them
// to the inner loop.
func (p *MAMLPP) prepare() error {
	if p.Params == nil || p.Params.Len() == 0 {
		return fmt.Errorf("learners: MAMLPP needs a Model and its Params")
	}
	if p.MultiStep < 0 || p.FirstOrderFor < 0 {
		return fmt.Errorf("learners: MAMLPP.MultiStep %d and FirstOrderFor %d must not be negative", p.MultiStep, p.FirstOrderFor)
	}
	rule := innerRule{multiStep: p.MultiStep, firstOrderFor: p.FirstOrderFor}
	if p.StepRates {
		if p.LRs == nil {
			lrs, err := stepRates(p.Params, p.innerSteps(), p.innerLR())
			if err != nil {
				return err
			}
			p.LRs = lrs
		}
		n, steps := p.Params.Len(), p.innerSteps()
		if p.LRs.Len() != n*steps {
			return fmt.Errorf("learners: MAMLPP.LRs holds %d rates, want %d (%d inner steps × %d parameters)", p.LRs.Len(), n*steps, steps, n)
		}
		for i := 0; i < p.LRs.Len(); i++ {
			q := p.LRs.At(i)
			want := stepRateName(i/n, p.Params.At(i%n).Name)
			if q.Name != want || q.Value.Shape().TotalSize() != 1 || q.Value.Dtype() != p.Params.At(0).Value.Dtype() {
				return fmt.Errorf("learners: MAMLPP.LRs[%d] is %s %v %v, want %s [1] %v", i, q.Name, q.Value.Shape(), q.Value.Dtype(), want, p.Params.At(0).Value.Dtype())
			}
		}
		rule.stepRates = p.LRs
	}
	if p.PerStepNorm {
		if err := p.prepareNorms(&rule); err != nil {
			return err
		}
	}
	p.MAML.inner = rule
	return nil
}

// prepareNorms makes or checks the per-step copies of the normalisation
// weights and hands them to rule.
func (p *MAMLPP) prepareNorms(rule *innerRule) error {
	nm, ok := p.Model.(Normed)
	if !ok {
		return fmt.Errorf("learners: MAMLPP.PerStepNorm: %T does not say which of its parameters normalise (NormParams)", p.Model)
	}
	rule.norm = nm.NormParams()
	var want []string
	var src []*tensor.Dense
	for k := 1; k < p.innerSteps(); k++ {
		for _, i := range rule.norm {
			if i < 0 || i >= p.Params.Len() {
				return fmt.Errorf("learners: MAMLPP.PerStepNorm: normalisation parameter %d of %d", i, p.Params.Len())
			}
			want = append(want, stepNormName(k, p.Params.At(i).Name))
			src = append(src, p.Params.At(i).Value)
		}
	}
	if p.Norms == nil {
		p.Norms = new(graph.Params)
		for j, name := range want {
			if err := p.Norms.Add(name, src[j].Clone().(*tensor.Dense)); err != nil {
				return err
			}
		}
	}
	if got := p.Norms.Names(); !slices.Equal(got, want) {
		return fmt.Errorf("learners: MAMLPP.Norms holds %v, want %v", got, want)
	}
	for j, name := range want {
		if q, _ := p.Norms.Get(name); !q.Shape().Eq(src[j].Shape()) || q.Dtype() != src[j].Dtype() {
			return &graph.ShapeError{Op: "MAMLPP.Norms " + name, Want: fmt.Sprint(src[j].Shape(), src[j].Dtype()), Got: fmt.Sprint(q.Shape(), q.Dtype())}
		}
	}
	rule.stepNorm = p.Norms
	return nil
}

func stepNormName(k int, param string) string {
	return StepNormPrefix + strconv.Itoa(k) + "." + param
}

func stepRateName(step int, param string) string {
	return StepLRPrefix + strconv.Itoa(step) + "." + param
}

// stepRates returns the rates of steps inner steps over p's parameters,
// each lr, in p's dtype.
func stepRates(p *graph.Params, steps int, lr float64) (*graph.Params, error) {
	out := new(graph.Params)
	for s := range steps {
		for i := 0; i < p.Len(); i++ {
			t, err := graph.NewTensor(p.At(i).Value.Dtype(), []int{1}, []float64{lr})
			if err != nil {
				return nil, err
			}
			if err := out.Add(stepRateName(s, p.At(i).Name), t); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// Step runs one outer update of θ and the rates. On error (including a
// non-finite loss or gradient, reported as *NonFiniteError) neither is
// changed.
func (p *MAMLPP) Step(ctx context.Context, b *tasks.Batch) (Stats, error) {
	if err := p.prepare(); err != nil {
		return Stats{}, err
	}
	return p.MAML.Step(ctx, b)
}

// MetaGradient returns the gradient of the meta-objective of the next
// iteration with respect to each parameter of θ, then each rate, in the
// order of Params then LRs.
func (p *MAMLPP) MetaGradient(b *tasks.Batch) ([][]float64, Stats, error) {
	if err := p.prepare(); err != nil {
		return nil, Stats{}, err
	}
	return p.MAML.MetaGradient(b)
}

// Evaluate adapts to each task of b with up to steps inner steps with the
// learned rates and returns the query loss of every task after each:
// losses[s][t].
func (p *MAMLPP) Evaluate(b *tasks.Batch, steps int) ([][]float64, error) {
	if err := p.prepare(); err != nil {
		return nil, err
	}
	return p.MAML.Evaluate(b, steps)
}

// Predict is MAML.Predict with the learned rates.
func (p *MAMLPP) Predict(b *tasks.Batch, steps int) ([][]float64, error) {
	if err := p.prepare(); err != nil {
		return nil, err
	}
	return p.MAML.Predict(b, steps)
}

// EvaluateClassifier is MAML.EvaluateClassifier with the learned rates.
func (p *MAMLPP) EvaluateClassifier(b *tasks.Batch, steps int) (Evaluation, error) {
	if err := p.prepare(); err != nil {
		return Evaluation{}, err
	}
	return p.MAML.EvaluateClassifier(b, steps)
}

// PrepareStep is MAML.PrepareStep for the heaviest graph the run will
// take, second order with the multi-step loss while it lasts, plus the
// graph of the present iterations when that is another (first order, say),
// since both are kept until the present phase ends.
func (p *MAMLPP) PrepareStep(sh tasks.Shape) (int64, error) {
	if err := p.prepare(); err != nil {
		return 0, err
	}
	saved := p.MAML.inner
	p.MAML.inner.firstOrderFor = 0
	if p.steps >= p.MultiStep {
		p.MAML.inner.multiStep = 0
	} else {
		p.MAML.inner.multiStep = p.steps + 1 // the weights of iteration p.steps+1 exist
	}
	n, err := p.MAML.PrepareStep(sh)
	p.MAML.inner = saved
	if err != nil || p.steps >= p.FirstOrderFor || p.FirstOrder {
		return n, err
	}
	now, err := p.MAML.PrepareStep(sh)
	return n + now, err
}

// PrepareEvaluate is MAML.PrepareEvaluate for MAMLPP's graph.
func (p *MAMLPP) PrepareEvaluate(sh tasks.Shape, steps int) (int64, error) {
	if err := p.prepare(); err != nil {
		return 0, err
	}
	return p.MAML.PrepareEvaluate(sh, steps)
}

// SaveState records what MAML.SaveState does and the rates, as state
// tensors named prefix + their own names.
func (p *MAMLPP) SaveState(prefix string, c *graph.Checkpoint) error {
	if err := p.prepare(); err != nil {
		return err
	}
	if err := p.MAML.SaveState(prefix, c); err != nil {
		return err
	}
	for _, st := range p.stateParts() {
		if !st.on {
			continue
		}
		c.Meta[prefix+st.key] = strconv.Itoa(st.ps.Len())
		for i := 0; i < st.ps.Len(); i++ {
			q := st.ps.At(i)
			if err := c.State.Add(prefix+q.Name, q.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

// statePart is a part of MAMLPP's state besides MAML's: whether it is on,
// its metadata key, what it is, and its tensors.
type statePart struct {
	on        bool
	key, what string
	ps        *graph.Params
}

func (p *MAMLPP) stateParts() []statePart {
	return []statePart{{p.StepRates, "step_lrs", "learned step rates", p.LRs}, {p.PerStepNorm, "step_norms", "per-step normalisation", p.Norms}}
}

// LoadState restores what SaveState recorded; p.Params must hold θ and
// p's options be those of the run that saved it.
func (p *MAMLPP) LoadState(prefix string, c *graph.Checkpoint) error {
	if err := p.prepare(); err != nil {
		return err
	}
	var vals [][][]float64
	for _, st := range p.stateParts() {
		if _, saved := c.Meta[prefix+st.key]; saved != st.on {
			return fmt.Errorf("learners: the checkpoint was saved with %s %v, MAMLPP has them %v", st.what, saved, st.on)
		}
		if !st.on {
			vals = append(vals, nil)
			continue
		}
		n, err := c.MetaInt(prefix + st.key)
		if err != nil {
			return err
		}
		if n != st.ps.Len() {
			return fmt.Errorf("learners: checkpoint holds %d tensors of %s, want %d", n, st.what, st.ps.Len())
		}
		v := make([][]float64, n)
		for i := range v {
			q := st.ps.At(i)
			if v[i], err = c.Float64sState(prefix+q.Name, q.Value.Shape().TotalSize()); err != nil {
				return err
			}
			if !graph.AllFinite(v[i]) {
				return fmt.Errorf("learners: checkpoint state %s%s is not finite", prefix, q.Name)
			}
		}
		vals = append(vals, v)
	}
	if err := p.MAML.LoadState(prefix, c); err != nil {
		return err
	}
	for k, st := range p.stateParts() {
		for i, v := range vals[k] {
			if err := setValues(st.ps.At(i).Value, v); err != nil {
				return err
			}
		}
	}
	return nil
}
