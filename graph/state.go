package graph

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// FormatKey is the metadata key holding the checkpoint format version.
// Files without it were written before versions were recorded and hold
// parameters only; files with a version above FormatVersion are refused.
const FormatKey = "medusa.format"

// FormatVersion is the checkpoint format this build writes and reads.
const FormatVersion = 1

// paramsKey records how many of a checkpoint's tensors, first in
// medusa.order, are the model's parameters; the rest are training state.
const paramsKey = "medusa.params"

// ErrFormat is matched by errors reporting a checkpoint this build cannot
// use: from a newer format, or without the state a resume needs.
var ErrFormat = errors.New("unsupported checkpoint")

// Checkpoint is a model's parameters together with everything needed to
// resume its training exactly: State tensors (optimiser moments, a
// weighting method's parameters, ...) and Meta strings (the run
// configuration, step counters, random generator states, ...). Params are
// stored under their own names, as PyTorch users expect them; State tensor
// names carry a prefix ("optim.", "weighting.") that keeps them apart.
type Checkpoint struct {
	Params *Params
	State  *Params
	Meta   map[string]string
}

// NewCheckpoint returns an empty checkpoint of p.
func NewCheckpoint(p *Params) *Checkpoint {
	return &Checkpoint{Params: p, State: new(Params), Meta: map[string]string{}}
}

// Stateful is implemented by what keeps state across training steps
// (optimisers, trainers, weighting methods): SaveState records it in c
// under names starting with prefix, LoadState restores it from them.
type Stateful interface {
	SaveState(prefix string, c *Checkpoint) error
	LoadState(prefix string, c *Checkpoint) error
}

// SaveCheckpoint writes c to path atomically as a safetensors file: the
// parameters, then the state tensors, with c.Meta, the format version and
// the split between the two in the header's metadata.
func SaveCheckpoint(path string, c *Checkpoint) error {
	if c == nil || c.Params == nil || c.Params.Len() == 0 {
		return fmt.Errorf("graph: SaveCheckpoint %s: no parameters", path)
	}
	all := new(Params)
	for _, p := range []*Params{c.Params, c.State} {
		if p == nil {
			continue
		}
		for i := 0; i < p.Len(); i++ {
			if err := all.Add(p.At(i).Name, p.At(i).Value); err != nil {
				return fmt.Errorf("graph: SaveCheckpoint %s: %v", path, err)
			}
		}
	}
	meta := make(map[string]string, len(c.Meta)+2)
	for k, v := range c.Meta {
		meta[k] = v
	}
	meta[FormatKey] = strconv.Itoa(FormatVersion)
	meta[paramsKey] = strconv.Itoa(c.Params.Len())
	return SaveParams(path, all, meta)
}

// LoadCheckpoint reads a file written by SaveCheckpoint (or SaveParams, or
// any safetensors file of F32/F64 tensors, which then has no State). It
// refuses a format newer than FormatVersion with an error matching
// ErrFormat.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	all, meta, err := LoadParams(path)
	if err != nil {
		return nil, err
	}
	return splitCheckpoint(all, meta, path)
}

// DecodeCheckpoint is LoadCheckpoint on the bytes of a file; path is only
// used in error messages.
func DecodeCheckpoint(buf []byte, path string) (*Checkpoint, error) {
	all, meta, err := DecodeParams(buf, path)
	if err != nil {
		return nil, err
	}
	return splitCheckpoint(all, meta, path)
}

func splitCheckpoint(all *Params, meta map[string]string, path string) (*Checkpoint, error) {
	if v, ok := meta[FormatKey]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("graph: checkpoint %s: format version %q is not a positive number: %w", path, v, ErrFormat)
		}
		if n > FormatVersion {
			return nil, fmt.Errorf("graph: checkpoint %s has format %d; this build reads format %d and older: %w", path, n, FormatVersion, ErrFormat)
		}
	}
	k := all.Len()
	if v, ok := meta[paramsKey]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > all.Len() {
			return nil, fmt.Errorf("graph: checkpoint %s: %s=%q, with %d tensors: %w", path, paramsKey, v, all.Len(), ErrFormat)
		}
		k = n
	}
	c := &Checkpoint{Params: new(Params), State: new(Params), Meta: meta}
	for i := 0; i < all.Len(); i++ {
		dst := c.Params
		if i >= k {
			dst = c.State
		}
		if err := dst.Add(all.At(i).Name, all.At(i).Value); err != nil {
			return nil, fmt.Errorf("graph: checkpoint %s: %v", path, err)
		}
	}
	delete(meta, paramsKey)
	return c, nil
}

// Resumable reports whether c holds training state (format 1 or later),
// and if not, an error saying so that matches ErrFormat.
func (c *Checkpoint) Resumable(path string) error {
	if _, ok := c.Meta[FormatKey]; !ok {
		return fmt.Errorf("graph: %s holds parameters only (written before checkpoints recorded training state); it can be evaluated but not resumed: %w", path, ErrFormat)
	}
	return nil
}

// Float64sState returns the values of state tensor name, or an error
// naming it if it is missing or has n ≥ 0 values other than n.
func (c *Checkpoint) Float64sState(name string, n int) ([]float64, error) {
	v, ok := c.State.Get(name)
	if !ok {
		return nil, fmt.Errorf("graph: checkpoint has no state %q", name)
	}
	x := Float64s(v)
	if n >= 0 && len(x) != n {
		return nil, fmt.Errorf("graph: checkpoint state %q has %d values, want %d", name, len(x), n)
	}
	return x, nil
}

// MetaInt returns the integer metadata value key, or an error naming it.
func (c *Checkpoint) MetaInt(key string) (int, error) {
	v, ok := c.Meta[key]
	if !ok {
		return 0, fmt.Errorf("graph: checkpoint has no %q", key)
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("graph: checkpoint %q = %q is not a whole number", key, v)
	}
	return n, nil
}
