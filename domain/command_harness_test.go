package domain

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The harness of the given/when/then command tests (command_test.go): given events in a log,
// when a command runs with an origin, then these events are appended (or this error returned).
// Events are written in the style of the samples under testdata/events: a type and the JSON of
// its payload.

var cmdTime = time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)

// recLog wraps the in-memory memLog: it records what each command appends (the events and the
// claims), refuses a claim held by another holder (ErrUniqueness) and a batch whose tenant guard
// no longer holds (ErrConflict), and can lose a number of races on purpose (conflicts).
type recLog struct {
	*memLog
	mu        sync.Mutex
	claims    map[string]string // field/value → holder
	touched   map[string]aggRef // every aggregate with events
	batches   []Batch           // appended batches, in order
	conflicts int               // the next conflicts appends fail with ErrConflict
	head      Version           // the version the last append returned
}

type aggRef struct {
	tenant TenantID
	kind   Kind
	id     string
}

func newRecLog() *recLog {
	return &recLog{memLog: &memLog{}, claims: map[string]string{}, touched: map[string]aggRef{}}
}

func (l *recLog) Append(ctx context.Context, b Batch) (Version, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conflicts > 0 {
		l.conflicts--
		return 0, fmt.Errorf("reclog: %w", ErrConflict)
	}
	for _, u := range b.Unique {
		if h, ok := l.claims[u.Field+"/"+u.Value]; ok && h != u.Holder && !u.Release {
			return 0, fmt.Errorf("reclog: %s %q: %w", u.Field, u.Value, ErrUniqueness)
		}
	}
	if b.Guard != nil {
		if v, _ := l.memLog.Version(ctx, b.Tenant, KindTenant, string(b.Tenant)); v != *b.Guard {
			return 0, fmt.Errorf("reclog: guard: %w", ErrConflict)
		}
	}
	v, err := l.memLog.Append(ctx, b)
	if err != nil {
		return 0, err
	}
	for _, u := range b.Unique {
		k := u.Field + "/" + u.Value
		switch {
		case !u.Release:
			l.claims[k] = u.Holder
		case l.claims[k] == u.Holder:
			delete(l.claims, k)
		}
	}
	for _, w := range b.Writes {
		e := w.Event
		l.touched[string(e.Tenant)+"/"+string(e.Kind)+"/"+e.AggregateID] = aggRef{e.Tenant, e.Kind, e.AggregateID}
	}
	l.batches = append(l.batches, b)
	l.head = v
	return v, nil
}

// aggregates returns the ids of a tenant's aggregates of one kind, sorted.
func (l *recLog) aggregates(tenant TenantID, kind Kind) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for _, a := range l.touched {
		if a.tenant == tenant && a.kind == kind {
			ids = append(ids, a.id)
		}
	}
	slices.Sort(ids)
	return ids
}

// memRead is the read model of a recLog: every read folds the aggregate's events from the log
// with the domain's own Apply, as the projection does, so it is always current. Memberships are
// folded from the group's events; members naming no existing user are left out, as the
// projection leaves them out.
// With lag set, it is a read model behind the log: it has applied the log up to *lag only.
type memRead struct {
	log *recLog
	lag *Version
}

func (r memRead) events(ctx context.Context, tenant TenantID, kind Kind, id string) []Event {
	events, _, _ := r.log.Load(ctx, tenant, kind, id)
	if r.lag != nil {
		for i, e := range events {
			if e.Version > *r.lag {
				return events[:i]
			}
		}
	}
	return events
}

func (r memRead) FindUser(ctx context.Context, tenant TenantID, id UserID) (User, error) {
	var u User
	for _, e := range r.events(ctx, tenant, KindUser, string(id)) {
		u.Apply(e)
	}
	if !u.Exists() {
		return User{}, Errorf(ErrNotFound, "User %s not found", id)
	}
	return u, nil
}

func (r memRead) FindUserByUserName(ctx context.Context, tenant TenantID, name string) (User, error) {
	for _, id := range r.log.aggregates(tenant, KindUser) {
		if u, err := r.FindUser(ctx, tenant, UserID(id)); err == nil && FoldCase(u.UserName()) == FoldCase(name) {
			return u, nil
		}
	}
	return User{}, Errorf(ErrNotFound, "no user %q", name)
}

