package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/medusa-ml/medusa/graph"
	"github.com/medusa-ml/medusa/learners"
	"github.com/medusa-ml/medusa/learners/monitor"
	"github.com/medusa-ml/medusa/learners/weighting"
)

// TestMain lets a test run the real binary (main) in a child process, for
// the signal and kill tests. In the child, MEDUSA_TEST_HANG_AT=N makes
// step N say on stderr that it begins and then never end (as a step stuck
// in a read would), and MEDUSA_TEST_KILL_AT=N makes the process kill
// itself (SIGKILL, as kill -9 does) as step N begins. MEDUSA_TEST_MEMSTATS
// makes a run that ends well print the memory the Go runtime obtained.
func TestMain(m *testing.M) {
	if os.Getenv("MEDUSA_TEST_MAIN") == "1" {
		hang, _ := strconv.Atoi(os.Getenv("MEDUSA_TEST_HANG_AT"))
		kill, _ := strconv.Atoi(os.Getenv("MEDUSA_TEST_KILL_AT"))
		stepBegins = func(n int) error {
			switch n {
			case hang:
				fmt.Fprintf(os.Stderr, "step %d begins\n", n)
				select {}
			case kill:
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
			return nil
		}
		stats := os.Getenv("MEDUSA_TEST_MEMSTATS") == "1"
		if stats {
			watchLiveHeap()
		}
		main()
		if stats {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Fprintf(os.Stderr, "runtime: obtained %d bytes, peak live heap %d bytes\n", ms.Sys, peakLive.Load())
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func loadBits(t *testing.T, path string) (params, state []float64) {
	t.Helper()
	c, err := graph.LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	return c.Params.Flatten(), c.State.Flatten()
}

func requireSameBits(t *testing.T, what string, a, b []float64) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d values vs %d", what, len(a), len(b))
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			t.Fatalf("%s differ at %d: %v (straight) vs %v (resumed)", what, i, a[i], b[i])
		}
	}
}

// TestResumeBitIdentical trains N+M steps straight through, and N steps
// then a resumed run of M more, and checks the parameters and the whole
// training state are bit-identical: second-order MAML, and multi-task
// learning with uncertainty weighting (learned state) and with PCGrad
// (random state).
func TestResumeBitIdentical(t *testing.T) {
	for _, c := range []struct {
		name  string
		args  []string
		total string // the flag that sets the number of steps
	}{
		{"maml", []string{"train", "--meta-batch", "3", "--hidden", "8,8", "--eval-tasks", "0"}, "--iters"},
		{"reptile", []string{"train", "--learner", "reptile", "--task", "classification", "--meta-batch", "3", "--hidden", "8",
			"--eval-tasks", "0"}, "--iters"},
		{"mamlpp", []string{"train", "--learner", "mamlpp", "--task", "classification", "--meta-batch", "3", "--hidden", "8",
			"--inner-steps", "2", "--multi-step", "9", "--first-order-for", "4", "--eval-tasks", "0"}, "--iters"},
		{"mamlpp-images", []string{"train", "--learner", "mamlpp", "--task", "mnist", "--filters", "4", "--blocks", "2", "--meta-batch", "2",
			"--query", "2", "--inner-steps", "2", "--multi-step", "9", "--first-order-for", "4", "--eval-tasks", "0"}, "--iters"},
		// A log line every 20 iterations: the loss before adaptation on
		// every second one (1, 3, ..., 13), the resumed run's included.
		{"maml-pre-every-2", []string{"train", "--task", "classification", "--meta-batch", "3", "--hidden", "8",
			"--log-every", "20", "--eval-tasks", "0"}, "--iters"},
		{"metasgd", []string{"train", "--learner", "metasgd", "--task", "classification", "--meta-batch", "3", "--hidden", "8",
			"--eval-tasks", "0"}, "--iters"},
		{"protonet", []string{"train", "--learner", "protonet", "--task", "mnist", "--filters", "4", "--blocks", "2", "--meta-batch", "2",
			"--query", "2", "--eval-tasks", "0"}, "--iters"},
		{"r2d2", []string{"train", "--learner", "r2d2", "--task", "classification", "--meta-batch", "3", "--hidden", "8",
			"--eval-tasks", "0"}, "--iters"},
		{"mtl-uw", []string{"mtl", "--weighting", "uw", "--train-rows", "300", "--test-rows", "50",
			"--batch", "64", "--hidden", "16"}, "--steps"},
		{"mtl-pcgrad", []string{"mtl", "--weighting", "pcgrad", "--train-rows", "300", "--test-rows", "50",
			"--batch", "64", "--hidden", "16"}, "--steps"},
		{"mtl-ple-gradvac", []string{"mtl", "--arch", "ple", "--experts", "2", "--weighting", "gradvac", "--train-rows", "300", "--test-rows", "50",
			"--batch", "64", "--hidden", "8"}, "--steps"},
		{"mtl-cgc-dbmtl", []string{"mtl", "--arch", "cgc", "--experts", "2", "--weighting", "dbmtl:beta_sigma=0.5", "--train-rows", "300", "--test-rows", "50",
			"--batch", "64", "--hidden", "8"}, "--steps"},
		{"mtl-mmoe-stch", []string{"mtl", "--arch", "mmoe", "--experts", "2", "--weighting", "stch", "--train-rows", "300", "--test-rows", "50",
			"--batch", "64", "--hidden", "8"}, "--steps"},
		{"mtl-cross-stitch-famo", []string{"mtl", "--arch", "cross-stitch", "--weighting", "famo", "--train-rows", "300", "--test-rows", "50",
			"--batch", "64", "--hidden", "8"}, "--steps"},
		{"mtl-dselect-k-upgrad", []string{"mtl", "--arch", "dselect-k", "--weighting", "upgrad", "--train-rows", "300", "--test-rows", "50",
			"--batch", "64", "--hidden", "8"}, "--steps"},
		{"mtl-rep-grad-mgda", []string{"mtl", "--rep-grad", "--weighting", "mgda", "--train-rows", "300", "--test-rows", "50",
			"--batch", "64", "--hidden", "16"}, "--steps"},
		{"mtl-moco-settings", []string{"mtl", "--weighting", "moco:raw_grads=true:beta=0.9:gamma_sigma=-1", "--train-rows", "300", "--test-rows", "50",
			"--batch", "64", "--hidden", "16"}, "--steps"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			straight, part := filepath.Join(dir, "straight.safetensors"), filepath.Join(dir, "part.safetensors")
			if _, stderr, err := runCLI(append(c.args, c.total, "13", "--out", straight)...); err != nil {
				t.Fatalf("straight run: %v\n%s", err, stderr)
			}
			// 7 steps cross an epoch boundary of the multi-task runs (5 batches).
			if _, stderr, err := runCLI(append(c.args, c.total, "7", "--out", part)...); err != nil {
				t.Fatalf("first part: %v\n%s", err, stderr)
			}
			stdout, stderr, err := runCLI(c.args[0], "--resume", part, c.total, "13")
			if err != nil {
				t.Fatalf("resumed run: %v\n%s", err, stderr)
			}
			if !strings.Contains(stdout, "resuming") {
				t.Errorf("resumed run does not say so:\n%s", stdout)
			}
			p1, s1 := loadBits(t, straight)
			p2, s2 := loadBits(t, part)
			requireSameBits(t, "parameters", p1, p2)
			requireSameBits(t, "training state", s1, s2)
		})
	}
}

