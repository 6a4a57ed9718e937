package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// The company console's sign-in (README, "Credentials"): a company admin's browser holds a
// console session, opened by a one-time setup link (setup_links.go) or by a SAML sign-in of an
// admin of the company. A session opens /console/{tenant} of its own company and nothing else:
// no bearer API takes it. Sessions live in the shared session store (a NATS KV bucket), so every
// instance serves them and they survive restarts.

// consoleSession is a signed-in company admin's browser session (console).
type consoleSession struct {
	ID                string          // opaque, random; the cookie value (store keyed by its hash)
	Tenant            domain.TenantID // the company it opens, and only that one
	Actor             string          // who acts: "console:link:<linkId>" or "console:user:<userId>"
	CSRF              string          // per-session token, checked on every state-changing request
	Created, LastSeen time.Time
}

// consoleRecord is a console session as the store keeps it, under consoleKey of its id (the id
// itself, which works as a cookie, is never stored).
type consoleRecord struct {
	Tenant   domain.TenantID `json:"tenant"`
	Actor    string          `json:"actor"`
	CSRF     string          `json:"csrf"`
	Created  time.Time       `json:"created"`
	LastSeen time.Time       `json:"lastSeen"`
}

// ConsoleSessions is the shared store of console sessions: eventstore.Records over the
// IDL_SESSIONS bucket implements it (its keys "c.<hash>" are apart from the SAML sessions'
// "s.<hash>"). The bucket's max age must be at least consoleAbsolute.
type ConsoleSessions interface {
	Records
	// Put replaces the record under key (its life is then the bucket's max age).
	Put(ctx context.Context, key string, value []byte) error
}

// Lifetimes of console sessions.
const (
	// consoleIdle ends a session unused for this long.
	consoleIdle = time.Hour
	// consoleAbsolute ends a session this long after sign-in, however busy.
	consoleAbsolute = 12 * time.Hour
	// consoleSlide is how stale LastSeen may get before a request writes it again: one store
	// write per session and minute at most, not one per request.
	consoleSlide = time.Minute
)

// Console cookies: with an https base URL the __Host- prefix makes the browser insist on
// Secure, Path=/ and no Domain, so no other host (a sibling subdomain) can plant or read it.
const (
	consoleCookieSecure = "__Host-idl_console"
	consoleCookiePlain  = "idl_console"
)

// consoleCtxKey holds the request's *consoleSession in the echo context.
const consoleCtxKey = "idledger.consoleSession"

// consoleState is the console's sign-in configuration (Config.ConsoleSessions).
type consoleState struct {
	store  ConsoleSessions
	now    func() time.Time
	random io.Reader
	// secure: the base URL is https (Secure __Host- cookie).
	secure bool
	// origin is the base URL's scheme://host: the only Origin a state-changing request may have.
	origin string
	// lockout refuses sources that present too many bad console credentials (lockout.go).
	lockout *lockout
}

// newConsoleState returns the console's state for cfg, or nil when cfg has no session store
// (the console's routes then answer 404).
func newConsoleState(cfg Config) *consoleState {
	if cfg.ConsoleSessions == nil {
		return nil
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	origin := ""
	if u, err := url.Parse(cfg.BaseURL); err == nil && u.Scheme != "" && u.Host != "" {
		origin = u.Scheme + "://" + u.Host
	}
	return &consoleState{store: cfg.ConsoleSessions, now: now, random: rand.Reader,
		secure: strings.HasPrefix(cfg.BaseURL, "https://"), origin: origin,
		lockout: newLockout(cfg.Lockout, now)}
}

// cookieName returns the console cookie's name.
func (cs *consoleState) cookieName() string {
	if cs.secure {
		return consoleCookieSecure
	}
	return consoleCookiePlain
}

// consoleKey is the store key of a console session: a hash, so that the store does not hold
// ids that work as cookies.
func consoleKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "c." + hex.EncodeToString(sum[:])
}

