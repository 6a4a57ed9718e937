package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/httpapi"
	"github.com/idledger/idledger/saml"
	"github.com/idledger/idledger/saml/samltest"
)

// ssoEnv is a real server with single sign-on wired as cmd/idledger wires it: embedded
// JetStream (the log and the KV buckets), bbolt projections, a saml.Service, and a test IdP
// (crewjam's IdentityProvider) on the same clock.
type ssoEnv struct {
	*testEnv
	log  *syncBuffer
	idps map[string]*samltest.IDP

	mu   sync.Mutex
	keys map[string]string // company id → its API key with every scope (company)
}

// syncBuffer collects the server log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newSSOEnv(tb testing.TB) *ssoEnv {
	tb.Helper()
	return newSSOEnvAt(tb, "")
}

// newSSOEnvAt is newSSOEnv with a public base URL other than the test server's own (""), such
// as an https one behind a TLS-terminating proxy.
func newSSOEnvAt(tb testing.TB, base string) *ssoEnv {
	tb.Helper()
	return buildSSOEnv(tb, base, nil)
}

// buildSSOEnv is newSSOEnvAt with more configuration (such as the audit routes) applied after
// the SSO's.
func buildSSOEnv(tb testing.TB, base string, more func(cfg *httpapi.Config, e *testEnv)) *ssoEnv {
	tb.Helper()
	logs := &syncBuffer{}
	e := buildTestEnv(tb, envOptions{noSync: true, base: base, logger: slog.New(slog.NewTextHandler(logs, nil)),
		configure: func(tb testing.TB, ctx context.Context, cfg *httpapi.Config, e *testEnv) {
			base := base
			if base == "" {
				base = e.URL
			}
			key, cert := samltest.KeyPair(tb, "sp")
			records := func(bucket string, maxAge time.Duration) *eventstore.Records {
				r, err := e.Store.OpenRecords(ctx, bucket, bucket, maxAge)
				if err != nil {
					tb.Fatal(err)
				}
				return r
			}
			sp, err := saml.New(saml.Config{
				BaseURL: base, KeyPair: saml.KeyPair{Key: key, Certificate: cert}, Reader: e.DB, Log: e.Store,
				Requests:   records(eventstore.BucketSAMLRequests, 15*time.Minute),
				Assertions: records(eventstore.BucketSAMLAssertions, 15*time.Minute),
				Now:        e.Clock.Now,
			})
			if err != nil {
				tb.Fatal(err)
			}
			sessions := records(eventstore.BucketSessions, 12*time.Hour)
			cfg.SSO = &httpapi.SSOConfig{SAML: sp, Sessions: sessions, Now: e.Clock.Now}
			cfg.ConsoleSessions, cfg.Now = sessions, e.Clock.Now // the console's sign-in (console_auth_test.go)
			if more != nil {
				more(cfg, e)
			}
		}})
	return &ssoEnv{
		testEnv: e,
		log:     logs,
		idps: map[string]*samltest.IDP{
			samltest.Entra: samltest.New(tb, samltest.Entra, e.Clock.Now),
			samltest.Other: samltest.New(tb, samltest.Other, e.Clock.Now),
		},
	}
}

// company creates a company and an API key of it with every scope (see key) and, with an idp,
// uploads the IdP's metadata with that key; it returns the company's id and SCIM token.
func (e *ssoEnv) company(tb testing.TB, name, idp string) (string, string) {
	tb.Helper()
	id, token, key := e.tenantWithKey(tb, name)
	e.mu.Lock()
	if e.keys == nil {
		e.keys = map[string]string{}
	}
	e.keys[id] = key
	e.mu.Unlock()
	if idp != "" {
		res := e.putRaw(tb, key, "/api/v1/sso/idp-metadata", e.idps[idp].Metadata)
		if res.Status != http.StatusNoContent {
			tb.Fatalf("upload metadata: %d %s", res.Status, res.Body)
		}
	}
	return id, token
}

// key returns the API key (every scope) made by company for the company tenant.
func (e *ssoEnv) key(tenant string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.keys[tenant]
}

// putRaw PUTs an XML body.
func (e *ssoEnv) putRaw(tb testing.TB, token, path string, body []byte) response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPut, e.URL+path, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/xml")
	return send(tb, http.DefaultClient, req)
}

