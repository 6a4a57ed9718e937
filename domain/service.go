package domain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/idledger/idledger/domain/scim"
)

// maxConflictRetries bounds how often a command is decided again after losing a race.
const maxConflictRetries = 5

// Service runs idledger's commands: it loads an aggregate from the log, folds it, decides, and
// appends the resulting events at the version it decided on. It is safe for concurrent use.
type Service struct {
	Log EventLog
	// Read is the local read model; group commands decide membership against it.
	Read ReadModel
	// Sync waits until the read model has applied the log up to a version (the projector's
	// WaitFor).
	Sync func(ctx context.Context, v Version) error
	// Now returns the current time; NewID returns a fresh aggregate or event id. Both are
	// injected so tests are deterministic.
	Now   func() time.Time
	NewID func() string
	// Random is the source of secrets; nil means crypto/rand.
	Random io.Reader
	// Names accepts and folds userNames (the PRECIS rule in production); nil means [CaseFold].
	Names UserNames

	locks keyedMutex
}

// ReadModel is what commands read besides the log.
type ReadModel interface {
	UserReader
	GroupReader
	// FindTenant returns a company's state, or an error wrapping ErrNotFound.
	FindTenant(ctx context.Context, id TenantID) (Tenant, error)
}

// keyedMutex serialises commands on one aggregate inside this process, so concurrent requests
// for the same resource queue instead of losing optimistic-concurrency races. Other processes
// are still kept apart by the log's expected-version checks.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks one aggregate and returns its unlock function.
func (s *Service) lock(tenant TenantID, kind Kind, id string) func() {
	k := string(tenant) + "/" + string(kind) + "/" + id
	m := &s.locks
	m.mu.Lock()
	if m.locks == nil {
		m.locks = make(map[string]*keyedLock)
	}
	l := m.locks[k]
	if l == nil {
		l = &keyedLock{}
		m.locks[k] = l
	}
	l.refs++
	m.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		m.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(m.locks, k)
		}
		m.mu.Unlock()
	}
}

func (s *Service) random() io.Reader {
	if s.Random != nil {
		return s.Random
	}
	return defaultRandom
}

// newEvent stamps an event with id, time and the request's actor and correlation.
func (s *Service) newEvent(ctx context.Context, tenant TenantID, kind Kind, id, typ string, data any) Event {
	r := RequestFrom(ctx)
	ua, src := r.client()
	return Event{
		UserAgent:   ua,
		Source:      src,
		ID:          s.NewID(),
		Tenant:      tenant,
		Kind:        kind,
		AggregateID: id,
		Type:        typ,
		Schema:      SchemaOf(typ),
		At:          s.Now().UTC(),
		Actor:       r.Actor,
		Correlation: r.Correlation,
		Data:        data,
	}
}

// CreateTenant creates a company and returns it with its SCIM bearer token. The token is
// returned only here; the log keeps its hash.
func (s *Service) CreateTenant(ctx context.Context, name string) (Tenant, string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return Tenant{}, "", Errorf(ErrInvalid, "name is required")
	}
	if len(name) > 200 {
		return Tenant{}, "", Errorf(ErrInvalid, "name is longer than 200 characters")
	}
	token, err := NewToken(s.random(), SCIMTokenPrefix)
	if err != nil {
		return Tenant{}, "", err
	}
	id := TenantID(s.NewID())
	t, _, err := run(ctx, s, tenantKind, target{tenant: id, id: string(id), create: true}, func(Tenant) (decision, error) {
		return decision{events: []Event{s.newEvent(ctx, id, KindTenant, string(id), EventTenantCreated,
			TenantCreated{Name: name, SCIMTokenHash: HashToken(token)})}}, nil
	})
	if err != nil {
		return Tenant{}, "", fmt.Errorf("create tenant: %w", err)
	}
	return t, token, nil
}

// CreateUser creates a user from a client's SCIM representation (see [scim.CanonicalUser]). The
// userName is claimed tenant-wide in the same atomic append, so of two concurrent creates with
// the same userName (in any letter case) one fails with ErrUniqueness. Through SCIM, a
// userName held by a user invited locally adopts that user instead.
func (s *Service) CreateUser(ctx context.Context, o Origin, tenant TenantID, in map[string]any) (User, error) {
	attrs, schemas, err := scim.CanonicalUser(in)
	if err != nil {
		return User{}, err
	}
	name, _ := attrs["userName"].(string)
	if name, err = s.prepareUserName(name); err != nil {
		return User{}, err
	}
	attrs["userName"] = name
	id := s.NewID()
	u, _, err := run(ctx, s, userKind, target{tenant: tenant, id: id, origin: o, create: true}, func(User) (decision, error) {
		if err := s.heldUnderOldFold(ctx, tenant, name, id); err != nil {
			return decision{}, err
		}
		return decision{
			events: []Event{s.newEvent(ctx, tenant, KindUser, id, EventUserCreated, UserCreated{Schemas: schemas, Attributes: attrs})},
			unique: s.nameClaims(name, id, false),
		}, nil
	})
	if err != nil {
		if errors.Is(err, ErrUniqueness) {
			if u, ok := s.adoptable(ctx, o, tenant, name); ok {
				// Entra matched a user invited locally before provisioning: take it over.
				adopted, _, err := s.ReplaceUser(ctx, o, tenant, u.ID, in, nil)
				return adopted, err
			}
			return User{}, Errorf(ErrUniqueness, "userName %q is already used by another user", name)
		}
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// adoptable returns the locally invited user holding name, if a request of origin o may adopt
// it: only SCIM provisioning adopts.
func (s *Service) adoptable(ctx context.Context, o Origin, tenant TenantID, name string) (User, bool) {
	if o != OriginSCIM || s.Read == nil {
		return User{}, false
	}
	u, err := s.Read.FindUserByUserName(ctx, tenant, name)
	return u, err == nil && u.Local
}
