// Command medusa trains and evaluates meta-learning and multi-task models.
//
// Usage:
//
//	medusa train [flags]   meta-train a model (MAML on sinusoids by default)
//	medusa toy [flags]     run multi-task weighting methods on the toy problem
//	medusa eval [flags]    adapt a meta-trained model to fresh test tasks
//	medusa plot [flags]    draw the training curves of a log
//	medusa devices         list the GPUs, CUDA driver and libraries found
//	medusa help [command]  explain a command
//
// train and eval run on the first GPU when its driver, NVRTC and cuBLAS
// load, and on the CPU otherwise (--device).
//
// Run "medusa train --help" for the flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling so that a second
	// one ends the process at once.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err == nil {
		return
	}
	var ue *usageError
	if errors.As(err, &ue) {
		os.Exit(2)
	}
	if !errors.Is(err, errReported) {
		fmt.Fprintln(os.Stderr, "medusa:", err)
	}
	os.Exit(1)
}
