package graph

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/dustin/go-humanize"
	"github.com/shirou/gopsutil/v4/mem"
	G "gorgonia.org/gorgonia"
)

// NodeBytes is what a graph node costs beside its value: gorgonia's node,
// its shape, name and edges, and the plan's per-node bookkeeping. About
// 1 KiB was measured on second-order graphs (TestPlanBytes); this is
// rounded up.
const NodeBytes = 2048

// Bytes returns the memory the plan needs at most, in bytes: the outputs'
// and the constants' buffers; the intermediate values' (all of them, or,
// with reuse, the pooled buffers that a Run takes and makes, and the most
// that the values of ops which take no buffer hold at once); the largest
// value again, for an op that makes a new output while its last one is
// still held; and NodeBytes per node of the graph. The input values,
// which the caller binds, are not counted. It is known at compile time,
// before any buffer is allocated. Plans that share a pool: SharedBytes.
func (p *Plan) Bytes() int64 {
	nodes := satAdd(satMul(int64(p.g.AllNodes().Len()), NodeBytes), p.side)
	if p.reuse != nil {
		n, most := p.reuse.bytes(p)
		return satAdd(satAdd(n, most), nodes)
	}
	var host []bool // of a device plan: the nodes that may have host values
	if p.dev != nil {
		host = p.onHost()
	}
	var n, most int64
	for i, node := range p.nodes {
		if host != nil && !host[i] {
			continue
		}
		if node.Op() != nil || p.fixed[i] {
			b := valueBytes(node)
			n = satAdd(n, b)
			most = max(most, b)
		}
	}
	return satAdd(satAdd(n, most), nodes)
}

// onHost reports, for each node of a device plan, whether it may have a
// host value: it runs on the CPU, an op on the CPU reads it, or it is an
// output.
func (p *Plan) onHost() []bool {
	host := make([]bool, len(p.nodes))
	for i, n := range p.nodes {
		if !p.onDev[i] || p.read[i] || p.fixed[i] {
			host[i] = true
		}
		if !p.onDev[i] && n.Op() != nil {
			for _, a := range p.args[i] {
				host[a] = true
			}
		}
	}
	return host
}

// DeviceBytes returns the memory the plan's buffers take on its Device:
// each op's output there (views share their argument's) and a copy of
// each input and constant that an op there reads. It is 0 for a CPU plan.
func (p *Plan) DeviceBytes() int64 {
	if p.dev == nil {
		return 0
	}
	var n int64
	uploaded := make([]bool, len(p.nodes))
	for i, node := range p.nodes {
		if !p.onDev[i] || node.Op() == nil || p.fixed[i] {
			continue
		}
		if !p.view[i] {
			n = satAdd(n, valueBytes(node))
		}
		for _, a := range p.args[i] {
			if (p.nodes[a].Op() == nil || p.fixed[a] || !p.onDev[a]) && !uploaded[a] {
				uploaded[a] = true
				n = satAdd(n, valueBytes(p.nodes[a]))
			}
		}
	}
	return n
}

// valueBytes is the size of n's value (math.MaxInt64 if it is larger).
func valueBytes(n *G.Node) int64 {
	size := int64(n.Dtype().Size())
	for _, d := range n.Shape() {
		size = satMul(size, int64(d))
	}
	return size
}

// satAdd and satMul are + and × of non-negative sizes, saturating at
// math.MaxInt64 instead of wrapping round.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func satMul(a, b int64) int64 {
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}

// MemoryError reports that something needs more memory than there is.
type MemoryError struct {
	What      string // what needs it: "the compiled graph", "this run"
	Need      int64  // bytes needed (an estimate)
	Available int64  // bytes available
}

func (e *MemoryError) Error() string {
	return fmt.Sprintf("%s needs about %s of memory; %s is available", e.What, humanize.IBytes(uint64(max(e.Need, 0))), humanize.IBytes(uint64(max(e.Available, 0))))
}

// ErrMemory is matched by every *MemoryError.
var ErrMemory = errors.New("not enough memory")

// Is reports whether target is ErrMemory.
func (e *MemoryError) Is(target error) bool { return target == ErrMemory }

// AvailableMemory returns the memory this process can still take, in
// bytes: the system's available memory (free memory and reclaimable
// caches) or, when a control group limits the process to less, the room
// left under that limit; plus the heap the Go runtime holds but does not
// use. ok is false where the system does not say.
func AvailableMemory() (n int64, ok bool) {
	vm, err := mem.VirtualMemory()
	if err != nil || vm.Available == 0 {
		return 0, false
	}
	avail := int64(min(vm.Available, 1<<62))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if limit, err := memlimit.FromCgroup(); err == nil && limit > 0 && limit < 1<<62 {
		// The group's usage counts its other processes and page cache
		// too; without it, this process's own memory.
		used, ok := cgroupUsage()
		if !ok {
			used = int64(ms.Sys - ms.HeapReleased)
		}
		avail = min(avail, int64(limit)-used)
	}
	return max(avail, 0) + int64(ms.HeapIdle-ms.HeapReleased), true
}

// cgroupUsage reads the memory a control group (v2, else v1) uses, as
// seen from inside it.
func cgroupUsage() (int64, bool) {
	for _, f := range []string{"/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			return n, true
		}
	}
	return 0, false
}

// CheckMemory returns a *MemoryError naming what if need exceeds the
// available memory (AvailableMemory), and nil when it does not or the
// system does not say.
func CheckMemory(what string, need int64) error {
	if avail, ok := AvailableMemory(); ok && need > avail {
		return &MemoryError{What: what, Need: need, Available: avail}
	}
	return nil
}
