// Package eventlogtest is a conformance suite for implementations of [domain.EventLog]: the
// real event store and the in-memory fakes that the tests of other packages use. [Run] checks
// the contract the write side relies on (see docs/event-model.md): optimistic concurrency per
// aggregate, atomic batches, tenant-wide unique claims and their release, the tenant guard,
// idempotent retries, and what Load and Version report.
//
// Only tests import this package; it is never linked into the binary.
package eventlogtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
)

// Run checks that the logs newLog returns keep the domain.EventLog contract. Each check runs as
// a subtest, calls newLog once and works in a company of its own (a random tenant id), so
// newLog may return a fresh log or one shared by all checks; it may register cleanups on the
// subtest's t.
func Run(t *testing.T, newLog func(t *testing.T) domain.EventLog) {
	t.Helper()
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			c.check(&fixture{t: t, log: newLog(t), tenant: domain.TenantID("t" + token())})
		})
	}
}

// checks lists the suite's checks in the order they run.
var checks = []struct {
	name  string
	check func(f *fixture)
}{
	{"EmptyAggregate", checkEmptyAggregate},
	{"AppendThenLoad", checkAppendThenLoad},
	{"VersionsAdvance", checkVersionsAdvance},
	{"BatchReturnsItsLastPosition", checkBatchReturnsItsLastPosition},
	{"SeveralWritesToOneAggregate", checkSeveralWritesToOneAggregate},
	{"EmptyBatch", checkEmptyBatch},
	{"StaleExpectedConflicts", checkStaleExpectedConflicts},
	{"ConflictStoresNothing", checkConflictStoresNothing},
	{"NoExpect", checkNoExpect},
	{"ConcurrentAppendsOneWins", checkConcurrentAppendsOneWins},
	{"AggregatesAreSeparate", checkAggregatesAreSeparate},
	{"RetryIsIdempotent", checkRetryIsIdempotent},
	{"UniqueClaim", checkUniqueClaim},
	{"UniqueScope", checkUniqueScope},
	{"UniqueRelease", checkUniqueRelease},
	{"UniqueFailureStoresNothing", checkUniqueFailureStoresNothing},
	{"ConflictClaimsNothing", checkConflictClaimsNothing},
	{"ConcurrentClaimsOneWins", checkConcurrentClaimsOneWins},
	{"Guard", checkGuard},
	{"GuardFailureStoresNothing", checkGuardFailureStoresNothing},
}

// fixture is one check's log and company.
type fixture struct {
	t      *testing.T
	log    domain.EventLog
	tenant domain.TenantID
}

// at is the decision time of every event the suite appends: whole microseconds in UTC, which
// any encoding keeps.
var at = time.Date(2026, 11, 20, 9, 30, 0, 123456000, time.UTC)

// token returns a random identifier that is valid as one subject token.
func token() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// event returns a new event of the fixture's company for the aggregate kind/id, with a fresh
// id and a typical payload.
func (f *fixture) event(kind domain.Kind, id string) domain.Event {
	e := domain.Event{
		ID: "e" + token(), Tenant: f.tenant, Kind: kind, AggregateID: id,
		At: at, Actor: "scim:tok1", Correlation: "req-" + id, UserAgent: "conformance", Source: "192.0.2.1",
	}
	switch kind {
	case domain.KindTenant:
		e.AggregateID = string(f.tenant)
		e.Type, e.Data = domain.EventTenantCreated, domain.TenantCreated{Name: "Acme", SCIMTokenHash: "ab12"}
	case domain.KindGroup:
		e.Type, e.Data = domain.EventGroupCreated, domain.GroupCreated{Attributes: map[string]any{"displayName": "g-" + id}}
	default:
		e.Type, e.Data = domain.EventUserCreated, domain.UserCreated{Attributes: map[string]any{"userName": "u-" + id}}
	}
	e.Schema = domain.SchemaOf(e.Type)
	return e
}

