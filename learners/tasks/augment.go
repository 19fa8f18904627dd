package tasks

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Augment is the data augmentation of few-shot learning on natural images
// (miniImageNet, CIFAR-FS, ...), as Lee et al. (2019), "Meta-Learning
// with Differentiable Convex Optimization", apply it with torchvision's
// RandomCrop(side, padding), ColorJitter and RandomHorizontalFlip. It is
// for meta-training only: evaluation uses the images as they are.
//
// Episodes.Sample applies it to the values in [0, 1] of every input it
// draws, task by task, support set before query set, after drawing the
// episodes. Each image gets its own draws, in this order: the crop's two
// offsets (when Pad > 0), the brightness, contrast and saturation factors
// (when Jitter > 0), and the flip (when Flip is set). The changes are applied in
// the same order, each clamping values to [0, 1]; unlike torchvision, the
// jitter's three changes always come in that order.
//
// The zero value changes nothing.
type Augment struct {
	// Pad pads an image with Pad black (zero) pixels on every side and
	// crops an image of its size at a random place, so it moves by up to
	// Pad pixels across and down, each offset drawn uniformly; 0 means no
	// crop. At most the smaller of the image's rows and columns.
	Pad int
	// Flip mirrors an image left to right with probability 1/2.
	Flip bool
	// Jitter scales an image's brightness, contrast and saturation by
	// factors drawn uniformly from [1−Jitter, 1+Jitter]: brightness
	// multiplies every value; contrast moves every value away from the
	// image's mean grey (by the factor, towards it when below 1); and
	// saturation moves every pixel's channels away from the pixel's grey.
	// Grey is luma, 0.299·red + 0.587·green + 0.114·blue, for three
	// channels and the mean of the channels otherwise; saturation changes
	// three-channel images only. 0 means no jitter; at most 1.
	Jitter float64
}

// validate reports whether a fits the images of s.
func (a Augment) validate(s *ClassSet) error {
	if a.Pad < 0 || a.Pad > min(s.Rows, s.Cols) {
		return fmt.Errorf("tasks: episodes: Augment.Pad = %d, want 0 to %d (the side of the %d×%d images)", a.Pad, min(s.Rows, s.Cols), s.Rows, s.Cols)
	}
	if !(a.Jitter >= 0 && a.Jitter <= 1) {
		return fmt.Errorf("tasks: episodes: Augment.Jitter = %v, want 0 to 1", a.Jitter)
	}
	return nil
}

// on reports whether a changes images.
func (a Augment) on() bool { return a.Pad > 0 || a.Flip || a.Jitter > 0 }

// batch augments every input of b, rows×cols images of ch channels, task
// by task, support before query.
func (a Augment) batch(rng *rand.Rand, b *Batch, rows, cols, ch int) {
	if !a.on() {
		return
	}
	in := b.In
	scratch := make([]float64, in)
	for t := range b.Tasks {
		for _, x := range [][]float64{b.SupportX[t*b.Support*in : (t+1)*b.Support*in], b.QueryX[t*b.Query*in : (t+1)*b.Query*in]} {
			for k := 0; k < len(x); k += in {
				a.apply(rng, x[k:k+in], scratch, rows, cols, ch)
			}
		}
	}
}

// apply augments img, rows×cols pixels of ch values in [0, 1], channels
// last, in place; scratch holds at least len(img) values.
func (a Augment) apply(rng *rand.Rand, img, scratch []float64, rows, cols, ch int) {
	if a.Pad > 0 {
		dy, dx := rng.IntN(2*a.Pad+1)-a.Pad, rng.IntN(2*a.Pad+1)-a.Pad
		shift(img, scratch, rows, cols, ch, dy, dx)
	}
	if a.Jitter > 0 {
		factor := func() float64 { return 1 + a.Jitter*(2*rng.Float64()-1) }
		bright, contrast, sat := factor(), factor(), factor()
		for i, v := range img {
			img[i] = clamp01(bright * v)
		}
		var mean float64
		for p := 0; p < len(img); p += ch {
			mean += grey(img[p : p+ch])
		}
		mean /= float64(len(img) / ch)
		for i, v := range img {
			img[i] = clamp01(mean + contrast*(v-mean))
		}
		if ch == 3 {
			for p := 0; p < len(img); p += 3 {
				px := img[p : p+3]
				g := grey(px)
				for k, v := range px {
					px[k] = clamp01(g + sat*(v-g))
				}
			}
		}
	}
	if a.Flip && rng.IntN(2) == 1 {
		flip(img, rows, cols, ch)
	}
}

// shift sets pixel (r, c) of img to what was at (r+dy, c+dx), black
// beyond the edges: the crop at offset (Pad+dy, Pad+dx) of img padded by
// Pad.
func shift(img, scratch []float64, rows, cols, ch, dy, dx int) {
	src := scratch[:len(img)]
	copy(src, img)
	clear(img)
	for r := max(0, -dy); r < min(rows, rows-dy); r++ {
		lo, hi := max(0, -dx), min(cols, cols-dx)
		if lo >= hi {
			return
		}
		copy(img[(r*cols+lo)*ch:(r*cols+hi)*ch], src[((r+dy)*cols+lo+dx)*ch:((r+dy)*cols+hi+dx)*ch])
	}
}

// flip mirrors img, rows×cols pixels of ch values, left to right.
func flip(img []float64, rows, cols, ch int) {
	for r := range rows {
		row := img[r*cols*ch : (r+1)*cols*ch]
		for c := range cols / 2 {
			p, q := row[c*ch:(c+1)*ch], row[(cols-1-c)*ch:(cols-c)*ch]
			for k := range ch {
				p[k], q[k] = q[k], p[k]
			}
		}
	}
}

// grey returns the grey of a pixel: its luma (ITU-R BT.601 weights) for
// three channels, the mean of its channels otherwise.
func grey(px []float64) float64 {
	if len(px) == 3 {
		return 0.299*px[0] + 0.587*px[1] + 0.114*px[2]
	}
	var s float64
	for _, v := range px {
		s += v
	}
	return s / float64(len(px))
}

func clamp01(v float64) float64 { return math.Min(math.Max(v, 0), 1) }