func send(tb testing.TB, client *http.Client, req *http.Request) response {
	tb.Helper()
	res, err := client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// provision creates an active user through SCIM, as Entra does, and returns its id.
func (e *ssoEnv) provision(tb testing.TB, token, userName string) string {
	tb.Helper()
	res := e.do(tb, token, "POST", "/scim/v2/Users", fmt.Sprintf(`{
		"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"active":true,
		"externalId":%q,"name":{"givenName":"Ada","familyName":"Lovelace"},
		"emails":[{"primary":true,"type":"work","value":%q}]}`, userName, uuid.NewString(), userName))
	if res.Status != http.StatusCreated {
		tb.Fatalf("provision %s: %d %s", userName, res.Status, res.Body)
	}
	return res.JSON(tb)["id"].(string)
}

// deactivate sends Entra's soft delete: PATCH active "False".
func (e *ssoEnv) deactivate(tb testing.TB, token, id string) {
	tb.Helper()
	res := e.do(tb, token, "PATCH", "/scim/v2/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"Replace","path":"active","value":"False"}]}`)
	if res.Status != http.StatusOK && res.Status != http.StatusNoContent {
		tb.Fatalf("deactivate: %d %s", res.Status, res.Body)
	}
}

func (e *ssoEnv) spMetadata(tb testing.TB, tenant string) []byte {
	tb.Helper()
	res := e.do(tb, "", "GET", "/saml/"+tenant+"/metadata", "")
	if res.Status != http.StatusOK {
		tb.Fatalf("SP metadata: %d %s", res.Status, res.Body)
	}
	return res.Body
}

// signIns returns the login history of a user ("unknown" for attempts that matched none).
func (e *ssoEnv) signIns(tb testing.TB, tenant, user string) []domain.SignInRecorded {
	tb.Helper()
	events, _, err := e.Store.Load(context.Background(), domain.TenantID(tenant), domain.KindSignIn, user)
	if err != nil {
		tb.Fatal(err)
	}
	var out []domain.SignInRecorded
	for _, ev := range events {
		r, ok := ev.Data.(domain.SignInRecorded)
		if !ok {
			tb.Fatalf("event %s has payload %T", ev.Type, ev.Data)
		}
		want := domain.EventSignInFailed
		if r.Reason == domain.SignInOK {
			want = domain.EventSignInSucceeded
		}
		if ev.Type != want || ev.At.IsZero() || r.Source == "" {
			tb.Errorf("sign-in event %s %+v: want type %s, a time and a source", ev.Type, r, want)
		}
		out = append(out, r)
	}
	return out
}

// lastReason returns the reason of the last recorded attempt of a user (or "unknown").
func (e *ssoEnv) lastReason(tb testing.TB, tenant, user string) string {
	tb.Helper()
	h := e.signIns(tb, tenant, user)
	if len(h) == 0 {
		return ""
	}
	return h[len(h)-1].Reason
}

// A browser keeps cookies and does not follow redirects.
type browser struct {
	env    *ssoEnv
	client *http.Client
}

func (e *ssoEnv) browser(tb testing.TB) *browser {
	tb.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &browser{env: e, client: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(tb testing.TB, path string) response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, b.env.URL+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return send(tb, b.client, req)
}

// startLogin opens /saml/<tenant>/login and returns the IdP URL it redirects to.
func (b *browser) startLogin(tb testing.TB, tenant, returnTo string) string {
	tb.Helper()
	path := "/saml/" + tenant + "/login"
	if returnTo != "" {
		path += "?return_to=" + url.QueryEscape(returnTo)
	}
	res := b.get(tb, path)
	if res.Status != http.StatusFound {
		tb.Fatalf("login: %d %s", res.Status, res.Body)
	}
	return res.Header.Get("Location")
}

// post posts the IdP's form to the ACS.
func (b *browser) post(tb testing.TB, r samltest.Response) response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, r.ACSURL, strings.NewReader(r.Form.Encode()))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return send(tb, b.client, req)
}

func (b *browser) me(tb testing.TB) response {
	tb.Helper()
	return b.get(tb, "/api/v1/me")
}

// login runs a whole SP-initiated login and checks that it succeeded.
func (b *browser) login(tb testing.TB, tenant, idp, nameID string, opts ...samltest.Option) response {
	tb.Helper()
	loc := b.startLogin(tb, tenant, "/app")
	res := b.post(tb, b.env.idps[idp].Login(tb, loc, b.env.spMetadata(tb, tenant), nameID, opts...))
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/app" {
		tb.Fatalf("ACS: %d %s %s\nlog:\n%s", res.Status, res.Header.Get("Location"), res.Body, b.env.log)
	}
	return res
}

func sessionCookieOf(res response) *http.Cookie {
	for _, c := range (&http.Response{Header: res.Header}).Cookies() {
		if c.Name == "idl_session" {
			return c
		}
	}
	return nil
}

func TestSSO_SPInitiatedLogin(t *testing.T) {
	t.Parallel()
	e := newSSOEnv(t)
	tenant, token := e.company(t, "Acme", samltest.Entra)
	ada := e.provision(t, token, "ada@contoso.example")

	tests := []struct {
		name   string
		nameID string
		opts   []samltest.Option
	}{
		{"AssertionSigned", "ada@contoso.example", nil}, // Entra's default
		{"ResponseSigned", "ada@contoso.example", []samltest.Option{samltest.WithSigning(samltest.SignResponse)}},
		{"ResponseAndAssertionSigned", "ada@contoso.example", []samltest.Option{samltest.WithSigning(samltest.SignBoth)}},
		{"EncryptedAssertion", "ada@contoso.example", []samltest.Option{samltest.WithEncryption()}},
		{"RolloverCertificate", "ada@contoso.example", []samltest.Option{samltest.WithKey(1)}},
		{"NameIDInOtherCase", "ADA@Contoso.Example", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := e.browser(t)
			if res := b.me(t); res.Status != http.StatusUnauthorized {
				t.Fatalf("me before login = %d, want 401", res.Status)
			}
			loc := b.startLogin(t, tenant, "/app")
			u, _ := url.Parse(loc)
			if u.Query().Get("SAMLRequest") == "" || u.Query().Get("RelayState") == "" {
				t.Fatalf("redirect %s carries no SAMLRequest and RelayState", loc)
			}
			res := b.post(t, e.idps[samltest.Entra].Login(t, loc, e.spMetadata(t, tenant), tt.nameID, tt.opts...))
			if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/app" {
				t.Fatalf("ACS = %d %q %s\nlog:\n%s", res.Status, res.Header.Get("Location"), res.Body, e.log)
			}
			ck := sessionCookieOf(res)
			if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Secure {
				t.Fatalf("session cookie = %+v, want HttpOnly, SameSite=Lax, Path=/ (not Secure over http)", ck)
			}
			me := b.me(t)
			if me.Status != http.StatusOK {
				t.Fatalf("me = %d %s", me.Status, me.Body)
			}
			m := me.JSON(t)
			if m["id"] != ada || m["userName"] != "ada@contoso.example" {
				t.Errorf("me = %s", me.Body)
			}
		})
	}
	h := e.signIns(t, tenant, ada)
	if len(h) != len(tests) {
		t.Fatalf("login history has %d entries, want %d: %+v", len(h), len(tests), h)
	}
	for _, r := range h {
		if r.Reason != domain.SignInOK || r.User != domain.UserID(ada) || r.Flow != domain.FlowSPInitiated {
			t.Errorf("history entry %+v", r)
		}
	}
}

