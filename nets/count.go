package nets

// The ParamCount methods say how many numbers a network's parameters
// hold without allocating them, so that a caller can check that they fit
// in memory before Init.

// ParamCount returns the number of scalar parameters Init makes.
func (m MLP) ParamCount() int64 {
	w := m.widths()
	var n int64
	for i := 0; i+1 < len(w); i++ {
		n += int64(w[i+1]) * (int64(w[i]) + 1)
	}
	return n
}

// ParamCount returns the number of scalar parameters Init makes.
func (m ConvNet) ParamCount() int64 {
	_, shapes := m.shapes()
	var n int64
	for _, s := range shapes {
		size := int64(1)
		for _, d := range s {
			size *= int64(d)
		}
		n += size
	}
	return n
}

// ParamCount returns the number of scalar parameters Init makes.
func (m MultiTask) ParamCount() int64 {
	var n int64
	if tm, ok := m.Trunk.mlp(); ok {
		n += tm.ParamCount()
	}
	for _, h := range m.Heads {
		n += headMLP(h, m.Trunk.Width(), m.Trunk.Activation).ParamCount()
	}
	return n
}

// ParamCount returns the number of scalar parameters Init makes.
func (m MMoE) ParamCount() int64 {
	tm, _ := m.expert().mlp()
	n := int64(m.Experts) * tm.ParamCount()
	for _, h := range m.Heads {
		n += int64(m.Experts)*(int64(m.In)+1) + headMLP(h, m.expert().Width(), m.Activation).ParamCount()
	}
	return n
}

// ParamCount returns the number of scalar parameters Init makes.
func (m ResNet12) ParamCount() int64 {
	var n int64
	for _, p := range m.params() {
		size := int64(1)
		for _, d := range p.shape {
			size *= int64(d)
		}
		n += size
	}
	return n
}

// ParamCount returns the number of scalar parameters Init makes.
func (m PLE) ParamCount() int64 {
	T, L := int64(len(m.Heads)), m.levels()
	var n int64
	for j := range L {
		in := int64(m.levelIn(j))
		shared, task := int64(m.SharedExperts), int64(m.TaskExperts)
		n += (shared + T*task) * m.expertMLP(j).ParamCount()
		n += T * (task + shared) * (in + 1) // task gates
		if j+1 < L {
			n += (T*task + shared) * (in + 1) // shared gate
		}
	}
	for _, h := range m.Heads {
		n += headMLP(h, m.width(), m.Activation).ParamCount()
	}
	return n
}

// ParamCount returns the number of scalar parameters Init makes.
func (m CrossStitch) ParamCount() int64 {
	T := int64(len(m.Heads))
	n := T*m.column().ParamCount() + int64(len(m.Hidden))*T*T
	for _, h := range m.Heads {
		n += headMLP(h, m.width(), m.Activation).ParamCount()
	}
	return n
}

// ParamCount returns the number of scalar parameters Init makes.
func (m DSelectK) ParamCount() int64 {
	tm, _ := m.expert().mlp()
	n := int64(m.Experts) * tm.ParamCount()
	gate := int64(m.K) * int64(m.bits()+1) // z_logits and w_logits
	if m.PerExample {
		gate *= int64(m.In) + 1
	}
	for _, h := range m.Heads {
		n += gate + headMLP(h, m.width(), m.Activation).ParamCount()
	}
	return n
}
