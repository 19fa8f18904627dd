package weighting_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/medusa-ml/medusa/learners/weighting"
)

// ExamplePCGrad combines two conflicting gradients: each loses its
// component along the other.
func ExamplePCGrad() {
	in := weighting.Input{
		Step:   1,
		Losses: []float64{0.7, 1.3},
		Grads:  [][]float64{{1, 0}, {-1, 1}},
		Rand:   rand.New(rand.NewPCG(1, 2)),
	}
	out, err := weighting.PCGrad{}.Combine(in)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("weights %v, shared gradient %.2f\n", out.Weights, out.Shared)
	// Output:
	// weights [1 1], shared gradient [0.50 1.50]
}

// ExampleCAGrad compares CAGrad with the mean gradient on two conflicting
// gradients: CAGrad leans towards the task the mean serves worst.
func ExampleCAGrad() {
	in := weighting.Input{
		Step:   1,
		Losses: []float64{0.7, 1.3},
		Grads:  [][]float64{{1, 0}, {-1, 3}},
	}
	for _, m := range []weighting.CAGrad{{C: 0}, {C: weighting.DefaultCAGradC}} {
		out, err := m.Combine(in)
		if err != nil {
			fmt.Println(err)
			return
		}
		g1, g2 := in.Grads[0], in.Grads[1]
		d := out.Shared
		fmt.Printf("C=%.1f: d = %.3f, g1·d = %.3f, g2·d = %.3f\n", m.C, d, g1[0]*d[0]+g1[1]*d[1], g2[0]*d[0]+g2[1]*d[1])
	}
	// Output:
	// C=0.0: d = [0.000 1.500], g1·d = 0.000, g2·d = 4.500
	// C=0.5: d = [0.600 1.200], g1·d = 0.600, g2·d = 3.000
}
