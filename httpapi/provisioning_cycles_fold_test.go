package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
	"github.com/idledger/idledger/httpapi"
)

// TestAudit_CyclesFoldIncrementally reads the cycle figures while the cycles grow, so that each
// read folds only what came since the last one (domain/audit/cycles_fold.go), and checks every
// answer against the figures expected and against a fresh audit that folds everything at once.
func TestAudit_CyclesFoldIncrementally(t *testing.T) {
	e := newAuditEnv(t)
	tenant, token, key := e.tenantWithKey(t, "Acme")
	user := func(name string) map[string]any {
		return map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
			"userName": name, "active": true}
	}
	call := func(method, path, requestID string, body any, want int) map[string]any {
		t.Helper()
		return must(t, want, method+" "+path)(entra(t, e, token, method, path, requestID, body))
	}
	type figures struct {
		n, requests int
		changes     string
		failures    string
	}
	// check reads the list and each cycle's detail through the API and compares them with the
	// figures wanted (newest first) and with a fresh audit's.
	check := func(want ...figures) {
		t.Helper()
		var page struct {
			Cycles []audit.CycleSummary `json:"cycles"`
		}
		get(t, e, key, "/api/v1/provisioning/cycles", 200, &page)
		if len(page.Cycles) != len(want) {
			t.Fatalf("%d cycles, want %d: %+v", len(page.Cycles), len(want), page.Cycles)
		}
		for i, w := range want {
			c := page.Cycles[i]
			if c.Number != w.n || c.Requests != w.requests || c.RequestsExpired ||
				fmt.Sprint(c.Changes) != w.changes || fmt.Sprint(c.Failures) != w.failures {
				t.Errorf("cycle %d = %+v\nwant %+v", c.Number, c, w)
			}
		}
		fresh := &audit.Service{Log: e.Store, History: e.Store, Requests: e.Store, Now: e.Clock.Now, NewID: e.Service.NewID}
		all, _, err := fresh.Cycles(t.Context(), domain.TenantID(tenant), audit.Page{})
		if err != nil {
			t.Fatal(err)
		}
		if got, full := jsonOf(t, page.Cycles), jsonOf(t, all); got != full {
			t.Errorf("folded incrementally:\n%s\nfolded at once:\n%s", got, full)
		}
		for _, c := range all {
			var d audit.CycleDetail
			get(t, e, key, fmt.Sprintf("/api/v1/provisioning/cycles/%d", c.Number), 200, &d)
			fd, err := fresh.Cycle(t.Context(), domain.TenantID(tenant), c.Number, audit.Page{})
			if err != nil {
				t.Fatal(err)
			}
			if got, full := jsonOf(t, d), jsonOf(t, fd); got != full {
				t.Errorf("cycle %d folded incrementally:\n%s\nfolded at once:\n%s", c.Number, got, full)
			}
		}
	}

	check() // no cycle yet: the fold starts empty

	ada := call("POST", "/scim/v2/Users", "a-1", user("ada@acme.test"), 201)["id"].(string)
	call("POST", "/scim/v2/Users", "a-2", user("ADA@acme.test"), 409)
	check(figures{1, 2, "map[tenant.provisioning_locked:1 user.created:1]", "map[409:1]"})

	// More of the same cycle: the open cycle's figures grow.
	e.Clock.Advance(time.Minute)
	bob := call("POST", "/scim/v2/Users", "a-3", user("bob@acme.test"), 201)["id"].(string)
	call("DELETE", "/scim/v2/Users/"+bob, "a-4", nil, 204)
	call("GET", "/scim/v2/Users/"+bob, "a-5", nil, 404)
	check(figures{1, 5, "map[tenant.provisioning_locked:1 user.created:2 user.deleted:1]", "map[404:1 409:1]"})

	// A quiet gap: the next request opens cycle 2, and cycle 1 stays as it was.
	e.Clock.Advance(time.Hour)
	call("POST", "/scim/v2/Users", "b-1", user("cy@acme.test"), 201)
	call("POST", "/scim/v2/Users", "b-2", map[string]any{"displayName": "no userName"}, 400)
	check(figures{2, 2, "map[user.created:1]", "map[400:1]"},
		figures{1, 5, "map[tenant.provisioning_locked:1 user.created:2 user.deleted:1]", "map[404:1 409:1]"})

	// The detail pages through a cycle's changes without reading the rest of them.
	var first audit.CycleDetail
	get(t, e, key, "/api/v1/provisioning/cycles/1?limit=2", 200, &first)
	if len(first.Events) != 2 || first.Next != first.Events[1].Seq || len(first.FailedRequests) != 2 ||
		first.FailedRequests[0].RequestID != "a-2" || first.FailedRequests[1].RequestID != "a-5" {
		t.Errorf("cycle 1, first page: %+v", first)
	}

	// Erasing ada deletes the record of the request whose error named her: the figures count
	// the records kept, and the failed requests list no longer shows it.
	if n, err := e.Store.EraseRequestRecords(t.Context(), domain.TenantID(tenant), domain.UserID(ada), []string{"ada@acme.test"}); err != nil || n != 1 {
		t.Fatalf("erased %d records, %v; want 1", n, err)
	}
	check(figures{2, 2, "map[user.created:1]", "map[400:1]"},
		figures{1, 4, "map[tenant.provisioning_locked:1 user.created:2 user.deleted:1]", "map[404:1]"})
}

// jsonOf returns v as JSON.
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestAudit_FoldAhead: with FoldAhead set (as the app runs), a recorded request has its
// company's figures folded in the background, before anything reads them.
func TestAudit_FoldAhead(t *testing.T) {
	var a *audit.Service
	e := buildTestEnv(t, envOptions{noSync: true, configure: func(_ testing.TB, _ context.Context, cfg *httpapi.Config, e *testEnv) {
		a = &audit.Service{Log: e.Store, History: e.Store, Requests: e.Store, Now: e.Clock.Now, NewID: e.Service.NewID,
			FoldAhead: time.Millisecond}
		cfg.Audit = a
	}})
	tenant, token, _ := e.tenantWithKey(t, "Acme")
	id := domain.TenantID(tenant)
	if a.CaughtUp(id) {
		t.Fatal("figures folded before any request")
	}
	must(t, 201, "POST /Users")(entra(t, e, token, "POST", "/scim/v2/Users", "f-1",
		map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "ada@acme.test"}))
	eventually(t, 10*time.Second, "background fold", func() bool { return a.CaughtUp(id) })
	last, err := a.LastCycle(t.Context(), id)
	if err != nil || last == nil || last.Number != 1 || last.Requests != 1 || last.Changes["user.created"] != 1 {
		t.Fatalf("last cycle = %+v, %v", last, err)
	}
}
