package domain

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// # Audit history
//
// Everything here is read from the log, never from a read model, so it works for deleted
// resources and offline (`idledger audit ...`), and answers with the write side's own fold:
//
//   - a timeline is one aggregate's subject read in order (a user's also merges its sign-in
//     subject, idl.<t>.signin.<id>);
//   - "as of T" folds the longest prefix of that subject whose events happened at or before T
//     ([StateAt], [MembersAt]): a state that really existed;
//   - a user looked up by userName after it is gone is found through its userName claim
//     subject (idl.<t>.uname.<HMAC of the folded name>): the key is computed from the name
//     asked for, so nothing is scanned, and the subject lists every user that ever held the
//     name, renames included ([AuditLog.Holders]);
//   - sync cycles: the first SCIM request of a company after a quiet gap ([Audit.Gap]) appends
//     a [SyncCycleStarted] marker to idl.<t>.cycle.scim. The marker makes the cycle's number
//     permanent; the cycle's events are the company's SCIM events after its marker and before
//     the next one. Every SCIM request, failed or not, is also kept in a [RequestLog] (a
//     separate, expiring stream), which supplies the request counts and the failures.

// KindCycle is the aggregate kind of a company's sync-cycle markers.
const KindCycle Kind = "cycle"

// CycleClient is the aggregate id of the SCIM provisioning client's cycle markers
// (idl.<tenant>.cycle.scim).
const CycleClient = "scim"

// DefaultCycleGap is the quiet time after which a company's next SCIM request starts a new sync
// cycle. Entra runs incremental cycles every 40 minutes and sends a cycle's requests seconds
// apart, so 10 minutes separates cycles without splitting one.
const DefaultCycleGap = 10 * time.Minute

// SyncCycleStarted records that a company's provisioning client began a sync cycle: its first
// SCIM request after a quiet gap. Markers live on their own subject (kind [KindCycle]); the
// events of a cycle are those after its marker and before the next one.
type SyncCycleStarted struct {
	// Number counts the company's cycles from 1.
	Number int `json:"number"`
	// Request is the id of the request that opened the cycle.
	Request string `json:"request,omitempty"`
}

// client returns the User-Agent and source address to stamp on events: only for
// token-authenticated clients (SCIM, the company API, the operator), whose addresses are a
// service's, not a person's; a browser's stay out of the log, which cannot forget them.
func (r Request) client() (string, string) {
	if strings.HasPrefix(r.Actor, ActorSCIMPrefix) || strings.HasPrefix(r.Actor, ActorAPIPrefix) || r.Actor == "admin" {
		return r.UserAgent, r.Source
	}
	return "", ""
}

