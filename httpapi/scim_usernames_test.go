package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/idledger/idledger/domain"
)

// TestSCIMUserNames_OneIdentity: a userName written two ways is one identity through SCIM
// create, filter and uniqueness alike (RFC 8265 PRECIS UsernameCaseMapped), so Entra's "filter,
// then create" finds the user it would collide with; invisible characters are refused.
func TestSCIMUserNames_OneIdentity(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, token := e.tenant(t, "Acme")
	create := func(name string) response {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": name})
		return e.do(t, token, "POST", "/scim/v2/Users", string(body))
	}
	filter := func(name string) []any {
		t.Helper()
		q, _ := json.Marshal(name)
		res := e.do(t, token, "GET", "/scim/v2/Users?filter="+url.QueryEscape("userName eq "+string(q)), "")
		if res.Status != http.StatusOK {
			t.Fatalf("filter %+q: %d %s", name, res.Status, res.Body)
		}
		list, _ := res.JSON(t)["Resources"].([]any)
		return list
	}
	for _, c := range []struct{ name, stored, other string }{
		{"trim", " trim@u.com ", "trim@u.com"},
		{"NBSP", "\u00a0nbsp@u.com\u00a0", "nbsp@u.com"},
		{"case", "Ada@Contoso.com", "ada@contoso.com"},
		{"NFC and NFD", "jos\u00e9@u.com", "jose\u0301@u.com"},
		{"full-width", "\uff4b\uff49\uff4d@u.com", "kim@u.com"},
		{"Kelvin sign", "\u212aelvin@u.com", "kelvin@u.com"},
		{"Turkish dotted I", "\u0130pek@u.com", "i\u0307pek@u.com"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := create(c.stored)
			if res.Status != http.StatusCreated {
				t.Fatalf("create %+q: %d %s", c.stored, res.Status, res.Body)
			}
			id := res.JSON(t)["id"]
			for _, name := range []string{c.stored, c.other} {
				list := filter(name)
				if len(list) != 1 || list[0].(map[string]any)["id"] != id {
					t.Fatalf("filter userName eq %+q = %v, want the user %v", name, list, id)
				}
			}
			if res := create(c.other); res.Status != http.StatusConflict || res.JSON(t)["scimType"] != "uniqueness" {
				t.Fatalf("create %+q after %+q: %d %s, want 409 uniqueness", c.other, c.stored, res.Status, res.Body)
			}
		})
	}
	t.Run("stored trimmed", func(t *testing.T) {
		res := create("  spaced@u.com  ")
		if res.Status != http.StatusCreated || res.JSON(t)["userName"] != "spaced@u.com" {
			t.Fatalf("create: %d %s, want userName trimmed", res.Status, res.Body)
		}
	})
	t.Run("different identities", func(t *testing.T) {
		// The dotless ı is another letter: not the user ipek@u.com would be.
		if res := create("\u0131pek@u.com"); res.Status != http.StatusCreated {
			t.Fatalf("create dotless: %d %s", res.Status, res.Body)
		}
		if list := filter("ipek@u.com"); len(list) != 0 {
			t.Fatalf("filter ipek@u.com found %v", list)
		}
	})
	for name, bad := range map[string]string{
		"zero-width space only":  "\u200b",
		"zero-width space":       "zw\u200b@u.com",
		"right-to-left override": "rtl\u202e@u.com",
		"bidi isolate":           "\u2066iso@u.com\u2069",
		"blank":                  " \u00a0 ",
	} {
		t.Run("refuses "+name, func(t *testing.T) {
			res := create(bad)
			if res.Status != http.StatusBadRequest || res.JSON(t)["scimType"] != "invalidValue" {
				t.Fatalf("create %+q: %d %s, want 400 invalidValue", bad, res.Status, res.Body)
			}
		})
	}
	t.Run("rename refuses invisible", func(t *testing.T) {
		id := create("rename@u.com").JSON(t)["id"].(string)
		res := e.do(t, token, "PATCH", "/scim/v2/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"userName","value":"re\u200bname@u.com"}]}`)
		if res.Status != http.StatusBadRequest {
			t.Fatalf("PATCH userName with U+200B: %d %s, want 400", res.Status, res.Body)
		}
		res = e.do(t, token, "PATCH", "/scim/v2/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"userName","value":"KIM@u.com"}]}`)
		if res.Status != http.StatusConflict {
			t.Fatalf("PATCH userName to a full-width twin's name: %d %s, want 409", res.Status, res.Body)
		}
	})
}

// TestSCIMUserNames_FormerFold: userNames claimed by a version before the PRECIS rule (claims
// keyed by the plain lower-casing fold) are still found: the same name is refused, another
// form of it (NFC against the stored NFD) is refused through the read model's index, and
// deleting the old user frees the name for good.
func TestSCIMUserNames_FormerFold(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	tenant, token := e.tenant(t, "Acme")
	ctx := t.Context()
	// The former version: the same log, a service without the rule.
	s := e.Service
	old := &domain.Service{Log: s.Log, Read: s.Read, Sync: s.Sync, Now: s.Now, NewID: s.NewID}
	nfd := "Jose\u0301@u.com"
	u, err := old.CreateUser(ctx, domain.OriginSCIM, domain.TenantID(tenant), map[string]any{
		"schemas": []any{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": nfd})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Projector.WaitFor(ctx, u.Version); err != nil {
		t.Fatal(err)
	}
	create := func(name string) response {
		body, _ := json.Marshal(map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": name})
		return e.do(t, token, "POST", "/scim/v2/Users", string(body))
	}
	for _, name := range []string{nfd, "jos\u00e9@u.com", "JOS\u00c9@U.COM"} {
		if res := create(name); res.Status != http.StatusConflict {
			t.Fatalf("create %+q while the former version's user holds %+q: %d %s, want 409", name, nfd, res.Status, res.Body)
		}
	}
	if res := e.do(t, token, "DELETE", "/scim/v2/Users/"+string(u.ID), ""); res.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", res.Status, res.Body)
	}
	// The former claim (lower-cased NFD) was released with the new one: the very same name is free.
	if res := create(nfd); res.Status != http.StatusCreated {
		t.Fatalf("create %+q after the delete: %d %s, want 201", nfd, res.Status, res.Body)
	}
}
