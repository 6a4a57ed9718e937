package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/httpapi"
	"github.com/idledger/idledger/saml/samltest"
)

// newConsoleEnv is an SSO env (which wires the console's session store) with the console
// probe standing in for the console's pages (console_export_test.go).
func newConsoleEnv(t *testing.T, more func(cfg *httpapi.Config, e *testEnv)) *ssoEnv {
	t.Helper()
	e := buildSSOEnv(t, "", more)
	e.Server.RegisterConsoleProbe()
	return e
}

// setupLink creates a setup link of tenant through the operator API (body "" = the default
// lifetime) and returns its id and URL.
func (e *ssoEnv) setupLink(tb testing.TB, tenant, body string) (string, string) {
	tb.Helper()
	res := e.do(tb, testAdminToken, "POST", "/admin/v1/tenants/"+tenant+"/setup-links", body)
	if res.Status != http.StatusCreated {
		tb.Fatalf("create setup link: %d %s", res.Status, res.Body)
	}
	m := res.JSON(tb)
	return m["id"].(string), m["url"].(string)
}

// openLink GETs a setup link's URL in the browser (redirects not followed).
func (b *browser) openLink(tb testing.TB, link string) response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, link, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return send(tb, b.client, req)
}

// consoleCookieOf returns the console cookie a response sets, or nil.
func consoleCookieOf(res response) *http.Cookie {
	for _, c := range (&http.Response{Header: res.Header}).Cookies() {
		if c.Name == "idl_console" || c.Name == "__Host-idl_console" {
			return c
		}
	}
	return nil
}

// consoleProbe is what the probe answers: the admitted session and the request's context.
type consoleProbe struct {
	Tenant, Actor, CSRF         string
	RequestActor, RequestTenant string
	Version                     uint64
}

// probe GETs the console probe of tenant and decodes its answer (zero with another status).
func (b *browser) probe(tb testing.TB, tenant string) (int, consoleProbe) {
	tb.Helper()
	res := b.get(tb, "/console/"+tenant)
	var p consoleProbe
	if res.Status == http.StatusOK {
		if err := json.Unmarshal(res.Body, &p); err != nil {
			tb.Fatalf("probe: %v: %s", err, res.Body)
		}
	}
	return res.Status, p
}

// consolePost POSTs a form to path with the given headers.
func (b *browser) consolePost(tb testing.TB, path string, form url.Values, header map[string]string) response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, b.env.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return send(tb, b.client, req)
}

// signInByLink opens a fresh setup link of tenant in b and returns the session's CSRF token.
func (b *browser) signInByLink(tb testing.TB, tenant string) string {
	tb.Helper()
	_, link := b.env.setupLink(tb, tenant, "")
	if res := b.openLink(tb, link); res.Status != http.StatusSeeOther {
		tb.Fatalf("setup link: %d %s", res.Status, res.Body)
	}
	status, p := b.probe(tb, tenant)
	if status != http.StatusOK {
		tb.Fatalf("console after the setup link: %d", status)
	}
	return p.CSRF
}

