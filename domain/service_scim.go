package domain

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/idledger/idledger/domain/scim"
)

// memberChunk is the most members one membership event carries, so that an event stays far
// below NATS' 1 MB message limit (docs/event-model.md §2.2).
const memberChunk = 5000

// ReplaceUser replaces a user's attributes with a full representation (PUT, RFC 7644 §3.5.1):
// absent attributes are cleared, read-only ones ignored, except active, which keeps its value
// when the representation does not mention it (see the comment inside). A replace that changes nothing
// appends nothing. It returns the user and whether it changed.
func (s *Service) ReplaceUser(ctx context.Context, o Origin, tenant TenantID, id UserID, in map[string]any, ifMatch *Version) (User, bool, error) {
	attrs, schemas, err := scim.CanonicalUser(in)
	if err != nil {
		return User{}, false, err
	}
	keepActive := !slices.ContainsFunc(slices.Collect(maps.Keys(in)), func(k string) bool { return strings.EqualFold(k, "active") })
	return s.changeUser(ctx, o, tenant, id, ifMatch, "PUT", nil, func(u User) (map[string]any, []string, error) {
		if keepActive {
			// A replacement that does not mention active neither re-activates a deactivated user
			// nor deactivates an active one: the status changes only when a client says so.
			attrs = maps.Clone(attrs)
			if v, ok := u.Resource["active"]; ok {
				attrs["active"] = v
			} else {
				delete(attrs, "active")
			}
		}
		return attrs, schemas, nil
	})
}

// PatchUser applies PATCH operations (RFC 7644 §3.5.2) atomically: all or nothing, one event.
// raw is the request's operations as received, kept in the event for auditors.
func (s *Service) PatchUser(ctx context.Context, o Origin, tenant TenantID, id UserID, ops []scim.PatchOp, raw any, ifMatch *Version) (User, bool, error) {
	return s.changeUser(ctx, o, tenant, id, ifMatch, "PATCH", raw, func(u User) (map[string]any, []string, error) {
		return scim.PatchUser(u.Resource, u.Schemas, ops)
	})
}

// changeUser decides with change and appends the difference as one event. The event records
// method, or "API" for the company's own API. A SCIM change to a user invited locally adopts it
// (user.adopted), even when it changes nothing else.
func (s *Service) changeUser(ctx context.Context, o Origin, tenant TenantID, id UserID, ifMatch *Version, method string, raw any,
	change func(User) (map[string]any, []string, error)) (User, bool, error) {
	if o == OriginCompanyAPI {
		method = "API"
	}
	var newName string
	u, changed, err := run(ctx, s, userKind, target{tenant: tenant, id: string(id), origin: o, ifMatch: ifMatch}, func(u User) (decision, error) {
		next, schemas, err := change(u)
		if err != nil {
			return decision{}, err
		}
		if n, ok := next["userName"].(string); ok && n != u.UserName() {
			if n, err = s.prepareUserName(n); err != nil {
				return decision{}, err
			}
			next["userName"] = n
		}
		changes := DiffResource(u.Resource, next)
		schemasChanged := !slices.Equal(schemas, u.Schemas)
		adopt := u.Local && o == OriginSCIM // provisioning takes over a locally invited user
		if len(changes) == 0 && !schemasChanged && !adopt {
			return decision{}, nil
		}
		data := UserChanged{Changes: changes, Method: method, Operations: raw}
		if schemasChanged {
			data.Schemas = schemas
		}
		typ := EventUserAttributesChanged
		if was, now := u.Active(), activeOf(next); was != now {
			typ = map[bool]string{true: EventUserReactivated, false: EventUserDeactivated}[now]
		}
		if adopt {
			typ = EventUserAdopted
		}
		d := decision{events: []Event{s.newEvent(ctx, tenant, KindUser, string(id), typ, data)}}
		oldName := u.UserName()
		newName = stringAttr(next, "userName")
		if s.names().Fold(oldName) != s.names().Fold(newName) {
			if err := s.heldUnderOldFold(ctx, tenant, newName, string(id)); err != nil {
				return decision{}, err
			}
			d.unique = append(s.nameClaims(oldName, string(id), true), s.nameClaims(newName, string(id), false)...)
		}
		return d, nil
	})
	if errors.Is(err, ErrUniqueness) {
		return User{}, false, Errorf(ErrUniqueness, "userName %q is already used by another user", newName)
	}
	return u, changed, err
}

