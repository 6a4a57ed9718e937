package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/idledger/idledger/cmd/internal/app"
	"github.com/idledger/idledger/cmd/internal/cli"
)

// serve runs the server until ctx ends (SIGINT/SIGTERM), then shuts down gracefully.
func serve(ctx context.Context, e env, args []string, stdout, stderr io.Writer) error {
	cfg, memLimit, err := serveConfig(e, args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg.Logger = cli.NewLogger(stderr, slog.LevelInfo)
	cfg.Stdout = stdout
	if err := cli.ApplyMemoryLimit(memLimit, e.GoMemLimit, cfg.Logger); err != nil {
		fmt.Fprintln(stderr, err)
		return cli.ErrUsage
	}
	srv, err := app.Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	srv.Logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// serveConfig turns the environment and `idledger serve`'s flags into the server's
// configuration and the --memory-limit setting; --help returns flag.ErrHelp.
func serveConfig(e env, args []string, stderr io.Writer) (app.Config, string, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := app.Config{AdminToken: e.AdminToken, CycleGap: e.CycleGap, RequestRetention: e.RequestRetention, Fairness: e.Fairness}
	fs.StringVar(&cfg.DataDir, "data", "./data", "data directory (event log in DIR/nats, read models in DIR/projections.db)")
	fs.StringVar(&cfg.MasterKeyFile, "master-key-file", e.MasterKeyFile, "file of the master key that protects personal data, the same on every instance (env IDLEDGER_MASTER_KEY_FILE; default DIR/master.key, generated on first start: back it up)")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&cfg.NATSURL, "nats-url", e.NATSURL, "external NATS URL; empty runs an embedded nats-server (env IDLEDGER_NATS_URL)")
	fs.StringVar(&cfg.BaseURL, "base-url", e.BaseURL, "public base URL for SCIM locations and SAML (env IDLEDGER_BASE_URL; default http://<listen>)")
	fs.IntVar(&cfg.Replicas, "replicas", e.Replicas, "stream replicas (default 1 embedded, 3 with --nats-url; env IDLEDGER_NATS_REPLICAS)")
	fs.BoolVar(&cfg.NoSync, "no-fsync", e.NoSync, "embedded server: acknowledge writes before fsync (faster, may lose acknowledged events on power loss)")
	fs.BoolVar(&cfg.SyncProjections, "sync-projections", e.SyncProjections,
		"fsync the read-model file at every commit (default: on shutdown; after a machine crash it is rebuilt from the log) (env IDLEDGER_SYNC_PROJECTIONS=1)")
	memLimit := fs.String("memory-limit", e.MemoryLimit, cli.MemoryLimitHelp)
	fs.BoolVar(&cfg.Demo, "demo", false, "create a demo company on first start and print its SCIM token (and generate an operator token if none is set)")
	fs.Int64Var(&cfg.BodyLimit, "body-limit", 1<<20, "largest request body in bytes")
	fs.Float64Var(&cfg.RateLimit, "rate-limit", e.RateLimit,
		"requests per second per company on SCIM and /api/v1, burst twice that; above it 429 with Retry-After; 0 = no limit (env IDLEDGER_RATE_LIMIT)")
	maxStorage := fs.String("max-storage", e.MaxStorage,
		"embedded NATS: JetStream's storage limit, e.g. 200MiB (env IDLEDGER_MAX_STORAGE; default the data volume's size)")
	requestMax := fs.String("request-records-max-bytes", e.RequestRecordsMaxBytes,
		"largest size of the SCIM request records (IDL_REQUESTS), e.g. 32MiB (env IDLEDGER_REQUEST_RECORDS_MAX_BYTES; default 1GiB, at most 1/8 of the data volume when embedded)")
	fs.IntVar(&cfg.Fairness.ScanBudget, "scan-budget", e.Fairness.ScanBudget,
		"list reads that scan (no userName, externalId, emails, id or displayName equality) one company may run at once; above it 429 with Retry-After; 0 = half of GOMAXPROCS (at least 1), -1 = no limit (env IDLEDGER_SCAN_BUDGET)")
	fs.DurationVar(&cfg.Fairness.ReadTimeout, "read-timeout", e.Fairness.ReadTimeout,
		"deadline of a SCIM list or search read; a scan still running then stops with 503 and Retry-After; 0 = 30s, -1ns = none (env IDLEDGER_READ_TIMEOUT)")
	fs.BoolVar(&cfg.WebhookAllowPrivate, "webhook-allow-private", e.WebhookAllowPrivate,
		"let webhooks reach loopback, private and link-local addresses and use http; for development and tests only (env IDLEDGER_WEBHOOK_ALLOW_PRIVATE=1)")
	fs.DurationVar(&cfg.WebhookRetryFor, "webhook-retry-for", e.WebhookRetryFor,
		"how long a failing webhook delivery is retried before its endpoint is disabled; 0 = 72h (env IDLEDGER_WEBHOOK_RETRY_FOR)")
	fs.StringVar(&cfg.SAMLKey, "saml-key", "", "PEM file of the SAML SP private key (RSA); with --saml-cert. Default: generated once into DIR/saml-sp.key")
	fs.StringVar(&cfg.SAMLCert, "saml-cert", "", "PEM file of the SAML SP certificate; with --saml-key. Default: DIR/saml-sp.crt")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, "", err
		}
		return cfg, "", cli.ErrUsage
	}
	for _, size := range []struct {
		name, value string
		into        *int64
	}{{"max-storage", *maxStorage, &cfg.MaxStorage}, {"request-records-max-bytes", *requestMax, &cfg.RequestRecordsMaxBytes}} {
		if size.value == "" {
			continue
		}
		n, err := cli.ParseBytes(size.value)
		if err != nil {
			fmt.Fprintf(stderr, "--%s %q: %v\n", size.name, size.value, err)
			return cfg, "", cli.ErrUsage
		}
		*size.into = n
	}
	return cfg, *memLimit, nil
}
