package monitor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Value is one value of a series in a log record.
type Value struct {
	Name  string
	Value float64
}

// Record is one line of a training log.
type Record struct {
	Step    int
	Time    float64 // seconds since the run started
	Losses  []Value
	Weights []Value // none: left out
	Metrics []Value // none: left out
	LR      float64 // 0: left out
}

// Limits on what Read accepts, so that a hostile or corrupt log
// cannot take unbounded memory or draw an unreadable plot.
const (
	maxLogLine   = 1 << 20 // bytes in one line
	maxLogSeries = 256     // distinct series names in a log
	maxLogName   = 256     // bytes in one series name
)

// Log writes a training log. Each record goes to the file in one write
// call, unbuffered, so a crash of the program loses at most the record
// being written. A Log is not safe for concurrent use.
type Log struct {
	f      *os.File
	path   string
	now    func() time.Time
	start  time.Time
	offset float64 // time_s of the last record of an appended log
	buf    bytes.Buffer
}

// Create creates (or truncates) a log at path.
func Create(path string) (*Log, error) { return openLog(path, false) }

// Append opens the log at path to add records to it, creating it if
// need be: the log of a resumed run. It keeps the records already there,
// continuing their time_s, after checking that they can be read and
// dropping a last line cut short by a crash.
func Append(path string) (*Log, error) { return openLog(path, true) }

// openLog creates (or truncates) the log at path, or with appendMode
// opens it as Append does.
func openLog(path string, appendMode bool) (*Log, error) {
	if !appendMode {
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("monitor: %v", err)
		}
		return &Log{f: f, path: path, now: time.Now, start: time.Now()}, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("monitor: %v", err)
	}
	l := &Log{f: f, path: path, now: time.Now}
	if err := l.prepareAppend(); err != nil {
		f.Close()
		return nil, err
	}
	l.start = l.now()
	return l, nil
}

// prepareAppend reads the records of an existing log, cuts off a partial
// last line, and moves to the end.
func (l *Log) prepareAppend() error {
	data, err := io.ReadAll(l.f)
	if err != nil {
		return fmt.Errorf("monitor: log %s: %v", l.path, err)
	}
	if i := bytes.LastIndexByte(data, '\n'); i+1 < len(data) {
		// The last line has no newline: the program stopped while
		// writing it. Drop it rather than glue the next record to it.
		data = data[:i+1]
		if err := l.f.Truncate(int64(len(data))); err != nil {
			return fmt.Errorf("monitor: log %s: %v", l.path, err)
		}
	}
	recs, err := Read(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("monitor: cannot append to log %s: %v", l.path, err)
	}
	if len(recs) > 0 {
		l.offset = recs[len(recs)-1].Time
	}
	if _, err := l.f.Seek(0, io.SeekEnd); err != nil {
		return fmt.Errorf("monitor: log %s: %v", l.path, err)
	}
	return nil
}

// write appends rec to the log, setting its time to the seconds since the
// run started.
func (l *Log) Write(rec Record) error {
	if l.f == nil {
		return fmt.Errorf("monitor: log %s: write after close", l.path)
	}
	// Milliseconds are enough, and keep the lines short.
	rec.Time = math.Round((l.offset+l.now().Sub(l.start).Seconds())*1000) / 1000
	l.buf.Reset()
	if err := appendRecord(&l.buf, rec); err != nil {
		return fmt.Errorf("monitor: log %s: step %d: %v", l.path, rec.Step, err)
	}
	if _, err := l.f.Write(l.buf.Bytes()); err != nil {
		return fmt.Errorf("monitor: log %s: %v", l.path, err)
	}
	return nil
}

// close closes the log file. Closing twice is an error.
func (l *Log) Close() error {
	if l.f == nil {
		return fmt.Errorf("monitor: log %s: already closed", l.path)
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("monitor: log %s: %v", l.path, err)
	}
	return nil
}

