package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/httpapi"
)

// serve starts a second server over the environment's store and read models with another
// configuration and a captured log (syncBuffer, sso_test.go); it shares e's tenants.
func (e *testEnv) serve(tb testing.TB, cfg httpapi.Config) (*testEnv, *syncBuffer) {
	tb.Helper()
	logs := &syncBuffer{}
	srv := httptest.NewServer(nil)
	cfg.BaseURL, cfg.AdminToken = srv.URL, testAdminToken
	h := httpapi.New(cfg, e.Service, e.DB, e.Projector,
		slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	srv.Config.Handler = h
	tb.Cleanup(srv.Close)
	other := *e
	other.URL, other.Server = srv.URL, h
	return &other, logs
}

// TestAccess_AdminRequiresOperatorToken: no company token, wrong or prefixed token, or other
// scheme opens /admin; every refusal is a 401 and appends nothing.
func TestAccess_AdminRequiresOperatorToken(t *testing.T) {
	e := newTestEnv(t)
	tenant, token, key := e.tenantWithKey(t, "Acme")
	before := streamCount(t, e)
	routes := []struct{ method, path, body string }{
		{"POST", "/admin/v1/tenants", `{"name":"Evil"}`},
		{"PATCH", "/admin/v1/tenants/" + tenant, `{"features":{"groups":false}}`},
		{"POST", "/admin/v1/tenants/" + tenant + "/rotate-token", ""},
		{"GET", "/admin/v1/projections", ""},
		{"POST", "/admin/v1/tenants/" + tenant + "/api-keys", `{"name":"mine","scopes":["sso:write"]}`},
		{"GET", "/admin/v1/tenants/" + tenant + "/api-keys", ""},
	}
	tokens := map[string]string{
		"company SCIM token": token,
		"company API key":    key,
		"no token":           "",
		"operator + suffix":  testAdminToken + "x",
		"operator prefix":    testAdminToken[:len(testAdminToken)-1],
		"operator hash":      domain.HashToken(testAdminToken),
	}
	for name, tok := range tokens {
		for _, r := range routes {
			t.Run(name+" "+r.method+" "+r.path, func(t *testing.T) {
				res := e.do(t, tok, r.method, r.path, r.body)
				if res.Status != http.StatusUnauthorized {
					t.Errorf("status = %d, want 401: %s", res.Status, res.Body)
				}
				checkErrorBody(t, r.path, res)
			})
		}
	}
	// The operator token is not a company token either.
	if res := e.do(t, testAdminToken, "GET", "/scim/v2/Users", ""); res.Status != http.StatusUnauthorized {
		t.Errorf("operator token on SCIM = %d, want 401", res.Status)
	}
	if res := e.do(t, testAdminToken, "GET", "/api/v1/provisioning", ""); res.Status != http.StatusUnauthorized {
		t.Errorf("operator token on the company API = %d, want 401", res.Status)
	}
	if n := streamCount(t, e); n != before {
		t.Errorf("stream has %d messages, want %d", n, before)
	}
}

// TestAccess_OtherCompanysResources: company A's token gets 404, never 403 or the resource,
// for company B's users and groups by id on every route that takes an id, and nothing changes.
func TestAccess_OtherCompanysResources(t *testing.T) {
	e := newAuditEnv(t)                               // newTestEnv with the audit routes on (audit_test.go)
	_, tokenA, keyA := e.tenantWithKey(t, "Attacker") // stays in manual mode: its company API writes
	tenantB, tokenB, keyB := e.tenantWithKey(t, "Victim")

	res := e.do(t, keyB, "POST", "/api/v1/users", `{"email":"local@victim.example","name":"Local"}`)
	if res.Status != http.StatusCreated {
		t.Fatalf("invite: %d %s", res.Status, res.Body)
	}
	local := res.JSON(t)["id"].(string)
	res = e.do(t, tokenB, "POST", "/scim/v2/Users", `{"userName":"ada@victim.example"}`)
	if res.Status != http.StatusCreated {
		t.Fatalf("create user: %d %s", res.Status, res.Body)
	}
	user := res.JSON(t)["id"].(string)
	res = e.do(t, tokenB, "POST", "/scim/v2/Groups", fmt.Sprintf(`{"displayName":"Staff","members":[{"value":%q}]}`, user))
	if res.Status != http.StatusCreated {
		t.Fatalf("create group: %d %s", res.Status, res.Body)
	}
	group := res.JSON(t)["id"].(string)

	const asOf = "2099-01-01T00:00:00Z"
	routes := []struct {
		method, path, body string
		optional           bool // a read the owner must see first: its 404 for A is then isolation
	}{
		{method: "GET", path: "/scim/v2/Users/" + user},
		{method: "PUT", path: "/scim/v2/Users/" + user, body: `{"userName":"owned@attacker.example"}`},
		{method: "PATCH", path: "/scim/v2/Users/" + user, body: `{"Operations":[{"op":"replace","path":"active","value":false}]}`},
		{method: "DELETE", path: "/scim/v2/Users/" + user},
		{method: "GET", path: "/scim/v2/Users/" + local},
		{method: "GET", path: "/scim/v2/Groups/" + group},
		{method: "PUT", path: "/scim/v2/Groups/" + group, body: `{"displayName":"Owned"}`},
		{method: "PATCH", path: "/scim/v2/Groups/" + group, body: `{"Operations":[{"op":"remove","path":"members"}]}`},
		{method: "DELETE", path: "/scim/v2/Groups/" + group},
		{method: "PATCH", path: "/api/v1/users/" + local, body: `{"admin":true}`},
		{method: "DELETE", path: "/api/v1/users/" + local},
		{method: "PATCH", path: "/api/v1/users/" + user, body: `{"active":false}`},
		{method: "DELETE", path: "/api/v1/users/" + user},
		{method: "GET", path: "/api/v1/audit/users/" + user, optional: true},
		{method: "GET", path: "/api/v1/audit/users/" + user + "/state?asOf=" + asOf, optional: true},
		{method: "GET", path: "/api/v1/audit/groups/" + group, optional: true},
		{method: "GET", path: "/api/v1/audit/groups/" + group + "/members", optional: true},
		{method: "GET", path: "/api/v1/audit/groups/" + group + "/members?asOf=" + asOf, optional: true},
	}
	// What must not move: B's aggregates. (A's own log may record A's requests: with the
	// audit on, A's first SCIM request opens a sync cycle of A.)
	versions := func() map[string]domain.Version {
		out := map[string]domain.Version{}
		for kind, ids := range map[domain.Kind][]string{
			domain.KindTenant: {tenantB}, domain.KindUser: {user, local}, domain.KindGroup: {group},
		} {
			for _, id := range ids {
				v, err := e.Store.Version(context.Background(), domain.TenantID(tenantB), kind, id)
				if err != nil {
					t.Fatal(err)
				}
				out[string(kind)+"/"+id] = v
			}
		}
		return out
	}
	before := versions()
	for _, r := range routes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			credA, credB := tokenA, tokenB // SCIM tokens on /scim/v2, API keys on /api/v1
			if strings.HasPrefix(r.path, "/api/v1/") {
				credA, credB = keyA, keyB
			}
			if r.optional {
				// The owner must see it: a 404 for everyone would prove nothing.
				if own := e.do(t, credB, r.method, r.path, ""); own.Status == http.StatusNotFound {
					t.Fatalf("the owner gets 404 too (route not served?): %s", own.Body)
				}
			}
			res := e.do(t, credA, r.method, r.path, r.body)
			if res.Status != http.StatusNotFound {
				t.Fatalf("status = %d, want 404: %s", res.Status, res.Body)
			}
			checkErrorBody(t, r.path, res)
			for _, secret := range []string{"victim.example", "Staff", "Local"} {
				if strings.Contains(string(res.Body), secret) {
					t.Errorf("404 body names %q: %s", secret, res.Body)
				}
			}
		})
	}
	if after := versions(); !reflect.DeepEqual(after, before) {
		t.Errorf("B's aggregates moved: %v, want %v", after, before)
	}

	// Filters, lists and group membership never cross companies either.
	for _, q := range []string{
		`id eq "` + user + `"`, `userName eq "ada@victim.example"`, `userName sw "ada"`,
	} {
		res := e.do(t, tokenA, "GET", hostileQuery("/scim/v2/Users", "filter", q), "")
		if res.Status != http.StatusOK || res.JSON(t)["totalResults"] != float64(0) {
			t.Errorf("A's filter %s: %d %s", q, res.Status, res.Body)
		}
	}
	if res := e.do(t, tokenA, "GET", "/scim/v2/Groups", ""); res.JSON(t)["totalResults"] != float64(0) {
		t.Errorf("A lists groups: %s", res.Body)
	}
	res = e.do(t, tokenA, "POST", "/scim/v2/Groups", fmt.Sprintf(`{"displayName":"Mine","members":[{"value":%q}]}`, user))
	if res.Status != http.StatusCreated {
		t.Fatalf("A creates a group naming B's user: %d %s", res.Status, res.Body)
	}
	mine := res.JSON(t)["id"].(string)
	res = e.do(t, tokenA, "PATCH", "/scim/v2/Groups/"+mine+"?attributes=members",
		fmt.Sprintf(`{"Operations":[{"op":"add","path":"members","value":[{"value":%q},{"value":%q}]}]}`, user, local))
	if res.Status != http.StatusOK && res.Status != http.StatusNoContent {
		t.Fatalf("A adds B's users to its group: %d %s", res.Status, res.Body)
	}
	res = e.do(t, tokenA, "GET", "/scim/v2/Groups/"+mine, "")
	if members, _ := res.JSON(t)["members"].([]any); len(members) != 0 {
		t.Errorf("A's group has B's users as members: %s", res.Body)
	}
	// B's resources are as they were.
	res = e.do(t, tokenB, "GET", "/scim/v2/Groups/"+group, "")
	if members, _ := res.JSON(t)["members"].([]any); res.Status != http.StatusOK || len(members) != 1 || res.JSON(t)["displayName"] != "Staff" {
		t.Errorf("B's group after A's attempts: %d %s", res.Status, res.Body)
	}
	res = e.do(t, tokenB, "GET", "/scim/v2/Users/"+user, "")
	if res.Status != http.StatusOK || res.JSON(t)["active"] != true || res.JSON(t)["userName"] != "ada@victim.example" {
		t.Errorf("B's user after A's attempts: %d %s", res.Status, res.Body)
	}
}

