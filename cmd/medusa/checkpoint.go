package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/medusa-ml/medusa/graph"
	"github.com/spf13/pflag"
)

// flagsKey is the metadata key under which medusa train's checkpoints
// record every flag's value (a JSON object), to resume with; the learner's
// state and the random streams are learners.Checkpoint's.
const flagsKey = "medusa.flags"

// resumeFlags are the flags a resumed run may change; everything else is
// fixed by the checkpoint.
var resumeFlags = []string{"resume", "iters", "steps", "out", "checkpoint-every", "log", "log-every",
	"eval-tasks", "eval-steps", "eval-query", "device", "max-memory"}

// pathFlags are the flags naming files or folders that a checkpoint
// records as absolute paths, so that a resume or an evaluation started in
// another directory reads and appends to the same files.
var pathFlags = []string{"log", "csv", "data"}

// flagValues returns every flag's value as the flag parses it back, the
// paths of pathFlags made absolute.
func flagValues(fs *pflag.FlagSet) map[string]string {
	out := map[string]string{}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "resume" || f.Name == "device" { // where a run trains is not part of it
			return
		}
		v := f.Value.String()
		if slices.Contains(pathFlags, f.Name) && v != "" {
			if abs, err := filepath.Abs(v); err == nil {
				v = abs
			}
		}
		out[f.Name] = v
	})
	return out
}

// storedArgs turns the flag values recorded in a checkpoint back into
// arguments, in a fixed order; settings are those but for the files the
// run wrote (--out, --log), which a later run names anew.
func storedArgs(c *graph.Checkpoint, path string) (args, settings []string, err error) {
	raw, ok := c.Meta[flagsKey]
	if !ok {
		return nil, nil, fmt.Errorf("%s does not record the settings of its run, as the checkpoints of medusa train and medusa mtl do", path)
	}
	var vals map[string]string
	if err := json.Unmarshal([]byte(raw), &vals); err != nil {
		return nil, nil, fmt.Errorf("%s: the recorded settings are not valid: %v", path, err)
	}
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		args = append(args, "--"+k+"="+vals[k])
		if k != "out" && k != "log" {
			settings = append(settings, args[len(args)-1])
		}
	}
	return args, settings, nil
}

// flagArg returns the value of --name in args, or "".
func flagArg(args []string, name string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// loadResume reads a checkpoint for command cmd ("train" or "mtl") to
// resume from, saying what is wrong with it in one line; none for an
// empty path.
func loadResume(path, cmd string) (*graph.Checkpoint, error) {
	if path == "" {
		return nil, nil
	}
	c, err := graph.LoadCheckpoint(path)
	if err != nil {
		return nil, fmt.Errorf("--resume: %v", err)
	}
	if err := c.Resumable(path); err != nil {
		return nil, fmt.Errorf("--resume: %v", err)
	}
	if mtl := c.Meta["learner"] == "mtl"; mtl != (cmd == "mtl") {
		other := map[bool]string{true: "mtl", false: "train"}[mtl]
		return nil, fmt.Errorf("--resume: %s is a checkpoint of medusa %s; resume it with medusa %s --resume %s", path, other, other, path)
	}
	return c, nil
}
