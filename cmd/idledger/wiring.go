package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/httpapi"
	"github.com/idledger/idledger/projections"
	"github.com/idledger/idledger/saml"
)

// Main is one running idledger server. Set its fields, call Run, and Shutdown (or Close) it.
// Tests run it in-process on 127.0.0.1:0.
type Main struct {
	DataDir    string
	Listen     string
	NATSURL    string
	BaseURL    string
	AdminToken string
	Replicas   int
	NoSync     bool
	// SyncProjections fsyncs the read-model file at every projector commit. By default it is
	// synced on shutdown only and rebuilt from the log after a machine crash
	// (projections/durability.go): the log alone carries durability.
	SyncProjections bool
	Demo            bool
	BodyLimit       int64
	Logger          *slog.Logger
	Stdout          io.Writer
	// RateLimit is each company's request rate per second (burst twice that); above it requests
	// get 429 with Retry-After. Zero means no limit; `idledger serve` defaults to 200.
	RateLimit float64
	// Now and NewID default to the wall clock and UUIDv7; tests may inject them.
	Now   func() time.Time
	NewID func() string

	Store     *eventstore.Store
	DB        *projections.DB
	Projector *projections.Projector
	Service   *domain.Service
	API       *httpapi.Server
	Metrics   *httpapi.Metrics // the Prometheus registry behind /metrics
	SAML      *saml.Service

	// SAMLKey and SAMLCert are PEM files of the SAML SP key pair; empty generates one into
	// DataDir on first start.
	SAMLKey, SAMLCert string

	// Audit answers the audit API and tracks SCIM sync cycles (audit.go). CycleGap is the quiet
	// time that ends a cycle (env IDLEDGER_CYCLE_GAP, default 10m); RequestRetention how long
	// SCIM request records are kept (env IDLEDGER_REQUEST_RETENTION, default 720h).
	Audit            *audit.Service
	CycleGap         time.Duration
	RequestRetention time.Duration

	listener   net.Listener
	http       *http.Server
	stopProj   context.CancelFunc
	projDone   chan struct{}
	closeOnce  sync.Once
	httpClosed chan struct{}
}

// Addr returns the address the HTTP server listens on.
func (m *Main) Addr() string { return m.listener.Addr().String() }

