package weighting

import (
	"encoding/json"
	"fmt"
	"math"
)

var (
	_ StateMarshaler = (*DWA)(nil)
	_ StateMarshaler = (*GradNorm)(nil)
	_ StateMarshaler = (*Nash)(nil)
)

type dwaState struct {
	Tasks, LastStep, Epoch, N int
	Sum, Prev, Prev2          []float64
}

// MarshalState encodes the losses DWA has accumulated.
func (m *DWA) MarshalState() ([]byte, error) {
	return json.Marshal(dwaState{m.tasks, m.lastStep, m.epoch, m.n, m.sum, m.prev, m.prev2})
}

// UnmarshalState restores what MarshalState encoded.
func (m *DWA) UnmarshalState(b []byte) error {
	var s dwaState
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("weighting: dwa state: %v", err)
	}
	if s.Tasks < 0 || s.N < 0 || s.LastStep < 0 || s.Epoch < 0 || !finiteLen(s.Sum, s.Tasks) || !finiteLen(s.Prev, s.Tasks) || !finiteLen(s.Prev2, s.Tasks) ||
		s.Tasks > 0 && s.Sum == nil || s.Prev2 != nil && s.Prev == nil || !positive(s.Prev) || !positive(s.Prev2) {
		return fmt.Errorf("weighting: dwa state is inconsistent")
	}
	m.tasks, m.lastStep, m.epoch, m.n, m.sum, m.prev, m.prev2 = s.Tasks, s.LastStep, s.Epoch, s.N, s.Sum, s.Prev, s.Prev2
	return nil
}

// MarshalState encodes GradNorm's initial losses L⁰.
func (m *GradNorm) MarshalState() ([]byte, error) { return json.Marshal(m.first) }

// UnmarshalState restores what MarshalState encoded.
func (m *GradNorm) UnmarshalState(b []byte) error {
	var first []float64
	if err := json.Unmarshal(b, &first); err != nil {
		return fmt.Errorf("weighting: gradnorm state: %v", err)
	}
	if !finiteLen(first, m.tasks) || !positive(first) {
		return fmt.Errorf("weighting: gradnorm state has %d initial losses for %d tasks", len(first), m.tasks)
	}
	m.first = first
	return nil
}

// MarshalState encodes Nash-MTL's warm start.
func (m *Nash) MarshalState() ([]byte, error) { return json.Marshal(m.prev) }

// UnmarshalState restores what MarshalState encoded.
func (m *Nash) UnmarshalState(b []byte) error {
	var prev []float64
	if err := json.Unmarshal(b, &prev); err != nil {
		return fmt.Errorf("weighting: nash state: %v", err)
	}
	if !finiteLen(prev, -1) || !positive(prev) || prev != nil && len(prev) == 0 {
		return fmt.Errorf("weighting: nash state is not a list of finite positive weights")
	}
	m.prev = prev
	return nil
}

// finiteLen reports whether x is nil or has n values (any number if n < 0),
// all finite.
func finiteLen(x []float64, n int) bool {
	if x == nil {
		return true
	}
	if n >= 0 && len(x) != n {
		return false
	}
	for _, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// positive reports whether every value of x is above 0.
func positive(x []float64) bool {
	for _, v := range x {
		if !(v > 0) {
			return false
		}
	}
	return true
}
