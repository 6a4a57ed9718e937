package httpapi

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// Settings of the console (/console/{tenant}/settings): single sign-on on and off,
// IdP-initiated sign-in, the company's API keys and its webhook endpoints
// (console_webhooks.go).

type settingsData struct {
	SSO    ssoStatus
	Keys   []apiKeyInfo
	NewKey *apiKeyCreated // the key just created: its secret is shown this once
	Hooks  webhooksData   // console_webhooks.go
}

func (s *Server) settingsData(c echo.Context) (settingsData, error) {
	ctx := c.Request().Context()
	t, err := s.read.FindTenant(ctx, tenantOf(c))
	if err != nil {
		return settingsData{}, err
	}
	d := settingsData{SSO: s.ssoStatusOf(t), Hooks: s.consoleWebhooks(ctx, t)}
	for _, k := range t.APIKeys {
		used, err := s.usage.lastUsed(ctx, t.ID, k.ID)
		if err != nil {
			s.log.Warn("api key last use unknown", "tenant", t.ID, "key", k.ID, "err", err)
		}
		d.Keys = append(d.Keys, apiKeyInfo{ID: k.ID, Name: k.Name, Scopes: k.Scopes, CreatedAt: k.Created, LastUsedAt: used})
	}
	return d, nil
}

func (s *Server) handleConsoleSettings(c echo.Context) error {
	d, err := s.settingsData(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "settings", "Settings", "settings", d)
}

// handleConsoleSSOSettings serves POST /console/{tenant}/settings/sso (allowIdpInitiated).
func (s *Server) handleConsoleSSOSettings(c echo.Context) error {
	allow := c.FormValue("allowIdpInitiated") == "on"
	t, err := s.svc.SetSSOSettings(c.Request().Context(), tenantOf(c), &allow)
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, t.Version); err != nil {
		return err
	}
	return seeOther(c, "/settings", "sso-saved")
}

// handleConsoleSSOOff serves POST /console/{tenant}/settings/sso/off: the IdP is no longer
// trusted and the company's sessions end (as DELETE /api/v1/sso). Uploading metadata again
// on the setup page turns it back on.
func (s *Server) handleConsoleSSOOff(c echo.Context) error {
	if c.FormValue("confirm") != "yes" {
		return domain.Errorf(domain.ErrInvalid, "tick the confirmation to turn single sign-on off")
	}
	t, err := s.svc.DisableSSO(c.Request().Context(), tenantOf(c))
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, t.Version); err != nil {
		return err
	}
	return seeOther(c, "/settings", "sso-off")
}

// handleConsoleCreateKey serves POST /console/{tenant}/settings/api-keys (name, scope...): the
// key's secret is in this answer only, like the SCIM token's (a page, not a redirect).
func (s *Server) handleConsoleCreateKey(c echo.Context) error {
	form, err := c.FormParams()
	if err != nil {
		return bodyError(err)
	}
	t, k, secret, err := s.svc.CreateAPIKey(c.Request().Context(), tenantOf(c), strings.TrimSpace(form.Get("name")), form["scope"])
	if err != nil {
		return err
	}
	s.waitVisible(c, t.Version)
	s.log.Info("api key created", "tenant", t.ID, "key", k.ID, "scopes", k.Scopes,
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	d, err := s.settingsData(c)
	if err != nil {
		return err
	}
	d.NewKey = &apiKeyCreated{ID: k.ID, Name: k.Name, Scopes: k.Scopes, Key: secret, CreatedAt: k.Created}
	return s.render(c, http.StatusOK, "settings", "Settings", "settings", d)
}

// handleConsoleRevokeKey serves POST /console/{tenant}/settings/api-keys/{keyId}/revoke.
func (s *Server) handleConsoleRevokeKey(c echo.Context) error {
	tenant, id := tenantOf(c), c.Param("keyId")
	t, err := s.svc.RevokeAPIKey(c.Request().Context(), tenant, id)
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, t.Version); err != nil {
		return err
	}
	s.usage.forget(tenant, id)
	return seeOther(c, "/settings", "key-revoked")
}