// user returns a write of a new event of user id, decided at version expected.
func (f *fixture) user(id string, expected domain.Version) domain.Write {
	return domain.Write{Event: f.event(domain.KindUser, id), Expected: expected}
}

// batch returns a batch of the fixture's company.
func (f *fixture) batch(writes ...domain.Write) domain.Batch {
	return domain.Batch{Tenant: f.tenant, Writes: writes}
}

// append appends b and fails the check on an error.
func (f *fixture) append(b domain.Batch) domain.Version {
	f.t.Helper()
	v, err := f.log.Append(f.t.Context(), b)
	if err != nil {
		f.t.Fatalf("Append: %v", err)
	}
	if len(b.Writes) > 0 && v == 0 {
		f.t.Fatal("Append stored writes and returned version 0")
	}
	return v
}

// appendFails appends b and checks that it fails with an error wrapping want.
func (f *fixture) appendFails(b domain.Batch, want error) {
	f.t.Helper()
	v, err := f.log.Append(f.t.Context(), b)
	if !errors.Is(err, want) {
		f.t.Fatalf("Append = %d, %v; want an error wrapping %q", v, err, want)
	}
}

// load returns an aggregate's events and version, checking that Load and Version agree and
// that the version is the last event's.
func (f *fixture) load(tenant domain.TenantID, kind domain.Kind, id string) ([]domain.Event, domain.Version) {
	f.t.Helper()
	events, v, err := f.log.Load(f.t.Context(), tenant, kind, id)
	if err != nil {
		f.t.Fatalf("Load %s/%s/%s: %v", tenant, kind, id, err)
	}
	only, err := f.log.Version(f.t.Context(), tenant, kind, id)
	if err != nil {
		f.t.Fatalf("Version %s/%s/%s: %v", tenant, kind, id, err)
	}
	if only != v {
		f.t.Fatalf("%s/%s/%s: Version = %d, Load's version = %d", tenant, kind, id, only, v)
	}
	var last domain.Version
	for i, e := range events {
		if e.Version <= last {
			f.t.Fatalf("%s/%s/%s: event %d has version %d after %d", tenant, kind, id, i, e.Version, last)
		}
		last = e.Version
	}
	if last != v {
		f.t.Fatalf("%s/%s/%s: version %d, last event's version %d", tenant, kind, id, v, last)
	}
	return events, v
}

// events returns the number of events of user id and its version.
func (f *fixture) userEvents(id string) (int, domain.Version) {
	f.t.Helper()
	events, v := f.load(f.tenant, domain.KindUser, id)
	return len(events), v
}

// wantUserEvents checks that user id has n events.
func (f *fixture) wantUserEvents(id string, n int) {
	f.t.Helper()
	if got, _ := f.userEvents(id); got != n {
		f.t.Fatalf("user %s has %d events, want %d", id, got, n)
	}
}

// claim returns a batch that creates user holder and claims value for it.
func (f *fixture) claim(field, value, holder string) domain.Batch {
	b := f.batch(f.user(holder, 0))
	b.Unique = []domain.UniqueOp{{Field: field, Value: value, Holder: holder}}
	return b
}

// An aggregate without events has no events and version 0.
func checkEmptyAggregate(f *fixture) {
	for _, kind := range []domain.Kind{domain.KindTenant, domain.KindUser, domain.KindGroup} {
		events, v := f.load(f.tenant, kind, "none")
		if len(events) != 0 || v != 0 {
			f.t.Errorf("%s never written: %d events, version %d; want none, 0", kind, len(events), v)
		}
	}
}