func TestSSO_IDPInitiatedLogin(t *testing.T) {
	t.Parallel()
	e := newSSOEnv(t)
	tenant, token := e.company(t, "Acme", samltest.Entra)
	ada := e.provision(t, token, "ada@contoso.example")
	idp := e.idps[samltest.Entra]

	// Off by default: an unsolicited response is refused.
	b := e.browser(t)
	res := b.post(t, idp.Unsolicited(t, e.spMetadata(t, tenant), "ada@contoso.example", ""))
	if res.Status != http.StatusForbidden || sessionCookieOf(res) != nil {
		t.Fatalf("IdP-initiated while off = %d, cookie %v", res.Status, sessionCookieOf(res))
	}
	if got := e.lastReason(t, tenant, domain.SignInNoUser); got != domain.SignInRequestMismatch {
		t.Errorf("reason = %q, want %q", got, domain.SignInRequestMismatch)
	}

	set := e.do(t, e.key(tenant), "PUT", "/api/v1/sso/settings", `{"allowIdpInitiated":true}`)
	if set.Status != http.StatusOK || set.JSON(t)["allowIdpInitiated"] != true {
		t.Fatalf("settings: %d %s", set.Status, set.Body)
	}
	for _, tt := range []struct{ relay, want string }{
		{"", "/"}, {"/reports?q=1", "/reports?q=1"}, {"https://evil.example/", "/"}, {"//evil.example", "/"},
	} {
		b := e.browser(t)
		r := idp.Unsolicited(t, e.spMetadata(t, tenant), "ada@contoso.example", tt.relay)
		res := b.post(t, r)
		if res.Status != http.StatusSeeOther || res.Header.Get("Location") != tt.want {
			t.Fatalf("relay %q: ACS = %d %q, want 303 %q\n%s", tt.relay, res.Status, res.Header.Get("Location"), tt.want, e.log)
		}
		if me := b.me(t); me.Status != http.StatusOK || me.JSON(t)["id"] != ada {
			t.Fatalf("me = %d %s", me.Status, me.Body)
		}
		// The same response again (captured from the browser) is a replay.
		again := e.browser(t).post(t, r)
		if again.Status != http.StatusForbidden || sessionCookieOf(again) != nil {
			t.Fatalf("replay = %d", again.Status)
		}
		if got := e.lastReason(t, tenant, domain.SignInNoUser); got != domain.SignInReplayed {
			t.Errorf("replay reason = %q, want %q", got, domain.SignInReplayed)
		}
	}
	if h := e.signIns(t, tenant, ada); len(h) != 4 || h[0].Flow != domain.FlowIDPInitiated {
		t.Errorf("history = %+v", h)
	}
}

