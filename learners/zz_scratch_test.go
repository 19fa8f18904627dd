package learners

import (
	"math/rand/v2"
	"testing"

	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
	"gorgonia.org/tensor"
)

func TestZZScratchMem(t *testing.T) {
	net := nets.ConvNet{Side: 28, Filters: 32, Out: 5}
	p, _ := net.Init(rand.New(rand.NewPCG(1, 2)), tensor.Float32)
	for _, steps := range []int{1, 2, 5, 10} {
		m := &MAML{Model: net, Params: p, Loss: CrossEntropy, InnerLR: 0.4, InnerSteps: steps}
		s := tasks.Shape{Tasks: 4, Support: 5, Query: 25, In: 784, Out: 5}
		b, err := m.PrepareStep(s)
		t.Logf("train steps %d: %d MiB err %v", steps, b>>20, err)
	}
	for _, tk := range []int{2, 25} {
		m := &MAML{Model: net, Params: p, Loss: CrossEntropy, InnerLR: 0.4, InnerSteps: 1}
		s := tasks.Shape{Tasks: tk, Support: 5, Query: 75, In: 784, Out: 5}
		for _, st := range []int{1, 10} {
			b, err := m.PrepareEvaluate(s, st)
			t.Logf("eval tasks %d steps %d: %d MiB err %v", tk, st, b>>20, err)
		}
	}
}
