package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/idledger/idledger/domain"
)

// TestOpenAPI_CoversEveryCompanyRoute serves GET /api/v1/openapi.json without a credential,
// validates it as OpenAPI 3.1, and walks the echo routes: every /api/v1 route (but the document
// itself and the browser session's /api/v1/me) must be in it with exactly one known scope, and
// it must document nothing the server does not serve.
func TestOpenAPI_CoversEveryCompanyRoute(t *testing.T) {
	t.Parallel()
	s := New(Config{BaseURL: "https://idledger.example"}, nil, nil, &fakeProjector{}, nil)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/v1/openapi.json = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	raw := rec.Body.Bytes()

	doc, err := libopenapi.NewDocument(raw)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if v := doc.GetVersion(); v != "3.1.0" {
		t.Errorf("openapi version %q, want 3.1.0", v)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("not valid OpenAPI 3.1: %s (%s)", e.Message, e.Reason)
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("  at %s: %s", se.FieldPath, se.Reason)
			}
		}
	}

	// The validator does refuse a document that is not OpenAPI 3.1 (here: without info).
	broken := map[string]any{}
	if err := json.Unmarshal(raw, &broken); err != nil {
		t.Fatal(err)
	}
	delete(broken, "info")
	brokenRaw, _ := json.Marshal(broken)
	if bdoc, err := libopenapi.NewDocument(brokenRaw); err == nil {
		if bv, errs := validator.NewValidator(bdoc); len(errs) == 0 {
			if ok, _ := bv.ValidateDocument(); ok {
				t.Error("a document without info validated: the validation checks nothing")
			}
		}
	}

	var spec struct {
		Paths map[string]map[string]struct {
			Security []map[string][]string `json:"security"`
		} `json:"paths"`
		Components struct {
			SecuritySchemes map[string]struct {
				Type, Scheme string
			} `json:"securitySchemes"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	if sc := spec.Components.SecuritySchemes[bearerScheme]; sc.Type != "http" || sc.Scheme != "bearer" {
		t.Errorf("security scheme %s = %+v, want http bearer", bearerScheme, sc)
	}
	served := map[string]bool{}
	for _, r := range s.Routes() {
		if !strings.HasPrefix(r.Path, "/api/v1/") || r.Path == openAPIPath || r.Path == "/api/v1/me" ||
			strings.HasSuffix(r.Path, "/*") || strings.HasPrefix(r.Method, "echo_") {
			continue
		}
		path, _ := openAPIPathOf(r.Path)
		method := strings.ToLower(r.Method)
		served[method+" "+path] = true
		op, ok := spec.Paths[path][method]
		if !ok {
			t.Errorf("%s %s is served but not in openapi.json", r.Method, r.Path)
			continue
		}
		if len(op.Security) != 1 || len(op.Security[0][bearerScheme]) != 1 {
			t.Errorf("%s %s: security %v, want one scope of %s", r.Method, path, op.Security, bearerScheme)
			continue
		}
		if _, err := domain.ParseScopes(op.Security[0][bearerScheme]); err != nil {
			t.Errorf("%s %s: %v", r.Method, path, err)
		}
	}
	for path, ops := range spec.Paths {
		for method := range ops {
			if !served[method+" "+path] {
				t.Errorf("openapi.json documents %s %s, which the server does not serve", method, path)
			}
		}
	}
	if len(served) == 0 {
		t.Fatal("no /api/v1 route found")
	}
}

// TestOpenAPI_ScopeTable pins the route → scope table the product contract names.
func TestOpenAPI_ScopeTable(t *testing.T) {
	t.Parallel()
	s := New(Config{}, nil, nil, &fakeProjector{}, nil)
	want := map[string]domain.Scope{
		"GET /api/v1/sso": domain.ScopeSSORead, "PUT /api/v1/sso/idp-metadata": domain.ScopeSSOWrite,
		"PUT /api/v1/sso/settings": domain.ScopeSSOWrite, "DELETE /api/v1/sso": domain.ScopeSSOWrite,
		"POST /api/v1/users": domain.ScopeUsersWrite, "PATCH /api/v1/users/:id": domain.ScopeUsersWrite,
		"DELETE /api/v1/users/:id": domain.ScopeUsersWrite, "GET /api/v1/provisioning": domain.ScopeProvisioningRead,
		"GET /api/v1/provisioning/cycles": domain.ScopeProvisioningRead, "GET /api/v1/provisioning/cycles/:n": domain.ScopeProvisioningRead,
		"POST /api/v1/provisioning/deactivate": domain.ScopeProvisioningWrite,
		"GET /api/v1/audit/users":              domain.ScopeAuditRead, "GET /api/v1/audit/users/:id": domain.ScopeAuditRead,
		"GET /api/v1/audit/users/:id/state": domain.ScopeAuditRead, "GET /api/v1/audit/groups": domain.ScopeAuditRead,
		"GET /api/v1/audit/groups/:id": domain.ScopeAuditRead, "GET /api/v1/audit/groups/:id/members": domain.ScopeAuditRead,
		"POST /api/v1/users/:id/erase": domain.ScopePrivacyWrite,
		"GET /api/v1/events":           domain.ScopeEventsRead, "GET /api/v1/events/stream": domain.ScopeEventsRead,
		"POST /api/v1/webhooks": domain.ScopeWebhooksWrite, "GET /api/v1/webhooks": domain.ScopeWebhooksWrite,
		"GET /api/v1/webhooks/:id": domain.ScopeWebhooksWrite, "PATCH /api/v1/webhooks/:id": domain.ScopeWebhooksWrite,
		"DELETE /api/v1/webhooks/:id": domain.ScopeWebhooksWrite, "GET /api/v1/webhooks/:id/deliveries": domain.ScopeWebhooksWrite,
		"POST /api/v1/webhooks/:id/replay": domain.ScopeWebhooksWrite, "POST /api/v1/webhooks/:id/rotate-secret": domain.ScopeWebhooksWrite,
	}
	got := map[string]domain.Scope{}
	for _, r := range s.companyAPI() {
		got[r.method+" "+r.path] = r.scope
	}
	for route, scope := range want {
		if got[route] != scope {
			t.Errorf("%s needs %q, want %q", route, got[route], scope)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d company routes, want %d: %v", len(got), len(want), got)
	}
}
