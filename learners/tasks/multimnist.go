package tasks

import (
	"fmt"
	"math/rand/v2"
)

// The MultiMNIST construction of Sener and Koltun (2018): 28×28 digits on a
// 36×36 canvas, the second one offset by 6 pixels down and right, resized
// back to 28×28.
const (
	multiMNISTSide   = 28
	multiMNISTCanvas = 36
	multiMNISTShift  = 6
)

// MultiMNIST returns n examples of MultiMNIST, the two-task benchmark of
// Sener and Koltun (2018), "Multi-Task Learning as Multi-Objective
// Optimization", built after Sabour, Frosst and Hinton (2017), "Dynamic
// Routing Between Capsules", from the 28×28 images of src.
//
// Example k overlays two digits of src on a black 36×36 canvas: image
// k mod src.N at the top left (canvas rows and columns 0 to 27) and an
// image drawn uniformly from src with rng at the bottom right (rows and
// columns 6 to 33); where they overlap a pixel is the maximum of the two.
// The canvas is then resized to 28×28 by nearest-neighbour sampling as
// PIL does it: output pixel (r, c) is canvas pixel (⌊(r+½)·36/28⌋,
// ⌊(c+½)·36/28⌋). The table has 784 features, the pixels in row-major
// order scaled to [0, 1], and two Multiclass targets, "left" and "right",
// the labels of the top-left and bottom-right digits, with src.Classes
// classes.
//
// With n = src.N every image of src is a top-left digit once, as in Sener
// and Koltun's data loader. Both digits come from src alone: build the
// training set from MNIST's training images and the test set from its
// test images. MultiMNIST returns an error if rng is nil, n is not
// positive (or too large to allocate), or src is invalid or not 28×28.
func MultiMNIST(rng *rand.Rand, src *ImageSet, n int) (*Table, error) {
	if rng == nil {
		return nil, fmt.Errorf("tasks: MultiMNIST: nil rng")
	}
	if err := src.Validate(); err != nil {
		return nil, err
	}
	const side, canvas, shift, in = multiMNISTSide, multiMNISTCanvas, multiMNISTShift, multiMNISTSide * multiMNISTSide
	if src.Rows != side || src.Cols != side {
		return nil, fmt.Errorf("tasks: MultiMNIST: images of %d×%d pixels, want %d×%d", src.Rows, src.Cols, side, side)
	}
	if n <= 0 || n > maxTableValues/(in+2) {
		return nil, fmt.Errorf("tasks: MultiMNIST: %d examples, want 1 to %d", n, maxTableValues/(in+2))
	}
	// Output row or column i samples canvas row or column pick[i].
	var pick [side]int
	for i := range pick {
		pick[i] = (2*i + 1) * canvas / (2 * side)
	}
	tab := &Table{N: n, In: in, X: make([]float64, n*in),
		Targets: []Target{{Name: "left", Kind: Multiclass, Classes: src.Classes}, {Name: "right", Kind: Multiclass, Classes: src.Classes}},
		Y:       [][]float64{make([]float64, n), make([]float64, n)}}
	var board [canvas * canvas]byte
	for k := 0; k < n; k++ {
		left, right := k%src.N, rng.IntN(src.N)
		clear(board[:])
		for r, img := range [2][]byte{src.Image(left), src.Image(right)} {
			off := r * shift
			for i := 0; i < side; i++ {
				row := board[(i+off)*canvas+off:]
				for j, p := range img[i*side : (i+1)*side] {
					row[j] = max(row[j], p)
				}
			}
		}
		x := tab.X[k*in : (k+1)*in]
		for i, ci := range pick {
			for j, cj := range pick {
				x[i*side+j] = float64(board[ci*canvas+cj]) / 255
			}
		}
		tab.Y[0][k], tab.Y[1][k] = float64(src.Labels[left]), float64(src.Labels[right])
	}
	return tab, nil
}
