package httpapi

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// handlePatchTenant changes a company's features: {"features":{"groups":false}}.
func (s *Server) handlePatchTenant(c echo.Context) error {
	body, err := readObject(c)
	if err != nil {
		return err
	}
	var groups *bool
	for k, v := range body {
		if !strings.EqualFold(k, "features") {
			continue
		}
		f, ok := v.(map[string]any)
		if !ok {
			return domain.Errorf(domain.ErrInvalid, "features must be an object")
		}
		for fk, fv := range f {
			if !strings.EqualFold(fk, "groups") {
				return domain.Errorf(domain.ErrInvalid, "unknown feature %q", fk)
			}
			b, ok := fv.(bool)
			if !ok {
				return domain.Errorf(domain.ErrInvalid, "features.groups must be true or false")
			}
			groups = &b
		}
	}
	t, err := s.svc.SetFeatures(c.Request().Context(), domain.TenantID(c.Param("id")), groups)
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, t.Version); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"id": t.ID, "name": t.Name, "features": map[string]bool{"groups": t.Features.Groups()},
	})
}
