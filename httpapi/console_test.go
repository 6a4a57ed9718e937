package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
	"github.com/idledger/idledger/httpapi"
	"github.com/idledger/idledger/saml/samltest"
)

// consoleAgent is a browser-like HTTP client signed in to a company's console.
type consoleAgent struct {
	env    *testEnv
	tenant string
	client *http.Client
	csrf   string
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// get fetches a console path (relative to the server), without following redirects.
func (a *consoleAgent) get(t *testing.T, path string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.env.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	return a.send(t, req)
}

// post submits a form as the browser would: with the page's CSRF token unless csrf is false.
func (a *consoleAgent) post(t *testing.T, path string, form url.Values, csrf bool) response {
	t.Helper()
	if csrf {
		form.Set("csrf", a.csrf)
	}
	req, err := http.NewRequest(http.MethodPost, a.env.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", a.env.URL)
	return a.send(t, req)
}

func (a *consoleAgent) send(t *testing.T, req *http.Request) response {
	t.Helper()
	res, err := a.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// page fetches a console page and checks that it is a complete HTML answer under the
// console's headers, loading nothing from another origin.
func (a *consoleAgent) page(t *testing.T, path string) string {
	t.Helper()
	res := a.get(t, path)
	if res.Status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, res.Status, res.Body)
	}
	checkConsoleHTML(t, path, res)
	if m := csrfField.FindSubmatch(res.Body); m != nil {
		a.csrf = string(m[1])
	}
	return string(res.Body)
}

var externalLoad = regexp.MustCompile(`(?i)(src|href)="(https?:)?//[^"]*"`)

func checkConsoleHTML(t *testing.T, path string, res response) {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
	}
	body := string(res.Body)
	for _, m := range externalLoad.FindAllString(body, -1) {
		// Links the admin follows by hand (the Entra admin center) load nothing.
		if !strings.HasPrefix(strings.ToLower(m), "href=\"https://entra.microsoft.com/") {
			t.Errorf("GET %s: refers to another origin: %s", path, m)
		}
	}
	for _, inline := range []string{"<script>", "style=\"", "onclick="} {
		if strings.Contains(body, inline) {
			t.Errorf("GET %s: inline %s breaks the CSP", path, inline)
		}
	}
}

// newConsolePagesEnv is a server with audit history and a company, and a console agent of it.
func newConsolePagesEnv(t *testing.T) (*ssoEnv, *consoleAgent, string) {
	t.Helper()
	env := buildSSOEnv(t, "", func(cfg *httpapi.Config, e *testEnv) {
		cfg.Audit = &audit.Service{Log: e.Store, History: e.Store, Requests: e.Store, Now: e.Clock.Now, NewID: e.Service.NewID}
	})
	tenant, token := env.tenant(t, "Fabrikam")
	return env, signInConsole(t, env, tenant), token
}

// signInConsole opens a setup link of tenant in a new agent, as the company admin would.
func signInConsole(t *testing.T, env *ssoEnv, tenant string) *consoleAgent {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &consoleAgent{env: env.testEnv, tenant: tenant, client: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	_, link := env.setupLink(t, tenant, "")
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	if res := a.get(t, u.Path); res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/console/"+tenant {
		t.Fatalf("setup link: %d %s", res.Status, res.Header.Get("Location"))
	}
	a.page(t, "/console/"+tenant)
	return a
}

func TestRootPage(t *testing.T) {
	e := newTestEnv(t)
	res := e.doWith(t, "", "GET", "/", "", map[string]string{"Accept": "text/html"})
	if res.Status != http.StatusOK {
		t.Fatalf("GET /: %d %s", res.Status, res.Body)
	}
	checkConsoleHTML(t, "/", res)
	for _, want := range []string{"idledger", "setup link", "single sign-on"} {
		if !strings.Contains(string(res.Body), want) {
			t.Errorf("GET / does not say %q:\n%s", want, res.Body)
		}
	}
	css := e.do(t, "", "GET", "/console/static/console.css", "")
	if css.Status != http.StatusOK || !strings.HasPrefix(css.Header.Get("Content-Type"), "text/css") {
		t.Errorf("console.css: %d %s", css.Status, css.Header.Get("Content-Type"))
	}
}

