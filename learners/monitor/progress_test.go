package monitor

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fakeClock advances by tick every time it is read.
type fakeClock struct {
	t    time.Time
	tick time.Duration
}

func (c *fakeClock) now() time.Time {
	t := c.t
	c.t = c.t.Add(c.tick)
	return t
}

// newTestProgress returns a progress on buf whose clock starts at 0 and
// advances by tick at each reading.
func newTestProgress(buf *bytes.Buffer, total int, unit string, every int, tick time.Duration) *Progress {
	p := NewProgress(buf, unit, 0, total, every)
	c := &fakeClock{t: time.Unix(1e9, 0), tick: tick}
	p.now = c.now
	p.restart()
	return p
}

func TestProgressPlain(t *testing.T) {
	tests := []struct {
		name        string
		total       int
		unit        string
		every, base int
		want        []string
	}{
		// 500 ms a step: at step 4, 2 s have passed, 2 it/s, 4 steps left.
		{"iter", 8, "iter", 4, 0, []string{
			"iter 4/8  loss 4  2 it/s  elapsed 2s  ETA 2s",
			"iter 8/8  loss 8  2 it/s  elapsed 4s  ETA 0s",
		}},
		// The last step is always reported; the step counter is padded to
		// the width of the total.
		{"step", 10, "step", 4, 0, []string{
			"step  4/10  loss 4  2 steps/s  elapsed 2s  ETA 3s",
			"step  8/10  loss 8  2 steps/s  elapsed 4s  ETA 1s",
			"step 10/10  loss 10  2 steps/s  elapsed 5s  ETA 0s",
		}},
		// every 0: about 20 lines; 40/20 = every 2nd step.
		{"default every", 40, "iter", 0, 0, nil},
		// A run resumed after step 4: 2 steps in 1 s.
		{"resumed", 8, "iter", 2, 4, []string{
			"iter 6/8  loss 6  2 it/s  elapsed 1s  ETA 1s",
			"iter 8/8  loss 8  2 it/s  elapsed 2s  ETA 0s",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			p := newTestProgress(&buf, tt.total, tt.unit, tt.every, 500*time.Millisecond)
			if p.tty {
				t.Fatal("a bytes.Buffer was taken for a terminal")
			}
			p.base = tt.base
			for s := tt.base + 1; s <= tt.total; s++ {
				p.Update(s, "loss "+strconv.Itoa(s))
			}
			p.Done()
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if tt.want == nil {
				if len(lines) != 20 {
					t.Errorf("%d lines; want 20:\n%s", len(lines), buf.String())
				}
				return
			}
			if strings.Join(lines, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("progress lines:\n%s\nwant:\n%s", buf.String(), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestProgressNoTime(t *testing.T) {
	// A clock that does not move: no rate and no time left, rather than
	// +Inf it/s.
	var buf bytes.Buffer
	p := newTestProgress(&buf, 2, "iter", 1, 0)
	p.Update(1, "x")
	if got, want := buf.String(), "iter 1/2  x  - it/s  elapsed 0s  ETA ?\n"; got != want {
		t.Errorf("update with no time passed = %q; want %q", got, want)
	}
}

func TestProgressFileIsNotTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "progress.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if p := NewProgress(f, "iter", 0, 10, 1); p.tty {
		t.Error("a regular file was taken for a terminal")
	}
}

func TestProgressTerminal(t *testing.T) {
	var buf bytes.Buffer
	// 10 ms a step: with redraws at most every 100 ms, 1000 steps draw
	// about 1000·10/100 = 100 times, far fewer than 1000.
	p := newTestProgress(&buf, 1000, "iter", 0, 10*time.Millisecond)
	p.tty, p.width = true, 70
	for s := 1; s <= 1000; s++ {
		p.Update(s, "query MSE pre 1.2345 post 0.5432 and a long tail of text that does not fit")
	}
	p.Done()
	out := buf.String()
	if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("terminal output should end in exactly one newline, from done: %q", out[max(0, len(out)-100):])
	}
	draws := strings.Split(strings.TrimSuffix(out, "\n"), "\r")[1:]
	if len(draws) < 50 || len(draws) > 200 {
		t.Errorf("%d redraws for 1000 steps 10 ms apart; want about 100", len(draws))
	}
	for _, d := range draws {
		line := strings.TrimSuffix(d, "\x1b[K")
		if n := utf8.RuneCountInString(line); n > 69 {
			t.Errorf("line of %d runes on a 70-column terminal: %q", n, line)
		}
	}
	last := draws[len(draws)-1]
	for _, want := range []string{"iter 1000/1000 [==========] 100%  query MSE pre", "…  100 it/s  ETA 0s"} {
		if !strings.Contains(last, want) {
			t.Errorf("last line %q lacks %q", last, want)
		}
	}
	p.width = 0 // unknown width: the whole line
	p.Update(1, "detail")
	p.Done()
	if !strings.Contains(buf.String(), "iter    1/1000 [>                   ]   0%  detail  ") || !strings.Contains(buf.String(), "ETA ") {
		t.Errorf("untruncated line: %q", buf.String()[len(out):])
	}
}

func TestProgressDoneWithoutUpdates(t *testing.T) {
	var buf bytes.Buffer
	p := newTestProgress(&buf, 10, "step", 1, time.Second)
	p.tty = true
	p.Done()
	if buf.Len() != 0 {
		t.Errorf("done with nothing reported wrote %q", buf.String())
	}
}

func TestTruncateRunes(t *testing.T) {
	for _, tt := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"}, {"abc", 3, "abc"}, {"abcd", 3, "abc"}, {"±±±±", 2, "±±"}, {"", 0, ""}, {"a", 0, ""},
	} {
		if got := truncateRunes(tt.s, tt.n); got != tt.want {
			t.Errorf("truncateRunes(%q, %d) = %q; want %q", tt.s, tt.n, got, tt.want)
		}
	}
}
