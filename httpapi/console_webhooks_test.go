package httpapi_test

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/idledger/idledger/domain/audit"
	"github.com/idledger/idledger/httpapi"
	"github.com/idledger/idledger/httpapi/webhook"
)

// newConsoleWebhooksEnv is newConsolePagesEnv with the change feed and a running webhook
// deliverer (allowPrivate: it may reach the test's local receivers) that disables an endpoint
// after retryFor of failures.
func newConsoleWebhooksEnv(t *testing.T, allowPrivate bool, retryFor time.Duration) *consoleAgent {
	t.Helper()
	var d *webhook.Deliverer
	env := buildSSOEnv(t, "", func(cfg *httpapi.Config, e *testEnv) {
		cfg.Audit = &audit.Service{Log: e.Store, History: e.Store, Requests: e.Store, Now: e.Clock.Now, NewID: e.Service.NewID}
		d = configureWebhooks(t, context.Background(), cfg, e, allowPrivate, retryFor)
	})
	runDeliverer(t, d)
	tenant, _ := env.tenant(t, "Fabrikam")
	return signInConsole(t, env, tenant)
}

var (
	hookSecretField = regexp.MustCompile(`id="new-webhook-secret" type="text" readonly value="(whsec_[^"]+)"`)
	hookIDField     = regexp.MustCompile(`/settings/webhooks/([^/"]+)/delete"`)
)

// TestConsoleWebhooks: the Settings page creates an endpoint (its secret shown once), lists
// its health and deliveries, and pauses, resumes, replays, rotates and deletes it, each by a
// form.
func TestConsoleWebhooks(t *testing.T) {
	a := newConsoleWebhooksEnv(t, true, time.Hour)
	base := "/console/" + a.tenant
	r := newReceiver(t)

	body := a.page(t, base+"/settings")
	for _, want := range []string{"No webhook endpoints.", `<label for="hook-url">Endpoint URL</label>`, `<label for="hook-type-user.created">user.created</label>`} {
		if !strings.Contains(body, want) {
			t.Errorf("settings page without endpoints lacks %q", want)
		}
	}
	form := url.Values{"url": {r.srv.URL + "/hook"}, "description": {"host app"}, "type": {"user.created", "user.deleted"}}
	if res := a.post(t, base+"/settings/webhooks", form, false); res.Status != http.StatusForbidden {
		t.Errorf("create without CSRF token: %d", res.Status)
	}
	for name, bad := range map[string]url.Values{
		"no url":       {"url": {""}},
		"unknown type": {"url": {r.srv.URL}, "type": {"user.exploded"}},
		"not a url":    {"url": {"ftp://example.com/x"}},
	} {
		res := a.post(t, base+"/settings/webhooks", bad, true)
		if res.Status != http.StatusBadRequest || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
			t.Errorf("create with %s: %d %s", name, res.Status, res.Body)
		}
	}

	// Created: the secret is on the answer page, once.
	res := a.post(t, base+"/settings/webhooks", form, true)
	m := hookSecretField.FindSubmatch(res.Body)
	if res.Status != http.StatusOK || m == nil || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d %s", res.Status, res.Body)
	}
	secret := html.UnescapeString(string(m[1])) // base64's + and = are escaped in the attribute
	checkConsoleHTML(t, "create webhook", res)
	body = a.page(t, base+"/settings")
	if strings.Contains(body, secret) || !strings.Contains(body, r.srv.URL+"/hook") || !strings.Contains(body, "host app") {
		t.Fatalf("settings after create (secret shown again, or endpoint missing):\n%s", body)
	}
	id := hookIDField.FindStringSubmatch(body)
	if id == nil {
		t.Fatal("no delete form for the endpoint")
	}
	hook := base + "/settings/webhooks/" + id[1]

	// An event of a ticked type arrives signed; the page shows it delivered.
	invite := func(email string) {
		t.Helper()
		if res := a.post(t, base+"/users", url.Values{"email": {email}}, true); res.Status != http.StatusSeeOther {
			t.Fatalf("invite %s: %d %s", email, res.Status, res.Body)
		}
	}
	invite("zoe@fabrikam.example")
	eventually(t, 20*time.Second, "the invitation delivered", func() bool { return len(r.deliveries()) > 0 })
	checkSigned(t, r.deliveries(), secret)
	var first struct{ ID, Type string }
	if err := json.Unmarshal(r.deliveries()[0].body, &first); err != nil || first.Type != "user.created" {
		t.Fatalf("first delivery %s: %v", r.deliveries()[0].body, err)
	}
	eventually(t, 10*time.Second, "the page shows the delivery", func() bool {
		body = a.page(t, base+"/settings")
		return strings.Contains(body, "<strong>healthy</strong>") && strings.Contains(body, "delivered (204)") && strings.Contains(body, first.ID)
	})

	// The receiver fails: the page says so, with the next retry; then it recovers.
	r.failing.Store(true)
	invite("yann@fabrikam.example")
	eventually(t, 20*time.Second, "the page shows the failure", func() bool {
		body = a.page(t, base+"/settings")
		return strings.Contains(body, "<strong>failing</strong>") && strings.Contains(body, "503 Service Unavailable") && strings.Contains(body, "next retry")
	})
	r.failing.Store(false)
	eventually(t, 20*time.Second, "the missed event delivered", func() bool { return len(firstArrivals(r.deliveries())) == 2 })

	// Disabled by the admin, then enabled again.
	res = a.post(t, hook+"/disable", url.Values{}, true)
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != base+"/settings?done=hook-disabled#webhooks" {
		t.Fatalf("disable: %d %s", res.Status, res.Header.Get("Location"))
	}
	body = a.page(t, base+"/settings?done=hook-disabled")
	if !strings.Contains(body, "<strong>disabled</strong> since") || !strings.Contains(body, "Webhook endpoint disabled") || !strings.Contains(body, hook+"/enable") {
		t.Errorf("settings after disable:\n%s", body)
	}
	if res := a.post(t, hook+"/enable", url.Values{}, true); res.Status != http.StatusSeeOther {
		t.Fatalf("enable: %d %s", res.Status, res.Body)
	}
	if body = a.page(t, base+"/settings"); !strings.Contains(body, hook+"/disable") {
		t.Errorf("settings after enable has no Disable button")
	}

	// Replay after the first event: the second arrives again; a foreign cursor is refused.
	if res := a.post(t, hook+"/replay", url.Values{"after": {"evt_nothing"}}, true); res.Status != http.StatusBadRequest {
		t.Errorf("replay from a bad cursor: %d", res.Status)
	}
	r.reset()
	if res := a.post(t, hook+"/replay", url.Values{"after": {first.ID}}, true); res.Status != http.StatusSeeOther {
		t.Fatalf("replay: %d %s", res.Status, res.Body)
	}
	eventually(t, 20*time.Second, "the replay delivered", func() bool { return len(r.deliveries()) > 0 })
	if got := firstArrivals(r.deliveries()); len(got) != 1 || strings.Contains(got[0], first.ID) {
		t.Errorf("replay after %s sent %v", first.ID, got)
	}

	// A rotated secret is shown once and signs from then on.
	res = a.post(t, hook+"/rotate-secret", url.Values{}, true)
	m = hookSecretField.FindSubmatch(res.Body)
	if res.Status != http.StatusOK || m == nil || html.UnescapeString(string(m[1])) == secret {
		t.Fatalf("rotate: %d %s", res.Status, res.Body)
	}
	r.reset()
	invite("xia@fabrikam.example")
	eventually(t, 20*time.Second, "delivery after the rotation", func() bool { return len(r.deliveries()) > 0 })
	checkSigned(t, r.deliveries(), html.UnescapeString(string(m[1])))

	// Deleted: gone from the page; its actions answer 404.
	res = a.post(t, hook+"/delete", url.Values{}, true)
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != base+"/settings?done=hook-deleted#webhooks" {
		t.Fatalf("delete: %d %s", res.Status, res.Header.Get("Location"))
	}
	if body = a.page(t, base+"/settings"); !strings.Contains(body, "No webhook endpoints.") {
		t.Errorf("settings after delete:\n%s", body)
	}
	if res := a.post(t, hook+"/rotate-secret", url.Values{}, true); res.Status != http.StatusNotFound {
		t.Errorf("rotate a deleted endpoint: %d", res.Status)
	}
}

