package tasks

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// This file holds what the readers of image files (Omniglot, ImageFolder)
// share: listing directories, reading files with a size bound, decoding
// on several goroutines and resizing by area averaging.

const (
	maxImageFileSize = 16 << 20 // the most bytes of an image file
	maxImageSide     = 1024     // the largest side of a resized image
)

// listDir returns the names of the subdirectories and of the regular
// files of dir, each sorted, following symbolic links and skipping hidden
// entries (names starting with a dot) and __MACOSX directories. Any other
// entry (a pipe, a device, a dangling link) is an error naming its path,
// and so are more than limit entries. Errors start "tasks: what: ".
func listDir(what, dir string, limit int) (dirs, files []string, err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("tasks: %s: %v", what, err)
	}
	defer f.Close()
	entries, err := f.ReadDir(limit + 1)
	if err != nil && err != io.EOF {
		return nil, nil, fmt.Errorf("tasks: %s: %s: %v", what, dir, err)
	}
	if len(entries) > limit {
		return nil, nil, fmt.Errorf("tasks: %s: %s: more than MaxEntries = %d entries", what, dir, limit)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || name == "__MACOSX" {
			continue
		}
		path := filepath.Join(dir, name)
		mode := e.Type()
		if mode&os.ModeSymlink != 0 {
			fi, err := os.Stat(path)
			if err != nil {
				return nil, nil, fmt.Errorf("tasks: %s: %v", what, err)
			}
			mode = fi.Mode().Type()
		}
		switch {
		case mode.IsDir():
			dirs = append(dirs, name)
		case mode.IsRegular():
			files = append(files, name)
		default:
			// A pipe or device would block or never end when read.
			return nil, nil, fmt.Errorf("tasks: %s: %s: not a regular file or directory (%v)", what, path, mode)
		}
	}
	slices.Sort(dirs)
	slices.Sort(files)
	return dirs, files, nil
}

// readImageFile returns the contents of the file at path, at most
// maxImageFileSize bytes. Errors start "tasks: what: " and name the path.
func readImageFile(what, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tasks: %s: %v", what, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxImageFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("tasks: %s: %s: %v", what, path, err)
	}
	if len(data) > maxImageFileSize {
		return nil, fmt.Errorf("tasks: %s: %s: larger than %d MiB", what, path, maxImageFileSize>>20)
	}
	return data, nil
}

// forEach calls f(i) for every i in [0, n) on as many goroutines as there
// are CPUs and returns the error of the smallest i that fails, so that
// the outcome depends neither on the number of goroutines nor on their
// timing. The calls must write to disjoint memory.
func forEach(n int, f func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// boxResize resizes a w×h image of ch channels to side×side by area
// averaging: an output pixel is the mean of the source region it covers,
// whole or in part, so that shrinking loses no detail to aliasing and
// enlarging repeats pixels, blending them where an output pixel straddles
// two. row(y, buf) fills buf with row y of the source, w·ch values in
// [0, 1] with a pixel's channels together; dst receives side·side·ch
// intensities, value·255 rounded, in the same layout. Memory is
// O(side²·ch + w·ch + h), whatever the source's shape.
func boxResize(dst []byte, w, h, ch, side int, row func(y int, buf []float64)) {
	wx, wy := boxWeights(w, side), boxWeights(h, side)
	// Source row y adds weight wt of its resampled row into output row o.
	type share struct {
		o  int
		wt float64
	}
	shares := make([][]share, h)
	for o, sp := range wy {
		for k, wt := range sp.w {
			shares[sp.first+k] = append(shares[sp.first+k], share{o, wt})
		}
	}
	n := side * ch
	acc := make([]float64, side*n)
	buf, line := make([]float64, w*ch), make([]float64, n)
	for y, sh := range shares {
		row(y, buf)
		for o, sp := range wx {
			for c := range ch {
				var v float64
				for k, wk := range sp.w {
					v += wk * buf[(sp.first+k)*ch+c]
				}
				line[o*ch+c] = v
			}
		}
		for _, s := range sh {
			out := acc[s.o*n : (s.o+1)*n]
			for j, v := range line {
				out[j] += s.wt * v
			}
		}
	}
	for j, v := range acc {
		dst[j] = byte(math.Round(255 * min(max(v, 0), 1)))
	}
}

// boxSpan is the weights of the consecutive source pixels first,
// first+1, ... that make one output pixel.
type boxSpan struct {
	first int
	w     []float64
}

// boxWeights returns, for each of dst output pixels along one axis, the
// share of each of the src source pixels it covers: output pixel o covers
// [o·src/dst, (o+1)·src/dst) in source units. Overlaps are computed in
// integers, units of 1/dst, so the weights are exact ratios summing to 1.
func boxWeights(src, dst int) []boxSpan {
	out := make([]boxSpan, dst)
	for o := range out {
		lo, hi := o*src, (o+1)*src // in units of 1/dst
		first, last := lo/dst, (hi-1)/dst
		out[o].first = first
		for s := first; s <= last; s++ {
			overlap := min(hi, (s+1)*dst) - max(lo, s*dst)
			out[o].w = append(out[o].w, float64(overlap)/float64(src))
		}
	}
	return out
}
