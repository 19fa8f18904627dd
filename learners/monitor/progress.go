package monitor

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"
)

// Progress reports how far a training loop has got. On a terminal it
// redraws one line in place: step/total, a bar, the caller's detail text
// (shortened to fit the terminal's width), the rate and the time left. Elsewhere (a file, a pipe, a test buffer) it
// writes one plain line every `every` steps and at the last step:
//
//	iter  200/1000  <detail>  350 it/s  elapsed 1s  ETA 2s
//	step  200/1000  <detail>  350 steps/s  elapsed 1s  ETA 2s
//
// Call Done before writing anything else to w, so that a terminal's
// progress line is ended first. A Progress is not safe for concurrent use.
type Progress struct {
	w     io.Writer
	total int
	unit  string // "iter" or "step"
	every int    // plain lines every this many steps

	// now is the clock; tests replace it (and then call restart).
	now func() time.Time
	// base is the number of steps done before this run (a resumed run):
	// rate and time left count only the steps taken since.
	base int

	tty   bool // w is a terminal: redraw one line
	width int  // the terminal's columns; 0 if unknown

	start    time.Time
	lastDraw time.Time
	step     int    // the last step reported
	detail   string // and its detail
}

// redrawEvery is the least time between two redraws of a terminal line.
const redrawEvery = 100 * time.Millisecond

// NewProgress returns a reporter for a loop that has done steps already
// (a resumed run; 0 for a new one) and ends at step total, writing to w.
// unit names a step ("iter" or "step"; the rate is per second of those);
// every ≤ 0 means about 20 plain lines per run.
func NewProgress(w io.Writer, unit string, done, total, every int) *Progress {
	every = Cadence(total, every)
	p := &Progress{w: w, total: total, unit: unit, every: every, base: done, now: time.Now}
	p.tty, p.width = terminal(w)
	p.restart()
	return p
}

// Cadence returns the number of steps between two plain lines of a
// Progress over total steps asked to print every given number: that
// number, or for 0 (or less) about 20 lines per run.
func Cadence(total, every int) int {
	if every <= 0 {
		return max(1, total/20)
	}
	return every
}

// Every returns the number of steps between two plain lines: also a
// good cadence for a log.
func (p *Progress) Every() int { return p.every }

// restart starts the clock again from p.now().
func (p *Progress) restart() {
	p.start = p.now()
	p.lastDraw = time.Time{}
}

// terminal reports whether w is a terminal that can redraw a line, and its
// width in columns (0 if unknown).
func terminal(w io.Writer) (bool, int) {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false, 0
	}
	fd := int(f.Fd())
	if !term.IsTerminal(fd) {
		return false, 0
	}
	cols, _, err := term.GetSize(fd)
	if err != nil {
		cols = 0
	}
	return true, cols
}

// Update reports that step (1-based, counting the steps before a resumed
// run) has finished; detail is shown beside it (losses, say).
func (p *Progress) Update(step int, detail string) {
	p.step, p.detail = step, detail
	t := p.now()
	if p.tty {
		if step < p.total && !p.lastDraw.IsZero() && t.Sub(p.lastDraw) < redrawEvery {
			return
		}
		p.lastDraw = t
		p.draw(t)
		return
	}
	if step%p.every != 0 && step != p.total {
		return
	}
	el, rate, eta := p.timing(t)
	fmt.Fprintf(p.w, "%s %*d/%d  %s  %s %s  elapsed %s  ETA %s\n", p.unit, len(strconv.Itoa(p.total)), step, p.total,
		detail, rate, p.rateUnit(), el.Round(time.Second), eta)
}

// Done ends a terminal's progress line, drawing the last step reported if
// it was skipped. It writes nothing elsewhere, and nothing if nothing was
// reported.
func (p *Progress) Done() {
	if !p.tty || p.step == 0 {
		return
	}
	p.draw(p.now())
	fmt.Fprintln(p.w)
	p.step = 0
}

func (p *Progress) rateUnit() string {
	if p.unit == "iter" {
		return "it/s"
	}
	return p.unit + "s/s"
}

// timing returns the time since the start, the rate as text ("350", or
// "-" before any time has passed) and the estimated time left ("?" while
// the rate is unknown).
func (p *Progress) timing(t time.Time) (el time.Duration, rate, eta string) {
	el = t.Sub(p.start)
	n := p.step - p.base
	if el <= 0 || n <= 0 {
		return max(el, 0), "-", "?"
	}
	r := float64(n) / el.Seconds()
	left := time.Duration(float64(p.total-p.step) / r * float64(time.Second))
	return el, fmt.Sprintf("%.0f", r), max(left, 0).Round(time.Second).String()
}

// barWidth returns the number of cells in a terminal's progress bar: 20,
// or 10 on a terminal narrower than 100 columns.
func (p *Progress) barWidth() int {
	if p.width > 0 && p.width < 100 {
		return 10
	}
	return 20
}

// draw redraws the terminal line for the last step reported.
func (p *Progress) draw(t time.Time) {
	_, rate, eta := p.timing(t)
	frac := 0.0
	if p.total > 0 {
		frac = min(max(float64(p.step)/float64(p.total), 0), 1)
	}
	bw := p.barWidth()
	cells := int(frac * float64(bw))
	bar := strings.Repeat("=", cells)
	if cells < bw {
		bar += ">" + strings.Repeat(" ", bw-cells-1)
	}
	head := fmt.Sprintf("%s %*d/%d [%s] %3.0f%%", p.unit, len(strconv.Itoa(p.total)), p.step, p.total, bar, 100*frac)
	tail := fmt.Sprintf("%s %s  ETA %s", rate, p.rateUnit(), eta)
	detail := p.detail
	if p.width > 1 {
		// A line that wraps cannot be redrawn: shorten the detail, so
		// that the rate and time left stay in view.
		room := p.width - 1 - utf8.RuneCountInString(head) - utf8.RuneCountInString(tail) - 4
		if n := utf8.RuneCountInString(detail); n > room {
			detail = truncateRunes(detail, max(room-1, 0)) + "…"
		}
	}
	line := head + "  " + detail + "  " + tail
	if p.width > 1 {
		line = truncateRunes(line, p.width-1)
	}
	fmt.Fprintf(p.w, "\r%s\x1b[K", line)
}

// truncateRunes returns s cut to at most n runes.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for k := range s {
		if i == n {
			return s[:k]
		}
		i++
	}
	return s
}