// checkConsoleHeaders checks the security headers of a console answer.
func checkConsoleHeaders(tb testing.TB, what string, res response) {
	tb.Helper()
	for k, v := range map[string]string{
		"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "same-origin",
		"Cache-Control":           "no-store",
	} {
		if got := res.Header.Get(k); got != v {
			tb.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
}

// TestSetupLink_FirstUseOnly: a setup link's first use opens a console session of its company
// (303 to the console with the cookie) and burns it; a second use, in any browser, answers
// 410 with a page saying so and no session. The log holds the link's hash and its use,
// attributed to the link, never the secret.
func TestSetupLink_FirstUseOnly(t *testing.T) {
	e := newConsoleEnv(t, nil)
	tenant, _ := e.tenant(t, "Acme")

	res := e.do(t, testAdminToken, "POST", "/admin/v1/tenants/"+tenant+"/setup-links", "")
	if res.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.Status, res.Body)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	m := res.JSON(t)
	id, link := m["id"].(string), m["url"].(string)
	secret, ok := strings.CutPrefix(link, e.URL+"/console/setup/")
	if !ok || !strings.HasPrefix(secret, domain.SetupLinkPrefix) {
		t.Fatalf("url = %q", link)
	}
	if exp, err := time.Parse(time.RFC3339, m["expiresAt"].(string)); err != nil || !exp.Equal(e.Clock.Now().Add(24*time.Hour)) {
		t.Errorf("expiresAt = %v (%v), want 24 h from now", m["expiresAt"], err)
	}

	b := e.browser(t)
	res = b.openLink(t, link)
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/console/"+tenant {
		t.Fatalf("first use: %d Location %q %s", res.Status, res.Header.Get("Location"), res.Body)
	}
	ck := consoleCookieOf(res)
	if ck == nil || ck.Name != "idl_console" || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" || ck.MaxAge != 12*3600 {
		t.Errorf("cookie = %+v, want idl_console HttpOnly SameSite=Lax Path=/ for 12 h", ck)
	}
	status, p := b.probe(t, tenant)
	if status != http.StatusOK || p.Tenant != tenant || p.Actor != domain.ActorConsoleLinkPrefix+id ||
		p.RequestActor != p.Actor || p.RequestTenant != tenant || p.CSRF == "" {
		t.Errorf("console: %d %+v", status, p)
	}

	for name, other := range map[string]*browser{"same browser": b, "another browser": e.browser(t)} {
		res := other.openLink(t, link)
		if res.Status != http.StatusGone || consoleCookieOf(res) != nil || !strings.Contains(string(res.Body), "already used") ||
			!strings.Contains(string(res.Body), "new one") {
			t.Errorf("%s, second use: %d %v %s", name, res.Status, consoleCookieOf(res), res.Body)
		}
		checkConsoleHeaders(t, "second use", res)
	}
	if status, _ := e.browser(t).probe(t, tenant); status != http.StatusUnauthorized {
		t.Errorf("a browser without the cookie: %d, want 401", status)
	}

	events, _, err := e.Store.Load(context.Background(), domain.TenantID(tenant), domain.KindTenant, tenant)
	if err != nil {
		t.Fatal(err)
	}
	var used int
	for _, ev := range events {
		raw, _ := domain.EncodeData(ev.Data)
		if strings.Contains(string(raw), secret) || strings.Contains(ev.Actor, secret) {
			t.Errorf("event %s holds the secret: %s", ev.Type, raw)
		}
		if ev.Type == domain.EventTenantSetupLinkUsed {
			used++
			if ev.Actor != domain.ActorConsoleLinkPrefix+id || ev.UserAgent != "" || ev.Source != "" {
				t.Errorf("use event: actor %q, user agent %q, source %q; want the link, no browser data", ev.Actor, ev.UserAgent, ev.Source)
			}
		}
	}
	if used != 1 {
		t.Errorf("%d use events, want 1", used)
	}
	if strings.Contains(e.log.String(), secret) {
		t.Errorf("the log holds the secret")
	}
}

