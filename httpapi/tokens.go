package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// handleRotateToken serves POST /admin/v1/tenants/:id/rotate-token: the company gets a new SCIM
// token, in this answer only (the same shape as the answer to POST /admin/v1/tenants). The
// answer waits until the read model has the new hash, so from then on the old token is refused.
// The log and the access log see the token's hash, never the token.
func (s *Server) handleRotateToken(c echo.Context) error {
	t, token, err := s.svc.RotateSCIMToken(c.Request().Context(), domain.TenantID(c.Param("id")))
	if err != nil {
		return err
	}
	// The old token is refused only once this instance's reads have the new hash: never answer
	// before that. A 503 drops the new token (nobody has seen it); the operator rotates again.
	if err := s.awaitVisible(c, t.Version); err != nil {
		return err
	}
	s.log.Info("scim token rotated", "tenant", t.ID, "token_sha256", t.SCIMTokenHash[:16],
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	c.Response().Header().Set("Cache-Control", "no-store") // the secret must not sit in a cache
	return c.JSON(http.StatusOK, s.TenantCreatedResponse(t, token))
}
