package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
)

// Sync cycles. Every request through the SCIM API of a known company is part of a cycle
// (recordSCIM): the company's first request after a quiet gap starts the next one. Each request
// is recorded, answered or rejected, in the expiring request log, so a cycle shows its
// failures next to its changes:
//
//	GET /api/v1/provisioning/cycles?limit=&before=   cycles, newest first, with counts
//	GET /api/v1/provisioning/cycles/{n}?after=&limit= one cycle's changes (paged) and failed requests

// maxRecordDetail bounds the error detail kept in a request record.
const maxRecordDetail = 300

// recordSCIM puts each SCIM request of a company into its sync cycle and records it with its
// outcome. It runs after requireSCIMToken, so the company and the actor are known; requests
// refused before that (no or a wrong token) belong to no company and are not recorded. A
// failure to record is logged and never fails the request.
func (s *Server) recordSCIM(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		if s.audit == nil {
			return next(c)
		}
		ctx := c.Request().Context()
		tenant := tenantOf(c)
		at := s.svc.Now().UTC()
		start := time.Now()
		cycle, cerr := s.audit.EnterCycle(ctx, tenant)
		if cerr != nil {
			s.log.Warn("sync cycle unknown", "tenant", tenant, "err", cerr)
		}
		record := func(status int, herr error) {
			r := domain.RequestFrom(ctx)
			rec := audit.RequestRecord{Tenant: tenant, At: at, Cycle: cycle, Method: c.Request().Method,
				Route: c.Path(), Path: c.Request().URL.Path, Status: status, RequestID: r.Correlation,
				Actor: r.Actor, UserAgent: r.UserAgent, Source: r.Source,
				Millis: float64(time.Since(start).Microseconds()) / 1000}
			if status >= 400 {
				rec.SCIMType, rec.Detail = errorFields(herr, status)
			}
			// The record outlives a client that hangs up. No deadline of its own: the event
			// store sends records without waiting for the stream (eventstore/requests.go).
			if err := s.audit.RecordRequest(context.WithoutCancel(ctx), rec); err != nil {
				s.log.Warn("request record lost", "tenant", tenant, "request_id", r.Correlation, "err", err)
			}
		}
		defer func() {
			if p := recover(); p != nil {
				record(http.StatusInternalServerError, nil)
				panic(p)
			}
		}()
		if herr := next(c); herr != nil {
			c.Error(herr) // answer now, so the record has the status sent (as observe does)
			record(c.Response().Status, herr)
			return nil
		}
		record(c.Response().Status, nil)
		return nil
	}
}

// errorFields returns the scimType and the client-safe detail an error was answered with.
func errorFields(err error, status int) (string, string) {
	if err == nil {
		return "", ""
	}
	if status >= 500 {
		return "", "internal error"
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if m, ok := he.Message.(string); ok {
			return "", clipDetail(m)
		}
		return "", ""
	}
	for _, k := range errorKinds {
		if errors.Is(err, k.kind) {
			return k.scimType, clipDetail(domain.ErrorDetail(err))
		}
	}
	return "", ""
}

func clipDetail(s string) string {
	if len(s) > maxRecordDetail {
		return s[:maxRecordDetail] + "…"
	}
	return s
}

// cyclesPage is the answer to GET /api/v1/provisioning/cycles.
type cyclesPage struct {
	Cycles []audit.CycleSummary `json:"cycles"`
	// NextBefore is the before of the next (older) page; absent on the last.
	NextBefore int `json:"nextBefore,omitempty"`
}

func (s *Server) handleListCycles(c echo.Context) error {
	a, err := s.auditor()
	if err != nil {
		return err
	}
	p, err := page(c)
	if err != nil {
		return err
	}
	cycles, next, err := a.Cycles(c.Request().Context(), tenantOf(c), p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, cyclesPage{Cycles: cycles, NextBefore: next})
}

func (s *Server) handleGetCycle(c echo.Context) error {
	a, err := s.auditor()
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(c.Param("n"))
	if err != nil || n < 1 {
		return domain.Errorf(domain.ErrNotFound, "sync cycle %q not found", c.Param("n"))
	}
	p, err := page(c)
	if err != nil {
		return err
	}
	d, err := a.Cycle(c.Request().Context(), tenantOf(c), n, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, d)
}

// lastSyncCycle returns the company's latest cycle for GET /api/v1/provisioning, or nil. A
// failure to compute it leaves it out rather than failing the status.
func (s *Server) lastSyncCycle(ctx context.Context, tenant domain.TenantID) *audit.CycleSummary {
	if s.audit == nil {
		return nil
	}
	last, err := s.audit.LastCycle(ctx, tenant)
	if err != nil {
		s.log.Warn("last sync cycle unavailable", "tenant", tenant, "err", err)
		return nil
	}
	return last
}
