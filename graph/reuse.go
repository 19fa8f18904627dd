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
// it lies in goes to a pool, and a later op whose output fits in it (same
// type, at least as many elements and at most twice as many) writes into
// it, through a tensor header of the op's shape made once per node and
// buffer (gorgonia's UsePreallocDoer, or a native kernel). Of the buffers
// that fit, an op takes the smallest. The plan's memory is then about its
// peak of simultaneously live bytes instead of the sum of all values,
// which for an unrolled MAML graph is several times less, and values of
// different shapes share buffers (a ConvNet's patches, activations and
// their gradients all have shapes of their own).
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

// slack is how many times a value's size a pooled buffer may be and still
// be taken for it: more would let small values hold large buffers that a
// later large value then needs.
const slack = 2

// slab is a buffer of the pool: a tensor as an op first made it, whose
// memory later values of other shapes borrow.
type slab struct {
	t    *tensor.Dense
	n    int  // elements
	used bool // taken or made in this Run
	free bool // in the pool
}

// reuseState is a plan's buffer reuse bookkeeping (nil: none).
type reuseState struct {
	dt      []tensor.Dtype // node i's element type
	shape   []tensor.Shape // node i's shape
	size    []int          // node i's elements
	scalar  []bool         // node i's value is a scalar
	output  []bool         // node i is a requested output
	release [][]int        // release[j]: the nodes whose last reader is op j
	holds   [][]int        // holds[i]: the nodes whose fresh buffers node i's value lies in
	refs    []int          // refs[r]: live values lying in node r's fresh buffer
	fresh   []*slab        // fresh[r]: the buffer node r's value made or took, while it is live
	taken   []*slab        // taken[i]: the buffer prealloc handed op i, until made sees its value
	prev    []*slab        // prev[i]: the buffer op i took or made last
	takes   []bool         // op i writes into a buffer it is given (UsePreallocDoer or a native kernel)
	hdr     []*tensor.Dense
	pool    *bufPool
	poison  bool          // fill pooled buffers with NaN (tests)
	onMade  func(p *Plan) // called after each op's value is recorded (tests)
}

