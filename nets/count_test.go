package nets

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/medusa-ml/medusa/graph"
	"gorgonia.org/tensor"
)

// TestParamCount checks ParamCount against the parameters Init makes.
func TestParamCount(t *testing.T) {
	heads := []Head{{Name: "a", Out: 1}, {Name: "b", Out: 3, Hidden: []int{5}}}
	for _, m := range []struct {
		name  string
		model interface {
			Init(*rand.Rand, tensor.Dtype) (*graph.Params, error)
			ParamCount() int64
		}
	}{
		{"mlp", MLP{In: 3, Out: 2, Hidden: []int{7, 4}}},
		{"linear", MLP{In: 3, Out: 2}},
		{"convnet", ConvNet{Side: 28, Filters: 8, Blocks: 3, Out: 5}},
		{"resnet12", ResNet12{Side: 20, Channels: 3, Widths: [4]int{2, 3, 4, 5}, Out: 5}},
		{"resnet12 flattened", ResNet12{Side: 40, Widths: [4]int{2, 3, 4, 5}, Flatten: true, Out: 5}},
		{"multitask", MultiTask{Trunk: Trunk{In: 4, Hidden: []int{6}}, Heads: heads}},
		{"mmoe", MMoE{In: 4, Experts: 3, ExpertHidden: []int{6, 2}, Heads: heads}},
		{"cgc", PLE{In: 4, SharedExperts: 2, TaskExperts: 3, ExpertHidden: []int{6, 2}, Heads: heads}},
		{"ple", PLE{In: 4, Levels: 3, SharedExperts: 2, TaskExperts: 1, ExpertHidden: []int{5}, Heads: heads}},
		{"cross-stitch", CrossStitch{In: 4, Hidden: []int{6, 2}, Heads: heads}},
		{"dselect-k", DSelectK{In: 4, Experts: 5, K: 2, ExpertHidden: []int{6, 2}, Heads: heads}},
		{"dselect-k per example", DSelectK{In: 4, Experts: 3, K: 3, ExpertHidden: []int{6}, PerExample: true, Heads: heads}},
	} {
		p, err := m.model.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float32)
		if err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if got := m.model.ParamCount(); got != int64(p.Size()) {
			t.Errorf("%s: ParamCount %d; Init makes %d", m.name, got, p.Size())
		}
	}
	if n := (MLP{In: 65536, Hidden: []int{65536, 65536}, Out: 1}).ParamCount(); n != 2*65536*65537+65537 {
		t.Errorf("ParamCount of a 65536-wide MLP = %d", n)
	}
}

// TestNormParams: the normalisation parameters are exactly those named
// for batch normalisation.
func TestNormParams(t *testing.T) {
	for _, m := range []interface {
		Init(*rand.Rand, tensor.Dtype) (*graph.Params, error)
		NormParams() []int
	}{ConvNet{Side: 8, Filters: 2, Blocks: 2, Out: 3}, ResNet12{Side: 16, Widths: [4]int{2, 2, 2, 2}, Out: 3}} {
		p, err := m.Init(rand.New(rand.NewPCG(1, 1)), tensor.Float64)
		if err != nil {
			t.Fatal(err)
		}
		norm := m.NormParams()
		for i, name := range p.Names() {
			if isBN, in := strings.Contains(name, "bn"), slices.Contains(norm, i); isBN != in {
				t.Errorf("%T: parameter %d %s: in NormParams %v, want %v", m, i, name, in, isBN)
			}
		}
	}
}
