package main

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dustin/go-humanize"
)

// TestMemoryWithinEstimate runs the real program on a few large settings
// and checks that the live heap after every garbage collection stays
// within the estimate the run printed, that the memory the Go runtime
// obtained from the system does too (plus a tenth), and that the estimate
// is not idle talk: a --max-memory below it refuses the run with the
// figures, or, for a ConvNet, whose evaluation adapts fewer test tasks at
// once when memory is short, makes a run that keeps within it.
func TestMemoryWithinEstimate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs several trainings")
	}
	for _, args := range [][]string{
		{"train", "--meta-batch", "400", "--shots", "50", "--hidden", "128,128", "--iters", "3", "--eval-tasks", "130", "--eval-steps", "5"},
		{"train", "--learner", "fomaml", "--task", "classification", "--meta-batch", "100", "--shots", "20",
			"--hidden", "256", "--inner-steps", "3", "--iters", "2", "--eval-tasks", "50", "--eval-steps", "3"},
		{"train", "--learner", "reptile", "--task", "classification", "--meta-batch", "200", "--shots", "20", "--hidden", "256",
			"--iters", "2", "--eval-tasks", "50", "--eval-steps", "5"},
		{"train", "--task", "mnist", "--filters", "16", "--meta-batch", "4", "--iters", "2", "--eval-tasks", "5", "--eval-steps", "2"},
		{"mtl", "--weighting", "pcgrad", "--train-rows", "100000", "--test-rows", "20000",
			"--batch", "4096", "--hidden", "512,512", "--steps", "3"},
	} {
		name := strings.Join(args, " ")
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "MEDUSA_TEST_MAIN=1", "MEDUSA_TEST_MEMSTATS=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		estimate := figure(t, string(out), `memory: about ([0-9.]+ [KMGT]?i?B)`)
		m := regexp.MustCompile(`runtime: obtained (\d+) bytes, peak live heap (\d+) bytes`).FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("%s: no memory statistics in the output:\n%s", name, out)
		}
		obtained, _ := strconv.ParseInt(m[1], 10, 64)
		live, _ := strconv.ParseInt(m[2], 10, 64)
		t.Logf("%s: estimate %s, peak live heap %s, obtained %s", name, humanize.IBytes(uint64(estimate)),
			humanize.IBytes(uint64(live)), humanize.IBytes(uint64(obtained)))
		// The runtime is held to the estimate, so an under-estimate shows
		// first in the live heap (the collector then runs without pause).
		if live > estimate {
			t.Errorf("%s: the live heap reached %s; the estimate was %s", name, humanize.IBytes(uint64(live)), humanize.IBytes(uint64(estimate)))
		}
		if obtained > estimate+estimate/10 {
			t.Errorf("%s: the run obtained %s from the system; its estimate was %s", name,
				humanize.IBytes(uint64(obtained)), humanize.IBytes(uint64(estimate)))
		}
		low := humanize.IBytes(uint64(estimate * 9 / 10))
		_, stderr, err := runCLI(append(args, "--max-memory", strings.ReplaceAll(low, " ", ""))...)
		if slices.Contains(args, "mnist") {
			if err != nil {
				t.Errorf("%s --max-memory %s: %v; want fewer test tasks adapted at once", name, low, err)
			} else if e := figure(t, stderr, `memory: about ([0-9.]+ [KMGT]?i?B)`); e > estimate*9/10 {
				t.Errorf("%s --max-memory %s: estimate %s", name, low, humanize.IBytes(uint64(e)))
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "more than the memory limit") {
			t.Errorf("%s --max-memory %s: err = %v; want the run refused", name, low, err)
		}
	}
}

// figure parses the size that pattern's group matches in s.
func figure(t *testing.T, s, pattern string) int64 {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %q in the output:\n%s", pattern, s)
	}
	n, err := humanize.ParseBytes(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return int64(n)
}