// consoleSessionRef names a session in the log (SetupLinkUsed.Session) without its id: a hash
// prefix, like the SCIM token's actor.
func consoleSessionRef(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:8])
}

// registerConsoleAuth registers the console's sign-in routes: the operator's setup links, their
// use, the SAML sign-in of a company admin, and sign-out.
func (s *Server) registerConsoleAuth(e *echo.Echo) {
	s.console = newConsoleState(s.cfg)
	ready := s.whileCatchingUp
	e.POST("/admin/v1/tenants/:id/setup-links", s.handleCreateSetupLink, s.requireAdmin, s.gateWrites)
	e.DELETE("/admin/v1/tenants/:id/setup-links/:linkId", s.handleRevokeSetupLink, s.requireAdmin, s.gateWrites)
	e.GET(setupLinkRoute, s.handleUseSetupLink, ready)
	e.POST("/console/logout", s.handleConsoleLogout, ready)
	e.GET("/console/:tenant/signin", s.handleConsoleSignIn, ready)
}

// setConsoleHeaders sets the security headers of every console HTML answer: a strict CSP (only
// this site's scripts, styles and form targets; no framing), no MIME sniffing, no caching, and a
// Referer for this site only: other sites learn nothing of console URLs, while the browser's
// form POSTs keep the Origin header that unsafeRefusal checks (under no-referrer a browser
// sends "Origin: null", and every form would be refused).
func setConsoleHeaders(c echo.Context) {
	h := c.Response().Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set(echo.HeaderCacheControl, "no-store")
}