func TestResumeErrors(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "m.safetensors")
	if _, stderr, err := runCLI("train", "--iters", "3", "--meta-batch", "2", "--hidden", "4", "--eval-tasks", "0", "--out", ck); err != nil {
		t.Fatalf("train: %v\n%s", err, stderr)
	}
	old := filepath.Join(dir, "old.safetensors")
	p, err := graph.LoadCheckpoint(ck)
	if err != nil {
		t.Fatal(err)
	}
	if err := graph.SaveParams(old, p.Params, map[string]string{"learner": "maml"}); err != nil {
		t.Fatal(err)
	}
	negative := filepath.Join(dir, "negative.safetensors")
	p.Meta["train.step"] = "-5"
	if err := graph.SaveCheckpoint(negative, p); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.safetensors")
	var flags map[string]string
	if err := json.Unmarshal([]byte(p.Meta[flagsKey]), &flags); err != nil {
		t.Fatal(err)
	}
	flags["meta-batch"] = "1000000000"
	b, _ := json.Marshal(flags)
	p.Meta["train.step"], p.Meta[flagsKey] = "3", string(b)
	if err := graph.SaveCheckpoint(huge, p); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "cut.safetensors")
	b, _ = os.ReadFile(ck)
	if err := os.WriteFile(truncated, b[:len(b)-9], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{"--resume", ck, "--hidden", "8"}, true, "--hidden: a resumed run keeps the settings"},
		{[]string{"--resume", ck, "--learner", "fomaml", "--iters", "5"}, true, "--learner fomaml: the checkpoint was trained with --learner maml"},
		{[]string{"--resume", ck, "--learner", "reptile", "--iters", "5"}, true, "--learner reptile: the checkpoint was trained with --learner maml"},
		{[]string{"--resume", negative, "--iters", "9"}, false, "train.step is -5"},
		{[]string{"--resume", huge, "--iters", "9"}, false, "the settings it records are refused: --meta-batch 1000000000: must be at most 10000"},
		{[]string{"--resume", ck}, false, "has done 3 iterations already"},
		{[]string{"--resume", old, "--iters", "5"}, false, "holds parameters only"},
		{[]string{"--resume", truncated, "--iters", "5"}, false, "cut.safetensors"},
		{[]string{"--resume", filepath.Join(dir, "none.safetensors")}, false, "none.safetensors"},
	} {
		_, stderr, err := runCLI(append([]string{"train"}, c.args...)...)
		var ue *usageError
		if err == nil || errors.As(err, &ue) != c.usage {
			t.Errorf("train %v: err = %v; want a usage error: %v", c.args, err, c.usage)
			continue
		}
		if msg := stderr + err.Error(); !strings.Contains(msg, c.want) {
			t.Errorf("train %v: message %q; want %q", c.args, msg, c.want)
		}
	}
}

