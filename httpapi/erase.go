package httpapi

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// An Eraser runs erasures of persons (README "Personal data"). Erase, for each user in turn,
// marks the erasure as begun, calls appendErased (which appends [domain.EventUserErased] and
// waits until the read models have it), then destroys the person's data key, deletes the
// request records naming them and drops them from memory; last it rewrites the read models'
// file once for all of them. An erasure interrupted at any point is finished at the next
// start. It is idempotent; on an error it returns the users erased so far.
type Eraser interface {
	Erase(ctx context.Context, tenant domain.TenantID, users []domain.UserID, appendErased func(context.Context, domain.UserID) error) ([]Erasure, error)
	// Users lists the company's users ever created: those that still exist and those deleted
	// (erased or not).
	Users(ctx context.Context, tenant domain.TenantID) (live, deleted []domain.UserID, err error)
}

// Erasure is the answer to an erase request: what was done.
type Erasure struct {
	ID     domain.UserID `json:"id"`
	Erased bool          `json:"erased"`
	// KeyDestroyed is false for a user created before personal data was encrypted: its
	// events cannot be made unreadable (README "Personal data").
	KeyDestroyed bool `json:"keyDestroyed"`
	// RequestRecords is how many SCIM request records naming the person were deleted.
	RequestRecords int `json:"requestRecordsDeleted"`
}

// erasureShape is the OpenAPI shape of [Erasure].
var erasureShape = object(map[string]any{"id": "string", "erased": "boolean", "keyDestroyed": "boolean", "requestRecordsDeleted": "integer"})

// handleEraseUser serves POST /api/v1/users/:id/erase (scope privacy:write).
func (s *Server) handleEraseUser(c echo.Context) error {
	res, err := s.erase(c, tenantOf(c), []domain.UserID{domain.UserID(c.Param("id"))})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res[0])
}

// handleAdminEraseUser serves POST /admin/v1/tenants/:id/users/:userId/erase.
func (s *Server) handleAdminEraseUser(c echo.Context) error {
	res, err := s.erase(c, domain.TenantID(c.Param("id")), []domain.UserID{domain.UserID(c.Param("userId"))})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res[0])
}

// companyErasure is the answer to POST /admin/v1/tenants/:id/erase.
type companyErasure struct {
	Users []Erasure `json:"users"`
}

// handleEraseCompany serves POST /admin/v1/tenants/:id/erase: every deleted user of the
// company is erased (offboarding). While users still exist it answers 409 and erases nothing.
func (s *Server) handleEraseCompany(c echo.Context) error {
	if s.cfg.Eraser == nil {
		return echo.NewHTTPError(http.StatusNotFound, "erasure is not available on this server")
	}
	tenant := domain.TenantID(c.Param("id"))
	if _, err := s.read.FindTenant(c.Request().Context(), tenant); err != nil {
		return err
	}
	live, deleted, err := s.cfg.Eraser.Users(c.Request().Context(), tenant)
	if err != nil {
		return err
	}
	if len(live) > 0 {
		return domain.Errorf(domain.ErrConflict, "the company still has %d users: deprovision them first (remove them from the provisioning scope, or delete them), then erase the company", len(live))
	}
	res, err := s.erase(c, tenant, deleted)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, companyErasure{Users: append([]Erasure{}, res...)})
}

// erase erases deleted users (409 for a user that still exists, before anything of it is
// erased; the users before it are erased).
func (s *Server) erase(c echo.Context, tenant domain.TenantID, users []domain.UserID) ([]Erasure, error) {
	if s.cfg.Eraser == nil {
		return nil, echo.NewHTTPError(http.StatusNotFound, "erasure is not available on this server")
	}
	res, err := s.cfg.Eraser.Erase(c.Request().Context(), tenant, users, func(ctx context.Context, id domain.UserID) error {
		v, err := s.svc.EraseUser(ctx, tenant, id)
		if err != nil {
			return err
		}
		return s.awaitVisible(c, v)
	})
	for _, r := range res {
		s.log.Info("user erased", "tenant", tenant, "user", r.ID, "key_destroyed", r.KeyDestroyed,
			"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	}
	return res, err
}
