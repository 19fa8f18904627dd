package graph

import (
	"os"
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

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.txt")
	for _, data := range []string{"first", "second, longer"} {
		if err := WriteFileAtomic(path, []byte(data)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != data {
			t.Errorf("read back %q, %v; want %q", got, err, data)
		}
	}
	if err := WriteFileAtomic(dir, []byte("x")); err == nil || !strings.Contains(err.Error(), "a directory") {
		t.Errorf("WriteFileAtomic over a directory: %v; want it refused", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".out.txt.tmp*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestCheckWritable(t *testing.T) {
	dir := t.TempDir()
	if err := CheckWritable(filepath.Join(dir, "new.safetensors")); err != nil {
		t.Errorf("CheckWritable of a new file: %v", err)
	}
	if err := CheckWritable(dir); err == nil || !strings.Contains(err.Error(), "a directory") {
		t.Errorf("CheckWritable of a directory: %v", err)
	}
	if err := CheckWritable(filepath.Join(dir, "missing", "x")); err == nil || !strings.Contains(err.Error(), "cannot write there") {
		t.Errorf("CheckWritable in a missing directory: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".medusa-check*")); len(left) != 0 {
		t.Errorf("CheckWritable left %v", left)
	}
}
