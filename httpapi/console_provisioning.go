package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
)

// The provisioning log of the console (/console/{tenant}/provisioning): Entra's sync cycles
// with their counts, one cycle's failed requests, and Stop provisioning.

type provisioningData struct {
	Since      *time.Time // managed since
	Managed    bool
	AuditOff   bool
	Cycles     []audit.CycleSummary
	NextBefore int
	Cycle      *audit.CycleDetail // the cycle asked for (?cycle=n), else the newest
	Computing  bool               // the figures are being computed (a company with a long history, first view)
}

func (s *Server) handleConsoleProvisioning(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.read.FindTenant(ctx, tenantOf(c))
	if err != nil {
		return err
	}
	d := provisioningData{Managed: t.Provisioning.Managed, AuditOff: s.audit == nil}
	if !t.Provisioning.Since.IsZero() {
		since := t.Provisioning.Since
		d.Since = &since
	}
	if s.audit != nil {
		p, err := page(c)
		if err != nil {
			return err
		}
		n := 0
		if v := c.QueryParam("cycle"); v != "" {
			if n, err = strconv.Atoi(v); err != nil || n < 1 {
				return domain.Errorf(domain.ErrNotFound, "sync cycle %q not found", v)
			}
		}
		p.Limit = cyclesPerPage
		cp, err := s.cyclesPage(ctx, tenantOf(c), p, n) // console_cycles.go
		if err != nil {
			return err
		}
		d.Computing = cp == nil
		if cp != nil {
			d.Cycles, d.NextBefore, d.Cycle = cp.cycles, cp.next, cp.newest
		}
	}
	return s.render(c, http.StatusOK, "provisioning", "Provisioning logs", "provisioning", d)
}

// changeKinds name the kinds of change a sync cycle counts in the provisioning log's words, in
// the order the log lists them; the event type stays in the cell's title for those who read
// the audit export.
var changeKinds = []struct{ typ, label string }{
	{domain.EventTenantProvisioningLocked, "provisioning taken over by Entra"},
	{domain.EventUserCreated, "users created"},
	{domain.EventUserAdopted, "users matched to an existing account"},
	{domain.EventUserInvited, "users invited"},
	{domain.EventUserAttributesChanged, "users updated"},
	{domain.EventUserDeactivated, "users deactivated"},
	{domain.EventUserReactivated, "users reactivated"},
	{domain.EventUserDeleted, "users deleted"},
	{domain.EventUserErased, "users erased"},
	{domain.EventGroupCreated, "groups created"},
	{domain.EventGroupRenamed, "groups renamed"},
	{domain.EventGroupAttributesChanged, "groups updated"},
	{domain.EventGroupMembersAdded, "membership additions"},
	{domain.EventGroupMembersRemoved, "membership removals"},
	{domain.EventGroupDeleted, "groups deleted"},
	{domain.EventTenantProvisioningUnlocked, "provisioning stopped"},
}

// changeCount is one line of a cycle's changes in the provisioning log.
type changeCount struct {
	Type, Label string
	N           int
}

// changeList lists a cycle's counts of changes by type in the log's words and order; types
// without words follow by name.
func changeList(counts map[string]int) []changeCount {
	out := make([]changeCount, 0, len(counts))
	for _, k := range changeKinds {
		if n := counts[k.typ]; n > 0 {
			out = append(out, changeCount{Type: k.typ, Label: k.label, N: n})
		}
	}
	var rest []string
	for typ := range counts {
		if !slices.ContainsFunc(changeKinds, func(k struct{ typ, label string }) bool { return k.typ == typ }) {
			rest = append(rest, typ)
		}
	}
	slices.Sort(rest)
	for _, typ := range rest {
		out = append(out, changeCount{Type: typ, Label: typ, N: counts[typ]})
	}
	return out
}

// statusText names an HTTP status given as text ("409 Conflict"); other text reads as itself.
func statusText(code string) string {
	n, err := strconv.Atoi(code)
	if err != nil || http.StatusText(n) == "" {
		return code
	}
	return code + " " + http.StatusText(n)
}

// refreshAfter reloads the page while its figures are being counted.
func (d provisioningData) refreshAfter() int {
	if d.Computing {
		return 2
	}
	return 0
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