// TestSetupLink_ExpiryRevocationAndLimits: an expired link answers 410 and a revoked or unknown
// one 404, with no session; the operator's lifetime is checked.
func TestSetupLink_ExpiryRevocationAndLimits(t *testing.T) {
	e := newConsoleEnv(t, nil)
	tenant, _ := e.tenant(t, "Acme")

	for _, body := range []string{`{"expiresIn":"0s"}`, `{"expiresIn":"-1h"}`, `{"expiresIn":"168h1s"}`, `{"expiresIn":"soon"}`,
		`{"expiresIn":24}`, `[]`, `{"expiresIn":`} {
		res := e.do(t, testAdminToken, "POST", "/admin/v1/tenants/"+tenant+"/setup-links", body)
		if res.Status != http.StatusBadRequest {
			t.Errorf("expiresIn %s: %d %s, want 400", body, res.Status, res.Body)
		}
	}
	if res := e.do(t, testAdminToken, "POST", "/admin/v1/tenants/01999999-0000-7000-8000-000000000000/setup-links", ""); res.Status != http.StatusNotFound {
		t.Errorf("unknown company: %d, want 404", res.Status)
	}

	_, week := e.setupLink(t, tenant, `{"expiresIn":"168h"}`)
	_, hour := e.setupLink(t, tenant, `{"expiresIn":"1h"}`)
	e.Clock.Advance(time.Hour)
	b := e.browser(t)
	res := b.openLink(t, hour)
	if res.Status != http.StatusGone || consoleCookieOf(res) != nil || !strings.Contains(string(res.Body), "expired") {
		t.Errorf("expired link: %d %s", res.Status, res.Body)
	}
	if status, _ := b.probe(t, tenant); status != http.StatusUnauthorized {
		t.Errorf("console after an expired link: %d, want 401", status)
	}

	revokedID, revoked := e.setupLink(t, tenant, "")
	if res := e.do(t, testAdminToken, "DELETE", "/admin/v1/tenants/"+tenant+"/setup-links/"+revokedID, ""); res.Status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", res.Status, res.Body)
	}
	if res := e.do(t, testAdminToken, "DELETE", "/admin/v1/tenants/"+tenant+"/setup-links/"+revokedID, ""); res.Status != http.StatusNotFound {
		t.Errorf("second revocation: %d, want 404", res.Status)
	}
	for name, link := range map[string]string{
		"revoked": revoked, "unknown": e.URL + "/console/setup/" + domain.SetupLinkPrefix + "AAAA",
		"no prefix": e.URL + "/console/setup/whatever",
	} {
		res := b.openLink(t, link)
		if res.Status != http.StatusNotFound || consoleCookieOf(res) != nil || !strings.Contains(string(res.Body), "new one") {
			t.Errorf("%s link: %d %s", name, res.Status, res.Body)
		}
		checkConsoleHeaders(t, name+" link", res)
	}
	if status, _ := b.probe(t, tenant); status != http.StatusUnauthorized {
		t.Errorf("console after refused links: %d, want 401", status)
	}
	// A company's other secrets are no setup links.
	scimTenant, scim := e.tenant(t, "Globex")
	if res := b.openLink(t, e.URL+"/console/setup/"+scim); res.Status != http.StatusNotFound {
		t.Errorf("SCIM token as a setup link: %d, want 404", res.Status)
	}
	if res := b.openLink(t, e.URL+"/console/setup/"+domain.SetupLinkPrefix+strings.TrimPrefix(e.apiKey(t, scimTenant), domain.APIKeyPrefix)); res.Status != http.StatusNotFound {
		t.Errorf("API key as a setup link: %d, want 404", res.Status)
	}

	// The week-long link still works after the others' refusals.
	if res := b.openLink(t, week); res.Status != http.StatusSeeOther {
		t.Errorf("week-long link after an hour: %d %s", res.Status, res.Body)
	}
}

