package httpapi_test

import (
	"net/http"
	"testing"
)

// TestSCIMPut_ActiveUnmentioned: a PUT whose representation does not mention active neither
// re-activates a deactivated user nor deactivates an active one; one that does, sets it.
func TestSCIMPut_ActiveUnmentioned(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, token := e.tenant(t, "Acme")
	const user = `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@contoso.com"`
	res := e.do(t, token, "POST", "/scim/v2/Users", user+`}`)
	if res.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.Status, res.Body)
	}
	id := res.JSON(t)["id"].(string)
	put := func(body string, want bool) {
		t.Helper()
		res := e.do(t, token, "PUT", "/scim/v2/Users/"+id, body)
		if res.Status != http.StatusOK {
			t.Fatalf("PUT %s: %d %s", body, res.Status, res.Body)
		}
		if got := e.do(t, token, "GET", "/scim/v2/Users/"+id, "").JSON(t)["active"]; got != want {
			t.Fatalf("after PUT %s: active = %v, want %v", body, got, want)
		}
	}
	put(user+`,"displayName":"Ada"}`, true)
	put(user+`,"active":false}`, false)
	put(user+`,"displayName":"Ada L."}`, false) // not re-activated
	put(user+`,"active":true}`, true)
}
