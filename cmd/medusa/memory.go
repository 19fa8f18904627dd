package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/medusa-ml/medusa/learners"
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

// enforce holds the run to mem's estimate, saying on stderr what it is.
func enforce(mem *learners.Budget, stderr io.Writer) (func(), error) {
	lift, err := mem.Enforce()
	if err == nil {
		fmt.Fprintf(stderr, "memory: about %s (%s)\n", humanize.IBytes(uint64(mem.Total())), mem)
	}
	return lift, err
}
