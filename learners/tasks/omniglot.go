package tasks

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
)

// Omniglot reads the Omniglot dataset of Lake, Salakhutdinov and
// Tenenbaum (2015), "Human-level concept learning through probabilistic
// program induction": 1,623 handwritten characters of 50 alphabets, 20
// drawings each, as users download it (images_background.zip with 964
// characters and images_evaluation.zip with 659). Each root given to Load
// is a directory laid out as
//
//	root/alphabet/character/NNNN_NN.png
//
// and each character directory is a class, named "alphabet/character".
// Classes are ordered by root, then alphabet name, then character name,
// and a class's images by file name, so a directory tree always loads the
// same way. Hidden entries (names starting with a dot) and __MACOSX
// directories are skipped; any other file where a directory is expected,
// directory where an image is expected, or image file not named *.png is
// an error naming its path.
//
// An image is decoded as a PNG (any colour model; transparent pixels count
// as white paper), turned into ink, 1 − luminance, so that Omniglot's
// black strokes on white become high values on a zero background, and
// resized to Size×Size by area averaging: an output pixel is the mean ink
// of the source region it covers, whole or in part (Finn et al. 2017 used
// PIL's Lanczos filter to 28×28 instead). A non-square image is stretched
// to a square. Intensities are stored as ink·255 rounded, as in ImageSet.
//
// With Rotations, each character also gives three more classes, its
// drawings rotated by 90°, 180° and 270° anticlockwise, the augmentation of
// Santoro et al. (2016) and Finn et al. (2017): class 4c + k is character
// c rotated by k quarter turns, named "alphabet/character/rot90" and so
// on (k = 0 keeps the plain name). Split the characters, not the classes,
// so that no character is in two splits: SplitClasses over
// ClassIDs(Classes()/4), then WithRotations of each part.
//
// Memory is bounded before it is spent: a directory with more than
// MaxEntries entries, more than MaxImages images in all, a file larger than
// 16 MiB or a PNG declaring more than MaxPixels pixels (checked with
// png.DecodeConfig before decoding) is an error.
//
// The zero value is the default configuration; each field's default is
// given in its comment.
type Omniglot struct {
	// Size is the side of the square output images; default 28, at most
	// 1024.
	Size int
	// Rotations adds the rotated classes.
	Rotations bool
	// MinImages is the fewest images a character may have; default 1.
	// Set it to the episodes' Shots + Query to have a short character
	// reported when loading rather than when sampling.
	MinImages int
	// MaxEntries is the most entries a directory may hold; default
	// 10,000 (Omniglot's largest holds 55).
	MaxEntries int
	// MaxImages is the most images Load reads; default 262,144
	// (Omniglot has 32,460).
	MaxImages int
	// MaxPixels is the largest width·height a PNG may declare; default
	// 4,194,304 (2048×2048; Omniglot's are 105×105).
	MaxPixels int
}

func (o Omniglot) withDefaults() Omniglot {
	if o.Size == 0 {
		o.Size = 28
	}
	if o.MinImages == 0 {
		o.MinImages = 1
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = 10000
	}
	if o.MaxImages == 0 {
		o.MaxImages = 1 << 18
	}
	if o.MaxPixels == 0 {
		o.MaxPixels = 1 << 22
	}
	return o
}

// LoadOmniglot reads Omniglot from the given roots with the default
// configuration: Omniglot{}.Load(roots...).
func LoadOmniglot(roots ...string) (*ClassSet, error) { return Omniglot{}.Load(roots...) }

// glyphFile is one image to read, and the class it belongs to.
type glyphFile struct {
	path  string
	class int
}