// Load returns an appended event as it was written, with its version set.
func checkAppendThenLoad(f *fixture) {
	for _, kind := range []domain.Kind{domain.KindTenant, domain.KindUser, domain.KindGroup} {
		w := domain.Write{Event: f.event(kind, "a1")}
		v := f.append(f.batch(w))
		events, got := f.load(f.tenant, kind, w.Event.AggregateID)
		if len(events) != 1 || got != v {
			f.t.Fatalf("%s: %d events at version %d; want 1 at %d", kind, len(events), got, v)
		}
		want := w.Event
		want.Version = v
		e := events[0]
		if !e.At.Equal(want.At) {
			f.t.Errorf("%s: At = %v, want %v", kind, e.At, want.At)
		}
		e.At = want.At
		if !reflect.DeepEqual(e, want) {
			f.t.Errorf("%s: loaded\n%#v\nwant\n%#v", kind, e, want)
		}
	}
}

// Each append moves the aggregate's version to a later position of the log; other aggregates
// keep theirs.
func checkVersionsAdvance(f *fixture) {
	v1 := f.append(f.batch(f.user("u1", 0)))
	v2 := f.append(f.batch(f.user("u1", v1)))
	if v2 <= v1 {
		f.t.Fatalf("second append returned %d after %d", v2, v1)
	}
	v3 := f.append(f.batch(f.user("u2", 0)))
	if v3 <= v2 {
		f.t.Fatalf("append to another aggregate returned %d after %d", v3, v2)
	}
	events, v := f.load(f.tenant, domain.KindUser, "u1")
	if len(events) != 2 || v != v2 || events[0].Version != v1 {
		f.t.Fatalf("u1: %d events at %d (first at %d); want 2 at %d (first at %d)", len(events), v, events[0].Version, v2, v1)
	}
}

// Append returns the position of the batch's last write: the version of its aggregate.
func checkBatchReturnsItsLastPosition(f *fixture) {
	v := f.append(f.batch(f.user("a", 0), f.user("b", 0)))
	_, va := f.userEvents("a")
	_, vb := f.userEvents("b")
	if vb != v || va == 0 || va >= vb {
		f.t.Fatalf("Append returned %d; versions a %d, b %d; want b = %d > a > 0", v, va, vb, v)
	}
}

// Several writes to one aggregate in a batch, each decided on the version before the batch,
// are all stored in order.
func checkSeveralWritesToOneAggregate(f *fixture) {
	first, second := f.user("u1", 0), f.user("u1", 0)
	v := f.append(f.batch(first, second))
	events, got := f.load(f.tenant, domain.KindUser, "u1")
	if len(events) != 2 || got != v || events[0].ID != first.Event.ID || events[1].ID != second.Event.ID {
		f.t.Fatalf("u1: %d events at %d; want both writes in order at %d", len(events), got, v)
	}
	// The next batch is decided on the version after both.
	f.append(f.batch(f.user("u1", v), f.user("u1", v)))
	f.wantUserEvents("u1", 4)
}

// A batch with nothing to write stores nothing and returns version 0.
func checkEmptyBatch(f *fixture) {
	v, err := f.log.Append(f.t.Context(), f.batch())
	if err != nil || v != 0 {
		f.t.Fatalf("empty batch: Append = %d, %v; want 0, nil", v, err)
	}
}

// An expected version that is not the aggregate's current one, older or newer, is a conflict
// and stores nothing.
func checkStaleExpectedConflicts(f *fixture) {
	v1 := f.append(f.batch(f.user("u1", 0)))
	f.appendFails(f.batch(f.user("u1", 0)), domain.ErrConflict)
	f.appendFails(f.batch(f.user("u1", v1+1000)), domain.ErrConflict)
	f.append(f.batch(f.user("u2", 0)))
	f.appendFails(f.batch(f.user("u1", v1-1)), domain.ErrConflict)
	if n, v := f.userEvents("u1"); n != 1 || v != v1 {
		f.t.Fatalf("u1 after conflicts: %d events at %d; want 1 at %d", n, v, v1)
	}
	// A new aggregate expects version 0: any other expectation is a conflict.
	f.appendFails(f.batch(f.user("u3", v1)), domain.ErrConflict)
	f.wantUserEvents("u3", 0)
}

