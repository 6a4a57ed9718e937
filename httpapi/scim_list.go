package httpapi

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/scim"
	"github.com/idledger/idledger/projections/usernames"
)

// listParams are a list request's query parameters (RFC 7644 §3.4.2).
type listParams struct {
	filter     scim.Filter
	filterText string
	start      int
	count      int
	sortBy     string
	sortOrder  string
	attributes string
	excluded   string
}

func readListParams(c echo.Context) (listParams, error) {
	return parseListParams(c.QueryParams())
}

// parseListParams reads list parameters from a GET's query or a SearchRequest (scim_search.go).
func parseListParams(q url.Values) (listParams, error) {
	p := listParams{
		sortBy: q.Get("sortBy"), sortOrder: q.Get("sortOrder"),
		attributes: q.Get("attributes"), excluded: q.Get("excludedAttributes"),
	}
	p.start, p.count = paging(q.Get("startIndex"), q.Get("count"))
	if raw := strings.TrimSpace(q.Get("filter")); raw != "" {
		f, err := scim.ParseFilter(raw)
		if err != nil {
			return p, err
		}
		p.filter, p.filterText = f, raw
	}
	return p, nil
}

// userIndexes and groupIndexes are the attributes the read models answer by an index look-up
// (domain.ListQuery); a list read with no equality on one of them scans the company.
var (
	userIndexes  = []string{"id", "userName", "externalId", "emails.value"}
	groupIndexes = []string{"id", "displayName", "externalId"}
)

// lookup returns the filter's first equality that one of indexes answers (in the order of
// scim.EqualityLookups), and whether there is one.
func (p listParams) lookup(indexes []string) (scim.Lookup, bool) {
	if p.filter == nil {
		return scim.Lookup{}, false
	}
	for _, l := range scim.EqualityLookups(p.filter) {
		if slices.Contains(indexes, l.Attr) {
			return l, true
		}
	}
	return scim.Lookup{}, false
}

// query turns list parameters into a read-model query: an index of indexes when the filter
// has an equality on it, Match as the authority, and paging unless sorting needs every match.
//
// view is what the filter sees of a resource (its representation); stored, if not nil, returns
// the resource's stored attributes, which the representation holds unchanged next to schemas,
// id and meta. A filter that reads none of those three sees the same through stored, without
// a representation being rendered for every candidate. With stored, view must render a
// resource from its stored attributes key by key (as resourceJSON does): the query then names
// what the filter reads (Reads), and the read model decodes candidates only that far.
func (p listParams) query(indexes []string, view, stored func(domain.Resource) map[string]any) domain.ListQuery {
	q := domain.ListQuery{Offset: p.start - 1, Limit: p.count}
	if p.sortBy != "" {
		q.Offset, q.Limit = 0, -1
	}
	if stored != nil {
		q.Reads = []string{}
		if p.filter != nil {
			q.Reads = scim.ReadAttributes(p.filter)
		}
	}
	if p.filter != nil {
		if l, ok := p.lookup(indexes); ok {
			q.IndexAttr, q.IndexValue = l.Attr, l.Value
		}
		f := p.filter
		if stored != nil && readsStoredOnly(f) {
			view = stored
		}
		// userNames compare through the fold that uniqueness and the index use.
		match := scim.Matcher{UserName: usernames.Fold}.Compile(f)
		q.Keep = func(r domain.Resource) bool { return match(view(r)) }
	}
	return q
}

// readsStoredOnly reports whether Match(f, …) reads nothing but stored attributes: every
// attribute path in f names, without a schema URN, a top-level attribute other than schemas,
// id and meta (the three a representation adds). Then Match gives the same on the stored
// attributes as on the representation: it looks attributes up by name (ignoring case) and
// searches extensions by their "urn:" keys, and the two maps agree on all those keys
// (TestReadsStoredOnly). Hand-built trees (pointer nodes) answer false.
func readsStoredOnly(f scim.Filter) bool {
	switch x := f.(type) {
	case scim.CompareFilter:
		return storedPath(x.Path)
	case scim.ValuePathFilter:
		return storedPath(x.Path) // the inner filter sees elements of that attribute only
	case scim.LogicalFilter:
		return readsStoredOnly(x.Left) && readsStoredOnly(x.Right)
	case scim.NotFilter:
		return readsStoredOnly(x.Filter)
	}
	return false
}

