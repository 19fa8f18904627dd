package learners

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/medusa-ml/medusa/graph"
)

// Budget is a run's memory estimate, part by part, made before the parts
// are allocated: the model, the batches, the compiled graphs (the bytes
// that PrepareStep and PrepareEvaluate return). The estimate is an upper
// bound: Enforce holds the Go runtime to it (debug.SetMemoryLimit), so a
// part that is under-estimated shows as a slower run rather than an
// out-of-memory crash. A Budget is not safe for concurrent use.
type Budget struct {
	// Max is the most memory the run may take; 0 means the memory
	// available (graph.AvailableMemory).
	Max int64

	base  int64 // the heap in use when the estimate began: program, data loaded
	parts []budgetPart
}

type budgetPart struct {
	what  string
	bytes int64
}

// NewBudget starts an estimate on top of the memory in use now, after a
// garbage collection.
func NewBudget(max int64) *Budget {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return &Budget{base: int64(ms.HeapAlloc + ms.StackInuse), Max: max}
}

// Add adds n bytes to the part named what.
func (b *Budget) Add(what string, n int64) {
	for i := range b.parts {
		if b.parts[i].what == what {
			b.parts[i].bytes += n
			return
		}
	}
	b.parts = append(b.parts, budgetPart{what, n})
}

// Total is the estimate: the memory in use at the start, the parts and a
// margin.
func (b *Budget) Total() int64 {
	n := b.base + memoryMargin
	for _, p := range b.parts {
		n += p.bytes
	}
	return n
}

// Room returns the limit the run is held to (Max, or the memory available
// when Max is 0) and how much of it the parts leave; ok is false when Max
// is 0 and the memory available is unknown.
func (b *Budget) Room() (limit, room int64, ok bool) {
	if b.Max > 0 {
		return b.Max, b.Max - b.Total(), true
	}
	avail, ok := graph.AvailableMemory()
	if !ok {
		return 0, 0, false
	}
	return avail, avail - (b.Total() - b.base), true
}

// memoryMargin covers what the parts leave out: the runtime's own
// structures, the garbage of the last step not yet collected, buffers of
// printing and logging.
const memoryMargin = 64 << 20

// Check returns an error stating the estimate and the limit when the run
// would not fit: in Max if set, else in the memory available.
func (b *Budget) Check() error {
	need := b.Total()
	if b.Max > 0 {
		if need > b.Max {
			return fmt.Errorf("learners: this run needs about %s of memory (%s), more than the memory limit %s; use smaller settings", humanize.IBytes(uint64(need)), b, humanize.IBytes(uint64(b.Max)))
		}
		return nil
	}
	if avail, ok := graph.AvailableMemory(); ok && need-b.base > avail {
		return fmt.Errorf("learners: this run needs about %s of memory (%s), and %s is available; use smaller settings", humanize.IBytes(uint64(need)), b, humanize.IBytes(uint64(b.base+avail)))
	}
	return nil
}

// String lists the parts: "in use 12 MiB, margin 64 MiB, model 1 MiB, ...".
func (b *Budget) String() string {
	s := []string{"in use " + humanize.IBytes(uint64(b.base)), "margin " + humanize.IBytes(memoryMargin)}
	for _, p := range b.parts {
		s = append(s, p.what+" "+humanize.IBytes(uint64(p.bytes)))
	}
	return strings.Join(s, ", ")
}

// Enforce checks the estimate and holds the Go runtime's heap to it until
// the returned function is called. A lower limit set by the user
// (GOMEMLIMIT) stays.
func (b *Budget) Enforce() (lift func(), err error) {
	if err := b.Check(); err != nil {
		return nil, err
	}
	prev := debug.SetMemoryLimit(-1)
	debug.SetMemoryLimit(min(b.Total(), prev))
	return func() { debug.SetMemoryLimit(prev) }, nil
}

// ModelBytes is the memory of a network of n parameters of size bytes
// each, its optimiser's state and gradients (float64), and a checkpoint
// being written.
func ModelBytes(n int64, size int) int64 {
	return n * (3*int64(size) + 4*8)
}
