package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idledger/idledger/domain"
)

// registerAuthFailures registers idledger_auth_failures_total on reg. Its labels are bounded:
// the kind of credential presented (as far as its prefix or its resolution tells: never the
// secret, nor a hash of it) and the reason.
func registerAuthFailures(reg *prometheus.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idledger_auth_failures_total",
		Help: "Requests refused for their credential, by the kind presented (none, operator, scim_token, api_key, setup_link, console_session, unknown) and reason (missing, invalid, wrong_kind, insufficient_scope, csrf, locked_out, not_admin).",
	}, []string{"kind", "reason"})
	reg.MustRegister(c)
	return c
}

// authFailed counts one refused credential.
func (m *Metrics) authFailed(kind, reason string) {
	m.authFailures.WithLabelValues(kind, reason).Inc()
}

// KeyUsage stores when each company API key was last used. It is kept outside the event log:
// a use is not a change of the company, and an event per request would grow the permanent log
// with every API call. eventstore.Records (the NATS KV bucket IDL_KEY_USAGE) implements it, so
// every instance sees every instance's uses.
type KeyUsage interface {
	// Put stores value under key.
	Put(ctx context.Context, key string, value []byte) error
	// Get returns the value under key, or an error wrapping domain.ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, uint64, error)
}

// usageInterval is how often at most one instance writes a key's last use: lastUsedAt is
// exact to this interval, and a key in constant use costs one KV write per interval.
const usageInterval = time.Minute

// keyUsage records API key uses, at most once per usageInterval per key and instance.
type keyUsage struct {
	store KeyUsage // nil keeps uses in memory (a single instance, tests)
	log   *slog.Logger

	mu      sync.Mutex
	written map[string]time.Time // usage key → last use written (or, without a store, seen)
}

func newKeyUsage(store KeyUsage, log *slog.Logger) *keyUsage {
	return &keyUsage{store: store, log: log, written: make(map[string]time.Time)}
}

// usageKey is the record key of one API key: the key id is unique across companies, the
// tenant prefix keeps one company's records together.
func usageKey(tenant domain.TenantID, keyID string) string {
	return string(tenant) + "." + keyID
}

// touch records a use of cred's key now, unless one was recorded less than usageInterval ago.
// A failed write is logged, never the request's failure.
func (u *keyUsage) touch(ctx context.Context, cred credential, now time.Time) {
	k := usageKey(cred.tenant, cred.key.ID)
	u.mu.Lock()
	last, seen := u.written[k]
	due := !seen || now.Sub(last) >= usageInterval
	if due {
		u.written[k] = now
	}
	u.mu.Unlock()
	if !due || u.store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	v, _ := now.UTC().MarshalText()
	if err := u.store.Put(ctx, k, v); err != nil {
		u.log.Warn("api key use not recorded", "tenant", cred.tenant, "key", cred.key.ID, "err", err)
	}
}

// lastUsed returns when the key was last used, as far as recorded, or nil.
func (u *keyUsage) lastUsed(ctx context.Context, tenant domain.TenantID, keyID string) (*time.Time, error) {
	k := usageKey(tenant, keyID)
	if u.store == nil {
		u.mu.Lock()
		defer u.mu.Unlock()
		if t, ok := u.written[k]; ok {
			return &t, nil
		}
		return nil, nil
	}
	raw, _, err := u.store.Get(ctx, k)
	if errors.Is(err, domain.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var t time.Time
	if err := t.UnmarshalText(raw); err != nil {
		return nil, nil // an unreadable record says nothing
	}
	return &t, nil
}

// forget drops a revoked key's entry from the instance's memory (its record expires on its own).
func (u *keyUsage) forget(tenant domain.TenantID, keyID string) {
	u.mu.Lock()
	delete(u.written, usageKey(tenant, keyID))
	u.mu.Unlock()
}

// touchKey records a use of an API key (see keyUsage).
func (s *Server) touchKey(ctx context.Context, cred credential) {
	s.usage.touch(ctx, cred, time.Now())
}
