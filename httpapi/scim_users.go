package httpapi

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
)

// maxResults is the page size cap advertised as filter.maxResults.
const maxResults = 200

func (s *Server) handleCreateUser(c echo.Context) error {
	body, err := readObject(c)
	if err != nil {
		return err
	}
	u, err := s.svc.CreateUser(c.Request().Context(), tenantOf(c), body)
	if err != nil {
		return err
	}
	s.waitVisible(c, u.Version)
	c.Response().Header().Set(echo.HeaderLocation, s.userLocation(u.ID))
	c.Response().Header().Set("ETag", etag(u.Version))
	return s.writeSCIM(c, http.StatusCreated, s.userJSON(u))
}

// paging reads startIndex (1-based, values below 1 mean 1) and count (default and cap
// maxResults, negative means 0) as RFC 7644 §3.4.2.4 says.
func paging(startIndex, count string) (int, int) {
	start, n := 1, maxResults
	if startIndex != "" { // absent in most requests: spare Atoi's error
		if v, err := strconv.Atoi(startIndex); err == nil && v >= 1 {
			start = v
		}
	}
	if count != "" {
		if v, err := strconv.Atoi(count); err == nil && v <= maxResults {
			n = v
		}
	}
	if n < 0 {
		n = 0
	}
	return start, n
}
