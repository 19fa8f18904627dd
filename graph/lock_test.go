package graph

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestLockFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.safetensors"), filepath.Join(dir, "b.jsonl")
	unlock, err := LockFiles(a, "", b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockFiles(b); err == nil || !strings.Contains(err.Error(), "another run is writing "+b) {
		t.Errorf("LockFiles of a held path = %v; want it to say another run is writing it", err)
	}
	unlock()
	again, err := LockFiles(a, b)
	if err != nil {
		t.Fatalf("LockFiles after release: %v", err)
	}
	again()
	if _, err := LockFiles(a, filepath.Join(dir, ".", "a.safetensors")); err == nil || !strings.Contains(err.Error(), "named for two outputs") {
		t.Errorf("LockFiles of one path twice = %v; want an error", err)
	}
	if _, err := LockFiles(filepath.Join(dir, "missing", "x")); err == nil {
		t.Error("LockFiles in a missing directory: no error")
	}
}
