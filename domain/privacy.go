package domain

import (
	"context"
	"fmt"
)

// Personal data and its erasure (README "Personal data", docs/event-model.md §2.9).
//
// The domain works on plain values. It declares here which values of which events are
// personal data and whose they are; the event store seals each such value under that person's
// data key when it appends and opens it when it reads, so that destroying the key makes the
// values unreadable while the log stays immutable (crypto-shredding). What stays clear: event
// types, ids, times, actors, request ids, attribute names and paths, counts, company data.

// EventUserErased records that a deleted user's personal data was erased: the user's data key
// is destroyed, so every personal value in the user's events reads back as [ErasedValue]. It
// carries no personal data.
const EventUserErased = "user.erased"

// ErasedValue is what a personal value reads back as once its person has been erased.
const ErasedValue = "erased"

// UserErased is the payload of [EventUserErased].
type UserErased struct{}

// MapPersonal returns a copy of e.Data in which every personal value is replaced by f's result
// for it, f being told the user the value belongs to. Values of other people than the
// aggregate's (a group member's display name) are passed with that person's id. Data without
// personal values is returned as is. The original data is not modified.
func MapPersonal(e Event, f func(user UserID, v any) (any, error)) (any, error) {
	switch d := e.Data.(type) {
	case UserCreated:
		if e.Kind != KindUser || len(d.Attributes) == 0 {
			return d, nil
		}
		attrs := make(map[string]any, len(d.Attributes))
		for k, v := range d.Attributes {
			s, err := f(UserID(e.AggregateID), v)
			if err != nil {
				return nil, err
			}
			attrs[k] = s
		}
		d.Attributes = attrs
		return d, nil
	case UserChanged:
		if e.Kind != KindUser {
			return d, nil
		}
		owner := UserID(e.AggregateID)
		if d.Changes != nil {
			ch := make([]Change, len(d.Changes))
			for i, c := range d.Changes {
				var err error
				if c.Old != nil {
					if c.Old, err = f(owner, c.Old); err != nil {
						return nil, err
					}
				}
				if c.New != nil {
					if c.New, err = f(owner, c.New); err != nil {
						return nil, err
					}
				}
				ch[i] = c
			}
			d.Changes = ch
		}
		if d.Operations != nil {
			var err error
			if d.Operations, err = f(owner, d.Operations); err != nil {
				return nil, err
			}
		}
		return d, nil
	case SignInRecorded:
		if d.User == "" {
			return d, nil
		}
		for _, p := range []*string{&d.Detail, &d.Source} {
			if *p == "" {
				continue
			}
			v, err := f(d.User, *p)
			if err != nil {
				return nil, err
			}
			*p = fmt.Sprint(v)
		}
		return d, nil
	case GroupMembersAdded:
		ms, err := mapDisplays(d.Members, f)
		if err != nil {
			return nil, err
		}
		d.Members = ms
		return d, nil
	case GroupCreated:
		ms, err := mapDisplays(d.Members, f)
		if err != nil {
			return nil, err
		}
		d.Members = ms
		return d, nil
	}
	return e.Data, nil
}

// mapDisplays returns members with each display name (a member's name, as the client sent it)
// replaced by f's result for it; the slice is copied if anything changes.
func mapDisplays(members []Member, f func(user UserID, v any) (any, error)) ([]Member, error) {
	var ms []Member
	for i, m := range members {
		if m.Display == "" {
			continue
		}
		if ms == nil {
			ms = append([]Member(nil), members...)
		}
		v, err := f(UserID(m.Value), m.Display)
		if err != nil {
			return nil, err
		}
		ms[i].Display = fmt.Sprint(v)
	}
	if ms == nil {
		return members, nil
	}
	return ms, nil
}

// HasPersonal reports whether events of this type may carry personal values (see
// [MapPersonal]).
func HasPersonal(e Event) bool {
	switch d := e.Data.(type) {
	case UserCreated, UserChanged:
		return e.Kind == KindUser
	case SignInRecorded:
		return d.User != ""
	case GroupMembersAdded:
		return hasDisplay(d.Members)
	case GroupCreated:
		return hasDisplay(d.Members)
	}
	return false
}

// EraseUser erases a deleted user's personal data: it appends [EventUserErased] (once: erasing
// an erased user again appends nothing and returns the current version). The event store then
// destroys the user's data key and the read models forget the person. A user that still
// exists cannot be erased (ErrConflict: deprovision it first); an unknown id is ErrNotFound.
func (s *Service) EraseUser(ctx context.Context, tenant TenantID, id UserID) (Version, error) {
	events, v, err := s.Log.Load(ctx, tenant, KindUser, string(id))
	if err != nil {
		return 0, err
	}
	if v == 0 {
		return 0, Errorf(ErrNotFound, "User %s not found", id)
	}
	var u User
	erased := false
	for _, e := range events {
		u.Apply(e)
		if e.Type == EventUserErased {
			erased = true
		}
	}
	if erased {
		return v, nil
	}
	if !u.Deleted {
		return 0, Errorf(ErrConflict, "User %s still exists: deprovision it first (SCIM DELETE or removal), then erase it", id)
	}
	e := s.newEvent(ctx, tenant, KindUser, string(id), EventUserErased, UserErased{})
	v, err = s.Log.Append(ctx, Batch{Tenant: tenant, Writes: []Write{{Event: e, Expected: v}}})
	if err != nil {
		return 0, fmt.Errorf("erase user: %w", err)
	}
	return v, nil
}

func hasDisplay(members []Member) bool {
	for _, m := range members {
		if m.Display != "" {
			return true
		}
	}
	return false
}
