package tasks

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// folderClasses are the six classes of the test datasets: three to
// meta-train, one to validate, two to test.
var folderClasses = [3][]string{{"n01", "n02", "n03"}, {"n04"}, {"n05", "n06"}}

// folderColour is the solid colour of image k of class c.
func folderColour(c, k int) color.NRGBA {
	return color.NRGBA{uint8(40*c + 10), uint8(50*k + 20), uint8(250 - 35*c), 255}
}

// greyImage is the one grey-scale image of the datasets: image 1 of
// class 2, grey folderColour(2, 1).G.
const greyClass, greyImage = 2, 1

// folderImage returns image k of class c as a file, 10×12 pixels: PNG
// (even k), JPEG (k = 1) or GIF (k = 3), a grey PNG for the grey image.
func folderImage(t testing.TB, c, k int) (name string, data []byte) {
	t.Helper()
	col := folderColour(c, k)
	rect := image.Rect(0, 0, 10, 12)
	var buf bytes.Buffer
	var err error
	switch {
	case c == greyClass && k == greyImage:
		g := image.NewGray(rect)
		for i := range g.Pix {
			g.Pix[i] = col.G
		}
		return fmt.Sprintf("%s_%d.png", folderName(c), k), encodePNG(t, g)
	case k%2 == 0:
		img := image.NewNRGBA(rect)
		for i := 0; i < len(img.Pix); i += 4 {
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = col.R, col.G, col.B, col.A
		}
		return fmt.Sprintf("%s_%d.png", folderName(c), k), encodePNG(t, img)
	case k == 1:
		img := image.NewNRGBA(rect)
		for i := 0; i < len(img.Pix); i += 4 {
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = col.R, col.G, col.B, col.A
		}
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 100})
		name = fmt.Sprintf("%s_%d.JPEG", folderName(c), k)
	default:
		img := image.NewPaletted(rect, color.Palette{color.Black, col})
		for i := range img.Pix {
			img.Pix[i] = 1
		}
		err = gif.Encode(&buf, img, nil)
		name = fmt.Sprintf("%s_%d.gif", folderName(c), k)
	}
	if err != nil {
		t.Fatal(err)
	}
	return name, buf.Bytes()
}

// folderName returns the name of class c of folderClasses.
func folderName(c int) string { return fmt.Sprintf("n%02d", c+1) }

// splitOf returns the split of class c of folderClasses.
func splitOf(c int) string {
	switch {
	case c < 3:
		return "train"
	case c < 4:
		return "val"
	}
	return "test"
}

// folderTree writes the six classes of four images each in the split
// folder layout, with split false in the class folder layout, under a new
// root, with entries that Load skips.
func folderTree(t *testing.T, split bool) string {
	files := map[string][]byte{"README.txt": []byte("junk"), ".DS_Store": []byte("junk")}
	for c := range 6 {
		dir := folderName(c)
		if split {
			dir = splitOf(c) + "/" + dir
			files[splitOf(c)+"/LICENSE"] = []byte("junk")
		}
		for k := range 4 {
			name, data := folderImage(t, c, k)
			files[dir+"/"+name] = data
		}
		files[dir+"/.hidden"] = []byte("junk")
	}
	return writeTree(t, files)
}

// csvTree writes the six classes in miniImageNet's layout under a new
// root: the images in images/, the lines of each csv file in an order
// that is not sorted, with spare files that no line names.
func csvTree(t *testing.T) string {
	files := map[string][]byte{"images/spare.txt": []byte("junk")}
	lines := map[string][]string{}
	for c := range 6 {
		for k := range 4 {
			name, data := folderImage(t, c, k)
			files["images/"+name] = data
			lines[splitOf(c)] = append(lines[splitOf(c)], name+","+folderName(c))
		}
	}
	for split, ls := range lines {
		slices.Reverse(ls)
		files[split+".csv"] = []byte("filename,label\n" + strings.Join(ls, "\n") + "\n")
	}
	return writeTree(t, files)
}

