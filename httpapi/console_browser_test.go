package httpapi_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/idledger/idledger/domain/audit"
	"github.com/idledger/idledger/httpapi"
	"github.com/idledger/idledger/httpapi/webhook"
	"github.com/idledger/idledger/saml/samltest"
)

// The company console driven by headless Chromium (Debian package chromium) through
// chromedp, against the real server: the whole Entra setup of docs (README, "Connect
// Microsoft Entra ID"), finding every control by its visible label as a person would.

// browserWait bounds each step (a wait for the page, a screenshot): long, for busy CI
// machines; the live refresh polls every 2 s.
const browserWait = time.Minute

// chromiumPath returns the Chromium binary, or skips the test (fails it in CI, where the
// browser must be installed: .ci/run installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium found: CI must run the browser tests (apt-get install -y chromium)")
	}
	t.Skip("browser tests need Chromium: install the Debian package chromium (apt-get install -y chromium)")
	return ""
}

// consoleBrowser is a headless Chromium whose requests to Entra's sign-in host reach idp,
// a local TLS server standing in for login.microsoftonline.com.
type consoleBrowser struct {
	ctx     context.Context
	t       *testing.T
	screens string
}

func newConsoleBrowser(t *testing.T, idp *httptest.Server) *consoleBrowser {
	t.Helper()
	exe := chromiumPath(t)
	idpHost := strings.TrimPrefix(idp.URL, "https://")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("host-resolver-rules", "MAP login.microsoftonline.com "+idpHost),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium %s: %v", exe, err)
	}
	dir := filepath.Join("..", "bin", "screens")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &consoleBrowser{ctx: ctx, t: t, screens: dir}
}

// run runs actions with a deadline, failing the test with what step failed.
func (b *consoleBrowser) run(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	runGet(b, step, chromedp.Steps(actions...))
}

// runGet runs one action with a deadline and returns its value, failing the test with the step
// and the page it was on.
func runGet[T any](b *consoleBrowser, step string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		dctx, dcancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer dcancel()
		loc, _ := chromedp.Run(dctx, chromedp.Location())
		body, _ := chromedp.Run(dctx, chromedp.Text(chromedp.CSS("body")))
		b.t.Fatalf("%s: %v\nat %s:\n%s", step, err, loc, body)
	}
	return v
}

