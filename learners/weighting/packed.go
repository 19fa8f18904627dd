package weighting

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// packed is a []float64 that encodes as text (in JSON, a string) as the
// base64 of its values' little-endian IEEE 754 bits: exact, and shorter
// and faster to encode and decode than decimal numbers, for the
// gradient-sized state of DBMTL and MoCo, which a trainer saves before
// every step. nil and empty both encode as "" and decode as nil.
type packed []float64

// MarshalText encodes p in base64.
func (p packed) MarshalText() ([]byte, error) { return p.appendBase64(nil), nil }

// appendBase64 appends p's base64 encoding to dst. It encodes 384 values
// at a time, 3072 bytes, a multiple of base64's 3-byte groups, so that the
// pieces' encodings join without padding between them.
func (p packed) appendBase64(dst []byte) []byte {
	dst = slices.Grow(dst, base64.StdEncoding.EncodedLen(8*len(p)))
	var buf [8 * 384]byte
	for len(p) > 0 {
		n := min(len(p), 384)
		for i, v := range p[:n] {
			binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(v))
		}
		dst = base64.StdEncoding.AppendEncode(dst, buf[:8*n])
		p = p[n:]
	}
	return dst
}

// appendJSON appends p to dst as a JSON string, as encoding/json would
// through MarshalText, but without its scan of the string for characters
// to escape, which base64 has none of: the scan costs milliseconds for
// the state of a network of some ten thousand shared parameters.
func (p packed) appendJSON(dst []byte) []byte {
	dst = append(dst, '"')
	dst = p.appendBase64(dst)
	return append(dst, '"')
}

// UnmarshalText decodes what MarshalText encoded.
func (p *packed) UnmarshalText(text []byte) error {
	b, err := base64.StdEncoding.AppendDecode(nil, text)
	if err != nil {
		return fmt.Errorf("weighting: packed values: %v", err)
	}
	if len(b)%8 != 0 {
		return fmt.Errorf("weighting: %d bytes of packed values, not a multiple of 8", len(b))
	}
	if len(b) == 0 {
		*p = nil
		return nil
	}
	v := make([]float64, len(b)/8)
	for i := range v {
		v[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	*p = v
	return nil
}