// StateAt folds the longest prefix of events (one aggregate's, in log order) whose events
// happened at or before t, with the aggregate's own Apply: the state it really had at t. Its
// Version is 0 if the aggregate did not exist yet.
//
//	u := domain.StateAt[domain.User](events, t)
func StateAt[S any, P interface {
	*S
	Apply(Event)
}](events []Event, t time.Time) S {
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
func MembersAt(events []Event, t time.Time) (Group, []Member) {
	var g Group
	members := make(map[string]Member)
	for _, e := range events {
		if e.At.After(t) {
			break
		}
		g.Apply(e)
		switch d := e.Data.(type) {
		case GroupCreated:
			clear(members)
			for _, m := range d.Members {
				members[m.Value] = m
			}
		case GroupMembersAdded:
			for _, m := range d.Members {
				members[m.Value] = m
			}
		case GroupMembersRemoved:
			for _, u := range d.Members {
				delete(members, string(u))
			}
		case GroupDeleted:
			clear(members)
		}
	}
	out := make([]Member, 0, len(members))
	for _, k := range slices.Sorted(maps.Keys(members)) {
		out = append(out, members[k])
	}
	g.Members = len(out)
	return g, out
}

// A Holding is one period in which a user (or group) held a unique value such as a userName.
type Holding struct {
	// ID is the holder's id.
	ID string `json:"id"`
	// Claimed and Released are the log positions of the claim and of its release (0: still
	// held).
	Claimed  Version `json:"claimedSeq"`
	Released Version `json:"releasedSeq,omitempty"`
}

// A RequestRecord is one request of a company's provisioning (SCIM) client, successful or not.
// Records have no effect on state; they are kept in a [RequestLog] for a limited time. They
// never hold a request body or query (which may carry personal data); Detail may quote a
// userName in an error message, which is one reason the records expire.
type RequestRecord struct {
	// Seq is the record's position in the request log, set when it is read.
	Seq    uint64   `json:"seq,omitempty"`
	Tenant TenantID `json:"tenant"`
	// At is when the request arrived (the injected clock); Cycle the sync cycle it belongs to
	// (0 if none could be determined).
	At    time.Time `json:"at"`
	Cycle int       `json:"cycle,omitempty"`
	// Method, Route (the route pattern) and Path (without the query) describe the request.
	Method string `json:"method"`
	Route  string `json:"route,omitempty"`
	Path   string `json:"path"`
	// Status is the HTTP status answered; SCIMType and Detail the SCIM error, if any.
	Status   int    `json:"status"`
	SCIMType string `json:"scimType,omitempty"`
	Detail   string `json:"detail,omitempty"`
	// RequestID is the correlation id its events carry (X-Request-Id).
	RequestID string `json:"requestId"`
	Actor     string `json:"actor"`
	UserAgent string `json:"userAgent,omitempty"`
	Source    string `json:"source,omitempty"`
	// Millis is how long the answer took.
	Millis float64 `json:"durationMs"`
}

// Failed reports whether the request was rejected (4xx or 5xx).
func (r RequestRecord) Failed() bool { return r.Status >= 400 }

// AuditLog is what audit reads from the event log, besides [EventLog].
type AuditLog interface {
	// Events returns up to limit (all if limit <= 0) events of one aggregate whose positions
	// are after the given one, in order; none for an aggregate without events.
	Events(ctx context.Context, tenant TenantID, kind Kind, id string, after Version, limit int) ([]Event, error)
	// Scan calls fn with the company's messages (events and index records) after position
	// after and up to through (0: up to the log's head when Scan starts), in order, until fn
	// returns false.
	Scan(ctx context.Context, tenant TenantID, after, through Version, fn func(Event) bool) error
	// Holders returns every holder of a unique value ("userName" or "displayName", already
	// normalised with [FoldUserName]) in the order they claimed it; none if it was never
	// claimed.
	Holders(ctx context.Context, tenant TenantID, field, value string) ([]Holding, error)
}

// RequestLog keeps a company's SCIM request records for a limited time (eventstore chooses
// and documents the retention).
type RequestLog interface {
	// RecordRequest stores one record.
	RecordRequest(ctx context.Context, r RequestRecord) error
	// LastRequest returns the company's most recent record, or an error wrapping ErrNotFound.
	LastRequest(ctx context.Context, tenant TenantID) (RequestRecord, error)
	// Requests calls fn with the company's records of cycles from..through (through 0: no
	// upper bound) in order, until fn returns false.
	Requests(ctx context.Context, tenant TenantID, from, through int, fn func(RequestRecord) bool) error
}

// Audit answers history questions from the log and tracks sync cycles. Create it with its
// fields set; it is safe for concurrent use.
type Audit struct {
	Log     EventLog
	History AuditLog
	// Requests keeps SCIM request records; nil leaves cycles without request counts and
	// failures.
	Requests RequestLog
	// Now and NewID are injected like [Service]'s.
	Now   func() time.Time
	NewID func() string
	// Gap is the quiet time that ends a sync cycle (DefaultCycleGap if zero).
	Gap time.Duration

	enter sync.Mutex // serialises starting a cycle in this process
	mu    sync.Mutex // guards seen
	seen  map[TenantID]cycleSeen
}

// cycleSeen is this process's view of a company's current cycle.
type cycleSeen struct {
	n    int
	last time.Time // when its latest request arrived
}

func (a *Audit) gap() time.Duration {
	if a.Gap > 0 {
		return a.Gap
	}
	return DefaultCycleGap
}

// EnterCycle returns the number of the sync cycle a company's SCIM request arriving now belongs
// to, starting a new one (appending its marker) when the company's previous request is at
// least Gap old. Starting is decided against the log, not only this process's memory: the
// last marker and the last request record, so several idledger processes agree, and of two
// that race to start the same cycle one appends (the marker asserts its subject's version)
// and the other adopts it.
func (a *Audit) EnterCycle(ctx context.Context, tenant TenantID) (int, error) {
	now := a.Now().UTC()
	gap := a.gap()
	if n, ok := a.fast(tenant, now, gap); ok {
		return n, nil
	}
	a.enter.Lock()
	defer a.enter.Unlock()
	if n, ok := a.fast(tenant, now, gap); ok {
		return n, nil
	}
	for range maxConflictRetries {
		mark, v, err := a.lastMarker(ctx, tenant)
		if err != nil {
			return 0, err
		}
		last := mark.At
		if a.Requests != nil {
			r, err := a.Requests.LastRequest(ctx, tenant)
			switch {
			case err == nil:
				if r.At.After(last) && r.Cycle == mark.Number {
					last = r.At
				}
			case !errors.Is(err, ErrNotFound):
				return 0, err
			}
		}
		if v != 0 && now.Sub(last) < gap {
			a.remember(tenant, mark.Number, now)
			return mark.Number, nil
		}
		r := RequestFrom(ctx)
		ua, src := r.client()
		n := mark.Number + 1
		e := Event{ID: a.NewID(), Tenant: tenant, Kind: KindCycle, AggregateID: CycleClient,
			Type: EventSyncCycleStarted, Schema: SchemaOf(EventSyncCycleStarted), At: now,
			Actor: r.Actor, Correlation: r.Correlation, UserAgent: ua, Source: src,
			Data: SyncCycleStarted{Number: n, Request: r.Correlation}}
		_, err = a.Log.Append(ctx, Batch{Tenant: tenant, Writes: []Write{{Event: e, Expected: v}}})
		if errors.Is(err, ErrConflict) {
			continue // another process started it: adopt it on the next round
		}
		if err != nil {
			return 0, fmt.Errorf("start sync cycle: %w", err)
		}
		a.remember(tenant, n, now)
		return n, nil
	}
	return 0, Errorf(ErrConflict, "sync cycle of %s is being started concurrently", tenant)
}

// fast answers from memory when this process saw the company's cycle within the gap.
func (a *Audit) fast(tenant TenantID, now time.Time, gap time.Duration) (int, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.seen[tenant]
	if !ok || now.Sub(c.last) >= gap {
		return 0, false
	}
	if now.After(c.last) {
		c.last = now
		a.seen[tenant] = c
	}
	return c.n, true
}

func (a *Audit) remember(tenant TenantID, n int, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen = make(map[TenantID]cycleSeen)
	}
	a.seen[tenant] = cycleSeen{n: n, last: at}
}