// TestSetupLink_ConcurrentUsesOneWins: many browsers open one link at once on two servers that
// share the log: exactly one gets a session.
func TestSetupLink_ConcurrentUsesOneWins(t *testing.T) {
	// Every browser here is one source: the refused uses must not lock it out.
	lenient := httpapi.LockoutConfig{Failures: 1000}
	e := newConsoleEnv(t, func(cfg *httpapi.Config, _ *testEnv) { cfg.Lockout = lenient })
	sessions, err := e.Store.OpenRecords(context.Background(), eventstore.BucketSessions, "sessions", 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := e.serve(t, httpapi.Config{ConsoleSessions: sessions, Now: e.Clock.Now, Lockout: lenient})
	tenant, _ := e.tenant(t, "Acme")
	for range 5 {
		_, link := e.setupLink(t, tenant, "")
		secret := link[strings.LastIndex(link, "/")+1:]
		var wg sync.WaitGroup
		statuses := make([]int, 8)
		for i := range statuses {
			base := e.URL
			if i%2 == 1 {
				base = other.URL
			}
			b := e.browser(t)
			wg.Go(func() {
				req, err := http.NewRequest(http.MethodGet, base+"/console/setup/"+secret, nil)
				if err != nil {
					t.Error(err)
					return
				}
				res, err := b.client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				statuses[i] = res.StatusCode
			})
		}
		wg.Wait()
		wins := 0
		for _, s := range statuses {
			switch s {
			case http.StatusSeeOther:
				wins++
			case http.StatusGone:
			default:
				t.Errorf("status %d, want 303 or 410", s)
			}
		}
		if wins != 1 {
			t.Fatalf("%d browsers got a session (%v), want 1", wins, statuses)
		}
	}
}

// TestConsoleSession_CSRFAndOrigin: a console session reads its company's console; every
// state-changing request needs its CSRF token and this site's origin; another company's
// console is refused; the change is attributed to the session.
func TestConsoleSession_CSRFAndOrigin(t *testing.T) {
	e := newConsoleEnv(t, nil)
	tenant, _ := e.tenant(t, "Acme")
	globex, _ := e.tenant(t, "Globex")
	b := e.browser(t)
	csrf := b.signInByLink(t, tenant)
	path := "/console/" + tenant
	groupsOff := url.Values{"groups": {"false"}}
	withToken := url.Values{"groups": {"false"}, "csrf": {csrf}}
	before := streamCount(t, e.testEnv)
	for name, r := range map[string]struct {
		form   url.Values
		header map[string]string
	}{
		"no CSRF token":        {groupsOff, map[string]string{"Origin": e.URL}},
		"wrong CSRF token":     {url.Values{"groups": {"false"}, "csrf": {csrf + "x"}}, map[string]string{"Origin": e.URL}},
		"wrong header token":   {withToken, map[string]string{"Origin": e.URL, "X-CSRF-Token": "nope"}},
		"another origin":       {withToken, map[string]string{"Origin": "https://evil.example"}},
		"origin null":          {withToken, map[string]string{"Origin": "null"}},
		"no Origin, Referer":   {withToken, map[string]string{"Referer": "https://evil.example/page"}},
		"neither header":       {withToken, nil},
		"cross-site fetch":     {withToken, map[string]string{"Origin": e.URL, "Sec-Fetch-Site": "cross-site"}},
		"origin of other port": {withToken, map[string]string{"Origin": e.URL + "1"}},
	} {
		res := b.consolePost(t, path, r.form, r.header)
		if res.Status != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", name, res.Status, res.Body)
		}
		checkConsoleHeaders(t, name, res)
	}
	if n := streamCount(t, e.testEnv); n != before {
		t.Errorf("refused console requests appended %d messages", n-before)
	}

	for name, r := range map[string]struct {
		form   url.Values
		header map[string]string
	}{
		"form token and Origin":    {withToken, map[string]string{"Origin": e.URL}},
		"header token and Referer": {groupsOff, map[string]string{"Referer": e.URL + "/console/" + tenant, "X-CSRF-Token": csrf}},
		"same-origin fetch":        {withToken, map[string]string{"Origin": e.URL, "Sec-Fetch-Site": "same-origin"}},
	} {
		res := b.consolePost(t, path, r.form, r.header)
		if res.Status != http.StatusOK {
			t.Errorf("%s: %d %s, want 200", name, res.Status, res.Body)
			continue
		}
		var p consoleProbe
		if err := json.Unmarshal(res.Body, &p); err != nil {
			t.Fatal(err)
		}
		if p.Version == 0 {
			continue // the feature was off already: nothing appended
		}
		events, _, err := e.Store.Load(context.Background(), domain.TenantID(tenant), domain.KindTenant, tenant)
		if err != nil {
			t.Fatal(err)
		}
		last := events[len(events)-1]
		if last.Type != domain.EventTenantFeaturesChanged || !strings.HasPrefix(last.Actor, domain.ActorConsoleLinkPrefix) {
			t.Errorf("%s: last event %s by %q, want features changed by the console link", name, last.Type, last.Actor)
		}
	}

	// Another company's console, read or write: 403, nothing of it shown.
	res := b.get(t, "/console/"+globex)
	if res.Status != http.StatusForbidden || strings.Contains(string(res.Body), "Globex") {
		t.Errorf("another company's console: %d %s", res.Status, res.Body)
	}
	if res := b.consolePost(t, "/console/"+globex, withToken, map[string]string{"Origin": e.URL}); res.Status != http.StatusForbidden {
		t.Errorf("another company's console, POST: %d", res.Status)
	}

	// No session: a page that says how to get in.
	res = e.browser(t).get(t, path)
	if res.Status != http.StatusUnauthorized || !strings.Contains(string(res.Body), "setup link") {
		t.Errorf("no session: %d %s", res.Status, res.Body)
	}
	checkConsoleHeaders(t, "no session", res)
}

