package tasks

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Sinusoid is the regression task distribution of Finn, Abbeel and Levine
// (2017), "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
// Networks", section 5.1: y = A·sin(x − φ) with amplitude A ~ U[0.1, 5],
// phase φ ~ U[0, π] and inputs x ~ U[−5, 5]. The zero value is that
// distribution; set a range's two ends to change it.
type Sinusoid struct {
	AmpMin, AmpMax     float64 // default 0.1, 5
	PhaseMin, PhaseMax float64 // default 0, π
	XMin, XMax         float64 // default −5, 5
}

// Task is one sinusoid.
type Task struct{ Amplitude, Phase float64 }

// F returns the task's target at x.
func (t Task) F(x float64) float64 { return t.Amplitude * math.Sin(x-t.Phase) }

func (s Sinusoid) withDefaults() Sinusoid {
	if s.AmpMin == 0 && s.AmpMax == 0 {
		s.AmpMin, s.AmpMax = 0.1, 5
	}
	if s.PhaseMin == 0 && s.PhaseMax == 0 {
		s.PhaseMin, s.PhaseMax = 0, math.Pi
	}
	if s.XMin == 0 && s.XMax == 0 {
		s.XMin, s.XMax = -5, 5
	}
	return s
}

// SampleTasks draws n tasks; n ≤ 0 gives none.
func (s Sinusoid) SampleTasks(rng *rand.Rand, n int) []Task {
	s = s.withDefaults()
	out := make([]Task, max(n, 0))
	for i := range out {
		out[i].Amplitude = s.AmpMin + (s.AmpMax-s.AmpMin)*rng.Float64()
		out[i].Phase = s.PhaseMin + (s.PhaseMax-s.PhaseMin)*rng.Float64()
	}
	return out
}

// Sample draws a batch of n tasks with support and query points each.
func (s Sinusoid) Sample(rng *rand.Rand, n, support, query int) (*Batch, []Task, error) {
	if rng == nil {
		return nil, nil, fmt.Errorf("tasks: Sinusoid.Sample: nil rng")
	}
	if n <= 0 || support <= 0 || query <= 0 {
		return nil, nil, fmt.Errorf("tasks: Sinusoid.Sample: tasks, support and query must be positive, got %d, %d, %d", n, support, query)
	}
	s = s.withDefaults()
	if !(s.AmpMin <= s.AmpMax && s.PhaseMin <= s.PhaseMax && s.XMin < s.XMax) {
		return nil, nil, fmt.Errorf("tasks: Sinusoid: empty range in %+v", s)
	}
	ts := s.SampleTasks(rng, n)
	b := &Batch{Tasks: n, Support: support, Query: query, In: 1, Out: 1,
		SupportX: make([]float64, n*support), SupportY: make([]float64, n*support),
		QueryX: make([]float64, n*query), QueryY: make([]float64, n*query)}
	for i, t := range ts {
		for k := 0; k < support; k++ {
			x := s.XMin + (s.XMax-s.XMin)*rng.Float64()
			b.SupportX[i*support+k], b.SupportY[i*support+k] = x, t.F(x)
		}
		for k := 0; k < query; k++ {
			x := s.XMin + (s.XMax-s.XMin)*rng.Float64()
			b.QueryX[i*query+k], b.QueryY[i*query+k] = x, t.F(x)
		}
	}
	return b, ts, nil
}
