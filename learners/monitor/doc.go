// Package monitor watches a training run: a progress line, a log of its
// losses and weights, and plots of the curves in that log and of the
// adaptation of a meta-trained model. A Recorder ties a Progress and a Log
// to the Record hook of learners.Train:
//
//	log, err := monitor.Create("run.jsonl")
//	...
//	rec := &monitor.Recorder{Progress: monitor.NewProgress(os.Stderr, "step", 0, steps, 0), Log: log}
//	run.Record = func(n int, st learners.MTLStats) error {
//		return rec.Record(n, []monitor.Value{{Name: "loss", Value: st.Losses[0]}}, nil)
//	}
//
// and after the run, monitor.ReadFile and monitor.PlotCurves draw it, as
// "medusa plot" does.
//
// A log holds one JSON object per logged step, one
// per line:
//
//	{"step":100,"time_s":1.25,"losses":{"pre":2.1,"post":0.9},"weights":{"reg":0.5},"lr":0.001}
//
// step is the 1-based step or iteration; time_s the wall-clock seconds
// since the run started (continued across resumed runs); losses, weights
// and metrics map series names to values, in the order the trainer gave
// them; weights and metrics are left out when empty, and lr when 0.
// JSON has no NaN or infinities, so those values are written as the
// strings "NaN", "Inf" and "-Inf" ("+Inf" is read too). Readers ignore
// keys they do not know.
//
// Progress redraws one line in place on a terminal and writes plain lines
// elsewhere. A Log is a file of JSON lines written one record at a time,
// so that a crash loses at most the record being written; a resumed run
// appends to it (Append). Neither is safe for concurrent use.
package monitor
