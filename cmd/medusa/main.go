// Command medusa trains and evaluates meta-learning and multi-task models.
//
// Usage:
//
//	medusa train [flags]   meta-train a model: MAML (exact second order),
//	                       MAML++, first-order MAML, ANIL, Meta-SGD,
//	                       Reptile, prototypical networks or R2D2
//	medusa mtl [flags]     train one network on several tasks, with a
//	                       task weighting method
//	medusa eval [flags]    adapt a meta-trained model to fresh test tasks,
//	                       or score a multi-task model on held-out rows
//	medusa predict [flags] write a multi-task model's predictions for new rows
//	medusa toy [flags]     run multi-task weighting methods on the toy problem
//	medusa plot [flags]    draw the training curves of a log
//	medusa devices         list the GPUs, CUDA driver and libraries found
//	medusa help [command]  explain a command
//
// train, mtl and eval run on the first GPU when its driver, NVRTC and
// cuBLAS load, and on the CPU otherwise (--device).
//
// Run "medusa <command> --help" for a command's flags.
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
	ctx, cancel := context.WithCancel(context.Background())
	// The first SIGINT or SIGTERM stops training at the next step
	// boundary, with a checkpoint; a second one of either kind ends the
	// process at once, even when the step never ends or SIGINT was ignored
	// when medusa started (nohup, a shell's trap).
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	stopping := "stopping" // the commands that train save a checkpoint first
	if len(os.Args) > 1 && (os.Args[1] == "train" || os.Args[1] == "mtl") {
		stopping = "stopping after this step, with a checkpoint"
	}
	go func() {
		s := <-sigs
		cancel()
		fmt.Fprintf(os.Stderr, "\nmedusa: %v: %s; a second signal stops at once\n", s, stopping)
		s = <-sigs
		fmt.Fprintf(os.Stderr, "medusa: second signal (%v): stopping at once, without a checkpoint\n", s)
		code := 130 // as a shell reports SIGINT
		if s == syscall.SIGTERM {
			code = 143
		}
		os.Exit(code)
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	signal.Stop(sigs)
	cancel()
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
