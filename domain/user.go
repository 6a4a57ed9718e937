package domain

import (
	"context"
	"time"

	"github.com/idledger/idledger/domain/scim"
)

// User is a user's state, folded from its events. Resource holds the SCIM representation as
// stored (canonical attribute names, without id, meta and schemas), so that what was sent is what
// is returned.
type User struct {
	ID       UserID         `json:"id"`
	Tenant   TenantID       `json:"tenant"`
	Schemas  []string       `json:"schemas,omitempty"`
	Resource map[string]any `json:"resource"`
	Created  time.Time      `json:"created"`
	Modified time.Time      `json:"modified"`
	Version  Version        `json:"version"`
	Deleted  bool           `json:"deleted,omitempty"`
	// Local is true for a user invited through the company's own API and not (yet) adopted
	// by SCIM provisioning.
	Local bool `json:"local,omitempty"`
}

// UserChanged records attribute changes of a user (user.attributes_changed, and
// user.deactivated / user.reactivated when "active" is among them). Operations keeps the
// request's PATCH operations as received, for auditors; it is not used by the fold.
type UserChanged struct {
	Changes    []Change `json:"changes"`
	Schemas    []string `json:"schemas,omitempty"`
	Method     string   `json:"method,omitempty"`
	Operations any      `json:"operations,omitempty"`
}

// UserDeleted records a hard delete: the id answers 404 from then on and the userName is free.
// Groups lists the groups the user left with it.
type UserDeleted struct {
	Groups []GroupID `json:"groups,omitempty"`
}

// UserCreated records a new user with its complete initial attributes.
type UserCreated struct {
	Schemas    []string       `json:"schemas,omitempty"`
	Attributes map[string]any `json:"attributes"`
}

// Exists reports whether the user has been created and not deleted.
func (u *User) Exists() bool { return u.Version != 0 && !u.Deleted }

// UserName returns the user's SCIM userName as stored.
func (u *User) UserName() string { s, _ := u.Resource["userName"].(string); return s }

// ExternalID returns the client-owned externalId, or "".
func (u *User) ExternalID() string { s, _ := u.Resource["externalId"].(string); return s }

// Active reports whether the user may sign in: only if its "active" attribute is true. A new
// user is active unless created with "active": false (scim.CanonicalUser); a PATCH that
// removes active leaves it unassigned, which fails closed: the user cannot sign in until a
// client sets active to true again.
func (u *User) Active() bool { return activeOf(u.Resource) }

// Apply folds one event into the user. Events of other aggregates and unknown types are ignored
// except for advancing the version.
func (u *User) Apply(e Event) {
	if e.Kind != KindUser {
		return
	}
	switch d := e.Data.(type) {
	case UserCreated:
		u.Local = e.Type == EventUserInvited
		u.ID = UserID(e.AggregateID)
		u.Tenant = e.Tenant
		u.Schemas = append([]string(nil), d.Schemas...)
		u.Resource = scim.Clone(d.Attributes)
		u.Created = e.At
		u.Modified = e.At
	case UserChanged:
		if e.Type == EventUserAdopted {
			u.Local = false
		}
		u.Resource = ApplyChanges(u.Resource, d.Changes)
		if d.Schemas != nil {
			u.Schemas = append([]string(nil), d.Schemas...)
		}
		u.Modified = e.At
	case UserDeleted:
		u.Deleted = true
		u.Modified = e.At
	}
	u.Version = e.Version
}

// UserReader reads users from a read model.
type UserReader interface {
	// FindUser returns the user, or an error wrapping ErrNotFound.
	FindUser(ctx context.Context, tenant TenantID, id UserID) (User, error)
	// FindUserByUserName returns the user whose folded userName equals the [UserNames] fold of name, or an
	// error wrapping ErrNotFound.
	FindUserByUserName(ctx context.Context, tenant TenantID, name string) (User, error)
}

// A ListQuery selects a tenant's users or groups for a list response.
type ListQuery struct {
	// IndexAttr and IndexValue, when set, restrict the candidates to those whose attribute
	// equals the value according to an index: "id", "userName", "externalId", "emails.value"
	// for users; "id", "displayName", "externalId" for groups. Keep still decides.
	IndexAttr, IndexValue string
	// Keep selects candidates; nil keeps all.
	Keep func(Resource) bool
	// Reads, if not nil, names what Keep and Hold read of a resource's stored attributes
	// (Resource): top-level attribute names or extension schema URNs, any letter case; a name
	// ending in ':' stands for every key whose first bytes it is, in any letter case (so "urn:"
	// for every extension). A read model may then hand them a resource whose Resource holds
	// only those keys, everything else of it complete: a scan of a large company decodes what
	// its filter reads, not whole users. Such a resource is theirs for the call only, unless
	// Hold keeps it.
	Reads []string
	// Hold, if not nil, is called with each resource Keep kept (or each candidate, without
	// Keep), in order, and reports whether it keeps that resource past the call (a sorted
	// read ranking its page); the read model then makes that resource (the same pointer)
	// complete before it reads the next candidate.
	Hold func(Resource) bool
	// Offset skips that many matches; Limit caps the page (negative means no cap).
	Offset, Limit int
	// Yield asks a long read to leave more of its processor to other requests (a company
	// pushing past its budget of scans, see httpapi's fairness): it works slower.
	Yield bool
}

// Resource is a user or group as the read model holds it, for ListQuery.Keep.
type Resource interface {
	ResourceID() string
}

// ResourceID returns the user's id.
func (u *User) ResourceID() string { return string(u.ID) }
