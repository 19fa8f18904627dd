// Command medusa trains and evaluates meta-learning and multi-task models.
//
// Usage:
//
//	medusa train [flags]   meta-train a model (MAML on sinusoids by default)
//	medusa help [command]  explain a command
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
