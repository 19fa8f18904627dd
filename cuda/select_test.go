package cuda

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	for _, tt := range []struct {
		spec    string
		kind    string
		ordinal int
	}{{"auto", "auto", 0}, {"cpu", "cpu", 0}, {"cuda", "cuda", 0}, {"cuda:3", "cuda", 3}} {
		kind, ordinal, err := ParseSpec(tt.spec)
		if err != nil || kind != tt.kind || ordinal != tt.ordinal {
			t.Errorf("ParseSpec(%q) = %q, %d, %v; want %q, %d", tt.spec, kind, ordinal, err, tt.kind, tt.ordinal)
		}
	}
	for _, bad := range []string{"", "gpu", "cuda:", "cuda:-1", "cuda:x", "CPU"} {
		if _, _, err := ParseSpec(bad); err == nil {
			t.Errorf("ParseSpec(%q): no error", bad)
		}
	}
}

func TestSelect(t *testing.T) {
	dev, about, err := Select("cpu")
	if dev != nil || err != nil || !strings.HasPrefix(about, "cpu") {
		t.Errorf(`Select("cpu") = %v, %q, %v; want the CPU`, dev, about, err)
	}
	if _, _, err := Select("tpu"); err == nil {
		t.Error(`Select("tpu"): no error`)
	}
	d, err := Open(0)
	if err == nil {
		d.Close()
		t.Skip("this machine has a usable GPU: the fallback is not exercised")
	}
	dev, about, err = Select("auto")
	if dev != nil || err != nil || !strings.HasPrefix(about, "cpu (no usable GPU: ") {
		t.Errorf(`Select("auto") without a GPU = %v, %q, %v; want the CPU and why`, dev, about, err)
	}
	if _, _, err := Select("cuda:0"); !errors.Is(err, ErrNoGPU) {
		t.Errorf(`Select("cuda:0") without a GPU: %v; want ErrNoGPU`, err)
	}
}
