package httpapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
	"github.com/idledger/idledger/httpapi"
)

// TestAPIKeys_Lifecycle: the operator creates a key (its secret shown once, with its kind's
// prefix), lists keys without secrets and with their last use, and revokes one, refused from
// the revocation's answer on; a key opens only its scopes; what it writes names it; a refused
// credential is counted by kind and reason, never by its secret.
func TestAPIKeys_Lifecycle(t *testing.T) {
	logs := &syncBuffer{}
	e := buildTestEnv(t, envOptions{noSync: true, logger: slog.New(slog.NewTextHandler(logs, nil)),
		configure: func(_ testing.TB, _ context.Context, cfg *httpapi.Config, e *testEnv) {
			cfg.Audit = &audit.Service{Log: e.Store, History: e.Store, Requests: e.Store, Now: e.Clock.Now, NewID: e.Service.NewID}
		}})
	tenant, scimToken := e.tenant(t, "Acme")
	if !strings.HasPrefix(scimToken, domain.SCIMTokenPrefix) {
		t.Errorf("SCIM token %q lacks the prefix %s", scimToken, domain.SCIMTokenPrefix)
	}

	for name, body := range map[string]string{
		"unknown scope": `{"name":"ci","scopes":["sso:read","sso:admin"]}`,
		"no scope":      `{"name":"ci","scopes":[]}`,
		"scopes absent": `{"name":"ci"}`,
		"no name":       `{"scopes":["sso:read"]}`,
		"scope number":  `{"name":"ci","scopes":[1]}`,
	} {
		if res := e.do(t, testAdminToken, "POST", "/admin/v1/tenants/"+tenant+"/api-keys", body); res.Status != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", name, res.Status, res.Body)
		}
	}
	if res := e.do(t, testAdminToken, "POST", "/admin/v1/tenants/01999999-0000-7000-8000-000000000000/api-keys", `{"name":"ci","scopes":["sso:read"]}`); res.Status != http.StatusNotFound {
		t.Errorf("unknown company: %d, want 404", res.Status)
	}

	res := e.do(t, testAdminToken, "POST", "/admin/v1/tenants/"+tenant+"/api-keys", `{"name":"backend","scopes":["sso:read","users:write"]}`)
	if res.Status != http.StatusCreated || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d %s (Cache-Control %q)", res.Status, res.Body, res.Header.Get("Cache-Control"))
	}
	created := res.JSON(t)
	key, id := created["key"].(string), created["id"].(string)
	if !strings.HasPrefix(key, domain.APIKeyPrefix) || created["name"] != "backend" || created["createdAt"] == nil ||
		len(created["scopes"].([]any)) != 2 {
		t.Fatalf("created = %s", res.Body)
	}
	readOnly := e.apiKey(t, tenant, domain.ScopeSSORead)

	list := func() map[string]map[string]any {
		t.Helper()
		res := e.do(t, testAdminToken, "GET", "/admin/v1/tenants/"+tenant+"/api-keys", "")
		if res.Status != http.StatusOK {
			t.Fatalf("list: %d %s", res.Status, res.Body)
		}
		if strings.Contains(string(res.Body), key) || strings.Contains(string(res.Body), domain.HashToken(key)) {
			t.Errorf("the list shows a secret or its hash: %s", res.Body)
		}
		out := map[string]map[string]any{}
		for _, k := range res.JSON(t)["apiKeys"].([]any) {
			m := k.(map[string]any)
			out[m["id"].(string)] = m
		}
		return out
	}
	if k := list()[id]; k == nil || k["lastUsedAt"] != nil || k["name"] != "backend" {
		t.Fatalf("listed before use: %v", k)
	}

	// Only its scopes: sso:read opens GET /api/v1/sso, not the PUT.
	if res := e.do(t, readOnly, "GET", "/api/v1/sso", ""); res.Status != http.StatusOK {
		t.Errorf("sso:read key on GET /api/v1/sso: %d %s", res.Status, res.Body)
	}
	res = e.doWith(t, readOnly, "PUT", "/api/v1/sso/idp-metadata", "<x/>", map[string]string{"Content-Type": "application/xml"})
	if res.Status != http.StatusForbidden || res.Header.Get("WWW-Authenticate") != `Bearer error="insufficient_scope", scope="sso:write"` {
		t.Errorf("sso:read key on the PUT: %d %s (WWW-Authenticate %q)", res.Status, res.Body, res.Header.Get("WWW-Authenticate"))
	}
	if m := res.JSON(t); m["code"] != "insufficient_scope" || m["scope"] != "sso:write" || m["error"] == "" {
		t.Errorf("insufficient_scope body = %s", res.Body)
	}

	// What the key writes names it; the audit timeline shows it.
	res = e.do(t, key, "POST", "/api/v1/users", `{"email":"ada@acme.example"}`)
	if res.Status != http.StatusCreated {
		t.Fatalf("invite with the key: %d %s", res.Status, res.Body)
	}
	user := res.JSON(t)["id"].(string)
	events, _, err := e.Store.Load(context.Background(), domain.TenantID(tenant), domain.KindUser, user)
	if err != nil || len(events) != 1 || events[0].Actor != domain.ActorAPIKeyPrefix+id {
		t.Fatalf("events %+v (err %v), want one by actor key:%s", events, err, id)
	}
	var tl audit.Timeline
	get(t, e, e.apiKey(t, tenant, domain.ScopeAuditRead), "/api/v1/audit/users/"+user, 200, &tl)
	if len(tl.Entries) != 1 || tl.Entries[0].Actor != "key:"+id {
		t.Errorf("timeline = %+v, want the key as actor", tl.Entries)
	}
	if k := list()[id]; k == nil || k["lastUsedAt"] == nil {
		t.Errorf("listed after use: %v, want lastUsedAt", k)
	}

	// Revoked: refused from the answer on; a second revocation finds nothing.
	if res := e.do(t, testAdminToken, "DELETE", "/admin/v1/tenants/"+tenant+"/api-keys/"+id, ""); res.Status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", res.Status, res.Body)
	}
	if res := e.do(t, key, "PATCH", "/api/v1/users/"+user, `{"name":"X"}`); res.Status != http.StatusUnauthorized ||
		!strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("revoked key: %d %s, want 401 with a Bearer challenge", res.Status, res.Body)
	}
	if res := e.do(t, testAdminToken, "DELETE", "/admin/v1/tenants/"+tenant+"/api-keys/"+id, ""); res.Status != http.StatusNotFound {
		t.Errorf("second revoke: %d, want 404", res.Status)
	}
	if _, ok := list()[id]; ok {
		t.Errorf("the revoked key is still listed")
	}
	if res := e.do(t, readOnly, "GET", "/api/v1/sso", ""); res.Status != http.StatusOK {
		t.Errorf("another key after the revocation: %d", res.Status)
	}

	// The SCIM token gets 403 on the company API; refusals are counted without the secret.
	if res := e.do(t, scimToken, "GET", "/api/v1/sso", ""); res.Status != http.StatusForbidden {
		t.Errorf("SCIM token on /api/v1: %d, want 403", res.Status)
	}
	if res := e.do(t, readOnly, "GET", "/scim/v2/Users", ""); res.Status != http.StatusUnauthorized {
		t.Errorf("API key on /scim/v2: %d, want 401", res.Status)
	}
	families := e.scrape(t)
	for _, c := range []struct{ kind, reason string }{
		{"scim_token", "wrong_kind"}, {"api_key", "wrong_kind"}, {"api_key", "insufficient_scope"}, {"api_key", "invalid"},
	} {
		if m := metric(families, "idledger_auth_failures_total", map[string]string{"kind": c.kind, "reason": c.reason}); m == nil || m.GetCounter().GetValue() < 1 {
			t.Errorf("idledger_auth_failures_total{kind=%s,reason=%s} = %v, want ≥ 1", c.kind, c.reason, m)
		}
	}
	// On the operator's routes a live company credential counts as the wrong kind, not as an
	// unknown token.
	wrongKind := func() float64 {
		m := metric(e.scrape(t), "idledger_auth_failures_total", map[string]string{"kind": "scim_token", "reason": "wrong_kind"})
		if m == nil {
			return 0
		}
		return m.GetCounter().GetValue()
	}
	before := wrongKind()
	if res := e.do(t, scimToken, "GET", "/admin/v1/tenants", ""); res.Status != http.StatusUnauthorized {
		t.Errorf("SCIM token on /admin/v1: %d, want 401", res.Status)
	}
	if got := wrongKind(); got != before+1 {
		t.Errorf("SCIM token on /admin/v1 counted %v times as the wrong kind, want 1", got-before)
	}
	scraped := e.do(t, "", "GET", "/metrics", "").Body
	for _, secret := range []string{key, readOnly, scimToken, domain.HashToken(key)[:16]} {
		if strings.Contains(string(scraped), secret) {
			t.Errorf("/metrics holds a credential")
		}
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the server log holds a credential")
		}
	}
	if !strings.Contains(logs.String(), "api key revoked") {
		t.Errorf("the revocation is not logged:\n%s", logs.String())
	}
}