func TestNotFoundForBrowsers(t *testing.T) {
	e := newTestEnv(t)
	for _, tt := range []struct {
		path, accept string
		html         bool
	}{
		{"/nothing/here", "text/html,application/xhtml+xml,*/*;q=0.8", true},
		{"/nothing/here", "application/json", false},
		{"/nothing/here", "", false},
		{"/api/v1/nothing", "text/html", false},
		{"/saml/acme/nothing", "text/html", false},
	} {
		res := e.doWith(t, "", "GET", tt.path, "", map[string]string{"Accept": tt.accept})
		if res.Status != http.StatusNotFound {
			t.Errorf("GET %s (Accept %q): %d", tt.path, tt.accept, res.Status)
		}
		isHTML := strings.HasPrefix(res.Header.Get("Content-Type"), "text/html")
		if isHTML != tt.html {
			t.Errorf("GET %s (Accept %q): Content-Type %q, want HTML %v", tt.path, tt.accept, res.Header.Get("Content-Type"), tt.html)
		}
	}
}

func TestConsolePages_PagedLists(t *testing.T) {
	env, a, token := newConsolePagesEnv(t)
	c := newECClient(env.testEnv, token)
	var ids []string
	for i := range 120 {
		u := &ecUser{userName: fmt.Sprintf("user%03d@fabrikam.example", i), externalID: fmt.Sprint(i), displayName: fmt.Sprint("User ", i),
			givenName: "U", familyName: fmt.Sprint(i), email: fmt.Sprintf("user%03d@fabrikam.example", i), active: true}
		if err := c.createUser(u); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.id)
	}
	members := make([]any, 0, len(ids))
	for _, id := range ids {
		members = append(members, map[string]any{"value": id})
	}
	g, err := c.expect("POST", "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": "Everyone", "members": members}, 201)
	if err != nil {
		t.Fatal(err)
	}
	base := "/console/" + a.tenant

	rows := regexp.MustCompile(`href="` + regexp.QuoteMeta(base) + `/users/[^"]+">([^<]+)</a>`)
	next := regexp.MustCompile(`href="([^"]+)">Next page</a>`)
	seen := map[string]bool{}
	path := base + "/users"
	for pages := 0; path != ""; pages++ {
		if pages > 3 {
			t.Fatal("more pages than 120 users need")
		}
		body := a.page(t, path)
		if !strings.Contains(body, "Users and groups are managed in Microsoft Entra ID") {
			t.Errorf("%s: no managed banner", path)
		}
		for _, m := range rows.FindAllStringSubmatch(body, -1) {
			if seen[m[1]] {
				t.Errorf("%s repeats %s", path, m[1])
			}
			seen[m[1]] = true
		}
		path = ""
		if m := next.FindStringSubmatch(body); m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if len(seen) != 120 {
		t.Errorf("the pages listed %d users, want 120", len(seen))
	}

	body := a.page(t, base+"/users?q=USER11")
	if n := len(rows.FindAllString(body, -1)); n != 10 {
		t.Errorf("search user11: %d rows, want 10 (user110..user119)", n)
	}

	gid, _ := g["id"].(string)
	memberRows := regexp.MustCompile(`<tr><td><a href="` + regexp.QuoteMeta(base) + `/users/`)
	body = a.page(t, base+"/groups/"+gid)
	if n := len(memberRows.FindAllString(body, -1)); n != 50 {
		t.Errorf("group page 1: %d members, want 50", n)
	}
	m := next.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("group page 1 has no next page")
	}
	a.page(t, m[1])

	for _, p := range []string{base, base + "/groups", base + "/provisioning", base + "/settings", base + "/users/" + ids[0],
		base + "/users/" + ids[0] + "?asOf=2026-11-20"} {
		a.page(t, p)
	}
}