// TestConsoleWebhooks_Outbound: without the allow-private flag, the console refuses an
// endpoint on a loopback address or over http, as the JSON API does.
func TestConsoleWebhooks_Outbound(t *testing.T) {
	a := newConsoleWebhooksEnv(t, false, time.Hour)
	base := "/console/" + a.tenant
	a.page(t, base+"/settings")
	for _, u := range []string{"https://127.0.0.1/hook", "https://localhost:8443/hook", "http://example.com/hook", "https://169.254.169.254/latest"} {
		res := a.post(t, base+"/settings/webhooks", url.Values{"url": {u}}, true)
		if res.Status != http.StatusBadRequest || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
			t.Errorf("create %s: %d %s", u, res.Status, res.Body)
		}
	}
	if body := a.page(t, base+"/settings"); !strings.Contains(body, "No webhook endpoints.") {
		t.Errorf("a refused endpoint is listed:\n%s", body)
	}
}

// TestConsoleWebhooks_DisabledAfterRetryPeriod: an endpoint that failed for the whole retry
// period is shown disabled, since when and why, with an Enable button that resumes it.
func TestConsoleWebhooks_DisabledAfterRetryPeriod(t *testing.T) {
	a := newConsoleWebhooksEnv(t, true, 300*time.Millisecond)
	base := "/console/" + a.tenant
	r := newReceiver(t)
	r.failing.Store(true)
	a.page(t, base+"/settings")
	if res := a.post(t, base+"/settings/webhooks", url.Values{"url": {r.srv.URL}}, true); res.Status != http.StatusOK {
		t.Fatalf("create: %d %s", res.Status, res.Body)
	}
	if res := a.post(t, base+"/users", url.Values{"email": {"zoe@fabrikam.example"}}, true); res.Status != http.StatusSeeOther {
		t.Fatalf("invite: %d %s", res.Status, res.Body)
	}
	var body string
	eventually(t, 20*time.Second, "the page shows the endpoint disabled", func() bool {
		body = a.page(t, base+"/settings")
		return strings.Contains(body, "<strong>disabled</strong> since")
	})
	if !strings.Contains(body, "every delivery failed for 300ms") || !strings.Contains(body, "/enable\"") {
		t.Errorf("disabled endpoint without its reason or an Enable button:\n%s", body)
	}
	r.failing.Store(false)
	id := hookIDField.FindStringSubmatch(body)
	if id == nil {
		t.Fatal("no delete form for the endpoint")
	}
	if res := a.post(t, base+"/settings/webhooks/"+id[1]+"/enable", url.Values{}, true); res.Status != http.StatusSeeOther {
		t.Fatalf("enable: %d %s", res.Status, res.Body)
	}
	eventually(t, 20*time.Second, "the missed event delivered after enabling", func() bool { return len(r.deliveries()) > 0 })
}
