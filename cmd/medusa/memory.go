package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/medusa-ml/medusa/graph"
)

// memoryHelp is the help text of --max-memory.
const memoryHelp = "refuse the run, before it allocates, if its memory estimate exceeds this (e.g. 4GiB, 500MB; default: the memory available)"

// parseMemory parses --max-memory: "" for none, else a size such as
// 4GiB or 500MB.
func parseMemory(s string) (int64, error) {
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	n, err := humanize.ParseBytes(s)
	if err != nil || n == 0 || n > 1<<62 {
		return 0, fmt.Errorf("want a positive size such as 4GiB or 500MB")
	}
	return int64(n), nil
}

// budget is a run's memory estimate, part by part, made before the parts
// are allocated. The estimate is an upper bound: the run holds the Go
// runtime to it (debug.SetMemoryLimit), so a part that is under-estimated
// shows as a slower run, and the tests check that no run exceeds it.
type budget struct {
	base  int64 // the heap in use when the estimate began: program, data loaded
	parts []budgetPart
	max   int64 // --max-memory; 0: the memory available
}

type budgetPart struct {
	what  string
	bytes int64
}

// newBudget starts an estimate on top of the memory in use now.
func newBudget(max int64) *budget {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return &budget{base: int64(ms.HeapAlloc + ms.StackInuse), max: max}
}

func (b *budget) add(what string, n int64) {
	for i := range b.parts {
		if b.parts[i].what == what {
			b.parts[i].bytes += n
			return
		}
	}
	b.parts = append(b.parts, budgetPart{what, n})
}

// total is the estimate: what is in use, the parts and the margin.
func (b *budget) total() int64 {
	n := b.base + memoryMargin
	for _, p := range b.parts {
		n += p.bytes
	}
	return n
}

// memoryMargin covers what the parts leave out: the runtime's own
// structures, the garbage of the last step not yet collected, buffers of
// printing and logging.
const memoryMargin = 64 << 20

// check returns an error stating the estimate and the limit when the run
// would not fit: in --max-memory if given, else in the memory available.
func (b *budget) check() error {
	need := b.total()
	if b.max > 0 {
		if need > b.max {
			return fmt.Errorf("this run needs about %s of memory (%s), more than --max-memory %s; use smaller settings", humanize.IBytes(uint64(need)), b.describe(), humanize.IBytes(uint64(b.max)))
		}
		return nil
	}
	if avail, ok := graph.AvailableMemory(); ok && need-b.base > avail {
		return fmt.Errorf("this run needs about %s of memory (%s), and %s is available; use smaller settings", humanize.IBytes(uint64(need)), b.describe(), humanize.IBytes(uint64(b.base+avail)))
	}
	return nil
}

// describe lists the parts.
func (b *budget) describe() string {
	s := []string{"in use " + humanize.IBytes(uint64(b.base)), "margin " + humanize.IBytes(memoryMargin)}
	for _, p := range b.parts {
		s = append(s, p.what+" "+humanize.IBytes(uint64(p.bytes)))
	}
	return strings.Join(s, ", ")
}

// enforce checks the estimate, prints it, and holds the Go runtime's heap
// to it for the rest of the run; the returned function lifts that limit.
func (b *budget) enforce(stderr io.Writer) (func(), error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	need := b.total()
	fmt.Fprintf(stderr, "memory: about %s (%s)\n", humanize.IBytes(uint64(need)), b.describe())
	// A lower limit set by the user (GOMEMLIMIT) stays.
	prev := debug.SetMemoryLimit(-1)
	debug.SetMemoryLimit(min(need, prev))
	return func() { debug.SetMemoryLimit(prev) }, nil
}

// modelBytes is the memory of a network of n parameters of size bytes
// each, its optimiser's state and gradients (float64), and a checkpoint
// being written.
func modelBytes(n int64, size int) int64 {
	return n * (3*int64(size) + 4*8)
}
