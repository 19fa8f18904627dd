package weighting

// EW is equal weighting: every task's loss has weight 1, so the shared
// gradient is Σ_t g_t, the gradient of the summed loss, as LibMTL computes
// it. With Mean set the weights are 1/T instead: the gradient of the mean
// loss. The zero value sums.
type EW struct {
	Mean bool // weight 1/T: the mean loss instead of the sum
}

var _ Weighter = EW{}

// Name returns "ew".
func (EW) Name() string { return "ew" }

// Needs returns LossesOnly.
func (EW) Needs() Needs { return LossesOnly }

// Combine returns weights 1 (1/T with Mean). It returns an *InputError if
// there are no losses or one is not finite.
func (m EW) Combine(in Input) (Output, error) {
	t, _, err := check(m.Name(), in, 0, false)
	if err != nil {
		return Output{}, err
	}
	return Output{Weights: m.Weights(in.Step, t)}, nil
}

// Weights returns the weights of every step: 1, or 1/tasks with Mean.
func (m EW) Weights(step, tasks int) []float64 {
	v := 1.0
	if m.Mean {
		v = 1 / float64(tasks)
	}
	w := make([]float64, max(tasks, 0))
	for i := range w {
		w[i] = v
	}
	return w
}