// TestSSO_ACSRefusals posts every attack of the checklist (docs/saml-sso.md §3) and checks that each
// is refused with the same 403 page and no session, for the intended reason.
func TestSSO_ACSRefusals(t *testing.T) {
	t.Parallel()
	e := newSSOEnv(t)
	tenant, token := e.company(t, "Acme", samltest.Entra)
	other, otherToken := e.company(t, "Globex", samltest.Other)
	e.provision(t, token, "ada@contoso.example")
	mallory := e.provision(t, token, "mallory@contoso.example")
	gone := e.provision(t, token, "gone@contoso.example")
	e.provision(t, otherToken, "ada@contoso.example")
	inactive := e.provision(t, token, "inactive@contoso.example")
	e.deactivate(t, token, inactive)
	if res := e.do(t, token, "DELETE", "/scim/v2/Users/"+gone, ""); res.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", res.Status, res.Body)
	}
	entra, otherIdP := e.idps[samltest.Entra], e.idps[samltest.Other]
	acs := e.URL + "/saml/" + tenant + "/acs"
	otherACS := e.URL + "/saml/" + other + "/acs"
	otherEntity := e.URL + "/saml/" + other + "/metadata"

	// Each case returns the response to post and the browser that posts it.
	type attempt struct {
		b *browser
		r samltest.Response
	}
	spLogin := func(t *testing.T, nameID string, opts ...samltest.Option) attempt {
		b := e.browser(t)
		loc := b.startLogin(t, tenant, "/app")
		return attempt{b, entra.Login(t, loc, e.spMetadata(t, tenant), nameID, opts...)}
	}
	tests := []struct {
		name       string
		make       func(t *testing.T) attempt
		reason     string
		historyFor string // whose history records it; "" = unknown
	}{
		{"Unsigned", func(t *testing.T) attempt {
			return spLogin(t, "ada@contoso.example", samltest.WithSigning(samltest.SignNothing))
		}, domain.SignInInvalidResponse, ""}, // crewjam: "signature element not present"
		{"SHA1Signature", func(t *testing.T) attempt {
			return spLogin(t, "ada@contoso.example", samltest.WithSHA1())
		}, domain.SignInWeakSignature, ""},
		{"SHA1ResponseSignature", func(t *testing.T) attempt {
			return spLogin(t, "ada@contoso.example", samltest.WithSHA1(), samltest.WithSigning(samltest.SignResponse))
		}, domain.SignInWeakSignature, ""},
		{"TamperedSignedNameID", func(t *testing.T) attempt {
			return spLogin(t, "mallory@contoso.example", samltest.WithTamperedNameID("ada@contoso.example"))
		}, domain.SignInInvalidSignature, ""},
		{"WrappingSecondAssertion", func(t *testing.T) attempt {
			return spLogin(t, "mallory@contoso.example", samltest.WithWrapping("second-assertion", "ada@contoso.example"))
		}, domain.SignInMalformed, ""},
		{"WrappingInExtensions", func(t *testing.T) attempt {
			return spLogin(t, "mallory@contoso.example", samltest.WithWrapping("extensions", "ada@contoso.example"))
		}, domain.SignInInvalidResponse, ""}, // the forged assertion is unsigned
		{"WrappingSignedResponse", func(t *testing.T) attempt {
			return spLogin(t, "mallory@contoso.example", samltest.WithWrapping("signed-response", "ada@contoso.example"))
		}, domain.SignInInvalidSignature, ""},
		{"WrongAudience", func(t *testing.T) attempt {
			return spLogin(t, "ada@contoso.example", samltest.WithAudience("https://other-app.example/saml"))
		}, domain.SignInWrongAudience, ""},
		{"OtherCompanysAudience", func(t *testing.T) attempt {
			// A token the same IdP issued for another idledger company.
			return spLogin(t, "ada@contoso.example", samltest.WithAudience(otherEntity))
		}, domain.SignInWrongAudience, ""},
		{"WrongDestination", func(t *testing.T) attempt {
			return spLogin(t, "ada@contoso.example", samltest.WithDestination(otherACS))
		}, domain.SignInWrongDestination, ""},
		{"WrongRecipient", func(t *testing.T) attempt {
			return spLogin(t, "ada@contoso.example", samltest.WithRecipient(otherACS))
		}, domain.SignInWrongDestination, ""},
		{"Expired", func(t *testing.T) attempt {
			a := spLogin(t, "ada@contoso.example")
			e.Clock.Advance(5 * time.Minute) // past MaxIssueDelay (90 s), within the request's 10 min
			t.Cleanup(func() { e.Clock.Advance(-5 * time.Minute) })
			return a
		}, domain.SignInExpired, ""},
		{"ReplayedSPInitiated", func(t *testing.T) attempt {
			a := spLogin(t, "ada@contoso.example")
			if res := a.b.post(t, a.r); res.Status != http.StatusSeeOther {
				t.Fatalf("first post = %d", res.Status)
			}
			return attempt{e.browser(t), a.r} // the captured form, from another browser
		}, domain.SignInRequestMismatch, ""},
		{"ReplayedSameBrowser", func(t *testing.T) attempt {
			a := spLogin(t, "ada@contoso.example")
			if res := a.b.post(t, a.r); res.Status != http.StatusSeeOther {
				t.Fatalf("first post = %d", res.Status)
			}
			return a // its request was taken: the second post answers nothing
		}, domain.SignInRequestMismatch, ""},
		{"InResponseToMismatch", func(t *testing.T) attempt {
			return spLogin(t, "ada@contoso.example", samltest.WithInResponseTo("id-0123456789abcdef0123456789abcdef01234567"))
		}, domain.SignInRequestMismatch, ""},
		{"AnotherBrowsersRequest", func(t *testing.T) attempt {
			a := spLogin(t, "ada@contoso.example")
			return attempt{e.browser(t), a.r} // login CSRF: the victim's browser has no binding
		}, domain.SignInRequestMismatch, ""},
		{"UnsolicitedWhileOff", func(t *testing.T) attempt {
			return attempt{e.browser(t), entra.Unsolicited(t, e.spMetadata(t, tenant), "ada@contoso.example", "")}
		}, domain.SignInRequestMismatch, ""},
		{"OtherCompanysIdP", func(t *testing.T) attempt {
			// Company B's IdP answers company A's request, naming A's user, with A's audience
			// and recipient.
			b := e.browser(t)
			loc := b.startLogin(t, tenant, "/app")
			r := otherIdP.Login(t, loc, e.spMetadata(t, tenant), "ada@contoso.example", samltest.WithForeignRequest())
			return attempt{b, r}
		}, domain.SignInWrongIssuer, ""},
		{"OtherCompanysIdPPosingAsEntra", func(t *testing.T) attempt {
			b := e.browser(t)
			loc := b.startLogin(t, tenant, "/app")
			r := otherIdP.Login(t, loc, e.spMetadata(t, tenant), "ada@contoso.example",
				samltest.WithForeignRequest(), samltest.WithIssuer(entra.EntityID))
			return attempt{b, r}
		}, domain.SignInInvalidSignature, ""},
		{"OtherCompanysRequest", func(t *testing.T) attempt {
			// A login started at company B, answered by B's IdP for B's SP, posted to A's ACS.
			b := e.browser(t)
			loc := b.startLogin(t, other, "/app")
			r := otherIdP.Login(t, loc, e.spMetadata(t, other), "ada@contoso.example")
			r.ACSURL = acs
			return attempt{b, r}
		}, domain.SignInWrongDestination, ""},
		{"OtherCompanysPendingRequest", func(t *testing.T) attempt {
			// A request outstanding at company B (its id and the browser binding both copied
			// over), answered by A's IdP with A's audience: the request is not A's.
			b := e.browser(t)
			locB := b.startLogin(t, other, "/app")
			u, _ := url.Parse(locB)
			idB := u.Query().Get("RelayState")
			acsB, _ := url.Parse(otherACS)
			acsA, _ := url.Parse(acs)
			for _, c := range b.client.Jar.Cookies(acsB) {
				b.client.Jar.SetCookies(acsA, []*http.Cookie{{Name: c.Name, Value: c.Value, Path: "/saml/" + tenant + "/"}})
			}
			r := entra.Login(t, e.browser(t).startLogin(t, tenant, "/app"), e.spMetadata(t, tenant), "ada@contoso.example",
				samltest.WithInResponseTo(idB))
			r.Form.Set("RelayState", idB)
			return attempt{b, r}
		}, domain.SignInRequestMismatch, ""},
		{"IdPReportsFailure", func(t *testing.T) attempt {
			return spLogin(t, "ada@contoso.example", samltest.WithSigning(samltest.SignBoth),
				samltest.WithStatus("urn:oasis:names:tc:SAML:2.0:status:Responder"))
		}, domain.SignInIDPError, ""},
		{"UnknownUser", func(t *testing.T) attempt {
			return spLogin(t, "eve@contoso.example")
		}, domain.SignInUnknownUser, ""},
		{"DeactivatedUser", func(t *testing.T) attempt {
			return spLogin(t, "inactive@contoso.example")
		}, domain.SignInInactiveUser, inactive},
		{"DeletedUser", func(t *testing.T) attempt {
			return spLogin(t, "gone@contoso.example")
		}, domain.SignInUnknownUser, ""},
		{"NotBase64", func(t *testing.T) attempt {
			a := spLogin(t, "ada@contoso.example")
			a.r.Form.Set("SAMLResponse", "<samlp:Response>")
			return a
		}, domain.SignInMalformed, ""},
		{"Artifact", func(t *testing.T) attempt {
			a := spLogin(t, "ada@contoso.example")
			a.r.Form.Set("SAMLart", "AAQAAMh48/1oXIM+sDo7Dh2qMp1HM4IF5DaRNmDj6RdUmllwn9jJHyEgIi8=")
			return a
		}, domain.SignInMalformed, ""},
	}
	var pages [][]byte
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One attempt every 10 s stays within the company's budget of recorded anonymous
			// refusals (sso_refusals.go), so each of them reaches the login history.
			e.Clock.Advance(10 * time.Second)
			a := tt.make(t)
			before := a.b.me(t).Status
			res := a.b.post(t, a.r)
			if res.Status != http.StatusForbidden {
				t.Fatalf("ACS = %d %s %s, want 403\nlog:\n%s", res.Status, res.Header.Get("Location"), res.Body, e.log)
			}
			if len(res.Header.Values("Set-Cookie")) != 0 {
				t.Errorf("a refusal set cookies: %v", res.Header.Values("Set-Cookie"))
			}
			if me := a.b.me(t); me.Status != before {
				t.Errorf("me after refusal = %d, want %d as before", me.Status, before)
			}
			pages = append(pages, res.Body)
			who := tt.historyFor
			if who == "" {
				who = domain.SignInNoUser
			}
			if got := e.lastReason(t, tenant, who); got != tt.reason {
				t.Errorf("recorded reason = %q, want %q\nlog:\n%s", got, tt.reason, e.log)
			}
			if !strings.Contains(e.log.String(), "reason="+tt.reason) {
				t.Errorf("the log does not give the reason %s", tt.reason)
			}
		})
	}
	for _, p := range pages[1:] {
		if !bytes.Equal(p, pages[0]) {
			t.Errorf("refusal pages differ:\n%s\n%s", pages[0], p)
		}
	}
	if bytes.Contains(pages[0], []byte("unknown")) || bytes.Contains(pages[0], []byte("signature")) {
		t.Errorf("the refusal page tells why: %s", pages[0])
	}
	if h := e.signIns(t, tenant, mallory); len(h) != 0 {
		t.Errorf("mallory's history = %+v, want nothing (no attempt was hers)", h)
	}
	if h := e.signIns(t, other, domain.SignInNoUser); len(h) != 0 {
		t.Errorf("company B's history = %+v, want nothing", h)
	}
}

