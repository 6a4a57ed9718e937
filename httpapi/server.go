// Package httpapi is idledger's HTTP interface, built on echo v4: the operator API
// (/admin/v1), SCIM 2.0 (/scim/v2, RFC 7643/7644) and health.
//
// It adapts HTTP to the domain and nothing else: handlers call a [domain.Service] for writes and
// read models for reads, and every error becomes a response in one place (errors.go). A write
// answers only once the local projector has applied it (read-your-writes), so a client's next GET
// or filter query sees its change.
package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/httpapi/webhook"
)

// Reader is what the handlers read from the projections.
type Reader interface {
	domain.UserReader
	domain.GroupReader
	FindTenant(ctx context.Context, id domain.TenantID) (domain.Tenant, error)
	FindTenantByTokenHash(ctx context.Context, hash string) (domain.Tenant, error)
	ListUsers(ctx context.Context, tenant domain.TenantID, keep func(*domain.User) bool, offset, limit int) ([]domain.User, int, error)
	QueryUsers(ctx context.Context, tenant domain.TenantID, q domain.ListQuery) ([]domain.User, int, error)
	QueryGroups(ctx context.Context, tenant domain.TenantID, q domain.ListQuery) ([]domain.Group, int, error)
	ProvisioningStats(ctx context.Context, tenant domain.TenantID) (domain.ProvisioningStats, error)
	consoleReader // console.go
}

// Projector is the local projector: writes wait on it, health reports it.
type Projector interface {
	WaitFor(ctx context.Context, v domain.Version) error
	Ready() error
}

// CatchUpReporter is implemented by a [Projector] that tells whether it is still replaying the
// log up to where it stood at start (projections.Projector does). While it is, the routes that
// read the read models answer 503 with Retry-After.
type CatchUpReporter interface {
	CatchingUp() bool
}

// FailureReporter is implemented by a [Projector] that can stop on an event it cannot apply
// (projections.Projector does): from then on its read models miss every later change, so the
// routes that answer from them (SCIM, the company API, sign-ins) answer 503 instead, until the
// operator repairs them (GET /admin/v1/projections, idledger projections rebuild).
type FailureReporter interface {
	Failed() error
}

// WriteGate is implemented by a [Projector] that knows when it cannot make a write visible
// (projections.Projector does): while RefuseWrites returns an error, write requests answer
// 503 with Retry-After before anything is appended, instead of acknowledging a change reads
// would not show.
type WriteGate interface {
	RefuseWrites() error
}

// StorageReporter reports why the event log refuses writes for lack of space (nil if it does
// not); /healthz says so. eventstore.Store implements it.
type StorageReporter interface {
	StorageFault() error
}