// wantFolderSet checks the loaded six classes: names, splits, shapes, and
// the colour of every image.
func wantFolderSet(t *testing.T, d *FolderData, side, channels int, split bool) {
	t.Helper()
	s := d.Set
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	names := slices.Concat(folderClasses[:]...)
	if s.Rows != side || s.Cols != side || s.Channels != channels || s.N() != 24 || !slices.Equal(s.Names, names) {
		t.Fatalf("Load = %d images of %d×%d×%d, classes %q; want 24 of %d×%d×%d, %q",
			s.N(), s.Rows, s.Cols, s.Channels, s.Names, side, side, channels, names)
	}
	var want [3][]int
	if split {
		want = [3][]int{{0, 1, 2}, {3}, {4, 5}}
	}
	if got := [3][]int{d.Train, d.Val, d.Test}; !slices.EqualFunc(got[:], want[:], slices.Equal) || (d.Train == nil) == split {
		t.Errorf("Load splits = %v; want %v", got, want)
	}
	for c := range 6 {
		if len(s.Images[c]) != 4 {
			t.Fatalf("class %d has images %v; want 4", c, s.Images[c])
		}
		for k, i := range s.Images[c] {
			col := folderColour(c, k)
			rgb := []float64{float64(col.R), float64(col.G), float64(col.B)}
			if c == greyClass && k == greyImage {
				rgb = []float64{float64(col.G), float64(col.G), float64(col.G)}
			}
			px := rgb
			if channels == 1 {
				px = []float64{math.Round(0.299*rgb[0] + 0.587*rgb[1] + 0.114*rgb[2])}
			}
			tol := 0.0
			if k == 1 && c != greyClass { // JPEG's chroma rounding
				tol = 3
			}
			img := s.Image(i)
			for j, v := range img {
				if math.Abs(float64(v)-px[j%channels]) > tol {
					t.Fatalf("class %d image %d has byte %d = %d; want the solid colour %v (±%v)", c, k, j, v, px, tol)
				}
			}
		}
	}
}

func TestImageFolderLoad(t *testing.T) {
	for _, c := range []struct {
		name  string
		root  func(t *testing.T) string
		split bool
	}{
		{"class folders", func(t *testing.T) string { return folderTree(t, false) }, false},
		{"split folders", func(t *testing.T) string { return folderTree(t, true) }, true},
		{"csv files", csvTree, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := c.root(t)
			d, err := ImageFolder{}.Load(root)
			if err != nil {
				t.Fatal(err)
			}
			wantFolderSet(t, d, 84, 3, c.split)
			grey, err := ImageFolder{Side: 5, Channels: 1}.Load(root)
			if err != nil {
				t.Fatal(err)
			}
			wantFolderSet(t, grey, 5, 1, c.split)

			// One goroutine decodes the same bytes as several.
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			again, err := ImageFolder{}.Load(root)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Set.Pixels, d.Set.Pixels) {
				t.Errorf("Load on one goroutine differs from Load on %d", runtime.GOMAXPROCS(0))
			}
		})
	}
	// The three layouts give the same images.
	a, err := ImageFolder{Side: 7}.Load(folderTree(t, true))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ImageFolder{Side: 7}.Load(csvTree(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Set.Pixels, b.Set.Pixels) || !slices.EqualFunc(a.Set.Images, b.Set.Images, slices.Equal) {
		t.Errorf("split folders and csv files load different images")
	}

	// The loaded set draws colour episodes.
	e := Episodes{Set: a.Set, Classes: a.Train, Ways: 3, Shots: 1, Query: 3}
	batch, err := e.Sample(rand.New(rand.NewPCG(1, 2)), 2)
	if err != nil {
		t.Fatal(err)
	}
	if batch.In != 7*7*3 {
		t.Errorf("Sample In = %d; want 7·7·3", batch.In)
	}
}

