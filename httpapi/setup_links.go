package httpapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// Setup links (README, "Credentials"): the operator asks for a one-time URL that opens a
// company's console (domain/setuplinks.go); the first GET of it in a browser burns it and opens
// a console session.

// setupLinkRoute is the route of a setup link's use: its path holds the secret.
const setupLinkRoute = "/console/setup/:secret"

// logPath is the request's path as logs may show it: a setup link's secret stays out.
func logPath(c echo.Context) string {
	if c.Path() == setupLinkRoute {
		return setupLinkRoute
	}
	return c.Request().URL.Path
}

// setupLinkCreated is the answer to POST /admin/v1/tenants/{id}/setup-links: the URL holds the
// secret, and only this answer holds the URL.
type setupLinkCreated struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// handleCreateSetupLink serves POST /admin/v1/tenants/:id/setup-links {"expiresIn":"24h"}
// (a Go duration; default 24 h, at most 7 days): 201 with the link, once it can be used.
func (s *Server) handleCreateSetupLink(c echo.Context) error {
	if s.console == nil {
		return domain.Errorf(domain.ErrNotFound, "the company console is not available on this server")
	}
	lifetime := domain.DefaultSetupLinkLifetime
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return bodyError(err)
	}
	if len(bytes.TrimSpace(body)) > 0 {
		m, err := decodeObject(body)
		if err != nil {
			return err
		}
		if v, ok := m["expiresIn"]; ok {
			str, ok := v.(string)
			if !ok {
				return domain.Errorf(domain.ErrInvalid, `expiresIn must be a duration such as "24h" or "30m"`)
			}
			if lifetime, err = time.ParseDuration(str); err != nil {
				return domain.Errorf(domain.ErrInvalid, `expiresIn must be a duration such as "24h" or "30m": %q is not one`, str)
			}
		}
	}
	t, l, secret, err := s.svc.CreateSetupLink(c.Request().Context(), domain.TenantID(c.Param("id")), lifetime)
	if err != nil {
		return err
	}
	// Usable on this instance before the operator hands it out.
	if err := s.awaitVisible(c, t.Version); err != nil {
		return err
	}
	s.log.Info("setup link created", "tenant", t.ID, "link", l.ID, "expires", l.Expires,
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store") // the secret must not sit in a cache
	return c.JSON(http.StatusCreated, setupLinkCreated{ID: l.ID, URL: s.cfg.BaseURL + "/console/setup/" + secret, ExpiresAt: l.Expires})
}

// handleRevokeSetupLink serves DELETE /admin/v1/tenants/:id/setup-links/:linkId: 204 once the
// link is refused by this instance (unknown link: 404).
func (s *Server) handleRevokeSetupLink(c echo.Context) error {
	if s.console == nil {
		return domain.Errorf(domain.ErrNotFound, "the company console is not available on this server")
	}
	id := c.Param("linkId")
	t, err := s.svc.RevokeSetupLink(c.Request().Context(), domain.TenantID(c.Param("id")), id)
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, t.Version); err != nil {
		return err
	}
	s.log.Info("setup link revoked", "tenant", t.ID, "link", id,
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	return c.NoContent(http.StatusNoContent)
}

// handleUseSetupLink serves GET /console/setup/:secret: the first use of a live link burns it
// (an event in the log, so every instance sees it burned, and of two concurrent uses one
// wins), opens a console session acting as "console:link:<link id>" and answers 303 to the
// company's console with the session's cookie. A link used before or expired answers 410, an
// unknown or revoked one 404: an HTML page saying to ask for a new link, and never a session.
func (s *Server) handleUseSetupLink(c echo.Context) error {
	if s.console == nil {
		return consoleOff(c)
	}
	setConsoleHeaders(c)
	src := s.clientSource(c)
	if locked, err := s.lockedOut(c, lockSetup, src); locked {
		return err
	}
	secret := c.Param("secret")
	unknown := func() error {
		s.consoleAuthFailed(lockSetup, src, authInvalid)
		return consoleMessage(c, http.StatusNotFound, "Link not valid", nil,
			"This setup link is not valid: it was revoked, or it is mistyped.",
			"Ask the service that gave you the link for a new one.")
	}
	if !strings.HasPrefix(secret, domain.SetupLinkPrefix) {
		return unknown()
	}
	ctx := c.Request().Context()
	hash := domain.HashToken(secret)
	t, err := s.read.FindTenantByTokenHash(ctx, hash)
	if err != nil && !isNotFound(err) {
		return err
	}
	var link domain.SetupLink
	ok := err == nil
	if ok {
		link, ok = t.SetupLinkByHash(hash) // a token of another kind is no setup link
	}
	if !ok {
		return unknown()
	}
	id, err := s.consoleToken()
	if err != nil {
		return err
	}
	actor := domain.ActorConsoleLinkPrefix + link.ID
	setActor(c, actor)
	if _, err := s.svc.UseSetupLink(c.Request().Context(), t.ID, hash, consoleSessionRef(id)); err != nil {
		var title, text string
		switch {
		case errors.Is(err, domain.ErrSetupLinkUsed):
			title, text = "Link already used", "This setup link was already used: each link opens the console once."
		case errors.Is(err, domain.ErrSetupLinkExpired):
			title, text = "Link expired", "This setup link has expired."
		case errors.Is(err, domain.ErrNotFound):
			return unknown()
		default:
			return err
		}
		s.consoleAuthFailed(lockSetup, src, authInvalid)
		return consoleMessage(c, http.StatusGone, title, nil, text,
			"Ask the service that gave you the link for a new one.")
	}
	if _, err := s.openConsoleSession(c, id, t.ID, actor); err != nil {
		return err
	}
	s.log.Info("console session opened by a setup link", "tenant", t.ID, "link", link.ID,
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	return c.Redirect(http.StatusSeeOther, "/console/"+url.PathEscape(string(t.ID)))
}
