package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// openSetupLink asks the operator API at base for a setup link of tenant, opens it (at the
// base URL of the instance, which answers at base) and returns the console session cookie.
func openSetupLink(tb testing.TB, base, tenant string) *http.Cookie {
	tb.Helper()
	res := client{tb, base, adminToken}.do("POST", "/admin/v1/tenants/"+tenant+"/setup-links", `{"expiresIn":"1h"}`)
	if res.status != http.StatusCreated {
		tb.Fatalf("create setup link: %d %s", res.status, res.body)
	}
	link, err := url.Parse(res.json(tb)["url"].(string))
	if err != nil {
		tb.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, base+link.Path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := noFollow.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/console/"+tenant {
		tb.Fatalf("open setup link: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	for _, c := range r.Cookies() {
		if c.Name == "idl_console" {
			return c
		}
	}
	tb.Fatalf("open setup link: no console cookie in %v", r.Header["Set-Cookie"])
	return nil
}

// consoleSessionLive reports whether the instance at base holds the console session of the
// cookie. The console's pages are not part of the sign-in this checks, so it asks sign-out:
// from this site (origin, the instance's public origin) without the CSRF token, sign-out is
// refused (403) when the cookie names a live session, and only clears the cookie (303) when it
// names none.
func consoleSessionLive(tb testing.TB, base, origin string, cookie *http.Cookie) bool {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/console/logout", strings.NewReader(""))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := noFollow.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	r.Body.Close()
	switch r.StatusCode {
	case http.StatusForbidden:
		return true
	case http.StatusSeeOther:
		return false
	}
	tb.Fatalf("sign-out probe: %d", r.StatusCode)
	return false
}

// TestConsoleSession_SurvivesRestart: a console session opened by a setup link lives in the
// session store of the data dir: the restarted server still holds it, and the used link stays
// used.
func TestConsoleSession_SurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := startMain(t, dir)
	base := "http://" + m.Addr()
	tenant, _ := createTenant(t, base, "Acme")
	cookie := openSetupLink(t, base, tenant)
	if !consoleSessionLive(t, base, base, cookie) {
		t.Fatalf("the new session is not live")
	}
	if consoleSessionLive(t, base, base, &http.Cookie{Name: cookie.Name, Value: strings.Repeat("A", 43)}) {
		t.Fatalf("a made-up cookie names a live session: the probe proves nothing")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := startMain(t, dir)
	base2 := "http://" + m2.Addr()
	if !consoleSessionLive(t, base2, base2, cookie) {
		t.Errorf("the session did not survive the restart")
	}
}
