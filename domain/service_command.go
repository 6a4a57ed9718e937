package domain

import (
	"context"
	"errors"
	"fmt"
)

// The command skeleton. Every user, group and tenant command takes the same steps, in [run]:
//
//	lock the aggregate (in this process) → load it ([load]) → check If-Match → decide →
//	append at the version it was decided on (with the management rules, [Service.tenantRules])
//	→ on a lost race, load and decide again.
//
// A command only supplies its decision: a function from the aggregate's current state to the
// events it appends (see [decision]). Making a write visible to reads (read-your-writes) is the
// caller's last step: it waits for the returned version (the projector's WaitFor).

// state is the pointer type of an aggregate's folded state: *User, *Group or *Tenant.
type state[A any] interface {
	*A
	Apply(Event)
	Exists() bool
	version() Version
}

func (u *User) version() Version   { return u.Version }
func (g *Group) version() Version  { return g.Version }
func (t *Tenant) version() Version { return t.Version }

// aggregateKind says how commands load one kind of aggregate.
type aggregateKind[A any] struct {
	kind Kind
	// row reads the aggregate's row from the read model.
	row func(ctx context.Context, r ReadModel, tenant TenantID, id string) (A, error)
	// notFound is the error for an aggregate without events (or deleted).
	notFound func(id string) error
	// fold: the aggregate's events hold its whole state, so a row behind the log is replaced by
	// a replay of the events. A group's members live only in the read model (a group may have
	// 100k of them): a group row behind the log waits for the projector instead.
	fold bool
	// optimistic: the first attempt without If-Match decides on the read model's row as it is.
	// A stale row makes the append's expected version fail, and the retry loads
	// authoritatively. This spares the direct get of the log's head, which makes nats-server
	// load (and cache) the whole message block holding the aggregate's last event.
	optimistic bool
	// rules: batches on this kind follow the management rules (provisioning lock, adoption).
	rules bool
}

var (
	userKind = &aggregateKind[User]{
		kind: KindUser,
		row: func(ctx context.Context, r ReadModel, tenant TenantID, id string) (User, error) {
			return r.FindUser(ctx, tenant, UserID(id))
		},
		notFound:   func(id string) error { return Errorf(ErrNotFound, "User %s not found", id) },
		fold:       true,
		optimistic: true,
		rules:      true,
	}
	groupKind = &aggregateKind[Group]{
		kind: KindGroup,
		row: func(ctx context.Context, r ReadModel, tenant TenantID, id string) (Group, error) {
			return r.FindGroup(ctx, tenant, GroupID(id))
		},
		notFound:   func(id string) error { return Errorf(ErrNotFound, "Group %s not found", id) },
		optimistic: true,
		rules:      true,
	}
	// Tenant commands decide on the log's state (never on a row as it is): a "no change"
	// decided on a stale row would append nothing and so never be caught by the log.
	tenantKind = &aggregateKind[Tenant]{
		kind: KindTenant,
		row: func(ctx context.Context, r ReadModel, tenant TenantID, _ string) (Tenant, error) {
			return r.FindTenant(ctx, tenant)
		},
		notFound: func(id string) error { return Errorf(ErrNotFound, "tenant %s not found", id) },
		fold:     true,
	}
)

// load returns an aggregate's state to decide on; one without events, or deleted, is
// ErrNotFound. The read model holds the same fold of the same events, so its row is used when it
// is at the log's version for the aggregate (one direct get of the head); otherwise the events
// are folded, or, for kinds that cannot be folded, the projector is awaited (Service.Sync).
// With optimistic set the row is used as it is (see aggregateKind.optimistic).
func load[A any, P state[A]](ctx context.Context, s *Service, k *aggregateKind[A], tenant TenantID, id string, optimistic bool) (A, error) {
	var zero A
	if optimistic && s.Read != nil {
		if a, err := k.row(ctx, s.Read, tenant, id); err == nil && P(&a).Exists() {
			return a, nil
		}
	}
	if s.Read != nil {
		head, err := s.Log.Version(ctx, tenant, k.kind, id)
		if err != nil {
			return zero, err
		}
		if head == 0 {
			return zero, k.notFound(id)
		}
		a, err := k.row(ctx, s.Read, tenant, id)
		if err == nil && P(&a).version() == head {
			if !P(&a).Exists() {
				return zero, k.notFound(id)
			}
			return a, nil
		}
		if !k.fold {
			return awaitRow[A, P](ctx, s, k, tenant, id, head, a, err)
		}
	}
	events, _, err := s.Log.Load(ctx, tenant, k.kind, id)
	if err != nil {
		return zero, err
	}
	var a A
	for _, e := range events {
		P(&a).Apply(e)
	}
	if !P(&a).Exists() {
		return zero, k.notFound(id)
	}
	return a, nil
}

