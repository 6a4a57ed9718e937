// Package app wires idledger's adapters into one running server: the read models (bbolt), the
// event log (NATS JetStream), the projector between them, the domain service, SAML and the
// HTTP API. `idledger serve` runs it, and `idledger-bench` measures it in its own process.
//
// [Start] takes a [Config] (the command line and the environment, read by the caller) and
// returns a listening [Server]; [Server.Shutdown] closes everything in the reverse order. The
// package holds no business logic.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/httpapi"
	"github.com/idledger/idledger/httpapi/webhook"
	"github.com/idledger/idledger/projections"
	"github.com/idledger/idledger/projections/usernames"
	"github.com/idledger/idledger/saml"
)

// Config is everything a server is started with. The zero value of each field is its default.
type Config struct {
	// DataDir holds DIR/nats (the embedded JetStream), DIR/projections.db (bbolt) and the SAML
	// SP key pair.
	DataDir string
	// Listen is the HTTP address ("127.0.0.1:0" picks a free port).
	Listen string
	// NATSURL connects to an external NATS instead of the embedded server.
	NATSURL string
	// BaseURL is the public URL in SCIM locations and SAML; empty means http://<listen>.
	BaseURL string
	// AdminToken guards /admin; empty disables the operator API (with Demo, one is generated
	// once into DIR/admin-token).
	AdminToken string
	// Replicas is the replication of the stream and the buckets idledger creates; zero means
	// 1 embedded, 3 with NATSURL.
	Replicas int
	// NoSync acknowledges writes before fsync (embedded server only; not durable).
	NoSync bool
	// SyncProjections fsyncs the read-model file at every projector commit. By default it is
	// synced on shutdown only and rebuilt from the log after a machine crash
	// (projections/durability.go): the log alone carries durability.
	SyncProjections bool
	// Demo creates a demo company on first start and prints its SCIM token to Stdout.
	Demo bool
	// BodyLimit is the largest request body in bytes (zero: httpapi's default, 1 MiB).
	BodyLimit int64
	// RateLimit is each company's request rate per second (burst twice that); above it requests
	// get 429 with Retry-After. Zero means no limit; `idledger serve` defaults to 200.
	RateLimit float64
	// Fairness bounds each company's concurrent scans and a list read's time (zero values:
	// httpapi's defaults).
	Fairness httpapi.FairnessConfig
	// SAMLKey and SAMLCert are PEM files of the SAML SP key pair; empty generates one into
	// DataDir on first start.
	SAMLKey, SAMLCert string
	// CycleGap is the quiet time that ends a SCIM sync cycle (zero: 10 minutes);
	// RequestRetention how long SCIM request records are kept (zero: 30 days).
	CycleGap         time.Duration
	RequestRetention time.Duration
	// MaxStorage is the embedded JetStream's storage limit, RequestRecordsMaxBytes the largest
	// size of the SCIM request records (IDL_REQUESTS); zero scales each with the data volume
	// (eventstore.Config). A full volume is a state the server heals from by itself: writes
	// answer 507 meanwhile.
	MaxStorage             int64
	RequestRecordsMaxBytes int64
	// WebhookAllowPrivate lets webhooks reach loopback, private and link-local addresses and
	// use http (development and tests); WebhookRetryFor is how long a failing delivery is
	// retried before the endpoint is disabled (zero: 72 hours).
	WebhookAllowPrivate bool
	WebhookRetryFor     time.Duration
	// Logger receives the server's log (nil: none); Stdout what Demo prints (nil: nothing).
	Logger *slog.Logger
	Stdout io.Writer
	// MasterKeyFile holds the master key that wraps the per-person data keys (README
	// "Personal data"); empty means DIR/master.key, generated on first start.
	MasterKeyFile string
	// PlainPersonalData stores personal data in clear (no master key, no erasure): only for
	// the benchmark's comparison run.
	PlainPersonalData bool
	// Now and NewID default to the wall clock and UUIDv7; tests may inject them.
	Now   func() time.Time
	NewID func() string
}