// TestConsoleSession_Timeouts: a session ends after an hour without use and twelve hours
// after sign-in however busy; each use slides the idle timeout.
func TestConsoleSession_Timeouts(t *testing.T) {
	e := newConsoleEnv(t, nil)
	tenant, _ := e.tenant(t, "Acme")
	idle := e.browser(t)
	idle.signInByLink(t, tenant)
	busy := e.browser(t)
	busy.signInByLink(t, tenant)

	e.Clock.Advance(59 * time.Minute)
	if status, _ := busy.probe(t, tenant); status != http.StatusOK {
		t.Fatalf("after 59 min: %d", status)
	}
	e.Clock.Advance(time.Minute)
	if status, _ := idle.probe(t, tenant); status != http.StatusUnauthorized {
		t.Errorf("idle for an hour: %d, want 401", status)
	}
	for elapsed := time.Hour; elapsed < 12*time.Hour-50*time.Minute; elapsed += 50 * time.Minute {
		e.Clock.Advance(50 * time.Minute)
		if status, _ := busy.probe(t, tenant); status != http.StatusOK {
			t.Fatalf("used every 50 min, %s after sign-in: %d", elapsed+50*time.Minute, status)
		}
	}
	e.Clock.Advance(50 * time.Minute) // past twelve hours
	if status, _ := busy.probe(t, tenant); status != http.StatusUnauthorized {
		t.Errorf("twelve hours after sign-in: %d, want 401", status)
	}
	if status, _ := idle.probe(t, tenant); status != http.StatusUnauthorized {
		t.Errorf("the idle session came back: %d", status)
	}
}

// TestConsoleSession_Logout: sign-out needs the CSRF token and this site's origin, ends the
// session in the store (on every instance) and clears the cookie.
func TestConsoleSession_Logout(t *testing.T) {
	e := newConsoleEnv(t, nil)
	tenant, _ := e.tenant(t, "Acme")
	b := e.browser(t)
	csrf := b.signInByLink(t, tenant)
	stolen := b.client.Jar.Cookies(mustURL(t, e.URL))

	for name, r := range map[string]struct {
		form   url.Values
		header map[string]string
	}{
		"no token":       {nil, map[string]string{"Origin": e.URL}},
		"another origin": {url.Values{"csrf": {csrf}}, map[string]string{"Origin": "https://evil.example"}},
	} {
		if res := b.consolePost(t, "/console/logout", r.form, r.header); res.Status != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, res.Status)
		}
	}
	if status, _ := b.probe(t, tenant); status != http.StatusOK {
		t.Fatalf("refused sign-outs ended the session: %d", status)
	}
	res := b.consolePost(t, "/console/logout", url.Values{"csrf": {csrf}}, map[string]string{"Origin": e.URL})
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("sign-out: %d %q %s", res.Status, res.Header.Get("Location"), res.Body)
	}
	if ck := consoleCookieOf(res); ck == nil || ck.MaxAge >= 0 {
		t.Errorf("sign-out cookie = %+v, want it cleared", ck)
	}
	if status, _ := b.probe(t, tenant); status != http.StatusUnauthorized {
		t.Errorf("after sign-out: %d, want 401", status)
	}
	// The old cookie, replayed, opens nothing: the session is gone from the store.
	replay := e.browser(t)
	replay.client.Jar.SetCookies(mustURL(t, e.URL), stolen)
	if status, _ := replay.probe(t, tenant); status != http.StatusUnauthorized {
		t.Errorf("replayed cookie after sign-out: %d, want 401", status)
	}
	// Without a session, sign-out only clears the cookie (from this site).
	if res := e.browser(t).consolePost(t, "/console/logout", nil, map[string]string{"Origin": e.URL}); res.Status != http.StatusSeeOther {
		t.Errorf("sign-out without a session: %d", res.Status)
	}
}

