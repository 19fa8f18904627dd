package graph

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/nlpodyssey/safetensors"
	"gorgonia.org/tensor"
)

// OrderKey is the safetensors metadata key under which SaveParams records
// the parameters' order (names joined by newlines); safetensors itself
// keeps tensors sorted by dtype and name.
const OrderKey = "medusa.order"

// SaveParams writes p to path in the safetensors format (little-endian F32
// or F64 tensors named as in p), with meta as the header's __metadata__.
// PyTorch's safetensors package loads the file as it is. The file is
// written to a temporary file in the same directory, synced and renamed, so
// a crash never leaves a truncated file at path.
func SaveParams(path string, p *Params, meta map[string]string) (err error) {
	if p == nil || p.Len() == 0 {
		return fmt.Errorf("graph: SaveParams %s: no parameters", path)
	}
	views := make(map[string]safetensors.TensorView, p.Len())
	info := map[string]string{}
	for k, v := range meta {
		info[k] = v
	}
	order := ""
	for i := 0; i < p.Len(); i++ {
		q := p.At(i)
		var dt safetensors.DType
		var raw []byte
		switch d := q.Value.Data().(type) {
		case []float32:
			dt, raw = safetensors.F32, make([]byte, 4*len(d))
			for j, x := range d {
				binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(x))
			}
		case []float64:
			dt, raw = safetensors.F64, make([]byte, 8*len(d))
			for j, x := range d {
				binary.LittleEndian.PutUint64(raw[8*j:], math.Float64bits(x))
			}
		default:
			return fmt.Errorf("graph: SaveParams %s: parameter %s has unsupported data %T", path, q.Name, d)
		}
		shape := make([]uint64, q.Value.Dims())
		for j, s := range q.Value.Shape() {
			shape[j] = uint64(s)
		}
		tv, err := safetensors.NewTensorView(dt, shape, raw)
		if err != nil {
			return fmt.Errorf("graph: SaveParams %s: %s: %v", path, q.Name, err)
		}
		views[q.Name] = tv
		if i > 0 {
			order += "\n"
		}
		order += q.Name
	}
	info[OrderKey] = order
	buf, err := safetensors.Serialize(views, info)
	if err != nil {
		return fmt.Errorf("graph: SaveParams %s: %v", path, err)
	}
	return WriteFileAtomic(path, buf)
}

