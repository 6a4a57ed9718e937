package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// The company API (/api/v1, Bearer = the company's token) is the company's own way to manage
// its users while it is not provisioning-managed, and its window on provisioning.

// companyUser is a user as the company API shows it.
type companyUser struct {
	ID        domain.UserID `json:"id"`
	UserName  string        `json:"userName"`
	Email     string        `json:"email,omitempty"`
	Name      string        `json:"name,omitempty"`
	Active    bool          `json:"active"`
	Admin     bool          `json:"admin"`
	ManagedBy string        `json:"managedBy"`
	Version   string        `json:"version"`
}

func toCompanyUser(u domain.User) companyUser {
	cu := companyUser{ID: u.ID, UserName: u.UserName(), Active: u.Active(), Admin: u.IsAdmin(),
		ManagedBy: "provisioning", Version: etag(u.Version)}
	if u.Local {
		cu.ManagedBy = "local"
	}
	cu.Name, _ = u.Resource["displayName"].(string)
	if emails, ok := u.Resource["emails"].([]any); ok {
		for i, el := range emails {
			m, _ := el.(map[string]any)
			if v, _ := m["value"].(string); v != "" && (i == 0 || m["primary"] == true) {
				cu.Email = v
			}
		}
	}
	return cu
}

// localUserBody is the body of POST and PATCH /api/v1/users.
type localUserBody struct {
	Email  *string `json:"email"`
	Name   *string `json:"name"`
	Active *bool   `json:"active"`
	Admin  *bool   `json:"admin"`
}

func readLocalUser(c echo.Context) (localUserBody, error) {
	m, err := readObject(c)
	if err != nil {
		return localUserBody{}, err
	}
	var b localUserBody
	for k, v := range m {
		switch strings.ToLower(k) {
		case "email", "name":
			s, ok := v.(string)
			if !ok {
				return b, domain.Errorf(domain.ErrInvalid, "%s must be a string", k)
			}
			if strings.EqualFold(k, "email") {
				b.Email = &s
			} else {
				b.Name = &s
			}
		case "active", "admin":
			x, ok := v.(bool)
			if !ok {
				return b, domain.Errorf(domain.ErrInvalid, "%s must be true or false", k)
			}
			if strings.EqualFold(k, "active") {
				b.Active = &x
			} else {
				b.Admin = &x
			}
		default:
			return b, domain.Errorf(domain.ErrInvalid, "unknown field %q (allowed: email, name, active, admin)", k)
		}
	}
	return b, nil
}

func (s *Server) handleInviteUser(c echo.Context) error {
	b, err := readLocalUser(c)
	if err != nil {
		return err
	}
	if b.Email == nil {
		return domain.Errorf(domain.ErrInvalid, "email is required")
	}
	name := ""
	if b.Name != nil {
		name = *b.Name
	}
	u, err := s.svc.InviteUser(c.Request().Context(), domain.OriginCompanyAPI, tenantOf(c), *b.Email, name)
	if err != nil {
		return err
	}
	if b.Admin != nil && *b.Admin {
		if u, err = s.svc.EditUserLocally(c.Request().Context(), domain.OriginCompanyAPI, tenantOf(c), u.ID, domain.LocalUserEdit{Admin: b.Admin}); err != nil {
			return err
		}
	}
	if err := s.awaitVisible(c, u.Version); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toCompanyUser(u))
}

func (s *Server) handleEditUser(c echo.Context) error {
	b, err := readLocalUser(c)
	if err != nil {
		return err
	}
	u, err := s.svc.EditUserLocally(c.Request().Context(), domain.OriginCompanyAPI, tenantOf(c), domain.UserID(c.Param("id")),
		domain.LocalUserEdit{Email: b.Email, Name: b.Name, Active: b.Active, Admin: b.Admin})
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, u.Version); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toCompanyUser(u))
}

func (s *Server) handleRemoveUser(c echo.Context) error {
	v, err := s.svc.DeleteUser(c.Request().Context(), domain.OriginCompanyAPI, tenantOf(c), domain.UserID(c.Param("id")), nil)
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, v); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// provisioningStatus is the answer to GET /api/v1/provisioning.
type provisioningStatus struct {
	Mode          string                   `json:"mode"`
	Since         *time.Time               `json:"since"`
	Cause         string                   `json:"causedByRequest,omitempty"`
	Counts        domain.ProvisioningStats `json:"counts"`
	LastSCIMWrite *time.Time               `json:"lastScimWrite"`
	AdminPresent  bool                     `json:"adminPresent"`
	LastSyncCycle any                      `json:"lastSyncCycle"`
}

func (s *Server) provisioningStatus(c echo.Context) (provisioningStatus, error) {
	ctx := c.Request().Context()
	t, err := s.read.FindTenant(ctx, tenantOf(c))
	if err != nil {
		return provisioningStatus{}, err
	}
	stats, err := s.read.ProvisioningStats(ctx, t.ID)
	if err != nil {
		return provisioningStatus{}, err
	}
	st := provisioningStatus{Mode: t.Provisioning.Mode(), Cause: t.Provisioning.Cause, Counts: stats,
		AdminPresent: stats.Admins > 0}
	if !t.Provisioning.Since.IsZero() {
		since := t.Provisioning.Since
		st.Since = &since
	}
	if !stats.LastSCIMWrite.IsZero() {
		last := stats.LastSCIMWrite
		st.LastSCIMWrite = &last
	}
	if last := s.lastSyncCycle(ctx, t.ID); last != nil { // provisioning_cycles.go
		st.LastSyncCycle = last
	}
	return st, nil
}

func (s *Server) handleProvisioning(c echo.Context) error {
	st, err := s.provisioningStatus(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

func (s *Server) handleDeactivateProvisioning(c echo.Context) error {
	t, err := s.svc.DeactivateProvisioning(c.Request().Context(), tenantOf(c), "deactivated through the company API")
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, t.Version); err != nil {
		return err
	}
	st, err := s.provisioningStatus(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}
