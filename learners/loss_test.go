package learners

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
	G "gorgonia.org/gorgonia"
)

// pseudoHuber is a custom loss: the mean over examples and outputs of
// √(1 + d²), d = pred − target, which is twice differentiable.
var pseudoHuber = LossFunc(func(pred, target *G.Node) (*G.Node, error) {
	d, err := G.Sub(pred, target)
	if err != nil {
		return nil, err
	}
	sq, err := G.Square(d)
	if err != nil {
		return nil, err
	}
	r, err := G.Sqrt(G.Must(G.Add(sq, G.NewConstant(1.0))))
	if err != nil {
		return nil, err
	}
	s := pred.Shape()
	if r, err = graph.SumAxis(r, 2); err != nil {
		return nil, err
	}
	if r, err = graph.SumAxis(r, 1); err != nil {
		return nil, err
	}
	return graph.Scale(r, 1/float64(s[1]*s[2]))
})

// TestCustomLossMetaGradient checks second-order MAML's meta-gradient
// with a custom loss against central differences.
func TestCustomLossMetaGradient(t *testing.T) {
	model := nets.MLP{In: 2, Out: 2, Hidden: []int{5}, Activation: nets.Tanh}
	for _, steps := range []int{1, 2} {
		rng := rand.New(rand.NewPCG(5, uint64(steps)))
		b := randomBatch(rng, 3, 4, 5, model.In, model.Out, false)
		m := newMAML(t, model, pseudoHuber, steps, false, 3)
		grads, _, err := m.MetaGradient(b)
		if err != nil {
			t.Fatal(err)
		}
		got, want := flat(grads), graph.NumGrad(objective(t, m, b), m.Params.Flatten(), fdStep)
		if e := graph.RelErr(got, want, fdFloor); e > fdTol {
			t.Errorf("%d steps: meta-gradient rel err %.3g > %g", steps, e, fdTol)
		}
		// The loss is not MSE's: MSE's meta-gradient differs.
		mse := newMAML(t, model, MSE, steps, false, 3)
		mg, _, err := mse.MetaGradient(b)
		if err != nil {
			t.Fatal(err)
		}
		if graph.RelErr(flat(mg), got, fdFloor) < 1e-3 {
			t.Errorf("%d steps: the custom loss gives MSE's meta-gradient", steps)
		}
	}
}

// badModel is a user model whose Forward fails.
type badModel struct{ nets.MLP }

func (badModel) Forward(x *G.Node, p G.Nodes) (*G.Node, error) {
	return nil, errors.New("layer 2: no such width")
}

// panicModel is a user model whose Forward panics, as gorgonia's ops do
// on some bad shapes.
type panicModel struct{ nets.MLP }

func (panicModel) Forward(x *G.Node, p G.Nodes) (*G.Node, error) { panic("shapes mismatch") }

// TestUserErrors checks that a user's model or loss that fails, panics or
// returns the wrong shape gives an error naming it.
func TestUserErrors(t *testing.T) {
	mlp := nets.MLP{In: 1, Out: 1, Hidden: []int{3}}
	rng := rand.New(rand.NewPCG(1, 1))
	b, _, err := tasks.Sinusoid{}.Sample(rng, 2, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	failing := LossFunc(func(pred, target *G.Node) (*G.Node, error) { return nil, errors.New("bad margin") })
	wrongShape := LossFunc(func(pred, target *G.Node) (*G.Node, error) { return G.Sub(pred, target) })
	panicking := LossFunc(func(pred, target *G.Node) (*G.Node, error) { panic("boom") })
	for _, tt := range []struct {
		name  string
		model Model
		loss  Loss
		want  []string
	}{
		{"forward error", badModel{mlp}, nil, []string{"learners.badModel.Forward of x (2, 3, 1)", "layer 2: no such width"}},
		{"forward panic", panicModel{mlp}, nil, []string{"learners.panicModel.Forward", "panic: shapes mismatch"}},
		{"loss error", mlp, failing, []string{"loss learners.LossFunc", "bad margin"}},
		{"loss panic", mlp, panicking, []string{"loss learners.LossFunc: panic: boom"}},
		{"loss shape", mlp, wrongShape, []string{"loss learners.LossFunc", "one loss a task", "(2, 3, 1)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			params, err := mlp.Init(rand.New(rand.NewPCG(1, 2)), G.Float64)
			if err != nil {
				t.Fatal(err)
			}
			m := &MAML{Model: tt.model, Params: params, Loss: tt.loss}
			defer m.Close()
			_, _, err = m.MetaGradient(b)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q; want it to contain %q", err, w)
				}
			}
		})
	}
}

// scaledMSE returns a loss of k times the mean squared error: closures of
// one function literal, which must count as different losses.
func scaledMSE(k float64) LossFunc {
	return func(pred, target *G.Node) (*G.Node, error) {
		l, err := MSE.PerTask(pred, target)
		if err != nil {
			return nil, err
		}
		return graph.Scale(l, k)
	}
}

// TestLossSwap checks that a learner given another loss rebuilds its
// graphs, for MAML and Reptile.
func TestLossSwap(t *testing.T) {
	mlp := nets.MLP{In: 1, Out: 1, Hidden: []int{4}}
	b, _, err := tasks.Sinusoid{}.Sample(rand.New(rand.NewPCG(1, 1)), 2, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	params, err := mlp.Init(rand.New(rand.NewPCG(1, 2)), G.Float64)
	if err != nil {
		t.Fatal(err)
	}
	m := &MAML{Model: mlp, Params: params}
	defer m.Close()
	r := &Reptile{Model: mlp, Params: params.Clone(), Rand: rand.New(rand.NewPCG(3, 3))}
	defer r.Close()
	var mamlPre, reptilePre []float64
	for _, k := range []float64{1, 100} {
		m.Loss, r.Loss = scaledMSE(k), scaledMSE(k)
		ev, err := m.Evaluate(b, 0)
		if err != nil {
			t.Fatal(err)
		}
		mamlPre = append(mamlPre, ev[0][0])
		rv, err := r.Evaluate(b, 0)
		if err != nil {
			t.Fatal(err)
		}
		reptilePre = append(reptilePre, rv[0][0])
	}
	for name, pre := range map[string][]float64{"MAML": mamlPre, "Reptile": reptilePre} {
		if math.Abs(pre[1]/pre[0]-100) > 1e-9 {
			t.Errorf("%s: losses %v with the loss scaled by 1 then 100; want a ratio of 100", name, pre)
		}
	}
}