// DeleteUser hard-deletes a user (RFC 7644 §3.6): its userName is released and it leaves
// every group, in one append. It returns the log position of the append.
//
// The membership cascade is decided here, and only here: user.deleted lists the groups the
// user left, and each of those groups records a group.members_removed (cause user.deleted)
// on its own subject, so a group's history alone replays its members (the audit's members
// as of a time). The projection applies those events like any other membership change; it
// does not derive removals from user.deleted. The group writes carry no version check (a
// removal commutes with the group's other changes); if they exceed one atomic batch of the log,
// the eventstore appends the rest right after.
func (s *Service) DeleteUser(ctx context.Context, o Origin, tenant TenantID, id UserID, ifMatch *Version) (Version, error) {
	u, _, err := run(ctx, s, userKind, target{tenant: tenant, id: string(id), origin: o, ifMatch: ifMatch}, func(u User) (decision, error) {
		var groups []GroupID
		if s.Read != nil {
			var err error
			if groups, err = s.Read.GroupsOf(ctx, tenant, id); err != nil {
				return decision{}, err
			}
		}
		d := decision{
			events: []Event{s.newEvent(ctx, tenant, KindUser, string(id), EventUserDeleted, UserDeleted{Groups: groups})},
			unique: s.nameClaims(u.UserName(), string(id), true),
		}
		for _, g := range groups {
			d.others = append(d.others, Write{NoExpect: true, Event: s.newEvent(ctx, tenant, KindGroup, string(g),
				EventGroupMembersRemoved, GroupMembersRemoved{Members: []UserID{id}, Cause: EventUserDeleted})})
		}
		return d, nil
	})
	return u.Version, err
}

// activeOf reports whether attributes res make a user active (User.Active): "active" is true.
func activeOf(res map[string]any) bool {
	b, _ := res["active"].(bool)
	return b
}

func stringAttr(res map[string]any, name string) string {
	s, _ := res[name].(string)
	return s
}

// ---- groups ----

// CreateGroup creates a group from a client's SCIM representation. Its displayName is claimed
// tenant-wide (case-insensitively) in the same append. Members naming no user of the tenant are
// skipped and recorded in the event.
func (s *Service) CreateGroup(ctx context.Context, o Origin, tenant TenantID, in map[string]any) (Group, []Member, []string, error) {
	attrs, members, schemas, err := canonicalGroup(in)
	if err != nil {
		return Group{}, nil, nil, err
	}
	members, skipped, err := s.existingUsers(ctx, tenant, dedupeMembers(members))
	if err != nil {
		return Group{}, nil, nil, err
	}
	id := s.NewID()
	name := stringAttr(attrs, "displayName")
	g, _, err := run(ctx, s, groupKind, target{tenant: tenant, id: id, origin: o, create: true}, func(Group) (decision, error) {
		return decision{
			events: []Event{s.newEvent(ctx, tenant, KindGroup, id, EventGroupCreated,
				GroupCreated{Schemas: schemas, Attributes: attrs, Members: members, Skipped: skipped})},
			unique: []UniqueOp{{Field: "displayName", Value: FoldCase(name), Holder: id}},
		}, nil
	})
	if errors.Is(err, ErrUniqueness) {
		return Group{}, nil, nil, Errorf(ErrUniqueness, "displayName %q is already used by another group", name)
	}
	if err != nil {
		return Group{}, nil, nil, fmt.Errorf("create group: %w", err)
	}
	return g, members, skipped, nil
}