// Load reads the character directories under the roots, in the order
// given, into a class set of Size×Size images. It returns an error naming
// the path concerned if a directory cannot be read or is laid out
// wrongly, a character has fewer than MinImages images (no images is
// always an error), two roots hold the same alphabet/character, an image
// cannot be read or decoded, or a limit is exceeded.
func (o Omniglot) Load(roots ...string) (*ClassSet, error) {
	o = o.withDefaults()
	if o.Size < 1 || o.Size > maxImageSide {
		return nil, fmt.Errorf("tasks: omniglot: Size = %d, want 1 to %d", o.Size, maxImageSide)
	}
	if o.MinImages < 1 || o.MaxEntries < 1 || o.MaxImages < 1 || o.MaxPixels < 1 {
		return nil, fmt.Errorf("tasks: omniglot: MinImages, MaxEntries, MaxImages and MaxPixels must be positive, got %d, %d, %d, %d",
			o.MinImages, o.MaxEntries, o.MaxImages, o.MaxPixels)
	}
	if len(roots) == 0 {
		return nil, errors.New("tasks: omniglot: no root directories")
	}
	var (
		names []string
		files []glyphFile
		seen  = map[string]string{} // class name → its root
	)
	for _, root := range roots {
		alphabets, err := listOmniglotDir(root, o.MaxEntries, true)
		if err != nil {
			return nil, err
		}
		if len(alphabets) == 0 {
			return nil, fmt.Errorf("tasks: omniglot: %s: no alphabet directories", root)
		}
		for _, alphabet := range alphabets {
			adir := filepath.Join(root, alphabet)
			chars, err := listOmniglotDir(adir, o.MaxEntries, true)
			if err != nil {
				return nil, err
			}
			if len(chars) == 0 {
				return nil, fmt.Errorf("tasks: omniglot: %s: no character directories", adir)
			}
			for _, char := range chars {
				cdir := filepath.Join(adir, char)
				imgs, err := listOmniglotDir(cdir, o.MaxEntries, false)
				if err != nil {
					return nil, err
				}
				if len(imgs) == 0 {
					return nil, fmt.Errorf("tasks: omniglot: %s: no PNG images", cdir)
				}
				if len(imgs) < o.MinImages {
					return nil, fmt.Errorf("tasks: omniglot: %s: %d images, fewer than MinImages = %d", cdir, len(imgs), o.MinImages)
				}
				name := alphabet + "/" + char
				if r, ok := seen[name]; ok {
					return nil, fmt.Errorf("tasks: omniglot: character %s is under both %s and %s", name, r, root)
				}
				seen[name] = root
				if len(imgs) > o.MaxImages-len(files) {
					return nil, fmt.Errorf("tasks: omniglot: %s: more than MaxImages = %d images in all", cdir, o.MaxImages)
				}
				for _, f := range imgs {
					files = append(files, glyphFile{filepath.Join(cdir, f), len(names)})
				}
				names = append(names, name)
			}
		}
	}

	side := o.Size * o.Size
	glyphs := make([]byte, len(files)*side)
	if err := decodeGlyphs(files, glyphs, o.Size, o.MaxPixels); err != nil {
		return nil, err
	}
	rotations := 1
	if o.Rotations {
		rotations = 4
	}
	set := &ClassSet{Rows: o.Size, Cols: o.Size, Pixels: make([]byte, 0, rotations*len(glyphs)),
		Images: make([][]int, rotations*len(names)), Names: make([]string, rotations*len(names))}
	for lo := 0; lo < len(files); {
		c := files[lo].class
		hi := lo + 1
		for hi < len(files) && files[hi].class == c {
			hi++
		}
		for k := range rotations {
			cls := rotations*c + k
			set.Names[cls] = names[c]
			if k > 0 {
				set.Names[cls] += fmt.Sprintf("/rot%d", 90*k)
			}
			for i := lo; i < hi; i++ {
				set.Images[cls] = append(set.Images[cls], len(set.Pixels)/side)
				set.Pixels = append(set.Pixels, glyphs[i*side:(i+1)*side]...)
				rotateQuarters(set.Pixels[len(set.Pixels)-side:], o.Size, k)
			}
		}
		lo = hi
	}
	return set, nil
}

// WithRotations returns the class ids of the four rotations of each
// character in chars, in a class set loaded with Rotations: 4c, 4c+1,
// 4c+2 and 4c+3 for each c, in the order of chars.
func WithRotations(chars []int) []int {
	out := make([]int, 0, 4*len(chars))
	for _, c := range chars {
		out = append(out, 4*c, 4*c+1, 4*c+2, 4*c+3)
	}
	return out
}

// OmniglotSplit returns the meta-training and meta-test classes of a class
// set of chars characters loaded with Rotations: as in Vinyals et al.
// (2016), 1,200 of the 1,623 characters (the same share of a smaller set),
// drawn at random with rng, for meta-training and the rest for meta-test,
// each with its four rotations as classes (WithRotations), in increasing
// order. Fewer than two characters is an error.
func OmniglotSplit(rng *rand.Rand, chars int) (train, test []int, err error) {
	if chars < 2 {
		return nil, nil, fmt.Errorf("tasks: omniglot: %d characters, too few to split", chars)
	}
	if rng == nil {
		return nil, nil, fmt.Errorf("tasks: OmniglotSplit: nil rng")
	}
	cut := min(1200, chars*1200/1623)
	ids := rng.Perm(chars)
	a, b := ids[:cut], ids[cut:]
	slices.Sort(a)
	slices.Sort(b)
	return WithRotations(a), WithRotations(b), nil
}

