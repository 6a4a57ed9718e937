package audit

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/idledger/idledger/domain"
)

// A TimelineEntry is one event as an auditor reads it.
type TimelineEntry struct {
	Seq  domain.Version `json:"seq"`
	At   time.Time      `json:"at"`
	Type string         `json:"type"`
	// Kind and ID name the aggregate (a user's sign-ins have kind "signin").
	Kind  domain.Kind `json:"kind"`
	ID    string      `json:"id"`
	Actor string      `json:"actor"`
	// RequestID is the request that caused it; UserAgent and Source describe the client.
	RequestID string `json:"requestId,omitempty"`
	UserAgent string `json:"userAgent,omitempty"`
	Source    string `json:"source,omitempty"`
	// Cycle is the sync cycle of a provisioning change (0: not made by provisioning).
	Cycle int `json:"cycle,omitempty"`
	// Changes lists attribute changes (a creation lists every attribute as new).
	Changes        []domain.Change `json:"changes,omitempty"`
	MembersAdded   []string        `json:"membersAdded,omitempty"`
	MembersRemoved []string        `json:"membersRemoved,omitempty"`
	// Detail holds the rest of the payload worth reading (PATCH operations as received, a
	// sign-in's reason, the groups a deleted user left...).
	Detail map[string]any `json:"detail,omitempty"`
}

// A Timeline is one page of a resource's history.
type Timeline struct {
	Kind domain.Kind `json:"kind"`
	// ID is the resource asked for; Holders, for a look-up by name, every resource that held
	// the name (the entries are theirs, merged in log order).
	ID      string          `json:"id,omitempty"`
	Holders []Holding       `json:"holders,omitempty"`
	Entries []TimelineEntry `json:"entries"`
	// Next is the After of the next page, 0 on the last page.
	Next domain.Version `json:"next,omitempty"`
}

// nameFields is the unique name of each kind that has a timeline.
var nameFields = map[domain.Kind]string{domain.KindUser: "userName", domain.KindGroup: "displayName"}

// Timeline returns a page of a user's or group's history: every event of its subject in order
// (a user's sign-ins included). It works for deleted resources. It returns an error wrapping
// domain.ErrNotFound if the resource never existed, domain.ErrInvalid for another kind.
func (a *Service) Timeline(ctx context.Context, tenant domain.TenantID, kind domain.Kind, id string, p Page) (Timeline, error) {
	if nameFields[kind] == "" {
		return Timeline{}, domain.Errorf(domain.ErrInvalid, "no timeline for %q", kind)
	}
	t, err := a.timeline(ctx, tenant, kind, []string{id}, p)
	if err != nil {
		return Timeline{}, err
	}
	if len(t.Entries) == 0 && p.After == 0 {
		return Timeline{}, domain.Errorf(domain.ErrNotFound, "%s %s has no history", kind, id)
	}
	t.ID = id
	return t, nil
}

// TimelineByName returns a page of the history of every user that ever held userName (kind
// user) or every group that held displayName (kind group), case-insensitively, current and
// deleted ones alike. It returns an error wrapping domain.ErrNotFound if the name was never
// held.
func (a *Service) TimelineByName(ctx context.Context, tenant domain.TenantID, kind domain.Kind, name string, p Page) (Timeline, error) {
	field := nameFields[kind]
	if field == "" {
		return Timeline{}, domain.Errorf(domain.ErrInvalid, "no timeline for %q", kind)
	}
	keys := []string{domain.FoldCase(name)}
	if kind == domain.KindUser {
		// Claims are keyed by the userName rule; older versions keyed them by FoldCase.
		if k := a.names().Fold(name); k != keys[0] {
			keys = []string{k, keys[0]}
		}
	}
	var holders []Holding
	for _, k := range keys {
		h, err := a.History.Holders(ctx, tenant, field, k)
		if err != nil {
			return Timeline{}, err
		}
		holders = append(holders, h...)
	}
	slices.SortStableFunc(holders, func(x, y Holding) int { return cmp.Compare(x.Claimed, y.Claimed) })
	if len(holders) == 0 {
		return Timeline{}, domain.Errorf(domain.ErrNotFound, "no %s was ever named %q", kind, name)
	}
	var ids []string
	for _, h := range holders {
		if !slices.Contains(ids, h.ID) {
			ids = append(ids, h.ID)
		}
	}
	t, err := a.timeline(ctx, tenant, kind, ids, p)
	if err != nil {
		return Timeline{}, err
	}
	t.Holders = holders
	return t, nil
}

