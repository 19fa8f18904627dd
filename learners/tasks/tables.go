package tasks

import (
	"fmt"
	"math/rand/v2"
)

// TableBenchmark names a multi-task data set and how to split it; Load
// builds its training and held-out tables.
type TableBenchmark struct {
	// Name is synthetic (SyntheticMTL's tables: two regressions and a
	// binary task), multimnist (MultiMNIST: the left and right digit of
	// overlapping MNIST pairs) or csv (the table in CSV).
	Name string
	// TrainRows and TestRows are the rows to generate (synthetic: default
	// 50000 and 10000; multimnist: 60000 and 10000).
	TrainRows, TestRows int
	// Data is the MNIST directory for multimnist ("": the GoMNIST
	// module's copy).
	Data string
	// CSV is the file of a csv benchmark, read with CSVOptions; TestFrac
	// of its rows, at random, are held out.
	CSV        string
	CSVOptions CSVOptions
	TestFrac   float64
	// Seed seeds SyntheticMTL's tasks.
	Seed uint64
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// Load returns the training and held-out tables of b, drawn from rng,
// and for synthetic tables each task's floor: the least MSE of a
// regression, the best accuracy of a classification (nil otherwise).
func (b TableBenchmark) Load(rng *rand.Rand) (train, test *Table, floors []float64, err error) {
	switch b.Name {
	case "synthetic":
		gen := SyntheticMTL{Seed: b.Seed}
		if train, err = gen.Generate(rng, orDefault(b.TrainRows, 50000)); err != nil {
			return nil, nil, nil, err
		}
		if test, err = gen.Generate(rng, orDefault(b.TestRows, 10000)); err != nil {
			return nil, nil, nil, err
		}
		f, err := gen.Floors()
		if err != nil {
			return nil, nil, nil, err
		}
		floors = make([]float64, len(f))
		for i, fl := range f {
			floors[i] = fl.Loss
			if fl.Target.Kind != Regression {
				floors[i] = fl.Accuracy
			}
		}
		return train, test, floors, nil
	case "multimnist":
		dir := b.Data
		if dir == "" {
			if dir, err = MNISTDir(); err != nil {
				return nil, nil, nil, err
			}
		}
		src, err := LoadMNIST(dir)
		if err != nil {
			return nil, nil, nil, err
		}
		if train, err = MultiMNIST(rng, &src.Train, orDefault(b.TrainRows, 60000)); err != nil {
			return nil, nil, nil, err
		}
		if test, err = MultiMNIST(rng, &src.Test, orDefault(b.TestRows, 10000)); err != nil {
			return nil, nil, nil, err
		}
		return train, test, nil, nil
	case "csv":
		all, err := LoadCSV(b.CSV, b.CSVOptions)
		if err != nil {
			return nil, nil, nil, err
		}
		train, test, err = all.Split(rng, b.TestFrac)
		return train, test, nil, err
	}
	return nil, nil, nil, fmt.Errorf("tasks: unknown table benchmark %q (want synthetic, multimnist or csv)", b.Name)
}

// GeneratedBytes is the memory that Load's generated tables take while
// they are made (twice their size), or 0 for a CSV file, which is read a
// line at a time.
func (b TableBenchmark) GeneratedBytes() (int64, error) {
	switch b.Name {
	case "multimnist":
		rows := int64(orDefault(b.TrainRows, 60000) + orDefault(b.TestRows, 10000))
		return 2 * rows * (28*28 + 2) * 8, nil // 28×28 pixels and 2 labels a row
	case "synthetic":
		one, err := SyntheticMTL{Seed: b.Seed}.Generate(rand.New(rand.NewPCG(0, 0)), 1)
		if err != nil {
			return 0, err
		}
		rows := int64(orDefault(b.TrainRows, 50000) + orDefault(b.TestRows, 10000))
		return 2 * rows * int64(one.In+len(one.Targets)) * 8, nil
	}
	return 0, nil
}
