package learners

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

// TestMAMLConvNetMetaGradient checks the exact second-order MAML
// meta-gradient of a small ConvNet (convolutions, transductive batch
// normalisation, max-pooling, ReLU, softmax cross-entropy) against central
// differences of the post-adaptation query loss, after one and two inner
// steps. The first-order meta-gradient must differ from it: the
// convolutional graph carries second-order terms.
func TestMAMLConvNetMetaGradient(t *testing.T) {
	cases := []struct {
		net   nets.ConvNet
		steps int
	}{
		{nets.ConvNet{Side: 6, Filters: 2, Blocks: 2, Out: 3}, 1},
		{nets.ConvNet{Side: 8, Channels: 2, Filters: 3, Blocks: 2, Out: 2}, 1}, // 8 → 4 → 2: four pixels reach the head
		{nets.ConvNet{Side: 6, Filters: 2, Blocks: 2, Out: 3}, 2},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%+v/steps=%d", c.net, c.steps), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(21, uint64(c.net.Side)))
			// Two tasks, two support and three query examples per class.
			b := randomBatch(rng, 2, 2*c.net.Out, 3*c.net.Out, c.net.In(), c.net.Out, true)
			newLearner := func(firstOrder bool) *MAML {
				p, err := c.net.Init(rand.New(rand.NewPCG(5, 6)), tensor.Float64)
				if err != nil {
					t.Fatal(err)
				}
				return &MAML{Model: c.net, Params: p, Loss: CrossEntropy, InnerLR: 0.4, InnerSteps: c.steps, FirstOrder: firstOrder}
			}
			m := newLearner(false)
			grads, _, err := m.MetaGradient(b)
			if err != nil {
				t.Fatal(err)
			}
			got := flat(grads)
			want := graph.NumGrad(objective(t, m, b), m.Params.Flatten(), fdStep)
			if e := graph.RelErr(got, want, fdFloor); e > fdTol {
				t.Errorf("meta-gradient rel err %.3g > %g\n got  %.6v\n want %.6v", e, fdTol, got, want)
			}
			fo := newLearner(true)
			fgrads, _, err := fo.MetaGradient(b)
			if err != nil {
				t.Fatal(err)
			}
			if e := graph.RelErr(flat(fgrads), want, fdFloor); e < 1e-3 {
				t.Errorf("first-order meta-gradient equals the exact one (rel diff %.3g): the second-order terms are missing", e)
			}
		})
	}
}
