package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// SSO is the SAML service provider of every company (a *saml.Service).
type SSO interface {
	// SPMetadata returns a company's SP metadata XML, or an error wrapping ErrNotFound.
	SPMetadata(ctx context.Context, tenant domain.TenantID) ([]byte, error)
	// CheckIDPMetadata reads uploaded IdP metadata, or returns an error wrapping ErrInvalid
	// that says why it cannot be used.
	CheckIDPMetadata(raw []byte) (domain.IDPMetadataSet, error)
	// StartLogin remembers a new AuthnRequest bound to the browser's binding value and returns
	// the IdP URL to redirect to; ErrNotFound without IdP metadata, ErrInvalid for returnTo.
	StartLogin(ctx context.Context, tenant domain.TenantID, binding, returnTo string) (string, error)
	// ACS verifies a posted response; a refusal is a *domain.SignInError.
	ACS(ctx context.Context, tenant domain.TenantID, samlResponse, relayState, binding string) (domain.SignInResult, error)
	// EntityID and ACSURL return a company's SP entity ID and ACS URL.
	EntityID(tenant domain.TenantID) string
	ACSURL(tenant domain.TenantID) string
}

// Records is a shared store of records that expire on their own (eventstore.Records): it
// holds the browser sessions.
type Records interface {
	// Create stores value under key for ttl, or fails with ErrUniqueness if key exists.
	Create(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Get returns a record and its revision, or an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, uint64, error)
	// Delete removes a record (at revision, unless 0), or fails with ErrConflict.
	Delete(ctx context.Context, key string, revision uint64) error
}

// SSOConfig wires single sign-on into a Server.
type SSOConfig struct {
	SAML SSO
	// Sessions holds browser sessions (the IDL_SESSIONS bucket).
	Sessions Records
	// SessionTTL is how long a session lasts (default 8 hours).
	SessionTTL time.Duration
	// Now is the clock (default time.Now); Random the source of session ids and browser
	// bindings (default crypto/rand).
	Now    func() time.Time
	Random io.Reader
	// RefusalBurst and RefusalEvery bound the refused sign-ins naming no user that each
	// company records in the event log: RefusalBurst at once (default 20), then one per
	// RefusalEvery (default 10 s). The others are only logged and counted (sso_refusals.go).
	RefusalBurst int
	RefusalEvery time.Duration
}

// ssoState is the server's single sign-on configuration.
type ssoState struct {
	SSOConfig
	// secure is set when the base URL is https: cookies are then Secure, and the binding
	// cookie SameSite=None so that the IdP's cross-site POST carries it.
	secure bool
	// refusals limits the anonymous refusals recorded in the log, per company.
	refusals *refusalBudget
}

// newSSOState applies cfg's defaults; base is the server's public base URL.
func newSSOState(cfg SSOConfig, base string) *ssoState {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Random == nil {
		cfg.Random = rand.Reader
	}
	return &ssoState{SSOConfig: cfg, secure: strings.HasPrefix(base, "https://"),
		refusals: newRefusalBudget(cfg.RefusalBurst, cfg.RefusalEvery, cfg.Now)}
}

// Cookies.
const (
	// sessionCookie holds the opaque session id (host-only, Path=/).
	sessionCookie = "idl_session"
	// bindingCookie binds a login to the browser that started it (Path=/saml/<tenant>/).
	bindingCookie = "idl_saml_binding"
	// bindingMaxAge outlives the pending request (10 minutes).
	bindingMaxAge = 15 * 60
)

// acsBodyLimit caps a posted SAML response; Entra's are a few KB, tens with many groups.
var acsBodyLimit = limitBody(256 << 10)

func (s *Server) ssoOff() error {
	return domain.Errorf(domain.ErrNotFound, "single sign-on is not available on this server")
}

// handleSAMLMetadata serves GET /saml/:tenant/metadata.
func (s *Server) handleSAMLMetadata(c echo.Context) error {
	if s.sso == nil {
		return s.ssoOff()
	}
	b, err := s.sso.SAML.SPMetadata(c.Request().Context(), domain.TenantID(c.Param("tenant")))
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, "application/samlmetadata+xml; charset=utf-8", b)
}

