package httpapi

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
)

// The provisioning log of the console (/console/{tenant}/provisioning): Entra's sync cycles
// with their counts, one cycle's failed requests, and Stop provisioning.

type provisioningData struct {
	Status     provisioningStatus
	Managed    bool
	AuditOff   bool
	Cycles     []audit.CycleSummary
	NextBefore int
	Cycle      *audit.CycleDetail // the cycle asked for (?cycle=n), else the newest
}

func (s *Server) handleConsoleProvisioning(c echo.Context) error {
	ctx := c.Request().Context()
	st, err := s.provisioningStatus(c) // company.go: what GET /api/v1/provisioning answers
	if err != nil {
		return err
	}
	d := provisioningData{Status: st, Managed: st.Mode == domain.ModeManaged, AuditOff: s.audit == nil}
	if s.audit != nil {
		p, err := page(c)
		if err != nil {
			return err
		}
		p.Limit = 20
		if d.Cycles, d.NextBefore, err = s.audit.Cycles(ctx, tenantOf(c), p); err != nil {
			return err
		}
		n := 0
		if v := c.QueryParam("cycle"); v != "" {
			if n, err = strconv.Atoi(v); err != nil || n < 1 {
				return domain.Errorf(domain.ErrNotFound, "sync cycle %q not found", v)
			}
		} else if len(d.Cycles) > 0 {
			n = d.Cycles[0].Number
		}
		if n > 0 {
			cd, err := s.audit.Cycle(ctx, tenantOf(c), n, audit.Page{Limit: consolePageSize})
			if err != nil {
				return err
			}
			d.Cycle = &cd
		}
	}
	return s.render(c, http.StatusOK, "provisioning", "Provisioning logs", "provisioning", d)
}

// handleConsoleStopProvisioning serves POST /console/{tenant}/provisioning/stop: the company
// goes back to manual mode (as POST /api/v1/provisioning/deactivate).
func (s *Server) handleConsoleStopProvisioning(c echo.Context) error {
	if c.FormValue("confirm") != "yes" {
		return domain.Errorf(domain.ErrInvalid, "tick the confirmation to stop provisioning")
	}
	t, err := s.svc.DeactivateProvisioning(c.Request().Context(), tenantOf(c), "stopped in the company console")
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, t.Version); err != nil {
		return err
	}
	return seeOther(c, "/provisioning", "stopped")
}
