package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
)

// The setup page (/console/{tenant}): the steps of connecting Microsoft Entra ID, each with
// its live state (handleConsoleStatus, polled by console.js).

// certWarning is how long before its expiry an IdP certificate is flagged.
const certWarning = 30 * 24 * time.Hour

// setupData is the setup page's data.
type setupData struct {
	SSO        ssoStatus
	Certs      []setupCert
	TenantURL  string
	Status     consoleStatus
	HasToken   bool
	NewToken   string // the SCIM token just generated: shown this once
	GroupsOff  bool
	SSOEnabled bool
	// PublicHTTPS: the base URL is https and not a loopback address, as Entra needs it.
	PublicHTTPS bool
}

type setupCert struct {
	ssoCertificate
	Soon bool // expires within certWarning
}

// consoleStatus is the live part of the setup page, also served as JSON (GET .../status).
type consoleStatus struct {
	Mode         string              `json:"mode"`
	Users        int                 `json:"users"`
	Active       int                 `json:"activeUsers"`
	Inactive     int                 `json:"inactiveUsers"`
	Groups       int                 `json:"groups"`
	AdminPresent bool                `json:"adminPresent"`
	ConnectedAt  *time.Time          `json:"connectedAt"`
	LastCycle    *audit.CycleSummary `json:"lastCycle"`
	LastFailures int                 `json:"lastCycleFailures"`
	// CyclesCounting: the last cycle's figures are being computed for the first time
	// (console_cycles.go); LastCycle is then nil whether or not there is one.
	CyclesCounting bool        `json:"cyclesCounting"`
	TestSignIn     *testSignIn `json:"testSignIn"`
	SSOEnabled     bool        `json:"ssoEnabled"`
	LastSCIMWrite  *time.Time  `json:"lastScimWrite"`
}

// scimUseID names a SCIM token in the key usage records: its hash prefix, so a rotated token
// starts again from "Waiting for Test Connection…".
func scimUseID(tokenHash string) string {
	if len(tokenHash) > 16 {
		tokenHash = tokenHash[:16]
	}
	return "scim-" + tokenHash
}

// touchSCIMToken records that the company's SCIM token (of hash tokenHash) authenticated a
// request now, at most once a minute per instance (keyUsage): the setup page's "Connected"
// line. Entra's Test Connection only reads, so writes alone would not show it.
func (s *Server) touchSCIMToken(ctx context.Context, tenant domain.TenantID, tokenHash string) {
	s.usage.touch(ctx, credential{tenant: tenant, key: domain.APIKey{ID: scimUseID(tokenHash)}}, s.svc.Now())
}

func (s *Server) consoleStatusOf(ctx context.Context, t domain.Tenant) (consoleStatus, error) {
	stats, err := s.read.ProvisioningStats(ctx, t.ID)
	if err != nil {
		return consoleStatus{}, err
	}
	st := consoleStatus{Mode: t.Provisioning.Mode(), Users: stats.Users, Active: stats.ActiveUsers,
		Inactive: stats.InactiveUsers, Groups: stats.Groups, AdminPresent: stats.Admins > 0,
		SSOEnabled: t.SSO.Enabled()}
	if !stats.LastSCIMWrite.IsZero() {
		w := stats.LastSCIMWrite
		st.LastSCIMWrite = &w
	}
	if t.SCIMTokenHash != "" {
		used, err := s.usage.lastUsed(ctx, t.ID, scimUseID(t.SCIMTokenHash))
		if err != nil {
			s.log.Warn("scim token last use unknown", "tenant", t.ID, "err", err)
		}
		st.ConnectedAt = used
	}
	last, ready := s.lastCycleRead(ctx, t.ID) // console_cycles.go
	st.CyclesCounting = !ready
	if last != nil {
		st.LastCycle = last
		for _, n := range last.Failures {
			st.LastFailures += n
		}
	}
	st.TestSignIn = s.lastTestSignIn(ctx, t.ID)
	return st, nil
}