// Config holds the server's settings.
type Config struct {
	// BaseURL is the public URL prefix for meta.location and the URLs handed to clients.
	BaseURL string
	// AdminToken guards /admin; empty disables the operator API.
	AdminToken string
	// BodyLimit is the largest request body accepted, in bytes (default 1 MiB).
	BodyLimit int64
	// WriteWait bounds how long a write waits to become visible before answering (default 2 s).
	WriteWait time.Duration
	// Metrics is the registry served at /metrics and fed by every request; nil creates one
	// that measures HTTP only (cmd shares one with the event store and the projector).
	Metrics *Metrics
	// RateLimit is each company's sustained request rate per second on the routes its token
	// opens (SCIM and /api/v1), RateBurst its bucket size (default twice the rate); above it
	// requests get 429 with Retry-After (ratelimit.go). Zero means no limit.
	RateLimit float64
	RateBurst int
	// Fairness bounds each company's concurrent scans and the time of a list read
	// (fairness.go); the zero value gives the defaults.
	Fairness FairnessConfig
	// Audit, if set, turns on the audit routes, the sync-cycle routes and the recording of
	// SCIM requests (audit.go); nil leaves them off.
	Audit Auditor
	// SSO, if set, turns on the /saml routes, /api/v1/me and the SSO company API (sso.go);
	// nil leaves them answering 404.
	SSO *SSOConfig
	// Storage, if set, is asked by /healthz whether the event log has room for writes.
	Storage StorageReporter
	// KeyUsage, if set, keeps when each API key was last used, shared by all instances
	// (credentials.go); nil keeps it in this instance's memory.
	KeyUsage KeyUsage
	// ConsoleSessions, if set, holds the company console's sessions, shared by all instances
	// (console_auth.go), and turns on setup links and the console's sign-in; nil leaves them
	// answering 404.
	ConsoleSessions ConsoleSessions
	// Lockout bounds refused console credentials per source (lockout.go).
	Lockout LockoutConfig
	// Now is the clock of console sessions and lock-outs (default time.Now); setup links
	// expire by the domain.Service's clock.
	Now func() time.Time
	// Eraser, if set, finishes erasures (erase.go); nil answers the erase routes 404.
	Eraser Eraser
	// Feed, if set, turns on the change feed: /api/v1/events and its live stream (events.go).
	Feed FeedLog
	// FeedHeartbeat is the live stream's comment heartbeat interval (default 15 s).
	FeedHeartbeat time.Duration
	// Webhooks, if set (with Feed), turns on the company's webhook endpoints (webhooks.go);
	// it delivers them.
	Webhooks *webhook.Deliverer
}

// Server serves the HTTP API. Create it with New; it is an http.Handler.
type Server struct {
	cfg       Config
	svc       *domain.Service
	read      Reader
	projector Projector
	log       *slog.Logger
	echo      *echo.Echo
	metrics   *Metrics     // served at /metrics (metrics.go)
	limiter   *rateLimiter // per-company request rate (ratelimit.go); nil admits everything
	scans     *scanBudget  // per-company concurrent scans (fairness.go); nil admits everything
	tokens    *tokenCache  // company credential hash → credential (tokencache.go); nil caches nothing
	usage     *keyUsage    // API keys' last use (credentials.go)
	buffers   *sync.Pool   // of *[]byte: response buffers (writeSCIM)

	sso *ssoState // from Config.SSO (sso.go); nil turns the SSO routes off

	console *consoleState // from Config.ConsoleSessions (console_auth.go); nil turns the console off

	audit Auditor // Config.Audit (audit.go); nil turns audit, cycles and request records off

	hub    *feedHub       // the live stream's one log subscription (events_stream.go); nil without Feed
	cycles *consoleCycles // the console's sync cycle figures (console_cycles.go)
}

// New returns a Server with its routes.
func New(cfg Config, svc *domain.Service, read Reader, projector Projector, log *slog.Logger) *Server {
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = 1 << 20
	}
	if cfg.WriteWait <= 0 {
		cfg.WriteWait = 2 * time.Second
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if log == nil {
		log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	cfg.Fairness = cfg.Fairness.withDefaults()
	s := &Server{cfg: cfg, svc: svc, read: read, projector: projector, log: log, echo: echo.New(), metrics: cfg.Metrics,
		limiter: newRateLimiter(cfg.RateLimit, cfg.RateBurst, nil), tokens: newTokenCache(projector),
		buffers: newBufferPool(), audit: cfg.Audit, scans: newScanBudget(cfg.Fairness.ScanBudget),
		usage: newKeyUsage(cfg.KeyUsage, log), cycles: newConsoleCycles()}
	if cfg.SSO != nil {
		s.sso = newSSOState(*cfg.SSO, cfg.BaseURL)
	}
	if cfg.Feed != nil {
		s.hub = newFeedHub(cfg.Feed, log)
	}
	s.echo.HideBanner = true
	s.echo.HidePort = true
	s.echo.HTTPErrorHandler = s.handleError
	s.echo.Pre(normalizePath)
	s.echo.Use(s.requestContext)
	s.echo.Use(s.observe) // metrics and the access log (metrics.go)
	// A panic becomes a 500 "internal error" through observe and handleError; the stack goes
	// to the log with the error, never to the client.
	s.echo.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableStackAll: true, DisableErrorHandler: true, LogErrorFunc: recovered,
	}))
	// The server's limit is the one a 413 names unless a route sets its own (limitBody), so it
	// need not be recorded in each request.
	s.echo.Use(middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: byteSize(cfg.BodyLimit)}))
	s.routes()
	return s
}

