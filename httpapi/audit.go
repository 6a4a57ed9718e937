package httpapi

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
)

// The audit API (/api/v1/audit, Bearer = the company's token) answers from the event log, not
// from the read models, so deleted users and groups keep their history:
//
//	GET /api/v1/audit/users/{id}                  the user's events (and sign-ins), paged
//	GET /api/v1/audit/users?userName=…            the same for every user that ever held the name
//	GET /api/v1/audit/users/{id}/state?asOf=T     the user as it was at T (now without asOf)
//	GET /api/v1/audit/groups/{id}                 the group's events, membership included
//	GET /api/v1/audit/groups?displayName=…        every group that ever had the name
//	GET /api/v1/audit/groups/{id}/members?asOf=T  its members at T (now without asOf)
//
// Timelines are paged with ?after=<seq>&limit=<n> (default 100, at most 1000); the answer's
// "next" is the after of the next page.

// Auditor answers history questions and tracks provisioning sync cycles; *audit.Service
// implements it.
type Auditor interface {
	// EnterCycle returns the sync cycle of a SCIM request of the company arriving now,
	// starting one after a quiet gap.
	EnterCycle(ctx context.Context, tenant domain.TenantID) (int, error)
	// RecordRequest keeps a SCIM request's record (none if the server keeps none).
	RecordRequest(ctx context.Context, r audit.RequestRecord) error
	Timeline(ctx context.Context, tenant domain.TenantID, kind domain.Kind, id string, p audit.Page) (audit.Timeline, error)
	TimelineByName(ctx context.Context, tenant domain.TenantID, kind domain.Kind, name string, p audit.Page) (audit.Timeline, error)
	UserAt(ctx context.Context, tenant domain.TenantID, id domain.UserID, t time.Time) (audit.UserSnapshot, error)
	MembersAt(ctx context.Context, tenant domain.TenantID, id domain.GroupID, t time.Time) (audit.MembersSnapshot, error)
	Cycles(ctx context.Context, tenant domain.TenantID, p audit.Page) ([]audit.CycleSummary, int, error)
	Cycle(ctx context.Context, tenant domain.TenantID, n int, p audit.Page) (audit.CycleDetail, error)
	// CycleFailures is Cycle without the changes (the console lists only the failures).
	CycleFailures(ctx context.Context, tenant domain.TenantID, n int) (audit.CycleDetail, error)
	LastCycle(ctx context.Context, tenant domain.TenantID) (*audit.CycleSummary, error)
	// CatchUp folds the company's sync cycle figures up to now; CaughtUp reports whether they
	// were folded before, so that reading them is quick (console_cycles.go).
	CatchUp(ctx context.Context, tenant domain.TenantID) error
	CaughtUp(tenant domain.TenantID) bool
}

// auditor returns the Auditor, or an error if the server has none.
func (s *Server) auditor() (Auditor, error) {
	if s.audit == nil {
		return nil, domain.Errorf(domain.ErrNotFound, "audit history is not enabled on this server")
	}
	return s.audit, nil
}

// page reads ?after= and ?limit=.
func page(c echo.Context) (audit.Page, error) {
	var p audit.Page
	if v := c.QueryParam("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return p, domain.Errorf(domain.ErrInvalid, "after must be a log position (a number)")
		}
		p.After = domain.Version(n)
	}
	if v := c.QueryParam("before"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return p, domain.Errorf(domain.ErrInvalid, "before must be a cycle number")
		}
		p.Before = n
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return p, domain.Errorf(domain.ErrInvalid, "limit must be a positive number")
		}
		p.Limit = n
	}
	return p, nil
}

// asOf reads ?asOf= (RFC 3339); without it, now.
func (s *Server) asOf(c echo.Context) (time.Time, error) {
	v := c.QueryParam("asOf")
	if v == "" {
		return s.svc.Now().UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, domain.Errorf(domain.ErrInvalid, "asOf must be an RFC 3339 time such as 2026-11-20T09:00:00Z")
	}
	return t, nil
}

func (s *Server) handleAuditTimeline(kind domain.Kind) echo.HandlerFunc {
	return func(c echo.Context) error {
		a, err := s.auditor()
		if err != nil {
			return err
		}
		p, err := page(c)
		if err != nil {
			return err
		}
		t, err := a.Timeline(c.Request().Context(), tenantOf(c), kind, c.Param("id"), p)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, t)
	}
}

func (s *Server) handleAuditByName(kind domain.Kind, param string) echo.HandlerFunc {
	return func(c echo.Context) error {
		a, err := s.auditor()
		if err != nil {
			return err
		}
		name := c.QueryParam(param)
		if strings.TrimSpace(name) == "" {
			return domain.Errorf(domain.ErrInvalid, "%s is required (or ask for /%ss/{id})", param, kind)
		}
		p, err := page(c)
		if err != nil {
			return err
		}
		t, err := a.TimelineByName(c.Request().Context(), tenantOf(c), kind, name, p)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, t)
	}
}

func (s *Server) handleAuditUserState(c echo.Context) error {
	a, err := s.auditor()
	if err != nil {
		return err
	}
	at, err := s.asOf(c)
	if err != nil {
		return err
	}
	snap, err := a.UserAt(c.Request().Context(), tenantOf(c), domain.UserID(c.Param("id")), at)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, snap)
}

func (s *Server) handleAuditGroupMembers(c echo.Context) error {
	a, err := s.auditor()
	if err != nil {
		return err
	}
	at, err := s.asOf(c)
	if err != nil {
		return err
	}
	snap, err := a.MembersAt(c.Request().Context(), tenantOf(c), domain.GroupID(c.Param("id")), at)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, snap)
}

// maxUserAgent bounds the User-Agent kept on events and request records.
const maxUserAgent = 256

// clientUserAgent returns the request's User-Agent, cut to maxUserAgent bytes of printable
// text (it becomes a NATS header, which cannot hold line breaks).
func clientUserAgent(c echo.Context) string {
	ua := strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, c.Request().UserAgent())
	ua = strings.TrimSpace(ua)
	if len(ua) > maxUserAgent {
		ua = strings.ToValidUTF8(ua[:maxUserAgent], "")
	}
	return ua
}

// clientSource returns the address the request came from: the TCP peer, or what echo's
// IPExtractor says when one is configured for a trusted proxy. X-Forwarded-For alone is never
// believed: anyone can send it.
func (s *Server) clientSource(c echo.Context) string {
	if s.echo.IPExtractor != nil {
		return s.echo.IPExtractor(c.Request())
	}
	host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
	if err != nil {
		return c.Request().RemoteAddr
	}
	return host
}
