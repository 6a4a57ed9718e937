package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestIfMatchList: If-Match is "*" or a list of entity tags and matches if any one names the
// current version (RFC 9110 §13.1.1), for users (whose tags carry their groups' fingerprint
// once they are in a group) and for groups; otherwise the write answers 412 and changes
// nothing.
func TestIfMatchList(t *testing.T) {
	e := newTestEnv(t)
	_, token := e.tenant(t, "Acme")
	send := func(method, path, body string, header map[string]string) response {
		t.Helper()
		return e.doWith(t, token, method, path, body, header)
	}
	res := send("POST", "/scim/v2/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@example.com"}`, nil)
	if res.Status != http.StatusCreated {
		t.Fatalf("create user: %d %s", res.Status, res.Body)
	}
	user := "/scim/v2/Users/" + res.JSON(t)["id"].(string)
	first := res.Header.Get("ETag")
	patch := func(n int) string {
		return fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Ada %d"}]}`, n)
	}
	// etagOf answers the current entity tag of path.
	etagOf := func(path string) string {
		t.Helper()
		res := send("GET", path, "", nil)
		if res.Status != http.StatusOK || res.Header.Get("ETag") == "" {
			t.Fatalf("GET %s: %d %s (ETag %q)", path, res.Status, res.Body, res.Header.Get("ETag"))
		}
		return res.Header.Get("ETag")
	}
	if res := send("PATCH", user, patch(1), nil); res.Status != http.StatusNoContent {
		t.Fatalf("PATCH: %d %s", res.Status, res.Body)
	}
	stale := first

	n, applied := 1, 1 // the last PATCH sent, and the last one that succeeded
	expect := func(path, ifMatch string, want int) {
		t.Helper()
		n++
		res := send("PATCH", path, patch(n), map[string]string{"If-Match": ifMatch})
		if res.Status != want {
			t.Errorf("PATCH %s with If-Match %s: %d %s, want %d", path, ifMatch, res.Status, res.Body, want)
		}
		if res.Status == http.StatusNoContent && path == user {
			applied = n
		}
	}
	current := etagOf(user)
	expect(user, stale+", "+current, http.StatusNoContent)
	expect(user, etagOf(user)+`, W/"999999"`, http.StatusNoContent)
	expect(user, stale+`, W/"999999", "junk"`, http.StatusPreconditionFailed)
	expect(user, `"junk", `+etagOf(user), http.StatusNoContent)
	expect(user, `"junk"`, http.StatusPreconditionFailed)
	expect(user, "*", http.StatusNoContent)
	expect(user, stale+", *", http.StatusNoContent)
	expect("/scim/v2/Users/no-such-user", "*", http.StatusNotFound)
	expect(user, stale, http.StatusPreconditionFailed)
	if got := send("GET", user, "", nil).JSON(t)["displayName"]; got != fmt.Sprintf("Ada %d", applied) || applied != n-2 {
		t.Errorf("displayName = %v after the PATCHes, want Ada %d of %d (a 412 must change nothing)", got, applied, n)
	}

	// Two If-Match header lines are one list.
	n++
	req, err := http.NewRequest("PATCH", e.URL+user, strings.NewReader(patch(n)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	req.Header.Add("If-Match", stale)
	req.Header.Add("If-Match", etagOf(user))
	hres, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hres.Body.Close()
	if hres.StatusCode != http.StatusNoContent {
		t.Errorf("PATCH with the current tag on a second If-Match line: %d, want 204", hres.StatusCode)
	}

	// A user in a group carries W/"<seq>-<groups>"; the list compares its <seq>.
	res = send("POST", "/scim/v2/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Staff","members":[{"value":%q}]}`, user[len("/scim/v2/Users/"):]), nil)
	if res.Status != http.StatusCreated {
		t.Fatalf("create group: %d %s", res.Status, res.Body)
	}
	group := "/scim/v2/Groups/" + res.JSON(t)["id"].(string)
	withGroups := etagOf(user)
	if withGroups == current || len(withGroups) < 5 {
		t.Fatalf("user ETag in a group = %q", withGroups)
	}
	expect(user, stale+", "+withGroups, http.StatusNoContent)
	expect(user, stale+", "+withGroups, http.StatusPreconditionFailed) // the PATCH moved the user on

	groupStale := etagOf(group)
	if res := send("PATCH", group, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Staff 2"}]}`, nil); res.Status != http.StatusNoContent {
		t.Fatalf("PATCH group: %d %s", res.Status, res.Body)
	}
	groupPatch := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Staff 3"}]}`
	if res := send("PATCH", group, groupPatch, map[string]string{"If-Match": groupStale + `, W/"999999"`}); res.Status != http.StatusPreconditionFailed {
		t.Errorf("PATCH group with a list without its version: %d %s, want 412", res.Status, res.Body)
	}
	if res := send("PATCH", group, groupPatch, map[string]string{"If-Match": groupStale + ", " + etagOf(group)}); res.Status != http.StatusNoContent {
		t.Errorf("PATCH group with a list holding its version: %d %s, want 204", res.Status, res.Body)
	}
	if res := send("DELETE", group, "", map[string]string{"If-Match": groupStale + ", " + etagOf(group)}); res.Status != http.StatusNoContent {
		t.Errorf("DELETE group with a list holding its version: %d %s, want 204", res.Status, res.Body)
	}
}