func (s *Server) routes() {
	e := s.echo
	e.GET("/healthz", s.handleHealth)
	e.GET("/metrics", s.handleMetrics) // open like /healthz (metrics.go)

	// Everything below but /admin reads the read models, and waits for them at startup.
	ready := s.whileCatchingUp

	// SAML single sign-on (sso.go): one SP per company, and the session it opens.
	e.GET("/saml/:tenant/metadata", s.handleSAMLMetadata, ready)
	e.GET("/saml/:tenant/login", s.handleSAMLLogin, ready)
	e.POST("/saml/:tenant/acs", s.handleSAMLACS, ready, acsBodyLimit)
	e.POST("/saml/:tenant/logout", s.handleSAMLLogout, ready)
	e.GET("/api/v1/me", s.handleMe, ready)

	admin := e.Group("/admin/v1", s.requireAdmin)
	admin.POST("/tenants", s.handleCreateTenant, s.gateWrites)
	admin.PATCH("/tenants/:id", s.handlePatchTenant, s.gateWrites)
	admin.POST("/tenants/:id/rotate-token", s.handleRotateToken, s.gateWrites) // tokens.go
	admin.GET("/projections", s.handleGetProjections)                          // admin_projections.go
	admin.POST("/projections/rebuild", s.handleRebuildProjections)             // 202, runs in the background

	// A company's API keys (apikeys.go), for its own API.
	admin.POST("/tenants/:id/api-keys", s.handleCreateAPIKey, s.gateWrites)
	admin.GET("/tenants/:id/api-keys", s.handleListAPIKeys)
	admin.DELETE("/tenants/:id/api-keys/:keyId", s.handleRevokeAPIKey, s.gateWrites)
	admin.POST("/tenants/:id/users/:userId/erase", s.handleAdminEraseUser, s.gateWrites) // erase.go
	admin.POST("/tenants/:id/erase", s.handleEraseCompany, s.gateWrites)

	// The company API: one table of routes and the API key scope each needs (scopes.go).
	s.registerCompanyAPI(e)
	s.registerConsoleAuth(e) // setup links and console sessions (console_auth.go)
	s.registerConsole(e)     // the company console and the home page (console.go)

	scim := e.Group("/scim/v2", ready, s.requireSCIMToken, s.recordSCIM) // recordSCIM: provisioning_cycles.go
	scim.GET("/ServiceProviderConfig", s.handleServiceProviderConfig)
	scim.GET("/ResourceTypes", s.handleListResourceTypes)
	scim.GET("/ResourceTypes/:id", s.handleGetResourceType)
	scim.GET("/Schemas", s.handleListSchemas)
	scim.GET("/Schemas/:id", s.handleGetSchema)
	scim.POST("/Users", s.handleCreateUser)
	scim.GET("/Users", s.handleListUsers)
	scim.GET("/Users/:id", s.handleGetUser)
	scim.PUT("/Users/:id", s.handleReplaceUser)
	scim.PATCH("/Users/:id", s.handlePatchUser)
	scim.DELETE("/Users/:id", s.handleDeleteUser)
	groups := scim.Group("/Groups", s.requireGroups)
	groups.POST("", s.handleCreateGroup)
	groups.GET("", s.handleListGroups)
	groups.GET("/:id", s.handleGetGroup)
	groups.PUT("/:id", s.handleReplaceGroup)
	groups.PATCH("/:id", s.handlePatchGroup)
	groups.DELETE("/:id", s.handleDeleteGroup)
	groups.POST("/.search", s.handleSearchGroups) // scim_search.go: a list request in a POST body
	scim.POST("/Users/.search", s.handleSearchUsers)
	scim.POST("/.search", s.handleSearch)
	scim.Any("/*", s.handleSCIMNotFound)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.echo.ServeHTTP(w, r)
}