func TestSSO_CertificateExpired(t *testing.T) {
	t.Parallel()
	e := newSSOEnv(t)
	tenant, token := e.company(t, "Globex", samltest.Other)
	e.provision(t, token, "ada@contoso.example")
	e.Clock.Advance(500 * 24 * time.Hour) // past the other IdP's certificate (2028-03-01)
	b := e.browser(t)
	loc := b.startLogin(t, tenant, "/app")
	res := b.post(t, e.idps[samltest.Other].Login(t, loc, e.spMetadata(t, tenant), "ada@contoso.example"))
	if res.Status != http.StatusForbidden {
		t.Fatalf("ACS = %d", res.Status)
	}
	if got := e.lastReason(t, tenant, domain.SignInNoUser); got != domain.SignInCertificateExpired {
		t.Errorf("reason = %q, want %q", got, domain.SignInCertificateExpired)
	}
	if !strings.Contains(e.log.String(), "IdP signing certificate expired") {
		t.Errorf("log does not say the certificate expired:\n%s", e.log)
	}
}

func TestSSO_MeLosesDeactivatedUser(t *testing.T) {
	t.Parallel()
	e := newSSOEnv(t)
	tenant, token := e.company(t, "Acme", samltest.Entra)
	ada := e.provision(t, token, "ada@contoso.example")
	grace := e.provision(t, token, "grace@contoso.example")

	b := e.browser(t)
	b.login(t, tenant, samltest.Entra, "ada@contoso.example")
	if me := b.me(t); me.Status != http.StatusOK {
		t.Fatalf("me = %d", me.Status)
	}
	e.deactivate(t, token, ada)
	if me := b.me(t); me.Status != http.StatusUnauthorized {
		t.Fatalf("me after SCIM deactivation = %d %s, want 401", me.Status, me.Body)
	}
	// Reactivated, the old session stays ended.
	res := e.do(t, token, "PATCH", "/scim/v2/Users/"+ada, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"Replace","path":"active","value":"True"}]}`)
	if res.Status != http.StatusOK && res.Status != http.StatusNoContent {
		t.Fatalf("reactivate: %d %s", res.Status, res.Body)
	}
	if me := b.me(t); me.Status != http.StatusUnauthorized {
		t.Fatalf("me with the ended session = %d, want 401", me.Status)
	}

	g := e.browser(t)
	g.login(t, tenant, samltest.Entra, "grace@contoso.example")
	if res := e.do(t, token, "DELETE", "/scim/v2/Users/"+grace, ""); res.Status != http.StatusNoContent {
		t.Fatalf("delete: %d", res.Status)
	}
	if me := g.me(t); me.Status != http.StatusUnauthorized {
		t.Fatalf("me after SCIM delete = %d, want 401", me.Status)
	}
}

func TestSSO_Logout(t *testing.T) {
	t.Parallel()
	e := newSSOEnv(t)
	tenant, token := e.company(t, "Acme", samltest.Entra)
	e.provision(t, token, "ada@contoso.example")
	b := e.browser(t)
	res := b.login(t, tenant, samltest.Entra, "ada@contoso.example")
	stolen := sessionCookieOf(res)

	// A form on another site cannot sign the user out (logout CSRF).
	for _, h := range []map[string]string{{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}} {
		req, _ := http.NewRequest(http.MethodPost, e.URL+"/saml/"+tenant+"/logout", nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		if out := send(t, b.client, req); out.Status != http.StatusForbidden || out.Header.Get("Set-Cookie") != "" {
			t.Fatalf("cross-site logout %v = %d (Set-Cookie %q), want 403 and no cookie change", h, out.Status, out.Header.Get("Set-Cookie"))
		}
	}
	if me := b.me(t); me.Status != http.StatusOK {
		t.Fatalf("me after a refused cross-site logout = %d, want 200", me.Status)
	}

	req, _ := http.NewRequest(http.MethodPost, e.URL+"/saml/"+tenant+"/logout", nil)
	req.Header.Set("Origin", e.URL) // this site's own form
	if out := send(t, b.client, req); out.Status != http.StatusNoContent {
		t.Fatalf("logout = %d %s", out.Status, out.Body)
	}
	if me := b.me(t); me.Status != http.StatusUnauthorized {
		t.Fatalf("me after logout = %d", me.Status)
	}
	// The server forgot the session: the old cookie value is worthless.
	req, _ = http.NewRequest(http.MethodGet, e.URL+"/api/v1/me", nil)
	req.AddCookie(&http.Cookie{Name: stolen.Name, Value: stolen.Value})
	if out := send(t, http.DefaultClient, req); out.Status != http.StatusUnauthorized {
		t.Fatalf("me with the old cookie = %d", out.Status)
	}
}

func TestSSO_LoginReturnTo(t *testing.T) {
	t.Parallel()
	e := newSSOEnv(t)
	tenant, token := e.company(t, "Acme", samltest.Entra)
	e.provision(t, token, "ada@contoso.example")
	for _, bad := range []string{"//evil.example", `/\evil.example`, "https://evil.example/", "javascript:alert(1)",
		"evil", "/%2F%2Fevil.example", "/a\r\nSet-Cookie: x=y"} {
		res := e.browser(t).get(t, "/saml/"+tenant+"/login?return_to="+url.QueryEscape(bad))
		if res.Status != http.StatusBadRequest {
			t.Errorf("return_to %q: %d %s, want 400", bad, res.Status, res.Header.Get("Location"))
		}
	}
	b := e.browser(t)
	loc := b.startLogin(t, tenant, "/reports/7?tab=a")
	res := b.post(t, e.idps[samltest.Entra].Login(t, loc, e.spMetadata(t, tenant), "ada@contoso.example"))
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/reports/7?tab=a" {
		t.Fatalf("ACS = %d %q", res.Status, res.Header.Get("Location"))
	}
	// A forged RelayState in the post does not choose the landing page of an SP-initiated login.
	b = e.browser(t)
	loc = b.startLogin(t, tenant, "")
	r := e.idps[samltest.Entra].Login(t, loc, e.spMetadata(t, tenant), "ada@contoso.example")
	res = b.post(t, r)
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("ACS = %d %q, want 303 /", res.Status, res.Header.Get("Location"))
	}
}

func TestSSO_LoginWithoutIdP(t *testing.T) {
	t.Parallel()
	e := newSSOEnv(t)
	tenant, token := e.company(t, "Acme", "")
	if res := e.browser(t).get(t, "/saml/"+tenant+"/login"); res.Status != http.StatusNotFound {
		t.Errorf("login without IdP metadata = %d %s, want 404", res.Status, res.Body)
	}
	if res := e.browser(t).get(t, "/saml/no-such-company/login"); res.Status != http.StatusNotFound {
		t.Errorf("login of an unknown company = %d, want 404", res.Status)
	}
	// Disabling SSO refuses logins again.
	if res := e.putRaw(t, e.key(tenant), "/api/v1/sso/idp-metadata", e.idps[samltest.Entra].Metadata); res.Status != http.StatusNoContent {
		t.Fatalf("upload: %d %s", res.Status, res.Body)
	}
	e.provision(t, token, "ada@contoso.example")
	b := e.browser(t)
	loc := b.startLogin(t, tenant, "")
	r := e.idps[samltest.Entra].Login(t, loc, e.spMetadata(t, tenant), "ada@contoso.example")
	if res := e.do(t, e.key(tenant), "DELETE", "/api/v1/sso", ""); res.Status != http.StatusNoContent {
		t.Fatalf("disable: %d %s", res.Status, res.Body)
	}
	if res := b.post(t, r); res.Status != http.StatusForbidden {
		t.Fatalf("ACS after disabling = %d, want 403", res.Status)
	}
	if got := e.lastReason(t, tenant, domain.SignInNoUser); got != domain.SignInSSONotConfigured {
		t.Errorf("reason = %q", got)
	}
	if res := e.browser(t).get(t, "/saml/"+tenant+"/login"); res.Status != http.StatusNotFound {
		t.Errorf("login after disabling = %d, want 404", res.Status)
	}
	// An unknown company's ACS gets the same page, and no history is made up for it.
	if res := b.post(t, samltest.Response{ACSURL: e.URL + "/saml/nope/acs", Form: r.Form}); res.Status != http.StatusForbidden {
		t.Errorf("unknown company's ACS = %d", res.Status)
	}
}

func TestSSO_SPMetadata(t *testing.T) {
	t.Parallel()
	e := newSSOEnv(t)
	tenant, _ := e.company(t, "Acme", "")
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/saml/"+tenant+"/metadata", nil)
	req.Host = "attacker.example" // must not leak into any URL
	res := send(t, http.DefaultClient, req)
	if res.Status != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/samlmetadata+xml") {
		t.Fatalf("metadata = %d %s", res.Status, res.Header.Get("Content-Type"))
	}
	var md struct {
		EntityID string `xml:"entityID,attr"`
		SP       struct {
			KeyDescriptors []struct {
				Use  string `xml:"use,attr"`
				Cert string `xml:"KeyInfo>X509Data>X509Certificate"`
			} `xml:"KeyDescriptor"`
			NameIDFormat string `xml:"NameIDFormat"`
			ACS          []struct {
				Binding  string `xml:"Binding,attr"`
				Location string `xml:"Location,attr"`
			} `xml:"AssertionConsumerService"`
		} `xml:"SPSSODescriptor"`
	}
	if err := xml.Unmarshal(res.Body, &md); err != nil {
		t.Fatal(err)
	}
	base := e.URL + "/saml/" + tenant
	if md.EntityID != base+"/metadata" {
		t.Errorf("entityID = %q", md.EntityID)
	}
	if len(md.SP.ACS) != 1 || md.SP.ACS[0].Binding != "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" || md.SP.ACS[0].Location != base+"/acs" {
		t.Errorf("ACS = %+v", md.SP.ACS)
	}
	if md.SP.NameIDFormat != "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" {
		t.Errorf("NameIDFormat = %q", md.SP.NameIDFormat)
	}
	if len(md.SP.KeyDescriptors) == 0 || md.SP.KeyDescriptors[0].Cert == "" {
		t.Errorf("no SP certificate: %+v", md.SP.KeyDescriptors)
	}
	if bytes.Contains(res.Body, []byte("attacker.example")) {
		t.Error("the Host header leaked into the metadata")
	}
	if res := e.do(t, "", "GET", "/saml/no-such-company/metadata", ""); res.Status != http.StatusNotFound {
		t.Errorf("unknown company = %d", res.Status)
	}
}

func TestSSO_MetadataUpload(t *testing.T) {
	t.Parallel()
	e := newSSOEnv(t)
	tenant, _ := e.company(t, "Acme", "")

	st := e.do(t, e.key(tenant), "GET", "/api/v1/sso", "")
	if st.Status != http.StatusOK || st.JSON(t)["enabled"] != false || st.JSON(t)["spEntityId"] != e.URL+"/saml/"+tenant+"/metadata" {
		t.Fatalf("status before upload: %d %s", st.Status, st.Body)
	}

	entra := e.idps[samltest.Entra].Metadata
	noCert := bytes.ReplaceAll(entra, []byte(`<KeyDescriptor use="signing">`), []byte(`<KeyDescriptor use="encryption">`))
	spMD := e.spMetadata(t, tenant)
	i := bytes.Index(entra, []byte("<IDPSSODescriptor"))
	badCert := append(append([]byte{}, entra[:i]...), bytes.Replace(entra[i:], []byte("<X509Certificate>MII"), []byte("<X509Certificate>MIA"), 1)...)
	refusals := []struct {
		name   string
		body   []byte
		status int
		detail string
	}{
		{"Garbage", []byte("this is not XML at all"), http.StatusBadRequest, "not XML"},
		{"Empty", nil, http.StatusBadRequest, "empty"},
		{"JSON", []byte(`{"metadata":"x"}`), http.StatusBadRequest, "not"},
		{"SPDescriptor", spMD, http.StatusBadRequest, "service provider metadata"},
		{"NoCertificate", noCert, http.StatusBadRequest, "no signing certificate"},
		{"BadCertificate", badCert, http.StatusBadRequest, "cannot be parsed"},
		{"TenMegabytes", bytes.Repeat([]byte("<!-- padding -->"), 10<<20/16), http.StatusRequestEntityTooLarge, "exceeds"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			res := e.putRaw(t, e.key(tenant), "/api/v1/sso/idp-metadata", tt.body)
			if res.Status != tt.status {
				t.Fatalf("status = %d %s, want %d", res.Status, res.Body, tt.status)
			}
			m := res.JSON(t)
			if d, _ := m["error"].(string); d == "" || !strings.Contains(d, tt.detail) || m["code"] == "" {
				t.Errorf("body = %s, want an error saying %q", res.Body, tt.detail)
			}
		})
	}
	if res := e.putRaw(t, "wrong-token", "/api/v1/sso/idp-metadata", entra); res.Status != http.StatusUnauthorized {
		t.Errorf("wrong token = %d", res.Status)
	}

	if res := e.putRaw(t, e.key(tenant), "/api/v1/sso/idp-metadata", entra); res.Status != http.StatusNoContent {
		t.Fatalf("upload Entra metadata: %d %s", res.Status, res.Body)
	}
	st = e.do(t, e.key(tenant), "GET", "/api/v1/sso", "")
	var got struct {
		Enabled      bool     `json:"enabled"`
		SPEntityID   string   `json:"spEntityId"`
		ACSURL       string   `json:"acsUrl"`
		IDPEntityID  string   `json:"idpEntityId"`
		Fingerprints []string `json:"fingerprints"`
		Certificates []struct {
			SHA256   string    `json:"sha256"`
			NotAfter time.Time `json:"notAfter"`
		} `json:"certificates"`
		AllowIDPInitiated bool `json:"allowIdpInitiated"`
	}
	if err := json.Unmarshal(st.Body, &got); err != nil {
		t.Fatal(err)
	}
	_, c1 := samltest.KeyPair(t, "entra-idp-1")
	_, c2 := samltest.KeyPair(t, "entra-idp-2")
	if !got.Enabled || got.IDPEntityID != e.idps[samltest.Entra].EntityID || got.ACSURL != e.URL+"/saml/"+tenant+"/acs" ||
		got.AllowIDPInitiated || !slices.Equal(got.Fingerprints, []string{saml.Fingerprint(c2.Raw), saml.Fingerprint(c1.Raw)}) ||
		len(got.Certificates) != 2 || !got.Certificates[1].NotAfter.Equal(c1.NotAfter) {
		t.Errorf("status = %s", st.Body)
	}
	events, _, err := e.Store.Load(context.Background(), domain.TenantID(tenant), domain.KindTenant, tenant)
	if err != nil {
		t.Fatal(err)
	}
	last := events[len(events)-1]
	if md, ok := last.Data.(domain.IDPMetadataSet); last.Type != domain.EventTenantIDPMetadataSet || !ok || md.Metadata != string(entra) ||
		len(md.Certificates) != 2 || md.EntityID != e.idps[samltest.Entra].EntityID {
		t.Errorf("last tenant event = %s %T", last.Type, last.Data)
	}
	// The same upload again changes nothing.
	if res := e.putRaw(t, e.key(tenant), "/api/v1/sso/idp-metadata", entra); res.Status != http.StatusNoContent {
		t.Fatalf("upload again: %d", res.Status)
	}
	if _, v, _ := e.Store.Load(context.Background(), domain.TenantID(tenant), domain.KindTenant, tenant); v != last.Version {
		t.Errorf("re-uploading the same metadata appended an event")
	}

	for _, bad := range []string{`{"allowIdpInitiated":"yes"}`, `{"other":true}`, `[]`} {
		if res := e.do(t, e.key(tenant), "PUT", "/api/v1/sso/settings", bad); res.Status != http.StatusBadRequest {
			t.Errorf("settings %s = %d", bad, res.Status)
		}
	}
	if res := e.do(t, e.key(tenant), "DELETE", "/api/v1/sso", ""); res.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", res.Status, res.Body)
	}
	st = e.do(t, e.key(tenant), "GET", "/api/v1/sso", "")
	if m := st.JSON(t); m["enabled"] != false || m["idpEntityId"] != nil {
		t.Errorf("status after delete = %s", st.Body)
	}
}

func TestSSO_HTTPSCookies(t *testing.T) {
	t.Parallel()
	const base = "https://idledger.example"
	e := newSSOEnvAt(t, base)
	tenant, token := e.company(t, "Acme", samltest.Entra)
	e.provision(t, token, "ada@contoso.example")
	b := e.browser(t)
	res := b.get(t, "/saml/"+tenant+"/login?return_to=/app")
	if res.Status != http.StatusFound {
		t.Fatalf("login = %d %s", res.Status, res.Body)
	}
	cookies := (&http.Response{Header: res.Header}).Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies = %v", res.Header.Values("Set-Cookie"))
	}
	binding := cookies[0]
	// The IdP posts cross-site: under https the binding cookie must be SameSite=None; Secure.
	if binding.Name != "idl_saml_binding" || !binding.Secure || !binding.HttpOnly || binding.SameSite != http.SameSiteNoneMode ||
		binding.Path != "/saml/"+tenant+"/" {
		t.Errorf("binding cookie = %s", res.Header.Get("Set-Cookie"))
	}
	r := e.idps[samltest.Entra].Login(t, res.Header.Get("Location"), e.spMetadata(t, tenant), "ada@contoso.example")
	if r.ACSURL != base+"/saml/"+tenant+"/acs" {
		t.Fatalf("ACS URL = %s", r.ACSURL)
	}
	// The test server speaks http; post as the proxy would forward it.
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/saml/"+tenant+"/acs", strings.NewReader(r.Form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: binding.Name, Value: binding.Value})
	out := send(t, b.client, req)
	ck := sessionCookieOf(out)
	if out.Status != http.StatusSeeOther || ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode {
		t.Fatalf("ACS = %d, session cookie %v", out.Status, out.Header.Values("Set-Cookie"))
	}
	if st := e.do(t, e.key(tenant), "GET", "/api/v1/sso", ""); st.JSON(t)["acsUrl"] != base+"/saml/"+tenant+"/acs" {
		t.Errorf("status = %s", st.Body)
	}
}

func TestSSO_ACSBodyLimit(t *testing.T) {
	t.Parallel()
	e := newSSOEnv(t)
	tenant, _ := e.company(t, "Acme", samltest.Entra)
	form := url.Values{"SAMLResponse": {strings.Repeat("A", 300<<10)}}
	res := e.browser(t).post(t, samltest.Response{ACSURL: e.URL + "/saml/" + tenant + "/acs", Form: form})
	if res.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("ACS with a 300 KiB body = %d, want 413", res.Status)
	}
}

// BenchmarkACS measures the whole ACS: the HTTP post, taking the pending request, crewjam's
// verification (XML round trip, RSA-SHA256 signature, conditions), the replay cache, the login
// lookup, the login history append and the session, on the embedded JetStream (no fsync) and
// bbolt. Making the login and the IdP's response is not measured.
func BenchmarkACS(b *testing.B) {
	e := newSSOEnv(b)
	tenant, token := e.company(b, "Acme", samltest.Entra)
	e.provision(b, token, "ada@contoso.example")
	md := e.spMetadata(b, tenant)
	idp := e.idps[samltest.Entra]
	br := e.browser(b)
	for b.Loop() {
		b.StopTimer()
		loc := br.startLogin(b, tenant, "/app")
		r := idp.Login(b, loc, md, "ada@contoso.example")
		b.StartTimer()
		if res := br.post(b, r); res.Status != http.StatusSeeOther {
			b.Fatalf("ACS = %d", res.Status)
		}
	}
}
