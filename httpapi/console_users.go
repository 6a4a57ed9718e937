package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
)

// Users and groups pages of the console. Lists are keyset pages (?after=<last id shown>) that
// read only their rows, so they stay fast for companies of 100k users and groups of 100k
// members.

// consolePageSize is the rows of a list page.
const consolePageSize = 50

// userRow is a user as the console lists it.
type userRow struct {
	companyUser
	Groups []string
}

type usersData struct {
	Managed bool
	Query   string
	Users   []userRow
	Next    string // ?after= of the next page, "" on the last
	First   bool
	Total   int
}

func (s *Server) handleConsoleUsers(c echo.Context) error {
	ctx := c.Request().Context()
	tenant := tenantOf(c)
	t, err := s.read.FindTenant(ctx, tenant)
	if err != nil {
		return err
	}
	stats, err := s.read.ProvisioningStats(ctx, tenant)
	if err != nil {
		return err
	}
	q := strings.TrimSpace(c.QueryParam("q"))
	after := c.QueryParam("after")
	var users []domain.User
	// One row more than shown says whether there is a next page.
	if q != "" {
		users, err = s.read.UsersByNamePrefix(ctx, tenant, q, after, consolePageSize+1)
	} else {
		users, err = s.read.UsersPage(ctx, tenant, domain.UserID(after), consolePageSize+1)
	}
	if err != nil {
		return err
	}
	d := usersData{Managed: t.Provisioning.Managed, Query: q, First: after == "", Total: stats.Users}
	if len(users) > consolePageSize {
		users = users[:consolePageSize]
		last := users[len(users)-1]
		d.Next = string(last.ID)
		if q != "" {
			d.Next = last.UserName()
		}
	}
	names := map[domain.GroupID]string{} // a page's users share their groups
	for _, u := range users {
		row := userRow{companyUser: toCompanyUser(u)}
		if row.Groups, err = s.groupNames(c, u.ID, 5, names); err != nil {
			return err
		}
		d.Users = append(d.Users, row)
	}
	return s.render(c, http.StatusOK, "users", "Users", "users", d)
}

// groupNames returns the display names of up to max groups of the user ("…" ends a longer
// list), remembering them in names.
func (s *Server) groupNames(c echo.Context, user domain.UserID, max int, names map[domain.GroupID]string) ([]string, error) {
	ctx := c.Request().Context()
	ids, err := s.read.GroupsOf(ctx, tenantOf(c), user)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, id := range ids {
		if max > 0 && i == max {
			out = append(out, "…")
			break
		}
		if name, ok := names[id]; ok {
			out = append(out, name)
			continue
		}
		g, err := s.read.FindGroup(ctx, tenantOf(c), id)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, err
		}
		name, _ := g.Resource["displayName"].(string)
		names[id] = name
		out = append(out, name)
	}
	return out, nil
}

type userDetail struct {
	User     companyUser
	Managed  bool
	Attrs    [][2]string
	Groups   []groupLink
	Timeline []audit.TimelineEntry
	Next     domain.Version
	AsOf     string // the asked date, as typed
	AsOfTime time.Time
	Then     *companyUser // the user as it was on AsOf
	ThenGone bool         // it did not exist yet then
}

type groupLink struct {
	ID   domain.GroupID
	Name string
}

func (s *Server) handleConsoleUser(c echo.Context) error {
	ctx := c.Request().Context()
	tenant := tenantOf(c)
	t, err := s.read.FindTenant(ctx, tenant)
	if err != nil {
		return err
	}
	id := domain.UserID(c.Param("id"))
	u, err := s.read.FindUser(ctx, tenant, id)
	if err != nil {
		return err
	}
	if !u.Exists() {
		return domain.Errorf(domain.ErrNotFound, "user %s not found", id)
	}
	d := userDetail{User: toCompanyUser(u), Managed: t.Provisioning.Managed}
	for _, k := range []string{"userName", "displayName", "externalId", "title", "preferredLanguage"} {
		if v, ok := u.Resource[k]; ok {
			d.Attrs = append(d.Attrs, [2]string{k, displayValue(v)})
		}
	}
	if n, ok := u.Resource["name"].(map[string]any); ok {
		for _, k := range []string{"givenName", "familyName"} {
			if v, ok := n[k]; ok {
				d.Attrs = append(d.Attrs, [2]string{"name." + k, displayValue(v)})
			}
		}
	}
	d.Attrs = append(d.Attrs, [2]string{"emails", d.User.Email}, [2]string{"active", displayValue(u.Active())})
	ids, err := s.read.GroupsOf(ctx, tenant, id)
	if err != nil {
		return err
	}
	for _, gid := range ids {
		g, err := s.read.FindGroup(ctx, tenant, gid)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return err
		}
		name, _ := g.Resource["displayName"].(string)
		d.Groups = append(d.Groups, groupLink{ID: gid, Name: name})
	}
	if s.audit != nil {
		p, err := page(c)
		if err != nil {
			return err
		}
		if p.Limit == 0 {
			p.Limit = consolePageSize
		}
		tl, err := s.audit.Timeline(ctx, tenant, domain.KindUser, string(id), p)
		if err != nil && !isNotFound(err) {
			return err
		}
		d.Timeline, d.Next = tl.Entries, tl.Next
		if v := c.QueryParam("asOf"); v != "" {
			at, err := parseConsoleDate(v)
			if err != nil {
				return err
			}
			d.AsOf, d.AsOfTime = v, at
			snap, err := s.audit.UserAt(ctx, tenant, id, at)
			switch {
			case isNotFound(err):
				d.ThenGone = true
			case err != nil:
				return err
			default:
				then := toCompanyUser(snap.User)
				d.Then = &then
			}
		}
	}
	return s.render(c, http.StatusOK, "user", d.User.UserName, "users", d)
}

