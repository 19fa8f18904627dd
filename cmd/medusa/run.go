package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// usageError is a bad command line: the message and usage have been
// printed, and the exit status is 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// errReported marks a failure whose message has already been printed.
var errReported = errors.New("reported")

// stepBegins, when set (by tests), is called as each training step or
// iteration begins, with its 1-based number, once its batch is drawn; an
// error it returns is taken as the step's.
var stepBegins func(n int) error

const overview = `medusa trains neural networks declared as gorgonia graphs with
meta-learning (MAML with exact second-order gradients, MAML++,
first-order MAML, ANIL, Meta-SGD, Reptile, prototypical networks, R2D2)
and multi-task learning (shared trunk, MMoE, CGC/PLE, cross-stitch or
DSelect-k; twenty task weighting methods).

Usage:
  medusa <command> [flags]

Commands:
  train   meta-train a model on a task distribution (sinusoids, synthetic
          classification, MNIST, DoubleMNIST, Omniglot) and report its
          test scores after adaptation
  mtl     train one network on several tasks at once (synthetic tables,
          MultiMNIST, a CSV file) and report each task's scores
  eval    adapt a meta-trained model (train --out) to fresh test tasks:
          scores after 0..N inner steps, adaptation and fit plots; or
          score a multi-task model (mtl --out) on held-out rows
  predict write a multi-task model's predictions for the rows of a CSV
  toy     run multi-task weighting methods on the two-objective toy problem
          and plot their trajectories
  plot    draw the training curves of a log written with --log
  devices list the GPUs, CUDA driver and libraries found (--device auto
          trains on the first GPU when all load, else on the CPU)
  help    show help for a command

Run "medusa <command> --help" for a command's flags.
`

// run is the whole program: it parses args, writes results to stdout and
// progress and errors to stderr, and returns the error to exit with.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, overview)
		return &usageError{"no command"}
	}
	switch cmd := args[0]; cmd {
	case "train":
		return train(ctx, args[1:], stdout, stderr)
	case "mtl":
		return trainMTL(ctx, args[1:], stdout, stderr)
	case "toy":
		return toy(ctx, args[1:], stdout, stderr)
	case "eval":
		return evalCmd(ctx, args[1:], stdout, stderr)
	case "predict":
		return predictCmd(ctx, args[1:], stdout, stderr)
	case "plot":
		return plotCmd(ctx, args[1:], stdout, stderr)
	case "devices":
		return devices(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		if len(args) > 1 && args[0] == "help" {
			return run(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, overview)
		return nil
	default:
		fmt.Fprintf(stderr, "medusa: unknown command %q\n\n%s", cmd, overview)
		return &usageError{"unknown command " + cmd}
	}
}

// newFlags returns the flag set of a command: errors and help are
// printed once, by parseFlags.
func newFlags(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	return fs
}

// parseFlags parses args with fs, whose usage is text followed by the
// flags. It returns bad, which prints a message and the usage and returns
// a usage error, and ok false when the command has nothing more to do:
// after --help (err nil) or a bad command line (err a usage error).
func parseFlags(fs *pflag.FlagSet, args []string, stderr io.Writer, text string) (bad func(format string, a ...any) error, ok bool, err error) {
	usage := usageOf(fs, stderr, text)
	fs.Usage = usage
	bad = func(format string, a ...any) error { return badUsage(stderr, usage, format, a...) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return bad, false, nil // pflag has printed the usage
		}
		return bad, false, bad("%v", err)
	}
	if fs.NArg() > 0 {
		return bad, false, bad("unexpected argument %q", fs.Arg(0))
	}
	return bad, true, nil
}

// usageOf returns a function that prints text and fs's flags to stderr.
func usageOf(fs *pflag.FlagSet, stderr io.Writer, text string) func() {
	return func() {
		fmt.Fprint(stderr, text)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

// badUsage prints msg and the usage text of a sub-command.
func badUsage(stderr io.Writer, usage func(), format string, a ...any) error {
	msg := fmt.Sprintf(format, a...)
	fmt.Fprintf(stderr, "medusa: %s\n", strings.TrimSpace(msg))
	usage()
	return &usageError{msg}
}
