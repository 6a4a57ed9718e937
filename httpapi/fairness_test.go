package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/httpapi"
	"github.com/idledger/idledger/projections"
)

// gatedReader reads through the real bbolt file; a user scan of the gated company first
// reports that it started (started) and then waits until open is closed or the request's
// context ends, so that a test can hold a scan in flight.
type gatedReader struct {
	*projections.DB
	mu      sync.Mutex
	gated   domain.TenantID
	started chan struct{}
	open    chan struct{}
}

func (r *gatedReader) gate(t domain.TenantID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gated, r.started, r.open = t, make(chan struct{}, 16), make(chan struct{})
}

func (r *gatedReader) QueryUsers(ctx context.Context, t domain.TenantID, q domain.ListQuery) ([]domain.User, int, error) {
	r.mu.Lock()
	gated, started, open := r.gated == t && q.IndexAttr == "", r.started, r.open
	r.mu.Unlock()
	if gated {
		started <- struct{}{}
		select {
		case <-open:
		case <-ctx.Done():
		}
	}
	return r.DB.QueryUsers(ctx, t, q)
}

func newFairEnv(t *testing.T, fair httpapi.FairnessConfig) (*testEnv, *gatedReader) {
	t.Helper()
	var gr *gatedReader
	e := buildTestEnv(t, envOptions{noSync: true,
		reader:    func(db *projections.DB) httpapi.Reader { gr = &gatedReader{DB: db}; return gr },
		configure: func(_ testing.TB, _ context.Context, cfg *httpapi.Config, _ *testEnv) { cfg.Fairness = fair },
	})
	return e, gr
}

func createUsers(t *testing.T, e *testEnv, token string, n int) {
	t.Helper()
	for i := range n {
		res := e.do(t, token, "POST", "/scim/v2/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
			"userName":"u%d@example.com","title":"Engineer"}`, i))
		if res.Status != http.StatusCreated {
			t.Fatalf("create user %d: %d %s", i, res.Status, res.Body)
		}
	}
}

func listPath(filter string) string {
	return "/scim/v2/Users?filter=" + url.QueryEscape(filter)
}

// TestFairness_ScanBudget: with a budget of one scan, a company's second concurrent scan
// answers 429 with Retry-After in the SCIM error form, its index look-ups and another
// company's scans go through, and the slot is free again once the first scan ends.
func TestFairness_ScanBudget(t *testing.T) {
	t.Parallel()
	e, gr := newFairEnv(t, httpapi.FairnessConfig{ScanBudget: 1})
	a, tokenA := e.tenant(t, "A")
	_, tokenB := e.tenant(t, "B")
	createUsers(t, e, tokenA, 3)
	createUsers(t, e, tokenB, 1)

	gr.gate(domain.TenantID(a))
	first := make(chan response, 1)
	go func() { first <- e.do(t, tokenA, "GET", listPath(`title pr`), "") }()
	<-gr.started

	for name, res := range map[string]response{
		"GET":       e.do(t, tokenA, "GET", listPath(`displayName co "x" or title eq "Engineer"`), ""),
		"no filter": e.do(t, tokenA, "GET", "/scim/v2/Users?count=1", ""),
		".search": e.do(t, tokenA, "POST", "/scim/v2/Users/.search",
			`{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"title pr"}`),
	} {
		if res.Status != http.StatusTooManyRequests {
			t.Fatalf("%s: second scan of A = %d %s, want 429", name, res.Status, res.Body)
		}
		if res.Header.Get("Retry-After") != "1" {
			t.Errorf("%s: Retry-After = %q, want 1", name, res.Header.Get("Retry-After"))
		}
		body := res.JSON(t)
		if body["status"] != "429" || !strings.Contains(fmt.Sprint(body["detail"]), "at most 1") {
			t.Errorf("%s: body %s, want a SCIM error naming the budget", name, res.Body)
		}
	}
	// Index look-ups are not scans: A's match queries go on.
	for _, f := range []string{`userName eq "u1@example.com"`, `userName eq "u1@example.com" and title pr`, `externalId eq "none"`} {
		if res := e.do(t, tokenA, "GET", listPath(f), ""); res.Status != http.StatusOK {
			t.Errorf("A's look-up %s during its scan = %d %s", f, res.Status, res.Body)
		}
	}
	// B has its own budget.
	if res := e.do(t, tokenB, "GET", "/scim/v2/Users?count=1", ""); res.Status != http.StatusOK {
		t.Errorf("B's scan during A's = %d %s", res.Status, res.Body)
	}

	close(gr.open)
	if res := <-first; res.Status != http.StatusOK || res.JSON(t)["totalResults"] != float64(3) {
		t.Fatalf("A's first scan = %d %s", res.Status, res.Body)
	}
	gr.gate("") // nothing gated
	if res := e.do(t, tokenA, "GET", listPath(`title pr`), ""); res.Status != http.StatusOK {
		t.Errorf("A's scan after the first ended = %d %s", res.Status, res.Body)
	}
}

// TestFairness_ReadDeadline: a scan still running at the read deadline stops in the read
// model's loop and answers 503 with Retry-After; the slot is given back.
func TestFairness_ReadDeadline(t *testing.T) {
	t.Parallel()
	e, gr := newFairEnv(t, httpapi.FairnessConfig{ScanBudget: 1, ReadTimeout: 500 * time.Millisecond})
	a, token := e.tenant(t, "A")
	createUsers(t, e, token, 2)

	gr.gate(domain.TenantID(a)) // never opened: the scan waits for its deadline
	for _, req := range []struct{ method, path, body string }{
		{"GET", listPath(`title pr`), ""},
		{"POST", "/scim/v2/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}`},
	} {
		res := e.do(t, token, req.method, req.path, req.body)
		if res.Status != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
			t.Fatalf("%s %s past the deadline = %d (Retry-After %q) %s, want 503 with Retry-After",
				req.method, req.path, res.Status, res.Header.Get("Retry-After"), res.Body)
		}
		if body := res.JSON(t); body["status"] != "503" || !strings.Contains(fmt.Sprint(body["detail"]), "did not finish in time") {
			t.Errorf("body %s", res.Body)
		}
	}
	gr.gate("")
	if res := e.do(t, token, "GET", listPath(`title pr`), ""); res.Status != http.StatusOK {
		t.Errorf("scan after a stopped one = %d %s (was its slot given back?)", res.Status, res.Body)
	}
}

