package httpapi_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
	"github.com/idledger/idledger/httpapi"
	"github.com/idledger/idledger/saml/samltest"
)

// Credential columns of TestCredentials_EveryRouteEveryKind, in the order each row tries them:
// the cells that must be refused first, the ones that act last.
const (
	colNone       = "none"
	colOperator   = "operator token"
	colRevoked    = "revoked API key"
	colKeyWithout = "API key without the scope"
	colOtherSCIM  = "other company's SCIM token"
	colOtherKey   = "other company's API key"
	// Console sessions (cookies, console_auth.go): the other company's, one without its CSRF
	// token (and with this site's Origin), and one with both.
	colOtherConsole  = "other company's console session"
	colConsoleNoCSRF = "console session without CSRF token"
	colConsole       = "console session"
	colKeyWith       = "API key with the scope"
	colSCIM          = "SCIM token"
)

var credentialColumns = []string{colNone, colOperator, colRevoked, colKeyWithout, colOtherSCIM, colOtherKey,
	colOtherConsole, colConsoleNoCSRF, colConsole, colKeyWith, colSCIM}

// consoleColumn reports whether a column presents a console session instead of a bearer token.
func consoleColumn(col string) bool {
	return col == colOtherConsole || col == colConsoleNoCSRF || col == colConsole
}

// credentialRow is one route of the table: ok is the status for the credential the route is
// for (on its own company's data), other the status for the same kind of credential of
// another company (0: not that route's kind).
type credentialRow struct {
	method, pattern, path, body string
	scope                       domain.Scope // /api/v1 only
	ok, other                   int
}

// want returns the status a row expects from a column. Each kind opens only its own routes:
// the operator token /admin/v1; a SCIM token /scim/v2 (403 on /api/v1: a valid credential of
// the wrong kind, 401 on /admin/v1); an API key /api/v1 by scope (401 elsewhere); a console
// session its own company's /console/{tenant} (a change only with its CSRF token; another
// company's session 403), and no bearer API (401).
func (r credentialRow) want(col string) int {
	switch {
	case strings.HasPrefix(r.pattern, "/console/"):
		switch col {
		case colConsole:
			return r.ok
		case colConsoleNoCSRF:
			if r.method != "GET" {
				return http.StatusForbidden
			}
			return r.ok
		case colOtherConsole:
			return http.StatusForbidden
		}
	case r.pattern == "/api/v1/openapi.json":
		return http.StatusOK // public
	case r.pattern == "/api/v1/me":
		return http.StatusUnauthorized // a browser session's route: no bearer credential opens it
	case strings.HasPrefix(r.pattern, "/api/v1/"):
		switch col {
		case colKeyWith:
			return r.ok
		case colOtherKey:
			return r.other
		case colSCIM, colOtherSCIM, colKeyWithout:
			return http.StatusForbidden
		}
	case strings.HasPrefix(r.pattern, "/scim/v2/"):
		switch col {
		case colSCIM:
			return r.ok
		case colOtherSCIM:
			return r.other
		}
	case strings.HasPrefix(r.pattern, "/admin/v1/"):
		if col == colOperator {
			return r.ok
		}
	}
	return http.StatusUnauthorized
}