// awaitRow finishes load for a kind that cannot be folded: if the row (a, err) is behind the
// log's head, it waits for the projector to apply the head and reads the row again.
func awaitRow[A any, P state[A]](ctx context.Context, s *Service, k *aggregateKind[A], tenant TenantID, id string, head Version, a A, err error) (A, error) {
	var zero A
	if (err == nil && P(&a).version() < head) || errors.Is(err, ErrNotFound) {
		if s.Sync == nil {
			return zero, fmt.Errorf("load %s %s: read model behind the log and no Sync", k.kind, id)
		}
		if err := s.Sync(ctx, head); err != nil {
			return zero, fmt.Errorf("load %s %s: %w", k.kind, id, err)
		}
		a, err = k.row(ctx, s.Read, tenant, id)
	}
	if err != nil {
		return zero, err
	}
	if P(&a).version() > head {
		// The read model saw a newer event than our head read: decide again.
		return zero, Errorf(ErrConflict, "%s %s moved", k.kind, id)
	}
	return a, nil
}

// A target names the aggregate a command works on and how it was asked.
type target struct {
	tenant TenantID
	id     string
	// origin is the entry point of the request; it decides the management rules.
	origin Origin
	// ifMatch is the client's precondition (nil: none).
	ifMatch *Version
	// create: the aggregate is new (its id was just generated), so there is nothing to lock
	// or load; its first event asserts that its subject is still empty.
	create bool
}

// A decision is what a command decided. No events means no change: nothing is appended.
type decision struct {
	// events are appended in order on the command's own aggregate, at the version decided on.
	events []Event
	// others are writes on other aggregates decided with it (a deleted user leaving its
	// groups), appended in the same batch without a version check.
	others []Write
	// unique claims and releases values atomically with the events.
	unique []UniqueOp
}

// run is the command skeleton (see the top of this file). decide receives the current state
// (the zero value for a create) and may be called again after a lost race. run returns the state
// with the appended events folded in (its Version is the log position of the batch) and whether
// anything was appended. A lost race with If-Match is ErrPrecondition; a value claimed by
// another holder is ErrUniqueness, for the caller to word.
func run[A any, P state[A]](ctx context.Context, s *Service, k *aggregateKind[A], t target, decide func(cur A) (decision, error)) (A, bool, error) {
	if !t.create {
		unlock := s.lock(t.tenant, k.kind, t.id)
		defer unlock()
	}
	type result struct {
		a       A
		changed bool
	}
	attempt := 0
	r, err := retry(t.ifMatch, func() (result, error) {
		var cur A
		if !t.create {
			a, err := load[A, P](ctx, s, k, t.tenant, t.id, k.optimistic && attempt == 0 && t.ifMatch == nil)
			attempt++
			if err != nil {
				return result{}, err
			}
			if err := checkVersion(P(&a).version(), t.ifMatch); err != nil {
				return result{}, err
			}
			cur = a
		}
		d, err := decide(cur)
		if err != nil {
			return result{}, err
		}
		if len(d.events) == 0 {
			return result{a: cur}, nil
		}
		b := Batch{Tenant: t.tenant, Unique: d.unique}
		for _, e := range d.events {
			b.Writes = append(b.Writes, Write{Event: e, Expected: P(&cur).version()})
		}
		b.Writes = append(b.Writes, d.others...)
		if k.rules {
			if err := s.tenantRules(ctx, t.origin, &b); err != nil {
				return result{}, err
			}
		}
		v, err := s.Log.Append(ctx, b)
		if err != nil {
			return result{}, err
		}
		for _, e := range d.events {
			e.Version = v
			P(&cur).Apply(e)
		}
		return result{a: cur, changed: true}, nil
	})
	return r.a, r.changed, err
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