// listOmniglotDir returns the names of the entries of dir, sorted, skipping
// hidden entries and __MACOSX: the directories if dirs is set, else the
// *.png files. Any other entry is an error, and so are more than limit
// entries.
func listOmniglotDir(dir string, limit int, dirs bool) ([]string, error) {
	subdirs, files, err := listDir("omniglot", dir, limit)
	switch {
	case err != nil:
		return nil, err
	case dirs && len(files) > 0:
		return nil, fmt.Errorf("tasks: omniglot: %s: a file where a directory is expected (the layout is root/alphabet/character/*.png)", filepath.Join(dir, files[0]))
	case dirs:
		return subdirs, nil
	case len(subdirs) > 0:
		return nil, fmt.Errorf("tasks: omniglot: %s: a directory where PNG images are expected (the layout is root/alphabet/character/*.png; is the root the directory that holds the alphabets?)", filepath.Join(dir, subdirs[0]))
	}
	for _, name := range files {
		if !strings.EqualFold(filepath.Ext(name), ".png") {
			return nil, fmt.Errorf("tasks: omniglot: %s: not a PNG file (the layout is root/alphabet/character/*.png)", filepath.Join(dir, name))
		}
	}
	return files, nil
}

// decodeGlyphs reads and decodes files into consecutive size×size images
// of out, on as many goroutines as there are CPUs, and returns the error
// of the first file, in order, that fails.
func decodeGlyphs(files []glyphFile, out []byte, size, maxPixels int) error {
	return forEach(len(files), func(i int) error {
		path := files[i].path
		data, err := readImageFile("omniglot", path)
		if err != nil {
			return err
		}
		g, err := decodeGlyph(data, size, maxPixels)
		if err != nil {
			return fmt.Errorf("tasks: omniglot: %s: %v", path, err)
		}
		copy(out[i*size*size:(i+1)*size*size], g)
		return nil
	})
}

// decodeGlyph decodes a PNG into a size×size image of ink intensities,
// 0 to 255: the path from a file's bytes to an Omniglot image. An image
// declaring more than maxPixels pixels is an error before any pixel
// memory is allocated.
func decodeGlyph(data []byte, size, maxPixels int) ([]byte, error) {
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not a PNG: %v", err)
	}
	w, h := cfg.Width, cfg.Height
	if w <= 0 || h <= 0 || w > maxPixels/h {
		return nil, fmt.Errorf("PNG of %d×%d pixels, want at least 1×1 and at most %d pixels", w, h, maxPixels)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("corrupt PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		return nil, fmt.Errorf("PNG declares %d×%d pixels but decodes to %d×%d", w, h, b.Dx(), b.Dy())
	}
	ink, out := inkOf(img), make([]byte, size*size)
	boxResize(out, w, h, 1, size, func(y int, buf []float64) { copy(buf, ink[y*w:(y+1)*w]) })
	return out, nil
}

// inkOf returns the ink of each pixel of img, row-major: 1 − luminance,
// in [0, 1], with the image composed over white paper.
func inkOf(img image.Image) []float64 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	ink := make([]float64, w*h)
	switch m := img.(type) {
	case *image.Gray:
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			for x, v := range row {
				ink[y*w+x] = 1 - float64(v)/255
			}
		}
	case *image.Paletted:
		pal := make([]float64, 256)
		for i := range pal {
			pal[i] = 1 // indices beyond the palette: png rejects them, but be safe
		}
		for i, c := range m.Palette {
			if c != nil {
				pal[i] = colourInk(c.RGBA())
			}
		}
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			for x, v := range row {
				ink[y*w+x] = pal[v]
			}
		}
	default:
		for y := range h {
			for x := range w {
				ink[y*w+x] = colourInk(img.At(b.Min.X+x, b.Min.Y+y).RGBA())
			}
		}
	}
	return ink
}

// colourInk returns the ink of an alpha-premultiplied 16-bit colour over
// white: 1 − (Y + 1 − α), Y the luminance of image/color's GrayModel
// (the JFIF weights 0.299, 0.587 and 0.114).
func colourInk(r, g, b, a uint32) float64 {
	y := (19595*r + 38470*g + 7471*b + 1<<15) >> 16
	return max(0, float64(a)-float64(y)) / 0xffff
}

// rotateQuarters rotates the size×size image img in place by k quarter
// turns anticlockwise: after one turn, pixel (r, c) holds what was at
// (c, size−1−r), as numpy.rot90 does.
func rotateQuarters(img []byte, size, k int) {
	if k%4 == 0 {
		return
	}
	src := slices.Clone(img)
	for range k % 4 {
		for r := range size {
			for c := range size {
				img[r*size+c] = src[c*size+size-1-r]
			}
		}
		copy(src, img)
	}
}
