package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/scim"
)

// ifMatch turns the If-Match header into the version a write asserts; nil means no
// precondition (no header, or "*": RFC 9110 §13.1.1 matches any current representation, and a
// resource that does not exist answers 404 first). The header is a list of entity tags that
// matches if any one does; weak tags are accepted, as idledger's are weak. One tag is asserted
// as it is. Of several, the one naming the version the read models hold is asserted, else the
// highest: the write checks it against the log, so a tag that is not current gives 412, never
// a write without precondition. A tag that does not parse can never match.
func (s *Server) ifMatch(c echo.Context) *domain.Version {
	h := strings.Join(c.Request().Header.Values("If-Match"), ",")
	if strings.TrimSpace(h) == "" {
		return nil
	}
	var tags []domain.Version
	for _, t := range strings.Split(h, ",") {
		if strings.TrimSpace(t) == "*" {
			return nil
		}
		if v, ok := parseETag(t); ok && !slices.Contains(tags, v) {
			tags = append(tags, v)
		}
	}
	switch len(tags) {
	case 0:
		impossible := domain.Version(0)
		return &impossible
	case 1:
		return &tags[0]
	}
	if v, ok := s.currentVersion(c); ok && slices.Contains(tags, v) {
		return &v
	}
	v := slices.Max(tags)
	return &v
}

// currentVersion returns the version the read models hold of the user or group the request
// names, false if they hold none (or cannot be read: then the highest tag is asserted).
func (s *Server) currentVersion(c echo.Context) (domain.Version, bool) {
	ctx, tenant, id := c.Request().Context(), tenantOf(c), c.Param("id")
	if strings.HasPrefix(c.Path(), "/scim/v2/Groups/") {
		g, err := s.read.FindGroup(ctx, tenant, domain.GroupID(id))
		return g.Version, err == nil
	}
	u, err := s.read.FindUser(ctx, tenant, domain.UserID(id))
	return u.Version, err == nil
}

// parseETag reads the resource version of W/"n", "n", or a user's W/"n-groups" (the part a
// write can conflict with; scim_users.go).
func parseETag(h string) (domain.Version, bool) {
	h, _, _ = strings.Cut(opaqueTag(h), "-")
	n, err := strconv.ParseUint(h, 10, 64)
	return domain.Version(n), err == nil && n > 0
}

// opaqueTag returns an entity tag without its weakness prefix and quotes.
func opaqueTag(h string) string {
	return strings.Trim(strings.TrimPrefix(strings.TrimSpace(h), "W/"), `"`)
}

// notModified reports whether If-None-Match names the current entity tag, compared weakly
// (RFC 7232 §3.2).
func notModified(c echo.Context, tag string) bool {
	h := c.Request().Header.Get("If-None-Match")
	if h == "" {
		return false
	}
	current := opaqueTag(tag)
	for _, t := range strings.Split(h, ",") {
		if strings.TrimSpace(t) == "*" || opaqueTag(t) == current {
			return true
		}
	}
	return false
}

// wantsBody reports whether a PATCH should answer 200 with the resource instead of 204
// (RFC 7644 §3.5.2: when the request names attributes to return).
func wantsBody(c echo.Context) bool {
	q := c.QueryParams()
	return q.Has("attributes") || q.Has("excludedAttributes")
}

func (s *Server) handleReplaceUser(c echo.Context) error {
	body, err := readObject(c)
	if err != nil {
		return err
	}
	u, _, err := s.svc.ReplaceUser(c.Request().Context(), domain.OriginSCIM, tenantOf(c), domain.UserID(c.Param("id")), body, s.ifMatch(c))
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, u.Version); err != nil {
		return err
	}
	return s.writeUser(c, http.StatusOK, u)
}

func (s *Server) handlePatchUser(c echo.Context) error {
	body, err := readObject(c)
	if err != nil {
		return err
	}
	ops, err := scim.ParsePatchRequest(body)
	if err != nil {
		return err
	}
	u, _, err := s.svc.PatchUser(c.Request().Context(), domain.OriginSCIM, tenantOf(c), domain.UserID(c.Param("id")), ops, operationsOf(body), s.ifMatch(c))
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, u.Version); err != nil {
		return err
	}
	if wantsBody(c) {
		return s.writeUser(c, http.StatusOK, u)
	}
	c.Response().Header().Set("ETag", etag(u.Version))
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) handleDeleteUser(c echo.Context) error {
	v, err := s.svc.DeleteUser(c.Request().Context(), domain.OriginSCIM, tenantOf(c), domain.UserID(c.Param("id")), s.ifMatch(c))
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, v); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// operationsOf returns the request's Operations as received, for the audit trail.
func operationsOf(body map[string]any) any {
	for k, v := range body {
		if strings.EqualFold(k, "Operations") {
			return v
		}
	}
	return nil
}

// writeUser answers with a user, its groups (scim_users.go), its ETag, and the attributes the
// query asks for; a GET whose If-None-Match names the entity tag gets 304.
func (s *Server) writeUser(c echo.Context, status int, u domain.User) error {
	q := c.QueryParams()
	attributes, excluded := q.Get("attributes"), q.Get("excludedAttributes")
	res := s.userJSON(u)
	groups, err := s.userGroupsFor(c, attributes, excluded)
	if err != nil {
		return err
	}
	if err := groups.add(res, u.ID); err != nil {
		return err
	}
	tag := etag(u.Version)
	if meta, ok := res["meta"].(map[string]any); ok {
		tag, _ = meta["version"].(string)
	}
	c.Response().Header().Set("ETag", tag)
	if c.Request().Method == http.MethodGet && notModified(c, tag) {
		return c.NoContent(http.StatusNotModified)
	}
	return s.writeSCIM(c, status, scim.Project(res, attributes, excluded))
}
