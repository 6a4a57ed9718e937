package httpapi

import (
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// Temporary stand-ins for the console sign-in (setup links and console sessions), replaced by
// console_auth.go when it is merged.

type consoleSession struct {
	ID                string
	Tenant            domain.TenantID
	Actor             string
	CSRF              string
	Created, LastSeen time.Time
}

func (s *Server) requireConsole(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ck, err := c.Cookie("idl_console_tmp")
		if err != nil {
			return domain.Errorf(domain.ErrUnauthorized, "sign in first")
		}
		if ck.Value != c.Param("tenant") {
			return domain.Errorf(domain.ErrForbidden, "another company")
		}
		sess := &consoleSession{ID: "tmp", Tenant: domain.TenantID(c.Param("tenant")), Actor: "console:link:tmp", CSRF: "tmp-csrf"}
		if isWrite(c.Request().Method) {
			tok := c.Request().Header.Get("X-CSRF-Token")
			if tok == "" {
				tok = c.FormValue("csrf")
			}
			if tok != sess.CSRF {
				return domain.Errorf(domain.ErrForbidden, "CSRF token missing or wrong")
			}
		}
		c.Set("consoleSession", sess)
		return s.admit(c, credential{tenant: sess.Tenant}, sess.Actor, next)
	}
}

func consoleSessionOf(c echo.Context) *consoleSession {
	s, _ := c.Get("consoleSession").(*consoleSession)
	return s
}

func setConsoleHeaders(c echo.Context) {
	h := c.Response().Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set(echo.HeaderCacheControl, "no-store")
	h.Set("Referrer-Policy", "no-referrer")
}
