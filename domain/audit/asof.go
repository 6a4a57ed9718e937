package audit

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/idledger/idledger/domain"
)

// StateAt folds the longest prefix of events (one aggregate's, in log order) whose events
// happened at or before t, with the aggregate's own Apply (the write side's fold): the state it
// really had at t. Its Version is 0 if the aggregate did not exist yet.
//
//	u := audit.StateAt[domain.User](events, t)
func StateAt[S any, P interface {
	*S
	Apply(domain.Event)
}](events []domain.Event, t time.Time) S {
	var s S
	for _, e := range events {
		if e.At.After(t) {
			break
		}
		P(&s).Apply(e)
	}
	return s
}

// MembersAt replays a group's events (its subject holds its membership changes) up to t like
// [StateAt] and returns the group and its members then, in id order. A deleted group has none.
func MembersAt(events []domain.Event, t time.Time) (domain.Group, []domain.Member) {
	var g domain.Group
	members := make(map[string]domain.Member)
	for _, e := range events {
		if e.At.After(t) {
			break
		}
		g.Apply(e)
		switch d := e.Data.(type) {
		case domain.GroupCreated:
			clear(members)
			for _, m := range d.Members {
				members[m.Value] = m
			}
		case domain.GroupMembersAdded:
			for _, m := range d.Members {
				members[m.Value] = m
			}
		case domain.GroupMembersRemoved:
			for _, u := range d.Members {
				delete(members, string(u))
			}
		case domain.GroupDeleted:
			clear(members)
		}
	}
	out := make([]domain.Member, 0, len(members))
	for _, k := range slices.Sorted(maps.Keys(members)) {
		out = append(out, members[k])
	}
	g.Members = len(out)
	return g, out
}

// A UserSnapshot is a user as it was at a moment.
type UserSnapshot struct {
	AsOf time.Time   `json:"asOf"`
	User domain.User `json:"user"`
}

// UserAt returns the user as it was at t, folded from its own subject up to t with
// [domain.User.Apply] (see [StateAt]). A user deleted by then comes back with Deleted set. It
// returns an error wrapping domain.ErrNotFound if the user did not exist yet at t.
func (a *Service) UserAt(ctx context.Context, tenant domain.TenantID, id domain.UserID, t time.Time) (UserSnapshot, error) {
	events, err := a.eventsUntil(ctx, tenant, domain.KindUser, string(id), t)
	if err != nil {
		return UserSnapshot{}, err
	}
	u := StateAt[domain.User](events, t)
	if u.Version == 0 {
		return UserSnapshot{}, domain.Errorf(domain.ErrNotFound, "user %s did not exist yet at %s (created %s)",
			id, t.UTC().Format(time.RFC3339), events[0].At.UTC().Format(time.RFC3339))
	}
	return UserSnapshot{AsOf: t.UTC(), User: u}, nil
}

// A MembersSnapshot is a group's membership at a moment.
type MembersSnapshot struct {
	AsOf        time.Time       `json:"asOf"`
	Group       domain.GroupID  `json:"group"`
	DisplayName string          `json:"displayName,omitempty"`
	Deleted     bool            `json:"deleted,omitempty"`
	Version     domain.Version  `json:"version"`
	Count       int             `json:"count"`
	Members     []domain.Member `json:"members"`
}

// MembersAt returns a group's members at t, replayed from the group's subject (see
// [MembersAt]). It returns an error wrapping domain.ErrNotFound if the group did not exist
// yet. Caveat: a user deleted while in more than 900 groups leaves the rest through the read
// model only (domain.Service.DeleteUser), so the replay still lists it there.
func (a *Service) MembersAt(ctx context.Context, tenant domain.TenantID, id domain.GroupID, t time.Time) (MembersSnapshot, error) {
	events, err := a.eventsUntil(ctx, tenant, domain.KindGroup, string(id), t)
	if err != nil {
		return MembersSnapshot{}, err
	}
	g, members := MembersAt(events, t)
	if g.Version == 0 {
		return MembersSnapshot{}, domain.Errorf(domain.ErrNotFound, "group %s did not exist yet at %s", id, t.UTC().Format(time.RFC3339))
	}
	return MembersSnapshot{AsOf: t.UTC(), Group: id, DisplayName: g.DisplayName(), Deleted: g.Deleted,
		Version: g.Version, Count: len(members), Members: members}, nil
}

// asOfPage is how many events an as-of read asks for at a time.
const asOfPage = 256

// eventsUntil reads an aggregate's events page by page and stops after the first one that
// happened after t: [StateAt] would not fold further. It returns an error wrapping
// domain.ErrNotFound if the aggregate has no events at all.
func (a *Service) eventsUntil(ctx context.Context, tenant domain.TenantID, kind domain.Kind, id string, t time.Time) ([]domain.Event, error) {
	var events []domain.Event
	var after domain.Version
	for {
		page, err := a.History.Events(ctx, tenant, kind, id, after, asOfPage)
		if err != nil {
			return nil, err
		}
		events = append(events, page...)
		if len(page) < asOfPage || page[len(page)-1].At.After(t) {
			break
		}
		after = page[len(page)-1].Version
	}
	if len(events) == 0 {
		return nil, domain.Errorf(domain.ErrNotFound, "%s %s has no history", kind, id)
	}
	return events, nil
}
