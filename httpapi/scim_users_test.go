package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"testing"
)

// diffJSON returns "" when got equals want, else both as JSON (go-cmp is not a dependency).
func diffJSON(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	w, _ := json.Marshal(want)
	g, _ := json.Marshal(got)
	return fmt.Sprintf("want %s\n got %s", w, g)
}

// TestSCIMUsers_Groups checks the User attribute groups (RFC 7643 §4.1.2): rendered from the
// memberships on reads, projected like any attribute, readOnly on writes, and shown only while
// the company has the groups feature.
func TestSCIMUsers_Groups(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	tenant, token := e.tenant(t, "Acme")
	mustStatus := func(t *testing.T, res response, want int) response {
		t.Helper()
		if res.Status != want {
			t.Fatalf("status = %d %s, want %d", res.Status, res.Body, want)
		}
		return res
	}
	create := func(path, body string) string {
		t.Helper()
		return mustStatus(t, e.do(t, token, "POST", path, body), http.StatusCreated).JSON(t)["id"].(string)
	}
	ada := create("/scim/v2/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@contoso.com"}`)
	bob := create("/scim/v2/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bob@contoso.com"}`)
	group := func(name string, members ...string) string {
		t.Helper()
		list := ""
		for i, m := range members {
			if i > 0 {
				list += ","
			}
			list += fmt.Sprintf(`{"value":%q}`, m)
		}
		return create("/scim/v2/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":%q,"members":[%s]}`, name, list))
	}
	eng := group("Engineering", ada)
	ops := group("Operations", ada)
	ref := func(id, name string) map[string]any {
		return map[string]any{"value": id, "$ref": e.URL + "/scim/v2/Groups/" + id, "display": name, "type": "direct"}
	}
	// GroupsOf lists in group id order; ids are UUIDv7, so in creation order.
	both := []any{ref(eng, "Engineering"), ref(ops, "Operations")}
	groupsOf := func(t *testing.T, path string) any {
		t.Helper()
		return mustStatus(t, e.do(t, token, "GET", path, ""), http.StatusOK).JSON(t)["groups"]
	}
	listed := func(t *testing.T, query string) map[string]any {
		t.Helper()
		m := mustStatus(t, e.do(t, token, "GET", "/scim/v2/Users?"+query, ""), http.StatusOK).JSON(t)
		out := map[string]any{}
		for _, r := range m["Resources"].([]any) {
			r := r.(map[string]any)
			out[r["id"].(string)] = r["groups"]
		}
		return out
	}

	t.Run("Get", func(t *testing.T) {
		if diff := diffJSON(both, groupsOf(t, "/scim/v2/Users/"+ada)); diff != "" {
			t.Errorf("ada's groups:\n%s", diff)
		}
		if g := groupsOf(t, "/scim/v2/Users/"+bob); g != nil {
			t.Errorf("bob is in no group, but groups = %v (want the attribute left out)", g)
		}
	})
	t.Run("List", func(t *testing.T) {
		got := listed(t, "")
		if diff := diffJSON(map[string]any{ada: both, bob: nil}, got); diff != "" {
			t.Errorf("listed groups:\n%s", diff)
		}
		got = listed(t, "sortBy=userName&sortOrder=descending&count=1&startIndex=2") // ada, after bob
		if diff := diffJSON(map[string]any{ada: both}, got); diff != "" {
			t.Errorf("sorted page:\n%s", diff)
		}
		got = listed(t, url.Values{"filter": {`userName eq "ada@contoso.com"`}}.Encode())
		if diff := diffJSON(map[string]any{ada: both}, got); diff != "" {
			t.Errorf("filtered list:\n%s", diff)
		}
	})
	t.Run("Projection", func(t *testing.T) {
		for _, tt := range []struct {
			query string
			want  any
		}{
			{"attributes=userName", nil},
			{"attributes=groups", both},
			{"attributes=urn:ietf:params:scim:schemas:core:2.0:User:groups.display", []any{
				map[string]any{"display": "Engineering"}, map[string]any{"display": "Operations"}}},
			{"attributes=urn:ietf:params:scim:schemas:core:2.0:User", both},
			{"excludedAttributes=groups", nil},
			{"excludedAttributes=GROUPS", nil},
			{"excludedAttributes=groups.$ref,groups.type", []any{
				map[string]any{"value": eng, "display": "Engineering"}, map[string]any{"value": ops, "display": "Operations"}}},
			{"excludedAttributes=emails", both},
		} {
			if diff := diffJSON(tt.want, groupsOf(t, "/scim/v2/Users/"+ada+"?"+tt.query)); diff != "" {
				t.Errorf("GET ?%s: groups \n%s", tt.query, diff)
			}
			if diff := diffJSON(tt.want, listed(t, tt.query)[ada]); diff != "" {
				t.Errorf("list ?%s: groups \n%s", tt.query, diff)
			}
		}
	})
	t.Run("ReadOnly", func(t *testing.T) {
		// POST and PUT ignore it (RFC 7643 §2.2: readOnly values sent by a client are ignored).
		res := mustStatus(t, e.do(t, token, "POST", "/scim/v2/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
			"userName":"carol@contoso.com","groups":[{"value":%q}]}`, eng)), http.StatusCreated)
		carol := res.JSON(t)["id"].(string)
		if g := res.JSON(t)["groups"]; g != nil {
			t.Errorf("POST with groups answered groups = %v", g)
		}
		if g := groupsOf(t, "/scim/v2/Users/"+carol); g != nil {
			t.Errorf("POST with groups made carol a member: %v", g)
		}
		res = mustStatus(t, e.do(t, token, "PUT", "/scim/v2/Users/"+ada, fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
			"userName":"ada@contoso.com","displayName":"Ada","groups":[{"value":%q}]}`, eng)), http.StatusOK)
		if diff := diffJSON(both, res.JSON(t)["groups"]); diff != "" {
			t.Errorf("PUT answered groups:\n%s", diff)
		}
		// PATCH on groups is 400 mutability (RFC 7644 §3.5.2).
		for _, op := range []string{
			fmt.Sprintf(`{"op":"add","path":"groups","value":[{"value":%q}]}`, eng),
			`{"op":"replace","path":"groups","value":[]}`,
			`{"op":"remove","path":"groups"}`,
			fmt.Sprintf(`{"op":"remove","path":"groups[value eq \"%s\"]"}`, eng),
			`{"op":"replace","path":"groups.display","value":"x"}`,
			`{"op":"add","path":"urn:ietf:params:scim:schemas:core:2.0:User:groups","value":[]}`,
			fmt.Sprintf(`{"op":"add","value":{"groups":[{"value":%q}]}}`, eng),
		} {
			res := e.do(t, token, "PATCH", "/scim/v2/Users/"+bob,
				`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[`+op+`]}`)
			if res.Status != http.StatusBadRequest || res.JSON(t)["scimType"] != "mutability" {
				t.Errorf("PATCH %s = %d %s, want 400 mutability", op, res.Status, res.Body)
			}
		}
		if g := groupsOf(t, "/scim/v2/Users/"+bob); g != nil {
			t.Errorf("bob's groups after the refused PATCHes = %v", g)
		}
		// PATCH answering with the resource shows the groups.
		res = mustStatus(t, e.do(t, token, "PATCH", "/scim/v2/Users/"+ada+"?excludedAttributes=emails",
			`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"title","value":"Countess"}]}`),
			http.StatusOK)
		if diff := diffJSON(both, res.JSON(t)["groups"]); diff != "" {
			t.Errorf("PATCH answered groups:\n%s", diff)
		}
	})
	t.Run("FollowsGroups", func(t *testing.T) {
		mustStatus(t, e.do(t, token, "PATCH", "/scim/v2/Groups/"+ops, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"replace","path":"displayName","value":"Ops"}]}`), http.StatusNoContent)
		if diff := diffJSON([]any{ref(eng, "Engineering"), ref(ops, "Ops")}, groupsOf(t, "/scim/v2/Users/"+ada)); diff != "" {
			t.Errorf("after the rename:\n%s", diff)
		}
		mustStatus(t, e.do(t, token, "DELETE", "/scim/v2/Groups/"+eng, ""), http.StatusNoContent)
		if diff := diffJSON([]any{ref(ops, "Ops")}, groupsOf(t, "/scim/v2/Users/"+ada)); diff != "" {
			t.Errorf("after the delete:\n%s", diff)
		}
		mustStatus(t, e.do(t, token, "PATCH", "/scim/v2/Groups/"+ops, fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"remove","path":"members[value eq \"%s\"]"}]}`, ada)), http.StatusNoContent)
		if g := groupsOf(t, "/scim/v2/Users/"+ada); g != nil {
			t.Errorf("ada left her last group, but groups = %v", g)
		}
		mustStatus(t, e.do(t, token, "PATCH", "/scim/v2/Groups/"+ops, fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"add","path":"members","value":[{"value":%q}]}]}`, ada)), http.StatusNoContent)
	})
	t.Run("FeatureOff", func(t *testing.T) {
		mustStatus(t, e.do(t, testAdminToken, "PATCH", "/admin/v1/tenants/"+tenant, `{"features":{"groups":false}}`), http.StatusOK)
		if res := e.do(t, token, "GET", "/scim/v2/Groups/"+ops, ""); res.Status != http.StatusForbidden {
			t.Fatalf("GET /Groups with the feature off = %d", res.Status)
		}
		if g := groupsOf(t, "/scim/v2/Users/"+ada); g != nil {
			t.Errorf("groups with the feature off = %v, want none", g)
		}
		if g := listed(t, "")[ada]; g != nil {
			t.Errorf("listed groups with the feature off = %v, want none", g)
		}
		mustStatus(t, e.do(t, testAdminToken, "PATCH", "/admin/v1/tenants/"+tenant, `{"features":{"groups":true}}`), http.StatusOK)
		if diff := diffJSON([]any{ref(ops, "Ops")}, groupsOf(t, "/scim/v2/Users/"+ada)); diff != "" {
			t.Errorf("with the feature back on:\n%s", diff)
		}
	})
}