// Run opens the read models and the log, starts the projector and the HTTP server, and returns
// once the server is listening. With Demo set it then waits for the projections and prints what
// a new user needs.
func (m *Main) Run(ctx context.Context) error {
	if m.Logger == nil {
		m.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if m.Now == nil {
		m.Now = time.Now
	}
	if m.NewID == nil {
		m.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if m.Demo && m.AdminToken == "" {
		tok, err := m.persistentSecret("admin-token")
		if err != nil {
			return err
		}
		m.AdminToken = tok
	}
	if m.AdminToken == "" {
		m.Logger.Warn("IDLEDGER_ADMIN_TOKEN is not set: the operator API (/admin) is disabled")
	}

	// The read-model file first: its lock tells us at once if another server uses this dir.
	dbPath := filepath.Join(m.DataDir, "projections.db")
	dbOpts := projections.Options{LazySync: !m.SyncProjections}
	db, err := projections.Open(dbPath, dbOpts)
	if errors.Is(err, projections.ErrUnsynced) {
		// The machine went down while the file was written without fsync: it may hold any
		// mix of old and new pages. The log has every acknowledged event: start afresh.
		m.Logger.Warn("projections.db was not synced before the machine restarted: rebuilding the read models from the log", "err", err)
		if rerr := projections.RemoveUnsynced(dbPath); rerr != nil {
			return fmt.Errorf("%w; removing it: %w", err, rerr)
		}
		db, err = projections.Open(dbPath, dbOpts)
	}
	if errors.Is(err, projections.ErrCorrupt) {
		// The read models are derived data: keep the damaged file for a post-mortem and
		// rebuild them from the log.
		aside := dbPath + ".corrupt-" + m.Now().UTC().Format("20060102T150405Z")
		if rerr := os.Rename(dbPath, aside); rerr != nil {
			return fmt.Errorf("%w; moving it aside: %w", err, rerr)
		}
		m.Logger.Warn("projections.db is damaged: moved it aside, rebuilding the read models from the log",
			"err", err, "moved_to", aside)
		db, err = projections.Open(dbPath, dbOpts)
	}
	if err != nil {
		return fmt.Errorf("data dir %s: %w", m.DataDir, err)
	}
	m.DB = db
	replicas := m.Replicas
	if replicas == 0 && m.NATSURL != "" {
		replicas = 3
	}
	// One Prometheus registry, fed by the log, the projector and the HTTP server.
	m.Metrics = httpapi.NewMetrics()
	m.Store, err = eventstore.Open(ctx, eventstore.Config{
		Dir: m.DataDir, URL: m.NATSURL, Replicas: replicas, NoSync: m.NoSync, Logger: m.Logger,
		Observer: m.Metrics, RequestRetention: envDuration("IDLEDGER_REQUEST_RETENTION", m.RequestRetention),
	})
	if err != nil {
		return err
	}
	m.Projector = projections.NewProjector(m.DB, m.Store, m.Logger, projections.WithObserver(m.Metrics))
	m.Metrics.WatchProjection(m.Projector, m.Logger)
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.stopProj, m.projDone = cancel, make(chan struct{})
	go func() {
		defer close(m.projDone)
		_ = m.Projector.Run(pctx) // a failure is logged and reported by /healthz
	}()

	m.Service = &domain.Service{Log: m.Store, Read: m.DB, Sync: m.Projector.WaitFor, Now: m.Now, NewID: m.NewID}
	m.listener, err = net.Listen("tcp", m.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", m.Listen, err)
	}
	base := m.BaseURL
	if base == "" {
		base = "http://" + m.listener.Addr().String()
	}
	m.API = httpapi.New(httpapi.Config{BaseURL: base, AdminToken: m.AdminToken, BodyLimit: m.BodyLimit, Metrics: m.Metrics,
		RateLimit: m.RateLimit},
		m.Service, m.DB, projectionAdmin{m.Projector}, m.Logger) // + /admin/v1/projections (projections.go)
	m.Audit = &audit.Service{Log: m.Store, History: m.Store, Requests: m.Store, Now: m.Now, NewID: m.NewID,
		Gap: envDuration("IDLEDGER_CYCLE_GAP", m.CycleGap)}
	m.API.SetAudit(m.Audit) // audit API, sync cycles, SCIM request records
	// SAML SSO: the SP key pair (flags, or generated once into DIR), the shared KV buckets,
	// one service provider per company.
	spKeys, created, err := saml.LoadKeyPair(m.SAMLKey, m.SAMLCert, m.DataDir, m.Now())
	if err != nil {
		return err
	}
	if created {
		m.Logger.Info("created the SAML SP key pair", "certificate", filepath.Join(m.DataDir, "saml-sp.crt"))
	}
	samlRequests, err := m.Store.OpenRecords(ctx, eventstore.BucketSAMLRequests, "outstanding SAML AuthnRequests", 15*time.Minute)
	if err != nil {
		return err
	}
	samlAssertions, err := m.Store.OpenRecords(ctx, eventstore.BucketSAMLAssertions, "ids of accepted SAML assertions (replay cache)", 15*time.Minute)
	if err != nil {
		return err
	}
	sessions, err := m.Store.OpenRecords(ctx, eventstore.BucketSessions, "browser sessions", 12*time.Hour)
	if err != nil {
		return err
	}
	m.SAML, err = saml.New(saml.Config{BaseURL: base, KeyPair: spKeys, Reader: m.DB, Log: m.Store,
		Requests: samlRequests, Assertions: samlAssertions, Now: m.Now})
	if err != nil {
		return err
	}
	m.API.SetSSO(httpapi.SSOConfig{SAML: m.SAML, Sessions: sessions, SessionTTL: 8 * time.Hour, Now: m.Now})
	m.http = &http.Server{
		Handler: m.API,
		// Slow clients hold a goroutine and a connection each; every phase is bounded.
		// A whole request (headers and a body of at most --body-limit, 1 MiB) must arrive
		// within ReadTimeout: 30 s is 35 KB/s for the largest body.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// WriteTimeout runs from the end of the headers to the end of the response, so it
		// covers the body read, the handler and the transfer. The longest legitimate answers
		// are a write (the append plus WriteWait, 2 s, for read-your-writes) and a GET of a
		// 100k-member group (15 MB of JSON, rendered in about 0.3 s); Entra itself gives up
		// after 60 s. Two minutes lets that body cross a 1 Mbit/s link.
		WriteTimeout:   2 * time.Minute,
		IdleTimeout:    2 * time.Minute, // keep-alive between Entra's requests
		MaxHeaderBytes: 64 << 10,        // a bearer token and a cookie need a few hundred bytes
		ErrorLog:       slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	m.httpClosed = make(chan struct{})
	go func() {
		defer close(m.httpClosed)
		if err := m.http.Serve(m.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("http server stopped", "err", err)
		}
	}()
	m.Logger.Info("idledger listening", "addr", m.Addr(), "base_url", base, "data", m.DataDir,
		"nats", map[bool]string{true: "embedded", false: m.NATSURL}[m.NATSURL == ""])
	if m.Demo {
		return m.demo(ctx, base)
	}
	return nil
}

// demoCompany is what DIR/demo.json keeps so every start can print the demo token again.
type demoCompany struct {
	ID    domain.TenantID `json:"id"`
	Name  string          `json:"name"`
	Token string          `json:"scimToken"`
}

// demo creates the demo company on first start and prints the URLs and tokens.
func (m *Main) demo(ctx context.Context, base string) error {
	path := filepath.Join(m.DataDir, "demo.json")
	var d demoCompany
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	case errors.Is(err, os.ErrNotExist):
		t, token, err := m.Service.CreateTenant(domain.WithRequest(ctx, domain.Request{Actor: "system", Correlation: "demo"}), "Demo Company")
		if err != nil {
			return fmt.Errorf("create demo company: %w", err)
		}
		d = demoCompany{ID: t.ID, Name: t.Name, Token: token}
		raw, _ := json.MarshalIndent(d, "", "  ")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			return fmt.Errorf("save demo company: %w", err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := m.Projector.WaitFor(wctx, t.Version); err != nil {
			return fmt.Errorf("demo company not visible: %w", err)
		}
	default:
		return err
	}
	out := m.Stdout
	if out == nil {
		out = io.Discard
	}
	fmt.Fprintf(out, `
idledger is running (data in %s, event log: %s)

  base URL         %s
  health           %s/healthz
  operator token   %s
  demo company     %s (%s)
  SCIM base URL    %s/scim/v2
  SCIM token       %s

Try it:
  export TOKEN=%s
  curl -s -X POST %s/scim/v2/Users -H "Authorization: Bearer $TOKEN" \
       -H 'Content-Type: application/scim+json' \
       -d '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@example.com","active":true}'
  curl -s -G %s/scim/v2/Users -H "Authorization: Bearer $TOKEN" --data-urlencode 'filter=userName eq "ADA@example.com"'

`, m.DataDir, map[bool]string{true: "embedded NATS JetStream", false: m.NATSURL}[m.NATSURL == ""],
		base, base, m.AdminToken, d.Name, d.ID, base, d.Token, d.Token, base, base)
	return nil
}

// persistentSecret returns the secret kept in DIR/name, creating it on first use.
func (m *Main) persistentSecret(name string) (string, error) {
	path := filepath.Join(m.DataDir, name)
	raw, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(raw)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	tok, err := domain.NewSecret(cryptoRand{})
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save %s: %w", name, err)
	}
	return tok, nil
}

// Shutdown drains HTTP, stops the projector, closes the read models and shuts NATS down.
func (m *Main) Shutdown(ctx context.Context) error {
	var errs []error
	m.closeOnce.Do(func() {
		if m.http != nil {
			if err := m.http.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			}
			<-m.httpClosed
		}
		if m.stopProj != nil {
			m.stopProj()
			<-m.projDone
		}
		// The log first: the read-model file's lock is what keeps offline commands away from
		// the data dir, so it is released last.
		if m.Store != nil {
			if err := m.Store.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if m.DB != nil {
			if err := m.DB.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// Close shuts down with a 10 s bound.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return m.Shutdown(ctx)
}