// cycleMark is one decoded marker.
type cycleMark struct {
	SyncCycleStarted
	Seq Version
	At  time.Time
}

func markOf(e Event) (cycleMark, bool) {
	d, ok := e.Data.(SyncCycleStarted)
	return cycleMark{SyncCycleStarted: d, Seq: e.Version, At: e.At}, ok
}

// lastMarker returns the company's last cycle marker and the marker subject's version (0 and a
// zero marker if it has none).
func (a *Audit) lastMarker(ctx context.Context, tenant TenantID) (cycleMark, Version, error) {
	v, err := a.Log.Version(ctx, tenant, KindCycle, CycleClient)
	if err != nil || v == 0 {
		return cycleMark{}, 0, err
	}
	events, err := a.History.Events(ctx, tenant, KindCycle, CycleClient, v-1, 1)
	if err != nil {
		return cycleMark{}, 0, err
	}
	if len(events) == 0 {
		return cycleMark{}, 0, fmt.Errorf("audit: cycle marker at seq %d of %s not readable", v, tenant)
	}
	m, _ := markOf(events[0])
	return m, v, nil
}

// markers returns all of a company's cycle markers in order.
func (a *Audit) markers(ctx context.Context, tenant TenantID) ([]cycleMark, error) {
	events, err := a.History.Events(ctx, tenant, KindCycle, CycleClient, 0, 0)
	if err != nil {
		return nil, err
	}
	out := make([]cycleMark, 0, len(events))
	for _, e := range events {
		if m, ok := markOf(e); ok {
			out = append(out, m)
		}
	}
	return out, nil
}

