package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/idledger/idledger/saml/samltest"
)

// TestContractWalk walks the README's flow end to end on the real wiring: operator creates a
// company and an API key for it, the company uploads Entra's metadata with the key, Entra
// provisions a user over SCIM, the user signs in through SAML and reads /api/v1/me; a SCIM
// deactivation ends that access at once.
func TestContractWalk(t *testing.T) {
	m := startMain(t, t.TempDir())
	base := "http://" + m.Addr()
	tenant, token := createTenant(t, base, "Contoso")
	company := client{t, base, token}
	key := createAPIKey(t, base, tenant, "sso:read", "sso:write")
	api := client{t, base, key}

	// The company wires Entra: Federation Metadata XML as downloaded.
	req, _ := http.NewRequest("PUT", base+"/api/v1/sso/idp-metadata", bytes.NewReader(samltest.Read(t, "entra-metadata.xml")))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/xml")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("metadata upload: %d", res.StatusCode)
	}
	if sso := api.do("GET", "/api/v1/sso", "").json(t); sso["enabled"] != true {
		t.Fatalf("GET /api/v1/sso = %v", sso)
	}

	// Entra provisions Ada.
	created := company.do("POST", "/scim/v2/Users", `{"userName":"Ada@Contoso.example","active":true}`)
	if created.status != http.StatusCreated {
		t.Fatalf("provision: %d %s", created.status, created.body)
	}
	ada := created.json(t)["id"].(string)

	// Ada signs in, SP-initiated, with a NameID in another letter case.
	browser, get := newBrowser(t, base)
	res, _ = get("/saml/" + tenant + "/login?return_to=" + url.QueryEscape("/app/home"))
	if res.StatusCode != http.StatusFound {
		t.Fatalf("login: %d", res.StatusCode)
	}
	_, spMetadata := get("/saml/" + tenant + "/metadata")
	idp := samltest.New(t, samltest.Entra, time.Now)
	answer := idp.Login(t, res.Header.Get("Location"), spMetadata, "ada@contoso.EXAMPLE")
	acs, err := browser.Post(answer.ACSURL, "application/x-www-form-urlencoded", strings.NewReader(answer.Form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	acs.Body.Close()
	if acs.StatusCode != http.StatusSeeOther || acs.Header.Get("Location") != "/app/home" {
		t.Fatalf("ACS: %d → %s", acs.StatusCode, acs.Header.Get("Location"))
	}
	res, body := get("/api/v1/me")
	var me map[string]any
	if res.StatusCode != http.StatusOK || json.Unmarshal(body, &me) != nil || me["id"] != ada {
		t.Fatalf("/api/v1/me: %d %s", res.StatusCode, body)
	}

	// Entra disables Ada: her session stops working on the next call.
	if r := company.do("PATCH", "/scim/v2/Users/"+ada, `{"Operations":[{"op":"Replace","path":"active","value":"False"}]}`); r.status != http.StatusNoContent {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	if res, body := get("/api/v1/me"); res.StatusCode == http.StatusOK {
		t.Fatalf("/api/v1/me after deactivation: %d %s", res.StatusCode, body)
	}
}

// createAPIKey creates an API key of the company with the given scopes through the operator
// API and returns its secret.
func createAPIKey(tb testing.TB, base, tenant string, scopes ...string) string {
	tb.Helper()
	body, _ := json.Marshal(map[string]any{"name": "test", "scopes": scopes})
	res := client{tb, base, adminToken}.do("POST", "/admin/v1/tenants/"+tenant+"/api-keys", string(body))
	if res.status != http.StatusCreated {
		tb.Fatalf("create API key: %d %s", res.status, res.body)
	}
	return res.json(tb)["key"].(string)
}

// newBrowser returns a browser-like client of the server at base (a cookie jar, redirects not
// followed) and a GET helper that reads the whole answer.
func newBrowser(tb testing.TB, base string) (*http.Client, func(path string) (*http.Response, []byte)) {
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return browser, func(path string) (*http.Response, []byte) {
		tb.Helper()
		res, err := browser.Get(base + path)
		if err != nil {
			tb.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}
}