// TestCredentials_EveryRouteEveryKind drives every /api/v1, /scim/v2 and /admin/v1 route, and
// the console, with every kind of credential and asserts each cell's status, the RFC 6750
// challenges, and that the table covers every route the server serves under the three APIs.
func TestCredentials_EveryRouteEveryKind(t *testing.T) {
	e := buildSSOEnv(t, "", func(cfg *httpapi.Config, env *testEnv) {
		cfg.Audit = &audit.Service{Log: env.Store, History: env.Store, Requests: env.Store, Now: env.Clock.Now, NewID: env.Service.NewID}
	})
	acme, scimToken := e.company(t, "Acme", samltest.Entra)
	globex, otherSCIM := e.company(t, "Globex", "")
	otherKey := e.key(globex)
	umbrella, _ := e.tenant(t, "Umbrella") // the operator rotates its token, revokes its key
	ada := e.provision(t, scimToken, "ada@acme.example")
	bob := e.provision(t, scimToken, "bob@acme.example")
	staff := e.do(t, scimToken, "POST", "/scim/v2/Groups", `{"displayName":"Staff"}`).JSON(t)["id"].(string)
	temp := e.do(t, scimToken, "POST", "/scim/v2/Groups", `{"displayName":"Temp"}`).JSON(t)["id"].(string)
	created := e.do(t, testAdminToken, "POST", "/admin/v1/tenants/"+acme+"/api-keys", `{"name":"gone","scopes":["sso:read","users:write"]}`).JSON(t)
	revoked := created["key"].(string)
	if res := e.do(t, testAdminToken, "DELETE", "/admin/v1/tenants/"+acme+"/api-keys/"+created["id"].(string), ""); res.Status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", res.Status, res.Body)
	}
	umbrellaKey := e.do(t, testAdminToken, "POST", "/admin/v1/tenants/"+umbrella+"/api-keys", `{"name":"old","scopes":["sso:read"]}`).JSON(t)["id"].(string)
	umbrellaLink, _ := e.setupLink(t, umbrella, "")
	// Keys with exactly one scope, and with every scope but one.
	with, without := map[domain.Scope]string{}, map[domain.Scope]string{}
	for _, s := range domain.AllScopes() {
		with[s] = e.apiKey(t, acme, s)
		without[s] = e.apiKey(t, acme, slices.DeleteFunc(domain.AllScopes(), func(x domain.Scope) bool { return x == s })...)
	}
	allScopes := e.key(acme)
	// Console sessions of Acme and Globex, opened by setup links; the probe stands in for the
	// console's pages.
	e.Server.RegisterConsoleProbe()
	consoleOf := func(tenant string) (cookie, csrf string) {
		b := e.browser(t)
		csrf = b.signInByLink(t, tenant)
		return b.client.Jar.Cookies(mustURL(t, e.URL))[0].String(), csrf
	}
	acmeConsole, acmeCSRF := consoleOf(acme)
	globexConsole, globexCSRF := consoleOf(globex)

	const userSchema = "urn:ietf:params:scim:schemas:core:2.0:User"
	search := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}`
	patchOp := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"displayName","value":"X"}]}`
	rows := []credentialRow{
		{method: "GET", pattern: "/api/v1/openapi.json"},
		{method: "GET", pattern: "/api/v1/me"},
		{method: "GET", pattern: "/api/v1/sso", scope: domain.ScopeSSORead, ok: 200, other: 200},
		{method: "GET", pattern: "/api/v1/provisioning", scope: domain.ScopeProvisioningRead, ok: 200, other: 200},
		{method: "GET", pattern: "/api/v1/provisioning/cycles", scope: domain.ScopeProvisioningRead, ok: 200, other: 200},
		{method: "GET", pattern: "/api/v1/provisioning/cycles/:n", path: "/api/v1/provisioning/cycles/1", scope: domain.ScopeProvisioningRead, ok: 200, other: 404},
		{method: "GET", pattern: "/api/v1/audit/users", path: "/api/v1/audit/users?userName=" + url.QueryEscape("ada@acme.example"), scope: domain.ScopeAuditRead, ok: 200, other: 404},
		{method: "GET", pattern: "/api/v1/audit/users/:id", path: "/api/v1/audit/users/" + ada, scope: domain.ScopeAuditRead, ok: 200, other: 404},
		{method: "GET", pattern: "/api/v1/audit/users/:id/state", path: "/api/v1/audit/users/" + ada + "/state", scope: domain.ScopeAuditRead, ok: 200, other: 404},
		{method: "GET", pattern: "/api/v1/audit/groups", path: "/api/v1/audit/groups?displayName=Staff", scope: domain.ScopeAuditRead, ok: 200, other: 404},
		{method: "GET", pattern: "/api/v1/audit/groups/:id", path: "/api/v1/audit/groups/" + staff, scope: domain.ScopeAuditRead, ok: 200, other: 404},
		{method: "GET", pattern: "/api/v1/audit/groups/:id/members", path: "/api/v1/audit/groups/" + staff + "/members", scope: domain.ScopeAuditRead, ok: 200, other: 404},
		{method: "PUT", pattern: "/api/v1/sso/settings", body: `{"allowIdpInitiated":true}`, scope: domain.ScopeSSOWrite, ok: 200, other: 200},
		{method: "PUT", pattern: "/api/v1/sso/idp-metadata", body: `<not-metadata/>`, scope: domain.ScopeSSOWrite, ok: 400, other: 400},
		// Acme is provisioning-managed: its own user API answers 409; Globex is in manual mode.
		{method: "POST", pattern: "/api/v1/users", body: `{"email":"eve@example.com"}`, scope: domain.ScopeUsersWrite, ok: 409, other: 201},
		{method: "PATCH", pattern: "/api/v1/users/:id", path: "/api/v1/users/" + ada, body: `{"name":"X"}`, scope: domain.ScopeUsersWrite, ok: 409, other: 404},
		{method: "DELETE", pattern: "/api/v1/users/:id", path: "/api/v1/users/" + ada, scope: domain.ScopeUsersWrite, ok: 409, other: 404},
		{method: "DELETE", pattern: "/api/v1/sso", scope: domain.ScopeSSOWrite, ok: 204, other: 204},
		{method: "POST", pattern: "/api/v1/provisioning/deactivate", scope: domain.ScopeProvisioningWrite, ok: 200, other: 200},

		{method: "GET", pattern: "/scim/v2/ServiceProviderConfig", ok: 200, other: 200},
		{method: "GET", pattern: "/scim/v2/ResourceTypes", ok: 200, other: 200},
		{method: "GET", pattern: "/scim/v2/ResourceTypes/:id", path: "/scim/v2/ResourceTypes/User", ok: 200, other: 200},
		{method: "GET", pattern: "/scim/v2/Schemas", ok: 200, other: 200},
		{method: "GET", pattern: "/scim/v2/Schemas/:id", path: "/scim/v2/Schemas/" + userSchema, ok: 200, other: 200},
		{method: "GET", pattern: "/scim/v2/Users", ok: 200, other: 200},
		{method: "POST", pattern: "/scim/v2/Users", body: `{"userName":"carol@example.com"}`, ok: 201, other: 201},
		{method: "GET", pattern: "/scim/v2/Users/:id", path: "/scim/v2/Users/" + ada, ok: 200, other: 404},
		{method: "PUT", pattern: "/scim/v2/Users/:id", path: "/scim/v2/Users/" + ada, body: `{"userName":"ada@acme.example","active":true}`, ok: 200, other: 404},
		{method: "PATCH", pattern: "/scim/v2/Users/:id", path: "/scim/v2/Users/" + ada, body: patchOp, ok: 204, other: 404},
		{method: "DELETE", pattern: "/scim/v2/Users/:id", path: "/scim/v2/Users/" + bob, ok: 204, other: 404},
		{method: "POST", pattern: "/scim/v2/Users/.search", body: search, ok: 200, other: 200},
		{method: "POST", pattern: "/scim/v2/Groups", body: `{"displayName":"Ops"}`, ok: 201, other: 201},
		{method: "GET", pattern: "/scim/v2/Groups", ok: 200, other: 200},
		{method: "GET", pattern: "/scim/v2/Groups/:id", path: "/scim/v2/Groups/" + staff, ok: 200, other: 404},
		{method: "PUT", pattern: "/scim/v2/Groups/:id", path: "/scim/v2/Groups/" + staff, body: `{"displayName":"Staff"}`, ok: 200, other: 404},
		{method: "PATCH", pattern: "/scim/v2/Groups/:id", path: "/scim/v2/Groups/" + staff, body: patchOp, ok: 204, other: 404},
		{method: "DELETE", pattern: "/scim/v2/Groups/:id", path: "/scim/v2/Groups/" + temp, ok: 204, other: 404},
		{method: "POST", pattern: "/scim/v2/Groups/.search", body: search, ok: 200, other: 200},
		{method: "POST", pattern: "/scim/v2/.search", body: search, ok: 200, other: 200},

		{method: "POST", pattern: "/admin/v1/tenants", body: `{"name":"Initech"}`, ok: 201},
		{method: "PATCH", pattern: "/admin/v1/tenants/:id", path: "/admin/v1/tenants/" + umbrella, body: `{"features":{"groups":true}}`, ok: 200},
		{method: "POST", pattern: "/admin/v1/tenants/:id/rotate-token", path: "/admin/v1/tenants/" + umbrella + "/rotate-token", ok: 200},
		{method: "POST", pattern: "/admin/v1/tenants/:id/api-keys", path: "/admin/v1/tenants/" + umbrella + "/api-keys", body: `{"name":"ci","scopes":["sso:read"]}`, ok: 201},
		{method: "GET", pattern: "/admin/v1/tenants/:id/api-keys", path: "/admin/v1/tenants/" + umbrella + "/api-keys", ok: 200},
		{method: "DELETE", pattern: "/admin/v1/tenants/:id/api-keys/:keyId", path: "/admin/v1/tenants/" + umbrella + "/api-keys/" + umbrellaKey, ok: 204},
		{method: "POST", pattern: "/admin/v1/tenants/:id/setup-links", path: "/admin/v1/tenants/" + umbrella + "/setup-links", body: `{"expiresIn":"1h"}`, ok: 201},
		{method: "DELETE", pattern: "/admin/v1/tenants/:id/setup-links/:linkId", path: "/admin/v1/tenants/" + umbrella + "/setup-links/" + umbrellaLink, ok: 204},
		// This env's projector offers no administration: the operator gets the route's own 404.
		{method: "GET", pattern: "/admin/v1/projections", ok: 404},
		{method: "POST", pattern: "/admin/v1/projections/rebuild", ok: 404},

		// The console (its pages stand-in): a read, and a change (the probe changes nothing
		// without a form).
		{method: "GET", pattern: "/console/:tenant", path: "/console/" + acme, ok: 200},
		{method: "POST", pattern: "/console/:tenant", path: "/console/" + acme, ok: 200},
	}

	// The table covers every route the server serves under the three APIs.
	covered := map[string]bool{}
	for _, r := range rows {
		covered[r.method+" "+r.pattern] = true
	}
	for _, rt := range e.Server.Routes() {
		if !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, rt.Method) || strings.HasSuffix(rt.Path, "/*") {
			continue // echo's not-found routes of groups, the SCIM catch-all
		}
		for _, prefix := range []string{"/api/v1/", "/scim/v2/", "/admin/v1/"} {
			if strings.HasPrefix(rt.Path, prefix) && !covered[rt.Method+" "+rt.Path] {
				t.Errorf("route %s %s is not in the table", rt.Method, rt.Path)
			}
		}
	}

	for _, r := range rows {
		path := r.path
		if path == "" {
			path = r.pattern
		}
		for _, col := range credentialColumns {
			// Off /api/v1 scopes do not matter: both key columns present a key with every scope.
			token := map[string]string{
				colNone: "", colOperator: testAdminToken, colSCIM: scimToken, colRevoked: revoked,
				colOtherSCIM: otherSCIM, colOtherKey: otherKey, colKeyWith: allScopes, colKeyWithout: allScopes,
			}[col]
			if r.scope != "" && col == colKeyWith {
				token = with[r.scope] // only the route's scope
			}
			if r.scope != "" && col == colKeyWithout {
				token = without[r.scope] // every scope but the route's
			}
			header := map[string]string{"Content-Type": contentType(r)}
			switch col {
			case colConsole:
				header["Cookie"], header["X-CSRF-Token"] = acmeConsole, acmeCSRF
			case colConsoleNoCSRF:
				header["Cookie"] = acmeConsole
			case colOtherConsole:
				header["Cookie"], header["X-CSRF-Token"] = globexConsole, globexCSRF
			}
			if consoleColumn(col) {
				token, header["Origin"] = "", e.URL
			}
			res := e.doWith(t, token, r.method, path, r.body, header)
			want := r.want(col)
			if res.Status != want {
				t.Errorf("%s %s with %s = %d, want %d: %s", r.method, r.pattern, col, res.Status, want, res.Body)
				continue
			}
			switch {
			case want == http.StatusUnauthorized && !strings.HasPrefix(r.pattern, "/console/") && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer"):
				t.Errorf("%s %s with %s: 401 without a Bearer challenge (WWW-Authenticate %q)", r.method, r.pattern, col, res.Header.Get("WWW-Authenticate"))
			case want == http.StatusForbidden && col == colKeyWithout:
				m := res.JSON(t)
				challenge := `Bearer error="insufficient_scope", scope="` + string(r.scope) + `"`
				if m["code"] != "insufficient_scope" || m["scope"] != string(r.scope) || res.Header.Get("WWW-Authenticate") != challenge {
					t.Errorf("%s %s without its scope: %s, WWW-Authenticate %q; want insufficient_scope %s", r.method, r.pattern, res.Body, res.Header.Get("WWW-Authenticate"), r.scope)
				}
			}
		}
	}
}

// contentType is the request's media type: XML for the IdP metadata, SCIM JSON elsewhere.
func contentType(r credentialRow) string {
	if strings.HasSuffix(r.pattern, "idp-metadata") {
		return "application/xml"
	}
	return "application/scim+json"
}