// cycleAt returns the number of the cycle a SCIM event at seq belongs to: that of the last
// marker before it (0 if none).
func cycleAt(marks []cycleMark, seq Version) int {
	i, _ := slices.BinarySearchFunc(marks, seq, func(m cycleMark, s Version) int {
		if m.Seq < s {
			return -1
		}
		return 1
	})
	if i == 0 {
		return 0
	}
	return marks[i-1].Number
}

// isProvisioningChange reports whether an event is a state change made by the SCIM client.
func isProvisioningChange(e Event) bool {
	if !strings.HasPrefix(e.Actor, ActorSCIMPrefix) {
		return false
	}
	switch e.Kind {
	case KindUser, KindGroup, KindTenant:
		return true
	}
	return false
}

// ---- timelines ----

// A TimelineEntry is one event as an auditor reads it.
type TimelineEntry struct {
	Seq  Version   `json:"seq"`
	At   time.Time `json:"at"`
	Type string    `json:"type"`
	// Kind and ID name the aggregate (a user's sign-ins have kind "signin").
	Kind  Kind   `json:"kind"`
	ID    string `json:"id"`
	Actor string `json:"actor"`
	// RequestID is the request that caused it; UserAgent and Source describe the client.
	RequestID string `json:"requestId,omitempty"`
	UserAgent string `json:"userAgent,omitempty"`
	Source    string `json:"source,omitempty"`
	// Cycle is the sync cycle of a provisioning change (0: not made by provisioning).
	Cycle int `json:"cycle,omitempty"`
	// Changes lists attribute changes (a creation lists every attribute as new).
	Changes        []Change `json:"changes,omitempty"`
	MembersAdded   []string `json:"membersAdded,omitempty"`
	MembersRemoved []string `json:"membersRemoved,omitempty"`
	// Detail holds the rest of the payload worth reading (PATCH operations as received, a
	// sign-in's reason, the groups a deleted user left...).
	Detail map[string]any `json:"detail,omitempty"`
}

// A Timeline is one page of a resource's history.
type Timeline struct {
	Kind Kind `json:"kind"`
	// ID is the resource asked for; Holders, for a look-up by name, every resource that held
	// the name (the entries are theirs, merged in log order).
	ID      string          `json:"id,omitempty"`
	Holders []Holding       `json:"holders,omitempty"`
	Entries []TimelineEntry `json:"entries"`
	// Next is the After of the next page, 0 on the last page.
	Next Version `json:"next,omitempty"`
}

// A Page selects part of a list: entries after a position (or cycles before a number), at
// most Limit of them.
type Page struct {
	After  Version
	Before int
	Limit  int
}

// Page size bounds.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return DefaultPageSize
	case p.Limit > MaxPageSize:
		return MaxPageSize
	}
	return p.Limit
}

// Timeline returns a page of a user's or group's history: every event of its subject in order
// (a user's sign-ins included). It works for deleted resources. It returns an error wrapping
// ErrNotFound if the resource never existed, ErrInvalid for another kind.
func (a *Audit) Timeline(ctx context.Context, tenant TenantID, kind Kind, id string, p Page) (Timeline, error) {
	if kind != KindUser && kind != KindGroup {
		return Timeline{}, Errorf(ErrInvalid, "no timeline for %q", kind)
	}
	t, err := a.timeline(ctx, tenant, kind, []string{id}, p)
	if err != nil {
		return Timeline{}, err
	}
	if len(t.Entries) == 0 && p.After == 0 {
		return Timeline{}, Errorf(ErrNotFound, "%s %s has no history", kind, id)
	}
	t.ID = id
	return t, nil
}