// requestContext gives every request an id (X-Request-Id or a fresh one), echoes it, and puts
// it in the context for the events the request appends.
func (s *Server) requestContext(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if id == "" || len(id) > 128 {
			id = uuid.NewString()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		ctx := domain.WithRequest(c.Request().Context(), domain.Request{
			Actor: "anonymous", Correlation: id, Method: c.Request().Method, Path: c.Request().URL.Path,
			UserAgent: clientUserAgent(c), Source: s.clientSource(c), // audit.go
		})
		c.SetRequest(c.Request().WithContext(ctx))
		return next(c)
	}
}

// setActor records who is acting for the rest of the request.
func setActor(c echo.Context, actor string) {
	r := domain.RequestFrom(c.Request().Context())
	r.Actor = actor
	c.SetRequest(c.Request().WithContext(domain.WithRequest(c.Request().Context(), r)))
}

// whileCatchingUp answers 503 with Retry-After while the projector replays the log at startup
// (CatchUpReporter): before it has caught up a company's token may not be found yet (401) and
// its users may look absent, answers Entra would act on, where a 503 makes it retry later.
func (s *Server) whileCatchingUp(next echo.HandlerFunc) echo.HandlerFunc {
	r, ok := s.projector.(CatchUpReporter)
	if !ok {
		return next
	}
	gate, _ := s.projector.(WriteGate)
	failed, _ := s.projector.(FailureReporter)
	return func(c echo.Context) error {
		// Fail closed: frozen read models would let a user deactivated since sign in, and a key
		// revoked since open the API.
		if failed != nil && failed.Failed() != nil {
			return domain.Errorf(domain.ErrUnavailable, "the read models stopped on an event they cannot apply and miss every later change; nothing is answered from them until the operator repairs them")
		}
		if r.CatchingUp() {
			return domain.Errorf(domain.ErrUnavailable, "the read models are being rebuilt from the event log after a restart; retry shortly")
		}
		// Sign-ins are not refused: they read the read models and record the sign-in, which no
		// later read of the signing-in browser waits for.
		if isWrite(c.Request().Method) && !strings.HasPrefix(c.Request().URL.Path, "/saml/") {
			if err := s.refuseWrite(gate); err != nil {
				return err
			}
		}
		return next(c)
	}
}

// refuseWrite returns the 503 of a write that must not be appended because the read models
// cannot show new changes just now (stopped, stuck on a full disk, or far behind), or nil.
func (s *Server) refuseWrite(gate WriteGate) error {
	if gate == nil {
		return nil
	}
	if err := gate.RefuseWrites(); err != nil {
		s.metrics.writeRefused(refusedReadModels)
		return domain.Errorf(domain.ErrUnavailable, "nothing was stored: the read models cannot show new changes just now (%v); retry later", err)
	}
	return nil
}

// gateWrites refuses an operator write while the read models cannot show it: a company, a
// rotated token or a revoked key must be in force when the operator is told it is. /admin stays
// open otherwise (its reads, and a rebuild, are how an operator repairs the read models).
func (s *Server) gateWrites(next echo.HandlerFunc) echo.HandlerFunc {
	gate, _ := s.projector.(WriteGate)
	return func(c echo.Context) error {
		if err := s.refuseWrite(gate); err != nil {
			return err
		}
		return next(c)
	}
}