// consolePage is a short HTML answer of the console: a title, paragraphs and an optional link.
var consolePage = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><main><h1>{{.Title}}</h1>
{{range .Text}}<p>{{.}}</p>
{{end}}{{if .Link}}<p><a href="{{.Link}}">{{.LinkText}}</a></p>
{{end}}</main></body></html>
`))

// pageLink is a link on a console page.
type pageLink struct{ href, text string }

// consoleMessage answers a console page with status, with the console's security headers.
func consoleMessage(c echo.Context, status int, title string, link *pageLink, text ...string) error {
	setConsoleHeaders(c)
	data := struct {
		Title, Link, LinkText string
		Text                  []string
	}{Title: title, Text: text}
	if link != nil {
		data.Link, data.LinkText = link.href, link.text
	}
	var b strings.Builder
	if err := consolePage.Execute(&b, data); err != nil {
		return fmt.Errorf("httpapi: console page: %w", err)
	}
	return c.HTML(status, b.String())
}

// consoleOff answers the console's routes on a server without a session store.
func consoleOff(c echo.Context) error {
	return consoleMessage(c, http.StatusNotFound, "Not found", nil, "The company console is not available on this server.")
}

// requireConsole guards /console/{tenant} and everything under it. It admits a request that
// carries a live console session of that company; for a state-changing method (anything but
// GET, HEAD, OPTIONS) the session's CSRF token (form field "csrf" or header X-CSRF-Token) and
// this site's Origin (or, without one, Referer) as well. It then acts like the bearer APIs'
// admit: the company and the session's actor go into the request's context (so the events of
// domain commands name the session), the company's rate limit applies, and the session's idle
// timeout slides. Refusals are HTML pages: 401 without a live session (saying how to get in),
// 403 for another company's session or a failed CSRF or origin check, 429 for a source locked
// out after too many cookies naming no live session (lockout.go) or the company's rate limit.
// Like every route that answers from the read models it fails closed (whileCatchingUp): while
// they catch up or are stopped, or cannot show a change, the console answers a 503 page.
func (s *Server) requireConsole(next echo.HandlerFunc) echo.HandlerFunc {
	guarded := s.whileCatchingUp(s.consoleGuard(next))
	return func(c echo.Context) error {
		err := guarded(c)
		if errors.Is(err, domain.ErrUnavailable) && !c.Response().Committed {
			c.Response().Header().Set("Retry-After", strconv.Itoa(retryAfterUnavailable))
			return consoleMessage(c, http.StatusServiceUnavailable, "Try again shortly", nil, domain.ErrorDetail(err))
		}
		return err
	}
}

// consoleGuard is requireConsole's check of the session, for next.
func (s *Server) consoleGuard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.console == nil {
			return consoleOff(c)
		}
		setConsoleHeaders(c)
		tenant := domain.TenantID(c.Param("tenant"))
		sess, err := s.loadConsoleSession(c)
		if err != nil {
			return err
		}
		if sess == nil {
			// A live session is never locked out (its holder may share an address with a
			// guesser); requests without one are.
			src := s.clientSource(c)
			if locked, err := s.lockedOut(c, lockConsole, src); locked {
				return err
			}
			if _, err := c.Cookie(s.console.cookieName()); err == nil {
				// A cookie that names no live session: ended, or guessed. The browser is told to
				// drop it, so an ended session's cookie counts once.
				s.consoleAuthFailed(lockConsole, src, authInvalid)
				c.SetCookie(s.consoleCookie("", -1))
			} else {
				s.metrics.authFailed(credConsole.String(), authMissing)
			}
			return s.consoleSignInPage(c, tenant)
		}
		if sess.Tenant != tenant {
			s.metrics.authFailed(credConsole.String(), authWrongKind)
			return consoleMessage(c, http.StatusForbidden, "Another company", nil,
				"You are signed in to the console of another company. Sign out, then use a link or sign-in of this company.")
		}
		if isWrite(c.Request().Method) {
			if why := s.unsafeRefusal(c, sess); why != "" {
				s.metrics.authFailed(credConsole.String(), authCSRF)
				s.log.Warn("console request refused", "tenant", tenant, "why", why, "method", c.Request().Method,
					"path", c.Request().URL.Path, "request_id", c.Response().Header().Get(echo.HeaderXRequestID))
				return consoleMessage(c, http.StatusForbidden, "Request refused", nil,
					"This request did not come from a page of the console ("+why+"). Reload the console and try again.")
			}
		}
		ctx := c.Request().Context()
		r := domain.RequestFrom(ctx)
		r.Actor = sess.Actor
		ctx = context.WithValue(domain.WithRequest(ctx, r), tenantKey{}, sess.Tenant)
		c.SetRequest(c.Request().WithContext(ctx))
		if ok, wait := s.limiter.take(sess.Tenant); !ok {
			secs := max(int(math.Ceil(wait.Seconds())), 1)
			c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
			return consoleMessage(c, http.StatusTooManyRequests, "Too many requests", nil,
				"Your company has made too many requests. Wait "+strconv.Itoa(secs)+" seconds and try again.")
		}
		s.slideConsoleSession(ctx, sess)
		c.Set(consoleCtxKey, sess)
		return next(c)
	}
}

// consoleSessionOf returns the console session requireConsole admitted, or nil.
func consoleSessionOf(c echo.Context) *consoleSession {
	sess, _ := c.Get(consoleCtxKey).(*consoleSession)
	return sess
}

// loadConsoleSession returns the live session the request's cookie names, or nil (no cookie,
// an unknown id, or a session past its idle or absolute timeout, or whose admin lost the
// right). A session found dead is removed from the store.
func (s *Server) loadConsoleSession(c echo.Context) (*consoleSession, error) {
	ck, err := c.Cookie(s.console.cookieName())
	if err != nil || !validToken(ck.Value) {
		return nil, nil
	}
	ctx := c.Request().Context()
	key := consoleKey(ck.Value)
	raw, _, err := s.console.store.Get(ctx, key)
	if errors.Is(err, domain.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("httpapi: console session: %w", err)
	}
	var rec consoleRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("httpapi: console session record: %w", err)
	}
	sess := &consoleSession{ID: ck.Value, Tenant: rec.Tenant, Actor: rec.Actor, CSRF: rec.CSRF,
		Created: rec.Created, LastSeen: rec.LastSeen}
	why, err := s.consoleSessionEnded(ctx, sess)
	if err != nil {
		return nil, err
	}
	if why != "" {
		if err := s.console.store.Delete(ctx, key, 0); err != nil {
			s.log.Warn("end console session", "tenant", sess.Tenant, "err", err)
		}
		s.log.Info("console session ended: "+why, "tenant", sess.Tenant, "actor", sess.Actor)
		return nil, nil
	}
	return sess, nil
}

// consoleSessionEnded returns why a stored session no longer opens the console, or "": past
// its idle or absolute timeout, its company gone, or (for an admin's SAML session) its user
// deleted, deactivated or no longer an admin, so that a change made by provisioning ends
// console access at the next request.
func (s *Server) consoleSessionEnded(ctx context.Context, sess *consoleSession) (string, error) {
	now := s.console.now()
	switch {
	case !now.Before(sess.Created.Add(consoleAbsolute)):
		return "absolute timeout", nil
	case !now.Before(sess.LastSeen.Add(consoleIdle)):
		return "idle timeout", nil
	}
	if _, err := s.read.FindTenant(ctx, sess.Tenant); err != nil {
		if isNotFound(err) {
			return "company not found", nil
		}
		return "", err
	}
	if id, ok := strings.CutPrefix(sess.Actor, domain.ActorConsoleUserPrefix); ok {
		u, err := s.read.FindUser(ctx, sess.Tenant, domain.UserID(id))
		if err != nil && !isNotFound(err) {
			return "", err
		}
		if err != nil || !u.Exists() || !u.Active() || !u.IsAdmin() {
			return "user deleted, deactivated or no longer an admin", nil
		}
	}
	return "", nil
}

// slideConsoleSession moves the session's LastSeen to now if it is older than consoleSlide.
// A failed write only shortens the session's idle life: it is logged, not answered.
func (s *Server) slideConsoleSession(ctx context.Context, sess *consoleSession) {
	now := s.console.now().UTC()
	if now.Sub(sess.LastSeen) < consoleSlide {
		return
	}
	sess.LastSeen = now
	b, err := json.Marshal(consoleRecord{Tenant: sess.Tenant, Actor: sess.Actor, CSRF: sess.CSRF,
		Created: sess.Created, LastSeen: sess.LastSeen})
	if err == nil {
		err = s.console.store.Put(ctx, consoleKey(sess.ID), b)
	}
	if err != nil {
		s.log.Warn("console session: record last use", "tenant", sess.Tenant, "err", err)
	}
}

// openConsoleSession stores a new session of tenant acting as actor, with a fresh id and CSRF
// token, and sets its cookie (a new id at every sign-in: no session fixation).
func (s *Server) openConsoleSession(c echo.Context, id string, tenant domain.TenantID, actor string) (*consoleSession, error) {
	csrf, err := s.consoleToken()
	if err != nil {
		return nil, err
	}
	ctx := c.Request().Context()
	if old, err := c.Cookie(s.console.cookieName()); err == nil && validToken(old.Value) {
		// The browser's previous session ends with the new sign-in.
		if err := s.console.store.Delete(ctx, consoleKey(old.Value), 0); err != nil {
			s.log.Warn("end the previous console session", "err", err)
		}
	}
	now := s.console.now().UTC()
	sess := &consoleSession{ID: id, Tenant: tenant, Actor: actor, CSRF: csrf, Created: now, LastSeen: now}
	b, err := json.Marshal(consoleRecord{Tenant: tenant, Actor: actor, CSRF: csrf, Created: now, LastSeen: now})
	if err != nil {
		return nil, fmt.Errorf("httpapi: console session: %w", err)
	}
	if err := s.console.store.Create(ctx, consoleKey(id), b, consoleAbsolute); err != nil {
		return nil, fmt.Errorf("httpapi: open console session: %w", err)
	}
	c.SetCookie(s.consoleCookie(id, int(consoleAbsolute/time.Second)))
	return sess, nil
}

// consoleCookie returns the console cookie carrying id for maxAge seconds (negative: clear it).
func (s *Server) consoleCookie(id string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: s.console.cookieName(), Value: id, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.console.secure, SameSite: http.SameSiteLaxMode}
}

// consoleToken returns 256 random bits, base64url: a session id or a CSRF token.
func (s *Server) consoleToken() (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(s.console.random, b[:]); err != nil {
		return "", fmt.Errorf("httpapi: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// unsafeRefusal checks a state-changing console request: it must come from this site
// (originRefusal) and carry the session's CSRF token (form field "csrf" or header
// X-CSRF-Token, compared in constant time). It returns why it is refused, or "".
func (s *Server) unsafeRefusal(c echo.Context, sess *consoleSession) string {
	if why := s.originRefusal(c); why != "" {
		return why
	}
	token := c.Request().Header.Get("X-CSRF-Token")
	if token == "" {
		if _, err := c.FormParams(); err == nil {
			token = c.Request().PostForm.Get("csrf")
		}
	}
	if token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(sess.CSRF)) != 1 {
		return "missing or wrong CSRF token"
	}
	return ""
}

// originRefusal says why a state-changing request is not known to come from this site, or "":
// its Origin (or, when a browser sends none, its Referer's origin) must equal the base URL's
// origin, and Sec-Fetch-Site must not say cross-site. A request with neither header is refused.
func (s *Server) originRefusal(c echo.Context) string {
	h := c.Request().Header
	if h.Get("Sec-Fetch-Site") == "cross-site" {
		return "cross-site request"
	}
	origin := h.Get("Origin")
	if origin == "" {
		if ref, err := url.Parse(h.Get("Referer")); err == nil && ref.Scheme != "" && ref.Host != "" {
			origin = ref.Scheme + "://" + ref.Host
		}
	}
	switch {
	case origin == "":
		return "no Origin or Referer header"
	case s.console.origin == "" || origin != s.console.origin:
		return "another origin"
	}
	return ""
}

// consoleSignInPage answers 401 with how to get into the company's console: a setup link from
// the service that manages the company, or (when the company has single sign-on on) a SAML
// sign-in of one of its admins.
func (s *Server) consoleSignInPage(c echo.Context, tenant domain.TenantID) error {
	var link *pageLink
	if s.sso != nil && tenant != "" {
		if t, err := s.read.FindTenant(c.Request().Context(), tenant); err == nil && t.SSO.Enabled() {
			link = &pageLink{href: "/console/" + url.PathEscape(string(tenant)) + "/signin", text: "Sign in with SSO"}
		}
	}
	return consoleMessage(c, http.StatusUnauthorized, "Sign in to the console", link,
		"You are not signed in, or your session has ended (after an hour without use, or twelve hours after sign-in).",
		"To get in, ask the service that manages your company for a new setup link, or, if you are an administrator of your company and single sign-on is set up, sign in with it.")
}

// handleConsoleLogout serves POST /console/logout: it ends the browser's console session and
// clears its cookie, then 303 to /. A session's sign-out must pass the same origin and CSRF
// checks as any console change (a cross-site form cannot sign an admin out); without a live
// session it only clears the cookie, from this site.
func (s *Server) handleConsoleLogout(c echo.Context) error {
	if s.console == nil {
		return consoleOff(c)
	}
	setConsoleHeaders(c)
	sess, err := s.loadConsoleSession(c)
	if err != nil {
		return err
	}
	why := s.originRefusal(c) // without a session there is no CSRF token to match
	if sess != nil {
		why = s.unsafeRefusal(c, sess)
	}
	if why != "" {
		s.metrics.authFailed(credConsole.String(), authCSRF)
		return consoleMessage(c, http.StatusForbidden, "Request refused", nil,
			"This sign-out did not come from a page of the console ("+why+").")
	}
	if sess != nil {
		if err := s.console.store.Delete(c.Request().Context(), consoleKey(sess.ID), 0); err != nil {
			return fmt.Errorf("httpapi: end console session: %w", err)
		}
		s.log.Info("console sign-out", "tenant", sess.Tenant, "actor", sess.Actor)
	}
	c.SetCookie(s.consoleCookie("", -1))
	return c.Redirect(http.StatusSeeOther, "/")
}

// consoleReturn is where a console sign-in returns: the company's console.
func consoleReturn(tenant domain.TenantID) string {
	return "/console/" + url.PathEscape(string(tenant))
}

// handleConsoleSignIn serves GET /console/:tenant/signin: it starts the company's
// SP-initiated SAML login bound to this browser, returning to the console (see
// openConsoleBySAML). A company without single sign-on gets a 404 page.
func (s *Server) handleConsoleSignIn(c echo.Context) error {
	if s.console == nil || s.sso == nil {
		return consoleOff(c)
	}
	tenant := domain.TenantID(c.Param("tenant"))
	t, err := s.read.FindTenant(c.Request().Context(), tenant)
	if err != nil && !isNotFound(err) {
		return err
	}
	if err != nil || !t.SSO.Enabled() {
		return consoleMessage(c, http.StatusNotFound, "Single sign-on is not set up", nil,
			"This company has no single sign-on set up. Ask the service that manages your company for a setup link.")
	}
	return s.startSAMLLogin(c, tenant, consoleReturn(tenant))
}

// consoleSignIn reports whether a verified SAML sign-in is one into the company's console: an
// SP-initiated login started for it (an IdP-initiated response, whose target the IdP or a
// forged link chose, never opens the console).
func (s *Server) consoleSignIn(tenant domain.TenantID, res domain.SignInResult) bool {
	return s.console != nil && res.Flow == domain.FlowSPInitiated && res.ReturnTo == consoleReturn(tenant)
}

// openConsoleBySAML finishes a console sign-in at the ACS: a user of the company who is an
// active admin (the company API's adminPresent test: a roles value "admin") gets a console
// session acting as "console:user:<id>" and 303 to the console; anyone else a 403 page and no
// session.
func (s *Server) openConsoleBySAML(c echo.Context, tenant domain.TenantID, res domain.SignInResult) error {
	ctx := c.Request().Context()
	c.SetCookie(&http.Cookie{Name: bindingCookie, Path: "/saml/" + string(tenant) + "/", MaxAge: -1,
		HttpOnly: true, Secure: s.sso.secure})
	u, err := s.read.FindUser(ctx, tenant, res.User)
	if err != nil && !isNotFound(err) {
		return err
	}
	if err != nil || !u.Exists() || !u.Active() || !u.IsAdmin() {
		s.metrics.authFailed(credConsole.String(), authNotAdmin)
		s.log.Warn("console sign-in refused: not an admin of the company", "tenant", tenant, "user", res.User,
			"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
		return consoleMessage(c, http.StatusForbidden, "Not an administrator", nil,
			"You are signed in, but you are not an administrator of this company, so its console stays closed.",
			"Ask an administrator of your company to give you the admin role in your identity provider.")
	}
	id, err := s.consoleToken()
	if err != nil {
		return err
	}
	setConsoleHeaders(c)
	if _, err := s.openConsoleSession(c, id, tenant, domain.ActorConsoleUserPrefix+string(u.ID)); err != nil {
		return err
	}
	s.log.Info("console session opened by a sign-in", "tenant", tenant, "user", u.ID,
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	return c.Redirect(http.StatusSeeOther, consoleReturn(tenant))
}