// handleSAMLLogin serves GET /saml/:tenant/login?return_to=/path: it remembers an
// AuthnRequest bound to this browser and redirects to the IdP (HTTP-Redirect binding).
func (s *Server) handleSAMLLogin(c echo.Context) error {
	if s.sso == nil {
		return s.ssoOff()
	}
	return s.startSAMLLogin(c, domain.TenantID(c.Param("tenant")), c.QueryParam("return_to"))
}

// startSAMLLogin starts a company's SP-initiated login that returns to returnTo.
func (s *Server) startSAMLLogin(c echo.Context, tenant domain.TenantID, returnTo string) error {
	binding := ""
	if ck, err := c.Cookie(bindingCookie); err == nil && validToken(ck.Value) {
		binding = ck.Value // one value per browser, so logins in two tabs both work
	} else {
		var err error
		if binding, err = s.newToken(); err != nil {
			return err
		}
	}
	to, err := s.sso.SAML.StartLogin(c.Request().Context(), tenant, binding, returnTo)
	if err != nil {
		return err
	}
	ck := &http.Cookie{
		Name: bindingCookie, Value: binding, Path: "/saml/" + string(tenant) + "/",
		MaxAge: bindingMaxAge, HttpOnly: true, Secure: s.sso.secure,
	}
	if s.sso.secure {
		// The IdP posts the response cross-site: a Lax cookie would stay behind.
		ck.SameSite = http.SameSiteNoneMode
	}
	c.SetCookie(ck)
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.Redirect(http.StatusFound, to)
}

// handleSAMLACS serves POST /saml/:tenant/acs (HTTP-POST binding). Every refusal gets the same
// 403 page and no cookie; the reason goes to the log and the login history.
func (s *Server) handleSAMLACS(c echo.Context) error {
	if s.sso == nil {
		return s.ssoOff()
	}
	setActor(c, "saml")
	r := c.Request()
	ctx := r.Context()
	tenant := domain.TenantID(c.Param("tenant"))
	source := remoteHost(r.RemoteAddr)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.Is(err, echo.ErrStatusRequestEntityTooLarge) || errors.As(err, &mbe) {
			return echo.ErrStatusRequestEntityTooLarge
		}
		return s.refuseSignIn(c, tenant, source, &domain.SignInError{Reason: domain.SignInMalformed, Err: err})
	}
	switch {
	case r.PostForm.Has("SAMLart"):
		// The Artifact binding is not offered; crewjam would resolve it over SOAP.
		return s.refuseSignIn(c, tenant, source, &domain.SignInError{Reason: domain.SignInMalformed,
			Err: errors.New("the HTTP-Artifact binding is not supported")})
	case len(r.PostForm["SAMLResponse"]) != 1 || len(r.PostForm["RelayState"]) > 1:
		return s.refuseSignIn(c, tenant, source, &domain.SignInError{Reason: domain.SignInMalformed,
			Err: errors.New("the form must carry one SAMLResponse and at most one RelayState")})
	}
	binding := ""
	if ck, err := c.Cookie(bindingCookie); err == nil && validToken(ck.Value) {
		binding = ck.Value
	}
	res, err := s.sso.SAML.ACS(ctx, tenant, r.PostForm.Get("SAMLResponse"), r.PostForm.Get("RelayState"), binding)
	var refused *domain.SignInError
	if errors.As(err, &refused) {
		return s.refuseSignIn(c, tenant, source, refused)
	}
	if err != nil {
		return err
	}
	// The session is bound to the IdP trust in force now (see session.SSO); SSO turned off
	// since the response was verified refuses it.
	t, err := s.read.FindTenant(ctx, tenant)
	if err != nil && !isNotFound(err) {
		return err
	}
	if err != nil || !t.SSO.Enabled() {
		return s.refuseSignIn(c, tenant, source, &domain.SignInError{Reason: domain.SignInSSONotConfigured,
			User: res.User, Flow: res.Flow, Err: errors.New("single sign-on was turned off during the sign-in")})
	}
	// The history must show every session: record before opening it.
	if _, err := s.svc.RecordSignIn(ctx, tenant, domain.SignInRecorded{
		User: res.User, Reason: domain.SignInOK, Source: source, Flow: res.Flow,
	}); err != nil {
		return fmt.Errorf("httpapi: record sign-in: %w", err)
	}
	if s.consoleSignIn(tenant, res) {
		return s.openConsoleBySAML(c, tenant, res) // console_auth.go
	}
	id, err := s.openSession(ctx, tenant, res.User, t.SSO.MetadataSet)
	if err != nil {
		return err
	}
	s.log.Info("sign-in", "tenant", tenant, "user", res.User, "flow", res.Flow, "source", source,
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	c.SetCookie(&http.Cookie{
		Name: sessionCookie, Value: id, Path: "/", MaxAge: int(s.sso.SessionTTL / time.Second),
		HttpOnly: true, Secure: s.sso.secure, SameSite: http.SameSiteLaxMode,
	})
	c.SetCookie(&http.Cookie{Name: bindingCookie, Path: "/saml/" + string(tenant) + "/", MaxAge: -1,
		HttpOnly: true, Secure: s.sso.secure})
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.Redirect(http.StatusSeeOther, res.ReturnTo)
}