// A batch with one stale write stores none of its writes.
func checkConflictStoresNothing(f *fixture) {
	v1 := f.append(f.batch(f.user("old", 0)))
	f.append(f.batch(f.user("old", v1)))
	f.appendFails(f.batch(f.user("fresh", 0), f.user("old", v1), f.user("other", 0)), domain.ErrConflict)
	f.wantUserEvents("fresh", 0)
	f.wantUserEvents("other", 0)
	f.wantUserEvents("old", 2)
}

// A write with NoExpect is stored whatever the aggregate's version.
func checkNoExpect(f *fixture) {
	v1 := f.append(f.batch(f.user("u1", 0)))
	f.append(f.batch(f.user("u1", v1)))
	w := f.user("u1", 0)
	w.NoExpect = true
	v := f.append(f.batch(w))
	if n, got := f.userEvents("u1"); n != 3 || got != v {
		f.t.Fatalf("u1: %d events at %d; want 3 at %d", n, got, v)
	}
}

// Of concurrent appends decided on the same version of an aggregate, exactly one is stored;
// the others are conflicts.
func checkConcurrentAppendsOneWins(f *fixture) {
	v1 := f.append(f.batch(f.user("u1", 0)))
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f.log.Append(context.WithoutCancel(f.t.Context()), f.batch(f.user("u1", v1)))
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, domain.ErrConflict):
			f.t.Errorf("concurrent append: %v; want nil or ErrConflict", err)
		}
	}
	if won != 1 {
		f.t.Errorf("%d of %d concurrent appends on version %d were stored; want 1", won, n, v1)
	}
	f.wantUserEvents("u1", 2)
}

// Aggregates are told apart by company, kind and id.
func checkAggregatesAreSeparate(f *fixture) {
	other := &fixture{t: f.t, log: f.log, tenant: domain.TenantID("t" + token())}
	f.append(f.batch(f.user("x", 0)))
	f.append(f.batch(domain.Write{Event: f.event(domain.KindGroup, "x")}))
	other.append(other.batch(other.user("x", 0)))
	f.append(f.batch(f.user("x", mustVersion(f, f.tenant, domain.KindUser, "x"))))
	for _, a := range []struct {
		tenant domain.TenantID
		kind   domain.Kind
		n      int
	}{{f.tenant, domain.KindUser, 2}, {f.tenant, domain.KindGroup, 1}, {other.tenant, domain.KindUser, 1}, {other.tenant, domain.KindGroup, 0}} {
		events, _ := f.load(a.tenant, a.kind, "x")
		if len(events) != a.n {
			f.t.Errorf("%s/%s/x: %d events, want %d", a.tenant, a.kind, len(events), a.n)
		}
		for _, e := range events {
			if e.Tenant != a.tenant || e.Kind != a.kind || e.AggregateID != "x" {
				f.t.Errorf("%s/%s/x: Load returned an event of %s/%s/%s", a.tenant, a.kind, e.Tenant, e.Kind, e.AggregateID)
			}
		}
	}
	if n, _ := f.load(f.tenant, domain.KindTenant, string(f.tenant)); len(n) != 0 {
		f.t.Errorf("tenant aggregate has %d events, want none", len(n))
	}
}

func mustVersion(f *fixture, tenant domain.TenantID, kind domain.Kind, id string) domain.Version {
	f.t.Helper()
	_, v := f.load(tenant, kind, id)
	return v
}

// Appending the very same batch again (a retry after a lost answer: same event ids) stores
// nothing new and returns the first append's version: the event id is the log's
// de-duplication key.
func checkRetryIsIdempotent(f *fixture) {
	one := f.batch(f.user("u1", 0))
	v := f.append(one)
	if again := f.append(one); again != v {
		f.t.Errorf("retry of a one-write batch returned %d, first append %d", again, v)
	}
	f.wantUserEvents("u1", 1)

	two := f.batch(f.user("a", 0), f.user("b", 0))
	v = f.append(two)
	if again := f.append(two); again != v {
		f.t.Errorf("retry of a two-write batch returned %d, first append %d", again, v)
	}
	f.wantUserEvents("a", 1)
	f.wantUserEvents("b", 1)
}

