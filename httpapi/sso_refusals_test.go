package httpapi_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/saml/samltest"
)

// TestSSO_AnonymousRefusalsBounded floods a company's ACS with anonymous garbage: the login
// history (and so the log) records at most the company's budget of refusals, every answer
// stays the uniform 403, the rest is logged and counted, and a refusal naming a known user is
// still recorded with the budget spent.
func TestSSO_AnonymousRefusalsBounded(t *testing.T) {
	t.Parallel()
	const burst = 60 // the default budget: 60 at once, then one every 10 s
	e := newSSOEnv(t)
	tenant, token := e.company(t, "Acme", samltest.Entra)
	other, _ := e.company(t, "Globex", samltest.Other)
	inactive := e.provision(t, token, "inactive@contoso.example")
	e.deactivate(t, token, inactive)
	ctx := t.Context()
	messages := func() uint64 {
		t.Helper()
		n, err := e.Store.Messages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	garbage := []url.Values{
		{"SAMLResponse": {"<samlp:Response>"}}, // not base64
		{"SAMLResponse": {base64.StdEncoding.EncodeToString([]byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>`))}},
		{"SAMLResponse": {base64.StdEncoding.EncodeToString([]byte("no xml at all"))}, "RelayState": {"id-0123456789abcdef"}},
		{"SAMLart": {"AAQAAMh48/1oXIM+sDo7Dh2qMp1HM4IF5DaRNmDj6RdUmllwn9jJHyEgIi8="}},
		{},
	}
	post := func(tenant string, form url.Values) response {
		t.Helper()
		return e.browser(t).post(t, samltest.Response{ACSURL: e.URL + "/saml/" + tenant + "/acs", Form: form})
	}
	const posts = 3 * burst
	before := messages()
	var page []byte
	for i := range posts {
		res := post(tenant, garbage[i%len(garbage)])
		if res.Status != http.StatusForbidden || len(res.Header.Values("Set-Cookie")) != 0 {
			t.Fatalf("post %d: %d, cookies %v; want 403 without cookies", i, res.Status, res.Header.Values("Set-Cookie"))
		}
		if page == nil {
			page = res.Body
		} else if !bytes.Equal(res.Body, page) {
			t.Fatalf("post %d: the refusal page differs:\n%s\n%s", i, page, res.Body)
		}
	}
	if grew := messages() - before; grew != burst {
		t.Errorf("the log grew by %d messages for %d anonymous refusals, want the budget (%d)", grew, posts, burst)
	}
	if h := e.signIns(t, tenant, domain.SignInNoUser); len(h) != burst {
		t.Errorf("login history has %d anonymous refusals, want %d", len(h), burst)
	}
	if n := strings.Count(e.log.String(), "recorded=false"); n != posts-burst {
		t.Errorf("%d refusals logged as unrecorded, want %d", n, posts-burst)
	}
	m := metric(e.scrape(t), "idledger_saml_signin_refusals_unrecorded_total", nil)
	if m == nil || m.GetCounter().GetValue() != posts-burst {
		t.Errorf("idledger_saml_signin_refusals_unrecorded_total = %v, want %d", m, posts-burst)
	}
	if m := metric(e.scrape(t), "idledger_saml_signin_refusals_total", map[string]string{"reason": domain.SignInMalformed}); m == nil || m.GetCounter().GetValue() == 0 {
		t.Errorf("idledger_saml_signin_refusals_total{reason=%q} = %v", domain.SignInMalformed, m)
	}

	// A verified user's refusal is recorded whatever the budget.
	before = messages()
	b := e.browser(t)
	loc := b.startLogin(t, tenant, "/app")
	if res := b.post(t, e.idps[samltest.Entra].Login(t, loc, e.spMetadata(t, tenant), "inactive@contoso.example")); res.Status != http.StatusForbidden ||
		!bytes.Equal(res.Body, page) {
		t.Fatalf("inactive user's sign-in = %d %s", res.Status, res.Body)
	}
	if got := e.lastReason(t, tenant, inactive); got != domain.SignInInactiveUser {
		t.Errorf("inactive user's refusal recorded as %q, want %q", got, domain.SignInInactiveUser)
	}
	if grew := messages() - before; grew != 1 {
		t.Errorf("the log grew by %d messages for the inactive user's refusal, want 1", grew)
	}

	// Each company has its own budget.
	before = messages()
	if res := post(other, garbage[0]); res.Status != http.StatusForbidden {
		t.Fatalf("other company's ACS = %d", res.Status)
	}
	if got := e.lastReason(t, other, domain.SignInNoUser); got != domain.SignInMalformed || messages()-before != 1 {
		t.Errorf("the other company's first refusal was not recorded (reason %q)", got)
	}
	// Made-up companies get no history and take no budget.
	before = messages()
	for range 5 {
		if res := post("no-such-company", garbage[0]); res.Status != http.StatusForbidden || !bytes.Equal(res.Body, page) {
			t.Fatalf("made-up company's ACS = %d", res.Status)
		}
	}
	if grew := messages() - before; grew != 0 {
		t.Errorf("refusals for a made-up company appended %d messages", grew)
	}

	// The budget refills with time (one per 10 s); the next recorded refusal sums up those
	// that were not.
	e.Clock.Advance(30 * time.Second)
	before = messages()
	for range 5 {
		post(tenant, garbage[0])
	}
	if grew := messages() - before; grew != 3 {
		t.Errorf("after 30 s the log grew by %d messages for 5 refusals, want 3", grew)
	}
	if !strings.Contains(e.log.String(), fmt.Sprintf("%d refused sign-ins not recorded in the login history", posts-burst)) {
		t.Errorf("no summary of the unrecorded refusals in the log:\n%s", e.log)
	}
}

// TestSSO_DisableEndsSessions turns a company's SSO off: its sessions stop working at once, and
// turning SSO on again does not bring them back; only a new sign-in does.
func TestSSO_DisableEndsSessions(t *testing.T) {
	t.Parallel()
	e := newSSOEnv(t)
	tenant, token := e.company(t, "Acme", samltest.Entra)
	other, otherToken := e.company(t, "Globex", samltest.Other)
	e.provision(t, token, "ada@contoso.example")
	e.provision(t, otherToken, "grace@contoso.example")

	asked := e.browser(t) // asks /me while SSO is off
	asked.login(t, tenant, samltest.Entra, "ada@contoso.example")
	unasked := e.browser(t) // comes back only once SSO is on again
	unasked.login(t, tenant, samltest.Entra, "ada@contoso.example")
	bystander := e.browser(t) // another company's session
	bystander.login(t, other, samltest.Other, "grace@contoso.example")
	for _, b := range []*browser{asked, unasked, bystander} {
		if me := b.me(t); me.Status != http.StatusOK {
			t.Fatalf("me before disabling = %d %s", me.Status, me.Body)
		}
	}

	if res := e.do(t, e.key(tenant), "DELETE", "/api/v1/sso", ""); res.Status != http.StatusNoContent {
		t.Fatalf("disable SSO: %d %s", res.Status, res.Body)
	}
	if me := asked.me(t); me.Status != http.StatusUnauthorized {
		t.Fatalf("me after disabling SSO = %d %s, want 401", me.Status, me.Body)
	}
	if me := bystander.me(t); me.Status != http.StatusOK {
		t.Errorf("another company's session after disabling SSO = %d, want 200", me.Status)
	}
	if !strings.Contains(e.log.String(), "session ended: single sign-on turned off") {
		t.Errorf("the log does not say why the session ended:\n%s", e.log)
	}

	// The company admin uploads the same metadata again, later.
	e.Clock.Advance(time.Minute)
	if res := e.putRaw(t, e.key(tenant), "/api/v1/sso/idp-metadata", e.idps[samltest.Entra].Metadata); res.Status != http.StatusNoContent {
		t.Fatalf("re-enable SSO: %d %s", res.Status, res.Body)
	}
	if me := asked.me(t); me.Status != http.StatusUnauthorized {
		t.Errorf("me of the ended session after re-enabling = %d, want 401", me.Status)
	}
	if me := unasked.me(t); me.Status != http.StatusUnauthorized {
		t.Errorf("me of a session opened before disabling, after re-enabling = %d, want 401", me.Status)
	}
	fresh := e.browser(t)
	fresh.login(t, tenant, samltest.Entra, "ada@contoso.example")
	if me := fresh.me(t); me.Status != http.StatusOK {
		t.Fatalf("me after a new sign-in = %d %s", me.Status, me.Body)
	}
	// Retrying a refused session does not revive it.
	if me := unasked.me(t); me.Status != http.StatusUnauthorized {
		t.Errorf("me of the old session, again = %d, want 401", me.Status)
	}

	// New IdP metadata (another trust) ends the sessions opened under the old one too.
	e.Clock.Advance(time.Minute)
	if res := e.putRaw(t, e.key(tenant), "/api/v1/sso/idp-metadata", e.idps[samltest.Other].Metadata); res.Status != http.StatusNoContent {
		t.Fatalf("replace metadata: %d %s", res.Status, res.Body)
	}
	if me := fresh.me(t); me.Status != http.StatusUnauthorized {
		t.Errorf("me after the IdP metadata was replaced = %d, want 401", me.Status)
	}
}