// storedPath reports whether p names a stored top-level attribute without a URN.
func storedPath(p scim.AttrPath) bool {
	if p.URN != "" {
		return false
	}
	switch strings.ToLower(p.Attr) {
	case "schemas", "id", "meta":
		return false
	}
	return true
}

// page renders, sorts if asked, pages and projects a list response. complete, if not nil,
// adds to the resources of the page what costs a read per resource (a user's groups), once
// sorting has left only those.
func (p listParams) page(total int, rendered []map[string]any, complete func(r map[string]any) error) (map[string]any, error) {
	if p.sortBy != "" {
		if err := scim.SortResources(rendered, p.sortBy, p.sortOrder); err != nil {
			return nil, err
		}
		from := min(p.start-1, len(rendered))
		to := min(from+p.count, len(rendered))
		rendered = rendered[from:to]
	}
	if complete != nil {
		for _, r := range rendered {
			if err := complete(r); err != nil {
				return nil, err
			}
		}
	}
	out := make([]any, len(rendered))
	for i, r := range rendered {
		if p.attributes == "" && p.excluded == "" {
			out[i] = r // rendered for this answer only: nothing to project, no need to copy
			continue
		}
		out[i] = scim.Project(r, p.attributes, p.excluded)
	}
	return listResponse(total, p.start, out), nil
}

// userView is what a filter sees of a user: its representation with id and meta.
func (s *Server) userView(r domain.Resource) map[string]any {
	return s.userJSON(*r.(*domain.User))
}

// userStored returns a user's stored attributes, what userView holds besides schemas, id and
// meta.
func userStored(r domain.Resource) map[string]any {
	return r.(*domain.User).Resource
}

// answerList answers a list request (GET) or a search request (POST .search): read its
// parameters, list, and write the ListResponse.
func (s *Server) answerList(c echo.Context, params func(echo.Context) (listParams, error),
	list func(echo.Context, listParams) (map[string]any, error)) error {
	p, err := params(c)
	if err != nil {
		return err
	}
	body, err := list(c, p)
	if err != nil {
		return err
	}
	return s.writeSCIM(c, http.StatusOK, body)
}

func (s *Server) handleListUsers(c echo.Context) error {
	return s.answerList(c, readListParams, s.listUsers)
}

// listUsers answers a list or search request for users with its ListResponse.
func (s *Server) listUsers(c echo.Context, p listParams) (map[string]any, error) {
	done, err := s.admitList(c, p, userIndexes) // fairness.go
	if err != nil {
		return nil, err
	}
	defer done()
	q := p.query(userIndexes, s.userView, userStored)
	s.yieldScans(c, &q)                             // fairness.go
	rank, err := p.rank(&q, s.userView, userStored) // scim_list_rank.go
	if err != nil {
		return nil, err
	}
	users, total, err := s.read.QueryUsers(c.Request().Context(), tenantOf(c), q)
	if err != nil {
		return nil, readError(err)
	}
	if rank != nil {
		users, p = rankedPage[domain.User](p, rank)
	}
	rendered := make([]map[string]any, len(users))
	for i, u := range users {
		rendered[i] = s.userJSON(u)
	}
	var complete func(map[string]any) error
	if len(users) > 0 {
		groups, err := s.userGroupsFor(c, p.attributes, p.excluded)
		if err != nil {
			return nil, err
		}
		if groups != nil {
			complete = func(r map[string]any) error {
				id, _ := r["id"].(string) // sorting reorders rendered: take the id from the resource
				return groups.add(r, domain.UserID(id))
			}
		}
	}
	return p.page(total, rendered, complete)
}

func (s *Server) handleGetUser(c echo.Context) error {
	u, err := s.read.FindUser(c.Request().Context(), tenantOf(c), domain.UserID(c.Param("id")))
	if err != nil {
		return err
	}
	return s.writeUser(c, http.StatusOK, u) // answers 304 to a matching If-None-Match
}