// isWrite reports whether a request with this method may append to the log.
func isWrite(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// waitVisible waits until a write at v is visible to reads; a timeout is logged, not failed,
// because the write is durable.
func (s *Server) waitVisible(c echo.Context, v domain.Version) {
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.WriteWait)
	defer cancel()
	if err := s.projector.WaitFor(ctx, v); err != nil {
		s.log.Warn("write acknowledged before it became visible", "seq", v, "err", err,
			"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	}
}

// awaitVisible waits until a write at v is visible to reads. If it is not within WriteWait
// (the projector is stopped, or retries a read-model file it cannot write), the answer is a
// 503 that says the change was stored: the event is in the log and will appear, and a client
// that retries meets 409 or 412 (or succeeds idempotently), never a second copy. Acknowledging
// a change that reads cannot show would break read-your-writes (a created user that GETs 404).
func (s *Server) awaitVisible(c echo.Context, v domain.Version) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.WriteWait)
	defer cancel()
	err := s.projector.WaitFor(ctx, v)
	if err == nil {
		return nil
	}
	s.log.Warn("write stored but not visible in time: answering 503", "seq", v, "err", err,
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	return domain.Errorf(domain.ErrUnavailable,
		"the change was stored (version %d) but the read models cannot show it yet; it will appear once they catch up (a retried create then answers 409, a retried conditional change 412)", v)
}

// handleHealth answers GET /healthz: 503 with the reason while the event log has no room for
// writes or the read models are not ready.
func (s *Server) handleHealth(c echo.Context) error {
	if s.cfg.Storage != nil {
		if err := s.cfg.Storage.StorageFault(); err != nil {
			c.Response().Header().Set("Retry-After", strconv.Itoa(retryAfterStorageFull))
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "storage_full", "reason": domain.ErrorDetail(err)})
		}
	}
	if err := s.projector.Ready(); err != nil {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// scimResources are the SCIM resource segments, in canonical case.
var scimResources = []string{"Users", "Groups", "ServiceProviderConfig", "ResourceTypes", "Schemas"}

// normalizePath drops a trailing slash and canonicalises the case of the SCIM resource segment
// (Entra and others send /users and /Users/), before routing.
func normalizePath(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		p := r.URL.Path
		if len(p) > 1 && strings.HasSuffix(p, "/") {
			p = strings.TrimRight(p, "/")
		}
		const prefix = "/scim/v2/"
		if len(p) > len(prefix) && strings.EqualFold(p[:len(prefix)], prefix) {
			rest := p[len(prefix):]
			seg, tail, _ := strings.Cut(rest, "/")
			canonical := seg
			for _, name := range scimResources {
				if strings.EqualFold(seg, name) {
					canonical = name
				}
			}
			if canonical != seg || p[:len(prefix)] != prefix { // else p is canonical already
				p = prefix + canonical
				if tail != "" {
					p += "/" + tail
				}
			}
		}
		if p != r.URL.Path {
			r.URL.Path = p
			r.URL.RawPath = ""
		}
		return next(c)
	}
}

// bodyLimitKey holds the body limit in force for a request, for the 413 detail.
const bodyLimitKey = "idledger.bodyLimit"

// limitBody caps the request body at n bytes: above it reading the body fails with echo's 413.
// A route's own limit (below the server's) replaces the server's in the 413 detail.
func limitBody(n int64) echo.MiddlewareFunc {
	limit := middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: byteSize(n)})
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		h := limit(next)
		return func(c echo.Context) error {
			c.Set(bodyLimitKey, n)
			return h(c)
		}
	}
}

// recovered turns a recovered panic into the error handleError logs (with the stack) and
// answers as a 500. It does not wrap the panic value, so no error kind leaks out of a panic.
func recovered(_ echo.Context, err error, stack []byte) error {
	return fmt.Errorf("httpapi: panic: %v\n%s", err, stack)
}

func byteSize(n int64) string {
	return strconv.FormatInt(n, 10) + "B"
}
