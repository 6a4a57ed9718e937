package scim

import (
	"encoding/json"
	"errors"
	"testing"
)

// mustJSON decodes a JSON object literal for a test table.
func mustJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return m
}

// canonicalJSON renders v with sorted keys, for comparing.
func canonicalJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const testUserJSON = `{
	"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
	"id": "u1",
	"externalId": "ext-1",
	"userName": "ada@example.com",
	"displayName": "Ada",
	"active": true,
	"name": {"givenName": "Ada", "familyName": "Lovelace"},
	"emails": [{"value": "ada@example.com", "type": "work", "primary": true}, {"value": "ada@home.example", "type": "home"}],
	"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "manager": {"value": "u0", "displayName": "Babbage"}},
	"meta": {"resourceType": "User", "created": "2026-01-01T00:00:00Z", "location": "https://x/scim/v2/Users/u1", "version": "W/\"3\""}
}`

func TestProject(t *testing.T) {
	const (
		schemas = `"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]`
		base    = schemas + `,"id":"u1","meta":{"resourceType":"User"}`
		ext     = `"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"`
	)
	tests := []struct {
		name, attributes, excluded, want string
	}{
		{"Neither", "", "", testUserJSON},
		{"OneAttribute", "userName", "", `{` + base + `,"userName":"ada@example.com"}`},
		{"CaseInsensitive", "USERNAME, DisplayName", "", `{` + base + `,"userName":"ada@example.com","displayName":"Ada"}`},
		{"SubAttribute", "name.givenName", "", `{` + base + `,"name":{"givenName":"Ada"}}`},
		{"MultiValuedSubAttribute", "emails.value", "", `{` + base + `,"emails":[{"value":"ada@example.com"},{"value":"ada@home.example"}]}`},
		{"ValueFilterReadAsPath", `emails[type eq "work"].value`, "", `{` + base + `,"emails":[{"value":"ada@example.com"},{"value":"ada@home.example"}]}`},
		{"CommaInsideFilter", `emails[type eq "a,b"].type,userName`, "", `{` + base + `,"userName":"ada@example.com","emails":[{"type":"work"},{"type":"home"}]}`},
		{"CoreURN", "urn:ietf:params:scim:schemas:core:2.0:User:userName", "", `{` + base + `,"userName":"ada@example.com"}`},
		{"CoreURNSubAttribute", "urn:ietf:params:scim:schemas:core:2.0:user:name.familyName", "", `{` + base + `,"name":{"familyName":"Lovelace"}}`},
		{"ExtensionAttribute", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "", `{` + base + `,` + ext + `:{"manager":{"value":"u0","displayName":"Babbage"}}}`},
		{"ExtensionSubAttribute", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", "", `{` + base + `,` + ext + `:{"manager":{"value":"u0"}}}`},
		{"WholeExtension", "urn:ietf:params:scim:schemas:extension:ENTERPRISE:2.0:User", "", `{` + base + `,` + ext + `:{"department":"R&D","manager":{"value":"u0","displayName":"Babbage"}}}`},
		{"ExtensionEmptyDropped", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter,userName", "", `{` + base + `,"userName":"ada@example.com"}`},
		{"Meta", "meta.created", "", `{` + schemas + `,"id":"u1","meta":{"resourceType":"User","created":"2026-01-01T00:00:00Z"}}`},
		{"IDAndSchemasOnly", "id,schemas", "", `{` + base + `}`},
		{"AbsentAttribute", "nickName", "", `{` + base + `}`},
		{"SubOfSimpleValue", "userName.foo", "", `{` + base + `}`},
		{"NonsenseIgnored", "user name,,a.b.c,%%,userName", "", `{` + base + `,"userName":"ada@example.com"}`},
		{"OnlyNonsenseIsDefault", "a.b.c, !", "", testUserJSON},
		{"AttributesWin", "userName", "userName", `{` + base + `,"userName":"ada@example.com"}`},
		{"NonsenseAttributesFallBackToExcluded", "[", "emails,name,meta,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
			`{` + base + `,"externalId":"ext-1","userName":"ada@example.com","displayName":"Ada","active":true}`},
		{"ExcludeSubAttribute", "", "emails.type,emails.primary,name.givenName,name.familyName,meta.location,meta.version,meta.created," +
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager,externalId,userName,displayName,active",
			`{` + base + `,"emails":[{"value":"ada@example.com"},{"value":"ada@home.example"}],` + ext + `:{"department":"R&D"}}`},
		{"ExcludeAlwaysReturned", "", "id,schemas,meta,emails,name,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department," +
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager,userName,displayName,active,externalId", `{` + base + `}`},
		// A core schema URN covers what /Schemas lists for it, externalId included but not meta.
		{"ExcludeCoreURN", "", "urn:ietf:params:scim:schemas:core:2.0:User", `{` + schemas + `,"id":"u1",` +
			`"meta":{"resourceType":"User","created":"2026-01-01T00:00:00Z","location":"https://x/scim/v2/Users/u1","version":"W/\"3\""},` + ext + `:{"department":"R&D","manager":{"value":"u0","displayName":"Babbage"}}}`},
		{"IncludeCoreURN", "urn:ietf:params:scim:schemas:core:2.0:User", "", `{` + base + `,"externalId":"ext-1","userName":"ada@example.com","displayName":"Ada","active":true,` +
			`"name":{"givenName":"Ada","familyName":"Lovelace"},"emails":[{"value":"ada@example.com","type":"work","primary":true},{"value":"ada@home.example","type":"home"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := mustJSON(t, testUserJSON)
			got := Project(res, tt.attributes, tt.excluded)
			if g, w := canonicalJSON(t, got), canonicalJSON(t, mustJSON(t, tt.want)); g != w {
				t.Errorf("Project(%q, %q)\n got %s\nwant %s", tt.attributes, tt.excluded, g, w)
			}
			if g, w := canonicalJSON(t, res), canonicalJSON(t, mustJSON(t, testUserJSON)); g != w {
				t.Errorf("res was modified: %s", g)
			}
		})
	}
}

func TestProject_NoSharing(t *testing.T) {
	res := mustJSON(t, testUserJSON)
	got := Project(res, "", "")
	got["name"].(map[string]any)["givenName"] = "Changed"
	got["emails"].([]any)[0].(map[string]any)["value"] = "changed"
	if res["name"].(map[string]any)["givenName"] != "Ada" || res["emails"].([]any)[0].(map[string]any)["value"] != "ada@example.com" {
		t.Error("the projection shares maps with res")
	}
}

func TestSortResources(t *testing.T) {
	list := func() []map[string]any {
		return []map[string]any{
			{"id": "a", "userName": "bob", "meta": map[string]any{"created": "2026-01-01T00:00:00.5Z"},
				"emails": []any{map[string]any{"value": "z@x"}, map[string]any{"value": "b@x", "primary": true}}},
			{"id": "B", "userName": "Alice", "externalId": "x2", "meta": map[string]any{"created": "2026-01-01T00:00:00Z"},
				"emails": []any{map[string]any{"value": "c@x"}}, "active": true,
				SchemaEnterpriseUser: map[string]any{"manager": map[string]any{"value": "m2"}}},
			{"id": "c", "userName": "carol", "externalId": "X1", "meta": map[string]any{"created": "2025-12-31T23:59:59+01:00"}, "active": false,
				SchemaEnterpriseUser: map[string]any{"manager": map[string]any{"value": "m1"}}},
			{"id": "d", "userName": "alice", "meta": map[string]any{}},
		}
	}
	tests := []struct {
		name, sortBy, sortOrder string
		want                    []string // ids in order
		wantErr                 error
	}{
		{"NoSortBy", "", "", []string{"a", "B", "c", "d"}, nil},
		{"CaseInsensitiveStable", "userName", "", []string{"B", "d", "a", "c"}, nil},
		{"Descending", "USERNAME", "Descending", []string{"c", "a", "B", "d"}, nil},
		{"CaseExact", "id", "ascending", []string{"B", "a", "c", "d"}, nil},
		{"MissingLastAscending", "externalId", "", []string{"c", "B", "a", "d"}, nil},
		{"MissingFirstDescending", "externalId", "descending", []string{"a", "d", "B", "c"}, nil},
		// a's first email is z@x but its primary is b@x; c and d have none.
		{"MultiValuedPrimary", "emails", "", []string{"a", "B", "c", "d"}, nil},
		{"MultiValuedSubPath", "emails.value", "descending", []string{"c", "d", "B", "a"}, nil},
		{"DateTime", "meta.created", "", []string{"c", "B", "a", "d"}, nil},
		{"Boolean", "active", "", []string{"c", "B", "a", "d"}, nil},
		{"Extension", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", "", []string{"c", "B", "a", "d"}, nil},
		{"ExtensionComplex", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "descending", []string{"a", "d", "B", "c"}, nil},
		{"CoreURN", "urn:ietf:params:scim:schemas:core:2.0:User:userName", "", []string{"B", "d", "a", "c"}, nil},
		{"UnknownAttribute", "nickName", "descending", []string{"a", "B", "c", "d"}, nil},
		{"Unreadable", "a b", "", []string{"a", "B", "c", "d"}, nil},
		{"BadOrder", "userName", "up", nil, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := list()
			err := SortResources(l, tt.sortBy, tt.sortOrder)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			var got []string
			for _, r := range l {
				got = append(got, r["id"].(string))
			}
			if canonicalJSON(t, got) != canonicalJSON(t, tt.want) {
				t.Errorf("SortResources(%q, %q) = %v, want %v", tt.sortBy, tt.sortOrder, got, tt.want)
			}
		})
	}
}