// TestRotateToken: the operator rotates a company's SCIM token; the new one is shown once and
// works at once, the old one is refused everywhere, and neither the log nor the event log ever
// holds the token itself.
func TestRotateToken(t *testing.T) {
	base := newTestEnv(t)
	e, logs := base.serve(t, httpapi.Config{})
	tenant, old := e.tenant(t, "Acme")
	if res := e.do(t, old, "POST", "/scim/v2/Users", `{"userName":"ada@acme.example"}`); res.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.Status, res.Body)
	}

	res := e.do(t, testAdminToken, "POST", "/admin/v1/tenants/"+tenant+"/rotate-token", "")
	if res.Status != http.StatusOK {
		t.Fatalf("rotate: %d %s", res.Status, res.Body)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	body := res.JSON(t)
	fresh, _ := body["scimToken"].(string)
	if fresh == "" || fresh == old || body["id"] != tenant || body["scimBaseUrl"] != e.URL+"/scim/v2" {
		t.Fatalf("rotate answer = %s", res.Body)
	}

	for _, r := range []struct{ method, path string }{
		{"GET", "/scim/v2/Users"}, {"POST", "/scim/v2/Users"}, {"GET", "/api/v1/provisioning"}, {"GET", "/api/v1/sso"},
	} {
		body := ""
		if r.method == "POST" {
			body = `{"userName":"eve@acme.example"}`
		}
		if res := e.do(t, old, r.method, r.path, body); res.Status != http.StatusUnauthorized {
			t.Errorf("old token %s %s = %d, want 401: %s", r.method, r.path, res.Status, res.Body)
		}
	}
	res = e.do(t, fresh, "GET", hostileQuery("/scim/v2/Users", "filter", `userName eq "ada@acme.example"`), "")
	if res.Status != http.StatusOK || res.JSON(t)["totalResults"] != float64(1) {
		t.Errorf("new token sees the company's users: %d %s", res.Status, res.Body)
	}

	// A second rotation retires the first new token too.
	res = e.do(t, testAdminToken, "POST", "/admin/v1/tenants/"+tenant+"/rotate-token", "")
	third, _ := res.JSON(t)["scimToken"].(string)
	if res.Status != http.StatusOK || third == fresh || third == old {
		t.Fatalf("second rotation: %d %s", res.Status, res.Body)
	}
	if res := e.do(t, fresh, "GET", "/scim/v2/Users", ""); res.Status != http.StatusUnauthorized {
		t.Errorf("first new token after the second rotation = %d, want 401", res.Status)
	}
	if res := e.do(t, third, "GET", "/scim/v2/Users", ""); res.Status != http.StatusOK {
		t.Errorf("latest token = %d, want 200", res.Status)
	}

	for name, path := range map[string]string{
		"unknown company": "/admin/v1/tenants/01999999-0000-7000-8000-000000000000/rotate-token",
		"wildcard":        "/admin/v1/tenants/%3E/rotate-token",
	} {
		before := streamCount(t, e)
		if res := e.do(t, testAdminToken, "POST", path, ""); res.Status != http.StatusNotFound {
			t.Errorf("%s: %d %s, want 404", name, res.Status, res.Body)
		}
		if n := streamCount(t, e); n != before {
			t.Errorf("%s appended %d messages", name, n-before)
		}
	}

	// Only hashes, in the log and in the events.
	events, _, err := e.Store.Load(context.Background(), domain.TenantID(tenant), domain.KindTenant, tenant)
	if err != nil {
		t.Fatal(err)
	}
	var rotations int
	for _, ev := range events {
		raw, err := domain.EncodeData(ev.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{old, fresh, third} {
			if bytes.Contains(raw, []byte(tok)) || strings.Contains(ev.Actor, tok) {
				t.Errorf("event %s holds a token: %s", ev.Type, raw)
			}
		}
		if ev.Type == domain.EventTenantSCIMTokenRotated {
			rotations++
			if ev.Actor != "admin" {
				t.Errorf("rotation actor = %q, want admin", ev.Actor)
			}
		}
	}
	if rotations != 2 {
		t.Errorf("%d %s events, want 2", rotations, domain.EventTenantSCIMTokenRotated)
	}
	log := logs.String()
	for _, tok := range []string{old, fresh, third} {
		if strings.Contains(log, tok) {
			t.Errorf("the log holds a token")
		}
	}
	if !strings.Contains(log, "scim token rotated") || !strings.Contains(log, domain.HashToken(third)[:16]) {
		t.Errorf("the log does not record the rotation by hash:\n%s", log)
	}
}

// TestRateLimit: with a low limit, a company's requests beyond its burst get 429 with a SCIM
// error and Retry-After, on SCIM and the company API; another company is not affected, and a
// throttled write appends nothing.
func TestRateLimit(t *testing.T) {
	base := newTestEnv(t)
	_, busy, busyKey := base.tenantWithKey(t, "Busy") // one bucket per company, whatever the credential
	_, quiet := base.tenant(t, "Quiet")
	// 0.01 request/s: nothing refills during the test.
	e, _ := base.serve(t, httpapi.Config{RateLimit: 0.01, RateBurst: 3})
	for i := range 3 {
		if res := e.do(t, busy, "GET", "/scim/v2/Users", ""); res.Status != http.StatusOK {
			t.Fatalf("request %d within the burst: %d %s", i+1, res.Status, res.Body)
		}
	}
	before := streamCount(t, e)
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/scim/v2/Users", ""},
		{"POST", "/scim/v2/Users", `{"userName":"ada@busy.example"}`},
		{"GET", "/api/v1/provisioning", ""},
	} {
		cred := busy
		if strings.HasPrefix(r.path, "/api/v1/") {
			cred = busyKey
		}
		res := e.do(t, cred, r.method, r.path, r.body)
		if res.Status != http.StatusTooManyRequests {
			t.Fatalf("%s %s over the limit: %d %s, want 429", r.method, r.path, res.Status, res.Body)
		}
		checkErrorBody(t, r.path, res)
		secs, err := strconv.Atoi(res.Header.Get("Retry-After"))
		if err != nil || secs < 1 || secs > 100 {
			t.Errorf("Retry-After = %q, want whole seconds until the next token (1..100)", res.Header.Get("Retry-After"))
		}
	}
	if n := streamCount(t, e); n != before {
		t.Errorf("a throttled write appended %d messages", n-before)
	}
	if res := e.do(t, quiet, "GET", "/scim/v2/Users", ""); res.Status != http.StatusOK {
		t.Errorf("another company: %d %s, want 200", res.Status, res.Body)
	}
	// Unauthenticated and operator routes are not counted against a company.
	if res := e.do(t, testAdminToken, "POST", "/admin/v1/tenants", `{"name":"New"}`); res.Status != http.StatusCreated {
		t.Errorf("operator during a company's throttle: %d", res.Status)
	}
	// The default server (no limit configured) never throttles.
	for range 20 {
		if res := base.do(t, busy, "GET", "/scim/v2/ServiceProviderConfig", ""); res.Status != http.StatusOK {
			t.Fatalf("unlimited server: %d", res.Status)
		}
	}
}