// TimelineByName returns a page of the history of every user that ever held userName (kind
// user) or every group that held displayName (kind group), case-insensitively, current and
// deleted ones alike. It returns an error wrapping ErrNotFound if the name was never held.
func (a *Audit) TimelineByName(ctx context.Context, tenant TenantID, kind Kind, name string, p Page) (Timeline, error) {
	field := map[Kind]string{KindUser: "userName", KindGroup: "displayName"}[kind]
	if field == "" {
		return Timeline{}, Errorf(ErrInvalid, "no timeline for %q", kind)
	}
	holders, err := a.History.Holders(ctx, tenant, field, FoldUserName(name))
	if err != nil {
		return Timeline{}, err
	}
	if len(holders) == 0 {
		return Timeline{}, Errorf(ErrNotFound, "no %s was ever named %q", kind, name)
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
func (a *Audit) timeline(ctx context.Context, tenant TenantID, kind Kind, ids []string, p Page) (Timeline, error) {
	limit := p.limit()
	var events []Event
	for _, id := range ids {
		kinds := []Kind{kind}
		if kind == KindUser {
			kinds = append(kinds, KindSignIn)
		}
		for _, k := range kinds {
			evs, err := a.History.Events(ctx, tenant, k, id, p.After, limit+1)
			if err != nil {
				return Timeline{}, err
			}
			events = append(events, evs...)
		}
	}
	slices.SortFunc(events, func(x, y Event) int { return compareVersion(x.Version, y.Version) })
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

func compareVersion(a, b Version) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// entryOf renders one event for auditors.
func entryOf(e Event, marks []cycleMark) TimelineEntry {
	t := TimelineEntry{Seq: e.Version, At: e.At, Type: e.Type, Kind: e.Kind, ID: e.AggregateID,
		Actor: e.Actor, RequestID: e.Correlation, UserAgent: e.UserAgent, Source: e.Source}
	if isProvisioningChange(e) {
		t.Cycle = cycleAt(marks, e.Version)
	}
	detail := map[string]any{}
	switch d := e.Data.(type) {
	case UserCreated:
		t.Changes = DiffResource(nil, d.Attributes)
	case UserChanged:
		t.Changes = d.Changes
		setIf(detail, "method", d.Method)
		if d.Operations != nil {
			detail["operations"] = d.Operations
		}
	case UserDeleted:
		if len(d.Groups) > 0 {
			detail["groups"] = d.Groups
		}
	case GroupCreated:
		t.Changes = DiffResource(nil, d.Attributes)
		for _, m := range d.Members {
			t.MembersAdded = append(t.MembersAdded, m.Value)
		}
		if len(d.Skipped) > 0 {
			detail["skipped"] = d.Skipped
		}
	case GroupChanged:
		t.Changes = d.Changes
		setIf(detail, "method", d.Method)
	case GroupMembersAdded:
		for _, m := range d.Members {
			t.MembersAdded = append(t.MembersAdded, m.Value)
		}
		if len(d.Skipped) > 0 {
			detail["skipped"] = d.Skipped
		}
	case GroupMembersRemoved:
		for _, u := range d.Members {
			t.MembersRemoved = append(t.MembersRemoved, string(u))
		}
		setIf(detail, "cause", d.Cause)
	case SignInRecorded:
		setIf(detail, "reason", d.Reason)
		setIf(detail, "detail", d.Detail)
		setIf(detail, "source", d.Source)
		setIf(detail, "flow", d.Flow)
	case ProvisioningLocked:
		setIf(detail, "method", d.Method)
		setIf(detail, "path", d.Path)
	case ProvisioningUnlocked:
		setIf(detail, "reason", d.Reason)
	}
	if len(detail) > 0 {
		t.Detail = detail
	}
	return t
}

func setIf(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}

// ---- as of ----

// A UserSnapshot is a user as it was at a moment.
type UserSnapshot struct {
	AsOf time.Time `json:"asOf"`
	User User      `json:"user"`
}

// UserAt returns the user as it was at t, folded from its own subject up to t with
// [User.Apply] (see [StateAt]). A user deleted by then comes back with Deleted set. It returns
// an error wrapping ErrNotFound if the user did not exist yet at t.
func (a *Audit) UserAt(ctx context.Context, tenant TenantID, id UserID, t time.Time) (UserSnapshot, error) {
	events, err := a.eventsUntil(ctx, tenant, KindUser, string(id), t)
	if err != nil {
		return UserSnapshot{}, err
	}
	if len(events) == 0 {
		return UserSnapshot{}, Errorf(ErrNotFound, "user %s has no history", id)
	}
	u := StateAt[User](events, t)
	if u.Version == 0 {
		return UserSnapshot{}, Errorf(ErrNotFound, "user %s did not exist yet at %s (created %s)",
			id, t.UTC().Format(time.RFC3339), events[0].At.UTC().Format(time.RFC3339))
	}
	return UserSnapshot{AsOf: t.UTC(), User: u}, nil
}

// A MembersSnapshot is a group's membership at a moment.
type MembersSnapshot struct {
	AsOf        time.Time `json:"asOf"`
	Group       GroupID   `json:"group"`
	DisplayName string    `json:"displayName,omitempty"`
	Deleted     bool      `json:"deleted,omitempty"`
	Version     Version   `json:"version"`
	Count       int       `json:"count"`
	Members     []Member  `json:"members"`
}

// MembersAt returns a group's members at t, replayed from the group's subject (see
// [MembersAt]). It returns an error wrapping ErrNotFound if the group did not exist yet.
// Caveat: a user deleted while in more than 900 groups leaves the rest through the read model
// only (Service.DeleteUser), so the replay still lists it there.
func (a *Audit) MembersAt(ctx context.Context, tenant TenantID, id GroupID, t time.Time) (MembersSnapshot, error) {
	events, err := a.eventsUntil(ctx, tenant, KindGroup, string(id), t)
	if err != nil {
		return MembersSnapshot{}, err
	}
	if len(events) == 0 {
		return MembersSnapshot{}, Errorf(ErrNotFound, "group %s has no history", id)
	}
	g, members := MembersAt(events, t)
	if g.Version == 0 {
		return MembersSnapshot{}, Errorf(ErrNotFound, "group %s did not exist yet at %s", id, t.UTC().Format(time.RFC3339))
	}
	return MembersSnapshot{AsOf: t.UTC(), Group: id, DisplayName: g.DisplayName(), Deleted: g.Deleted,
		Version: g.Version, Count: len(members), Members: members}, nil
}

// asOfPage is how many events an as-of read asks for at a time.
const asOfPage = 256

// eventsUntil reads an aggregate's events page by page and stops after the first one that
// happened after t: [StateAt] would not fold further.
func (a *Audit) eventsUntil(ctx context.Context, tenant TenantID, kind Kind, id string, t time.Time) ([]Event, error) {
	var events []Event
	var after Version
	for {
		page, err := a.History.Events(ctx, tenant, kind, id, after, asOfPage)
		if err != nil {
			return nil, err
		}
		events = append(events, page...)
		if len(page) < asOfPage || page[len(page)-1].At.After(t) {
			return events, nil
		}
		after = page[len(page)-1].Version
	}
}

// ---- sync cycles ----

// A CycleSummary describes one sync cycle of a company's provisioning client.
type CycleSummary struct {
	Number int `json:"number"`
	// Start is when its first request arrived; End when its last request or change happened.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Requests counts its SCIM requests. Once their records have expired (RequestsExpired) it
	// counts the requests that changed something, which the log keeps forever.
	Requests        int  `json:"requests"`
	RequestsExpired bool `json:"requestsExpired,omitempty"`
	// Changes counts its events per type; Failures its rejected requests per HTTP status.
	Changes  map[string]int `json:"changes"`
	Failures map[string]int `json:"failures"`
}

// A CycleDetail is one cycle with a page of its changes and its rejected requests (at most
// MaxPageSize of them; Failures counts them all).
type CycleDetail struct {
	CycleSummary
	Events []TimelineEntry `json:"events"`
	// Next is the After of the next page of events, 0 on the last.
	Next           Version         `json:"next,omitempty"`
	FailedRequests []RequestRecord `json:"failedRequests"`
}

// Cycles returns a company's sync cycles, newest first: at most p.Limit of them, numbered
// below p.Before if it is set. The second result is the Before of the next page (0: none).
func (a *Audit) Cycles(ctx context.Context, tenant TenantID, p Page) ([]CycleSummary, int, error) {
	all, err := a.markers(ctx, tenant)
	if err != nil {
		return nil, 0, err
	}
	end := len(all) // marks = all[start:end]
	if p.Before > 0 {
		end = slices.IndexFunc(all, func(m cycleMark) bool { return m.Number >= p.Before })
		if end < 0 {
			end = len(all)
		}
	}
	start, next := 0, 0
	if limit := p.limit(); end > limit {
		start = end - limit
		next = all[start].Number
	}
	var through Version
	if end < len(all) {
		through = all[end].Seq - 1
	}
	out, err := a.summarise(ctx, tenant, all[start:end], through, nil, nil)
	if err != nil {
		return nil, 0, err
	}
	slices.Reverse(out)
	return out, next, nil
}

// LastCycle returns the company's latest sync cycle, or nil if it has none.
func (a *Audit) LastCycle(ctx context.Context, tenant TenantID) (*CycleSummary, error) {
	mark, v, err := a.lastMarker(ctx, tenant)
	if err != nil || v == 0 {
		return nil, err
	}
	cs, err := a.summarise(ctx, tenant, []cycleMark{mark}, 0, nil, nil)
	if err != nil {
		return nil, err
	}
	return &cs[0], nil
}

// Cycle returns sync cycle n with a page of its changes (those after p.After, at most p.Limit)
// and its failures, or an error wrapping ErrNotFound.
func (a *Audit) Cycle(ctx context.Context, tenant TenantID, n int, p Page) (CycleDetail, error) {
	all, err := a.markers(ctx, tenant)
	if err != nil {
		return CycleDetail{}, err
	}
	i := slices.IndexFunc(all, func(m cycleMark) bool { return m.Number == n })
	if i < 0 {
		return CycleDetail{}, Errorf(ErrNotFound, "sync cycle %d not found", n)
	}
	marks := all[i : i+1]
	var through Version
	if i+1 < len(all) {
		through = all[i+1].Seq - 1 // the next marker bounds the scan
	}
	d := CycleDetail{Events: []TimelineEntry{}, FailedRequests: []RequestRecord{}}
	limit := p.limit()
	sums, err := a.summarise(ctx, tenant, marks, through,
		func(e Event) {
			switch {
			case e.Version <= p.After:
			case len(d.Events) < limit:
				d.Events = append(d.Events, entryOf(e, marks))
			case d.Next == 0:
				d.Next = d.Events[limit-1].Seq
			}
		},
		func(r RequestRecord) {
			if r.Failed() && len(d.FailedRequests) < MaxPageSize {
				d.FailedRequests = append(d.FailedRequests, r)
			}
		})
	if err != nil {
		return CycleDetail{}, err
	}
	d.CycleSummary = sums[0]
	return d, nil
}

// summarise computes the summaries of the consecutive cycles want, whose events end at
// position through (0: the log's head). onEvent and onRecord, if set, see each change and
// record.
func (a *Audit) summarise(ctx context.Context, tenant TenantID, want []cycleMark, through Version,
	onEvent func(Event), onRecord func(RequestRecord)) ([]CycleSummary, error) {
	if len(want) == 0 {
		return []CycleSummary{}, nil
	}
	sums := make([]CycleSummary, len(want))
	index := make(map[int]int, len(want))
	requests := make([]map[string]bool, len(want)) // request ids seen in events
	for i, m := range want {
		sums[i] = CycleSummary{Number: m.Number, Start: m.At, End: m.At,
			Changes: map[string]int{}, Failures: map[string]int{}}
		index[m.Number] = i
		requests[i] = map[string]bool{}
	}
	err := a.History.Scan(ctx, tenant, want[0].Seq, through, func(e Event) bool {
		if !isProvisioningChange(e) {
			return true
		}
		i, ok := index[cycleAt(want, e.Version)]
		if !ok {
			return true
		}
		s := &sums[i]
		s.Changes[e.Type]++
		if e.At.After(s.End) {
			s.End = e.At
		}
		requests[i][e.Correlation] = true
		if onEvent != nil {
			onEvent(e)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	records := make([]int, len(want))
	if a.Requests != nil {
		err := a.Requests.Requests(ctx, tenant, want[0].Number, want[len(want)-1].Number, func(r RequestRecord) bool {
			i, ok := index[r.Cycle]
			if !ok {
				return true
			}
			s := &sums[i]
			records[i]++
			if r.Failed() {
				s.Failures[fmt.Sprint(r.Status)]++
			}
			if r.At.After(s.End) {
				s.End = r.At
			}
			if onRecord != nil {
				onRecord(r)
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	for i := range sums {
		sums[i].Requests = records[i]
		if records[i] == 0 {
			// The opening request was recorded unless its record has expired (or none are
			// kept): fall back to the requests the log shows.
			sums[i].RequestsExpired = true
			sums[i].Requests = len(requests[i])
		}
	}
	return sums, nil
}

// RecordRequest keeps a SCIM request's record in the request log (nothing if there is none).
func (a *Audit) RecordRequest(ctx context.Context, r RequestRecord) error {
	if a.Requests == nil {
		return nil
	}
	return a.Requests.RecordRequest(ctx, r)
}