func TestConsoleActions(t *testing.T) {
	env, a, token := newConsolePagesEnv(t)
	base := "/console/" + a.tenant

	// Manual mode: invite works from the page; a form without the CSRF token is refused.
	if res := a.post(t, base+"/users", url.Values{"email": {"zoe@fabrikam.example"}, "name": {"Zoe"}}, false); res.Status != http.StatusForbidden {
		t.Errorf("invite without CSRF token: %d", res.Status)
	}
	res := a.post(t, base+"/users", url.Values{"email": {"zoe@fabrikam.example"}, "name": {"Zoe"}, "admin": {"on"}}, true)
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != base+"/users?done=invited" {
		t.Fatalf("invite: %d %s %s", res.Status, res.Header.Get("Location"), res.Body)
	}
	if body := a.page(t, base+"/users"); !strings.Contains(body, "zoe@fabrikam.example") || strings.Contains(body, "managed in Microsoft Entra ID") {
		t.Errorf("users page after invite:\n%s", body)
	}

	// The live status: waiting until the SCIM token authenticates a request.
	status := func() map[string]any {
		res := a.get(t, base+"/status")
		if res.Status != http.StatusOK {
			t.Fatalf("status: %d %s", res.Status, res.Body)
		}
		return res.JSON(t)
	}
	if st := status(); st["connectedAt"] != nil || st["adminPresent"] != true {
		t.Errorf("status before Entra: %v", st)
	}
	c := newECClient(env.testEnv, token)
	if _, err := c.expect("GET", ecFilter("Users", `userName eq "x"`), nil, 200); err != nil {
		t.Fatal(err)
	}
	if st := status(); st["connectedAt"] == nil {
		t.Errorf("status after Test Connection: %v", st)
	}

	// A new secret token: shown once, and the old token's use no longer counts.
	if res := a.post(t, base+"/scim-token", url.Values{}, true); res.Status != http.StatusBadRequest {
		t.Errorf("generate without confirmation: %d", res.Status)
	}
	res = a.post(t, base+"/scim-token", url.Values{"confirm": {"yes"}}, true)
	tok := regexp.MustCompile(`id="secret-token" type="text" readonly value="([^"]+)"`).FindSubmatch(res.Body)
	if res.Status != http.StatusOK || tok == nil || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("generate: %d %q %s", res.Status, res.Header.Get("Cache-Control"), res.Body)
	}
	if st := status(); st["connectedAt"] != nil {
		t.Errorf("status with a new token: %v", st)
	}
	if strings.Contains(a.page(t, base), string(tok[1])) {
		t.Error("the token is shown again")
	}

	// Managed: invite is refused with an HTML page saying why.
	c = newECClient(env.testEnv, string(tok[1]))
	if err := c.createUser(&ecUser{userName: "amy@fabrikam.example", externalID: "1", email: "amy@fabrikam.example", active: true}); err != nil {
		t.Fatal(err)
	}
	if body := a.page(t, base+"/provisioning"); !strings.Contains(body, `<span title="user.created">users created</span>: 1`) {
		t.Errorf("the provisioning log does not count Entra's creation in words:\n%s", body)
	}
	res = a.post(t, base+"/users", url.Values{"email": {"bob@fabrikam.example"}}, true)
	if res.Status != http.StatusConflict || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Errorf("invite while managed: %d %s", res.Status, res.Header.Get("Content-Type"))
	}
	if res := a.post(t, base+"/provisioning/stop", url.Values{}, true); res.Status != http.StatusBadRequest {
		t.Errorf("stop without confirmation: %d", res.Status)
	}
	if res := a.post(t, base+"/provisioning/stop", url.Values{"confirm": {"yes"}}, true); res.Status != http.StatusSeeOther {
		t.Errorf("stop: %d %s", res.Status, res.Body)
	}

	// API keys: created with scopes, shown once, revoked.
	res = a.post(t, base+"/settings/api-keys", url.Values{"name": {"HR"}, "scope": {"users:read", "audit:read"}}, true)
	key := regexp.MustCompile(`readonly value="(idl_key_[^"]+)"`).FindSubmatch(res.Body)
	if res.Status != http.StatusOK || key == nil {
		t.Fatalf("create key: %d %s", res.Status, res.Body)
	}
	if got := env.do(t, string(key[1]), "GET", "/api/v1/audit/users?userName=zoe@fabrikam.example", "").Status; got != http.StatusOK {
		t.Errorf("new key on its scope: %d", got)
	}
	keyID := regexp.MustCompile(`action="` + regexp.QuoteMeta(base) + `/settings/api-keys/([^/"]+)/revoke"`).FindSubmatch([]byte(a.page(t, base+"/settings")))
	if keyID == nil {
		t.Fatal("no revoke form")
	}
	if res := a.post(t, base+"/settings/api-keys/"+string(keyID[1])+"/revoke", url.Values{}, true); res.Status != http.StatusSeeOther {
		t.Errorf("revoke: %d", res.Status)
	}
	if got := env.do(t, string(key[1]), "GET", "/api/v1/audit/users?userName=zoe@fabrikam.example", "").Status; got != http.StatusUnauthorized {
		t.Errorf("revoked key: %d", got)
	}

	// Another company's console is not this session's.
	other, _ := env.tenant(t, "Other")
	if res := a.get(t, "/console/"+other); res.Status == http.StatusOK {
		t.Errorf("another company's console: %d", res.Status)
	}
}