// parseConsoleDate reads the "as it was on" field: a date (the end of that day, UTC), a
// datetime-local value or RFC 3339.
func parseConsoleDate(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02T15:04", v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t.Add(24*time.Hour - time.Nanosecond), nil
	}
	return time.Time{}, domain.Errorf(domain.ErrInvalid, "the date must look like 2026-11-20 or 2026-11-20T09:00")
}

// handleConsoleInvite serves POST /console/{tenant}/users (email, name, admin): the company
// API's invite, refused while Entra manages the users.
func (s *Server) handleConsoleInvite(c echo.Context) error {
	ctx := c.Request().Context()
	email := strings.TrimSpace(c.FormValue("email"))
	if email == "" {
		return domain.Errorf(domain.ErrInvalid, "the email is required")
	}
	u, err := s.svc.InviteUser(ctx, domain.OriginCompanyAPI, tenantOf(c), email, strings.TrimSpace(c.FormValue("name")))
	if err != nil {
		return err
	}
	if c.FormValue("admin") == "on" {
		admin := true
		if u, err = s.svc.EditUserLocally(ctx, domain.OriginCompanyAPI, tenantOf(c), u.ID, domain.LocalUserEdit{Admin: &admin}); err != nil {
			return err
		}
	}
	if err := s.awaitVisible(c, u.Version); err != nil {
		return err
	}
	return seeOther(c, "/users", "invited")
}

// handleConsoleEditUser serves POST /console/{tenant}/users/{id} (email, name, active, admin).
func (s *Server) handleConsoleEditUser(c echo.Context) error {
	email, name := strings.TrimSpace(c.FormValue("email")), strings.TrimSpace(c.FormValue("name"))
	active, admin := c.FormValue("active") == "on", c.FormValue("admin") == "on"
	u, err := s.svc.EditUserLocally(c.Request().Context(), domain.OriginCompanyAPI, tenantOf(c), domain.UserID(c.Param("id")),
		domain.LocalUserEdit{Email: &email, Name: &name, Active: &active, Admin: &admin})
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, u.Version); err != nil {
		return err
	}
	return seeOther(c, "/users/"+string(u.ID), "edited")
}

// handleConsoleRemoveUser serves POST /console/{tenant}/users/{id}/remove.
func (s *Server) handleConsoleRemoveUser(c echo.Context) error {
	v, err := s.svc.DeleteUser(c.Request().Context(), domain.OriginCompanyAPI, tenantOf(c), domain.UserID(c.Param("id")), nil)
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, v); err != nil {
		return err
	}
	return seeOther(c, "/users", "removed")
}

type groupRow struct {
	ID      domain.GroupID
	Name    string
	Members int
}

type groupsData struct {
	GroupsOff bool
	Groups    []groupRow
	Next      string
	First     bool
	Total     int
}

func (s *Server) handleConsoleGroups(c echo.Context) error {
	ctx := c.Request().Context()
	tenant := tenantOf(c)
	t, err := s.read.FindTenant(ctx, tenant)
	if err != nil {
		return err
	}
	stats, err := s.read.ProvisioningStats(ctx, tenant)
	if err != nil {
		return err
	}
	after := c.QueryParam("after")
	groups, err := s.read.GroupsPage(ctx, tenant, domain.GroupID(after), consolePageSize+1)
	if err != nil {
		return err
	}
	d := groupsData{GroupsOff: !t.Features.Groups(), First: after == "", Total: stats.Groups}
	if len(groups) > consolePageSize {
		groups = groups[:consolePageSize]
		d.Next = string(groups[len(groups)-1].ID)
	}
	for _, g := range groups {
		name, _ := g.Resource["displayName"].(string)
		d.Groups = append(d.Groups, groupRow{ID: g.ID, Name: name, Members: g.Members})
	}
	return s.render(c, http.StatusOK, "groups", "Groups", "groups", d)
}

type memberRow struct {
	ID       domain.UserID
	UserName string
	Display  string
}

type groupDetail struct {
	Group   groupRow
	Members []memberRow
	Next    string
	First   bool
}

func (s *Server) handleConsoleGroup(c echo.Context) error {
	ctx := c.Request().Context()
	tenant := tenantOf(c)
	g, err := s.read.FindGroup(ctx, tenant, domain.GroupID(c.Param("id")))
	if err != nil {
		return err
	}
	name, _ := g.Resource["displayName"].(string)
	after := c.QueryParam("after")
	ms, err := s.read.MembersPage(ctx, tenant, g.ID, domain.UserID(after), consolePageSize+1)
	if err != nil {
		return err
	}
	d := groupDetail{Group: groupRow{ID: g.ID, Name: name, Members: g.Members}, First: after == ""}
	if len(ms) > consolePageSize {
		ms = ms[:consolePageSize]
		d.Next = ms[len(ms)-1].Value
	}
	for _, m := range ms {
		row := memberRow{ID: domain.UserID(m.Value), Display: m.Display}
		if u, err := s.read.FindUser(ctx, tenant, domain.UserID(m.Value)); err == nil {
			row.UserName = u.UserName()
		} else if !isNotFound(err) {
			return err
		}
		d.Members = append(d.Members, row)
	}
	return s.render(c, http.StatusOK, "group", name, "groups", d)
}