// A value claimed by one holder cannot be claimed by another; its holder may claim it again.
func checkUniqueClaim(f *fixture) {
	f.append(f.claim("userName", "ada", "u1"))
	f.appendFails(f.claim("userName", "ada", "u2"), domain.ErrUniqueness)
	f.wantUserEvents("u2", 0)

	_, v := f.userEvents("u1")
	b := f.batch(f.user("u1", v))
	b.Unique = []domain.UniqueOp{{Field: "userName", Value: "ada", Holder: "u1"}}
	f.append(b)
	f.wantUserEvents("u1", 2)

	// A claim without writes is a batch of its own.
	claimOnly := domain.Batch{Tenant: f.tenant, Unique: []domain.UniqueOp{{Field: "userName", Value: "bob", Holder: "u3"}}}
	if _, err := f.log.Append(f.t.Context(), claimOnly); err != nil {
		f.t.Fatalf("claim without writes: %v", err)
	}
	f.appendFails(f.claim("userName", "bob", "u4"), domain.ErrUniqueness)
}

// A claim holds within one company and one field; values are compared exactly (callers
// normalise them).
func checkUniqueScope(f *fixture) {
	f.append(f.claim("userName", "ada", "u1"))
	f.append(f.claim("userName", "Ada", "u2"))
	f.append(f.claim("displayName", "ada", "g1"))
	other := &fixture{t: f.t, log: f.log, tenant: domain.TenantID("t" + token())}
	other.append(other.claim("userName", "ada", "u3"))
	other.appendFails(other.claim("userName", "ada", "u4"), domain.ErrUniqueness)
	f.appendFails(f.claim("displayName", "ada", "g2"), domain.ErrUniqueness)
}

// A holder releases its value (a rename or delete), after which another may claim it; a release
// by anyone else changes nothing.
func checkUniqueRelease(f *fixture) {
	f.append(f.claim("userName", "ada", "u1"))

	// A release by a non-holder is no error and frees nothing.
	stranger := f.claim("userName", "ada", "u2")
	stranger.Unique[0].Release = true
	f.append(stranger)
	f.appendFails(f.claim("userName", "ada", "u3"), domain.ErrUniqueness)

	// A rename: release the old value and claim the new one in one batch.
	_, v := f.userEvents("u1")
	rename := f.batch(f.user("u1", v))
	rename.Unique = []domain.UniqueOp{
		{Field: "userName", Value: "ada", Holder: "u1", Release: true},
		{Field: "userName", Value: "ada.l", Holder: "u1"},
	}
	f.append(rename)
	f.append(f.claim("userName", "ada", "u4"))
	f.appendFails(f.claim("userName", "ada.l", "u5"), domain.ErrUniqueness)

	// Released values may be claimed back by their former holder later.
	_, v = f.userEvents("u4")
	release := f.batch(f.user("u4", v))
	release.Unique = []domain.UniqueOp{{Field: "userName", Value: "ada", Holder: "u4", Release: true}}
	f.append(release)
	_, v = f.userEvents("u1")
	back := f.batch(f.user("u1", v))
	back.Unique = []domain.UniqueOp{{Field: "userName", Value: "ada", Holder: "u1"}}
	f.append(back)
	f.appendFails(f.claim("userName", "ada", "u6"), domain.ErrUniqueness)
}

// A batch with a claim held by another stores none of its writes and none of its other claims.
func checkUniqueFailureStoresNothing(f *fixture) {
	f.append(f.claim("userName", "ada", "u0"))
	b := f.claim("userName", "bob", "u1")
	b.Writes = append(b.Writes, f.user("u9", 0))
	b.Unique = append(b.Unique, domain.UniqueOp{Field: "userName", Value: "ada", Holder: "u1"})
	f.appendFails(b, domain.ErrUniqueness)
	f.wantUserEvents("u1", 0)
	f.wantUserEvents("u9", 0)
	f.append(f.claim("userName", "bob", "u2"))
}

