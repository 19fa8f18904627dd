// Command mtldata writes the synthetic multi-task tables that
// "medusa mtl --seed N" trains and tests on as train.csv and test.csv in
// a directory, so that other libraries can be run on the same rows
// (bench/reference/mtl_synthetic.py does so with PyTorch).
//
// Usage:
//
//	go run ./bench/reference/mtldata [-seed 1] DIR
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/medusa-ml/medusa/learners/tasks"
)

func main() {
	seed := flag.Uint64("seed", 1, "the seed of the medusa mtl run")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: mtldata [-seed N] DIR")
		os.Exit(2)
	}
	if err := write(flag.Arg(0), *seed); err != nil {
		fmt.Fprintln(os.Stderr, "mtldata:", err)
		os.Exit(1)
	}
}

func write(dir string, seed uint64) error {
	// The generator and its first draws are medusa mtl's.
	rng := rand.New(rand.NewPCG(seed, 0x6d656475))
	train, test, _, err := tasks.TableBenchmark{Name: "synthetic", Seed: seed}.Load(rng)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, t := range map[string]*tasks.Table{"train.csv": train, "test.csv": test} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := t.WriteCSV(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