// TestInterruptSavesAndResumes starts the real program, sends it SIGINT
// while it trains, and checks it exits non-zero saying how to resume, that
// the checkpoint it wrote loads, and that resuming from it works.
func TestInterruptSavesAndResumes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run.safetensors")
	cmd := exec.Command(os.Args[0], "train", "--iters", "1000000", "--meta-batch", "2", "--hidden", "4",
		"--log-every", "1", "--eval-tasks", "0", "--out", out)
	cmd.Env = append(os.Environ(), "MEDUSA_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sc := bufio.NewScanner(stderr)
	lines := 0
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "iter ") {
			if lines++; lines == 5 {
				if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("the program did not stop after SIGINT:\n%s", log.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit after SIGINT: %v; want status 1\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "resume with: medusa train --resume "+out) {
		t.Errorf("the message does not say how to resume:\n%s", log.String())
	}
	c, err := graph.LoadCheckpoint(out)
	if err != nil {
		t.Fatalf("the checkpoint written on SIGINT does not load: %v", err)
	}
	n, err := c.MetaInt("iterations")
	if err != nil || n < 5 {
		t.Fatalf("checkpoint iterations = %d, %v; want at least 5", n, err)
	}
	if _, stderr, err := runCLI("train", "--resume", out, "--iters", itoa(n+3)); err != nil {
		t.Fatalf("resuming the interrupted run: %v\n%s", err, stderr)
	}
	c, err = graph.LoadCheckpoint(out)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := c.MetaInt("iterations"); m != n+3 {
		t.Errorf("after resuming for 3 more: iterations = %d; want %d", m, n+3)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestInterruptResumeBitIdentical interrupts a run part-way (in process,
// as a signal would), resumes it from the checkpoint it wrote, and checks
// the result is bit-identical to a straight run: the random streams saved
// are those that draw the next iteration's batch, not the one after.
func TestInterruptResumeBitIdentical(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
	}{
		{"maml", []string{"train", "--meta-batch", "3", "--hidden", "8", "--eval-tasks", "0", "--log-every", "1"}},
		{"reptile", []string{"train", "--learner", "reptile", "--task", "classification", "--meta-batch", "3", "--hidden", "8",
			"--eval-tasks", "0", "--log-every", "1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			straight, part := filepath.Join(dir, "straight.safetensors"), filepath.Join(dir, "part.safetensors")
			if _, stderr, err := runCLI(append(c.args, "--iters", "9", "--out", straight)...); err != nil {
				t.Fatalf("straight run: %v\n%s", err, stderr)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var o bytes.Buffer
			err := run(ctx, append(c.args, "--iters", "9", "--out", part), &o, &cancelAfter{lines: 4, cancel: cancel})
			if err == nil || !strings.Contains(err.Error(), "interrupted after 4 of 9") {
				t.Fatalf("interrupted run: err = %v; want interrupted after 4 of 9", err)
			}
			if _, stderr, err := runCLI("train", "--resume", part, "--iters", "9"); err != nil {
				t.Fatalf("resumed run: %v\n%s", err, stderr)
			}
			p1, s1 := loadBits(t, straight)
			p2, s2 := loadBits(t, part)
			requireSameBits(t, "parameters", p1, p2)
			requireSameBits(t, "training state", s1, s2)
		})
	}
}

// TestSecondSignalEndsAtOnce starts the real program on a run whose
// second step never ends, sends SIGTERM once that step has begun, waits
// for the program to say it will stop after the step, sends a second
// SIGTERM, and checks that the process ends at once with status 143
// saying why.
func TestSecondSignalEndsAtOnce(t *testing.T) {
	cmd := exec.Command(os.Args[0], "train", "--hidden", "4", "--iters", "5", "--eval-tasks", "0")
	cmd.Env = append(os.Environ(), "MEDUSA_TEST_MAIN=1", "MEDUSA_TEST_HANG_AT=2")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	go io.Copy(io.Discard, stdout)
	errs := bufio.NewScanner(stderr)
	for _, until := range []string{"step 2 begins", "a second signal stops at once"} {
		for errs.Scan() {
			log.WriteString(errs.Text() + "\n")
			if strings.Contains(errs.Text(), until) {
				break
			}
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		for errs.Scan() {
			log.WriteString(errs.Text() + "\n")
		}
		done <- cmd.Wait()
	}()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatalf("the program did not end after a second SIGTERM:\n%s", log.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Fatalf("exit after two SIGTERMs: %v; want status 143\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "second signal") {
		t.Errorf("the program does not say why it stopped:\n%s", log.String())
	}
}

// peakLive is the largest live heap seen at the end of a garbage
// collection, by watchLiveHeap.
var peakLive atomic.Uint64

// watchLiveHeap records the live heap after every garbage collection: an
// object with a finalizer is made unreachable, and its finalizer, run
// after the collection that found it so, reads the figure and makes the
// next one.
func watchLiveHeap() {
	type sentinel struct{ _ [16]byte }
	s := new(sentinel)
	runtime.SetFinalizer(s, func(*sentinel) {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v > peakLive.Load() {
			peakLive.Store(v)
		}
		watchLiveHeap()
	})
}

// stopKinds lists a short run of every meta-learner and every multi-task
// weighting, with the flag that sets its length.
func stopKinds() []struct {
	name  string
	args  []string
	total string
} {
	type run = struct {
		name  string
		args  []string
		total string
	}
	var runs []run
	for _, l := range metaLearners {
		args := []string{"train", "--learner", l, "--task", "classification", "--meta-batch", "2",
			"--hidden", "6", "--eval-tasks", "0", "--log-every", "1"}
		if l != "protonet" && l != "r2d2" { // which have no inner loop
			args = append(args, "--inner-steps", "2")
		}
		runs = append(runs, run{l, args, "--iters"})
	}
	for _, w := range weighting.Names() {
		// 150 rows in batches of 32: an epoch is 5 steps, so the runs
		// cross one (DWA's weights change there).
		runs = append(runs, run{"mtl-" + w, []string{"mtl", "--weighting", w, "--train-rows", "150",
			"--test-rows", "20", "--batch", "32", "--hidden", "6", "--log-every", "1"}, "--steps"})
	}
	return runs
}

// TestStopsResumeBitIdentical stops every learner and weighting mid-run in
// three ways, resumes each from its checkpoint and checks that the result
// is bit-identical to a straight run of 8 steps: an interrupt as step 5
// begins and a non-finite value in step 5 (the checkpoint holds step 4),
// and kill -9 of the real program as step 6 begins, with
// --checkpoint-every 2 (the checkpoint holds step 4 and step 5 is lost).
// The non-finite value is reported by a test hook in place of the step,
// as a learner reports one, leaving the parameters as they were; that
// the learners do so is tested in package learners.
func TestStopsResumeBitIdentical(t *testing.T) {
	for _, c := range stopKinds() {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			straight := filepath.Join(dir, "straight.safetensors")
			if _, stderr, err := runCLI(append(c.args, c.total, "8", "--out", straight)...); err != nil {
				t.Fatalf("straight run: %v\n%s", err, stderr)
			}
			p0, s0 := loadBits(t, straight)

			interrupted := filepath.Join(dir, "interrupted.safetensors")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			t.Cleanup(func() { stepBegins = nil })
			stepBegins = func(n int) error {
				if n == 5 {
					cancel()
				}
				return nil
			}
			err := run(ctx, append(c.args, c.total, "8", "--out", interrupted), io.Discard, io.Discard)
			stepBegins = nil
			if err == nil || !strings.Contains(err.Error(), "interrupted after 4 of 8") {
				t.Fatalf("interrupted run: err = %v; want interrupted after 4 of 8", err)
			}

			nan := filepath.Join(dir, "nan.safetensors")
			stepBegins = func(n int) error {
				if n == 5 {
					return &learners.NonFiniteError{Step: 5, What: "an injected loss"}
				}
				return nil
			}
			var nanErr bytes.Buffer
			err = run(context.Background(), append(c.args, c.total, "8", "--out", nan), io.Discard, &nanErr)
			stepBegins = nil
			if !errors.Is(err, learners.ErrNonFinite) || !strings.Contains(nanErr.String(), "keeping the parameters of") {
				t.Fatalf("run with a non-finite step 5: err = %v; want a non-finite error and step 4 kept\n%s", err, nanErr.String())
			}

			killed := filepath.Join(dir, "killed.safetensors")
			cmd := exec.Command(os.Args[0], append(c.args, c.total, "8", "--checkpoint-every", "2", "--out", killed)...)
			cmd.Env = append(os.Environ(), "MEDUSA_TEST_MAIN=1", "MEDUSA_TEST_KILL_AT=6")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err = cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("the run to be killed ended with %v, not SIGKILL\n%s", err, stderr.String())
			}
			for _, path := range []string{interrupted, nan, killed} {
				if _, stderr, err := runCLI(c.args[0], "--resume", path, c.total, "8"); err != nil {
					t.Fatalf("resuming %s: %v\n%s", filepath.Base(path), err, stderr)
				}
				p, s := loadBits(t, path)
				requireSameBits(t, filepath.Base(path)+" parameters", p0, p)
				requireSameBits(t, filepath.Base(path)+" training state", s0, s)
			}
		})
	}
}

// TestResumeMovedCheckpoint resumes a checkpoint moved away from the
// directory it was written to, which no longer exists.
func TestResumeMovedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	first := filepath.Join(dir, "gone", "m.safetensors")
	if err := os.Mkdir(filepath.Dir(first), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := runCLI("train", "--iters", "2", "--meta-batch", "2", "--hidden", "4", "--eval-tasks", "0", "--out", first); err != nil {
		t.Fatalf("train: %v\n%s", err, stderr)
	}
	moved := filepath.Join(dir, "m.safetensors")
	if err := os.Rename(first, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Dir(first)); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := runCLI("train", "--resume", moved, "--iters", "3"); err != nil {
		t.Fatalf("resuming a moved checkpoint: %v\n%s", err, stderr)
	}
}

// TestResumeElsewhere: a run started with relative --log and --csv paths
// resumes from another directory into the same log, reading the same
// table: the checkpoint records them as absolute paths.
func TestResumeElsewhere(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "d.csv"), []byte("a,b,y\n1,2,3\n4,5,6\n7,8,9\n1,1,1\n2,2,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(sub)
	if _, stderr, err := runCLI("mtl", "--task", "csv", "--csv", "d.csv", "--targets", "y:regression", "--steps", "2",
		"--hidden", "4", "--log", "run.jsonl", "--log-every", "1", "--out", "m.safetensors"); err != nil {
		t.Fatalf("mtl: %v\n%s", err, stderr)
	}
	t.Chdir(dir)
	if _, stderr, err := runCLI("mtl", "--resume", filepath.Join("sub", "m.safetensors"), "--steps", "4"); err != nil {
		t.Fatalf("resuming from another directory: %v\n%s", err, stderr)
	}
	recs, err := monitor.ReadFile(filepath.Join(sub, "run.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || recs[3].Step != 4 {
		t.Errorf("%d records in sub/run.jsonl, the last at step %d; want steps 1 to 4 in the one log", len(recs), recs[len(recs)-1].Step)
	}
	if _, err := os.Stat(filepath.Join(dir, "run.jsonl")); err == nil {
		t.Error("the resumed run wrote a second log in the directory it was started from")
	}
	if _, stderr, err := runCLI("eval", "--checkpoint", filepath.Join("sub", "m.safetensors")); err != nil {
		t.Errorf("eval from another directory: %v\n%s", err, stderr)
	}
}
