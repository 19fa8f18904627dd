package tasks

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestSinusoidSample(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	b, ts, err := Sinusoid{}.Sample(rng, 200, 10, 15)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	for i, task := range ts {
		if task.Amplitude < 0.1 || task.Amplitude > 5 || task.Phase < 0 || task.Phase > math.Pi {
			t.Fatalf("task %d = %+v; want A in [0.1, 5], phase in [0, π]", i, task)
		}
		for k := 0; k < 10; k++ {
			x, y := b.SupportX[i*10+k], b.SupportY[i*10+k]
			if x < -5 || x > 5 || y != task.F(x) {
				t.Fatalf("task %d support point %d = (%v, %v); want x in [-5, 5] and y = %v", i, k, x, y, task.F(x))
			}
		}
		for k := 0; k < 15; k++ {
			if x, y := b.QueryX[i*15+k], b.QueryY[i*15+k]; y != task.F(x) {
				t.Fatalf("task %d query point %d: y = %v; want %v", i, k, y, task.F(x))
			}
		}
	}
	again, _, _ := Sinusoid{}.Sample(rand.New(rand.NewPCG(1, 2)), 200, 10, 15)
	for i := range b.SupportX {
		if b.SupportX[i] != again.SupportX[i] {
			t.Fatalf("same seed, different batch at %d", i)
		}
	}
}

func TestSinusoidBadInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range [][3]int{{0, 10, 10}, {5, 0, 10}, {5, 10, -1}} {
		if _, _, err := (Sinusoid{}).Sample(rng, c[0], c[1], c[2]); err == nil {
			t.Errorf("Sample(%v): no error", c)
		}
	}
	if _, _, err := (Sinusoid{XMin: 3, XMax: 1}).Sample(rng, 1, 1, 1); err == nil {
		t.Errorf("Sample with an empty x range: no error")
	}
}
