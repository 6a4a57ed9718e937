package httpapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/scim"
)

// requireGroups answers 403 when the operator turned groups off for the company.
func (s *Server) requireGroups(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		t, err := s.read.FindTenant(c.Request().Context(), tenantOf(c))
		if err != nil {
			return err
		}
		if !t.Features.Groups() {
			return domain.Errorf(domain.ErrForbidden, "groups are not enabled for this company; ask the operator to turn on the groups feature")
		}
		return next(c)
	}
}

func (s *Server) groupLocation(id domain.GroupID) string {
	return s.cfg.BaseURL + "/scim/v2/Groups/" + string(id)
}

// groupJSON renders a group; with members it lists them from the read model.
func (s *Server) groupJSON(ctx context.Context, g domain.Group, withMembers bool) (map[string]any, error) {
	out := resourceJSON(g.Resource, g.Schemas, scim.SchemaGroup, string(g.ID), "Group",
		g.Created, g.Modified, s.groupLocation(g.ID), g.Version)
	if withMembers {
		members := []any{}
		err := s.read.Members(ctx, g.Tenant, g.ID, func(m domain.Member) bool {
			el := map[string]any{"value": m.Value, "$ref": s.userLocation(domain.UserID(m.Value)), "type": "User"}
			if m.Display != "" {
				el["display"] = m.Display
			}
			members = append(members, el)
			return true
		})
		if err != nil {
			return nil, err
		}
		out["members"] = members
	}
	return out, nil
}

// membersWanted reports whether a response should list members, given attributes and
// excludedAttributes (Entra always excludes them on reads).
func membersWanted(attributes, excluded string) bool {
	has := func(list string) bool {
		for _, a := range strings.Split(list, ",") {
			a = strings.ToLower(strings.TrimSpace(a))
			a = strings.TrimPrefix(a, strings.ToLower(scim.SchemaGroup)+":")
			if a == "members" || strings.HasPrefix(a, "members.") {
				return true
			}
		}
		return false
	}
	if strings.TrimSpace(attributes) != "" {
		return has(attributes)
	}
	return !has(excluded)
}

func (s *Server) writeGroup(c echo.Context, status int, g domain.Group) error {
	q := c.QueryParams()
	body, err := s.groupJSON(c.Request().Context(), g, membersWanted(q.Get("attributes"), q.Get("excludedAttributes")))
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", etag(g.Version))
	return s.writeSCIM(c, status, scim.Project(body, q.Get("attributes"), q.Get("excludedAttributes")))
}

func (s *Server) handleCreateGroup(c echo.Context) error {
	body, err := readObject(c)
	if err != nil {
		return err
	}
	g, _, skipped, err := s.svc.CreateGroup(c.Request().Context(), domain.OriginSCIM, tenantOf(c), body)
	if err != nil {
		return err
	}
	s.logSkipped(c, g.ID, skipped)
	if err := s.awaitVisible(c, g.Version); err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, s.groupLocation(g.ID))
	return s.writeGroup(c, http.StatusCreated, g)
}

func (s *Server) logSkipped(c echo.Context, id domain.GroupID, skipped []string) {
	if len(skipped) > 0 {
		s.log.Warn("group members skipped: no such user in this company", "group", id, "members", skipped,
			"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	}
}

func (s *Server) handleGetGroup(c echo.Context) error {
	g, err := s.read.FindGroup(c.Request().Context(), tenantOf(c), domain.GroupID(c.Param("id")))
	if err != nil {
		return err
	}
	if notModified(c, etag(g.Version)) {
		c.Response().Header().Set("ETag", etag(g.Version))
		return c.NoContent(http.StatusNotModified)
	}
	return s.writeGroup(c, http.StatusOK, g)
}

func (s *Server) handleListGroups(c echo.Context) error {
	return s.answerList(c, readListParams, s.listGroups)
}

// listGroups answers a list or search request for groups with its ListResponse.
func (s *Server) listGroups(c echo.Context, p listParams) (map[string]any, error) {
	done, err := s.admitList(c, p, groupIndexes) // fairness.go
	if err != nil {
		return nil, err
	}
	defer done()
	ctx := c.Request().Context()
	filterMembers := strings.Contains(strings.ToLower(p.filterText), "members")
	view := func(r domain.Resource) map[string]any {
		m, err := s.groupJSON(ctx, *r.(*domain.Group), filterMembers)
		if err != nil {
			return map[string]any{}
		}
		return m
	}
	q := p.query(groupIndexes, view, nil)
	s.yieldScans(c, &q)                            // fairness.go
	rank, err := p.rankGroups(&q, s.groupSortView) // scim_list_rank.go
	if err != nil {
		return nil, err
	}
	groups, total, err := s.read.QueryGroups(ctx, tenantOf(c), q)
	if err != nil {
		return nil, readError(err)
	}
	if rank != nil {
		groups, p = rankedPage[domain.Group](p, rank)
	}
	withMembers := membersWanted(p.attributes, p.excluded)
	rendered := make([]map[string]any, len(groups))
	for i, g := range groups {
		if rendered[i], err = s.groupJSON(ctx, g, withMembers); err != nil {
			return nil, err
		}
	}
	return p.page(total, rendered, nil)
}

func (s *Server) handleReplaceGroup(c echo.Context) error {
	body, err := readObject(c)
	if err != nil {
		return err
	}
	r, err := s.svc.ReplaceGroup(c.Request().Context(), domain.OriginSCIM, tenantOf(c), domain.GroupID(c.Param("id")), body, s.ifMatch(c))
	if err != nil {
		return err
	}
	s.logSkipped(c, r.Group.ID, r.Skipped)
	if err := s.awaitVisible(c, r.Group.Version); err != nil {
		return err
	}
	return s.writeGroup(c, http.StatusOK, r.Group)
}

func (s *Server) handlePatchGroup(c echo.Context) error {
	body, err := readObject(c)
	if err != nil {
		return err
	}
	ops, err := scim.ParsePatchRequest(body)
	if err != nil {
		return err
	}
	r, err := s.svc.PatchGroup(c.Request().Context(), domain.OriginSCIM, tenantOf(c), domain.GroupID(c.Param("id")), ops, s.ifMatch(c))
	if err != nil {
		return err
	}
	s.logSkipped(c, r.Group.ID, r.Skipped)
	if err := s.awaitVisible(c, r.Group.Version); err != nil {
		return err
	}
	if wantsBody(c) {
		return s.writeGroup(c, http.StatusOK, r.Group)
	}
	c.Response().Header().Set("ETag", etag(r.Group.Version))
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) handleDeleteGroup(c echo.Context) error {
	v, err := s.svc.DeleteGroup(c.Request().Context(), domain.OriginSCIM, tenantOf(c), domain.GroupID(c.Param("id")), s.ifMatch(c))
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, v); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