// TestConsoleSession_SharedAndHTTPS: a session opened on one server works on another that
// shares the store (as after a restart, or on a second instance); with an https base URL the
// cookie is Secure with the __Host- prefix.
func TestConsoleSession_SharedAndHTTPS(t *testing.T) {
	e := newConsoleEnv(t, nil)
	tenant, _ := e.tenant(t, "Acme")
	b := e.browser(t)
	b.signInByLink(t, tenant)
	sessions, err := e.Store.OpenRecords(context.Background(), eventstore.BucketSessions, "sessions", 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := e.serve(t, httpapi.Config{ConsoleSessions: sessions, Now: e.Clock.Now})
	other.Server.RegisterConsoleProbe()
	moved := e.browser(t)
	moved.env = &ssoEnv{testEnv: other, log: e.log, idps: e.idps}
	moved.client.Jar.SetCookies(mustURL(t, other.URL), b.client.Jar.Cookies(mustURL(t, e.URL)))
	if status, p := moved.probe(t, tenant); status != http.StatusOK || p.Tenant != tenant {
		t.Errorf("the session on another server: %d %+v", status, p)
	}

	secure := buildSSOEnv(t, "https://idledger.example", nil)
	stenant, _ := secure.tenant(t, "Acme")
	_, link := secure.setupLink(t, stenant, "")
	res := secure.browser(t).openLink(t, strings.Replace(link, "https://idledger.example", secure.URL, 1))
	ck := consoleCookieOf(res)
	if res.Status != http.StatusSeeOther || ck == nil || ck.Name != "__Host-idl_console" || !ck.Secure || ck.Path != "/" || ck.Domain != "" || !ck.HttpOnly {
		t.Errorf("https: %d cookie %+v, want __Host-idl_console Secure HttpOnly Path=/ without Domain", res.Status, ck)
	}
}

// TestSetupLink_Lockout: a source that presents too many bad setup links is locked out with
// 429 and Retry-After, even for a good link, until its window ends; the failures are counted
// in the metrics without the secrets; other sources are not affected.
func TestSetupLink_Lockout(t *testing.T) {
	e := newConsoleEnv(t, func(cfg *httpapi.Config, _ *testEnv) {
		cfg.Lockout = httpapi.LockoutConfig{Failures: 3, Window: 10 * time.Minute}
	})
	tenant, _ := e.tenant(t, "Acme")
	b := e.browser(t)
	var bad []string
	for i := range 3 {
		bad = append(bad, fmt.Sprintf("%sguess%d", domain.SetupLinkPrefix, i))
		if res := b.openLink(t, e.URL+"/console/setup/"+bad[i]); res.Status != http.StatusNotFound {
			t.Fatalf("bad link %d: %d", i, res.Status)
		}
	}
	_, good := e.setupLink(t, tenant, "")
	res := b.openLink(t, good)
	if res.Status != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "600" || consoleCookieOf(res) != nil {
		t.Errorf("locked out: %d Retry-After %q", res.Status, res.Header.Get("Retry-After"))
	}
	checkConsoleHeaders(t, "lock-out", res)
	metrics := string(e.do(t, "", "GET", "/metrics", "").Body)
	for _, want := range []string{
		`idledger_auth_failures_total{kind="setup_link",reason="invalid"} 3`,
		`idledger_auth_failures_total{kind="setup_link",reason="locked_out"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, s := range bad {
		if strings.Contains(metrics, s) || strings.Contains(e.log.String(), s) {
			t.Errorf("a presented secret is in the metrics or the log")
		}
	}
	// Console cookies are counted apart: the session kind is not locked.
	if status, _ := b.probe(t, tenant); status != http.StatusUnauthorized {
		t.Errorf("console without a session while setup links are locked: %d, want 401", status)
	}
	e.Clock.Advance(10 * time.Minute)
	if res := b.openLink(t, good); res.Status != http.StatusSeeOther {
		t.Errorf("after the window: %d %s", res.Status, res.Body)
	}

	// Cookies naming no session lock the source out of the console, but never a live session.
	guesser := e.browser(t)
	for i := range 3 {
		guesser.client.Jar.SetCookies(mustURL(t, e.URL), []*http.Cookie{{Name: "idl_console", Value: strings.Repeat(string(rune('A'+i)), 43), Path: "/"}})
		if status, _ := guesser.probe(t, tenant); status != http.StatusUnauthorized {
			t.Fatalf("guessed cookie %d: %d, want 401", i, status)
		}
		if len(guesser.client.Jar.Cookies(mustURL(t, e.URL))) != 0 {
			t.Errorf("the refused cookie was not cleared")
		}
	}
	if status, _ := guesser.probe(t, tenant); status != http.StatusTooManyRequests {
		t.Errorf("after 3 guessed cookies: %d, want 429", status)
	}
	if status, _ := b.probe(t, tenant); status != http.StatusOK {
		t.Errorf("a live session from the locked-out source: %d, want 200", status)
	}
	if !strings.Contains(string(e.do(t, "", "GET", "/metrics", "").Body), `idledger_auth_failures_total{kind="console_session",reason="invalid"} 3`) {
		t.Errorf("metrics lack the 3 refused cookies")
	}
}

func mustURL(tb testing.TB, raw string) *url.URL {
	tb.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// provisionAdmin creates an active user through SCIM with the company admin role (as Entra
// sends an app role) and returns its id.
func (e *ssoEnv) provisionAdmin(tb testing.TB, token, userName string) string {
	tb.Helper()
	res := e.do(tb, token, "POST", "/scim/v2/Users", fmt.Sprintf(`{
		"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"active":true,
		"emails":[{"primary":true,"type":"work","value":%q}],"roles":[{"value":"Admin","primary":false}]}`, userName, userName))
	if res.Status != http.StatusCreated {
		tb.Fatalf("provision admin %s: %d %s", userName, res.Status, res.Body)
	}
	return res.JSON(tb)["id"].(string)
}

// consoleSignIn runs the console's SAML sign-in of nameID in b and returns the ACS's answer.
func (b *browser) consoleSignIn(tb testing.TB, tenant, idp, nameID string) response {
	tb.Helper()
	res := b.get(tb, "/console/"+tenant+"/signin")
	if res.Status != http.StatusFound {
		tb.Fatalf("console sign-in: %d %s", res.Status, res.Body)
	}
	return b.post(tb, b.env.idps[idp].Login(tb, res.Header.Get("Location"), b.env.spMetadata(tb, tenant), nameID))
}

// TestConsoleSignIn_SAML: an admin of the company signs in to its console with SAML and acts
// as "console:user:<id>"; a user who is not an admin gets a 403 page and no session; an admin
// who loses the role or is deactivated loses the console at the next request; a company
// without SSO offers no SAML sign-in; an ordinary sign-in opens no console.
func TestConsoleSignIn_SAML(t *testing.T) {
	e := newConsoleEnv(t, nil)
	tenant, token := e.company(t, "Acme", samltest.Entra)
	admin := e.provisionAdmin(t, token, "root@acme.example")
	e.provision(t, token, "ada@acme.example")

	b := e.browser(t)
	res := b.consoleSignIn(t, tenant, samltest.Entra, "root@acme.example")
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/console/"+tenant || consoleCookieOf(res) == nil {
		t.Fatalf("admin's console sign-in: %d %q %s\n%s", res.Status, res.Header.Get("Location"), res.Body, e.log)
	}
	if sessionCookieOf(res) != nil {
		t.Errorf("a console sign-in also opened an application session")
	}
	status, p := b.probe(t, tenant)
	if status != http.StatusOK || p.Actor != domain.ActorConsoleUserPrefix+admin || p.RequestActor != p.Actor {
		t.Errorf("console after the admin's sign-in: %d %+v", status, p)
	}
	res = b.consolePost(t, "/console/"+tenant, url.Values{"groups": {"false"}, "csrf": {p.CSRF}}, map[string]string{"Origin": e.URL})
	if res.Status != http.StatusOK {
		t.Fatalf("console change: %d %s", res.Status, res.Body)
	}
	events, _, err := e.Store.Load(context.Background(), domain.TenantID(tenant), domain.KindTenant, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if last := events[len(events)-1]; last.Type != domain.EventTenantFeaturesChanged || last.Actor != domain.ActorConsoleUserPrefix+admin {
		t.Errorf("last event %s by %q, want features changed by the admin's console session", last.Type, last.Actor)
	}

	other := e.browser(t)
	res = other.consoleSignIn(t, tenant, samltest.Entra, "ada@acme.example")
	if res.Status != http.StatusForbidden || consoleCookieOf(res) != nil || !strings.Contains(string(res.Body), "not an administrator") {
		t.Errorf("non-admin's console sign-in: %d %v %s", res.Status, consoleCookieOf(res), res.Body)
	}
	checkConsoleHeaders(t, "non-admin", res)
	if status, _ := other.probe(t, tenant); status != http.StatusUnauthorized {
		t.Errorf("console after a non-admin's sign-in: %d, want 401", status)
	}

	// An ordinary sign-in of the admin opens the application, not the console.
	app := e.browser(t)
	app.login(t, tenant, samltest.Entra, "root@acme.example")
	if status, _ := app.probe(t, tenant); status != http.StatusUnauthorized {
		t.Errorf("console after an application sign-in: %d, want 401", status)
	}

	// Provisioning takes the role away: the console closes at the next request.
	res = e.do(t, token, "PATCH", "/scim/v2/Users/"+admin, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"remove","path":"roles"}]}`)
	if res.Status != http.StatusOK && res.Status != http.StatusNoContent {
		t.Fatalf("remove the role: %d %s", res.Status, res.Body)
	}
	if status, _ := b.probe(t, tenant); status != http.StatusUnauthorized {
		t.Errorf("console after the admin role was removed: %d, want 401", status)
	}

	// No SSO, no SAML sign-in: the 401 page offers none either.
	plain, _ := e.tenant(t, "Globex")
	res = e.browser(t).get(t, "/console/"+plain+"/signin")
	if res.Status != http.StatusNotFound || !strings.Contains(string(res.Body), "setup link") {
		t.Errorf("sign-in without SSO: %d %s", res.Status, res.Body)
	}
	if res := e.browser(t).get(t, "/console/"+plain); strings.Contains(string(res.Body), "/signin") {
		t.Errorf("the 401 page of a company without SSO offers a SAML sign-in: %s", res.Body)
	}
	if res := e.browser(t).get(t, "/console/"+tenant); res.Status != http.StatusUnauthorized ||
		!strings.Contains(string(res.Body), `href="/console/`+tenant+`/signin"`) {
		t.Errorf("the 401 page of a company with SSO: %d %s", res.Status, res.Body)
	}
}

// TestConsoleSession_NewIDAtEverySignIn: each sign-in gives the browser a new session id and
// ends the one it held, so an id planted or seen before the sign-in is worth nothing after it.
func TestConsoleSession_NewIDAtEverySignIn(t *testing.T) {
	e := newConsoleEnv(t, nil)
	tenant, _ := e.tenant(t, "Acme")
	b := e.browser(t)
	b.signInByLink(t, tenant)
	first := b.client.Jar.Cookies(mustURL(t, e.URL))
	b.signInByLink(t, tenant)
	second := b.client.Jar.Cookies(mustURL(t, e.URL))
	if len(first) != 1 || len(second) != 1 || first[0].Value == second[0].Value {
		t.Fatalf("cookies %v then %v, want one each, different", first, second)
	}
	old := e.browser(t)
	old.client.Jar.SetCookies(mustURL(t, e.URL), first)
	if status, _ := old.probe(t, tenant); status != http.StatusUnauthorized {
		t.Errorf("the session held before the second sign-in: %d, want 401", status)
	}
	if status, _ := b.probe(t, tenant); status != http.StatusOK {
		t.Errorf("the new session: %d, want 200", status)
	}
}