// WriteFileAtomic writes data to path through a synced temporary file
// beside it and a rename, so that a crash never leaves a half-written
// file. It refuses a path that names something other than a regular file
// (a directory, a device, a pipe), which the rename would replace.
func WriteFileAtomic(path string, data []byte) (err error) {
	if err := RegularOrAbsent(path); err != nil {
		return fmt.Errorf("graph: writing: %w", err)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPattern(filepath.Base(path)))
	if err != nil {
		return fmt.Errorf("graph: writing %s: %v", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("graph: writing %s: %v", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("graph: writing %s: %v", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("graph: writing %s: %v", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("graph: writing %s: %v", path, err)
	}
	return nil
}

// CheckWritable reports whether a file can be written at path: that path
// is a regular file or absent, and a file can be created beside it. A
// program can so find a bad output path before a long run rather than
// after it.
func CheckWritable(path string) error {
	var nr *NotRegularError
	if err := RegularOrAbsent(path); errors.As(err, &nr) {
		return fmt.Errorf("it is %s, not a file to write", nr.What)
	} else if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".medusa-check*")
	if err != nil {
		return fmt.Errorf("cannot write there: %v", err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// NotRegularError reports a path to write that names something other
// than a regular file.
type NotRegularError struct {
	Path string
	What string // "a directory", "a device", "a named pipe", "a socket"
}

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("%s is %s, not a file to write", e.Path, e.What)
}

// tempPattern is the name pattern of WriteFileAtomic's temporary files for a
// file named base.
func tempPattern(base string) string { return "." + base + ".tmp*" }

// RemoveStaleTemps removes the temporary files that writes to path
// interrupted by a crash or kill -9 left beside it, and returns how many
// it removed. Call it only when no other process is writing path.
func RemoveStaleTemps(path string) (int, error) {
	names, err := filepath.Glob(filepath.Join(filepath.Dir(path), tempPattern(filepath.Base(path))))
	if err != nil {
		return 0, err
	}
	for i, n := range names {
		if err := os.Remove(n); err != nil {
			return i, err
		}
	}
	return len(names), nil
}

// RegularOrAbsent returns a *NotRegularError when path exists and is not
// a regular file (or a link to one), and the error of Stat if it fails
// otherwise than for a missing file.
func RegularOrAbsent(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	m := fi.Mode()
	var what string
	switch {
	case m.IsRegular():
		return nil
	case m.IsDir():
		what = "a directory"
	case m&os.ModeCharDevice != 0, m&os.ModeDevice != 0:
		what = "a device"
	case m&os.ModeNamedPipe != 0:
		what = "a named pipe"
	case m&os.ModeSocket != 0:
		what = "a socket"
	default:
		what = "not a regular file"
	}
	return &NotRegularError{Path: path, What: what}
}

// LoadParams reads a safetensors file written by SaveParams (or any
// safetensors file of F32/F64 tensors) and returns its parameters, in the
// recorded order when there is one, else in name order, and its metadata.
func LoadParams(path string) (*Params, map[string]string, error) {
	buf, err := readSafetensors(path)
	if err != nil {
		return nil, nil, fmt.Errorf("graph: LoadParams: %v", err)
	}
	return DecodeParams(buf, path)
}

// maxHeader bounds a safetensors header: medusa's hold a few kilobytes.
const maxHeader = 64 << 20

// readSafetensors reads a safetensors file after checking that it is a
// regular file and that its header describes exactly the bytes that
// follow, so that neither a device, a pipe nor a file whose header lies
// about its size (a sparse file of zeros, say) is read whole.
func readSafetensors(path string) ([]byte, error) {
	if err := RegularOrAbsent(path); err != nil {
		var nr *NotRegularError
		if errors.As(err, &nr) {
			return nil, fmt.Errorf("%s is %s, not a checkpoint", path, nr.What)
		}
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	var prefix [8]byte
	if _, err := io.ReadFull(f, prefix[:]); err != nil {
		return nil, fmt.Errorf("%s: not a valid safetensors file: %d bytes are too few", path, size)
	}
	n := binary.LittleEndian.Uint64(prefix[:])
	if n == 0 || n > maxHeader || int64(n) > size-8 {
		return nil, fmt.Errorf("%s: not a valid safetensors file: its header length is %d in a file of %d bytes", path, n, size)
	}
	header := make([]byte, n)
	if _, err := io.ReadFull(f, header); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(header, &entries); err != nil {
		return nil, fmt.Errorf("%s: not a valid safetensors file: its header is not JSON: %v", path, err)
	}
	var end uint64
	for name, raw := range entries {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			Offsets []uint64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &e); err != nil || len(e.Offsets) != 2 {
			return nil, fmt.Errorf("%s: not a valid safetensors file: tensor %q has no valid data offsets", path, name)
		}
		end = max(end, e.Offsets[1])
	}
	if want := 8 + n + end; want != uint64(size) {
		return nil, fmt.Errorf("%s: not a valid safetensors file: its header describes %d bytes, the file has %d", path, want, size)
	}
	buf := make([]byte, size)
	copy(buf, prefix[:])
	copy(buf[8:], header)
	if _, err := io.ReadFull(f, buf[8+n:]); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return buf, nil
}

// DecodeParams is LoadParams on the bytes of a file; path is only used in
// error messages. Tensor sizes are checked against the buffer before any
// allocation, so a header that claims more data than there is fails.
func DecodeParams(buf []byte, path string) (*Params, map[string]string, error) {
	st, err := safetensors.Deserialize(buf)
	if err != nil {
		return nil, nil, fmt.Errorf("graph: LoadParams %s: not a valid safetensors file: %v", path, err)
	}
	_, md, err := safetensors.ReadMetadata(buf)
	if err != nil {
		return nil, nil, fmt.Errorf("graph: LoadParams %s: %v", path, err)
	}
	meta := md.Metadata()
	names := st.Names()
	if o, ok := meta[OrderKey]; ok {
		names = splitLines(o)
		if len(names) != st.Len() {
			return nil, nil, fmt.Errorf("graph: LoadParams %s: order lists %d names for %d tensors", path, len(names), st.Len())
		}
	}
	p := new(Params)
	for _, name := range names {
		tv, ok := st.Tensor(name)
		if !ok {
			return nil, nil, fmt.Errorf("graph: LoadParams %s: no tensor %q", path, name)
		}
		shape := make([]int, len(tv.Shape()))
		for i, s := range tv.Shape() {
			if s == 0 || s > math.MaxInt32 {
				return nil, nil, fmt.Errorf("graph: LoadParams %s: tensor %q has shape %v", path, name, tv.Shape())
			}
			shape[i] = int(s)
		}
		raw := tv.Data()
		var t *tensor.Dense
		switch tv.DType() {
		case safetensors.F32:
			d := make([]float32, len(raw)/4)
			for i := range d {
				d[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
			t = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(d))
		case safetensors.F64:
			d := make([]float64, len(raw)/8)
			for i := range d {
				d[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
			}
			t = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(d))
		default:
			return nil, nil, fmt.Errorf("graph: LoadParams %s: tensor %q has dtype %v, want F32 or F64", path, name, tv.DType())
		}
		if err := p.Add(name, t); err != nil {
			return nil, nil, fmt.Errorf("graph: LoadParams %s: %v", path, err)
		}
	}
	delete(meta, OrderKey)
	return p, meta, nil
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}
