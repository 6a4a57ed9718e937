package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// The pages a browser meets outside the console: the home page (GET /) and, for a path that
// names nothing, a 404 page instead of the JSON error the APIs answer.

// handleRootPage serves GET /: what this server is and how a company admin gets in.
func (s *Server) handleRootPage(c echo.Context) error {
	return s.writePage(c, http.StatusOK, "home", consoleView{Title: "idledger"})
}

// browserNotFound answers a route-not-found error with the HTML 404 page when the client is a
// browser (it accepts text/html) and the path is not one of the APIs, whose clients expect
// their own error bodies. It reports whether it answered.
func (s *Server) browserNotFound(err error, c echo.Context) bool {
	var he *echo.HTTPError
	if !errors.As(err, &he) || he.Code != http.StatusNotFound {
		return false
	}
	r := c.Request()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if !strings.Contains(r.Header.Get(echo.HeaderAccept), "text/html") {
		return false
	}
	for _, api := range []string{"/scim/", "/api/", "/admin/", "/saml/"} {
		if strings.HasPrefix(r.URL.Path, api) {
			return false
		}
	}
	if werr := s.writePage(c, http.StatusNotFound, "notfound", consoleView{Title: "Page not found"}); werr != nil {
		s.log.Error("write not-found page", "err", werr)
	}
	return true
}
