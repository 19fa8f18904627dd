package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/medusa-ml/medusa/cuda"
)

// noGPU skips t on a machine with a usable GPU: these tests check the
// CPU-only behaviour.
func noGPU(t *testing.T) {
	t.Helper()
	if d, err := cuda.Open(0); err == nil {
		d.Close()
		t.Skip("this machine has a usable GPU")
	}
}

// TestDevicesWithoutGPU checks that "medusa devices" says there is no GPU,
// and why, and succeeds.
func TestDevicesWithoutGPU(t *testing.T) {
	noGPU(t)
	stdout, _, err := runCLI("devices")
	if err != nil {
		t.Fatalf("medusa devices: %v", err)
	}
	for _, want := range []string{"driver:", "devices: none", "nvrtc:", "cublas:", "medusa runs on the CPU here"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("medusa devices = %q; want it to contain %q", stdout, want)
		}
	}
	if _, _, err := runCLI("devices", "extra"); err == nil {
		t.Errorf("medusa devices extra succeeded")
	}
}

// TestDeviceSelectionWithoutGPU checks that --device auto trains on the CPU
// and says so, and that --device cuda fails with the reason.
func TestDeviceSelectionWithoutGPU(t *testing.T) {
	noGPU(t)
	_, stderr, err := runCLI("train", "--iters", "2", "--eval-tasks", "0", "--device", "auto")
	if err != nil {
		t.Fatalf("train --device auto: %v", err)
	}
	if !strings.Contains(stderr, "device: cpu (no usable GPU: ") {
		t.Errorf("train --device auto: stderr = %q; want the CPU chosen, with the reason", stderr)
	}
	_, stderr, err = runCLI("train", "--iters", "2", "--eval-tasks", "0", "--device", "cpu")
	if err != nil || !strings.Contains(stderr, "device: cpu (--device cpu)") {
		t.Errorf("train --device cpu: %v, stderr %q", err, stderr)
	}
	for _, args := range [][]string{
		{"train", "--iters", "2", "--device", "cuda"},
		{"mtl", "--steps", "2", "--device", "cuda:1"},
	} {
		_, _, err := runCLI(args...)
		var ue *usageError
		if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), "--device cuda") || !errors.Is(err, cuda.ErrNoGPU) {
			t.Errorf("medusa %v: err = %v; want a failure naming --device and why there is no GPU", args, err)
		}
	}
}
