package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/observe"
)

// Metrics is idledger's Prometheus registry, served at GET /metrics. It implements
// [observe.Observer], so cmd hands it to the event store and the projector, which then report
// append and batch figures without importing Prometheus. It is safe for concurrent use.
//
// Labels never carry an id: HTTP requests are labelled with the route pattern
// ("/scim/v2/Users/:id"), not the path, and nothing is labelled by company.
type Metrics struct {
	reg  *prometheus.Registry
	http http.Handler // serves reg

	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	appendDuration  *prometheus.HistogramVec
	appendConflicts *prometheus.CounterVec
	appendedEvents  prometheus.Counter
	batchEvents     prometheus.Histogram
	batchApply      prometheus.Histogram
	refusals        *prometheus.CounterVec
	unrecorded      prometheus.Counter
	writesRefused   *prometheus.CounterVec // by reason: refusedStorageFull, refusedReadModels
	authFailures    *prometheus.CounterVec // credentials.go

	mu      sync.Mutex // guards watched
	watched bool
}

// latencyBuckets span an in-process read (sub-millisecond) to a slow fsynced write.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Values of the result label of idledger_eventstore_append_duration_seconds.
const (
	resultOK         = "ok"
	resultConflict   = "conflict"
	resultUniqueness = "uniqueness"
	resultError      = "error"
)

// NewMetrics returns a registry with idledger's metrics and the Go runtime and process
// collectors. It never touches Prometheus's global default registry, so tests may create many.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idledger_http_requests_total",
			Help: "HTTP requests answered, by method, route pattern and status code.",
		}, []string{"method", "route", "status"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "idledger_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by method, route pattern and status code.",
			Buckets: latencyBuckets,
		}, []string{"method", "route", "status"}),
		appendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "idledger_eventstore_append_duration_seconds",
			Help:    "Time to append one request's batch to the event log, by result (ok, conflict, uniqueness, error).",
			Buckets: latencyBuckets,
		}, []string{"result"}),
		appendConflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idledger_eventstore_append_conflicts_total",
			Help: "Appends refused because an aggregate moved concurrently (reason=conflict) or a unique value is held by another holder (reason=uniqueness).",
		}, []string{"reason"}),
		appendedEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "idledger_eventstore_appended_events_total",
			Help: "Events appended to the event log (claim records not included).",
		}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "idledger_projection_batch_events",
			Help:    "Events per batch committed by the projector.",
			Buckets: []float64{1, 2, 5, 10, 25, 50, 100, 250, 500},
		}),
		batchApply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "idledger_projection_apply_duration_seconds",
			Help:    "Time to apply and commit one projector batch (one bbolt write transaction).",
			Buckets: latencyBuckets,
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idledger_saml_signin_refusals_total",
			Help: "Sign-ins refused at a SAML ACS, by reason (the login history's code).",
		}, []string{"reason"}),
		unrecorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "idledger_saml_signin_refusals_unrecorded_total",
			Help: "Refused sign-ins naming no user that were only logged, not recorded in the login history, because their company's budget was spent (sso_refusals.go).",
		}),
	}
	m.writesRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idledger_writes_refused_total",
		Help: "Writes refused without storing anything: storage_full (507, the event log's disk has no room) or read_models_behind (503, the projector is stopped or cannot write the read models).",
	}, []string{"reason"})
	m.writesRefused.WithLabelValues(refusedStorageFull)
	m.writesRefused.WithLabelValues(refusedReadModels)
	// Conflicts are rare: start both series at 0 so that rate() and alerts see them.
	m.appendConflicts.WithLabelValues(resultConflict)
	m.appendConflicts.WithLabelValues(resultUniqueness)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.requestDuration,
		m.appendDuration, m.appendConflicts, m.appendedEvents,
		m.batchEvents, m.batchApply,
		m.refusals, m.unrecorded, m.writesRefused,
	)
	m.authFailures = registerAuthFailures(m.reg) // credentials.go
	m.http = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
	return m
}

// Values of the reason label of idledger_writes_refused_total.
const (
	refusedStorageFull = "storage_full"
	refusedReadModels  = "read_models_behind"
)

// writeRefused counts a write refused for reason.
func (m *Metrics) writeRefused(reason string) { m.writesRefused.WithLabelValues(reason).Inc() }

// Appended implements [observe.Observer] for the event store.
func (m *Metrics) Appended(d time.Duration, events int, err error) {
	result := resultOK
	switch {
	case err == nil:
		m.appendedEvents.Add(float64(events))
	case errors.Is(err, domain.ErrConflict):
		result = resultConflict
	case errors.Is(err, domain.ErrUniqueness):
		result = resultUniqueness
	default:
		result = resultError
	}
	if result == resultConflict || result == resultUniqueness {
		m.appendConflicts.WithLabelValues(result).Inc()
	}
	m.appendDuration.WithLabelValues(result).Observe(d.Seconds())
}

// Projected implements [observe.Observer] for the projector.
func (m *Metrics) Projected(b observe.ProjectedBatch) {
	m.batchEvents.Observe(float64(b.Events))
	m.batchApply.Observe(b.Apply.Seconds())
}

