// Command modelsync is the GitOps reconciler for machine-learning models.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/modelsync/modelsync/internal/cmd/root"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/wiring"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	f := wiring.New(cmdutil.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}, os.Getenv, version)
	code := root.Main(ctx, f, os.Args[1:])
	stop()
	os.Exit(code)
}
