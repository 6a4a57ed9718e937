package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// RegisterConsoleProbe registers, for tests of the console's sign-in, a stand-in for the
// console's pages behind requireConsole: GET and POST /console/:tenant answer what the guard
// admitted (the session's company, actor and CSRF token, and the request's actor and company);
// a POST with the form field "groups" also switches the company's groups feature, so that the
// event's actor can be checked.
func (s *Server) RegisterConsoleProbe() {
	probe := func(c echo.Context) error {
		sess := consoleSessionOf(c)
		if sess == nil {
			return c.String(http.StatusInternalServerError, "no session in the context")
		}
		ctx := c.Request().Context()
		version := domain.Version(0)
		if g := c.FormValue("groups"); c.Request().Method == http.MethodPost && g != "" {
			on := g == "true"
			t, err := s.svc.SetFeatures(ctx, tenantOf(c), &on)
			if err != nil {
				return err
			}
			version = t.Version
		}
		return c.JSON(http.StatusOK, map[string]any{
			"tenant": sess.Tenant, "actor": sess.Actor, "csrf": sess.CSRF,
			"requestActor": domain.RequestFrom(ctx).Actor, "requestTenant": tenantOf(c), "version": version,
		})
	}
	s.echo.GET("/console/:tenant", probe, s.requireConsole)
	s.echo.POST("/console/:tenant", probe, s.requireConsole)
}
