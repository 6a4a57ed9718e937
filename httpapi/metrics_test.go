package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/httpapi"
	"github.com/idledger/idledger/projections"
)

// logSink is a log sink the server's goroutines may write to while the test reads it.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logSink) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logSink) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newObservedTestEnv starts a server wired like cmd/idledger: one Metrics registry observing
// the event store, the projector and HTTP, and a JSON logger writing to the returned buffer.
func newObservedTestEnv(tb testing.TB) (*testEnv, *logSink) {
	tb.Helper()
	dir := tb.TempDir()
	logs := &logSink{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	metrics := httpapi.NewMetrics()
	ctx, cancel := context.WithCancel(context.Background())
	store, err := eventstore.Open(ctx, eventstore.Config{Dir: dir, NoSync: true, Logger: log, Observer: metrics})
	if err != nil {
		tb.Fatal(err)
	}
	db, err := projections.Open(filepath.Join(dir, "projections.db"), projections.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	proj := projections.NewProjector(db, store, projections.ProjectorConfig{Logger: log, Observer: metrics})
	metrics.WatchProjection(proj, log)
	done := make(chan struct{})
	go func() { defer close(done); _ = proj.Run(ctx) }()
	clock := &testClock{now: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
	svc := &domain.Service{Log: store, Read: db, Sync: proj.WaitFor, Now: clock.Now, NewID: func() string { return uuid.Must(uuid.NewV7()).String() }}
	srv := httptest.NewServer(nil)
	srv.Config.Handler = httpapi.New(httpapi.Config{BaseURL: srv.URL, AdminToken: testAdminToken, Metrics: metrics}, svc, db, proj, log)
	tb.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		if err := db.Check(); err != nil {
			tb.Errorf("bbolt check: %v", err)
		}
		db.Close()
		store.Close()
	})
	return &testEnv{URL: srv.URL, Store: store, DB: db, Projector: proj, Service: svc, Clock: clock}, logs
}

// scrape fetches /metrics without a token and parses the text format.
func (e *testEnv) scrape(tb testing.TB) map[string]*dto.MetricFamily {
	tb.Helper()
	res := e.do(tb, "", "GET", "/metrics", "")
	if res.Status != http.StatusOK {
		tb.Fatalf("GET /metrics = %d %s", res.Status, res.Body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		tb.Errorf("Content-Type = %q, want the Prometheus text format", ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(res.Body))
	if err != nil {
		tb.Fatalf("parse /metrics: %v\n%s", err, res.Body)
	}
	return families
}

// metric returns the series of family name whose labels include want, or nil.
func metric(families map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	f := families[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

func TestMetrics(t *testing.T) {
	e, logs := newObservedTestEnv(t)
	tenant, token := e.tenant(t, "Acme")
	body := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"%s","active":true}`
	res := e.do(t, token, "POST", "/scim/v2/Users", fmt.Sprintf(body, "ada@example.com"))
	if res.Status != http.StatusCreated {
		t.Fatalf("create user: %d %s", res.Status, res.Body)
	}
	id := res.JSON(t)["id"].(string)
	if res := e.do(t, token, "POST", "/scim/v2/Users", fmt.Sprintf(body, "grace@example.com")); res.Status != http.StatusCreated {
		t.Fatalf("create user: %d %s", res.Status, res.Body)
	}
	if res := e.do(t, token, "POST", "/scim/v2/Users", fmt.Sprintf(body, "ADA@example.com")); res.Status != http.StatusConflict {
		t.Fatalf("duplicate userName: %d %s", res.Status, res.Body)
	}
	if res := e.do(t, token, "GET", "/scim/v2/Users/"+id, ""); res.Status != http.StatusOK {
		t.Fatalf("get user: %d %s", res.Status, res.Body)
	}
	if res := e.do(t, token, "GET", "/scim/v2/Users/"+uuid.NewString(), ""); res.Status != http.StatusNotFound {
		t.Fatalf("get missing user: %d %s", res.Status, res.Body)
	}

	families := e.scrape(t)
	counter := func(name string, labels map[string]string) float64 {
		t.Helper()
		m := metric(families, name, labels)
		if m == nil {
			t.Errorf("no series %s%v", name, labels)
			return 0
		}
		return m.GetCounter().GetValue()
	}
	histogram := func(name string, labels map[string]string) *dto.Histogram {
		t.Helper()
		m := metric(families, name, labels)
		if m == nil {
			t.Errorf("no series %s%v", name, labels)
			return &dto.Histogram{}
		}
		return m.GetHistogram()
	}
	gauge := func(name string) float64 {
		t.Helper()
		m := metric(families, name, nil)
		if m == nil {
			t.Errorf("no series %s", name)
			return -1
		}
		return m.GetGauge().GetValue()
	}

	t.Run("HTTP", func(t *testing.T) {
		created := map[string]string{"method": "POST", "route": "/scim/v2/Users", "status": "201"}
		if got := counter("idledger_http_requests_total", created); got != 2 {
			t.Errorf("POST /scim/v2/Users 201 = %v, want 2", got)
		}
		if got := counter("idledger_http_requests_total", map[string]string{"method": "POST", "route": "/scim/v2/Users", "status": "409"}); got != 1 {
			t.Errorf("POST /scim/v2/Users 409 = %v, want 1", got)
		}
		if got := counter("idledger_http_requests_total", map[string]string{"method": "GET", "route": "/scim/v2/Users/:id", "status": "404"}); got != 1 {
			t.Errorf("GET /scim/v2/Users/:id 404 = %v, want 1", got)
		}
		if h := histogram("idledger_http_request_duration_seconds", created); h.GetSampleCount() != 2 || h.GetSampleSum() <= 0 {
			t.Errorf("latency of POST 201: count %d sum %v, want 2 and > 0", h.GetSampleCount(), h.GetSampleSum())
		}
		for _, m := range families["idledger_http_requests_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), id) {
					t.Errorf("label %s=%q carries a resource id", l.GetName(), l.GetValue())
				}
			}
		}
	})

	t.Run("Append", func(t *testing.T) {
		// The tenant and two users; the duplicate is refused by the log's userName claim.
		if h := histogram("idledger_eventstore_append_duration_seconds", map[string]string{"result": "ok"}); h.GetSampleCount() < 3 {
			t.Errorf("ok appends = %d, want >= 3", h.GetSampleCount())
		}
		if got := counter("idledger_eventstore_append_conflicts_total", map[string]string{"reason": "uniqueness"}); got < 1 {
			t.Errorf("uniqueness conflicts = %v, want >= 1", got)
		}
		if got := counter("idledger_eventstore_append_conflicts_total", map[string]string{"reason": "conflict"}); got != 0 {
			t.Errorf("conflicts = %v, want 0", got)
		}
		if got := counter("idledger_eventstore_appended_events_total", nil); got < 3 {
			t.Errorf("appended events = %v, want >= 3", got)
		}
	})

	t.Run("Projection", func(t *testing.T) {
		if h := histogram("idledger_projection_batch_events", nil); h.GetSampleCount() < 1 || h.GetSampleSum() < 3 {
			t.Errorf("batches = %d holding %v events, want >= 1 holding >= 3", h.GetSampleCount(), h.GetSampleSum())
		}
		if h := histogram("idledger_projection_apply_duration_seconds", nil); h.GetSampleCount() < 1 {
			t.Errorf("apply durations = %d, want >= 1", h.GetSampleCount())
		}
		// Every write above waited for the projector, so it has caught up with the log.
		head, err := e.Store.Head(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got := gauge("idledger_projection_checkpoint"); got != float64(head) {
			t.Errorf("checkpoint = %v, want the log head %d", got, head)
		}
		if got := gauge("idledger_projection_lag_events"); got != 0 {
			t.Errorf("lag = %v events, want 0", got)
		}
		if got := gauge("idledger_projection_lag_seconds"); got != 0 {
			t.Errorf("lag = %v s, want 0", got)
		}
		if got := gauge("idledger_projection_ready"); got != 1 {
			t.Errorf("ready = %v, want 1", got)
		}
	})

	t.Run("Runtime", func(t *testing.T) {
		for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes"} {
			if families[name] == nil {
				t.Errorf("no %s", name)
			}
		}
	})

	t.Run("AccessLog", func(t *testing.T) {
		var lines []map[string]any
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
			}
			if m["msg"] == "http request" {
				lines = append(lines, m)
			}
		}
		// tenant, 3 POST, 2 GET, and the scrape.
		if len(lines) != 7 {
			t.Fatalf("%d access log lines, want 7:\n%s", len(lines), logs.String())
		}
		ids := map[any]bool{}
		for _, l := range lines {
			for _, k := range []string{"method", "route", "status", "duration", "request_id"} {
				if l[k] == nil || l[k] == "" {
					t.Errorf("access log line without %s: %v", k, l)
				}
			}
			ids[l["request_id"]] = true
		}
		if len(ids) != len(lines) {
			t.Errorf("%d request ids for %d requests", len(ids), len(lines))
		}
		scim := lines[1]
		if scim["route"] != "/scim/v2/Users" || scim["status"] != float64(201) || scim["tenant"] != tenant {
			t.Errorf("SCIM create logged as %v, want route /scim/v2/Users, status 201, tenant %s", scim, tenant)
		}
		if lines[0]["tenant"] != nil {
			t.Errorf("operator request logged with a tenant: %v", lines[0])
		}
	})
}

// TestMetrics_LagWhileBehind checks that the lag gauges see events the projector has not
// applied: with the projector not running, the log moves ahead of the checkpoint.
func TestMetrics_LagWhileBehind(t *testing.T) {
	dir := t.TempDir()
	metrics := httpapi.NewMetrics()
	store, err := eventstore.Open(t.Context(), eventstore.Config{Dir: dir, NoSync: true, Observer: metrics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	db, err := projections.Open(filepath.Join(dir, "projections.db"), projections.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	quiet := slog.New(slog.DiscardHandler)
	proj := projections.NewProjector(db, store, projections.ProjectorConfig{Logger: quiet, Observer: metrics}) // never run
	metrics.WatchProjection(proj, quiet)
	svc := &domain.Service{Log: store, Now: time.Now, NewID: func() string { return uuid.Must(uuid.NewV7()).String() }}
	if _, _, err := svc.CreateTenant(t.Context(), "Acme"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Metrics: metrics}, svc, db, proj, quiet))
	t.Cleanup(srv.Close)
	e := &testEnv{URL: srv.URL}

	families := e.scrape(t)
	m := metric(families, "idledger_projection_lag_events", nil)
	if m == nil || m.GetGauge().GetValue() < 1 {
		t.Errorf("lag events = %v, want >= 1", m)
	}
	if m := metric(families, "idledger_projection_lag_seconds", nil); m == nil {
		t.Error("no idledger_projection_lag_seconds")
	}
	if m := metric(families, "idledger_projection_ready", nil); m == nil || m.GetGauge().GetValue() != 0 {
		t.Errorf("ready = %v, want 0", m)
	}
}