// screenshot saves the page as bin/screens/<name>.png.
func (b *consoleBrowser) screenshot(name string) {
	b.t.Helper()
	png := runGet(b, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(b.screens, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// xpathString quotes s for XPath 1.0.
func xpathString(s string) string {
	if !strings.Contains(s, "'") {
		return "'" + s + "'"
	}
	return `concat('` + strings.ReplaceAll(s, `'`, `', "'", '`) + `')`
}

// labelled is the XPath of the control whose <label> reads label.
func labelled(label string) string {
	return `//*[@id=//label[normalize-space()=` + xpathString(label) + `]/@for]`
}

// button is the XPath of the button that reads text.
func button(text string) string {
	return `//button[normalize-space()=` + xpathString(text) + `]`
}

// link is the XPath of the link that reads text.
func link(text string) string {
	return `//a[normalize-space()=` + xpathString(text) + `]`
}

// withText is the XPath of an element of the main content that contains text.
func withText(text string) string {
	return `//main//*[contains(normalize-space(), ` + xpathString(text) + `)]`
}

func (b *consoleBrowser) value(label string) string {
	b.t.Helper()
	return runGet(b, "read "+label, chromedp.Value(labelled(label)))
}

func (b *consoleBrowser) click(xpath string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(xpath, chromedp.NodeVisible)
}

func (b *consoleBrowser) waitText(text string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(withText(text))
}

// spValues reads the entityID and the HTTP-POST ACS location of SP metadata.
func spValues(t *testing.T, md []byte) (entityID, acs string) {
	t.Helper()
	var doc struct {
		EntityID string `xml:"entityID,attr"`
		SP       struct {
			ACS []struct {
				Binding  string `xml:"Binding,attr"`
				Location string `xml:"Location,attr"`
			} `xml:"AssertionConsumerService"`
		} `xml:"SPSSODescriptor"`
	}
	if err := xml.Unmarshal(md, &doc); err != nil {
		t.Fatalf("SP metadata: %v", err)
	}
	for _, a := range doc.SP.ACS {
		if strings.HasSuffix(a.Binding, "HTTP-POST") {
			acs = a.Location
		}
	}
	return doc.EntityID, acs
}

// testIDPServer is Entra's sign-in page for the browser: it answers the AuthnRequest with
// the test IdP's signed response for nameID, in a form that posts itself to the ACS.
func testIDPServer(t *testing.T, e *ssoEnv, tenant *string, nameID string) *httptest.Server {
	idp := e.idps[samltest.Entra]
	return httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		loginURL := "https://login.microsoftonline.com" + r.URL.RequestURI()
		res := idp.Login(t, loginURL, e.spMetadata(t, *tenant), nameID)
		var inputs strings.Builder
		for k, vs := range res.Form {
			for _, v := range vs {
				fmt.Fprintf(&inputs, `<input type="hidden" name="%s" value="%s">`, html.EscapeString(k), html.EscapeString(v))
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><body><form method="post" action="%s">%s<button>Continue</button></form>`+
			`<script>document.forms[0].submit()</script></body></html>`, html.EscapeString(res.ACSURL), inputs.String())
	}))
}

func TestConsoleBrowser_EntraSetup(t *testing.T) {
	var deliverer *webhook.Deliverer
	env := buildSSOEnv(t, "", func(cfg *httpapi.Config, e *testEnv) {
		cfg.Audit = &audit.Service{Log: e.Store, History: e.Store, Requests: e.Store, Now: e.Clock.Now, NewID: e.Service.NewID}
		deliverer = configureWebhooks(t, context.Background(), cfg, e, true, time.Hour)
	})
	runDeliverer(t, deliverer)
	tenant, _ := env.tenant(t, "Contoso")
	const adminName = "ada@contoso.example"
	idpSrv := testIDPServer(t, env, &tenant, adminName)
	defer idpSrv.Close()
	b := newConsoleBrowser(t, idpSrv)

	// Setup link → the setup page.
	b.openConsole(env, tenant)
	b.run("setup page", chromedp.WaitVisible(`//h1[normalize-space()='Connect Microsoft Entra ID']`),
		b.waitText("Waiting for Test Connection…"), b.waitText("At least one organization admin should be present"),
		b.waitText("Provisioning occurs every 40 minutes"))
	b.screenshot("01-setup")

	// Copy the two SAML values; they are those of the SP metadata.
	wantEntity, wantACS := spValues(t, env.spMetadata(t, tenant))
	if got := b.value("Identifier (Entity ID)"); got != wantEntity {
		t.Errorf("Identifier (Entity ID) = %q, metadata entityID %q", got, wantEntity)
	}
	if got := b.value("Reply URL (Assertion Consumer Service URL)"); got != wantACS {
		t.Errorf("Reply URL = %q, metadata ACS %q", got, wantACS)
	}
	origin := env.URL
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(b.ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
			Setting:    cdpbrowser.PermissionSettingGranted, Origin: origin}); err != nil {
			t.Fatalf("allow %s: %v", name, err)
		}
	}
	for label, want := range map[string]string{"Identifier (Entity ID)": wantEntity, "Reply URL (Assertion Consumer Service URL)": wantACS} {
		copyButton := `//div[input[@id=//label[normalize-space()=` + xpathString(label) + `]/@for]]/button`
		b.run("copy "+label, b.click(copyButton+`[normalize-space()='Copy']`), chromedp.WaitVisible(copyButton+`[normalize-space()='Copied']`))
		clip := runGet(b, "read the clipboard", chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
		if clip != want {
			t.Errorf("clipboard after Copy of %s = %q, want %q", label, clip, want)
		}
	}

	// Upload the test IdP's Federation Metadata XML.
	mdPath := filepath.Join(t.TempDir(), "Contoso.xml")
	if err := os.WriteFile(mdPath, env.idps[samltest.Entra].Metadata, 0o600); err != nil {
		t.Fatal(err)
	}
	b.run("upload metadata",
		chromedp.SetUploadFiles(labelled("Federation Metadata XML"), []string{mdPath}),
		b.click(button("Upload")),
		b.waitText("Federation Metadata XML uploaded"),
		b.waitText(env.idps[samltest.Entra].EntityID))
	b.screenshot("02-sso-uploaded")

	// Generate the secret token (replacing the one the company was created with).
	b.run("generate token",
		b.click(labelled("Replace the current secret token: Entra stops provisioning until it is given the new one")),
		b.click(button("Generate secret token")),
		chromedp.WaitVisible(chromedp.ID("secret-token")))
	token := b.value("Secret Token")
	tokenID := runGet(b, "token element", chromedp.AttributeValue(labelled("Secret Token"), "id")).Value
	if tokenID != "secret-token" || !strings.HasPrefix(token, "idl_scim_") {
		t.Fatalf("Secret Token: id %q value %q", tokenID, token)
	}
	tenantURL := b.value("Tenant URL")
	if tenantURL != env.URL+"/scim/v2" {
		t.Errorf("Tenant URL = %q, want %q", tenantURL, env.URL+"/scim/v2")
	}
	b.screenshot("03-secret-token")
	runGet(b, "mark the page", chromedp.Evaluate[bool](`window.notReloaded = true`))

	// Entra's Test Connection, then a provisioning cycle with that token.
	c := newECClient(env.testEnv, token)
	c.base = tenantURL
	if _, err := c.expect("GET", ecFilter("Users", `userName eq "probe@contoso.example"`), nil, 200); err != nil {
		t.Fatal(err)
	}
	b.run("connected", b.waitText("Connected: last request from Microsoft Entra at"))
	users := []*ecUser{
		{userName: adminName, externalID: "e-1", displayName: "Ada Lovelace", givenName: "Ada", familyName: "Lovelace", email: adminName, department: "Research", active: true},
		{userName: "grace@contoso.example", externalID: "e-2", displayName: "Grace Hopper", givenName: "Grace", familyName: "Hopper", email: "grace@contoso.example", department: "Research", active: true},
		{userName: "alan@contoso.example", externalID: "e-3", displayName: "Alan Turing", givenName: "Alan", familyName: "Turing", email: "alan@contoso.example", department: "Research", active: true},
	}
	for _, u := range users {
		if err := c.createUser(u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.expect("PATCH", "/Users/"+users[0].id, ecPatch(ecOp("add", "roles", []any{map[string]any{"value": "admin", "primary": true}})), 200, 204); err != nil {
		t.Fatal(err)
	}
	if _, err := c.expect("POST", "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": "Research", "externalId": "g-1",
		"members": []any{map[string]any{"value": users[0].id}, map[string]any{"value": users[1].id}}}, 201); err != nil {
		t.Fatal(err)
	}
	// A request Entra gets wrong: a second user with a taken userName.
	if _, err := c.expect("POST", "/Users", users[1].createBody(), 409); err != nil {
		t.Fatal(err)
	}
	b.run("live counts",
		chromedp.WaitVisible(`//span[@id='live-users' and normalize-space()='3']`),
		chromedp.WaitVisible(`//dd[@id='live-groups' and normalize-space()='1']`),
		chromedp.WaitNotVisible(chromedp.ID("live-admin-warning")))
	if reloaded := runGet(b, "reload?", chromedp.Evaluate[bool](`window.notReloaded !== true`)); reloaded {
		t.Error("the page reloaded: the live state must come without a reload")
	}

	// Test sign-in, in a new tab, comes back here.
	b.run("test sign-in", b.click(link("Test sign-in")),
		b.waitText("Test sign-in succeeded: signed in as "+adminName))
	b.closeOtherTab("/test-signin/done", "04-test-signin-tab")
	b.screenshot("04-connected")

	// Users: managed by Entra.
	b.run("users page", b.click(link("Users")),
		chromedp.WaitVisible(`//h1[normalize-space()='Users']`),
		b.waitText("Users and groups are managed in Microsoft Entra ID"),
		chromedp.WaitVisible(link("grace@contoso.example")))
	if !runGet(b, "invite disabled", chromedp.AttributeValue(button("Invite user"), "disabled")).Exists {
		t.Error("Invite user is not disabled while Entra manages the users")
	}
	b.screenshot("05-users-managed")

	b.run("user detail", b.click(link(adminName)), b.waitText("History"), b.waitText("user.created"))
	b.screenshot("06-user-detail")
	b.run("groups", b.click(link("Groups")), chromedp.WaitVisible(`//h1[normalize-space()='Groups']`),
		b.click(link("Research")), chromedp.WaitVisible(`//h1[normalize-space()='Research']`), b.waitText("grace@contoso.example"))
	b.screenshot("07-group")

	// Provisioning log: the cycle and the failed request.
	b.run("provisioning log", b.click(link("Provisioning logs")),
		chromedp.WaitVisible(`//h1[normalize-space()='Provisioning logs']`),
		chromedp.WaitVisible(`//td/a[normalize-space()='#1']`),
		chromedp.WaitVisible(`//td[normalize-space()='409']`),
		b.waitText("uniqueness"))
	b.screenshot("08-provisioning-log")

	// Stop provisioning, then invite a user here.
	b.run("stop provisioning",
		b.click(labelled("I understand: users and groups become editable here, and Entra's next request takes them back")),
		b.click(button("Stop provisioning")),
		b.waitText("Provisioning stopped"))
	b.run("invite", b.click(link("Users")), chromedp.WaitVisible(`//h1[normalize-space()='Users']`),
		chromedp.WaitVisible(button("Invite user")+`[not(@disabled)]`),
		chromedp.SendKeys(labelled("Email"), "barbara@contoso.example"),
		chromedp.SendKeys(labelled("Name"), "Barbara Liskov"),
		b.click(button("Invite user")),
		b.waitText("User invited."),
		chromedp.WaitVisible(link("barbara@contoso.example")))
	b.screenshot("09-users-manual")

	// Settings: an API key, shown once.
	b.run("settings", b.click(link("Settings")), chromedp.WaitVisible(`//h1[normalize-space()='Settings']`),
		chromedp.SendKeys(labelled("Key name"), "HR sync"),
		b.click(labelled("users:read")),
		b.click(button("Create API key")),
		b.waitText("This key is shown once"))
	if key := b.value(`API key “HR sync”`); !strings.HasPrefix(key, "idl_key_") {
		t.Errorf("new API key = %q", key)
	}
	b.screenshot("10-settings")

	// Settings: a webhook endpoint, its signing secret shown once, then listed.
	hook := newReceiver(t).srv.URL + "/idledger"
	b.run("add webhook", chromedp.SendKeys(labelled("Endpoint URL"), hook),
		chromedp.SendKeys(labelled("Description"), "HR app"),
		b.click(labelled("user.created")), b.click(labelled("user.deactivated")),
		b.click(button("Add endpoint")),
		b.waitText("is shown once"),
		chromedp.WaitVisible(`//main//h3[normalize-space()=`+xpathString(hook)+`]`),
		b.waitText("No deliveries yet."))
	if secret := b.value("Signing secret"); !strings.HasPrefix(secret, "whsec_") {
		t.Errorf("new signing secret = %q", secret)
	}
	b.screenshot("11-settings-webhook")

	// Sign out: the home page says how to get in again, and the console is closed.
	b.run("sign out", b.click(button("Sign out")), chromedp.WaitVisible(`//h1[normalize-space()='idledger']`),
		b.waitText("setup link"))
	b.screenshot("00-home")
	// Back in with single sign-on, as an admin of the company.
	b.run("console after sign-out", chromedp.Navigate(env.URL+"/console/"+tenant),
		chromedp.WaitVisible(`//h1[normalize-space()='Sign in to the console']`),
		b.click(link("Sign in with SSO")),
		chromedp.WaitVisible(`//h1[normalize-space()='Connect Microsoft Entra ID']`))
	if got := env.do(t, "", "GET", "/console/"+tenant, "").Status; got == http.StatusOK {
		t.Errorf("console without a session: %d", got)
	}
}

// closeOtherTab screenshots the tab the console opened (its URL contains path) as name, closes
// it and brings the console's tab to the front again: a background tab renders no frames.
func (b *consoleBrowser) closeOtherTab(path, name string) {
	b.t.Helper()
	targets, err := chromedp.Targets(b.ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, info := range targets {
		if info.Type != "page" || !strings.Contains(info.URL, path) {
			continue
		}
		tab, cancel := chromedp.NewContext(b.ctx, chromedp.WithTargetID(info.TargetID))
		other := &consoleBrowser{ctx: tab, t: b.t, screens: b.screens}
		if _, err := chromedp.Call(tab, page.BringToFront, cdp.Empty{}); err != nil {
			b.t.Fatal(err)
		}
		other.run("the other tab", chromedp.WaitVisible(withText("Signed in as")))
		other.screenshot(name)
		cancel() // closes the tab
		if _, err := chromedp.Call(b.ctx, page.BringToFront, cdp.Empty{}); err != nil {
			b.t.Fatal(err)
		}
		return
	}
	b.t.Fatalf("no tab at %s", path)
}

// openConsole opens a setup link of the company, as the SaaS hands one to its admin: the
// browser lands on the console's setup page, signed in.
func (b *consoleBrowser) openConsole(env *ssoEnv, tenant string) {
	b.t.Helper()
	_, link := env.setupLink(b.t, tenant, "")
	b.run("open the setup link", chromedp.Navigate(link))
}
