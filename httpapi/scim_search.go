package httpapi

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// schemaSearchRequest is the message schema of a query sent with POST (RFC 7644 §3.4.3).
const schemaSearchRequest = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"

// readSearchRequest reads the body of a POST …/.search (RFC 7644 §3.4.3) into the list
// parameters the equivalent GET carries in its query, so that both take the same path
// (parseListParams). The body's attributes and excludedAttributes are lists of attribute names
// (a comma-separated string is accepted as well), startIndex and count integers, filter, sortBy
// and sortOrder strings; keys are matched without regard to case, unknown ones are ignored as
// unknown query parameters are. A body that is not a JSON object is ErrInvalidSyntax; one
// without the SearchRequest schema, or with a value of the wrong type, ErrInvalid.
func readSearchRequest(c echo.Context) (listParams, error) {
	body, err := readObject(c)
	if err != nil {
		return listParams{}, err
	}
	q := url.Values{}
	hasSchema := false
	for k, v := range body {
		switch key := strings.ToLower(k); key {
		case "schemas":
			list, ok := v.([]any)
			if !ok {
				return listParams{}, domain.Errorf(domain.ErrInvalid, "schemas must be a list holding %q", schemaSearchRequest)
			}
			for _, s := range list {
				if str, ok := s.(string); ok && strings.EqualFold(str, schemaSearchRequest) {
					hasSchema = true
				}
			}
		case "attributes", "excludedattributes":
			names, err := attributeList(k, v)
			if err != nil {
				return listParams{}, err
			}
			q.Set(queryName(key), names)
		case "filter", "sortby", "sortorder":
			str, ok := v.(string)
			if !ok {
				return listParams{}, domain.Errorf(domain.ErrInvalid, "%s must be a string", k)
			}
			q.Set(queryName(key), str)
		case "startindex", "count":
			n, ok := v.(float64)
			if !ok || n != float64(int64(n)) {
				return listParams{}, domain.Errorf(domain.ErrInvalid, "%s must be an integer", k)
			}
			q.Set(queryName(key), strconv.FormatInt(int64(n), 10))
		}
	}
	if !hasSchema {
		return listParams{}, domain.Errorf(domain.ErrInvalid, "a search request must have schemas [%q]", schemaSearchRequest)
	}
	return parseListParams(q)
}

// queryName returns the query parameter of a SearchRequest attribute given in lower case.
func queryName(lower string) string {
	for _, name := range []string{"attributes", "excludedAttributes", "filter", "sortBy", "sortOrder", "startIndex", "count"} {
		if strings.EqualFold(name, lower) {
			return name
		}
	}
	return lower
}

// attributeList renders a SearchRequest's attributes or excludedAttributes as the
// comma-separated list the query parameter holds.
func attributeList(key string, v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []any:
		names := make([]string, len(x))
		for i, el := range x {
			str, ok := el.(string)
			if !ok || strings.Contains(str, ",") {
				return "", domain.Errorf(domain.ErrInvalid, "%s must be a list of attribute names", key)
			}
			names[i] = str
		}
		return strings.Join(names, ","), nil
	}
	return "", domain.Errorf(domain.ErrInvalid, "%s must be a list of attribute names", key)
}

// handleSearchUsers serves POST /Users/.search: GET /Users with its query in the body.
func (s *Server) handleSearchUsers(c echo.Context) error {
	return s.answerList(c, readSearchRequest, s.listUsers)
}

// handleSearchGroups serves POST /Groups/.search: GET /Groups with its query in the body.
func (s *Server) handleSearchGroups(c echo.Context) error {
	return s.answerList(c, readSearchRequest, s.listGroups)
}

// handleSearch serves POST /.search, a query over all resource types (RFC 7644 §3.4.3): the
// users that match, then the groups that match (none when the company's groups feature is
// off), paged as one list. sortBy orders the users among themselves and the groups among
// themselves; a page that spans both ends with the first groups. Each part is the
// corresponding list request's answer, so a resource looks as GET /Users or GET /Groups shows
// it.
func (s *Server) handleSearch(c echo.Context) error {
	p, err := readSearchRequest(c)
	if err != nil {
		return err
	}
	users, err := s.listUsers(c, p)
	if err != nil {
		return err
	}
	total, _ := users["totalResults"].(int)
	resources, _ := users["Resources"].([]any)
	t, err := s.read.FindTenant(c.Request().Context(), tenantOf(c))
	if err != nil {
		return err
	}
	if t.Features.Groups() {
		// The groups' page starts where the users end: at 1 if this page holds users (or
		// could), else as far past the users' end as the page starts.
		g := p
		g.start = max(1, p.start-total)
		g.count = p.count - len(resources)
		groups, err := s.listGroups(c, g)
		if err != nil {
			return err
		}
		n, _ := groups["totalResults"].(int)
		more, _ := groups["Resources"].([]any)
		total += n
		resources = append(resources, more...)
	}
	return s.writeSCIM(c, http.StatusOK, listResponse(total, p.start, resources))
}