// timeline merges the subjects of the given aggregates (and of users' sign-ins) in log order.
func (a *Service) timeline(ctx context.Context, tenant domain.TenantID, kind domain.Kind, ids []string, p Page) (Timeline, error) {
	limit := p.limit()
	kinds := []domain.Kind{kind}
	if kind == domain.KindUser {
		kinds = append(kinds, domain.KindSignIn)
	}
	var events []domain.Event
	for _, id := range ids {
		for _, k := range kinds {
			evs, err := a.History.Events(ctx, tenant, k, id, p.After, limit+1)
			if err != nil {
				return Timeline{}, err
			}
			events = append(events, evs...)
		}
	}
	slices.SortFunc(events, func(x, y domain.Event) int { return cmp.Compare(x.Version, y.Version) })
	t := Timeline{Kind: kind, Entries: []TimelineEntry{}}
	if len(events) > limit {
		events = events[:limit]
		t.Next = events[limit-1].Version
	}
	var marks []cycleMark
	if slices.ContainsFunc(events, isProvisioningChange) {
		var err error
		if marks, err = a.markers(ctx, tenant); err != nil {
			return Timeline{}, err
		}
	}
	for _, e := range events {
		t.Entries = append(t.Entries, entryOf(e, marks))
	}
	return t, nil
}

// entryOf renders one event for auditors.
func entryOf(e domain.Event, marks []cycleMark) TimelineEntry {
	t := TimelineEntry{Seq: e.Version, At: e.At, Type: e.Type, Kind: e.Kind, ID: e.AggregateID,
		Actor: e.Actor, RequestID: e.Correlation, UserAgent: e.UserAgent, Source: e.Source}
	if isProvisioningChange(e) {
		t.Cycle = cycleAt(marks, e.Version)
	}
	detail := map[string]any{}
	setIf := func(k, v string) {
		if v != "" {
			detail[k] = v
		}
	}
	added := func(members []domain.Member, skipped []string) {
		for _, m := range members {
			t.MembersAdded = append(t.MembersAdded, m.Value)
		}
		if len(skipped) > 0 {
			detail["skipped"] = skipped
		}
	}
	switch d := e.Data.(type) {
	case domain.UserCreated:
		t.Changes = domain.DiffResource(nil, d.Attributes)
	case domain.UserChanged:
		t.Changes = d.Changes
		setIf("method", d.Method)
		if d.Operations != nil {
			detail["operations"] = d.Operations
		}
	case domain.UserDeleted:
		if len(d.Groups) > 0 {
			detail["groups"] = d.Groups
		}
	case domain.GroupCreated:
		t.Changes = domain.DiffResource(nil, d.Attributes)
		added(d.Members, d.Skipped)
	case domain.GroupChanged:
		t.Changes = d.Changes
		setIf("method", d.Method)
	case domain.GroupMembersAdded:
		added(d.Members, d.Skipped)
	case domain.GroupMembersRemoved:
		for _, u := range d.Members {
			t.MembersRemoved = append(t.MembersRemoved, string(u))
		}
		setIf("cause", d.Cause)
	case domain.SignInRecorded:
		setIf("reason", d.Reason)
		setIf("detail", d.Detail)
		setIf("source", d.Source)
		setIf("flow", d.Flow)
	case domain.ProvisioningLocked:
		setIf("method", d.Method)
		setIf("path", d.Path)
	case domain.ProvisioningUnlocked:
		setIf("reason", d.Reason)
	}
	if len(detail) > 0 {
		t.Detail = detail
	}
	return t
}