// planReuse sets up buffer reuse for a CPU plan whose outputs are given.
func (p *Plan) planReuse(outputs G.Nodes) {
	k := len(p.nodes)
	r := &reuseState{dt: make([]tensor.Dtype, k), shape: make([]tensor.Shape, k), size: make([]int, k), scalar: make([]bool, k),
		output: make([]bool, k), release: make([][]int, k), holds: make([][]int, k), refs: make([]int, k),
		fresh: make([]*slab, k), taken: make([]*slab, k), prev: make([]*slab, k), takes: make([]bool, k), hdr: make([]*tensor.Dense, k)}
	r.pool = &bufPool{free: make(map[tensor.Dtype][]*slab), users: []*reuseState{r}}
	for _, o := range outputs {
		r.output[p.index[o]] = true
	}
	for i, n := range p.nodes {
		r.dt[i], r.shape[i] = n.Dtype(), n.Shape()
		r.size[i], r.scalar[i] = r.shape[i].TotalSize(), r.shape[i].IsScalar()
		_, pre := preallocDoer(n.Op())
		r.takes[i] = pre || p.native != nil && p.native[i] != nil
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

// fits reports whether a buffer of have elements may take a value of need.
func fits(have, need int) bool { return have >= need && have <= slack*need }

// prealloc returns the buffer op node i should write into, or nil: the
// one it had last Run if that is free, else the smallest free one that
// fits. Taking the same buffer as last time when it can makes a Run's
// assignment the same as the one before (so the headers made for it
// serve again): the first Run takes or makes each buffer at a time it
// was free, and if every op before has taken the buffer it had then,
// what is free now is what was free then.
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
	free := r.pool.free[r.dt[i]]
	best := -1
	if s := r.prev[i]; s != nil && s.free && r.lends(s, i) {
		for j, f := range free {
			if f == s {
				best = j
				break
			}
		}
	}
	if best < 0 {
		for j, s := range free {
			if r.lends(s, i) && (best < 0 || s.n < free[best].n) {
				best = j
			}
		}
	}
	if best < 0 {
		return nil
	}
	t := r.header(i, free[best])
	if t == nil {
		return nil
	}
	r.take(i, best)
	return t
}

// lends reports whether s may take node i's value: s is at least as
// large and at most twice, and for types other than float32 and float64,
// whose buffers are not re-wrapped, of node i's shape.
func (r *reuseState) lends(s *slab, i int) bool {
	if !fits(s.n, r.size[i]) {
		return false
	}
	return isFloat(r.dt[i]) || sameShape(s.t.Shape(), r.shape[i])
}

// take hands op node i the free buffer at index j of its type's pool.
func (r *reuseState) take(i, j int) {
	free := r.pool.free[r.dt[i]]
	s := free[j]
	r.pool.free[r.dt[i]] = append(free[:j], free[j+1:]...)
	s.used, s.free = true, false
	r.taken[i], r.prev[i] = s, s
}

// header returns a tensor of node i's shape over the start of s's memory:
// s's own tensor if its shape is node i's, else the one made for node i
// last time if it is over the same memory, else a new one.
func (r *reuseState) header(i int, s *slab) *tensor.Dense {
	if sameShape(s.t.Shape(), r.shape[i]) {
		r.hdr[i] = nil // it would keep another buffer alive
		return s.t
	}
	if h := r.hdr[i]; h != nil && h.Uintptr() == s.t.Uintptr() && sameShape(h.Shape(), r.shape[i]) {
		return h
	}
	var backing any
	switch d := s.t.Data().(type) {
	case []float64:
		backing = d[:r.size[i]:r.size[i]]
	case []float32:
		backing = d[:r.size[i]:r.size[i]]
	default:
		return nil // other types share buffers of their own shape only
	}
	h := tensor.New(tensor.WithShape(r.shape[i].Clone()...), tensor.WithBacking(backing))
	r.hdr[i] = h
	return h
}

// giveBack returns to the pool the buffer prealloc took for node i when
// the node did not use it.
func (r *reuseState) giveBack(i int) {
	if s := r.taken[i]; s != nil {
		r.taken[i], s.free = nil, true
		r.pool.free[r.dt[i]] = append(r.pool.free[r.dt[i]], s)
	}
}

// made records op node i's new value v, computed from in (its arguments'
// values).
func (r *reuseState) made(p *Plan, i int, v G.Value) {
	took := r.taken[i]
	r.taken[i] = nil
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
		// An op that takes no buffer makes its value anew every Run: the
		// pool would only keep what the next Run allocates again.
		if len(h) == 0 && !foreign && !t.IsView() && t.Dims() > 0 && !r.output[i] && r.takes[i] {
			h = append(h, i)
			if took == nil || !overlaps(t, took.t) {
				took = &slab{t: t, n: t.Size()}
				took.free = true
				r.pool.free[r.dt[i]] = append(r.pool.free[r.dt[i]], took) // for take to hand over
				r.take(i, len(r.pool.free[r.dt[i]])-1)
				r.taken[i] = nil
			}
			r.fresh[i], took = took, nil
		}
	}
	if took != nil { // the op wrote its value elsewhere
		took.free = true
		r.pool.free[r.dt[i]] = append(r.pool.free[r.dt[i]], took)
	}
	for _, root := range h {
		r.refs[root]++
	}
	r.holds[i] = h
	if r.onMade != nil {
		r.onMade(p)
	}
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
			s := r.fresh[root]
			r.fresh[root] = nil
			if r.poison {
				fill(s.t, math.NaN())
			}
			s.free = true
			r.pool.free[r.dt[root]] = append(r.pool.free[r.dt[root]], s)
		}
	}
	r.holds[k] = r.holds[k][:0]
}

// finish ends a Run: a pool of the plan's own keeps the buffers this Run
// took, or made for want of one to take, which the next Run needs, and
// lets the rest go. A shared pool is trimmed by TrimPool.
func (r *reuseState) finish() {
	if !r.pool.shared {
		r.pool.trim()
	}
}

// bufPool is the free buffers of one plan, or of several that share them
// (Plan.SharePool).
type bufPool struct {
	free   map[tensor.Dtype][]*slab
	shared bool
	users  []*reuseState // the plans that take from it
}

// trim lets go of the buffers no Run has taken or made since the last
// trim.
func (b *bufPool) trim() {
	dropped := false
	for dt, free := range b.free {
		kept := free[:0]
		for _, s := range free {
			if s.used {
				s.used = false
				kept = append(kept, s)
			} else {
				s.free, s.t, dropped = false, nil, true
			}
		}
		clear(free[len(kept):])
		b.free[dt] = kept
	}
	if !dropped {
		return
	}
	for _, r := range b.users {
		for i, s := range r.prev {
			if s != nil && s.t == nil {
				r.prev[i] = nil
			}
			// A header over any buffer but the node's last would keep
			// that buffer's memory alive.
			if h := r.hdr[i]; h != nil && (r.prev[i] == nil || h.Uintptr() != r.prev[i].t.Uintptr()) {
				r.hdr[i] = nil
			}
		}
	}
}

