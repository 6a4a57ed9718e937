package domain

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/idledger/idledger/domain/scim"
)

// memberChunk is the most members one membership event carries, so that an event stays far
// below NATS' 1 MB message limit (event-model.md §2.2).
const memberChunk = 5000

// loadUser returns a user's state to decide on; a missing or deleted user is ErrNotFound.
// The read model holds the same fold of the same events. With optimistic set (a first attempt
// without If-Match) its row is used as it is: if it is behind the log, the append's expected
// version fails and the retry comes back here authoritatively. Otherwise the row is used when it
// is at the log's version for this user (one direct get), else the events are replayed.
func (s *Service) loadUser(ctx context.Context, tenant TenantID, id UserID, optimistic bool) (User, error) {
	if optimistic && s.Read != nil {
		if u, err := s.Read.FindUser(ctx, tenant, id); err == nil {
			return u, nil
		}
	}
	if s.Read != nil {
		v, err := s.Log.Version(ctx, tenant, KindUser, string(id))
		if err != nil {
			return User{}, err
		}
		if v == 0 {
			return User{}, Errorf(ErrNotFound, "User %s not found", id)
		}
		if u, err := s.Read.FindUser(ctx, tenant, id); err == nil && u.Version == v {
			return u, nil
		}
	}
	events, _, err := s.Log.Load(ctx, tenant, KindUser, string(id))
	if err != nil {
		return User{}, err
	}
	var u User
	for _, e := range events {
		u.Apply(e)
	}
	if !u.Exists() {
		return User{}, Errorf(ErrNotFound, "User %s not found", id)
	}
	return u, nil
}

// checkVersion implements If-Match: ifMatch nil means no precondition.
func checkVersion(have Version, ifMatch *Version) error {
	if ifMatch != nil && *ifMatch != have {
		return Errorf(ErrPrecondition, "the resource is at version W/\"%d\", not W/\"%d\"", have, *ifMatch)
	}
	return nil
}

// retry runs decide-and-append until it does not lose a race, at most maxConflictRetries
// times. With an If-Match precondition a lost race is a failed precondition.
func retry[T any](ifMatch *Version, fn func() (T, error)) (T, error) {
	var zero T
	for range maxConflictRetries {
		v, err := fn()
		if !errors.Is(err, ErrConflict) {
			return v, err
		}
		if ifMatch != nil {
			return zero, Errorf(ErrPrecondition, "the resource changed concurrently")
		}
	}
	return zero, Errorf(ErrConflict, "the resource is being changed concurrently; retry the request")
}

// ReplaceUser replaces a user's attributes with a full representation (PUT, RFC 7644 §3.5.1):
// absent attributes are cleared, read-only ones ignored. A replace that changes nothing
// appends nothing. It returns the user and whether it changed.
func (s *Service) ReplaceUser(ctx context.Context, tenant TenantID, id UserID, in map[string]any, ifMatch *Version) (User, bool, error) {
	attrs, schemas, err := scim.CanonicalUser(in)
	if err != nil {
		return User{}, false, err
	}
	return s.changeUser(ctx, tenant, id, ifMatch, "PUT", nil, func(User) (map[string]any, []string, error) {
		return attrs, schemas, nil
	})
}

// PatchUser applies PATCH operations (RFC 7644 §3.5.2) atomically: all or nothing, one event.
// raw is the request's operations as received, kept in the event for auditors.
func (s *Service) PatchUser(ctx context.Context, tenant TenantID, id UserID, ops []scim.PatchOp, raw any, ifMatch *Version) (User, bool, error) {
	return s.changeUser(ctx, tenant, id, ifMatch, "PATCH", raw, func(u User) (map[string]any, []string, error) {
		return scim.PatchUser(u.Resource, u.Schemas, ops)
	})
}

