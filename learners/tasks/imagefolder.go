package tasks

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // registers GIF with image.Decode
	_ "image/jpeg"
	_ "image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ImageFolder reads a few-shot dataset of image files, grey or colour, of
// any size, into a ClassSet of Side×Side images of Channels channels. The
// directory given to Load is laid out in one of three ways:
//
//	dir/class/image               one folder per class
//	dir/split/class/image         split train, val and test
//	dir/images/image, dir/split.csv
//
// With one folder per class, the caller splits the classes, with
// SplitClasses. The second layout, that of CIFAR-FS, FC100 and
// tieredImageNet as folders, gives the meta-training, meta-validation and
// meta-test splits. The third is that of miniImageNet (Ravi and
// Larochelle 2017, "Optimization as a Model for Few-Shot Learning"):
// dir/images holds the image files and train.csv, val.csv and test.csv
// give the splits, each a header line "filename,label", then one line per
// image naming a file of dir/images and its class; files no line names are
// ignored.
//
// Load takes dir for the miniImageNet layout when it holds train.csv,
// val.csv or test.csv, and then those three and the images folder must
// all be there; for split folders when it holds a train, val or test
// folder, and then all three must be there and no other folder; else for
// class folders. Other files beside the folders (a README, a licence) are
// ignored, and so are hidden entries (names starting with a dot) and
// __MACOSX folders. Inside a class folder, every file must be an image
// named *.png, *.jpg, *.jpeg or *.gif (in any case); any other file or a
// folder there is an error.
//
// Classes are named by their folder or label, and ordered by split
// (train, val, test), then by name; a class's images are ordered by file
// name, so a dataset always loads the same way. A class name in two
// splits is an error.
//
// An image is decoded by its contents, PNG, JPEG or GIF (the first frame),
// with its colours as stored, any transparency dropped (as PIL's
// convert("RGB") does), and the whole image is resized to Side×Side by
// area averaging (see Omniglot), a non-square image being stretched, as
// the usual miniImageNet preprocessing resizes whole images (with PIL's
// Lanczos filter). With Channels 3 a pixel is its red, green and blue; a
// grey image gives three equal channels. With Channels 1 it is the luma,
// 0.299·red + 0.587·green + 0.114·blue (ITU-R BT.601, as PIL's
// convert("L")).
//
// Memory is bounded before it is spent. The decoded images take
// N·Side·Side·Channels bytes, N the number of images; a dataset needing
// more than MaxBytes is refused after listing, before any image is read,
// with an error giving both sizes. Decoding runs on one goroutine per CPU
// (the result does not depend on their number), each holding one image
// decoded at its stored size, up to MaxPixels pixels (about 134 MB at the
// default): a file larger than 16 MiB, or an image declaring more than
// MaxPixels pixels in its header, is an error before decoding. A
// directory with more than MaxEntries entries is an error.
//
// Every error names the file or directory concerned: a missing or
// unreadable file, one that does not decode, a class folder without
// images; errors in a csv file are *CSVError values giving its path and
// line (a malformed line, a wrong header, a line naming a file that
// dir/images does not hold or that another line names).
//
// The zero value is the default configuration; each field's default is
// given in its comment.
type ImageFolder struct {
	// Side is the side of the square output images; default 84, the
	// size of miniImageNet and tieredImageNet in few-shot learning (use
	// 32 for CIFAR-FS and FC100); at most 1024.
	Side int
	// Channels is 3 (the default) for colour images, 1 for grey.
	Channels int
	// MaxBytes bounds the memory of the decoded images; default 4 GiB
	// (miniImageNet's 60,000 images of 84×84×3 take 1.3 GB).
	MaxBytes int64
	// MaxEntries is the most entries a directory may hold; default
	// 1,048,576 (miniImageNet's images folder holds 60,000).
	MaxEntries int
	// MaxPixels is the largest width·height an image may declare;
	// default 33,554,432 (8192×4096).
	MaxPixels int
}

// FolderData is a dataset that ImageFolder.Load read.
type FolderData struct {
	Set *ClassSet
	// Train, Val and Test list the class ids of the meta-training,
	// meta-validation and meta-test splits, in increasing order, when
	// the files give them (split folders, miniImageNet's csv files); nil
	// when they do not (class folders), for the caller to split with
	// SplitClasses(rng, ClassIDs(Set.Classes()), ...).
	Train, Val, Test []int
}

// splitNames are the names of the splits, in class order.
var splitNames = [3]string{"train", "val", "test"}