// withDefaults fills the defaults that the parts below do not apply themselves.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewID == nil {
		c.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	if c.Replicas == 0 && c.NATSURL != "" {
		c.Replicas = 3
	}
	return c
}

// Server is one running idledger server. Its exported parts are for the commands and tests
// that run it in-process; Config is the configuration it runs with (the operator token
// resolved, the defaults filled in).
type Server struct {
	Config

	Store     *eventstore.Store
	DB        *projections.DB
	Projector *projections.Projector
	Service   *domain.Service
	Audit     *audit.Service // the audit API, SCIM sync cycles and request records
	SAML      *saml.Service
	Metrics   *httpapi.Metrics // the Prometheus registry behind /metrics
	API       *httpapi.Server
	HTTP      *http.Server // serves API on the listener, with every phase of a connection bounded
	// Webhooks delivers the change feed to the companies' webhook endpoints.
	Webhooks *webhook.Deliverer

	baseURL    string
	listener   net.Listener
	stopProj   context.CancelFunc
	projDone   chan struct{}
	stopHooks  context.CancelFunc
	hooksDone  chan struct{}
	closeOnce  sync.Once
	httpClosed chan struct{}
}

// Start opens the read models and the log, starts the projector and the HTTP server, and
// returns once the server is listening. With Demo set it then waits for the projections and
// prints what a new user needs. On an error everything opened so far is closed again.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	s := &Server{Config: cfg.withDefaults()}
	if err := s.run(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// run is the start-up sequence. The read-model file opens first: its lock tells at once
// whether another server uses the data dir.
func (s *Server) run(ctx context.Context) error {
	steps := []func(context.Context) error{
		s.prepareDataDir,
		s.openReadModels,
		s.openLog,
		s.startProjector,
		s.buildServices,
		s.listen,
		s.openSSO,
		s.buildAPI,
		s.serveHTTP,
		s.resumeErasures, // erase.go
	}
	if s.Demo {
		steps = append(steps, s.demo)
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Addr returns the address the HTTP server listens on.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// prepareDataDir creates the data dir and, with Demo, the operator token kept in it.
func (s *Server) prepareDataDir(context.Context) error {
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if s.Demo && s.AdminToken == "" {
		tok, err := s.persistentSecret("admin-token")
		if err != nil {
			return err
		}
		s.AdminToken = tok
	}
	if s.AdminToken == "" {
		s.Logger.Warn("IDLEDGER_ADMIN_TOKEN is not set: the operator API (/admin) is disabled")
	}
	return nil
}

// openReadModels opens DIR/projections.db; a file the log must rebuild is replaced
// (projections.Options.Recover).
func (s *Server) openReadModels(context.Context) error {
	db, err := projections.Open(filepath.Join(s.DataDir, "projections.db"), projections.Options{
		LazySync: !s.SyncProjections, Recover: true, Logger: s.Logger, Now: s.Now})
	if err != nil {
		return fmt.Errorf("data dir %s: %w", s.DataDir, err)
	}
	s.DB = db
	return nil
}

// openLog opens the event log; one Prometheus registry is fed by the log, the projector and
// the HTTP server.
func (s *Server) openLog(ctx context.Context) error {
	s.Metrics = httpapi.NewMetrics()
	var master *eventstore.MasterKey
	if !s.PlainPersonalData {
		if s.NATSURL != "" && s.MasterKeyFile == "" {
			return errors.New("with an external NATS every instance needs the same master key of personal data: set --master-key-file (IDLEDGER_MASTER_KEY_FILE)")
		}
		var created bool
		var err error
		if master, created, err = eventstore.LoadMasterKey(s.DataDir, s.MasterKeyFile, true); err != nil {
			return err
		}
		if created {
			s.Logger.Warn("generated the master key that protects personal data: back it up now, without it the log's personal data cannot be read",
				"file", filepath.Join(s.DataDir, eventstore.DefaultMasterKeyFile))
		}
	}
	store, err := eventstore.Open(ctx, eventstore.Config{
		Dir: s.DataDir, URL: s.NATSURL, Replicas: s.Replicas, NoSync: s.NoSync, Logger: s.Logger,
		Observer: s.Metrics, RequestRetention: s.RequestRetention,
		MaxStorage: s.MaxStorage, RequestMaxBytes: s.RequestRecordsMaxBytes, MasterKey: master,
	})
	if err != nil {
		return err
	}
	s.Store = store
	return nil
}

// startProjector starts feeding the log into the read models.
func (s *Server) startProjector(ctx context.Context) error {
	s.Projector = projections.NewProjector(s.DB, s.Store, projections.ProjectorConfig{Logger: s.Logger, Observer: s.Metrics})
	s.Metrics.WatchProjection(s.Projector, s.Logger)
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopProj, s.projDone = cancel, make(chan struct{})
	go func() {
		defer close(s.projDone)
		_ = s.Projector.Run(pctx) // a failure is logged and reported by /healthz
	}()
	return nil
}

// buildServices builds the domain's services over the log and the read models: commands
// (a write waits until the projector shows it) and the audit history.
func (s *Server) buildServices(context.Context) error {
	s.Service = &domain.Service{Log: s.Store, Read: s.DB, Sync: s.Projector.WaitFor, Now: s.Now, NewID: s.NewID, Names: usernames.Rule{}}
	s.Audit = &audit.Service{Log: s.Store, History: s.Store, Requests: s.Store, Now: s.Now, NewID: s.NewID, Gap: s.CycleGap, Names: usernames.Rule{},
		FoldAhead: audit.DefaultFoldAhead}
	return nil
}

// listen opens the HTTP listener; the base URL defaults to its address.
func (s *Server) listen(context.Context) error {
	l, err := net.Listen("tcp", s.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.Listen, err)
	}
	s.listener, s.baseURL = l, s.Config.BaseURL
	if s.baseURL == "" {
		s.baseURL = "http://" + l.Addr().String()
	}
	return nil
}

// openSSO builds the SAML service provider: the SP key pair (flags, or generated once into
// DIR) and the KV buckets shared by all instances.
func (s *Server) openSSO(ctx context.Context) error {
	spKeys, created, err := saml.LoadKeyPair(s.SAMLKey, s.SAMLCert, s.DataDir, s.Now())
	if err != nil {
		return err
	}
	if created {
		s.Logger.Info("created the SAML SP key pair", "certificate", filepath.Join(s.DataDir, "saml-sp.crt"))
	}
	requests, err := s.Store.OpenRecords(ctx, eventstore.BucketSAMLRequests, "outstanding SAML AuthnRequests", 15*time.Minute)
	if err != nil {
		return err
	}
	assertions, err := s.Store.OpenRecords(ctx, eventstore.BucketSAMLAssertions, "ids of accepted SAML assertions (replay cache)", 15*time.Minute)
	if err != nil {
		return err
	}
	s.SAML, err = saml.New(saml.Config{BaseURL: s.baseURL, KeyPair: spKeys, Reader: s.DB, Log: s.Store,
		Requests: requests, Assertions: assertions, Now: s.Now})
	return err
}

// buildAPI builds the HTTP API: SCIM, the company and operator APIs (with
// /admin/v1/projections, projadmin.go), audit and SSO.
func (s *Server) buildAPI(ctx context.Context) error {
	sessions, err := s.Store.OpenRecords(ctx, eventstore.BucketSessions, "browser sessions", 12*time.Hour)
	if err != nil {
		return err
	}
	// An API key's last use, outside the log (a use is not a change); a record lives a year
	// after the key's last use.
	usage, err := s.Store.OpenRecords(ctx, eventstore.BucketKeyUsage, "last use of each company API key", 366*24*time.Hour)
	if err != nil {
		return err
	}
	if err := s.startWebhooks(ctx); err != nil {
		return err
	}
	s.API = httpapi.New(httpapi.Config{BaseURL: s.baseURL, AdminToken: s.AdminToken, BodyLimit: s.BodyLimit,
		Metrics: s.Metrics, RateLimit: s.RateLimit, Audit: s.Audit, Storage: s.Store, Fairness: s.Fairness, KeyUsage: usage,
		Eraser: eraser{store: s.Store, db: s.DB}, Feed: s.Store, Webhooks: s.Webhooks,
		SSO: &httpapi.SSOConfig{SAML: s.SAML, Sessions: sessions, SessionTTL: 8 * time.Hour, Now: s.Now},
		// Console sessions share the bucket, under their own keys (httpapi/console_auth.go).
		ConsoleSessions: sessions, Now: s.Now},
		s.Service, s.DB, projectionAdmin{s.Projector}, s.Logger)
	return nil
}

// startWebhooks starts delivering the change feed to the companies' webhook endpoints; the
// secrets and delivery records live in KV buckets, outside the log (eventstore/feed_webhooks.go).
func (s *Server) startWebhooks(ctx context.Context) error {
	secrets, err := s.Store.OpenBucket(ctx, eventstore.BucketWebhookSecrets, "signing secrets of webhook endpoints")
	if err != nil {
		return err
	}
	deliveries, err := s.Store.OpenBucket(ctx, eventstore.BucketWebhookDeliveries, "delivery attempts of webhook endpoints")
	if err != nil {
		return err
	}
	s.Webhooks = webhook.New(webhook.Config{Queues: s.Store, Secrets: secrets, Deliveries: deliveries,
		Endpoints: s.DB.WebhookTenants, Disable: func(ctx context.Context, tenant domain.TenantID, id, reason string) error {
			_, err := s.Service.DisableWebhook(ctx, tenant, id, reason)
			return err
		}, AllowPrivate: s.WebhookAllowPrivate, RetryFor: s.WebhookRetryFor, Logger: s.Logger, Now: s.Now})
	if s.WebhookAllowPrivate {
		s.Logger.Warn("webhooks may reach private addresses and use http (--webhook-allow-private): for development only")
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopHooks, s.hooksDone = cancel, make(chan struct{})
	go func() {
		defer close(s.hooksDone)
		_ = s.Webhooks.Run(hctx)
	}()
	return nil
}

// serveHTTP serves the API on the listener until Shutdown.
func (s *Server) serveHTTP(context.Context) error {
	s.HTTP = &http.Server{
		Handler: s.API,
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
		ErrorLog:       slog.NewLogLogger(s.Logger.Handler(), slog.LevelWarn),
	}
	s.HTTP.RegisterOnShutdown(s.API.CloseStreams) // live event streams end instead of holding the shutdown
	s.httpClosed = make(chan struct{})
	go func() {
		defer close(s.httpClosed)
		if err := s.HTTP.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Logger.Error("http server stopped", "err", err)
		}
	}()
	s.Logger.Info("idledger listening", "addr", s.Addr(), "base_url", s.baseURL, "data", s.DataDir,
		"nats", s.natsName())
	return nil
}

// natsName names the event log's server for the log and the demo banner.
func (s *Server) natsName() string {
	if s.NATSURL == "" {
		return "embedded"
	}
	return s.NATSURL
}

// Shutdown drains HTTP, stops the projector, closes the read models and shuts NATS down.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	s.closeOnce.Do(func() {
		if s.HTTP != nil {
			if err := s.HTTP.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			}
			<-s.httpClosed
		} else if s.listener != nil {
			s.listener.Close()
		}
		if s.stopHooks != nil {
			s.stopHooks()
			<-s.hooksDone
		}
		if s.stopProj != nil {
			s.stopProj()
			<-s.projDone
		}
		// The log first: the read-model file's lock is what keeps offline commands away from
		// the data dir, so it is released last.
		if s.Store != nil {
			if err := s.Store.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if s.DB != nil {
			if err := s.DB.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// Close shuts down with a 10 s bound.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}