// Resizing averages areas: a 3×3 grey image whose middle column is white
// becomes, at 2×2, four pixels each a third white (each output column
// covers 1½ source columns, half a white one), where nearest-neighbour
// sampling would give black or white.
func TestDecodeImageResize(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 3, 3))
	for y := range 3 {
		g.SetGray(1, y, color.Gray{255})
	}
	dst := make([]byte, 2*2*3)
	if err := decodeImage(dst, encodePNG(t, g), 2, 3, 1<<20); err != nil {
		t.Fatal(err)
	}
	if want := bytes.Repeat([]byte{85}, 12); !bytes.Equal(dst, want) {
		t.Errorf("decodeImage(3×3 stripe) = %v; want %v", dst, want)
	}
	// Every colour model gives its stored colour, transparency dropped.
	col := color.NRGBA{200, 100, 50, 255}
	rect := image.Rect(0, 0, 4, 3)
	nrgba, rgba, nrgba64 := image.NewNRGBA(rect), image.NewRGBA(rect), image.NewNRGBA64(rect)
	pal := image.NewPaletted(rect, color.Palette{color.White, col})
	for y := range 3 {
		for x := range 4 {
			nrgba.SetNRGBA(x, y, color.NRGBA{col.R, col.G, col.B, 100})
			rgba.Set(x, y, col)
			nrgba64.Set(x, y, col)
			pal.SetColorIndex(x, y, 1)
		}
	}
	for _, c := range []struct {
		name string
		img  image.Image
	}{{"translucent NRGBA", nrgba}, {"RGBA", rgba}, {"NRGBA64", nrgba64}, {"paletted", pal}} {
		dst := make([]byte, 2*2*3)
		err := decodeImage(dst, encodePNG(t, c.img), 2, 3, 1<<20)
		want := bytes.Repeat([]byte{col.R, col.G, col.B}, 4)
		if err != nil || !bytes.Equal(dst, want) {
			t.Errorf("decodeImage(%s) = %v, %v; want %v", c.name, dst, err, want)
		}
	}

	// A colour image: each channel resizes alone.
	rng := rand.New(rand.NewPCG(1, 2))
	img := image.NewNRGBA(image.Rect(0, 0, 13, 5))
	for i := range img.Pix {
		img.Pix[i] = byte(rng.IntN(256))
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	got := make([]byte, 4*4*3)
	if err := decodeImage(got, encodePNG(t, img), 4, 3, 1<<20); err != nil {
		t.Fatal(err)
	}
	for k := range 3 {
		plane := make([]byte, 4*4)
		boxResize(plane, 13, 5, 1, 4, func(y int, buf []float64) {
			for x := range 13 {
				buf[x] = float64(img.Pix[(y*13+x)*4+k]) / 255
			}
		})
		for j, v := range plane {
			if got[3*j+k] != v {
				t.Fatalf("channel %d of pixel %d = %d; want %d, the channel resized alone", k, j, got[3*j+k], v)
			}
		}
	}
}

