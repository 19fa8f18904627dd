package monitor

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testRunLog opens a log at path whose clock advances by 1.5 s a reading.
func testRunLog(t *testing.T, path string, appendMode bool) *Log {
	t.Helper()
	l, err := openLog(path, appendMode)
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeClock{t: time.Unix(1e9, 0), tick: 1500 * time.Millisecond}
	l.now = c.now
	l.start = c.now()
	return l
}

var testRecords = []Record{
	{Step: 1, Losses: []Value{{"pre", 2.5}, {"post", 1.25}}, LR: 1e-3},
	{Step: 2, Losses: []Value{{"reg", 0.5}, {"cls", math.NaN()}}, Weights: []Value{{"reg", 0.25}, {"cls", math.Inf(1)}},
		Metrics: []Value{{"acc", math.Inf(-1)}, {`odd "name"`, math.Copysign(0, -1)}}},
}

func TestRunLogWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.jsonl")
	l := testRunLog(t, path, false)
	for _, r := range testRecords {
		if err := l.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Series keep their order; NaN and infinities are strings; weights,
	// metrics and lr are left out when empty or 0.
	want := `{"step":1,"time_s":1.5,"losses":{"pre":2.5,"post":1.25},"lr":0.001}
{"step":2,"time_s":3,"losses":{"reg":0.5,"cls":"NaN"},"weights":{"reg":0.25,"cls":"Inf"},"metrics":{"acc":"-Inf","odd \"name\"":-0}}
`
	if string(data) != want {
		t.Errorf("log file:\n%s\nwant:\n%s", data, want)
	}
	got, err := Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for i := range testRecords {
		w := testRecords[i]
		w.Time = 1.5 * float64(i+1)
		if !sameRecord(got[i], w) {
			t.Errorf("record %d read back as %+v; want %+v", i, got[i], w)
		}
	}
	if err := l.Write(testRecords[0]); err == nil {
		t.Error("write after close: no error")
	}
	if err := l.Close(); err == nil {
		t.Error("second close: no error")
	}
}

func TestRunLogWriteBadRecord(t *testing.T) {
	l := testRunLog(t, filepath.Join(t.TempDir(), "log.jsonl"), false)
	defer l.Close()
	for _, r := range []Record{
		{Step: -1},
		{Step: 1, Losses: []Value{{"", 1}}},
		{Step: 1, Weights: []Value{{"a", 1}, {"a", 2}}},
		{Step: 1, Metrics: []Value{{strings.Repeat("x", maxLogName+1), 1}}},
	} {
		if err := l.Write(r); err == nil {
			t.Errorf("write(%+v): no error", r)
		}
	}
}

func TestRunLogAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.jsonl")
	// A run that stopped while writing its third record.
	old := `{"step":1,"time_s":2,"losses":{"a":1}}
{"step":2,"time_s":4,"losses":{"a":0.5}}
{"step":3,"time_s":6,"los`
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	l := testRunLog(t, path, true)
	if err := l.Write(Record{Step: 3, Losses: []Value{{"a", 0.25}}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	// The partial line is gone and time continues from 4 s.
	want := old[:strings.LastIndexByte(old, '\n')+1] + `{"step":3,"time_s":5.5,"losses":{"a":0.25}}` + "\n"
	if string(data) != want {
		t.Errorf("appended log:\n%s\nwant:\n%s", data, want)
	}

	// Appending to a missing file creates it.
	fresh := filepath.Join(t.TempDir(), "new.jsonl")
	l = testRunLog(t, fresh, true)
	l.Write(Record{Step: 1})
	l.Close()
	if data, _ := os.ReadFile(fresh); string(data) != `{"step":1,"time_s":1.5,"losses":{}}`+"\n" {
		t.Errorf("appended to a new file: %q", data)
	}

	// A garbled line in the middle is not appended to.
	if err := os.WriteFile(path, []byte("{\"step\":1}\nxyz\n{\"step\":3}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := openLog(path, true); err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), path) {
		t.Errorf("openLog(garbled, append) = %v; want an error naming the file and line 2", err)
	}
	if _, err := openLog(filepath.Join(t.TempDir(), "no", "dir", "log.jsonl"), false); err == nil {
		t.Error("openLog in a missing directory: no error")
	}
}

func TestReadRunLogErrors(t *testing.T) {
	long := `{"step":1,"losses":{"a":1},"pad":"` + strings.Repeat("x", maxLogLine) + `"}`
	var many strings.Builder
	for i := range maxLogSeries + 1 {
		fmt.Fprintf(&many, `{"step":%d,"losses":{"s%d":1}}`+"\n", i, i)
	}
	tests := []struct {
		name, in string
		line     int
		want     string
	}{
		{"garbled", "{\"step\":1}\n{\"step\":2,,}\n", 2, "not valid JSON"},
		{"cut short", "{\"step\":1}\n{\"step\":2,\"losses\":{\"a\":", 2, "ends early"},
		{"not an object", "[1,2]\n", 1, "got an array, want a JSON object"},
		{"no step", `{"losses":{"a":1}}`, 1, `no "step"`},
		{"fractional step", `{"step":1.5}`, 1, "step 1.5: want a whole number"},
		{"negative step", `{"step":-2}`, 1, "step -2"},
		{"huge step", `{"step":1e999}`, 1, "step 1e999"},
		{"string step", `{"step":"NaN"}`, 1, "want a number"},
		{"NaN time", `{"step":1,"time_s":"NaN"}`, 1, "time_s: NaN is not a finite number"},
		{"bad value", `{"step":1,"losses":{"a":"fast"}}`, 1, `losses: "a": got the string "fast", want a number, "NaN", "Inf" or "-Inf"`},
		{"null value", `{"step":1,"losses":{"a":null}}`, 1, "got null"},
		{"nested value", `{"step":1,"weights":{"a":{"b":1}}}`, 1, "weights: \"a\": got an object"},
		{"out of range", `{"step":1,"losses":{"a":1e400}}`, 1, "out of range"},
		{"series not object", `{"step":1,"metrics":[1]}`, 1, "metrics: got an array"},
		{"empty name", `{"step":1,"losses":{"":1}}`, 1, "empty series name"},
		{"duplicate series", `{"step":1,"losses":{"a":1,"a":2}}`, 1, `series "a" given twice`},
		{"duplicate key", `{"step":1,"step":2}`, 1, `key "step" given twice`},
		{"trailing data", `{"step":1} {"step":2}`, 1, "more after the end"},
		{"trailing garbage", `{"step":1}]`, 1, "more after the end"},
		{"long line", "\n\n" + long + "\n", 3, "longer than 1048576 bytes"},
		{"too many series", many.String(), maxLogSeries + 1, "more than 256 series names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := Read(strings.NewReader(tt.in))
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("Read = %d records, %v; want a *LineError", len(recs), err)
			}
			if le.Line != tt.line || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Read error = %q; want line %d and %q", err, tt.line, tt.want)
			}
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("line %d: ", tt.line)) {
				t.Errorf("error %q does not start with its line", err)
			}
		})
	}
}

