// Command idledger is the event-sourced identity store: SCIM 2.0 provisioning in, SAML single
// sign-on out, every change kept as an event in NATS JetStream.
//
// Usage:
//
//	idledger serve --data DIR --listen ADDR [--nats-url URL] [--base-url URL] [--demo]
//	idledger bench [-short] [--out FILE] [--doc FILE]
//	idledger projections rebuild|check --data DIR [--nats-url URL]
//	idledger audit timeline|state|cycles|export|import|verify --data DIR ...
//
// main.go parses the command line and hands off to [Main], which owns the wiring and the
// open/shutdown order; it holds no business logic.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "idledger:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

const usage = `idledger — event-sourced identity store (SCIM 2.0 in, SAML out)

Commands:
  serve     run the server (idledger serve --help for flags)
  bench     measure this machine's limits, an Entra-like SCIM cycle, replay and SAML
            on a fresh temp data dir (idledger bench -short; see docs/benchmarks.md)
  projections rebuild|check --data DIR
            rebuild the read models from the log, or compare them with it (server stopped)
  audit timeline|state|cycles|export|import|verify --data DIR ...
            a company's history offline (idledger audit help)
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "bench":
		return bench(ctx, args[1:], stdout, stderr)
	case "projections":
		return projectionsCmd(ctx, args[1:], stdout, stderr)
	case "audit":
		return auditCmd(ctx, args[1:], stdout, stderr) // audit.go
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
	return errUsage
}

// newLogger returns the JSON logger used by every command.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