// existingUsers splits members into those naming a user of the tenant and the rest.
func (s *Service) existingUsers(ctx context.Context, tenant TenantID, members []Member) ([]Member, []string, error) {
	var ok []Member
	var skipped []string
	for _, m := range members {
		_, err := s.Read.FindUser(ctx, tenant, UserID(m.Value))
		switch {
		case err == nil:
			ok = append(ok, m)
		case errors.Is(err, ErrNotFound):
			skipped = append(skipped, m.Value)
		default:
			return nil, nil, err
		}
	}
	return ok, skipped, nil
}

func dedupeMembers(ms []Member) []Member {
	seen := make(map[string]bool, len(ms))
	out := ms[:0:0]
	for _, m := range ms {
		if !seen[m.Value] {
			seen[m.Value] = true
			out = append(out, m)
		}
	}
	return out
}

// GroupResult is the outcome of a group change.
type GroupResult struct {
	Group   Group
	Changed bool
	// Skipped lists member values that named no user of the tenant.
	Skipped []string
}

// PatchGroup applies PATCH operations to a group atomically. Membership changes are decided
// against the current membership: adding a present member or removing an absent one is a
// no-op that succeeds.
func (s *Service) PatchGroup(ctx context.Context, o Origin, tenant TenantID, id GroupID, ops []scim.PatchOp, ifMatch *Version) (GroupResult, error) {
	return s.changeGroup(ctx, o, tenant, id, ifMatch, "PATCH", func(g Group) (map[string]any, []string, []MemberOp, error) {
		res, mops, err := patchGroup(g.Resource, ops)
		return res, nil, mops, err
	})
}

// ReplaceGroup replaces a group's attributes and its whole member list (PUT).
func (s *Service) ReplaceGroup(ctx context.Context, o Origin, tenant TenantID, id GroupID, in map[string]any, ifMatch *Version) (GroupResult, error) {
	attrs, members, schemas, err := canonicalGroup(in)
	if err != nil {
		return GroupResult{}, err
	}
	return s.changeGroup(ctx, o, tenant, id, ifMatch, "PUT", func(Group) (map[string]any, []string, []MemberOp, error) {
		return attrs, schemas, []MemberOp{{Kind: MembersReplace, Members: members}}, nil
	})
}

// changeGroup decides with change: attribute changes become one event, membership changes
// members_added and members_removed events (at most memberChunk members each), all in one
// append.
func (s *Service) changeGroup(ctx context.Context, o Origin, tenant TenantID, id GroupID, ifMatch *Version, method string,
	change func(Group) (map[string]any, []string, []MemberOp, error)) (GroupResult, error) {
	var newName string
	var added []Member
	var removed []UserID
	var skipped []string
	g, changed, err := run(ctx, s, groupKind, target{tenant: tenant, id: string(id), origin: o, ifMatch: ifMatch}, func(g Group) (decision, error) {
		next, schemas, mops, err := change(g)
		if err != nil {
			return decision{}, err
		}
		if schemas == nil {
			schemas = g.Schemas
		}
		added, removed, skipped, err = s.memberDelta(ctx, tenant, id, mops)
		if err != nil {
			return decision{}, err
		}
		var d decision
		changes := DiffResource(g.Resource, next)
		newName = stringAttr(next, "displayName")
		if len(changes) > 0 || !slices.Equal(schemas, g.Schemas) {
			typ := EventGroupAttributesChanged
			oldName := g.DisplayName()
			if oldName != newName {
				typ = EventGroupRenamed
			}
			if FoldCase(oldName) != FoldCase(newName) {
				d.unique = []UniqueOp{
					{Field: "displayName", Value: FoldCase(oldName), Holder: string(id), Release: true},
					{Field: "displayName", Value: FoldCase(newName), Holder: string(id)},
				}
			}
			data := GroupChanged{Changes: changes, Method: method}
			if !slices.Equal(schemas, g.Schemas) {
				data.Schemas = schemas
			}
			d.events = append(d.events, s.newEvent(ctx, tenant, KindGroup, string(id), typ, data))
		}
		for chunk := range slices.Chunk(added, memberChunk) {
			d.events = append(d.events, s.newEvent(ctx, tenant, KindGroup, string(id),
				EventGroupMembersAdded, GroupMembersAdded{Members: chunk}))
		}
		if len(skipped) > 0 && len(d.events) > 0 {
			for i := range d.events {
				if a, ok := d.events[i].Data.(GroupMembersAdded); ok {
					a.Skipped = skipped
					d.events[i].Data = a
					break
				}
			}
		}
		for chunk := range slices.Chunk(removed, memberChunk) {
			d.events = append(d.events, s.newEvent(ctx, tenant, KindGroup, string(id),
				EventGroupMembersRemoved, GroupMembersRemoved{Members: chunk}))
		}
		return d, nil
	})
	if errors.Is(err, ErrUniqueness) {
		return GroupResult{}, Errorf(ErrUniqueness, "displayName %q is already used by another group", newName)
	}
	if err != nil {
		return GroupResult{}, err
	}
	if changed {
		// The fold counts the members of group.created only; the read model keeps the set.
		g.Members += len(added) - len(removed)
	}
	return GroupResult{Group: g, Changed: changed, Skipped: skipped}, nil
}

