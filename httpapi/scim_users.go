package httpapi

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/scim"
)

// maxResults is the page size cap advertised as filter.maxResults.
const maxResults = 200

func (s *Server) handleCreateUser(c echo.Context) error {
	body, err := readObject(c)
	if err != nil {
		return err
	}
	u, err := s.svc.CreateUser(c.Request().Context(), domain.OriginSCIM, tenantOf(c), body)
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, u.Version); err != nil {
		return err
	}
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

// userGroups renders the User attribute groups (RFC 7643 §4.1.2) for the users of one response:
// the groups each user is a direct member of, as {value, $ref, display, type: "direct"}, in
// group id order. idledger has no nested groups, so every membership is direct.
//
// groups is readOnly and derived from the group aggregates, so it is never stored with the user
// (CanonicalUser drops it from POST and PUT bodies, PATCH answers 400 mutability) and the
// user's own version does not change when a group gains or loses it; the entity tag of a
// representation with groups carries a fingerprint of them (add). A user in no group has no
// groups attribute: RFC 7643 §2.5 holds an empty multi-valued attribute and an unassigned one
// equivalent, and idledger drops every empty value the same way, so clients that read
// "absent" as "none" (Entra, Okta) and those that tolerate [] both get what they expect.
//
// Each user costs one prefix scan of the user→groups index; each group's displayName is read
// once per response.
type userGroups struct {
	s      *Server
	ctx    context.Context
	tenant domain.TenantID
	seen   map[domain.GroupID]groupRef // each group read so far; name "" for a gone group
}

// groupRef is what a user's groups entry shows of a group, and the group's version.
type groupRef struct {
	name    string
	version domain.Version
}

// userGroupsFor returns the renderer of the groups attribute for a response projected by
// attributes and excludedAttributes, or nil when the response leaves groups out or the operator
// turned the company's groups feature off (its /Groups answers 403, so its users show none).
func (s *Server) userGroupsFor(c echo.Context, attributes, excluded string) (*userGroups, error) {
	if !scim.ReturnsAttribute("groups", attributes, excluded) {
		return nil, nil
	}
	ctx := c.Request().Context()
	t, err := s.read.FindTenant(ctx, tenantOf(c))
	if err != nil {
		return nil, err
	}
	if !t.Features.Groups() {
		return nil, nil
	}
	return &userGroups{s: s, ctx: ctx, tenant: t.ID, seen: make(map[domain.GroupID]groupRef)}, nil
}

// add sets res["groups"] to the groups of user, or leaves res without it when there are none.
// A nil g adds nothing.
//
// The user's version does not move when its groups change, so a representation with groups
// gets an entity tag of its own, W/"<version>-<fingerprint of the groups shown>": a conditional
// GET then never answers 304 over changed groups, and If-Match still compares the user's
// version (parseETag), which is what a write to the user can conflict with.
func (g *userGroups) add(res map[string]any, user domain.UserID) error {
	if g == nil {
		return nil
	}
	ids, err := g.s.read.GroupsOf(g.ctx, g.tenant, user)
	if err != nil || len(ids) == 0 {
		return err
	}
	out := make([]any, 0, len(ids))
	fp := fnv.New64a()
	for _, id := range ids {
		ref, seen := g.seen[id]
		if !seen {
			gr, err := g.s.read.FindGroup(g.ctx, g.tenant, id)
			if err != nil && !isNotFound(err) {
				return err
			}
			if err == nil && !gr.Deleted {
				ref.name, _ = gr.Resource["displayName"].(string)
				if ref.name == "" {
					ref.name = string(id) // displayName is required; never leave the entry blank
				}
				ref.version = gr.Version
			}
			g.seen[id] = ref
		}
		if ref.name == "" {
			continue // deleted since the scan: its memberships are on their way out
		}
		out = append(out, map[string]any{
			"value": string(id), "$ref": g.s.groupLocation(id), "display": ref.name, "type": "direct",
		})
		fmt.Fprintf(fp, "%s %d\n", id, ref.version)
	}
	if len(out) > 0 {
		res["groups"] = out
		if meta, ok := res["meta"].(map[string]any); ok {
			if tag, ok := meta["version"].(string); ok {
				meta["version"] = strings.TrimSuffix(tag, `"`) + "-" + strconv.FormatUint(fp.Sum64(), 16) + `"`
			}
		}
	}
	return nil
}