// TestConsoleTestSignIn_Refused: a Test sign-in that the ACS refuses shows the refusal's reason
// on the setup page (its live status), not a success.
func TestConsoleTestSignIn_Refused(t *testing.T) {
	env, a, token := newConsolePagesEnv(t)
	base := "/console/" + a.tenant
	idp := env.idps[samltest.Entra]
	if res := env.putRaw(t, env.apiKey(t, a.tenant, domain.ScopeSSOWrite), "/api/v1/sso/idp-metadata", idp.Metadata); res.Status != http.StatusNoContent {
		t.Fatalf("upload metadata: %d %s", res.Status, res.Body)
	}
	c := newECClient(env.testEnv, token)
	if err := c.createUser(&ecUser{userName: "ada@fabrikam.example", externalID: "1", email: "ada@fabrikam.example", active: true}); err != nil {
		t.Fatal(err)
	}

	res := a.get(t, base+"/test-signin")
	if res.Status != http.StatusSeeOther {
		t.Fatalf("test sign-in: %d %s", res.Status, res.Body)
	}
	res = a.get(t, res.Header.Get("Location"))
	if res.Status != http.StatusFound {
		t.Fatalf("login: %d %s", res.Status, res.Body)
	}
	status := func() map[string]any {
		res := a.get(t, base+"/status")
		ts, _ := res.JSON(t)["testSignIn"].(map[string]any)
		return ts
	}
	if ts := status(); ts == nil || ts["done"] != false {
		t.Fatalf("test sign-in under way: %v", ts)
	}
	r := idp.Login(t, res.Header.Get("Location"), env.spMetadata(t, a.tenant), "ada@fabrikam.example",
		samltest.WithAudience("https://elsewhere.example/"))
	req, err := http.NewRequest(http.MethodPost, r.ACSURL, strings.NewReader(r.Form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if res := a.send(t, req); res.Status != http.StatusForbidden {
		t.Fatalf("ACS with a wrong audience: %d", res.Status)
	}
	ts := status()
	if ts["done"] != true || ts["ok"] != false || !strings.Contains(fmt.Sprint(ts["reason"]), "audience") {
		t.Errorf("test sign-in refused: %v", ts)
	}
	if body := a.page(t, base); !strings.Contains(body, "Test sign-in refused: ") {
		t.Error("the setup page does not show the refusal")
	}
}