// SharePool makes p take its buffers from q's pool, and give them back
// to it, from now on: plans that run one after the other, never at the
// same time, then hold the buffers of the largest instead of each its
// own. The shared pool keeps every buffer until TrimPool. Both must be
// CPU plans compiled for given outputs, and p must not have run.
func (p *Plan) SharePool(q *Plan) error {
	if p.reuse == nil || q.reuse == nil {
		return fmt.Errorf("graph: SharePool: both plans must reuse buffers (CPU plans compiled for given outputs)")
	}
	if p.reuse.pool == q.reuse.pool {
		return nil
	}
	if p.runs > 0 {
		return fmt.Errorf("graph: SharePool: the plan has run")
	}
	if len(p.reuse.pool.users) > 1 {
		return fmt.Errorf("graph: SharePool: the plan already shares its pool with others")
	}
	pool := q.reuse.pool
	pool.shared = true
	pool.users = append(pool.users, p.reuse)
	p.reuse.pool = pool
	return nil
}

// TrimPool lets go of the pooled buffers that no plan sharing p's pool
// has taken since the last TrimPool: call it when the plans have each run
// once on their usual inputs. A pool not shared is trimmed after every
// Run.
func (p *Plan) TrimPool() {
	if p.reuse != nil {
		p.reuse.pool.trim()
	}
}

// reset forgets the values of a failed Run: nothing of it may be read,
// and its buffers are left to the garbage collector.
func (r *reuseState) reset(p *Plan) {
	for i := range r.holds {
		r.holds[i] = r.holds[i][:0]
		r.refs[i] = 0
		r.fresh[i], r.taken[i], r.prev[i], r.hdr[i] = nil, nil, nil, nil
	}
}

// live returns how many values hold fresh buffers (none between Runs).
func (r *reuseState) live() int {
	n := 0
	for _, s := range r.fresh {
		if s != nil {
			n++
		}
	}
	return n
}

// bytes returns what the plan holds at most with reuse: the outputs, the
// constants, the buffers that taking them as Run does (the smallest free
// buffer that fits, or a new one) comes to, with every op's value in a
// buffer of its own until its last reader has run, and the most that the
// values of ops that take no buffer hold at once.
func (r *reuseState) bytes(p *Plan) (n, most int64) {
	var free []simBuf
	n, own, most := r.simulate(p, &free)
	return satAdd(n, own), most
}

// simBuf is a buffer of simulate's pool.
type simBuf struct {
	dt    tensor.Dtype
	elems int
}

// simulate adds up what a Run of p takes with free as its pool at the
// start: the outputs, the constants and the buffers it makes (n), the
// most that values made by ops that take no buffer (allocated afresh
// every Run, and never pooled) hold at once (own), and its largest value
// (most). The buffers are back in free at the end, but those that an
// output made by an op that takes no buffer may lie in (a view, such as
// a reshape), which stay out of the pool until the plan's next Run.
func (r *reuseState) simulate(p *Plan, free *[]simBuf) (n, own, most int64) {
	held := make([]simBuf, len(p.nodes))
	mine := make([]int64, len(p.nodes)) // bytes of values of ops that take no buffer
	pinned := make([]bool, len(p.nodes))
	for i, node := range p.nodes {
		if r.output[i] && node.Op() != nil && !r.takes[i] {
			for _, a := range p.args[i] {
				pinned[a] = true
			}
		}
	}
	var live int64
	for i, node := range p.nodes {
		if node.Op() == nil {
			continue
		}
		b := valueBytes(node)
		most = max(most, b)
		switch {
		case r.output[i] || p.fixed[i]:
			n = satAdd(n, b)
		case r.scalar[i]:
			n = satAdd(n, b) // boxed, never pooled: bounded by the node count
		case !r.takes[i] || !isFloat(r.dt[i]):
			mine[i] = b
			live = satAdd(live, b)
			own = max(own, live)
		default:
			best := -1
			for j, f := range *free {
				if f.dt == r.dt[i] && fits(f.elems, r.size[i]) && (best < 0 || f.elems < (*free)[best].elems) {
					best = j
				}
			}
			if best >= 0 {
				held[i] = (*free)[best]
				*free = append((*free)[:best], (*free)[best+1:]...)
			} else {
				held[i] = simBuf{r.dt[i], r.size[i]}
				n = satAdd(n, b)
			}
		}
		for _, k := range r.release[i] {
			switch {
			case pinned[k]:
			case mine[k] > 0:
				live -= mine[k]
			case held[k].elems > 0:
				*free = append(*free, held[k])
			}
		}
	}
	return n, own, most
}

// SharedBytes is Plan.Bytes for plans that share one pool (SharePool)
// and run in the order given: each plan's outputs, constants and nodes,
// the buffers of the pool, and the most that one plan's own values and
// the largest value of any take.
func SharedBytes(plans ...*Plan) int64 {
	var free []simBuf
	var n, own, most int64
	for _, p := range plans {
		n = satAdd(n, satMul(int64(p.g.AllNodes().Len()), NodeBytes))
		if p.reuse == nil {
			n = satAdd(n, p.Bytes())
			continue
		}
		m, o, big := p.reuse.simulate(p, &free)
		n, own, most = satAdd(n, m), max(own, o), max(most, big)
	}
	return satAdd(satAdd(n, own), most)
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