// signInReasons are the reason label's values: the login history's refusal codes. Anything
// else (a code added to the saml package but not here) counts as "other", so the label stays
// bounded.
var signInReasons = map[string]bool{
	domain.SignInSSONotConfigured: true, domain.SignInMalformed: true, domain.SignInInvalidSignature: true,
	domain.SignInWeakSignature: true, domain.SignInCertificateExpired: true, domain.SignInWrongIssuer: true,
	domain.SignInWrongAudience: true, domain.SignInWrongDestination: true, domain.SignInExpired: true,
	domain.SignInReplayed: true, domain.SignInRequestMismatch: true, domain.SignInIDPError: true,
	domain.SignInInvalidResponse: true, domain.SignInUnknownUser: true, domain.SignInInactiveUser: true,
}

// signInRefused counts one refused sign-in; recorded tells whether it went to the login
// history.
func (m *Metrics) signInRefused(reason string, recorded bool) {
	if !signInReasons[reason] {
		reason = "other"
	}
	m.refusals.WithLabelValues(reason).Inc()
	if !recorded {
		m.unrecorded.Inc()
	}
}

// ProjectionStatus is what the projection gauges read at each scrape; *projections.Projector
// implements it.
type ProjectionStatus interface {
	// Lag asks the log for its head and compares it with the checkpoint.
	Lag(ctx context.Context) (observe.ProjectionLag, error)
	// Ready returns nil once the projector has caught up and has not failed.
	Ready() error
}

// WatchProjection adds the gauges idledger_projection_lag_events, idledger_projection_lag_seconds,
// idledger_projection_checkpoint and idledger_projection_ready, computed from p at each
// scrape, so they are fresh even while the projector is idle or stuck. Errors reading the log
// head go to log. It may be called once; later calls are ignored.
func (m *Metrics) WatchProjection(p ProjectionStatus, log *slog.Logger) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.watched {
		return
	}
	m.watched = true
	if log == nil {
		log = slog.Default()
	}
	m.reg.MustRegister(&projectionCollector{p: p, log: log, now: time.Now})
}

// projectionCollector asks the projector once per scrape, so that lag in events and in seconds
// come from the same reading of the log head.
type projectionCollector struct {
	p   ProjectionStatus
	log *slog.Logger
	now func() time.Time
}

var (
	descLagEvents = prometheus.NewDesc("idledger_projection_lag_events",
		"Log messages not yet applied to the read models (log head - checkpoint).", nil, nil)
	descLagSeconds = prometheus.NewDesc("idledger_projection_lag_seconds",
		"Age of the oldest change the read models lack (now - its event time); 0 when caught up.", nil, nil)
	descCheckpoint = prometheus.NewDesc("idledger_projection_checkpoint",
		"Last log sequence applied to the read models.", nil, nil)
	descReady = prometheus.NewDesc("idledger_projection_ready",
		"1 when the projector has caught up with the log as of its start and has not failed, else 0.", nil, nil)
)

func (pc *projectionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLagEvents
	ch <- descLagSeconds
	ch <- descCheckpoint
	ch <- descReady
}

func (pc *projectionCollector) Collect(ch chan<- prometheus.Metric) {
	ready := 1.0
	if pc.p.Ready() != nil {
		ready = 0
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	lag, err := pc.p.Lag(ctx)
	if err != nil {
		// Leave the lag series out of this scrape rather than report a made-up figure.
		pc.log.Warn("metrics: projection lag unavailable", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descCheckpoint, prometheus.GaugeValue, float64(lag.Checkpoint))
	ch <- prometheus.MustNewConstMetric(descLagEvents, prometheus.GaugeValue, float64(lag.Events()))
	ch <- prometheus.MustNewConstMetric(descLagSeconds, prometheus.GaugeValue, lag.Age(pc.now()).Seconds())
}

// handleMetrics serves GET /metrics. It is not behind a token, like /healthz: the contract
// names it next to /healthz, scrapers expect it open, and its labels carry no ids or names.
func (s *Server) handleMetrics(c echo.Context) error {
	s.metrics.http.ServeHTTP(c.Response(), c.Request())
	return nil
}

// knownMethods bounds the method label: anything else is counted as "OTHER".
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// observe measures every request and writes its access log line: method, route, status,
// duration, request_id and, once known, the company. It runs inside requestContext (so the
// request id is set) and maps a handler's error to its response itself, so that the status it
// records is the one sent.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err) // handleError writes the response; the outer call then finds it committed
		}
		d := time.Since(start)
		req, res := c.Request(), c.Response()
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		method := req.Method
		if !knownMethods[method] {
			method = "OTHER"
		}
		status := strconv.Itoa(res.Status)
		s.metrics.requests.WithLabelValues(method, route, status).Inc()
		s.metrics.requestDuration.WithLabelValues(method, route, status).Observe(d.Seconds())

		if !s.log.Enabled(req.Context(), slog.LevelInfo) {
			return nil // the access log is off: do not build its line
		}
		attrs := []slog.Attr{
			slog.String("method", req.Method),
			slog.String("route", route),
			slog.String("path", logPath(c)), // never the query: filters can hold userNames
			slog.Int("status", res.Status),
			slog.Duration("duration", d),
			slog.Int64("bytes", res.Size),
			slog.String("request_id", res.Header().Get(echo.HeaderXRequestID)),
		}
		if t := tenantOf(c); t != "" {
			attrs = append(attrs, slog.String("tenant", string(t)))
		} else if t := c.Param("tenant"); t != "" {
			attrs = append(attrs, slog.String("tenant", t)) // /saml/:tenant/...
		}
		s.log.LogAttrs(req.Context(), slog.LevelInfo, "http request", attrs...)
		return nil
	}
}
