package graph

import (
	"fmt"
	"math"
	"os"
	"strings"
	"sync"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Buffer reuse. A CPU plan compiled for given outputs does not keep every
// node's value: once the last op that reads a value has run, the buffer
// it lies in goes to a pool, and a later op whose output has the same type
// and shape writes into it (gorgonia's UsePreallocDoer). The plan's memory
// is then about its peak of simultaneously live values instead of the sum
// of all of them, which for an unrolled MAML graph is several times less.
//
// What keeps this immune to gorgonia's in-place clobbering is the order:
// a buffer is pooled only when no value that lies in it can still be read
// in this Run, and an op's output buffer is never one of its inputs'. A
// value that lies in another's buffer (a view, or an op that returns its
// argument) keeps that buffer alive: each value records the fresh buffers
// it lies in (holds), and each fresh buffer counts the live values in it
// (refs). The requested outputs are never pooled; each keeps its buffer
// from Run to Run, as before.

// reuseOn reports whether plans reuse buffers: unless MEDUSA_PLAN_REUSE
// is "off", which keeps every value (for comparison, or to rule reuse out
// when debugging).
var reuseOn = sync.OnceValue(func() bool { return !strings.EqualFold(os.Getenv("MEDUSA_PLAN_REUSE"), "off") })

// poolKey identifies interchangeable buffers.
type poolKey struct {
	dt    tensor.Dtype
	shape string
}

func keyOf(n *G.Node) poolKey { return poolKey{n.Dtype(), fmt.Sprint(n.Shape())} }

// reuseState is a plan's buffer reuse bookkeeping (nil: none).
type reuseState struct {
	key     []poolKey // node i's kind of buffer
	scalar  []bool    // node i's value is a scalar
	output  []bool    // node i is a requested output
	release [][]int   // release[j]: the nodes whose last reader is op j
	holds   [][]int   // holds[i]: the nodes whose fresh buffers node i's value lies in
	refs    []int     // refs[r]: live values lying in node r's fresh buffer
	fresh   []*tensor.Dense
	pool    map[poolKey][]*tensor.Dense
	live    map[poolKey]int // fresh buffers of non-outputs now in use
	peak    map[poolKey]int // the most of them in use at once, this Run
	poison  bool            // fill pooled buffers with NaN (tests)
}

// planReuse sets up buffer reuse for a CPU plan whose outputs are given.
func (p *Plan) planReuse(outputs G.Nodes) {
	k := len(p.nodes)
	r := &reuseState{output: make([]bool, k), release: make([][]int, k), holds: make([][]int, k), refs: make([]int, k),
		fresh: make([]*tensor.Dense, k), pool: make(map[poolKey][]*tensor.Dense), live: make(map[poolKey]int), peak: make(map[poolKey]int)}
	for _, o := range outputs {
		r.output[p.index[o]] = true
	}
	r.key, r.scalar = make([]poolKey, k), make([]bool, k)
	for i, n := range p.nodes {
		r.key[i], r.scalar[i] = keyOf(n), n.Shape().IsScalar()
	}
	last := make([]int, k)
	for i := range last {
		last[i] = -1
	}
	for j := range p.nodes {
		for _, a := range p.args[j] {
			last[a] = j
		}
	}
	for i, n := range p.nodes {
		if r.output[i] || n.Op() == nil || p.fixed[i] || last[i] < 0 {
			continue
		}
		r.release[last[i]] = append(r.release[last[i]], i)
	}
	p.reuse = r
}

// prealloc returns the buffer op node i should write into, or nil.
func (r *reuseState) prealloc(p *Plan, i int) *tensor.Dense {
	if r.scalar[i] {
		return nil
	}
	if r.output[i] {
		if p.owned[i] {
			t, _ := p.vals[i].(*tensor.Dense)
			return t
		}
		return nil
	}
	key := r.key[i]
	free := r.pool[key]
	if len(free) == 0 {
		return nil
	}
	t := free[len(free)-1]
	r.pool[key] = free[:len(free)-1]
	return t
}

// giveBack returns to the pool a buffer prealloc took for node i that the
// node did not use.
func (r *reuseState) giveBack(i int, t *tensor.Dense) {
	key := r.key[i]
	r.pool[key] = append(r.pool[key], t)
}

// made records op node i's new value v, computed from in (its arguments'
// values).
func (r *reuseState) made(p *Plan, i int, v G.Value) {
	h := r.holds[i][:0]
	if t, ok := v.(*tensor.Dense); ok && t.Size() > 0 {
		// Memory shared with an argument that lies in no fresh buffer of
		// the plan (an input, a constant, an output, or a value in one of
		// those: gorgonia's reshape returns such a value not marked as a
		// view) is not the plan's to pool.
		foreign := false
		for _, a := range p.args[i] {
			if !overlaps(t, p.vals[a]) {
				continue
			}
			if len(r.holds[a]) == 0 {
				foreign = true
			}
			for _, root := range r.holds[a] {
				if !contains(h, root) {
					h = append(h, root)
				}
			}
		}
		if len(h) == 0 && !foreign && !t.IsView() && t.Dims() > 0 && !r.output[i] {
			h = append(h, i)
			r.fresh[i] = t
			key := r.key[i]
			r.live[key]++
			r.peak[key] = max(r.peak[key], r.live[key])
		}
	}
	for _, root := range h {
		r.refs[root]++
	}
	r.holds[i] = h
}

// done releases the values whose last reader, op j, has run: a fresh
// buffer no live value lies in any more goes to the pool.
func (r *reuseState) done(p *Plan, j int) {
	for _, k := range r.release[j] {
		r.drop(p, k)
		p.vals[k] = nil
	}
}

// begin starts a Run: the outputs' values of the last one are replaced in
// this one, and no op reads them before that, so the fresh buffers only
// they kept alive go to the pool.
func (r *reuseState) begin(p *Plan) {
	for i, out := range r.output {
		if !out {
			continue
		}
		r.drop(p, i)
	}
}

// drop ends the life of node k's value.
func (r *reuseState) drop(p *Plan, k int) {
	for _, root := range r.holds[k] {
		if r.refs[root]--; r.refs[root] == 0 && r.fresh[root] != nil {
			t := r.fresh[root]
			r.fresh[root] = nil
			key := r.key[root]
			r.live[key]--
			if r.poison {
				fill(t, math.NaN())
			}
			r.pool[key] = append(r.pool[key], t)
		}
	}
	r.holds[k] = r.holds[k][:0]
}

// finish ends a Run: the pool keeps as many buffers of each kind as were
// in use at once, which the next Run needs, and lets the rest go.
func (r *reuseState) finish() {
	for key, free := range r.pool {
		if keep := r.peak[key]; len(free) > keep {
			clear(free[keep:])
			r.pool[key] = free[:keep]
		}
	}
	clear(r.peak)
	for key, n := range r.live {
		r.peak[key] = n
	}
}

// reset forgets the values of a failed Run: nothing of it may be read,
// and its buffers are left to the garbage collector.
func (r *reuseState) reset(p *Plan) {
	for i := range r.holds {
		r.holds[i] = r.holds[i][:0]
		r.refs[i] = 0
		if r.fresh[i] != nil {
			r.live[r.key[i]]--
			r.fresh[i] = nil
		}
	}
}

// bytes returns what the plan holds at most with reuse: the outputs, the
// constants, and of each kind of buffer as many as are live at once.
func (r *reuseState) bytes(p *Plan) (n, most int64) {
	live := make(map[poolKey]int64)
	peak := make(map[poolKey]int64)
	size := make(map[poolKey]int64)
	for i, node := range p.nodes {
		if node.Op() == nil {
			continue
		}
		b := valueBytes(node)
		most = max(most, b)
		if r.output[i] || p.fixed[i] {
			n = satAdd(n, b)
		} else {
			key := r.key[i]
			size[key] = b
			live[key]++
			peak[key] = max(peak[key], live[key])
		}
		for _, k := range r.release[i] {
			live[r.key[k]]--
		}
	}
	for key, c := range peak {
		n = satAdd(n, satMul(c, size[key]))
	}
	return n, most
}

// overlaps reports whether t's memory and v's (a dense tensor) intersect.
func overlaps(t *tensor.Dense, v G.Value) bool {
	u, ok := v.(*tensor.Dense)
	if !ok || u.Size() == 0 || t.Size() == 0 {
		return false
	}
	lo, a := t.Uintptr(), u.Uintptr()
	return a < lo+uintptr(t.MemSize()) && lo < a+uintptr(u.MemSize())
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// fill sets every element of t to v.
func fill(t *tensor.Dense, v float64) {
	switch d := t.Data().(type) {
	case []float64:
		for i := range d {
			d[i] = v
		}
	case []float32:
		for i := range d {
			d[i] = float32(v)
		}
	}
}
