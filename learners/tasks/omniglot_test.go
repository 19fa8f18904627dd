package tasks

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pngChunk returns a PNG chunk: length, type, data and CRC.
func pngChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(append([]byte(typ), data...)))
}

// pngHeader returns a PNG signature and IHDR chunk for a w×h image of the
// given bit depth and colour type.
func pngHeader(w, h uint32, depth, colour byte) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, depth, colour, 0, 0, 0)
	return append([]byte("\x89PNG\r\n\x1a\n"), pngChunk("IHDR", ihdr)...)
}

// gray1PNG returns a 1-bit greyscale PNG, the format of Omniglot's files,
// which image/png does not write: ink(x, y) true is a black pixel.
func gray1PNG(w, h int, ink func(x, y int) bool) []byte {
	var raw []byte
	for y := range h {
		raw = append(raw, 0) // filter: none
		row := make([]byte, (w+7)/8)
		for x := range w {
			if !ink(x, y) {
				row[x/8] |= 0x80 >> (x % 8) // 1 is white
			}
		}
		raw = append(raw, row...)
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(raw)
	zw.Close()
	b := pngHeader(uint32(w), uint32(h), 1, 0)
	b = append(b, pngChunk("IDAT", z.Bytes())...)
	return append(b, pngChunk("IEND", nil)...)
}

// glyph returns a white 105×105 greyscale image with a black square of
// side s at the top left: a stand-in for an Omniglot drawing.
func glyph(s int) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, 105, 105))
	for i := range img.Pix {
		if i%105 < s && i/105 < s {
			img.Pix[i] = 0
		} else {
			img.Pix[i] = 255
		}
	}
	return img
}

