package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/idledger/idledger/domain/scim"
)

// getSCIM fetches path with the tenant token and checks a 200 application/scim+json answer.
func getSCIM(t *testing.T, e *testEnv, token, path string) map[string]any {
	t.Helper()
	res := e.do(t, token, "GET", path, "")
	if res.Status != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, res.Status, res.Body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/scim+json") {
		t.Errorf("GET %s: Content-Type = %q, want application/scim+json", path, ct)
	}
	return res.JSON(t)
}

func TestServiceProviderConfig(t *testing.T) {
	e := newTestEnv(t)
	_, token := e.tenant(t, "Acme")
	got := getSCIM(t, e, token, "/scim/v2/ServiceProviderConfig")

	var want map[string]any
	wantJSON := `{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
		"patch": {"supported": true},
		"bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
		"filter": {"supported": true, "maxResults": 200},
		"changePassword": {"supported": false},
		"sort": {"supported": true},
		"etag": {"supported": true},
		"meta": {"resourceType": "ServiceProviderConfig", "location": "` + e.URL + `/scim/v2/ServiceProviderConfig"}
	}`
	if err := json.Unmarshal([]byte(wantJSON), &want); err != nil {
		t.Fatal(err)
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	if u, _ := got["documentationUri"].(string); !strings.HasPrefix(u, "https://") {
		t.Errorf("documentationUri = %v, want an https URL", got["documentationUri"])
	}
	schemes, _ := got["authenticationSchemes"].([]any)
	if len(schemes) != 1 {
		t.Fatalf("authenticationSchemes = %v, want one", got["authenticationSchemes"])
	}
	scheme := schemes[0].(map[string]any)
	if scheme["type"] != "oauthbearertoken" || scheme["primary"] != true || scheme["name"] == "" || scheme["description"] == "" {
		t.Errorf("authenticationSchemes[0] = %v", scheme)
	}
}

func TestResourceTypes(t *testing.T) {
	e := newTestEnv(t)
	_, token := e.tenant(t, "Acme")
	got := getSCIM(t, e, token, "/scim/v2/ResourceTypes")
	if s, _ := got["schemas"].([]any); len(s) != 1 || s[0] != "urn:ietf:params:scim:api:messages:2.0:ListResponse" {
		t.Errorf("schemas = %v", got["schemas"])
	}
	if got["totalResults"] != 2.0 || got["itemsPerPage"] != 2.0 || got["startIndex"] != 1.0 {
		t.Errorf("totalResults, itemsPerPage, startIndex = %v, %v, %v, want 2, 2, 1", got["totalResults"], got["itemsPerPage"], got["startIndex"])
	}
	resources, _ := got["Resources"].([]any)
	want := []struct{ id, endpoint, schema, ext string }{
		{"User", "/Users", scim.SchemaUser, scim.SchemaEnterpriseUser},
		{"Group", "/Groups", scim.SchemaGroup, ""},
	}
	if len(resources) != len(want) {
		t.Fatalf("Resources = %v, want User and Group", resources)
	}
	for i, w := range want {
		r := resources[i].(map[string]any)
		if r["id"] != w.id || r["name"] != w.id || r["endpoint"] != w.endpoint || r["schema"] != w.schema {
			t.Errorf("Resources[%d] = %v, want id/name %s endpoint %s schema %s", i, r, w.id, w.endpoint, w.schema)
		}
		meta, _ := r["meta"].(map[string]any)
		if meta["resourceType"] != "ResourceType" || meta["location"] != e.URL+"/scim/v2/ResourceTypes/"+w.id {
			t.Errorf("Resources[%d].meta = %v", i, meta)
		}
		exts, _ := r["schemaExtensions"].([]any)
		switch {
		case w.ext == "" && exts != nil:
			t.Errorf("Resources[%d].schemaExtensions = %v, want none", i, exts)
		case w.ext != "" && (len(exts) != 1 || exts[0].(map[string]any)["schema"] != w.ext || exts[0].(map[string]any)["required"] != false):
			t.Errorf("Resources[%d].schemaExtensions = %v, want %s not required", i, exts, w.ext)
		}
		one := getSCIM(t, e, token, "/scim/v2/ResourceTypes/"+w.id)
		if !reflect.DeepEqual(one, r) {
			t.Errorf("GET /ResourceTypes/%s = %v, want %v", w.id, one, r)
		}
	}
}

func TestSchemas(t *testing.T) {
	e := newTestEnv(t)
	_, token := e.tenant(t, "Acme")
	got := getSCIM(t, e, token, "/scim/v2/Schemas")
	if got["totalResults"] != 3.0 || got["itemsPerPage"] != 3.0 {
		t.Errorf("totalResults, itemsPerPage = %v, %v, want 3", got["totalResults"], got["itemsPerPage"])
	}
	resources, _ := got["Resources"].([]any)
	want := []struct{ id, name, description string }{
		{scim.SchemaUser, "User", "User Account"},
		{scim.SchemaGroup, "Group", "Group"},
		{scim.SchemaEnterpriseUser, "EnterpriseUser", "Enterprise User"},
	}
	if len(resources) != len(want) {
		t.Fatalf("Resources has %d schemas, want %d", len(resources), len(want))
	}
	for i, w := range want {
		t.Run(w.name, func(t *testing.T) {
			s := resources[i].(map[string]any)
			if s["id"] != w.id || s["name"] != w.name || s["description"] != w.description {
				t.Errorf("id, name, description = %v, %v, %v, want %s, %s, %s", s["id"], s["name"], s["description"], w.id, w.name, w.description)
			}
			if sc, _ := s["schemas"].([]any); len(sc) != 1 || sc[0] != "urn:ietf:params:scim:schemas:core:2.0:Schema" {
				t.Errorf("schemas = %v", s["schemas"])
			}
			meta, _ := s["meta"].(map[string]any)
			if meta["resourceType"] != "Schema" || meta["location"] != e.URL+"/scim/v2/Schemas/"+w.id {
				t.Errorf("meta = %v", meta)
			}
			attrs, _ := s["attributes"].([]any)
			if len(attrs) == 0 {
				t.Fatal("no attributes")
			}
			checkAttributes(t, w.name, attrs)

			one := getSCIM(t, e, token, "/scim/v2/Schemas/"+url.PathEscape(w.id))
			if !reflect.DeepEqual(one, s) {
				t.Errorf("GET /Schemas/%s differs from its /Schemas entry", w.id)
			}
		})
	}

	// What Entra maps must be discoverable, including the flattened names Microsoft's
	// validation derives (docs/entra-scim.md §3).
	names := map[string]bool{}
	for _, r := range resources {
		s := r.(map[string]any)
		for _, a := range s["attributes"].([]any) {
			am := a.(map[string]any)
			prefix := s["id"].(string) + ":" + am["name"].(string)
			names[prefix] = true
			subs, _ := am["subAttributes"].([]any)
			for _, sub := range subs {
				names[prefix+"."+sub.(map[string]any)["name"].(string)] = true
			}
		}
	}
	for _, n := range []string{
		scim.SchemaUser + ":userName", scim.SchemaUser + ":externalId", scim.SchemaUser + ":active",
		scim.SchemaUser + ":emails.value", scim.SchemaUser + ":name.givenName", scim.SchemaUser + ":addresses.postalCode",
		scim.SchemaUser + ":phoneNumbers.value", scim.SchemaGroup + ":displayName", scim.SchemaGroup + ":externalId",
		scim.SchemaGroup + ":members.value", scim.SchemaEnterpriseUser + ":manager.value", scim.SchemaEnterpriseUser + ":employeeNumber",
	} {
		if !names[n] {
			t.Errorf("/Schemas does not describe %s", n)
		}
	}
}

// checkAttributes checks that every attribute definition carries the required characteristics,
// camelCase values, and no nulls, recursing into sub-attributes.
func checkAttributes(t *testing.T, path string, attrs []any) {
	t.Helper()
	types := map[string]bool{"string": true, "boolean": true, "decimal": true, "integer": true, "dateTime": true, "reference": true, "complex": true, "binary": true}
	allowed := map[string]map[string]bool{
		"mutability": {"readOnly": true, "readWrite": true, "immutable": true, "writeOnly": true},
		"returned":   {"always": true, "never": true, "default": true, "request": true},
		"uniqueness": {"none": true, "server": true, "global": true},
	}
	for _, a := range attrs {
		am := a.(map[string]any)
		name, _ := am["name"].(string)
		p := path + "." + name
		if name == "" {
			t.Errorf("%s: attribute without name: %v", path, am)
		}
		for k, v := range am {
			if v == nil {
				t.Errorf("%s: %s is null", p, k)
			}
		}
		if typ, _ := am["type"].(string); !types[typ] {
			t.Errorf("%s: type = %v", p, am["type"])
		}
		for _, k := range []string{"multiValued", "required", "caseExact"} {
			if _, ok := am[k].(bool); !ok {
				t.Errorf("%s: %s = %v, want a boolean", p, k, am[k])
			}
		}
		for k, values := range allowed {
			if v, _ := am[k].(string); !values[v] {
				t.Errorf("%s: %s = %v", p, k, am[k])
			}
		}
		if am["type"] == "reference" {
			if refs, _ := am["referenceTypes"].([]any); len(refs) == 0 {
				t.Errorf("%s: reference without referenceTypes", p)
			}
		}
		subs, hasSubs := am["subAttributes"].([]any)
		if (am["type"] == "complex") != hasSubs {
			t.Errorf("%s: type %v with subAttributes %v", p, am["type"], am["subAttributes"])
		}
		if hasSubs {
			checkAttributes(t, p, subs)
		}
	}
}

func TestSchemas_UserName(t *testing.T) {
	e := newTestEnv(t)
	_, token := e.tenant(t, "Acme")
	s := getSCIM(t, e, token, "/scim/v2/Schemas/"+scim.SchemaUser)
	for _, a := range s["attributes"].([]any) {
		am := a.(map[string]any)
		if am["name"] != "userName" {
			continue
		}
		if am["required"] != true || am["caseExact"] != false || am["uniqueness"] != "server" || am["mutability"] != "readWrite" {
			t.Errorf("userName = %v, want required, not caseExact, uniqueness server, readWrite", am)
		}
		return
	}
	t.Error("User schema has no userName")
}

func TestDiscovery_Errors(t *testing.T) {
	e := newTestEnv(t)
	_, token := e.tenant(t, "Acme")
	tests := []struct {
		name, token, path string
		status            int
	}{
		{"UnknownResourceType", token, "/scim/v2/ResourceTypes/Device", http.StatusNotFound},
		{"UnknownSchema", token, "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:Device", http.StatusNotFound},
		{"SchemaByName", token, "/scim/v2/Schemas/User", http.StatusNotFound},
		{"NoToken", "", "/scim/v2/ServiceProviderConfig", http.StatusUnauthorized},
		{"WrongToken", "nope", "/scim/v2/Schemas", http.StatusUnauthorized},
		{"Filter", token, "/scim/v2/Schemas?filter=" + url.QueryEscape(`id eq "x"`), http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do(t, tt.token, "GET", tt.path, "")
			if res.Status != tt.status {
				t.Fatalf("status = %d, want %d: %s", res.Status, tt.status, res.Body)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/scim+json") {
				t.Errorf("Content-Type = %q", ct)
			}
			m := res.JSON(t)
			if sc, _ := m["schemas"].([]any); len(sc) != 1 || sc[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
				t.Errorf("body = %s, want a SCIM error", res.Body)
			}
		})
	}
}

func TestDiscovery_CaseAndSlash(t *testing.T) {
	e := newTestEnv(t)
	_, token := e.tenant(t, "Acme")
	for _, path := range []string{"/scim/v2/serviceproviderconfig", "/scim/v2/ResourceTypes/", "/scim/v2/resourcetypes/user", "/scim/v2/schemas/" + strings.ToLower(scim.SchemaEnterpriseUser)} {
		getSCIM(t, e, token, path)
	}
}