// signInRefusedPage is the one answer to every refused sign-in, whatever the reason.
const signInRefusedPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign-in failed</title></head>
<body><h1>Sign-in failed</h1>
<p>You could not be signed in. If this keeps happening, ask your administrator to check that your
account exists and is active, and that single sign-on is set up for your company.</p></body></html>
`

// refuseSignIn logs the real reason, records it in the login history and answers the uniform
// 403 page, setting no cookie.
//
// A refusal that names a verified user (an inactive one) is always recorded. One that names
// none may come from anyone who can reach the ACS, so it is recorded only within its company's
// budget (sso_refusals.go), which keeps the never-trimmed log from growing without bound; the
// rest are logged with recorded=false and counted in idledger_saml_signin_refusals_unrecorded_total.
func (s *Server) refuseSignIn(c echo.Context, tenant domain.TenantID, source string, e *domain.SignInError) error {
	ctx := c.Request().Context()
	record := true
	if e.User == "" {
		record = s.mayRecordRefusal(ctx, tenant)
	}
	attrs := []any{"tenant", tenant, "reason", e.Reason, "err", e, "source", source,
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID), "recorded", record}
	if e.User != "" {
		attrs = append(attrs, "user", e.User)
	}
	// Never the NameID: it is the person's userName, and the log cannot be erased.
	msg := "sign-in refused"
	if e.Reason == domain.SignInCertificateExpired {
		msg = "sign-in refused: IdP signing certificate expired (the company must upload metadata with its new certificate)"
	}
	s.log.Warn(msg, attrs...)
	s.metrics.signInRefused(e.Reason, record)
	s.noteTestSignInRefused(ctx, tenant, e) // console_setup.go
	if record {
		detail := ""
		if e.Err != nil {
			detail = e.Err.Error()
		}
		_, err := s.svc.RecordSignIn(ctx, tenant, domain.SignInRecorded{
			User: e.User, Reason: e.Reason, Detail: detail, Source: source, Flow: e.Flow,
		})
		if err != nil && !errors.Is(err, domain.ErrNotFound) { // no history for made-up companies
			s.log.Error("record refused sign-in", "tenant", tenant, "err", err)
		}
	}
	h := c.Response().Header()
	h.Set(echo.HeaderCacheControl, "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'")
	return c.HTML(http.StatusForbidden, signInRefusedPage)
}

// mayRecordRefusal reports whether a refusal naming no user may go to the company's login
// history: the company must exist (made-up ones get no history, and no entry in the budget's
// table) and have budget left. It logs the summary of the refusals the budget held back.
func (s *Server) mayRecordRefusal(ctx context.Context, tenant domain.TenantID) bool {
	if _, err := s.read.FindTenant(ctx, tenant); err != nil {
		if !isNotFound(err) {
			s.log.Error("record refused sign-in: read company", "tenant", tenant, "err", err)
		}
		return false
	}
	ok, sum := s.sso.refusals.take(tenant)
	if sum.Dropped > 0 {
		s.log.Warn(fmt.Sprintf("%d refused sign-ins not recorded in the login history (over the company's budget)", sum.Dropped),
			"tenant", tenant, "unrecorded", sum.Dropped, "since", sum.Since)
	}
	return ok
}

// session is a browser session, stored under a hash of its id.
type session struct {
	Tenant  domain.TenantID `json:"tenant"`
	User    domain.UserID   `json:"user"`
	Created time.Time       `json:"created"`
	Expires time.Time       `json:"expires"`
	// SSO is when the IdP metadata that verified the sign-in was uploaded
	// ([domain.SSOConfig].MetadataSet): the session's generation. Turning SSO off clears it
	// and turning it on again (or trusting new metadata) sets a new one, so the session ends
	// with the trust it was opened under, however SSO is later re-enabled. The session store
	// cannot list a company's sessions to delete them; this ends them all the same.
	SSO time.Time `json:"sso"`
}

// openSession stores a new session opened under the IdP metadata uploaded at ssoSince and
// returns its id (the cookie value).
func (s *Server) openSession(ctx context.Context, tenant domain.TenantID, user domain.UserID, ssoSince time.Time) (string, error) {
	id, err := s.newToken()
	if err != nil {
		return "", err
	}
	now := s.sso.Now().UTC()
	b, _ := json.Marshal(session{Tenant: tenant, User: user, Created: now, Expires: now.Add(s.sso.SessionTTL), SSO: ssoSince.UTC()})
	if err := s.sso.Sessions.Create(ctx, sessionKey(id), b, s.sso.SessionTTL); err != nil {
		return "", fmt.Errorf("httpapi: open session: %w", err)
	}
	return id, nil
}

// currentSession returns the request's session and its store revision, or ErrUnauthorized.
func (s *Server) currentSession(c echo.Context) (session, string, error) {
	none := domain.Errorf(domain.ErrUnauthorized, "sign in first: no valid session")
	ck, err := c.Cookie(sessionCookie)
	if err != nil || !validToken(ck.Value) {
		return session{}, "", none
	}
	key := sessionKey(ck.Value)
	raw, _, err := s.sso.Sessions.Get(c.Request().Context(), key)
	if errors.Is(err, domain.ErrNotFound) {
		return session{}, "", none
	}
	if err != nil {
		return session{}, "", err
	}
	var sess session
	if err := json.Unmarshal(raw, &sess); err != nil {
		return session{}, "", fmt.Errorf("httpapi: session record: %w", err)
	}
	if !s.sso.Now().Before(sess.Expires) {
		return session{}, "", none
	}
	return sess, key, nil
}

// handleMe serves GET /api/v1/me: the signed-in user from the read model.
func (s *Server) handleMe(c echo.Context) error {
	if s.sso == nil {
		return s.ssoOff()
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	u, err := s.sessionUser(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.userJSON(u))
}

// sessionUser returns the user of the request's session, or ErrUnauthorized. It checks on
// every call, against the read models, what a session depends on: the company still has SSO
// on with the IdP trust the session was opened under (so turning SSO off ends its sessions at
// once, and re-enabling it does not bring them back), and the user still exists and is active
// (so a SCIM deactivation ends access at once). A session that fails either is deleted.
func (s *Server) sessionUser(c echo.Context) (domain.User, error) {
	sess, key, err := s.currentSession(c)
	if err != nil {
		return domain.User{}, err
	}
	ctx := c.Request().Context()
	end := func(why string) (domain.User, error) {
		if derr := s.sso.Sessions.Delete(ctx, key, 0); derr != nil {
			s.log.Warn("end session", "tenant", sess.Tenant, "err", derr)
		}
		s.log.Info("session ended: "+why, "tenant", sess.Tenant, "user", sess.User)
		return domain.User{}, domain.Errorf(domain.ErrUnauthorized, "sign in first: no valid session")
	}
	t, err := s.read.FindTenant(ctx, sess.Tenant)
	if err != nil && !isNotFound(err) {
		return domain.User{}, err
	}
	switch {
	case err != nil:
		return end("company not found")
	case !t.SSO.Enabled():
		return end("single sign-on turned off")
	case !t.SSO.MetadataSet.Equal(sess.SSO):
		return end("single sign-on re-enabled or its IdP metadata replaced since sign-in")
	}
	u, err := s.read.FindUser(ctx, sess.Tenant, sess.User)
	if err != nil && !isNotFound(err) {
		return domain.User{}, err
	}
	if err != nil || !u.Exists() || !u.Active() {
		return end("user deleted or deactivated")
	}
	return u, nil
}

// handleSAMLLogout serves POST /saml/:tenant/logout: it ends this company's session in this
// browser. It answers 303 to a local return_to, or 204.
func (s *Server) handleSAMLLogout(c echo.Context) error {
	if s.sso == nil {
		return s.ssoOff()
	}
	if s.crossSite(c) {
		// A form on another site must not sign the user out (logout CSRF): a browser sends the
		// Lax session cookie with no cross-site POST, but would obey the clearing Set-Cookie.
		return domain.Errorf(domain.ErrForbidden, "sign-out is only accepted from this site")
	}
	tenant := domain.TenantID(c.Param("tenant"))
	sess, key, err := s.currentSession(c)
	switch {
	case err == nil && sess.Tenant == tenant:
		if err := s.sso.Sessions.Delete(c.Request().Context(), key, 0); err != nil {
			return err
		}
		s.log.Info("sign-out", "tenant", tenant, "user", sess.User)
	case err == nil:
		return c.NoContent(http.StatusNoContent) // another company's session: not ours to end
	case !errors.Is(err, domain.ErrUnauthorized):
		return err
	}
	c.SetCookie(&http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: s.sso.secure, SameSite: http.SameSiteLaxMode})
	if to := c.QueryParam("return_to"); to != "" && localPath(to) {
		return c.Redirect(http.StatusSeeOther, to)
	}
	return c.NoContent(http.StatusNoContent)
}

// newToken returns 256 random bits, base64url (a session id or a browser binding).
func (s *Server) newToken() (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(s.sso.Random, b[:]); err != nil {
		return "", fmt.Errorf("httpapi: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// validToken reports whether a cookie value has newToken's form.
func validToken(v string) bool {
	if len(v) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil
}

// sessionKey is the store key of a session: a hash, so that the store does not hold ids that
// work as cookies.
func sessionKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "s." + hex.EncodeToString(sum[:])
}

// localPath reports whether p is a path on this site (see saml.LocalPath, which the login
// flow applies).
func localPath(p string) bool {
	if p == "" || len(p) > 2048 || p[0] != '/' || (len(p) > 1 && (p[1] == '/' || p[1] == '\\')) {
		return false
	}
	return !strings.ContainsAny(p, "\\\r\n\t") && !strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// remoteHost returns the address the connection came from (not a forwarded header, which the
// client controls).
func remoteHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// crossSite reports whether a browser says the request comes from another site: Sec-Fetch-Site
// "cross-site", or an Origin other than this server's public origin (the base URL's).
// Non-browser clients send neither and are not refused.
func (s *Server) crossSite(c echo.Context) bool {
	h := c.Request().Header
	if h.Get("Sec-Fetch-Site") == "cross-site" {
		return true
	}
	origin := h.Get("Origin")
	if origin == "" {
		return false
	}
	base, err := url.Parse(s.cfg.BaseURL)
	return err != nil || origin != base.Scheme+"://"+base.Host
}