// appendRecord writes rec as one line of JSON to b. Series names must be
// non-empty, at most maxLogName bytes and unique within their group.
func appendRecord(b *bytes.Buffer, rec Record) error {
	if rec.Step < 0 {
		return fmt.Errorf("negative step %d", rec.Step)
	}
	b.WriteString(`{"step":`)
	b.WriteString(strconv.Itoa(rec.Step))
	b.WriteString(`,"time_s":`)
	appendValue(b, rec.Time)
	groups := []struct {
		key    string
		vals   []Value
		always bool
	}{{"losses", rec.Losses, true}, {"weights", rec.Weights, false}, {"metrics", rec.Metrics, false}}
	for _, g := range groups {
		if len(g.vals) == 0 && !g.always {
			continue
		}
		fmt.Fprintf(b, `,%q:{`, g.key)
		seen := make(map[string]bool, len(g.vals))
		for i, v := range g.vals {
			if err := checkSeriesName(v.Name); err != nil {
				return fmt.Errorf("%s: %v", g.key, err)
			}
			if seen[v.Name] {
				return fmt.Errorf("%s: series %q given twice", g.key, v.Name)
			}
			seen[v.Name] = true
			if i > 0 {
				b.WriteByte(',')
			}
			name, _ := json.Marshal(v.Name) // a string always marshals
			b.Write(name)
			b.WriteByte(':')
			appendValue(b, v.Value)
		}
		b.WriteByte('}')
	}
	if rec.LR != 0 {
		b.WriteString(`,"lr":`)
		appendValue(b, rec.LR)
	}
	b.WriteString("}\n")
	return nil
}

// appendValue writes v as a JSON number, or as "NaN", "Inf" or "-Inf".
func appendValue(b *bytes.Buffer, v float64) {
	switch {
	case math.IsNaN(v):
		b.WriteString(`"NaN"`)
	case math.IsInf(v, 1):
		b.WriteString(`"Inf"`)
	case math.IsInf(v, -1):
		b.WriteString(`"-Inf"`)
	default:
		b.Write(strconv.AppendFloat(nil, v, 'g', -1, 64))
	}
}

func checkSeriesName(name string) error {
	switch {
	case name == "":
		return errors.New("empty series name")
	case len(name) > maxLogName:
		return fmt.Errorf("series name of %d bytes (at most %d)", len(name), maxLogName)
	}
	return nil
}

// LineError is a log line that cannot be read.
type LineError struct {
	Line int // 1-based
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Read reads a training log. Blank lines are skipped; anything else
// that is not a record as openLog writes them, or breaks the limits
// (maxLogLine bytes a line, maxLogSeries distinct names), is an error
// *LineError naming the line.
func Read(r io.Reader) ([]Record, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLogLine)
	names := map[string]bool{}
	var recs []Record
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		rec, err := parseRecord(text, names)
		if err != nil {
			return nil, &LineError{Line: line, Msg: err.Error()}
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &LineError{Line: line + 1, Msg: fmt.Sprintf("longer than %d bytes", maxLogLine)}
		}
		return nil, err
	}
	return recs, nil
}

// parseRecord parses one log line. names collects the series names seen
// so far in the log, across groups, to bound their number.
func parseRecord(line []byte, names map[string]bool) (Record, error) {
	var rec Record
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := expectDelim(dec, '{', "a JSON object"); err != nil {
		return rec, err
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return rec, jsonError(err)
		}
		key, ok := tok.(string)
		if !ok { // the decoder only returns strings as keys
			return rec, fmt.Errorf("got %s, want a key", describeToken(tok))
		}
		if seen[key] {
			return rec, fmt.Errorf("key %q given twice", key)
		}
		seen[key] = true
		switch key {
		case "step":
			n, err := readNumber(dec)
			if err != nil {
				return rec, fmt.Errorf("step: %v", err)
			}
			s, err := strconv.ParseInt(string(n), 10, 0)
			if err != nil || s < 0 {
				return rec, fmt.Errorf("step %s: want a whole number, 0 or more", n)
			}
			rec.Step = int(s)
		case "time_s":
			v, err := readValue(dec)
			if err != nil {
				return rec, fmt.Errorf("time_s: %v", err)
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return rec, fmt.Errorf("time_s: %v is not a finite number", v)
			}
			rec.Time = v
		case "lr":
			v, err := readValue(dec)
			if err != nil {
				return rec, fmt.Errorf("lr: %v", err)
			}
			rec.LR = v
		case "losses", "weights", "metrics":
			vals, err := readSeries(dec, names)
			if err != nil {
				return rec, fmt.Errorf("%s: %v", key, err)
			}
			switch key {
			case "losses":
				rec.Losses = vals
			case "weights":
				rec.Weights = vals
			case "metrics":
				rec.Metrics = vals
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return rec, jsonError(err)
			}
		}
	}
	if err := expectDelim(dec, '}', "the end of the object"); err != nil {
		return rec, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return rec, errors.New("more after the end of the record")
	}
	if !seen["step"] {
		return rec, errors.New(`no "step"`)
	}
	return rec, nil
}