// changeUser loads, decides with change, and appends the difference as one event.
func (s *Service) changeUser(ctx context.Context, tenant TenantID, id UserID, ifMatch *Version, method string, raw any,
	change func(User) (map[string]any, []string, error)) (User, bool, error) {
	unlock := s.lock(tenant, KindUser, string(id))
	defer unlock()
	type result struct {
		u       User
		changed bool
	}
	attempt := 0
	r, err := retry(ifMatch, func() (result, error) {
		u, err := s.loadUser(ctx, tenant, id, attempt == 0 && ifMatch == nil)
		attempt++
		if err != nil {
			return result{}, err
		}
		if err := checkVersion(u.Version, ifMatch); err != nil {
			return result{}, err
		}
		next, schemas, err := change(u)
		if err != nil {
			return result{}, err
		}
		changes := DiffResource(u.Resource, next)
		schemasChanged := !slices.Equal(schemas, u.Schemas)
		adopt := u.Local && isSCIM(ctx) // provisioning takes over a locally invited user
		if len(changes) == 0 && !schemasChanged && !adopt {
			return result{u: u}, nil
		}
		if u.Local && isLocal(ctx) {
			method = "API"
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
		e := s.newEvent(ctx, tenant, KindUser, string(id), typ, data)
		b := Batch{Tenant: tenant, Writes: []Write{{Event: e, Expected: u.Version}}}
		oldName, newName := u.UserName(), stringAttr(next, "userName")
		if FoldUserName(oldName) != FoldUserName(newName) {
			b.Unique = []UniqueOp{
				{Field: "userName", Value: FoldUserName(oldName), Holder: string(id), Release: true},
				{Field: "userName", Value: FoldUserName(newName), Holder: string(id)},
			}
		}
		v, err := s.appendRules(ctx, b)
		if errors.Is(err, ErrUniqueness) {
			return result{}, Errorf(ErrUniqueness, "userName %q is already used by another user", newName)
		}
		if err != nil {
			return result{}, err
		}
		e.Version = v
		u.Apply(e)
		return result{u: u, changed: true}, nil
	})
	return r.u, r.changed, err
}

// DeleteUser hard-deletes a user (RFC 7644 §3.6): its userName is released and it leaves
// every group, in one atomic append.
func (s *Service) DeleteUser(ctx context.Context, tenant TenantID, id UserID, ifMatch *Version) (Version, error) {
	unlock := s.lock(tenant, KindUser, string(id))
	defer unlock()
	attempt := 0
	return retry(ifMatch, func() (Version, error) {
		u, err := s.loadUser(ctx, tenant, id, attempt == 0 && ifMatch == nil)
		attempt++
		if err != nil {
			return 0, err
		}
		if err := checkVersion(u.Version, ifMatch); err != nil {
			return 0, err
		}
		var groups []GroupID
		if s.Read != nil {
			if groups, err = s.Read.GroupsOf(ctx, tenant, id); err != nil {
				return 0, err
			}
		}
		if len(groups) > 900 {
			// One atomic batch holds at most 1000 messages; the read model removes the user
			// from the remaining groups when it applies user.deleted.
			groups = groups[:900]
		}
		e := s.newEvent(ctx, tenant, KindUser, string(id), EventUserDeleted, UserDeleted{Groups: groups})
		b := Batch{
			Tenant: tenant,
			Writes: []Write{{Event: e, Expected: u.Version}},
			Unique: []UniqueOp{{Field: "userName", Value: FoldUserName(u.UserName()), Holder: string(id), Release: true}},
		}
		for _, g := range groups {
			b.Writes = append(b.Writes, Write{NoExpect: true, Event: s.newEvent(ctx, tenant, KindGroup, string(g),
				EventGroupMembersRemoved, GroupMembersRemoved{Members: []UserID{id}, Cause: EventUserDeleted})})
		}
		return s.appendRules(ctx, b)
	})
}

func activeOf(res map[string]any) bool {
	b, ok := res["active"].(bool)
	return !ok || b
}

func stringAttr(res map[string]any, name string) string {
	s, _ := res[name].(string)
	return s
}

// ---- groups ----

// loadGroup returns a group's state from the read model, so a 100k-member group is never
// replayed. Optimistic, it takes the row as it is (the append then asserts its version);
// otherwise it checks the row against the log's head for the group and, if the log holds newer
// events, waits for the projector to apply them (event-model.md §2.4).
func (s *Service) loadGroup(ctx context.Context, tenant TenantID, id GroupID, optimistic bool) (Group, error) {
	if optimistic {
		// As loadUser: decide on the read model's row, whose version the append asserts. A
		// stale row ends in ErrConflict and the retry takes the checked path below. This spares
		// the direct get of the log head, which makes nats-server load (and cache) the whole
		// message block holding the group's last event.
		if g, err := s.Read.FindGroup(ctx, tenant, id); err == nil && g.Exists() {
			return g, nil
		}
	}
	head, err := s.Log.Version(ctx, tenant, KindGroup, string(id))
	if err != nil {
		return Group{}, err
	}
	if head == 0 {
		return Group{}, Errorf(ErrNotFound, "Group %s not found", id)
	}
	g, err := s.Read.FindGroup(ctx, tenant, id)
	if (err == nil && g.Version < head) || errors.Is(err, ErrNotFound) {
		if s.Sync == nil {
			return Group{}, fmt.Errorf("load group %s: read model behind the log and no Sync", id)
		}
		if err := s.Sync(ctx, head); err != nil {
			return Group{}, fmt.Errorf("load group %s: %w", id, err)
		}
		g, err = s.Read.FindGroup(ctx, tenant, id)
	}
	if err != nil {
		return Group{}, err
	}
	if g.Version > head {
		// The read model saw a newer event than our head read: decide again.
		return Group{}, Errorf(ErrConflict, "group %s moved", id)
	}
	return g, nil
}

// CreateGroup creates a group from a client's SCIM representation. Its displayName is claimed
// tenant-wide (case-insensitively) in the same append. Members naming no user of the tenant are
// skipped and recorded in the event.
func (s *Service) CreateGroup(ctx context.Context, tenant TenantID, in map[string]any) (Group, []Member, []string, error) {
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
	e := s.newEvent(ctx, tenant, KindGroup, id, EventGroupCreated,
		GroupCreated{Schemas: schemas, Attributes: attrs, Members: members, Skipped: skipped})
	v, err := s.appendRetry(ctx, Batch{
		Tenant: tenant,
		Writes: []Write{{Event: e}},
		Unique: []UniqueOp{{Field: "displayName", Value: FoldUserName(name), Holder: id}},
	})
	if errors.Is(err, ErrUniqueness) {
		return Group{}, nil, nil, Errorf(ErrUniqueness, "displayName %q is already used by another group", name)
	}
	if err != nil {
		return Group{}, nil, nil, fmt.Errorf("create group: %w", err)
	}
	e.Version = v
	var g Group
	g.Apply(e)
	g.Members = len(members)
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
func (s *Service) PatchGroup(ctx context.Context, tenant TenantID, id GroupID, ops []scim.PatchOp, ifMatch *Version) (GroupResult, error) {
	return s.changeGroup(ctx, tenant, id, ifMatch, "PATCH", func(g Group) (map[string]any, []string, []MemberOp, error) {
		res, mops, err := patchGroup(g.Resource, ops)
		return res, nil, mops, err
	})
}

// ReplaceGroup replaces a group's attributes and its whole member list (PUT).
func (s *Service) ReplaceGroup(ctx context.Context, tenant TenantID, id GroupID, in map[string]any, ifMatch *Version) (GroupResult, error) {
	attrs, members, schemas, err := canonicalGroup(in)
	if err != nil {
		return GroupResult{}, err
	}
	return s.changeGroup(ctx, tenant, id, ifMatch, "PUT", func(Group) (map[string]any, []string, []MemberOp, error) {
		return attrs, schemas, []MemberOp{{Kind: MembersReplace, Members: members}}, nil
	})
}

func (s *Service) changeGroup(ctx context.Context, tenant TenantID, id GroupID, ifMatch *Version, method string,
	change func(Group) (map[string]any, []string, []MemberOp, error)) (GroupResult, error) {
	unlock := s.lock(tenant, KindGroup, string(id))
	defer unlock()
	attempt := 0
	return retry(ifMatch, func() (GroupResult, error) {
		g, err := s.loadGroup(ctx, tenant, id, attempt == 0 && ifMatch == nil)
		attempt++
		if err != nil {
			return GroupResult{}, err
		}
		if err := checkVersion(g.Version, ifMatch); err != nil {
			return GroupResult{}, err
		}
		next, schemas, mops, err := change(g)
		if err != nil {
			return GroupResult{}, err
		}
		if schemas == nil {
			schemas = g.Schemas
		}
		added, removed, skipped, err := s.memberDelta(ctx, tenant, id, mops)
		if err != nil {
			return GroupResult{}, err
		}
		var writes []Write
		var unique []UniqueOp
		changes := DiffResource(g.Resource, next)
		if len(changes) > 0 || !slices.Equal(schemas, g.Schemas) {
			typ := EventGroupAttributesChanged
			oldName, newName := g.DisplayName(), stringAttr(next, "displayName")
			if oldName != newName {
				typ = EventGroupRenamed
			}
			if FoldUserName(oldName) != FoldUserName(newName) {
				unique = []UniqueOp{
					{Field: "displayName", Value: FoldUserName(oldName), Holder: string(id), Release: true},
					{Field: "displayName", Value: FoldUserName(newName), Holder: string(id)},
				}
			}
			data := GroupChanged{Changes: changes, Method: method}
			if !slices.Equal(schemas, g.Schemas) {
				data.Schemas = schemas
			}
			writes = append(writes, Write{Event: s.newEvent(ctx, tenant, KindGroup, string(id), typ, data)})
		}
		for chunk := range slices.Chunk(added, memberChunk) {
			writes = append(writes, Write{Event: s.newEvent(ctx, tenant, KindGroup, string(id),
				EventGroupMembersAdded, GroupMembersAdded{Members: chunk})})
		}
		if len(skipped) > 0 && len(writes) > 0 {
			for i := range writes {
				if d, ok := writes[i].Event.Data.(GroupMembersAdded); ok {
					d.Skipped = skipped
					writes[i].Event.Data = d
					break
				}
			}
		}
		for chunk := range slices.Chunk(removed, memberChunk) {
			writes = append(writes, Write{Event: s.newEvent(ctx, tenant, KindGroup, string(id),
				EventGroupMembersRemoved, GroupMembersRemoved{Members: chunk})})
		}
		if len(writes) == 0 {
			return GroupResult{Group: g, Skipped: skipped}, nil
		}
		writes[0].Expected = g.Version
		v, err := s.appendRules(ctx, Batch{Tenant: tenant, Writes: writes, Unique: unique})
		if errors.Is(err, ErrUniqueness) {
			return GroupResult{}, Errorf(ErrUniqueness, "displayName %q is already used by another group", stringAttr(next, "displayName"))
		}
		if err != nil {
			return GroupResult{}, err
		}
		for _, w := range writes {
			w.Event.Version = v
			g.Apply(w.Event)
		}
		g.Members += len(added) - len(removed)
		return GroupResult{Group: g, Changed: true, Skipped: skipped}, nil
	})
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

// DeleteGroup hard-deletes a group and releases its displayName.
func (s *Service) DeleteGroup(ctx context.Context, tenant TenantID, id GroupID, ifMatch *Version) (Version, error) {
	unlock := s.lock(tenant, KindGroup, string(id))
	defer unlock()
	attempt := 0
	return retry(ifMatch, func() (Version, error) {
		g, err := s.loadGroup(ctx, tenant, id, attempt == 0 && ifMatch == nil)
		attempt++
		if err != nil {
			return 0, err
		}
		if err := checkVersion(g.Version, ifMatch); err != nil {
			return 0, err
		}
		e := s.newEvent(ctx, tenant, KindGroup, string(id), EventGroupDeleted, GroupDeleted{})
		return s.appendRules(ctx, Batch{
			Tenant: tenant,
			Writes: []Write{{Event: e, Expected: g.Version}},
			Unique: []UniqueOp{{Field: "displayName", Value: FoldUserName(g.DisplayName()), Holder: string(id), Release: true}},
		})
	})
}

// SetFeatures switches a company's features (nil = unchanged).
func (s *Service) SetFeatures(ctx context.Context, tenant TenantID, groups *bool) (Tenant, error) {
	unlock := s.lock(tenant, KindTenant, string(tenant))
	defer unlock()
	return retry(nil, func() (Tenant, error) {
		events, _, err := s.Log.Load(ctx, tenant, KindTenant, string(tenant))
		if err != nil {
			return Tenant{}, err
		}
		var t Tenant
		for _, e := range events {
			t.Apply(e)
		}
		if !t.Exists() {
			return Tenant{}, Errorf(ErrNotFound, "tenant %s not found", tenant)
		}
		if groups == nil || *groups == t.Features.Groups() {
			return t, nil
		}
		e := s.newEvent(ctx, tenant, KindTenant, string(tenant), EventTenantFeaturesChanged, TenantFeaturesChanged{Groups: groups})
		v, err := s.Log.Append(ctx, Batch{Tenant: tenant, Writes: []Write{{Event: e, Expected: t.Version}}})
		if err != nil {
			return Tenant{}, err
		}
		e.Version = v
		t.Apply(e)
		return t, nil
	})
}
