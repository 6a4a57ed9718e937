package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/httpapi"
	"github.com/idledger/idledger/projections"
	"github.com/idledger/idledger/projections/usernames"
)

const testAdminToken = "test-admin"

// testEnv is a real server: embedded JetStream and a bbolt file in a temp dir, the projector
// running, and the echo router behind httptest.
type testEnv struct {
	URL       string
	Store     *eventstore.Store
	DB        *projections.DB
	Projector *projections.Projector
	Service   *domain.Service
	Clock     *testClock
	Server    *httpapi.Server // the API under test
}

// testClock is an injectable clock: it starts at a fixed time and moves only when told.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newTestEnv starts a server; everything is closed when the test ends. The embedded server
// does not fsync (tests do not measure durability); benchmarks use newDurableTestEnv.
func newTestEnv(tb testing.TB) *testEnv {
	return startTestEnv(tb, true)
}

// newDurableTestEnv starts a server that fsyncs every append before acknowledging it, as
// `idledger serve` does by default.
func newDurableTestEnv(tb testing.TB) *testEnv {
	return startTestEnv(tb, false)
}

func startTestEnv(tb testing.TB, noSync bool) *testEnv {
	return buildTestEnv(tb, envOptions{noSync: noSync})
}

// envOptions vary the test server: the log's fsync, the public base URL ("" = the test
// server's own), the server log, and configure, called with the API's configuration and the
// env before the API is built (to wire SSO or audit as cmd/idledger does).
type envOptions struct {
	noSync    bool
	base      string
	logger    *slog.Logger
	configure func(tb testing.TB, ctx context.Context, cfg *httpapi.Config, e *testEnv)
	// reader, if set, returns what the server reads through instead of the bbolt file itself
	// (a wrapper that delegates to it).
	reader func(db *projections.DB) httpapi.Reader
}

// buildTestEnv starts the server every httpapi test uses: embedded JetStream and a bbolt file
// in a temp dir, the projector running, and the echo router behind httptest; all of it closes
// when the test ends, after bbolt's consistency check.
func buildTestEnv(tb testing.TB, o envOptions) *testEnv {
	tb.Helper()
	dir := tb.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	store, err := eventstore.Open(ctx, eventstore.Config{Dir: dir, NoSync: o.noSync})
	if err != nil {
		tb.Fatal(err)
	}
	db, err := projections.Open(filepath.Join(dir, "projections.db"), projections.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	proj := projections.NewProjector(db, store, projections.ProjectorConfig{})
	done := make(chan struct{})
	go func() { defer close(done); _ = proj.Run(ctx) }()
	clock := &testClock{now: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
	svc := &domain.Service{Log: store, Read: db, Sync: proj.WaitFor, Now: clock.Now, NewID: func() string { return uuid.Must(uuid.NewV7()).String() }, Names: usernames.Rule{}}
	srv := httptest.NewServer(nil)
	base := o.base
	if base == "" {
		base = srv.URL
	}
	e := &testEnv{URL: srv.URL, Store: store, DB: db, Projector: proj, Service: svc, Clock: clock}
	cfg := httpapi.Config{BaseURL: base, AdminToken: testAdminToken}
	if o.configure != nil {
		o.configure(tb, ctx, &cfg, e)
	}
	var read httpapi.Reader = db
	if o.reader != nil {
		read = o.reader(db)
	}
	e.Server = httpapi.New(cfg, svc, read, proj, o.logger)
	srv.Config.Handler = e.Server
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
	return e
}

// tenant creates a company through the operator API and returns its id and SCIM token.
func (e *testEnv) tenant(tb testing.TB, name string) (string, string) {
	tb.Helper()
	res := e.do(tb, testAdminToken, "POST", "/admin/v1/tenants", fmt.Sprintf(`{"name":%q}`, name))
	if res.Status != http.StatusCreated {
		tb.Fatalf("create tenant: %d %s", res.Status, res.Body)
	}
	m := res.JSON(tb)
	return m["id"].(string), m["scimToken"].(string)
}

// apiKey creates an API key of the company through the operator API and returns its secret;
// without scopes the key holds every scope.
func (e *testEnv) apiKey(tb testing.TB, tenant string, scopes ...domain.Scope) string {
	tb.Helper()
	if len(scopes) == 0 {
		scopes = domain.AllScopes()
	}
	body, err := json.Marshal(map[string]any{"name": "test key", "scopes": scopes})
	if err != nil {
		tb.Fatal(err)
	}
	res := e.do(tb, testAdminToken, "POST", "/admin/v1/tenants/"+tenant+"/api-keys", string(body))
	if res.Status != http.StatusCreated {
		tb.Fatalf("create API key: %d %s", res.Status, res.Body)
	}
	return res.JSON(tb)["key"].(string)
}

// tenantWithKey creates a company and returns its id, its SCIM token and an API key with
// every scope.
func (e *testEnv) tenantWithKey(tb testing.TB, name string) (id, scimToken, apiKey string) {
	tb.Helper()
	id, scimToken = e.tenant(tb, name)
	return id, scimToken, e.apiKey(tb, id)
}

// response is a buffered HTTP response.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body as an object.
func (r response) JSON(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		tb.Fatalf("body %q: %v", r.Body, err)
	}
	return m
}

// do sends a request with a bearer token (none if empty) and a JSON body (none if empty).
func (e *testEnv) do(tb testing.TB, token, method, path, body string) response {
	tb.Helper()
	return e.doWith(tb, token, method, path, body, nil)
}

// doWith is do with extra request headers (If-Match, If-None-Match...).
func (e *testEnv) doWith(tb testing.TB, token, method, path, body string, header map[string]string) response {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

func TestHealthz(t *testing.T) {
	e := newTestEnv(t)
	eventually(t, 10*time.Second, "healthz answers 200", func() bool {
		return e.do(t, "", "GET", "/healthz", "").Status == http.StatusOK
	})
}

func TestSCIMPathNormalisation(t *testing.T) {
	e := newTestEnv(t)
	_, token := e.tenant(t, "Acme")
	for _, path := range []string{"/scim/v2/Users", "/scim/v2/users", "/scim/v2/Users/", "/scim/v2/USERS?foo=bar"} {
		res := e.do(t, token, "GET", path, "")
		if res.Status != http.StatusOK {
			t.Errorf("GET %s = %d %s", path, res.Status, res.Body)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	e := newTestEnv(t)
	_, token := e.tenant(t, "Acme")
	big := `{"userName":"a@b","displayName":"` + strings.Repeat("x", 2<<20) + `"}`
	res := e.do(t, token, "POST", "/scim/v2/Users", big)
	if res.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", res.Status)
	}
	if m := res.JSON(t); m["status"] != "413" {
		t.Errorf("body = %s", res.Body)
	}
}