// TestFairness_FilterLimits: the parser's limits through GET and .search: 50 comparisons
// answer, 51 are 400 invalidFilter naming the limit.
func TestFairness_FilterLimits(t *testing.T) {
	t.Parallel()
	e, _ := newFairEnv(t, httpapi.FairnessConfig{})
	_, token := e.tenant(t, "A")
	createUsers(t, e, token, 1)
	chain := func(n int) string {
		terms := make([]string, n)
		for i := range terms {
			terms[i] = fmt.Sprintf(`userName eq "u%d@example.com"`, i)
		}
		return strings.Join(terms, " or ")
	}
	if res := e.do(t, token, "GET", listPath(chain(50)), ""); res.Status != http.StatusOK || res.JSON(t)["totalResults"] != float64(1) {
		t.Errorf("50 comparisons = %d %s", res.Status, res.Body)
	}
	for name, res := range map[string]response{
		"GET": e.do(t, token, "GET", listPath(chain(51)), ""),
		".search": e.do(t, token, "POST", "/scim/v2/Users/.search",
			fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":%q}`, chain(51))),
		"depth": e.do(t, token, "GET", listPath(strings.Repeat("(", 17)+`title pr`+strings.Repeat(")", 17)), ""),
	} {
		body := res.JSON(t)
		if res.Status != http.StatusBadRequest || body["scimType"] != "invalidFilter" {
			t.Errorf("%s over the limit = %d %s, want 400 invalidFilter", name, res.Status, res.Body)
		}
		if d := fmt.Sprint(body["detail"]); !strings.Contains(d, "more than 50 comparisons") && !strings.Contains(d, "deeper than 16") {
			t.Errorf("%s: detail %q does not name the limit", name, d)
		}
	}
}