// imageExts are the extensions of image files in class folders.
var imageExts = []string{".gif", ".jpeg", ".jpg", ".png"}

// folderClass is a class being loaded: its name, and its images, files
// of dir.
type folderClass struct {
	name, dir string
	files     []string
}

// folderLoad is the state of a Load: the configuration, with its
// defaults, and the images listed so far.
type folderLoad struct {
	ImageFolder
	images int64
}

// keep counts n more images and reports whether their names are worth
// keeping: once the images need more than MaxBytes, Load counts them, to
// report the size needed, without keeping their names.
func (l *folderLoad) keep(n int) bool {
	l.images += int64(n)
	return l.images <= l.MaxBytes/l.imageBytes()
}

func (l *folderLoad) imageBytes() int64 { return int64(l.Side * l.Side * l.Channels) }

// Load reads the dataset under dir. It returns an error naming the path
// concerned if a directory cannot be read or is laid out wrongly, a class
// has no images, a file is missing, cannot be read or decoded, a csv file
// is malformed, or a limit is exceeded.
func (f ImageFolder) Load(dir string) (*FolderData, error) {
	l := &folderLoad{ImageFolder: f}
	if err := l.defaults(); err != nil {
		return nil, err
	}
	dirs, files, err := listDir("image folder", dir, l.MaxEntries)
	if err != nil {
		return nil, err
	}
	has := func(names []string, name string) bool { _, ok := slices.BinarySearch(names, name); return ok }
	var (
		splits [3][]folderClass
		split  bool
	)
	switch {
	case has(files, "train.csv") || has(files, "val.csv") || has(files, "test.csv"):
		split = true
		if splits, err = l.csvLayout(dir, dirs); err != nil {
			return nil, err
		}
	case has(dirs, "train") || has(dirs, "val") || has(dirs, "test"):
		split = true
		for _, d := range dirs {
			if !slices.Contains(splitNames[:], d) {
				return nil, fmt.Errorf("tasks: image folder: %s: a folder beside train, val and test", filepath.Join(dir, d))
			}
		}
		for i, s := range splitNames {
			if !has(dirs, s) {
				return nil, fmt.Errorf("tasks: image folder: %s: no %s folder beside the others", dir, s)
			}
			if splits[i], err = l.classFolders(filepath.Join(dir, s)); err != nil {
				return nil, err
			}
		}
	default:
		if splits[0], err = l.classFolders(dir); err != nil {
			return nil, err
		}
	}
	if need := l.images * l.imageBytes(); l.images > l.MaxBytes/l.imageBytes() {
		return nil, fmt.Errorf("tasks: image folder: %s: %d images of %d×%d×%d bytes need %d bytes, more than MaxBytes = %d",
			dir, l.images, l.Side, l.Side, l.Channels, need, l.MaxBytes)
	}

	size := l.Side * l.Side * l.Channels
	set := &ClassSet{Rows: l.Side, Cols: l.Side, Channels: l.Channels}
	var (
		paths   []string
		ids     [3][]int
		inSplit = map[string]string{} // class name → its split
	)
	for i, classes := range splits {
		ids[i] = []int{}
		for _, c := range classes {
			if s, dup := inSplit[c.name]; dup {
				return nil, fmt.Errorf("tasks: image folder: %s: class %q is in both %s and %s", dir, c.name, s, splitNames[i])
			}
			inSplit[c.name] = splitNames[i]
			ids[i] = append(ids[i], set.Classes())
			imgs := make([]int, len(c.files))
			for k, name := range c.files {
				imgs[k] = len(paths)
				paths = append(paths, filepath.Join(c.dir, name))
			}
			set.Images = append(set.Images, imgs)
			set.Names = append(set.Names, c.name)
		}
	}
	set.Pixels = make([]byte, len(paths)*size)
	err = forEach(len(paths), func(i int) error {
		b, err := readImageFile("image folder", paths[i])
		if err != nil {
			return err
		}
		if err := decodeImage(set.Pixels[i*size:(i+1)*size], b, l.Side, l.Channels, l.MaxPixels); err != nil {
			return fmt.Errorf("tasks: image folder: %s: %v", paths[i], err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	data := &FolderData{Set: set}
	if split {
		data.Train, data.Val, data.Test = ids[0], ids[1], ids[2]
	}
	return data, nil
}

// defaults sets the zero fields to their defaults and checks them all.
func (l *folderLoad) defaults() error {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.Side, 84)
	def(&l.Channels, 3)
	def(&l.MaxEntries, 1<<20)
	def(&l.MaxPixels, 1<<25)
	if l.MaxBytes == 0 {
		l.MaxBytes = 4 << 30
	}
	switch {
	case l.Side < 1 || l.Side > maxImageSide:
		return fmt.Errorf("tasks: image folder: Side = %d, want 1 to %d", l.Side, maxImageSide)
	case l.Channels != 1 && l.Channels != 3:
		return fmt.Errorf("tasks: image folder: Channels = %d, want 1 or 3", l.Channels)
	case l.MaxBytes < 0 || l.MaxEntries < 0 || l.MaxPixels < 0:
		return fmt.Errorf("tasks: image folder: MaxBytes, MaxEntries and MaxPixels must be positive, got %d, %d, %d", l.MaxBytes, l.MaxEntries, l.MaxPixels)
	}
	return nil
}

// classFolders lists the classes of dir, one folder each.
func (l *folderLoad) classFolders(dir string) ([]folderClass, error) {
	names, _, err := listDir("image folder", dir, l.MaxEntries)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("tasks: image folder: %s: no class folders", dir)
	}
	classes := make([]folderClass, len(names))
	for i, name := range names {
		cdir := filepath.Join(dir, name)
		sub, files, err := listDir("image folder", cdir, l.MaxEntries)
		switch {
		case err != nil:
			return nil, err
		case len(sub) > 0:
			return nil, fmt.Errorf("tasks: image folder: %s: a folder in a class folder, where images are expected", filepath.Join(cdir, sub[0]))
		case len(files) == 0:
			return nil, fmt.Errorf("tasks: image folder: %s: no images", cdir)
		}
		for _, f := range files {
			if !slices.Contains(imageExts, strings.ToLower(filepath.Ext(f))) {
				return nil, fmt.Errorf("tasks: image folder: %s: not an image file (want *.png, *.jpg, *.jpeg or *.gif)", filepath.Join(cdir, f))
			}
		}
		if !l.keep(len(files)) {
			files = nil
		}
		classes[i] = folderClass{name: name, dir: cdir, files: files}
	}
	return classes, nil
}

// csvPos is a line of a csv file.
type csvPos struct {
	path string
	line int
}

// csvLayout reads miniImageNet's split files, train.csv, val.csv and
// test.csv, of dir, whose folders are dirs.
func (l *folderLoad) csvLayout(dir string, dirs []string) ([3][]folderClass, error) {
	var splits [3][]folderClass
	idir := filepath.Join(dir, "images")
	if _, ok := slices.BinarySearch(dirs, "images"); !ok {
		return splits, fmt.Errorf("tasks: image folder: %s: no images folder beside the csv files", dir)
	}
	_, images, err := listDir("image folder", idir, l.MaxEntries)
	if err != nil {
		return splits, err
	}
	named := map[string]csvPos{} // file → the line naming it
	for i, s := range splitNames {
		if splits[i], err = l.readSplitCSV(filepath.Join(dir, s+".csv"), idir, images, named); err != nil {
			return splits, err
		}
	}
	return splits, nil
}

// readSplitCSV reads one split file, whose lines name files of idir, the
// sorted images; named records the lines that name each file.
func (l *folderLoad) readSplitCSV(path, idir string, images []string, named map[string]csvPos) ([]folderClass, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tasks: image folder: %v", err)
	}
	defer f.Close()
	cr := csv.NewReader(&lineLimit{r: f, max: 1 << 16, line: 1, path: path})
	cr.FieldsPerRecord = -1 // checked below, with a clearer message
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, &CSVError{Path: path, Err: errors.New("empty file, want the header line filename,label")}
	}
	if err != nil {
		return nil, csvReadError(err, path)
	}
	if len(header) != 2 || strings.TrimSpace(strings.TrimPrefix(header[0], "\uFEFF")) != "filename" || strings.TrimSpace(header[1]) != "label" {
		line, _ := cr.FieldPos(0)
		return nil, &CSVError{Path: path, Line: line, Err: fmt.Errorf("header %q, want filename,label", strings.Join(header, ","))}
	}
	files := map[string][]string{} // label → files
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvReadError(err, path)
		}
		line, _ := cr.FieldPos(0)
		fail := func(format string, args ...any) error {
			return &CSVError{Path: path, Line: line, Err: fmt.Errorf(format, args...)}
		}
		if len(rec) != 2 {
			return nil, fail("%d fields, want 2 (filename,label)", len(rec))
		}
		name, label := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1])
		switch _, found := slices.BinarySearch(images, name); {
		case label == "":
			return nil, fail("no label")
		case name == "" || strings.ContainsAny(name, `/\`):
			return nil, fail("file name %q, want the name of a file in %s", name, idir)
		case !found:
			return nil, fail("%s: no such file", filepath.Join(idir, name))
		}
		if p, dup := named[name]; dup {
			return nil, fail("%s is also on line %d of %s", name, p.line, p.path)
		}
		named[name] = csvPos{path, line}
		files[label] = append(files[label], name)
	}
	if len(files) == 0 {
		return nil, &CSVError{Path: path, Err: errors.New("no lines after the header")}
	}
	labels := make([]string, 0, len(files))
	for label := range files {
		labels = append(labels, label)
	}
	slices.Sort(labels)
	classes := make([]folderClass, len(labels))
	for i, label := range labels {
		fs := files[label]
		slices.Sort(fs)
		if !l.keep(len(fs)) {
			fs = nil
		}
		classes[i] = folderClass{name: label, dir: idir, files: fs}
	}
	return classes, nil
}

// decodeImage decodes an image file's bytes, in a format registered with
// package image (PNG, JPEG and GIF here), and resizes it into dst,
// side×side pixels of ch channels: red, green and blue for 3, luma for 1.
// An image declaring more than maxPixels pixels is an error before any
// pixel memory is allocated.
func decodeImage(dst, data []byte, side, ch, maxPixels int) error {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not a PNG, JPEG or GIF image: %v", err)
	}
	if w, h := cfg.Width, cfg.Height; w <= 0 || h <= 0 || w > maxPixels/h {
		return fmt.Errorf("%s image of %d×%d pixels, want at least 1×1 and at most %d pixels", format, w, h, maxPixels)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("corrupt %s image: %v", format, err)
	}
	b := img.Bounds()
	if w, h := b.Dx(), b.Dy(); w <= 0 || h <= 0 || w > maxPixels/h {
		return fmt.Errorf("%s image decodes to %d×%d pixels, want at least 1×1 and at most %d pixels", format, w, h, maxPixels)
	}
	boxResize(dst, b.Dx(), b.Dy(), ch, side, pixelRows(img, ch))
	return nil
}

// pixelRows returns a function filling buf with row y of img (counted
// from the top of its bounds): red, green and blue values in [0, 1] for
// ch 3, luma for ch 1.
func pixelRows(img image.Image, ch int) func(y int, buf []float64) {
	b := img.Bounds()
	w := b.Dx()
	rgb := make([]float64, 3*w)
	var palette [256][3]float64 // indices beyond the palette are black
	if p, ok := img.(*image.Paletted); ok {
		for i, c := range p.Palette[:min(len(p.Palette), 256)] {
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			palette[i] = [3]float64{pixelScale[n.R], pixelScale[n.G], pixelScale[n.B]}
		}
	}
	return func(y int, buf []float64) {
		y += b.Min.Y
		out := buf
		if ch == 1 {
			out = rgb
		}
		switch m := img.(type) {
		case *image.YCbCr:
			for x := range w {
				c := m.YCbCrAt(b.Min.X+x, y)
				r, g, bl := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
				out[3*x], out[3*x+1], out[3*x+2] = pixelScale[r], pixelScale[g], pixelScale[bl]
			}
		case *image.Gray:
			for x, v := range m.Pix[m.PixOffset(b.Min.X, y):][:w] {
				out[3*x], out[3*x+1], out[3*x+2] = pixelScale[v], pixelScale[v], pixelScale[v]
			}
		case *image.NRGBA:
			px := m.Pix[m.PixOffset(b.Min.X, y):][:4*w]
			for x := range w {
				out[3*x], out[3*x+1], out[3*x+2] = pixelScale[px[4*x]], pixelScale[px[4*x+1]], pixelScale[px[4*x+2]]
			}
		case *image.Paletted:
			for x, v := range m.Pix[m.PixOffset(b.Min.X, y):][:w] {
				copy(out[3*x:3*x+3], palette[v][:])
			}
		default:
			for x := range w {
				c := color.NRGBA64Model.Convert(img.At(b.Min.X+x, y)).(color.NRGBA64)
				out[3*x], out[3*x+1], out[3*x+2] = float64(c.R)/0xffff, float64(c.G)/0xffff, float64(c.B)/0xffff
			}
		}
		if ch == 1 {
			for x := range w {
				buf[x] = 0.299*rgb[3*x] + 0.587*rgb[3*x+1] + 0.114*rgb[3*x+2]
			}
		}
	}
}
