package httpapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	filter "github.com/scim2/filter-parser/v2"

	"github.com/idledger/idledger/domain"
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
	return writeSCIM(c, http.StatusCreated, s.userJSON(u))
}

func (s *Server) handleGetUser(c echo.Context) error {
	u, err := s.read.FindUser(c.Request().Context(), tenantOf(c), domain.UserID(c.Param("id")))
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", etag(u.Version))
	return writeSCIM(c, http.StatusOK, s.userJSON(u))
}

func (s *Server) handleListUsers(c echo.Context) error {
	ctx := c.Request().Context()
	q := c.QueryParams()
	start, count := paging(q.Get("startIndex"), q.Get("count"))
	var users []domain.User
	total := 0
	if f := strings.TrimSpace(q.Get("filter")); f != "" {
		name, err := userNameEq(f)
		if err != nil {
			return err
		}
		u, err := s.read.FindUserByUserName(ctx, tenantOf(c), name)
		switch {
		case err == nil:
			total = 1
			if start == 1 && count > 0 {
				users = []domain.User{u}
			}
		case !isNotFound(err):
			return err
		}
	} else {
		var err error
		users, total, err = s.read.ListUsers(ctx, tenantOf(c), nil, start-1, count)
		if err != nil {
			return err
		}
	}
	resources := make([]any, 0, len(users))
	for _, u := range users {
		resources = append(resources, s.userJSON(u))
	}
	return writeSCIM(c, http.StatusOK, listResponse(total, start, resources))
}

// paging reads startIndex (1-based, values below 1 mean 1) and count (default and cap
// maxResults, negative means 0) as RFC 7644 §3.4.2.4 says.
func paging(startIndex, count string) (int, int) {
	start, err := strconv.Atoi(startIndex)
	if err != nil || start < 1 {
		start = 1
	}
	n, err := strconv.Atoi(count)
	if err != nil || n > maxResults {
		n = maxResults
	}
	if n < 0 {
		n = 0
	}
	return start, n
}

// userNameEq accepts the filter `userName eq "value"`, the one the walking skeleton supports.
// TODO(#3): the full RFC 7644 filter grammar over the read model.
func userNameEq(raw string) (string, error) {
	expr, err := filter.ParseFilter([]byte(raw))
	if err != nil {
		return "", domain.Errorf(domain.ErrInvalidFilter, "filter %q cannot be parsed: %v", raw, err)
	}
	ae, ok := expr.(*filter.AttributeExpression)
	if !ok || ae.Operator != filter.EQ || !strings.EqualFold(ae.AttributePath.AttributeName, "userName") ||
		ae.AttributePath.SubAttribute != nil || (ae.AttributePath.URIPrefix != nil && *ae.AttributePath.URIPrefix != domain.SchemaUser) {
		return "", domain.Errorf(domain.ErrInvalidFilter, "filter %q is not supported yet; use userName eq \"value\"", raw)
	}
	v, ok := ae.CompareValue.(string)
	if !ok {
		return "", domain.Errorf(domain.ErrInvalidFilter, "userName must be compared with a string")
	}
	return v, nil
}