// A batch that fails on a stale version claims nothing and releases nothing.
func checkConflictClaimsNothing(f *fixture) {
	v := f.append(f.claim("userName", "ada", "u1"))
	f.append(f.batch(f.user("u1", v)))
	_, now := f.userEvents("u1")

	stale := f.batch(f.user("u1", v))
	stale.Unique = []domain.UniqueOp{
		{Field: "userName", Value: "ada", Holder: "u1", Release: true},
		{Field: "userName", Value: "carol", Holder: "u1"},
	}
	f.appendFails(stale, domain.ErrConflict)
	f.append(f.claim("userName", "carol", "u2"))
	f.appendFails(f.claim("userName", "ada", "u3"), domain.ErrUniqueness)
	if n, got := f.userEvents("u1"); n != 2 || got != now {
		f.t.Fatalf("u1: %d events at %d; want 2 at %d", n, got, now)
	}
}

// Of concurrent batches claiming one value for different holders, exactly one is stored; the
// others fail with ErrUniqueness (not a conflict: retrying cannot help them).
func checkConcurrentClaimsOneWins(f *fixture) {
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f.log.Append(context.WithoutCancel(f.t.Context()), f.claim("userName", "zed", "c"+string(rune('a'+i))))
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, domain.ErrUniqueness):
			f.t.Errorf("concurrent claim: %v; want nil or ErrUniqueness", err)
		}
	}
	if won != 1 {
		f.t.Errorf("%d of %d concurrent claims of one value were stored; want 1", won, n)
	}
	stored := 0
	for i := range n {
		c, _ := f.userEvents("c" + string(rune('a'+i)))
		stored += c
	}
	if stored != 1 {
		f.t.Errorf("%d users of the concurrent claims were stored; want 1", stored)
	}
}

// A guard lets a batch through only while the company's tenant aggregate is at the guarded
// version (0: no tenant events yet).
func checkGuard(f *fixture) {
	zero := domain.Version(0)
	b := f.batch(f.user("u1", 0))
	b.Guard = &zero
	f.append(b)

	vt := f.append(f.batch(domain.Write{Event: f.event(domain.KindTenant, "")}))
	b = f.batch(f.user("u2", 0))
	b.Guard = &zero
	f.appendFails(b, domain.ErrConflict)
	f.wantUserEvents("u2", 0)

	b = f.batch(f.user("u2", 0))
	b.Guard = &vt
	f.append(b)
	f.wantUserEvents("u2", 1)
	// The guard does not move the tenant: a second batch guarded on the same version passes.
	b = f.batch(f.user("u3", 0))
	b.Guard = &vt
	f.append(b)
	if _, v := f.load(f.tenant, domain.KindTenant, string(f.tenant)); v != vt {
		f.t.Fatalf("tenant version %d after guarded batches, want %d", v, vt)
	}
}

// A batch whose guard is stale fails with ErrConflict and stores neither its writes nor its
// claims.
func checkGuardFailureStoresNothing(f *fixture) {
	vt := f.append(f.batch(domain.Write{Event: f.event(domain.KindTenant, "")}))
	lock := domain.Write{Event: f.event(domain.KindTenant, ""), Expected: vt}
	lock.Event.Type, lock.Event.Data = domain.EventTenantProvisioningLocked, domain.ProvisioningLocked{}
	lock.Event.Schema = domain.SchemaOf(lock.Event.Type)
	f.append(f.batch(lock))

	b := f.claim("userName", "ada", "u1")
	b.Guard = &vt
	f.appendFails(b, domain.ErrConflict)
	f.wantUserEvents("u1", 0)
	f.append(f.claim("userName", "ada", "u2"))
}