func TestReadRunLogLenient(t *testing.T) {
	// Blank lines, spaces, keys from a later version and "+Inf" are fine.
	in := "\n  {\"step\": 5, \"future\": {\"x\": [1, {\"y\": null}]}, \"losses\": {\"a\": \"+Inf\"}}  \n\n{\"step\":6}"
	recs, err := Read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Step != 5 || !math.IsInf(recs[0].Losses[0].Value, 1) || recs[1].Step != 6 {
		t.Errorf("Read = %+v", recs)
	}
	if recs, err := Read(strings.NewReader("")); err != nil || len(recs) != 0 {
		t.Errorf("Read(empty) = %v, %v; want no records, no error", recs, err)
	}
}

// sameRecord reports whether a and b are equal, NaN matching NaN and the
// sign of zero counting.
func sameRecord(a, b Record) bool {
	same := func(x, y float64) bool {
		return math.Float64bits(x) == math.Float64bits(y) || (math.IsNaN(x) && math.IsNaN(y))
	}
	series := func(x, y []Value) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i].Name != y[i].Name || !same(x[i].Value, y[i].Value) {
				return false
			}
		}
		return true
	}
	return a.Step == b.Step && same(a.Time, b.Time) && (a.LR == b.LR || same(a.LR, b.LR)) &&
		series(a.Losses, b.Losses) && series(a.Weights, b.Weights) && series(a.Metrics, b.Metrics)
}

// FuzzReadRunLog checks that Read never panics, keeps its limits,
// and that what it accepts is written back to a log that reads the same.
func FuzzReadRunLog(f *testing.F) {
	var b bytes.Buffer
	for _, r := range testRecords {
		appendRecord(&b, r)
	}
	f.Add(b.Bytes())
	f.Add([]byte(`{"step":1,"time_s":0.5,"losses":{"a":1e-300,"b":"-Inf"},"lr":"NaN","x":[[[]]]}`))
	f.Add([]byte("{\"step\":1}\n\n{\"step\":2,\"losses\":{\"\\u00e9\\ud800\":2}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := Read(bytes.NewReader(data))
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) || le.Line < 1 {
				t.Fatalf("error %v is not a *LineError with a line", err)
			}
			return
		}
		names := map[string]bool{}
		var out bytes.Buffer
		for _, r := range recs {
			for _, g := range [][]Value{r.Losses, r.Weights, r.Metrics} {
				for _, v := range g {
					names[v.Name] = true
				}
			}
			if err := appendRecord(&out, r); err != nil {
				t.Fatalf("a record read from the log cannot be written: %v", err)
			}
		}
		if len(names) > maxLogSeries {
			t.Fatalf("%d series names; the limit is %d", len(names), maxLogSeries)
		}
		again, err := Read(&out)
		if err != nil {
			t.Fatalf("the log as written back does not read: %v\n%s", err, out.String())
		}
		if len(again) != len(recs) {
			t.Fatalf("%d records written back read as %d", len(recs), len(again))
		}
		for i := range recs {
			if !sameRecord(recs[i], again[i]) {
				t.Fatalf("record %d: %+v written back reads as %+v", i, recs[i], again[i])
			}
		}
	})
}