func (s *Server) setupData(c echo.Context) (setupData, error) {
	ctx := c.Request().Context()
	t, err := s.read.FindTenant(ctx, tenantOf(c))
	if err != nil {
		return setupData{}, err
	}
	st, err := s.consoleStatusOf(ctx, t)
	if err != nil {
		return setupData{}, err
	}
	d := setupData{SSO: s.ssoStatusOf(t), TenantURL: s.cfg.BaseURL + "/scim/v2", Status: st,
		HasToken: t.SCIMTokenHash != "", GroupsOff: !t.Features.Groups(), SSOEnabled: t.SSO.Enabled()}
	if u, err := url.Parse(s.cfg.BaseURL); err == nil {
		host := u.Hostname()
		d.PublicHTTPS = u.Scheme == "https" && host != "localhost" && !strings.HasPrefix(host, "127.") && host != "::1"
	}
	now := s.svc.Now()
	for _, cert := range d.SSO.Certificates {
		d.Certs = append(d.Certs, setupCert{ssoCertificate: cert, Soon: cert.NotAfter.Sub(now) < certWarning})
	}
	return d, nil
}

func (s *Server) handleConsoleSetup(c echo.Context) error {
	d, err := s.setupData(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "setup", "Connect Microsoft Entra ID", "setup", d)
}

// handleConsoleStatus serves GET /console/{tenant}/status: the live state of the setup page.
func (s *Server) handleConsoleStatus(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.read.FindTenant(ctx, tenantOf(c))
	if err != nil {
		return err
	}
	st, err := s.consoleStatusOf(ctx, t)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusOK, st)
}

// handleConsoleUploadMetadata serves POST /console/{tenant}/sso/metadata: the form's file
// "metadata" is the IdP's Federation Metadata XML, trusted as PUT /api/v1/sso/idp-metadata
// trusts it.
func (s *Server) handleConsoleUploadMetadata(c echo.Context) error {
	if s.sso == nil {
		return s.ssoOff()
	}
	fh, err := c.FormFile("metadata")
	if err != nil {
		if errors.Is(err, http.ErrMissingFile) {
			return domain.Errorf(domain.ErrInvalid, "choose the Federation Metadata XML file downloaded from Entra first")
		}
		return bodyError(err)
	}
	f, err := fh.Open()
	if err != nil {
		return bodyError(err)
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, domain.MaxIDPMetadataSize+1))
	if err != nil {
		return bodyError(err)
	}
	if len(body) > domain.MaxIDPMetadataSize {
		return domain.Errorf(domain.ErrInvalid, "the file is larger than %d bytes: it is not a Federation Metadata XML", domain.MaxIDPMetadataSize)
	}
	md, err := s.sso.SAML.CheckIDPMetadata(body)
	if err != nil {
		return err
	}
	t, err := s.svc.SetIDPMetadata(c.Request().Context(), tenantOf(c), md)
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, t.Version); err != nil {
		return err
	}
	return seeOther(c, "#sso", "metadata")
}

// handleConsoleGenerateToken serves POST /console/{tenant}/scim-token: a new SCIM token (the
// old one stops working), shown in this answer only. It is the one action answered with a
// page instead of a redirect: the secret is never stored to be shown later.
func (s *Server) handleConsoleGenerateToken(c echo.Context) error {
	t, err := s.read.FindTenant(c.Request().Context(), tenantOf(c))
	if err != nil {
		return err
	}
	if t.SCIMTokenHash != "" && c.FormValue("confirm") != "yes" {
		return domain.Errorf(domain.ErrInvalid, "a secret token exists: tick the confirmation to replace it (Entra must then be given the new one)")
	}
	t, token, err := s.svc.RotateSCIMToken(c.Request().Context(), t.ID)
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, t.Version); err != nil {
		return err
	}
	s.log.Info("scim token rotated", "tenant", t.ID, "token_sha256", t.SCIMTokenHash[:16],
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	d, err := s.setupData(c)
	if err != nil {
		return err
	}
	d.NewToken = token
	return s.render(c, http.StatusOK, "setup", "Connect Microsoft Entra ID", "setup", d)
}