// TestSCIMUsers_GroupsETag checks the entity tag of a user shown with its groups: it changes
// when only the groups change (a conditional GET never answers 304 over changed groups), it is
// the meta.version of the body, and If-Match with it still guards writes to the user.
func TestSCIMUsers_GroupsETag(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, token := e.tenant(t, "Acme")
	send := func(method, path, body string, header map[string]string) response {
		t.Helper()
		return e.doWith(t, token, method, path, body, header)
	}
	res := send("POST", "/scim/v2/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@contoso.com"}`, nil)
	if res.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.Status, res.Body)
	}
	ada := res.JSON(t)["id"].(string)
	alone := res.Header.Get("ETag")
	res = send("POST", "/scim/v2/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Eng","members":[{"value":%q}]}`, ada), nil)
	if res.Status != http.StatusCreated {
		t.Fatalf("create group: %d %s", res.Status, res.Body)
	}
	group := res.JSON(t)["id"].(string)

	get := func(header map[string]string) response {
		t.Helper()
		return send("GET", "/scim/v2/Users/"+ada, "", header)
	}
	// The user itself did not change, its groups did: the old tag no longer matches.
	res = get(map[string]string{"If-None-Match": alone})
	if res.Status != http.StatusOK {
		t.Fatalf("If-None-Match with the tag from before the user joined a group: %d, want 200", res.Status)
	}
	inEng := res.Header.Get("ETag")
	if inEng == alone || inEng != res.JSON(t)["meta"].(map[string]any)["version"] {
		t.Fatalf("ETag %q (before joining: %q), meta.version %v", inEng, alone, res.JSON(t)["meta"])
	}
	if res := get(map[string]string{"If-None-Match": inEng}); res.Status != http.StatusNotModified || res.Header.Get("ETag") != inEng {
		t.Fatalf("If-None-Match with the current tag: %d %q, want 304", res.Status, res.Header.Get("ETag"))
	}
	// Renaming the group changes what the user shows, so the tag too.
	if res := send("PATCH", "/scim/v2/Groups/"+group, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Engineering"}]}`, nil); res.Status != http.StatusNoContent {
		t.Fatalf("rename: %d %s", res.Status, res.Body)
	}
	res = get(map[string]string{"If-None-Match": inEng})
	if res.Status != http.StatusOK || res.Header.Get("ETag") == inEng {
		t.Fatalf("after the group's rename: %d, ETag %q (before %q)", res.Status, res.Header.Get("ETag"), inEng)
	}
	renamed := res.Header.Get("ETag")
	// If-Match compares the user's own version: the current tag passes, a stale one fails.
	patch := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Ada"}]}`
	if res := send("PATCH", "/scim/v2/Users/"+ada, patch, map[string]string{"If-Match": renamed}); res.Status != http.StatusNoContent {
		t.Fatalf("PATCH with If-Match of the current tag: %d %s", res.Status, res.Body)
	}
	if res := send("PATCH", "/scim/v2/Users/"+ada, patch, map[string]string{"If-Match": renamed}); res.Status != http.StatusPreconditionFailed {
		t.Fatalf("PATCH with If-Match of a stale tag: %d %s, want 412", res.Status, res.Body)
	}
}
