package httpapi_test

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"testing"
)

// TestSCIMSearch: POST /Users/.search, /Groups/.search and /.search (RFC 7644 §3.4.3) answer
// with the ListResponse of the equivalent GET; /.search lists the matching users, then the
// matching groups, paged as one list.
func TestSCIMSearch(t *testing.T) {
	e := newTestEnv(t)
	tenantID, token := e.tenant(t, "Acme")
	var userIDs []string
	for _, name := range []string{"carol@example.com", "ada@example.com", "bob@example.com"} {
		res := e.do(t, token, "POST", "/scim/v2/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q}`, name))
		if res.Status != http.StatusCreated {
			t.Fatalf("create user: %d %s", res.Status, res.Body)
		}
		userIDs = append(userIDs, res.JSON(t)["id"].(string))
	}
	for _, name := range []string{"Staff", "Admins"} {
		res := e.do(t, token, "POST", "/scim/v2/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":%q,"members":[{"value":%q}]}`, name, userIDs[0]))
		if res.Status != http.StatusCreated {
			t.Fatalf("create group: %d %s", res.Status, res.Body)
		}
	}
	const search = `"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]`

	// The same query as GET and as POST …/.search gives the same answer.
	for _, tt := range []struct {
		path  string
		query url.Values
		body  string
	}{
		{"/scim/v2/Users", url.Values{"filter": {`userName eq "ADA@example.com"`}, "attributes": {"userName,groups"}},
			`{` + search + `,"filter":"userName eq \"ADA@example.com\"","attributes":["userName","groups"]}`},
		{"/scim/v2/Users", url.Values{"sortBy": {"userName"}, "sortOrder": {"descending"}, "startIndex": {"2"}, "count": {"1"}, "excludedAttributes": {"meta"}},
			`{` + search + `,"sortBy":"userName","sortOrder":"descending","startIndex":2,"count":1,"excludedAttributes":["meta"]}`},
		{"/scim/v2/Users", url.Values{"filter": {`userName sw "b"`}}, `{"SCHEMAS":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"FILTER":"userName sw \"b\""}`},
		{"/scim/v2/Users", url.Values{}, `{` + search + `}`},
		{"/scim/v2/Groups", url.Values{"filter": {`displayName eq "staff"`}, "excludedAttributes": {"members"}},
			`{` + search + `,"filter":"displayName eq \"staff\"","excludedAttributes":["members"]}`},
		{"/scim/v2/Groups", url.Values{"sortBy": {"displayName"}, "count": {"0"}}, `{` + search + `,"sortBy":"displayName","count":0}`},
	} {
		get := e.do(t, token, "GET", tt.path+"?"+tt.query.Encode(), "")
		post := e.do(t, token, "POST", tt.path+"/.search", tt.body)
		if get.Status != http.StatusOK || post.Status != http.StatusOK {
			t.Errorf("GET %s?%s = %d, POST .search %s = %d %s", tt.path, tt.query.Encode(), get.Status, tt.body, post.Status, post.Body)
			continue
		}
		if g, p := get.JSON(t), post.JSON(t); !reflect.DeepEqual(g, p) {
			t.Errorf("POST %s/.search %s\n = %s\nGET ?%s\n = %s", tt.path, tt.body, post.Body, tt.query.Encode(), get.Body)
		}
		if ct := post.Header.Get("Content-Type"); ct != "application/scim+json; charset=utf-8" {
			t.Errorf("Content-Type = %q", ct)
		}
	}
	if res := e.do(t, token, "POST", "/scim/v2/users/.search", `{`+search+`}`); res.Status != http.StatusOK || res.JSON(t)["totalResults"] != 3.0 {
		t.Errorf("POST /scim/v2/users/.search: %d %s", res.Status, res.Body)
	}

	// /.search: the users, then the groups, paged as one list.
	names := func(res response) []string {
		t.Helper()
		var out []string
		for _, r := range res.JSON(t)["Resources"].([]any) {
			m := r.(map[string]any)
			if n, ok := m["userName"].(string); ok {
				out = append(out, n)
			} else {
				out = append(out, m["displayName"].(string))
			}
		}
		return out
	}
	for _, tt := range []struct {
		body  string
		total float64
		want  []string
	}{
		{`{` + search + `,"sortBy":"userName"}`, 5, []string{"ada@example.com", "bob@example.com", "carol@example.com", "Staff", "Admins"}},
		{`{` + search + `,"sortBy":"userName","startIndex":3,"count":2}`, 5, []string{"carol@example.com", "Staff"}},
		{`{` + search + `,"startIndex":5,"count":10}`, 5, []string{"Admins"}},
		{`{` + search + `,"startIndex":6}`, 5, nil},
		{`{` + search + `,"count":0}`, 5, nil},
		{`{` + search + `,"filter":"displayName sw \"ad\" or userName sw \"ad\""}`, 2, []string{"ada@example.com", "Admins"}},
	} {
		res := e.do(t, token, "POST", "/scim/v2/.search", tt.body)
		if res.Status != http.StatusOK {
			t.Errorf("POST /.search %s: %d %s", tt.body, res.Status, res.Body)
			continue
		}
		m := res.JSON(t)
		if got := names(res); m["totalResults"] != tt.total || !reflect.DeepEqual(got, tt.want) || m["itemsPerPage"] != float64(len(tt.want)) {
			t.Errorf("POST /.search %s = total %v, %v, want %v, %v\n%s", tt.body, m["totalResults"], got, tt.total, tt.want, res.Body)
		}
	}

	// Bodies that are not a SearchRequest.
	for _, tt := range []struct{ body, scimType string }{
		{`{` + search + `,"filter":`, "invalidSyntax"},
		{`[` + search + `]`, "invalidSyntax"},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}`, "invalidValue"},
		{`{"filter":"userName pr"}`, "invalidValue"},
		{`{"schemas":"urn:ietf:params:scim:api:messages:2.0:SearchRequest"}`, "invalidValue"},
		{`{` + search + `,"count":"10"}`, "invalidValue"},
		{`{` + search + `,"startIndex":1.5}`, "invalidValue"},
		{`{` + search + `,"attributes":[1]}`, "invalidValue"},
		{`{` + search + `,"filter":"userName xx \"a\""}`, "invalidFilter"},
	} {
		for _, path := range []string{"/scim/v2/Users/.search", "/scim/v2/Groups/.search", "/scim/v2/.search"} {
			res := e.do(t, token, "POST", path, tt.body)
			if m := res.JSON(t); res.Status != http.StatusBadRequest || m["scimType"] != tt.scimType || m["status"] != "400" {
				t.Errorf("POST %s %s = %d %s, want 400 %s", path, tt.body, res.Status, res.Body, tt.scimType)
			}
		}
	}
	if res := e.do(t, token, "GET", "/scim/v2/Users/.search", ""); res.Status != http.StatusNotFound {
		t.Errorf("GET /Users/.search = %d %s, want 404 (a user with id .search)", res.Status, res.Body)
	}

	// Without the groups add-on /Groups/.search answers 403 as GET /Groups does, and /.search
	// finds users only.
	if res := e.do(t, testAdminToken, "PATCH", "/admin/v1/tenants/"+tenantID, `{"features":{"groups":false}}`); res.Status != http.StatusOK {
		t.Fatalf("turn groups off: %d %s", res.Status, res.Body)
	}
	if res := e.do(t, token, "POST", "/scim/v2/Groups/.search", `{`+search+`}`); res.Status != http.StatusForbidden {
		t.Errorf("POST /Groups/.search without groups = %d %s, want 403", res.Status, res.Body)
	}
	if res := e.do(t, token, "POST", "/scim/v2/.search", `{`+search+`}`); res.Status != http.StatusOK || res.JSON(t)["totalResults"] != 3.0 {
		t.Errorf("POST /.search without groups = %d %s, want the 3 users", res.Status, res.Body)
	}
}