// readSeries reads an object of name: value pairs.
func readSeries(dec *json.Decoder, names map[string]bool) ([]Value, error) {
	if err := expectDelim(dec, '{', "an object of name: value"); err != nil {
		return nil, err
	}
	var out []Value
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("got %s, want a name", describeToken(tok))
		}
		if err := checkSeriesName(name); err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, fmt.Errorf("series %q given twice", name)
		}
		seen[name] = true
		if !names[name] {
			if len(names) == maxLogSeries {
				return nil, fmt.Errorf("more than %d series names in the log", maxLogSeries)
			}
			names[name] = true
		}
		v, err := readValue(dec)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", name, err)
		}
		out = append(out, Value{name, v})
	}
	if err := expectDelim(dec, '}', "the end of the object"); err != nil {
		return nil, err
	}
	return out, nil
}

// readNumber reads a JSON number.
func readNumber(dec *json.Decoder) (json.Number, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", jsonError(err)
	}
	n, ok := tok.(json.Number)
	if !ok {
		return "", fmt.Errorf("got %s, want a number", describeToken(tok))
	}
	return n, nil
}

// readValue reads a number or one of the strings "NaN", "Inf", "+Inf" and
// "-Inf".
func readValue(dec *json.Decoder) (float64, error) {
	tok, err := dec.Token()
	if err != nil {
		return 0, jsonError(err)
	}
	switch t := tok.(type) {
	case json.Number:
		v, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			return 0, fmt.Errorf("number %s is out of range", t)
		}
		return v, nil
	case string:
		switch t {
		case "NaN":
			return math.NaN(), nil
		case "Inf", "+Inf":
			return math.Inf(1), nil
		case "-Inf":
			return math.Inf(-1), nil
		}
	}
	return 0, fmt.Errorf(`got %s, want a number, "NaN", "Inf" or "-Inf"`, describeToken(tok))
}

func expectDelim(dec *json.Decoder, d json.Delim, want string) error {
	tok, err := dec.Token()
	if err == io.EOF {
		return fmt.Errorf("ends early, want %s", want)
	}
	if err != nil {
		return jsonError(err)
	}
	if tok != d {
		return fmt.Errorf("got %s, want %s", describeToken(tok), want)
	}
	return nil
}

// describeToken names a JSON token for an error message.
func describeToken(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return "an object"
		case '[':
			return "an array"
		}
		return fmt.Sprintf("%q", string(t))
	case string:
		if len(t) > 40 {
			t = t[:40] + "..."
		}
		return fmt.Sprintf("the string %q", t)
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(t)
	case json.Number:
		return "the number " + string(t)
	}
	return fmt.Sprint(tok)
}

// jsonError rewords encoding/json's errors for a log line.
func jsonError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("not valid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
		return errors.New("not valid JSON: the line ends early")
	}
	return fmt.Errorf("not valid JSON: %v", err)
}

// ReadFile reads the training log at path, keeping for each step the
// record written last (a resumed run repeats the steps after its
// checkpoint). Errors name the file and, for bad content, the line.
func ReadFile(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("monitor: cannot read log: %v", err)
	}
	defer f.Close()
	recs, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("monitor: %s: %v", path, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("monitor: %s: no records (is it a training log?)", path)
	}
	return supersede(recs), nil
}

// supersede drops the records that a later record's step goes back over:
// in a log appended to by a resumed run, the steps repeated after the
// checkpoint replace the ones written before the interruption.
func supersede(recs []Record) []Record {
	out := recs[:0:0]
	for _, r := range recs {
		for len(out) > 0 && out[len(out)-1].Step >= r.Step {
			out = out[:len(out)-1]
		}
		out = append(out, r)
	}
	return out
}