// group folds a group and its member set.
func (r memRead) group(ctx context.Context, tenant TenantID, id GroupID) (Group, map[string]Member) {
	var g Group
	members := map[string]Member{}
	for _, e := range r.events(ctx, tenant, KindGroup, string(id)) {
		g.Apply(e)
		var add []Member
		switch d := e.Data.(type) {
		case GroupCreated:
			clear(members)
			add = d.Members
		case GroupMembersAdded:
			add = d.Members
		case GroupMembersRemoved:
			for _, u := range d.Members {
				delete(members, string(u))
			}
		case GroupDeleted:
			clear(members)
		}
		for _, m := range add {
			if _, err := r.FindUser(ctx, tenant, UserID(m.Value)); err == nil {
				members[m.Value] = m
			}
		}
	}
	g.Members = len(members)
	return g, members
}

func (r memRead) FindGroup(ctx context.Context, tenant TenantID, id GroupID) (Group, error) {
	g, _ := r.group(ctx, tenant, id)
	if !g.Exists() {
		return Group{}, Errorf(ErrNotFound, "Group %s not found", id)
	}
	return g, nil
}

func (r memRead) MemberSet(ctx context.Context, tenant TenantID, id GroupID, users []UserID) (map[UserID]bool, error) {
	_, members := r.group(ctx, tenant, id)
	out := map[UserID]bool{}
	for _, u := range users {
		if _, ok := members[string(u)]; ok {
			out[u] = true
		}
	}
	return out, nil
}

func (r memRead) Members(ctx context.Context, tenant TenantID, id GroupID, fn func(Member) bool) error {
	_, members := r.group(ctx, tenant, id)
	for _, k := range slices.Sorted(maps.Keys(members)) {
		if !fn(members[k]) {
			break
		}
	}
	return nil
}

func (r memRead) GroupsOf(ctx context.Context, tenant TenantID, user UserID) ([]GroupID, error) {
	var out []GroupID
	for _, id := range r.log.aggregates(tenant, KindGroup) {
		if g, members := r.group(ctx, tenant, GroupID(id)); g.Exists() {
			if _, ok := members[string(user)]; ok {
				out = append(out, GroupID(id))
			}
		}
	}
	return out, nil
}

func (r memRead) FindGroupByDisplayName(ctx context.Context, tenant TenantID, name string) (Group, error) {
	for _, id := range r.log.aggregates(tenant, KindGroup) {
		if g, err := r.FindGroup(ctx, tenant, GroupID(id)); err == nil && FoldCase(g.DisplayName()) == FoldCase(name) {
			return g, nil
		}
	}
	return Group{}, Errorf(ErrNotFound, "no group %q", name)
}

func (r memRead) FindTenant(ctx context.Context, id TenantID) (Tenant, error) {
	var t Tenant
	for _, e := range r.events(ctx, id, KindTenant, string(id)) {
		t.Apply(e)
	}
	if !t.Exists() {
		return Tenant{}, Errorf(ErrNotFound, "tenant %s not found", id)
	}
	return t, nil
}

// A given event, written as "kind/id type {payload}" (the payload as in testdata/events). The
// tenant is always "t1"; for a tenant event the id is the tenant's.
type given string

// event parses a given into an Event.
func (g given) event(tb testing.TB) Event {
	tb.Helper()
	ref, rest, _ := strings.Cut(string(g), " ")
	typ, data, _ := strings.Cut(rest, " ")
	kind, id, _ := strings.Cut(ref, "/")
	if data == "" {
		data = "{}"
	}
	d, err := DecodeData(typ, SchemaOf(typ), []byte(data))
	if err != nil {
		tb.Fatalf("given %q: %v", g, err)
	}
	actor := "scim:given"
	if typ == EventUserInvited {
		actor = "api:given"
	}
	return Event{ID: "g-" + id + "-" + typ, Tenant: "t1", Kind: Kind(kind), AggregateID: id, Type: typ,
		Schema: SchemaOf(typ), At: cmdTime.Add(-time.Hour), Actor: actor, Data: d}
}

// cmdEnv is one given/when/then run: a Service over a recLog and its read model, holding the
// given events and the claims they hold.
type cmdEnv struct {
	tb    testing.TB
	log   *recLog
	svc   *Service
	ctx   context.Context
	start int // batches recorded before the command
}