// writeTree writes files (path relative to root → contents) under a new
// temporary root and returns the root.
func writeTree(t *testing.T, files map[string][]byte) string {
	t.Helper()
	root := t.TempDir()
	for name, data := range files {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if data == nil { // a directory
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// omniglotTree returns a small Omniglot-like tree: alphabets Beta (one
// character) and Alpha (two), three drawings each, whose black square's
// side identifies the character and drawing, plus entries to skip.
func omniglotTree(t *testing.T) string {
	files := map[string][]byte{
		".DS_Store":                     []byte("junk"),
		"__MACOSX/Alpha/._x":            []byte("junk"),
		"Alpha/.hidden/x.png":           []byte("junk"),
		"Alpha/character02/.DS_Store":   []byte("junk"),
		"Beta/character01/0301_01.png":  gray1PNG(105, 105, func(x, y int) bool { return x < 30 && y < 30 }),
		"Beta/character01/0301_02.PNG":  encodePNG(t, glyph(45)),
		"Beta/character01/0301_03.png":  encodePNG(t, glyph(60)),
		"Alpha/character01/0101_01.png": encodePNG(t, glyph(0)),
		"Alpha/character01/0101_02.png": encodePNG(t, glyph(105)),
		"Alpha/character01/0101_03.png": encodePNG(t, glyph(15)),
		"Alpha/character02/0102_03.png": encodePNG(t, glyph(75)),
		"Alpha/character02/0102_01.png": encodePNG(t, glyph(90)),
		"Alpha/character02/0102_02.png": encodePNG(t, glyph(30)),
	}
	return writeTree(t, files)
}

// squareInk is the 28×28 image of glyph(s) when 105 is a multiple of s's
// share: the square covers s·28/105 output pixels exactly when s is a
// multiple of 15 (4 output pixels per 15 source pixels).
func squareInk(s int) []byte {
	out := make([]byte, 784)
	n := s * 28 / 105
	for r := range n {
		for c := range n {
			out[r*28+c] = 255
		}
	}
	return out
}

func TestOmniglotLoad(t *testing.T) {
	root := omniglotTree(t)
	set, err := LoadOmniglot(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Validate(); err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"Alpha/character01", "Alpha/character02", "Beta/character01"}
	if !slices.Equal(set.Names, wantNames) || set.Rows != 28 || set.Cols != 28 || set.N() != 9 {
		t.Fatalf("LoadOmniglot = %d images of %d×%d, classes %q; want 9 of 28×28, %q", set.N(), set.Rows, set.Cols, set.Names, wantNames)
	}
	// Images in file-name order within a class; sides chosen as
	// multiples of 15 so that the squares land on whole output pixels.
	sides := [][]int{{0, 105, 15}, {90, 30, 75}, {30, 45, 60}}
	for c, ss := range sides {
		if len(set.Images[c]) != 3 {
			t.Fatalf("class %d has images %v; want 3", c, set.Images[c])
		}
		for k, s := range ss {
			if got, want := set.Image(set.Images[c][k]), squareInk(s); !bytes.Equal(got, want) {
				t.Errorf("class %s image %d: got ink in %d pixels; want the %d×%d square of side %d", set.Names[c], k, countInk(got), s*28/105, s*28/105, s)
			}
		}
	}

	// Too few images for the requested shots, named by class.
	_, err = Episodes{Set: set, Ways: 3, Shots: 1, Query: 15}.Sample(rand.New(rand.NewPCG(1, 2)), 1)
	if want := `tasks: episodes: class 0 ("Alpha/character01") has 3 examples, 1 shot + 15 query need 16`; err == nil || err.Error() != want {
		t.Errorf("Sample = %v; want %s", err, want)
	}
	b, err := Episodes{Set: set, Ways: 3, Shots: 1, Query: 2}.Sample(rand.New(rand.NewPCG(1, 2)), 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Validate(); err != nil || b.In != 784 || b.Out != 3 {
		t.Errorf("Sample = in %d, out %d, %v; want 784, 3, valid", b.In, b.Out, err)
	}

	// Two roots: classes in root order.
	other := writeTree(t, map[string][]byte{"Gamma/character01/1.png": encodePNG(t, glyph(15))})
	both, err := LoadOmniglot(other, root)
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]string{"Gamma/character01"}, wantNames...); !slices.Equal(both.Names, want) {
		t.Errorf("LoadOmniglot(two roots) classes %q; want %q", both.Names, want)
	}
}

func countInk(img []byte) int {
	n := 0
	for _, p := range img {
		if p > 0 {
			n++
		}
	}
	return n
}

func TestOmniglotRotations(t *testing.T) {
	// A 28×28 glyph is not resized: one ink pixel at (2, 5).
	img := image.NewGray(image.Rect(0, 0, 28, 28))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	img.SetGray(5, 2, color.Gray{0})
	root := writeTree(t, map[string][]byte{
		"A/c1/1.png": encodePNG(t, img),
		"A/c1/2.png": encodePNG(t, glyph(105)),
		"A/c2/1.png": encodePNG(t, glyph(0)),
	})
	set, err := Omniglot{Rotations: true}.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []string{"A/c1", "A/c1/rot90", "A/c1/rot180", "A/c1/rot270", "A/c2", "A/c2/rot90", "A/c2/rot180", "A/c2/rot270"}
	if !slices.Equal(set.Names, want) || set.N() != 12 {
		t.Fatalf("Load with rotations = %d images, classes %q; want 12, %q", set.N(), set.Names, want)
	}
	// Anticlockwise quarter turns carry (2, 5) to (22, 2), (25, 22) and
	// (5, 25).
	for k, at := range [][2]int{{2, 5}, {22, 2}, {25, 22}, {5, 25}} {
		if len(set.Images[k]) != 2 {
			t.Fatalf("class %s has %d images; want 2", set.Names[k], len(set.Images[k]))
		}
		got := set.Image(set.Images[k][0])
		if countInk(got) != 1 || got[at[0]*28+at[1]] != 255 {
			t.Errorf("class %s: ink at %v? pixel %d, %d inked pixels", set.Names[k], at, got[at[0]*28+at[1]], countInk(got))
		}
		if full := set.Image(set.Images[k][1]); countInk(full) != 784 {
			t.Errorf("class %s: a full square rotated has %d inked pixels", set.Names[k], countInk(full))
		}
	}
	if got := WithRotations([]int{1, 0}); !slices.Equal(got, []int{4, 5, 6, 7, 0, 1, 2, 3}) {
		t.Errorf("WithRotations([1 0]) = %v", got)
	}
	// A character split carried to classes keeps rotations together.
	parts, err := SplitClasses(rand.New(rand.NewPCG(1, 1)), ClassIDs(set.Classes()/4), 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	train, test := WithRotations(parts[0]), WithRotations(parts[1])
	for _, c := range train {
		if slices.Contains(test, c) {
			t.Errorf("class %d in both splits", c)
		}
	}
}

func TestOmniglotErrors(t *testing.T) {
	good := encodePNG(t, glyph(30))
	huge := append(pngHeader(100000, 100000, 8, 0), pngChunk("IEND", nil)...)
	for _, c := range []struct {
		name  string
		files map[string][]byte
		cfg   Omniglot
		want  string // after "tasks: omniglot: ROOT/"
	}{
		{"not a PNG", map[string][]byte{"Latin/character01/0101_01.png": []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00")}, Omniglot{},
			"Latin/character01/0101_01.png: not a PNG: png: invalid format: not a PNG file"},
		{"truncated PNG", map[string][]byte{"Latin/character01/0101_01.png": good[:len(good)-30]}, Omniglot{},
			"Latin/character01/0101_01.png: corrupt PNG: "},
		{"huge PNG", map[string][]byte{"Latin/character01/0101_01.png": huge}, Omniglot{},
			"Latin/character01/0101_01.png: PNG of 100000×100000 pixels, want at least 1×1 and at most 4194304 pixels"},
		{"MaxPixels", map[string][]byte{"Latin/character01/0101_01.png": good}, Omniglot{MaxPixels: 100 * 100},
			"Latin/character01/0101_01.png: PNG of 105×105 pixels, want at least 1×1 and at most 10000 pixels"},
		{"other file", map[string][]byte{"Latin/character01/0101_01.jpg": good}, Omniglot{},
			"Latin/character01/0101_01.jpg: not a PNG file"},
		{"empty character", map[string][]byte{"Latin/character01/x.png": good, "Latin/character02": nil}, Omniglot{},
			"Latin/character02: no PNG images"},
		{"MinImages", map[string][]byte{"Latin/character01/1.png": good, "Latin/character01/2.png": good}, Omniglot{MinImages: 5},
			"Latin/character01: 2 images, fewer than MinImages = 5"},
		{"MaxEntries", map[string][]byte{"Latin/character01/1.png": good, "Latin/character01/2.png": good, "Latin/character01/3.png": good}, Omniglot{MaxEntries: 2},
			"Latin/character01: more than MaxEntries = 2 entries"},
		{"MaxImages", map[string][]byte{"Latin/character01/1.png": good, "Latin/character02/2.png": good}, Omniglot{MaxImages: 1},
			"Latin/character02: more than MaxImages = 1 images in all"},
		{"directory of images", map[string][]byte{"Latin/character01/sub/1.png": good}, Omniglot{},
			"Latin/character01/sub: a directory where PNG images are expected"},
		{"file for an alphabet", map[string][]byte{"README.txt": []byte("hi"), "Latin/character01/1.png": good}, Omniglot{},
			"README.txt: a file where a directory is expected"},
		{"file for a character", map[string][]byte{"Latin/1.png": good}, Omniglot{},
			"Latin/1.png: a file where a directory is expected"},
		{"empty alphabet", map[string][]byte{"Latin": nil}, Omniglot{}, "Latin: no character directories"},
		{"no alphabets", map[string][]byte{".keep": []byte{}}, Omniglot{}, ": no alphabet directories"},
		{"large file", map[string][]byte{"Latin/character01/1.png": nil}, Omniglot{}, "Latin/character01/1.png: larger than 16 MiB"},
		{"size", map[string][]byte{"Latin/character01/1.png": good}, Omniglot{Size: 2000}, "Size = 2000, want 1 to 1024"},
		{"negative limit", map[string][]byte{"Latin/character01/1.png": good}, Omniglot{MaxImages: -1}, "must be positive"},
	} {
		t.Run(c.name, func(t *testing.T) {
			files := c.files
			if c.name == "large file" {
				files = map[string][]byte{"Latin/character01": nil}
			}
			root := writeTree(t, files)
			if c.name == "large file" {
				// A sparse file one byte over the limit.
				f, err := os.Create(filepath.Join(root, "Latin", "character01", "1.png"))
				if err != nil {
					t.Fatal(err)
				}
				if err := f.Truncate(maxImageFileSize + 1); err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
			start := time.Now()
			set, err := c.cfg.Load(root)
			if err == nil {
				t.Fatalf("Load = %d images, nil error; want an error containing %q", set.N(), c.want)
			}
			want := c.want
			if !strings.HasPrefix(want, "Size") && !strings.HasPrefix(want, "MinImages") && !strings.Contains(want, "must be positive") {
				want = "tasks: omniglot: " + filepath.Join(root, filepath.FromSlash(want))
				if strings.HasPrefix(c.want, ":") {
					want = "tasks: omniglot: " + root + c.want
				}
			}
			if !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "tasks: omniglot: ") {
				t.Errorf("Load = %v; want an error containing %q", err, want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Load took %v to fail", d) // a sign of decoding what should be refused
			}
		})
	}

	root := writeTree(t, map[string][]byte{"Latin/character01/1.png": good})
	if _, err := LoadOmniglot(); err == nil {
		t.Errorf("LoadOmniglot() = nil error; want one")
	}
	if _, err := LoadOmniglot(filepath.Join(root, "missing")); err == nil || !strings.Contains(err.Error(), filepath.Join(root, "missing")) {
		t.Errorf("LoadOmniglot(missing) = %v; want an error naming it", err)
	}
	if _, err := LoadOmniglot(root, root); err == nil || !strings.Contains(err.Error(), "character Latin/character01 is under both") {
		t.Errorf("LoadOmniglot(root, root) = %v; want an error about the repeated character", err)
	}
	// A named pipe called *.png would block the reader: refused unread.
	fifo := filepath.Join(root, "Latin", "character01", "3.png")
	if err := syscall.Mkfifo(fifo, 0o644); err == nil {
		if _, err := LoadOmniglot(root); err == nil || !strings.Contains(err.Error(), fifo+": not a regular file") {
			t.Errorf("LoadOmniglot with a named pipe = %v; want an error naming %s", err, fifo)
		}
		os.Remove(fifo)
	}
	// A link to nowhere is an unreadable image.
	dangling := filepath.Join(root, "Latin", "character01", "2.png")
	if err := os.Symlink(filepath.Join(root, "nowhere"), dangling); err != nil {
		t.Skip(err)
	}
	if _, err := LoadOmniglot(root); err == nil || !strings.Contains(err.Error(), dangling) {
		t.Errorf("LoadOmniglot with a dangling link = %v; want an error naming %s", err, dangling)
	}
}

// Every colour model decodes to the same ink: black on white is 255 on 0,
// and transparent pixels are white paper.
func TestDecodeGlyphColourModels(t *testing.T) {
	ink := func(x, y int) bool { return x < 14 } // left half inked
	want := make([]byte, 784)
	for i := range want {
		if i%28 < 14 {
			want[i] = 255
		}
	}
	gray := image.NewGray(image.Rect(0, 0, 28, 28))
	gray16 := image.NewGray16(image.Rect(0, 0, 28, 28))
	nrgba := image.NewNRGBA(image.Rect(0, 0, 28, 28))
	rgba := image.NewRGBA(image.Rect(0, 0, 28, 28))
	pal := image.NewPaletted(image.Rect(0, 0, 28, 28), color.Palette{color.White, color.Black})
	for y := range 28 {
		for x := range 28 {
			if ink(x, y) {
				gray.SetGray(x, y, color.Gray{0})
				gray16.SetGray16(x, y, color.Gray16{0})
				nrgba.SetNRGBA(x, y, color.NRGBA{0, 0, 0, 255})
				rgba.SetRGBA(x, y, color.RGBA{0, 0, 0, 255})
				pal.SetColorIndex(x, y, 1)
			} else {
				gray.SetGray(x, y, color.Gray{255})
				gray16.SetGray16(x, y, color.Gray16{0xffff})
				nrgba.SetNRGBA(x, y, color.NRGBA{0, 0, 0, 0}) // transparent black: paper
				rgba.SetRGBA(x, y, color.RGBA{255, 255, 255, 255})
			}
		}
	}
	for name, data := range map[string][]byte{
		"gray": encodePNG(t, gray), "gray16": encodePNG(t, gray16), "nrgba": encodePNG(t, nrgba),
		"rgba": encodePNG(t, rgba), "paletted": encodePNG(t, pal), "gray 1-bit": gray1PNG(28, 28, ink),
	} {
		got, err := decodeGlyph(data, 28, 1<<22)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: decoded ink differs from the left half", name)
		}
	}
	// 50% grey is half ink.
	g := image.NewGray(image.Rect(0, 0, 3, 5))
	for i := range g.Pix {
		g.Pix[i] = 127
	}
	got, err := decodeGlyph(encodePNG(t, g), 4, 1<<22)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range got {
		if p != 128 {
			t.Fatalf("grey 127 decodes to %v; want 128 everywhere", got)
		}
	}
}

// boxResize against a supersampled reference: 105 and 28 divide 420, so
// splitting each source pixel into 4×4 and each output pixel into 15×15
// sub-pixels makes area averaging a plain mean.
func TestBoxResize(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]float64, 105*105)
	for i := range src {
		src[i] = rng.Float64()
	}
	got := make([]byte, 784)
	boxResize(got, 105, 105, 1, 28, func(y int, buf []float64) { copy(buf, src[y*105:(y+1)*105]) })
	exact := 0
	for r := range 28 {
		for c := range 28 {
			var sum float64
			for i := range 15 {
				for j := range 15 {
					y, x := (r*15+i)/4, (c*15+j)/4
					sum += src[y*105+x]
				}
			}
			want := math.Round(255 * sum / 225)
			if d := math.Abs(float64(got[r*28+c]) - want); d > 1 {
				t.Fatalf("pixel (%d, %d) = %d; want %v", r, c, got[r*28+c], want)
			} else if d == 0 {
				exact++
			}
		}
	}
	// Off by one only where the mean is within rounding error of a half.
	if exact < 780 {
		t.Errorf("%d of 784 pixels match the reference exactly", exact)
	}
	for _, c := range []struct{ src, dst int }{{105, 28}, {28, 28}, {3, 7}, {1, 28}, {2048, 28}} {
		for o, sp := range boxWeights(c.src, c.dst) {
			var s float64
			for _, w := range sp.w {
				s += w
			}
			if math.Abs(s-1) > 1e-12 || sp.first < 0 || sp.first+len(sp.w) > c.src {
				t.Errorf("boxWeights(%d, %d)[%d] = %+v, sum %v", c.src, c.dst, o, sp, s)
			}
		}
	}
}

// FuzzDecodeGlyph checks that decoding any bytes as an Omniglot image
// never panics, refuses huge images, and gives a 28×28 image when it
// succeeds.
func FuzzDecodeGlyph(f *testing.F) {
	// The seed corpus is in testdata/fuzz/FuzzDecodeGlyph.
	f.Add(gray1PNG(4, 3, func(x, y int) bool { return x == y }))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := decodeGlyph(data, 28, 1<<22)
		if err != nil {
			return
		}
		if len(g) != 784 {
			t.Fatalf("decodeGlyph = %d pixels; want 784", len(g))
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(data))
		if err != nil || cfg.Width*cfg.Height > 1<<22 {
			t.Fatalf("decodeGlyph accepted a PNG whose configuration is %+v, %v", cfg, err)
		}
		again, _ := decodeGlyph(data, 28, 1<<22)
		if !bytes.Equal(g, again) {
			t.Fatalf("two decodings differ")
		}
	})
}

