package learners

import (
	"context"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/medusa-ml/medusa/learners/tasks"
	"github.com/medusa-ml/medusa/nets"
)

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestPrepareBoundsStep checks that PrepareStep and PrepareEvaluate
// compile the graphs that Step and Evaluate then run (nothing is compiled
// again), and that their figures bound the memory those calls add beyond
// the batch: the graphs' buffers filled by the first run.
func TestPrepareBoundsStep(t *testing.T) {
	model := nets.MLP{In: 4, Out: 2, Hidden: []int{64, 64}, Activation: nets.Tanh}
	rng := rand.New(rand.NewPCG(3, 4))
	b := randomBatch(rng, 16, 20, 30, 4, 2, true)
	maml := newMAML(t, model, CrossEntropy, 2, false, 1)
	rep := &Reptile{Model: model, Params: maml.Params.Clone(), Loss: CrossEntropy, InnerSteps: 3, Rand: rand.New(rand.NewPCG(1, 1))}
	anil := &ANIL{MAML: *newMAML(t, model, CrossEntropy, 2, false, 2)}
	msgd := &MetaSGD{MAML: *newMAML(t, model, CrossEntropy, 2, false, 3)}
	ck := newMAML(t, model, CrossEntropy, 3, false, 4)
	ck.GradCheckpoint = true
	for _, l := range []interface {
		PrepareStep(tasks.Shape) (int64, error)
		PrepareEvaluate(tasks.Shape, int) (int64, error)
		Step(context.Context, *tasks.Batch) (Stats, error)
		Evaluate(*tasks.Batch, int) ([][]float64, error)
		Close() error
	}{maml, rep, anil, msgd, ck} {
		before := heapInUse()
		step, err := l.PrepareStep(b.Shape())
		if err != nil {
			t.Fatal(err)
		}
		eval, err := l.PrepareEvaluate(b.Shape(), 4)
		if err != nil {
			t.Fatal(err)
		}
		compiled := programCount(l)
		if _, err := l.Step(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Evaluate(b, 4); err != nil {
			t.Fatal(err)
		}
		if n := programCount(l); n != compiled {
			t.Errorf("%T: %d graphs after Step and Evaluate, %d prepared", l, n, compiled)
		}
		used := heapInUse() - before
		t.Logf("%T: prepared %d + %d bytes, used %d", l, step, eval, used)
		if used > step+eval {
			t.Errorf("%T: Step and Evaluate hold %d bytes; PrepareStep and PrepareEvaluate said %d", l, used, step+eval)
		}
		l.Close()
	}
}

func programCount(l any) int {
	switch l := l.(type) {
	case *MAML:
		return len(l.programs) + len(l.ckPrograms)
	case *Reptile:
		return len(l.programs)
	case *ANIL:
		return len(l.programs)
	case *MetaSGD:
		return len(l.programs)
	}
	return -1
}
