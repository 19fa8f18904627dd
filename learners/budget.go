package learners

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners/tasks"
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

// Preparer is a learner that compiles its graphs ahead of use and says
// how much memory they hold: MAML, ANIL, MetaSGD and Reptile.
type Preparer interface {
	PrepareStep(s tasks.Shape) (int64, error)
	PrepareEvaluate(s tasks.Shape, steps int) (int64, error)
}

// PlanStep compiles l's training step for meta-batches of shape s and adds
// its graph, and the batch (twice: as it is drawn), to b.
func (b *Budget) PlanStep(l Preparer, s tasks.Shape) error {
	b.Add("batches", 2*s.Bytes())
	if err := b.Check(); err != nil {
		return err
	}
	n, err := l.PrepareStep(s)
	if err != nil {
		return graphError("a training step", err)
	}
	b.Add("graphs", n)
	return b.Check()
}

// PlanAssess compiles the graphs with which Assess adapts a's test tasks,
// of shape s but for s.Tasks, and adds them, the batches and the results
// to b; a.Batch 0 is Assess's default, 25. With shrink set, it first halves a.Batch until the graph for that
// many tasks takes at most a quarter of b's limit and fits in what b
// leaves; Assess's figures do not depend on the batch, each task being
// adapted alone.
func (b *Budget) PlanAssess(l Preparer, a *Assessment, s tasks.Shape, shrink bool) error {
	if a.Batch == 0 {
		a.Batch = 25 // Assess's default
	}
	if a.Tasks <= 0 || a.Batch < 0 {
		return fmt.Errorf("learners: PlanAssess: %d tasks in batches of %d, want both positive", a.Tasks, a.Batch)
	}
	if limit, room, ok := b.Room(); shrink && ok {
		for ; a.Batch > 1; a.Batch = (a.Batch + 1) / 2 {
			s.Tasks = min(a.Batch, a.Tasks)
			n, err := l.PrepareEvaluate(s, a.Steps)
			if err != nil && !errors.Is(err, graph.ErrMemory) {
				return graphError("the evaluation", err)
			}
			if err == nil && n <= limit/4 && n+3*s.Bytes() <= room {
				break
			}
		}
	}
	s.Tasks = min(a.Batch, a.Tasks)
	// A batch being adapted, the tasks drawn for the next and their
	// concatenation; per test task and step, the loss or accuracy and F1.
	b.Add("batches", 3*s.Bytes())
	b.Add("evaluation", 2*int64(a.Steps+1)*(8*int64(a.Tasks)+64))
	if err := b.Check(); err != nil {
		return err
	}
	sizes := []int{s.Tasks}
	if a.Tasks > a.Batch && a.Tasks%a.Batch != 0 {
		sizes = append(sizes, a.Tasks%a.Batch) // the last, smaller batch has a graph of its own
	}
	for _, size := range sizes {
		s.Tasks = size
		n, err := l.PrepareEvaluate(s, a.Steps)
		if err != nil {
			return graphError("the evaluation", err)
		}
		b.Add("graphs", n)
	}
	return b.Check()
}

// graphError says which graph could not be built, and what to do when it
// would not fit in memory.
func graphError(what string, err error) error {
	if errors.Is(err, graph.ErrMemory) {
		return fmt.Errorf("%s: %w; use smaller settings (batch, examples, steps or network)", what, err)
	}
	return err
}

// PlanMTL compiles m's graphs for training on train in minibatches of
// batch rows (the last of an epoch smaller when batch does not divide
// train.N) and for evaluating on test, and adds them, and the epoch's
// minibatches, to b.
func (b *Budget) PlanMTL(m *MTL, train, test *tasks.Table, batch int) error {
	if train == nil || test == nil || batch <= 0 {
		return fmt.Errorf("learners: PlanMTL: want training and test tables and a positive batch")
	}
	// An epoch's minibatches are copies of the training rows, and the
	// last epoch's are garbage when the next begins.
	b.Add("batches", 2*int64(train.N)*int64(train.In+len(train.Targets))*8)
	sizes := []int{min(batch, train.N)}
	if train.N%batch != 0 && train.N > batch {
		sizes = append(sizes, train.N%batch)
	}
	for _, rows := range sizes {
		n, err := m.PrepareStep(rows, train.In)
		if err != nil {
			return graphError("a training step", err)
		}
		b.Add("graphs", n)
	}
	n, err := m.PrepareEvaluate(test.N, test.In)
	if err != nil {
		return graphError("the evaluation", err)
	}
	b.Add("evaluation", n)
	return b.Check()
}