// memberDelta turns the requested member operations, applied in order, into the members
// actually added and removed relative to the current membership.
func (s *Service) memberDelta(ctx context.Context, tenant TenantID, id GroupID, mops []MemberOp) ([]Member, []UserID, []string, error) {
	if len(mops) == 0 {
		return nil, nil, nil, nil
	}
	final := map[string]*Member{} // touched member id → its final state (nil = absent)
	cleared := false
	var skipped []string
	for _, op := range mops {
		switch op.Kind {
		case MembersRemoveAll, MembersReplace:
			cleared = true
			final = map[string]*Member{}
		}
		switch op.Kind {
		case MembersAdd, MembersReplace:
			ok, sk, err := s.existingUsers(ctx, tenant, dedupeMembers(op.Members))
			if err != nil {
				return nil, nil, nil, err
			}
			skipped = append(skipped, sk...)
			for _, m := range ok {
				final[m.Value] = &m
			}
		case MembersRemove:
			for _, m := range op.Members {
				final[m.Value] = nil
			}
		}
	}
	ids := slices.Sorted(maps.Keys(final))
	uids := make([]UserID, len(ids))
	for i, v := range ids {
		uids[i] = UserID(v)
	}
	current, err := s.Read.MemberSet(ctx, tenant, id, uids)
	if err != nil {
		return nil, nil, nil, err
	}
	var added []Member
	var removed []UserID
	for _, v := range ids {
		m := final[v]
		switch {
		case m != nil && !current[UserID(v)]:
			added = append(added, *m)
		case m == nil && current[UserID(v)]:
			removed = append(removed, UserID(v))
		}
	}
	if cleared {
		err := s.Read.Members(ctx, tenant, id, func(m Member) bool {
			if _, touched := final[m.Value]; !touched {
				removed = append(removed, UserID(m.Value))
			}
			return true
		})
		if err != nil {
			return nil, nil, nil, err
		}
	}
	return added, removed, skipped, nil
}

// DeleteGroup hard-deletes a group and releases its displayName. It returns the log position
// of the append.
func (s *Service) DeleteGroup(ctx context.Context, o Origin, tenant TenantID, id GroupID, ifMatch *Version) (Version, error) {
	g, _, err := run(ctx, s, groupKind, target{tenant: tenant, id: string(id), origin: o, ifMatch: ifMatch}, func(g Group) (decision, error) {
		return decision{
			events: []Event{s.newEvent(ctx, tenant, KindGroup, string(id), EventGroupDeleted, GroupDeleted{})},
			unique: []UniqueOp{{Field: "displayName", Value: FoldCase(g.DisplayName()), Holder: string(id), Release: true}},
		}, nil
	})
	return g.Version, err
}

// SetFeatures switches a company's features (nil = unchanged).
func (s *Service) SetFeatures(ctx context.Context, tenant TenantID, groups *bool) (Tenant, error) {
	return s.changeTenant(ctx, tenant, EventTenantFeaturesChanged, func(t Tenant) (any, error) {
		if groups == nil || *groups == t.Features.Groups() {
			return nil, nil
		}
		return TenantFeaturesChanged{Groups: groups}, nil
	})
}
