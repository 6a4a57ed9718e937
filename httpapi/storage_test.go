package httpapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/httpapi"
	"github.com/idledger/idledger/projections"
)

// TestStorageFull_answers_507: an event log that keeps more free space in reserve than any
// disk has refuses every append as full. The operator API answers 507 in its error form with
// Retry-After, /healthz answers 503 with the reason, and the metric counts the refusal.
// (The SCIM form and the recovery are tested on real full volumes in cmd/idledger.)
func TestStorageFull_answers_507(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	quiet := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	store, err := eventstore.Open(ctx, eventstore.Config{Dir: dir, NoSync: true, MinFreeBytes: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	db, err := projections.Open(filepath.Join(dir, "projections.db"), projections.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	proj := projections.NewProjector(db, store, projections.ProjectorConfig{Logger: quiet})
	done := make(chan struct{})
	go func() { defer close(done); _ = proj.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; db.Close(); store.Close() })
	metrics := httpapi.NewMetrics()
	svc := &domain.Service{Log: store, Read: db, Sync: proj.WaitFor, Now: time.Now, NewID: uuid.NewString}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{AdminToken: testAdminToken, Metrics: metrics, Storage: store}, svc, db, proj, quiet))
	t.Cleanup(srv.Close)
	e := &testEnv{URL: srv.URL}

	res := e.do(t, testAdminToken, "POST", "/admin/v1/tenants", `{"name":"Acme"}`)
	if res.Status != http.StatusInsufficientStorage || res.Header.Get("Retry-After") == "" {
		t.Fatalf("create tenant on a full log = %d (Retry-After %q) %s, want 507 with Retry-After",
			res.Status, res.Header.Get("Retry-After"), res.Body)
	}
	if m := res.JSON(t); m["code"] != "insufficient_storage" || !strings.Contains(m["error"].(string), "free") {
		t.Errorf("507 body = %s", res.Body)
	}
	health := e.do(t, "", "GET", "/healthz", "")
	if health.Status != http.StatusServiceUnavailable || health.JSON(t)["status"] != "storage_full" ||
		!strings.Contains(string(health.Body), "reserve") {
		t.Errorf("/healthz on a full log = %d %s", health.Status, health.Body)
	}
	if m := e.do(t, "", "GET", "/metrics", ""); !strings.Contains(string(m.Body), `idledger_writes_refused_total{reason="storage_full"} 1`) {
		t.Errorf("/metrics does not count the 507:\n%s", grepLines(string(m.Body), "idledger_writes_refused"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
