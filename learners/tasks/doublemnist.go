package tasks

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
)

// DoubleMNISTClasses is the number of DoubleMNIST classes, "00" to "99".
const DoubleMNISTClasses = 100

// maxDoubleMNISTPerClass bounds perClass: 100 classes of 28×28 images
// then take at most 784 MB.
const maxDoubleMNISTPerClass = 10000

// DoubleMNIST returns perClass images of each of the 100 DoubleMNIST
// classes, two digits of src side by side: the two-digit numbers "00" to
// "99" of Sun's Multi-digit MNIST (https://github.com/shaohua0116/MultiDigitMNIST),
// the few-shot benchmark that Torchmeta distributes, with class
// c = 10·left + right.
//
// An image of class c puts a random image of digit ⌊c/10⌋ (drawn
// uniformly from src's images of that digit with rng) left of a random
// image of digit c mod 10, making a Rows × 2·Cols image, and halves its
// width by averaging each pair of horizontally adjacent pixels, rounding
// half up: output pixel (r, j) is (w[r][2j] + w[r][2j+1] + 1)/2 of the wide
// image w. The result has src's size, 28×28 for MNIST, so one ConvNet
// serves MNIST, DoubleMNIST and Omniglot; each digit is squeezed to half
// its width (MNIST's digits, about 20 pixels wide in a 28-pixel box, become
// about 10 in 14). Sun's released images are larger, 64×64, with 1,000
// per class; these are built here, from any seed.
//
// No two images of one class use the same pair of src images. The images
// are in class order (perClass of class 0, then of class 1, ...) and
// Labels are the classes; NewClassSet(set, DoubleMNISTNames()) indexes
// them for Episodes, and DoubleMNISTSplit gives the standard class split.
// Build from MNIST's training images (60,000, about 6,000 per digit);
// every class of every split then uses digit images that meta-training
// also sees, but in other pairs: what is new at test time is the pair.
//
// DoubleMNIST returns an error if rng is nil, src is invalid, does not
// have 10 classes or lacks a digit, or perClass is not in 1 to 10,000 or
// exceeds the number of distinct pairs of a class.
func DoubleMNIST(rng *rand.Rand, src *ImageSet, perClass int) (*ImageSet, error) {
	if rng == nil {
		return nil, errors.New("tasks: DoubleMNIST: nil rng")
	}
	if err := src.Validate(); err != nil {
		return nil, err
	}
	if src.Classes != 10 {
		return nil, fmt.Errorf("tasks: DoubleMNIST: source has %d classes, want the 10 digits", src.Classes)
	}
	if perClass < 1 || perClass > maxDoubleMNISTPerClass {
		return nil, fmt.Errorf("tasks: DoubleMNIST: %d images per class, want 1 to %d", perClass, maxDoubleMNISTPerClass)
	}
	var byDigit [10][]int
	for i, l := range src.Labels {
		byDigit[l] = append(byDigit[l], i)
	}
	for d, imgs := range byDigit {
		if len(imgs) == 0 {
			return nil, fmt.Errorf("tasks: DoubleMNIST: source has no image of digit %d", d)
		}
	}
	for c := range DoubleMNISTClasses {
		if pairs := len(byDigit[c/10]) * len(byDigit[c%10]); pairs < perClass {
			return nil, fmt.Errorf("tasks: DoubleMNIST: class %02d has %d distinct pairs of source images, fewer than %d images per class", c, pairs, perClass)
		}
	}
	rows, cols := src.Rows, src.Cols
	size := rows * cols
	if perClass > maxTableValues/(DoubleMNISTClasses*size) {
		return nil, fmt.Errorf("tasks: DoubleMNIST: %d images per class of %d×%d pixels are too many", perClass, rows, cols)
	}
	n := DoubleMNISTClasses * perClass
	out := &ImageSet{N: n, Rows: rows, Cols: cols, Classes: DoubleMNISTClasses,
		Pixels: make([]byte, n*size), Labels: make([]byte, n)}
	wide := make([]byte, 2*cols)
	used := make(map[[2]int]bool, perClass) // pairs drawn for the current class; lookups only
	for c := range DoubleMNISTClasses {
		left, right := byDigit[c/10], byDigit[c%10]
		clear(used)
		for k := 0; k < perClass; k++ {
			var pair [2]int
			for {
				pair = [2]int{left[rng.IntN(len(left))], right[rng.IntN(len(right))]}
				if !used[pair] {
					break
				}
			}
			used[pair] = true
			i := c*perClass + k
			out.Labels[i] = byte(c)
			a, b, dst := src.Image(pair[0]), src.Image(pair[1]), out.Image(i)
			for r := 0; r < rows; r++ {
				copy(wide[:cols], a[r*cols:(r+1)*cols])
				copy(wide[cols:], b[r*cols:(r+1)*cols])
				for j := 0; j < cols; j++ {
					dst[r*cols+j] = byte((int(wide[2*j]) + int(wide[2*j+1]) + 1) / 2)
				}
			}
		}
	}
	return out, nil
}

