package domain

import (
	"context"
	"time"

	"github.com/idledger/idledger/domain/scim"
)

// GroupID identifies a group inside a tenant; it is the SCIM "id" and never reused.
type GroupID string

// Group is a group's state without its members. Members live in the read model only (a group
// may have 100k of them); commands decide membership changes against it (docs/event-model.md §2.4).
type Group struct {
	ID       GroupID        `json:"id"`
	Tenant   TenantID       `json:"tenant"`
	Schemas  []string       `json:"schemas,omitempty"`
	Resource map[string]any `json:"resource"`
	Members  int            `json:"members"`
	Created  time.Time      `json:"created"`
	Modified time.Time      `json:"modified"`
	Version  Version        `json:"version"`
	Deleted  bool           `json:"deleted,omitempty"`
}

// GroupCreated records a new group with its attributes and initial members.
type GroupCreated struct {
	Schemas    []string       `json:"schemas,omitempty"`
	Attributes map[string]any `json:"attributes"`
	Members    []Member       `json:"members,omitempty"`
	// Skipped lists member values that named no user of the company and were left out.
	Skipped []string `json:"skipped,omitempty"`
}

// GroupChanged records attribute changes of a group (group.renamed when displayName changed,
// else group.attributes_changed).
type GroupChanged struct {
	Changes []Change `json:"changes"`
	Schemas []string `json:"schemas,omitempty"`
	Method  string   `json:"method,omitempty"`
}

// GroupMembersAdded records the members that were actually added (not those already present).
type GroupMembersAdded struct {
	Members []Member `json:"members"`
	Skipped []string `json:"skipped,omitempty"`
}

// GroupMembersRemoved records the members that were actually removed. Cause is "user.deleted"
// when the member left because its user was deleted.
type GroupMembersRemoved struct {
	Members []UserID `json:"members"`
	Cause   string   `json:"cause,omitempty"`
}

// GroupDeleted records a hard delete of a group.
type GroupDeleted struct{}

// DisplayName returns the group's displayName.
func (g *Group) DisplayName() string { s, _ := g.Resource["displayName"].(string); return s }

// Exists reports whether the group has been created and not deleted.
func (g *Group) Exists() bool { return g.Version != 0 && !g.Deleted }

// Apply folds one event into the group. Member events only move the member count; the member
// set itself is kept by the read model.
func (g *Group) Apply(e Event) {
	if e.Kind != KindGroup {
		return
	}
	switch d := e.Data.(type) {
	case GroupCreated:
		g.ID = GroupID(e.AggregateID)
		g.Tenant = e.Tenant
		g.Schemas = append([]string(nil), d.Schemas...)
		g.Resource = scim.Clone(d.Attributes)
		g.Members = len(d.Members)
		g.Created = e.At
		g.Modified = e.At
	case GroupChanged:
		g.Resource = ApplyChanges(g.Resource, d.Changes)
		if d.Schemas != nil {
			g.Schemas = append([]string(nil), d.Schemas...)
		}
		g.Modified = e.At
	case GroupMembersAdded:
		g.Modified = e.At
	case GroupMembersRemoved:
		g.Modified = e.At
	case GroupDeleted:
		g.Deleted = true
		g.Modified = e.At
	}
	g.Version = e.Version
}

// GroupReader reads groups and memberships from a read model.
type GroupReader interface {
	// FindGroup returns the group, or an error wrapping ErrNotFound.
	FindGroup(ctx context.Context, tenant TenantID, id GroupID) (Group, error)
	// MemberSet returns which of the given users are members of the group.
	MemberSet(ctx context.Context, tenant TenantID, id GroupID, users []UserID) (map[UserID]bool, error)
	// Members calls fn for every member of the group in id order until fn returns false.
	Members(ctx context.Context, tenant TenantID, id GroupID, fn func(Member) bool) error
	// GroupsOf returns the groups a user belongs to.
	GroupsOf(ctx context.Context, tenant TenantID, user UserID) ([]GroupID, error)
	// FindGroupByDisplayName returns the group whose folded displayName matches, or ErrNotFound.
	FindGroupByDisplayName(ctx context.Context, tenant TenantID, name string) (Group, error)
}

// ResourceID returns the group's id.
func (g *Group) ResourceID() string { return string(g.ID) }