// newCmdEnv appends the given events, one batch each, and claims the userNames and
// displayNames they hold, as the commands that wrote them did.
func newCmdEnv(tb testing.TB, givens ...given) *cmdEnv {
	tb.Helper()
	log := newRecLog()
	n := 0
	svc := &Service{Log: log, Read: memRead{log: log}, Now: func() time.Time { return cmdTime },
		NewID:  func() string { n++; return fmt.Sprintf("id%d", n) },
		Random: strings.NewReader(strings.Repeat("k", 64)),
		Sync:   func(context.Context, Version) error { return nil }}
	env := &cmdEnv{tb: tb, log: log, svc: svc}
	for _, g := range givens {
		e := g.event(tb)
		b := Batch{Tenant: e.Tenant, Writes: []Write{{Event: e, NoExpect: true}}}
		switch d := e.Data.(type) {
		case UserCreated:
			b.Unique = []UniqueOp{{Field: "userName", Value: FoldCase(stringAttr(d.Attributes, "userName")), Holder: e.AggregateID}}
		case GroupCreated:
			b.Unique = []UniqueOp{{Field: "displayName", Value: FoldCase(stringAttr(d.Attributes, "displayName")), Holder: e.AggregateID}}
		}
		if _, err := log.Append(context.Background(), b); err != nil {
			tb.Fatalf("given %q: %v", g, err)
		}
	}
	env.start = len(log.batches)
	env.ctx = WithRequest(context.Background(), Request{Actor: "scim:token", Correlation: "req-1", Method: "POST", Path: "/scim/v2/Users"})
	return env
}

// appended returns what the command appended: one line per event, "kind/id type {payload}",
// then one line per claim ("claim field value holder" or "release …") and "guard" for a batch
// guarded by the tenant's version.
func (env *cmdEnv) appended() []string {
	env.tb.Helper()
	var out []string
	for _, b := range env.log.batches[env.start:] {
		for _, w := range b.Writes {
			e := w.Event
			if e.At != cmdTime || e.Schema != SchemaOf(e.Type) || e.Tenant != "t1" && e.Kind != KindTenant {
				env.tb.Errorf("event %s: at %s, schema %d, tenant %s", e.Type, e.At, e.Schema, e.Tenant)
			}
			data, err := json.Marshal(e.Data)
			if err != nil {
				env.tb.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s/%s %s %s", e.Kind, e.AggregateID, e.Type, data))
		}
		for _, u := range b.Unique {
			op := "claim"
			if u.Release {
				op = "release"
			}
			out = append(out, fmt.Sprintf("%s %s %s %s", op, u.Field, u.Value, u.Holder))
		}
		if b.Guard != nil {
			out = append(out, fmt.Sprintf("guard tenant at %d", *b.Guard))
		}
	}
	return out
}

// then compares what the command appended with want, line by line.
func (env *cmdEnv) then(want ...string) {
	env.tb.Helper()
	got := env.appended()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		env.tb.Errorf("appended:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// Common givens.
const (
	gAcme    given = `tenant/t1 tenant.created {"name":"Acme","scimTokenHash":"h"}`
	gManaged given = `tenant/t1 tenant.provisioning_locked {"request":"req-0","method":"POST","path":"/scim/v2/Users"}`
	gAda     given = `user/u1 user.created {"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"attributes":{"active":true,"userName":"ada@acme.test"}}`
	gBob     given = `user/u2 user.created {"attributes":{"userName":"bob@acme.test"}}`
	gCarol   given = `user/u3 user.invited {"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"attributes":{"active":true,"emails":[{"primary":true,"type":"work","value":"carol@acme.test"}],"userName":"carol@acme.test"}}`
	gFinance given = `group/g1 group.created {"attributes":{"displayName":"Finance"},"members":[{"value":"u1"},{"value":"u2"}]}`
	gSales   given = `group/g2 group.created {"attributes":{"displayName":"Sales"},"members":[{"value":"u1"}]}`
)

// versionOf returns a pointer to v, for If-Match.
func versionOf(v Version) *Version { return &v }

// atHead stands, in a when-step's If-Match, for the aggregate's version in the log at the time
// the step runs (versions count every message of the log, claims included).
var atHead = versionOf(^Version(0))

// resolve returns ifMatch, or the aggregate's current version for atHead.
func (env *cmdEnv) resolve(kind Kind, id string, ifMatch *Version) *Version {
	if ifMatch != atHead {
		return ifMatch
	}
	v, err := env.log.Version(env.ctx, "t1", kind, id)
	if err != nil {
		env.tb.Fatal(err)
	}
	return &v
}
