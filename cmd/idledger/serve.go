package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"
)

// serve runs the server until ctx ends (SIGINT/SIGTERM), then shuts down gracefully.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	m := &Main{}
	fs.StringVar(&m.DataDir, "data", "./data", "data directory (event log in DIR/nats, read models in DIR/projections.db)")
	fs.StringVar(&m.Listen, "listen", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&m.NATSURL, "nats-url", os.Getenv("IDLEDGER_NATS_URL"), "external NATS URL; empty runs an embedded nats-server (env IDLEDGER_NATS_URL)")
	fs.StringVar(&m.BaseURL, "base-url", os.Getenv("IDLEDGER_BASE_URL"), "public base URL for SCIM locations and SAML (env IDLEDGER_BASE_URL; default http://<listen>)")
	fs.IntVar(&m.Replicas, "replicas", envInt("IDLEDGER_NATS_REPLICAS", 0), "stream replicas (default 1 embedded, 3 with --nats-url; env IDLEDGER_NATS_REPLICAS)")
	fs.BoolVar(&m.NoSync, "no-fsync", os.Getenv("IDLEDGER_NO_FSYNC") == "1", "embedded server: acknowledge writes before fsync (faster, may lose acknowledged events on power loss)")
	fs.BoolVar(&m.SyncProjections, "sync-projections", os.Getenv("IDLEDGER_SYNC_PROJECTIONS") == "1",
		"fsync the read-model file at every commit (default: on shutdown; after a machine crash it is rebuilt from the log) (env IDLEDGER_SYNC_PROJECTIONS=1)")
	memLimit := fs.String("memory-limit", os.Getenv("IDLEDGER_MEMORY_LIMIT"), memoryLimitHelp)
	fs.BoolVar(&m.Demo, "demo", false, "create a demo company on first start and print its SCIM token (and generate an operator token if none is set)")
	fs.Int64Var(&m.BodyLimit, "body-limit", 1<<20, "largest request body in bytes")
	fs.Float64Var(&m.RateLimit, "rate-limit", envFloat("IDLEDGER_RATE_LIMIT", 200),
		"requests per second per company on SCIM and /api/v1, burst twice that; above it 429 with Retry-After; 0 = no limit (env IDLEDGER_RATE_LIMIT)")
	fs.StringVar(&m.SAMLKey, "saml-key", "", "PEM file of the SAML SP private key (RSA); with --saml-cert. Default: generated once into DIR/saml-sp.key")
	fs.StringVar(&m.SAMLCert, "saml-cert", "", "PEM file of the SAML SP certificate; with --saml-key. Default: DIR/saml-sp.crt")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	m.AdminToken = os.Getenv("IDLEDGER_ADMIN_TOKEN")
	m.Logger = newLogger(stderr, slog.LevelInfo)
	m.Stdout = stdout
	if err := applyMemoryLimit(*memLimit, m.Logger); err != nil {
		fmt.Fprintln(stderr, err)
		return errUsage
	}

	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	<-ctx.Done()
	m.Logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return m.Shutdown(sctx)
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