// DoubleMNISTNames returns the names of the DoubleMNIST classes, "00" to
// "99", for NewClassSet.
func DoubleMNISTNames() []string {
	names := make([]string, DoubleMNISTClasses)
	for c := range names {
		names[c] = fmt.Sprintf("%02d", c)
	}
	return names
}

// The class split of Sun's Multi-digit MNIST as distributed by Torchmeta
// (torchmeta/datasets/assets/doublemnist/{train,val,test}.json).
var (
	doubleMNISTTrain = []int{0, 1, 4, 5, 6, 8, 9, 11, 12, 13, 14, 15, 16, 18, 19, 20,
		21, 23, 24, 26, 28, 29, 30, 31, 33, 35, 37, 38, 41, 42, 43, 44,
		45, 50, 51, 53, 54, 56, 59, 60, 62, 63, 65, 69, 70, 72, 74, 75,
		76, 77, 79, 81, 82, 84, 85, 87, 88, 89, 90, 91, 94, 95, 97, 98}
	doubleMNISTVal  = []int{3, 7, 10, 22, 27, 34, 39, 40, 48, 52, 58, 61, 64, 71, 93, 99}
	doubleMNISTTest = []int{2, 17, 25, 32, 36, 46, 47, 49, 55, 57, 66, 67, 68, 73, 78, 80, 83, 86, 92, 96}
)

// DoubleMNISTSplit returns the standard split of the 100 DoubleMNIST
// classes into 64 meta-training, 16 meta-validation and 20 meta-test
// classes: the lists of Sun's Multi-digit MNIST, as Torchmeta distributes
// them, fixed rather than drawn, so results compare across runs and
// programs. Every call returns new slices, sorted.
//
//	train: 00 01 04 05 06 08 09 11 12 13 14 15 16 18 19 20 21 23 24 26 28 29
//	       30 31 33 35 37 38 41 42 43 44 45 50 51 53 54 56 59 60 62 63 65 69
//	       70 72 74 75 76 77 79 81 82 84 85 87 88 89 90 91 94 95 97 98
//	val:   03 07 10 22 27 34 39 40 48 52 58 61 64 71 93 99
//	test:  02 17 25 32 36 46 47 49 55 57 66 67 68 73 78 80 83 86 92 96
func DoubleMNISTSplit() (train, val, test []int) {
	return slices.Clone(doubleMNISTTrain), slices.Clone(doubleMNISTVal), slices.Clone(doubleMNISTTest)
}

// MNISTSplit returns a split of the 10 MNIST digits for 5-way tasks over
// digits: meta-training on 0 to 4, meta-testing on 5 to 9, and no
// meta-validation classes (there are too few digits for three splits of
// five). With five classes in a split, every 5-way task uses all of them
// and tasks differ in the labels given to the digits and in the images.
func MNISTSplit() (train, val, test []int) {
	return []int{0, 1, 2, 3, 4}, []int{}, []int{5, 6, 7, 8, 9}
}
