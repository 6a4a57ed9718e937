package httpapi_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/saml/samltest"
)

// removeActive is the third-party conformance tester's request: remove active (RFC 7644
// §3.5.2.2), which leaves the attribute unassigned.
const removeActive = `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
	"Operations":[{"op":"remove","path":"active"}]}`

// TestSCIM_RemoveActiveNeverReactivates: removing active from a deactivated user leaves it
// unassigned, shown as absent, and the user stays unable to sign in; removing it from an active
// user fails closed the same way (an unassigned active is not true). Setting active to true
// lets the user in again.
func TestSCIM_RemoveActiveNeverReactivates(t *testing.T) {
	t.Parallel()
	e := newSSOEnv(t)
	tenant, token := e.company(t, "Acme", samltest.Entra)
	ada := e.provision(t, token, "ada@contoso.example")
	grace := e.provision(t, token, "grace@contoso.example")
	e.deactivate(t, token, ada)

	refused := func(t *testing.T, nameID string) {
		t.Helper()
		b := e.browser(t)
		loc := b.startLogin(t, tenant, "/app")
		res := b.post(t, e.idps[samltest.Entra].Login(t, loc, e.spMetadata(t, tenant), nameID))
		if res.Status != http.StatusForbidden {
			t.Fatalf("sign-in of %s = %d %s, want 403", nameID, res.Status, res.Body)
		}
	}
	unassigned := func(t *testing.T, id string) {
		t.Helper()
		res := e.do(t, token, "GET", "/scim/v2/Users/"+id, "")
		if res.Status != http.StatusOK {
			t.Fatalf("GET: %d %s", res.Status, res.Body)
		}
		if v, ok := res.JSON(t)["active"]; ok {
			t.Fatalf("GET after remove active shows active = %v, want it absent", v)
		}
	}

	t.Run("deactivated", func(t *testing.T) {
		res := e.do(t, token, "PATCH", "/scim/v2/Users/"+ada, removeActive)
		if res.Status != http.StatusOK && res.Status != http.StatusNoContent {
			t.Fatalf("remove active: %d %s", res.Status, res.Body)
		}
		unassigned(t, ada)
		refused(t, "ada@contoso.example")
		// A later PATCH of another attribute does not assign active either.
		res = e.do(t, token, "PATCH", "/scim/v2/Users/"+ada, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"Replace","path":"displayName","value":"Ada L."}]}`)
		if res.Status != http.StatusOK && res.Status != http.StatusNoContent {
			t.Fatalf("replace displayName: %d %s", res.Status, res.Body)
		}
		unassigned(t, ada)
		refused(t, "ada@contoso.example")
		// Neither active eq true nor active eq false matches an unassigned active.
		for _, f := range []string{"active eq true", "active eq false"} {
			res := e.do(t, token, "GET", "/scim/v2/Users?filter="+url.QueryEscape(f+` and userName eq "ada@contoso.example"`), "")
			if n := res.JSON(t)["totalResults"]; n != float64(0) {
				t.Errorf("filter %s: totalResults = %v, want 0", f, n)
			}
		}
	})

	t.Run("active", func(t *testing.T) {
		b := e.browser(t)
		b.login(t, tenant, samltest.Entra, "grace@contoso.example")
		res := e.do(t, token, "PATCH", "/scim/v2/Users/"+grace, removeActive)
		if res.Status != http.StatusOK && res.Status != http.StatusNoContent {
			t.Fatalf("remove active: %d %s", res.Status, res.Body)
		}
		unassigned(t, grace)
		refused(t, "grace@contoso.example")
		if me := b.me(t); me.Status != http.StatusUnauthorized {
			t.Fatalf("me after remove active = %d, want 401 (the session ends as on deactivation)", me.Status)
		}
		if got := lastUserEvent(t, e.testEnv, tenant, grace); got != "user.deactivated" {
			t.Errorf("event of remove active on an active user = %q, want user.deactivated", got)
		}
	})

	t.Run("set again", func(t *testing.T) {
		res := e.do(t, token, "PATCH", "/scim/v2/Users/"+ada, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"Replace","path":"active","value":"True"}]}`)
		if res.Status != http.StatusOK && res.Status != http.StatusNoContent {
			t.Fatalf("reactivate: %d %s", res.Status, res.Body)
		}
		if got := lastUserEvent(t, e.testEnv, tenant, ada); got != "user.reactivated" {
			t.Errorf("event of active true after remove = %q, want user.reactivated", got)
		}
		e.browser(t).login(t, tenant, samltest.Entra, "ada@contoso.example")
	})
}

// lastUserEvent returns the type of the user's last event in the log.
func lastUserEvent(tb testing.TB, e *testEnv, tenant, id string) string {
	tb.Helper()
	events, _, err := e.Store.Load(context.Background(), domain.TenantID(tenant), domain.KindUser, id)
	if err != nil || len(events) == 0 {
		tb.Fatalf("load user %s: %d events, %v", id, len(events), err)
	}
	return events[len(events)-1].Type
}
