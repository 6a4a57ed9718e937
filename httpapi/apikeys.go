package httpapi

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// The operator manages a company's API keys (README, "Credentials"): a key opens the company
// API (/api/v1) within its scopes, and nothing else.

// apiKeyCreated is the answer to POST /admin/v1/tenants/{id}/api-keys: the secret is in it,
// and only in it.
type apiKeyCreated struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Scopes    []domain.Scope `json:"scopes"`
	Key       string         `json:"key"`
	CreatedAt time.Time      `json:"createdAt"`
}

// apiKeyInfo is a key as GET /admin/v1/tenants/{id}/api-keys lists it, without its secret.
type apiKeyInfo struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	Scopes     []domain.Scope `json:"scopes"`
	CreatedAt  time.Time      `json:"createdAt"`
	LastUsedAt *time.Time     `json:"lastUsedAt"`
}

// handleCreateAPIKey serves POST /admin/v1/tenants/:id/api-keys {"name","scopes"}: 201 with
// the key's secret, once. The answer waits until the key authenticates.
func (s *Server) handleCreateAPIKey(c echo.Context) error {
	body, err := readObject(c)
	if err != nil {
		return err
	}
	name, ok := body["name"].(string)
	if !ok {
		return domain.Errorf(domain.ErrInvalid, "name must be a string")
	}
	list, ok := body["scopes"].([]any)
	if !ok {
		return domain.Errorf(domain.ErrInvalid, "scopes must be a list of scope names")
	}
	scopes := make([]string, 0, len(list))
	for _, v := range list {
		sc, ok := v.(string)
		if !ok {
			return domain.Errorf(domain.ErrInvalid, "scopes must be a list of scope names")
		}
		scopes = append(scopes, sc)
	}
	t, k, secret, err := s.svc.CreateAPIKey(c.Request().Context(), domain.TenantID(c.Param("id")), name, scopes)
	if err != nil {
		return err
	}
	s.waitVisible(c, t.Version)
	s.log.Info("api key created", "tenant", t.ID, "key", k.ID, "scopes", k.Scopes,
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	c.Response().Header().Set("Cache-Control", "no-store") // the secret must not sit in a cache
	return c.JSON(http.StatusCreated, apiKeyCreated{ID: k.ID, Name: k.Name, Scopes: k.Scopes, Key: secret, CreatedAt: k.Created})
}

// handleListAPIKeys serves GET /admin/v1/tenants/:id/api-keys: the live keys, oldest first,
// with when each was last used (within a minute).
func (s *Server) handleListAPIKeys(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.read.FindTenant(ctx, domain.TenantID(c.Param("id")))
	if err != nil {
		return err
	}
	out := make([]apiKeyInfo, 0, len(t.APIKeys))
	for _, k := range t.APIKeys {
		used, err := s.usage.lastUsed(ctx, t.ID, k.ID)
		if err != nil {
			s.log.Warn("api key last use unknown", "tenant", t.ID, "key", k.ID, "err", err)
		}
		out = append(out, apiKeyInfo{ID: k.ID, Name: k.Name, Scopes: k.Scopes, CreatedAt: k.Created, LastUsedAt: used})
	}
	return c.JSON(http.StatusOK, map[string]any{"apiKeys": out})
}

// handleRevokeAPIKey serves DELETE /admin/v1/tenants/:id/api-keys/:keyId: 204 once the key is
// refused (the answer waits until the revocation is visible to this instance's reads).
func (s *Server) handleRevokeAPIKey(c echo.Context) error {
	tenant, id := domain.TenantID(c.Param("id")), c.Param("keyId")
	t, err := s.svc.RevokeAPIKey(c.Request().Context(), tenant, id)
	if err != nil {
		return err
	}
	// Not in force until this instance's reads have it: no 204 before that (a 503 says it
	// was stored and will take effect).
	if err := s.awaitVisible(c, t.Version); err != nil {
		return err
	}
	s.usage.forget(tenant, id)
	s.log.Info("api key revoked", "tenant", t.ID, "key", id,
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	return c.NoContent(http.StatusNoContent)
}