func TestImageFolderErrors(t *testing.T) {
	_, good := folderImage(t, 0, 0)
	classes := func(extra map[string][]byte) map[string][]byte {
		files := map[string][]byte{"a/1.png": good, "a/2.png": good, "b/1.png": good}
		for k, v := range extra {
			files[k] = v
		}
		return files
	}
	splits := func(extra map[string][]byte) map[string][]byte {
		files := map[string][]byte{"train/a/1.png": good, "val/b/1.png": good, "test/c/1.png": good}
		for k, v := range extra {
			files[k] = v
		}
		return files
	}
	csvs := func(edit map[string][]byte) map[string][]byte {
		files := map[string][]byte{"images/1.png": good, "images/2.png": good, "images/3.png": good,
			"train.csv": []byte("filename,label\n1.png,a\n"), "val.csv": []byte("filename,label\n2.png,b\n"),
			"test.csv": []byte("filename,label\n3.png,c\n")}
		for k, v := range edit {
			if v == nil {
				delete(files, k)
				continue
			}
			files[k] = v
		}
		return files
	}
	for _, c := range []struct {
		name  string
		files map[string][]byte
		cfg   ImageFolder
		want  string // after "tasks: ", ROOT/ standing for the root
	}{
		{"corrupt file", classes(map[string][]byte{"b/2.png": good[:len(good)-20]}), ImageFolder{},
			"image folder: ROOT/b/2.png: corrupt png image: "},
		{"not an image", classes(map[string][]byte{"b/2.jpg": []byte("hello")}), ImageFolder{},
			"image folder: ROOT/b/2.jpg: not a PNG, JPEG or GIF image"},
		{"other file", classes(map[string][]byte{"b/notes.txt": []byte("hello")}), ImageFolder{},
			"image folder: ROOT/b/notes.txt: not an image file"},
		{"empty class", classes(map[string][]byte{"c": nil}), ImageFolder{}, "image folder: ROOT/c: no images"},
		{"folder in a class", classes(map[string][]byte{"b/sub/1.png": good}), ImageFolder{}, "image folder: ROOT/b/sub: a folder in a class folder"},
		{"no classes", map[string][]byte{"README": []byte("hi")}, ImageFolder{}, "image folder: ROOT: no class folders"},
		{"MaxBytes", classes(map[string][]byte{"b/2.png": []byte("corrupt, but never read")}), ImageFolder{Side: 8, MaxBytes: 700},
			"image folder: ROOT: 4 images of 8×8×3 bytes need 768 bytes, more than MaxBytes = 700"},
		{"MaxPixels", classes(nil), ImageFolder{MaxPixels: 100}, "image folder: ROOT/a/1.png: png image of 10×12 pixels, want at least 1×1 and at most 100 pixels"},
		{"MaxEntries", classes(nil), ImageFolder{MaxEntries: 1}, "image folder: ROOT: more than MaxEntries = 1 entries"},
		{"Side", classes(nil), ImageFolder{Side: 2000}, "image folder: Side = 2000, want 1 to 1024"},
		{"Channels", classes(nil), ImageFolder{Channels: 2}, "image folder: Channels = 2, want 1 or 3"},
		{"no val folder", map[string][]byte{"train/a/1.png": good, "test/c/1.png": good}, ImageFolder{}, "image folder: ROOT: no val folder"},
		{"folder beside splits", splits(map[string][]byte{"extra/d/1.png": good}), ImageFolder{}, "image folder: ROOT/extra: a folder beside train, val and test"},
		{"class in two splits", splits(map[string][]byte{"test/a/1.png": good}), ImageFolder{}, `image folder: ROOT: class "a" is in both train and test`},
		{"missing csv", csvs(map[string][]byte{"test.csv": nil}), ImageFolder{}, "image folder: open ROOT/test.csv: "},
		{"missing images folder", csvs(map[string][]byte{"images/1.png": nil, "images/2.png": nil, "images/3.png": nil}), ImageFolder{},
			"image folder: ROOT: no images folder"},
		{"missing file", csvs(map[string][]byte{"val.csv": []byte("filename,label\n2.png,b\n\n4.png,b\n")}), ImageFolder{},
			"ROOT/val.csv line 4: ROOT/images/4.png: no such file"},
		{"corrupt file in csv layout", csvs(map[string][]byte{"images/3.png": []byte("GIF89a")}), ImageFolder{},
			"image folder: ROOT/images/3.png: not a PNG, JPEG or GIF image"},
		{"header", csvs(map[string][]byte{"train.csv": []byte("file,class\n1.png,a\n")}), ImageFolder{},
			`ROOT/train.csv line 1: header "file,class", want filename,label`},
		{"fields", csvs(map[string][]byte{"train.csv": []byte("filename,label\n1.png,a,x\n")}), ImageFolder{},
			"ROOT/train.csv line 2: 3 fields, want 2"},
		{"quotes", csvs(map[string][]byte{"train.csv": []byte("filename,label\n\"1.png,a\n")}), ImageFolder{},
			"ROOT/train.csv line 2: "},
		{"no label", csvs(map[string][]byte{"train.csv": []byte("filename,label\n1.png,\n")}), ImageFolder{},
			"ROOT/train.csv line 2: no label"},
		{"path", csvs(map[string][]byte{"train.csv": []byte("filename,label\n../train.csv,a\n")}), ImageFolder{},
			`ROOT/train.csv line 2: file name "../train.csv", want the name of a file in ROOT/images`},
		{"named twice", csvs(map[string][]byte{"test.csv": []byte("filename,label\n3.png,c\n1.png,c\n")}), ImageFolder{},
			"ROOT/test.csv line 3: 1.png is also on line 2 of ROOT/train.csv"},
		{"no lines", csvs(map[string][]byte{"val.csv": []byte("filename,label\n")}), ImageFolder{}, "ROOT/val.csv: no lines after the header"},
		{"empty csv", csvs(map[string][]byte{"val.csv": []byte{}}), ImageFolder{}, "ROOT/val.csv: empty file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := writeTree(t, c.files)
			d, err := c.cfg.Load(root)
			if err == nil {
				t.Fatalf("Load = %d images, nil error; want an error containing %q", d.Set.N(), c.want)
			}
			want := "tasks: " + strings.ReplaceAll(c.want, "ROOT", root)
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Load = %v; want an error starting %q", err, want)
			}
			var ce *CSVError
			if strings.Contains(c.want, ".csv line") && !errors.As(err, &ce) {
				t.Errorf("Load = %v (%T); want a *CSVError", err, err)
			}
		})
	}
	if _, err := (ImageFolder{}).Load(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Load(missing) = %v; want an error naming it", err)
	}
	// MaxBytes is a bound the dataset may reach: 4 images of 8×8×3 bytes.
	root := writeTree(t, classes(nil))
	if _, err := (ImageFolder{Side: 8, MaxBytes: 768}).Load(root); err != nil {
		t.Errorf("Load with MaxBytes = the size needed: %v", err)
	}
	// A link to nowhere is an unreadable image.
	dangling := filepath.Join(root, "b", "2.png")
	if err := os.Symlink(filepath.Join(root, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	if _, err := (ImageFolder{}).Load(root); err == nil || !strings.Contains(err.Error(), dangling) {
		t.Errorf("Load with a dangling link = %v; want an error naming %s", err, dangling)
	}
	os.Remove(dangling)
	// A file without read permission, unless the tests run as root.
	path := filepath.Join(root, "a", "2.png")
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(path); err != nil {
		if _, err := (ImageFolder{}).Load(root); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Load with an unreadable image = %v; want an error naming %s", err, path)
		}
	}
}