// testSignIn is the outcome of the console's last Test sign-in, kept in the session store
// for testSignInTTL so that any instance shows it.
type testSignIn struct {
	Started time.Time `json:"started"`
	Done    bool      `json:"done"`
	OK      bool      `json:"ok"`
	NameID  string    `json:"nameId,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at,omitzero"`
}

const testSignInTTL = 15 * time.Minute

func testSignInKey(tenant domain.TenantID) string {
	sum := sha256.Sum256([]byte(tenant))
	return "ct." + hex.EncodeToString(sum[:16])
}

func (s *Server) lastTestSignIn(ctx context.Context, tenant domain.TenantID) *testSignIn {
	if s.sso == nil {
		return nil
	}
	raw, _, err := s.sso.Sessions.Get(ctx, testSignInKey(tenant))
	if err != nil {
		if !errors.Is(err, domain.ErrNotFound) {
			s.log.Warn("test sign-in state unknown", "tenant", tenant, "err", err)
		}
		return nil
	}
	var ts testSignIn
	if json.Unmarshal(raw, &ts) != nil {
		return nil
	}
	return &ts
}

func (s *Server) storeTestSignIn(ctx context.Context, tenant domain.TenantID, ts testSignIn) error {
	b, _ := json.Marshal(ts)
	k := testSignInKey(tenant)
	if err := s.sso.Sessions.Delete(ctx, k, 0); err != nil && !errors.Is(err, domain.ErrNotFound) {
		return err
	}
	return s.sso.Sessions.Create(ctx, k, b, testSignInTTL)
}

// noteTestSignInRefused records a refused sign-in as the outcome of a Test sign-in under way,
// with the refusal's reason (and nothing if none is under way).
func (s *Server) noteTestSignInRefused(ctx context.Context, tenant domain.TenantID, e *domain.SignInError) {
	ts := s.lastTestSignIn(ctx, tenant)
	if ts == nil || ts.Done {
		return
	}
	ts.Done, ts.OK, ts.NameID, ts.At = true, false, e.NameID, s.sso.Now().UTC()
	ts.Reason = string(e.Reason)
	if e.Err != nil {
		ts.Reason += ": " + e.Err.Error()
	}
	if err := s.storeTestSignIn(context.WithoutCancel(ctx), tenant, *ts); err != nil {
		s.log.Warn("test sign-in outcome lost", "tenant", tenant, "err", err)
	}
}

// handleConsoleTestSignIn serves GET /console/{tenant}/test-signin (opened in a new tab by
// the Test sign-in button): an SP-initiated sign-in that comes back to .../test-signin/done.
func (s *Server) handleConsoleTestSignIn(c echo.Context) error {
	if s.sso == nil {
		return s.ssoOff()
	}
	tenant := tenantOf(c)
	if err := s.storeTestSignIn(c.Request().Context(), tenant, testSignIn{Started: s.sso.Now().UTC()}); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/saml/"+string(tenant)+"/login?return_to="+
		url.QueryEscape("/console/"+string(tenant)+"/test-signin/done"))
}

// handleConsoleTestSignInDone serves GET /console/{tenant}/test-signin/done, where a
// successful Test sign-in lands: it names who signed in and records the outcome for the
// setup page.
func (s *Server) handleConsoleTestSignInDone(c echo.Context) error {
	if s.sso == nil {
		return s.ssoOff()
	}
	ctx := c.Request().Context()
	u, err := s.sessionUser(c)
	if err != nil {
		return domain.Errorf(domain.ErrUnauthorized, "the test sign-in did not complete: no signed-in user came back from the identity provider")
	}
	if u.Tenant != tenantOf(c) {
		return domain.Errorf(domain.ErrForbidden, "the signed-in user belongs to another company")
	}
	ts := testSignIn{Started: s.sso.Now().UTC(), Done: true, OK: true, NameID: u.UserName(), At: s.sso.Now().UTC()}
	if prev := s.lastTestSignIn(ctx, u.Tenant); prev != nil {
		ts.Started = prev.Started
	}
	if err := s.storeTestSignIn(ctx, u.Tenant, ts); err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "testsignin", "Test sign-in succeeded", "setup", ts)
}
