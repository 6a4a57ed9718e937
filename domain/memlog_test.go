package domain

import (
	"context"
	"fmt"
	"sync"
)

// memLog is an in-memory EventLog for the domain's given/when/then tests. It keeps the
// contract of the real store, checked by TestMemLogConformance: one global sequence, per-
// aggregate versions and expectations, unique claims and the tenant guard, all or nothing per
// batch, and a retried batch (same event ids) stored once.
type memLog struct {
	mu     sync.Mutex
	seq    Version
	events []Event
	// claims maps tenant, field and value to the holder.
	claims map[string]string
}

func (l *memLog) key(tenant TenantID, kind Kind, id string) string {
	if kind == KindTenant {
		id = string(tenant)
	}
	return string(tenant) + "/" + string(kind) + "/" + id
}

func (l *memLog) Append(_ context.Context, b Batch) (Version, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(b.Writes) == 0 && len(b.Unique) == 0 && b.Guard == nil {
		return 0, nil
	}
	// A retry of a stored batch: its last event is in the log already (events without an id,
	// as some tests append, are never de-duplicated).
	if n := len(b.Writes); n > 0 && b.Writes[n-1].Event.ID != "" {
		for _, e := range l.events {
			if e.ID == b.Writes[n-1].Event.ID {
				return e.Version, nil
			}
		}
	}
	for _, u := range b.Unique {
		if h, ok := l.claims[claimKey(b.Tenant, u)]; ok && h != u.Holder && !u.Release {
			return 0, fmt.Errorf("memlog: claim %s: %w", u.Field, ErrUniqueness)
		}
	}
	if b.Guard != nil && l.version(b.Tenant, KindTenant, "") != *b.Guard {
		return 0, fmt.Errorf("memlog: guard: %w", ErrConflict)
	}
	for _, w := range b.Writes {
		if w.NoExpect {
			continue
		}
		if v := l.version(w.Event.Tenant, w.Event.Kind, w.Event.AggregateID); v != w.Expected {
			return 0, fmt.Errorf("memlog: %w", ErrConflict)
		}
	}
	if l.claims == nil {
		l.claims = make(map[string]string)
	}
	for _, u := range b.Unique {
		k := claimKey(b.Tenant, u)
		switch h, held := l.claims[k]; {
		case u.Release && h == u.Holder:
			delete(l.claims, k)
		case !u.Release && !held:
			l.claims[k] = u.Holder
			l.seq++ // a claim takes a position of the log, as in the real store
		}
	}
	for _, w := range b.Writes {
		l.seq++
		e := w.Event
		e.Version = l.seq
		l.events = append(l.events, e)
	}
	return l.seq, nil
}

// claimKey names the claim of u in tenant.
func claimKey(tenant TenantID, u UniqueOp) string {
	return string(tenant) + "/" + u.Field + "/" + u.Value
}

func (l *memLog) version(tenant TenantID, kind Kind, id string) Version {
	var v Version
	for _, e := range l.events {
		if l.key(e.Tenant, e.Kind, e.AggregateID) == l.key(tenant, kind, id) {
			v = e.Version
		}
	}
	return v
}

func (l *memLog) Load(_ context.Context, tenant TenantID, kind Kind, id string) ([]Event, Version, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	for _, e := range l.events {
		if l.key(e.Tenant, e.Kind, e.AggregateID) == l.key(tenant, kind, id) {
			out = append(out, e)
		}
	}
	return out, l.version(tenant, kind, id), nil
}

func (l *memLog) Version(_ context.Context, tenant TenantID, kind Kind, id string) (Version, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.version(tenant, kind, id), nil
}

// NewMemLog returns an empty memLog, for the conformance test in package domain_test (which
// can import the suite: this package cannot without a cycle).
func NewMemLog() EventLog { return &memLog{} }