// FuzzDecodeImage checks that decoding any bytes never panics, refuses
// images declaring too many pixels, and decodes the same way twice.
func FuzzDecodeImage(f *testing.F) {
	for c := range 2 {
		for k := range 4 {
			_, data := folderImage(f, c*greyClass, k)
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxPixels = 1 << 16
		a, b := make([]byte, 4*4*3), make([]byte, 4*4*3)
		if err := decodeImage(a, data, 4, 3, maxPixels); err != nil {
			return
		}
		cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
		if err != nil || cfg.Width*cfg.Height > maxPixels {
			t.Fatalf("decodeImage accepted an image whose configuration is %+v, %v", cfg, err)
		}
		if err := decodeImage(b, data, 4, 3, maxPixels); err != nil || !bytes.Equal(a, b) {
			t.Fatalf("two decodings differ")
		}
	})
}

// TestBenchmarkFolder: a folder benchmark's episodes are colour images of
// the side asked for, its splits those of its folders (4, 2 and 3
// classes), a validation split too small for the episodes left out;
// class folders are split at random by the seed.
func TestBenchmarkFolder(t *testing.T) {
	files := map[string][]byte{}
	for c := range 9 {
		for k := range 4 {
			name, data := folderImage(t, c, k)
			files[[]string{"train", "val", "test"}[min(c/4+c/6, 2)]+"/"+folderName(c)+"/"+name] = data
		}
	}
	b := Benchmark{Name: "folder", Data: writeTree(t, files), Ways: 2, Shots: 1, Query: 2, TestQuery: 3, Side: 8, Augment: Augment{Flip: true}}.WithDefaults()
	src, err := b.Load()
	if err != nil {
		t.Fatal(err)
	}
	if src.In != 8*8*3 || src.Side != 8 || src.Channels != 3 || src.Val == nil {
		t.Fatalf("In %d, side %d, channels %d, validation %v; want 192, 8, 3 and validation episodes", src.In, src.Side, src.Channels, src.Val != nil)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for name, draw := range map[string]func(*rand.Rand, int) (*Batch, error){"train": src.Train, "val": src.Val, "test": src.Test} {
		bt, err := draw(rng, 2)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if bt.In != 192 || bt.Out != 2 || bt.Support != 2 {
			t.Errorf("%s batch %+v", name, bt.Shape())
		}
	}
	if _, err := (Benchmark{Name: "folder", Ways: 2}).Load(); err == nil {
		t.Error("a folder benchmark without a directory: no error")
	}
	// Too few validation classes for the episodes: no validation, and
	// the rest still serves.
	b5 := b
	b5.Ways = 3
	b5.Shots, b5.Query, b5.TestQuery = 1, 1, 1
	src5, err := b5.Load()
	if err == nil && (src5.Val != nil || !strings.Contains(src5.About, "unusable")) {
		t.Errorf("3-way episodes with 2 validation classes: validation %v, %q", src5.Val != nil, src5.About)
	}
	if err == nil {
		_, err = src5.Train(rng, 1)
	}
	if err != nil {
		t.Errorf("3-way episodes with 2 validation classes: %v", err)
	}
	// Six class folders: 3 to train, none to validate, 3 to test.
	cf := Benchmark{Name: "folder", Data: folderTree(t, false), Ways: 2, Side: 8, Channels: 1, Seed: 4}.WithDefaults()
	cf.Query, cf.TestQuery = 2, 2
	src, err = cf.Load()
	if err != nil {
		t.Fatal(err)
	}
	if src.Val != nil || src.In != 64 || !strings.Contains(src.About, "3 meta-training and 3 meta-test classes") {
		t.Errorf("class folders: validation %v, In %d, %q", src.Val != nil, src.In, src.About)
	}
}