// BenchmarkDecodeGlyph decodes a 105×105 1-bit PNG, an Omniglot drawing,
// to 28×28.
func BenchmarkDecodeGlyph(b *testing.B) {
	data := gray1PNG(105, 105, func(x, y int) bool { return (x-52)*(x-52)+(y-52)*(y-52) < 900 })
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeGlyph(data, 28, 1<<22); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// TestOmniglotSplit: the full set splits 1,200 / 423 characters, a
// smaller one in the same proportion; the parts are disjoint, cover every
// class, and keep a character's four rotations together; the characters
// are drawn by the generator, one seed giving one split.
func TestOmniglotSplit(t *testing.T) {
	for _, c := range []struct{ chars, train int }{{1623, 1200}, {100, 73}, {2, 1}} {
		train, test, err := OmniglotSplit(rand.New(rand.NewPCG(1, 2)), c.chars)
		if err != nil {
			t.Fatal(err)
		}
		if len(train) != 4*c.train || len(test) != 4*(c.chars-c.train) {
			t.Errorf("%d characters: %d and %d classes, want %d and %d", c.chars, len(train), len(test), 4*c.train, 4*(c.chars-c.train))
		}
		part := map[int]int{}
		for p, ids := range [][]int{train, test} {
			for _, id := range ids {
				if _, dup := part[id]; dup || id < 0 || id >= 4*c.chars {
					t.Fatalf("%d characters: class %d repeated or out of range", c.chars, id)
				}
				part[id] = p
			}
		}
		for id := range 4 * c.chars {
			if p, ok := part[id]; !ok || p != part[id/4*4] {
				t.Fatalf("%d characters: class %d missing or apart from its character's other rotations", c.chars, id)
			}
		}
	}
	if _, _, err := OmniglotSplit(rand.New(rand.NewPCG(1, 2)), 1); err == nil {
		t.Error("OmniglotSplit of 1 character: no error")
	}
	a, _, _ := OmniglotSplit(rand.New(rand.NewPCG(1, 2)), 1623)
	b, _, _ := OmniglotSplit(rand.New(rand.NewPCG(1, 2)), 1623)
	c, _, _ := OmniglotSplit(rand.New(rand.NewPCG(3, 2)), 1623)
	if !slices.Equal(a, b) || slices.Equal(a, c) || slices.Equal(a, WithRotations(ClassIDs(1200))) {
		t.Error("OmniglotSplit: one seed should give one split, another seed another, and neither the first 1,200 characters")
	}
	if !slices.IsSorted(a) {
		t.Error("OmniglotSplit: classes not in increasing order")
	}
}
