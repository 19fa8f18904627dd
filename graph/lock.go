package graph

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// LockFiles takes an exclusive lock for each of paths (the empty ones
// skipped), so that a second run writing the same checkpoint or log fails
// at once instead of overwriting the first's. The lock is an flock on a
// hidden file beside each path (the checkpoint itself is replaced by
// renames); the kernel drops it when the process ends, however it ends.
// Holding the lock, it removes the temporary files that a killed run's
// interrupted checkpoint write left beside a path. The returned function
// releases the locks.
func LockFiles(paths ...string) (func(), error) {
	var held []*os.File
	release := func() {
		for _, f := range held {
			os.Remove(f.Name()) // while still locked, so no one locks it between
			f.Close()           // closing drops the lock
		}
	}
	seen := map[string]bool{}
	for _, p := range paths {
		if p == "" {
			continue
		}
		if abs, err := filepath.Abs(p); err == nil {
			if seen[abs] {
				release()
				return nil, fmt.Errorf("graph: %s is named for two outputs", p)
			}
			seen[abs] = true
		}
		name := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".lock")
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			release()
			return nil, fmt.Errorf("graph: cannot lock %s: %v", p, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			release()
			if err == unix.EWOULDBLOCK {
				return nil, fmt.Errorf("graph: another run is writing %s (it holds %s)", p, name)
			}
			return nil, fmt.Errorf("graph: cannot lock %s: %v", p, err)
		}
		held = append(held, f)
		// No other run writes p now: what a killed one left can go.
		RemoveStaleTemps(p)
	}
	return release, nil
}
