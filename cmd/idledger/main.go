// Command idledger is the event-sourced identity store: SCIM 2.0 provisioning in, SAML single
// sign-on out, every change kept as an event in NATS JetStream.
//
// Usage:
//
//	idledger serve --data DIR --listen ADDR [--nats-url URL] [--base-url URL] [--demo]
//	idledger projections rebuild|check --data DIR [--nats-url URL]
//	idledger audit timeline|state|cycles|export|import|verify --data DIR ...
//
// main.go reads the environment (env.go, the only place that does) and dispatches the command;
// serve.go turns flags and environment into an app.Config and runs the server that the
// cmd/internal/app package wires. The benchmark is its own command, cmd/idledger-bench.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/idledger/idledger/cmd/internal/cli"
)

func main() { cli.Main("idledger", run) }

const usage = `idledger — event-sourced identity store (SCIM 2.0 in, SAML out)

Commands:
  serve     run the server (idledger serve --help for flags)
  projections rebuild|check --data DIR
            rebuild the read models from the log, or compare them with it (server stopped)
  audit timeline|state|cycles|export|import|verify --data DIR ...
            a company's history offline (idledger audit help)
  keys rotate-master --data DIR --new-key-file FILE
            wrap every person's data key under a new master key (server stopped)
  migrate encrypt --from DIR --to NEWDIR
            copy a log written before encryption into a new one with personal data encrypted
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return cli.ErrUsage
	}
	e := readEnv(os.Getenv)
	switch args[0] {
	case "serve":
		return serve(ctx, e, args[1:], stdout, stderr)
	case "projections":
		return projectionsCmd(ctx, e, args[1:], stdout, stderr)
	case "audit":
		return auditCmd(ctx, e, args[1:], stdout, stderr) // audit.go
	case "keys":
		return keysCmd(ctx, e, args[1:], stdout, stderr) // keys.go
	case "migrate":
		return migrateCmd(ctx, e, args[1:], stdout, stderr) // migrate.go
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
	return cli.ErrUsage
}
