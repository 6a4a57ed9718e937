package domain

import (
	"context"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// A Scope is one permission of a company API key: what part of the company API (/api/v1) the
// key opens. The route → scope table lives with the routes (httpapi/scopes.go).
type Scope string

// The scopes a company API key can hold. A name never changes once given out.
const (
	ScopeUsersRead         Scope = "users:read"
	ScopeUsersWrite        Scope = "users:write"
	ScopeProvisioningRead  Scope = "provisioning:read"
	ScopeProvisioningWrite Scope = "provisioning:write"
	ScopeSSORead           Scope = "sso:read"
	ScopeSSOWrite          Scope = "sso:write"
	ScopeAuditRead         Scope = "audit:read"
	ScopeEventsRead        Scope = "events:read"
	ScopeWebhooksWrite     Scope = "webhooks:write"
	ScopePrivacyWrite      Scope = "privacy:write"
)

// AllScopes returns every scope, in a stable order.
func AllScopes() []Scope {
	return []Scope{ScopeUsersRead, ScopeUsersWrite, ScopeProvisioningRead, ScopeProvisioningWrite,
		ScopeSSORead, ScopeSSOWrite, ScopeAuditRead, ScopeEventsRead, ScopeWebhooksWrite, ScopePrivacyWrite}
}

// Limits of API keys.
const (
	// MaxAPIKeys is how many live keys a company may hold; a leaked-key clean-up revokes first.
	MaxAPIKeys = 100
	// MaxAPIKeyName is the longest key name, in characters.
	MaxAPIKeyName = 200
)

// An APIKey is a live company API key as the tenant state holds it. Only the hash of its secret
// is known.
type APIKey struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Scopes  []Scope   `json:"scopes"`
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
}

// Allows reports whether the key holds scope.
func (k APIKey) Allows(scope Scope) bool { return slices.Contains(k.Scopes, scope) }

// APIKeyCreated records a new company API key: its id, name, scopes and the SHA-256 of its
// secret (never the secret).
type APIKeyCreated struct {
	ID     string  `json:"id"`
	Name   string  `json:"name"`
	Scopes []Scope `json:"scopes"`
	Hash   string  `json:"keyHash"`
}

// APIKeyRevoked records that a company API key stops authenticating.
type APIKeyRevoked struct {
	ID string `json:"id"`
}

// APIKey returns the live key with the given id.
func (t *Tenant) APIKey(id string) (APIKey, bool) {
	for _, k := range t.APIKeys {
		if k.ID == id {
			return k, true
		}
	}
	return APIKey{}, false
}

// APIKeyByHash returns the live key whose secret hashes to hash.
func (t *Tenant) APIKeyByHash(hash string) (APIKey, bool) {
	for _, k := range t.APIKeys {
		if k.Hash == hash {
			return k, true
		}
	}
	return APIKey{}, false
}

// applyAPIKey folds a key event into the tenant.
func (t *Tenant) applyAPIKey(e Event) {
	switch d := e.Data.(type) {
	case APIKeyCreated:
		t.APIKeys = append(slices.Clone(t.APIKeys), APIKey{ID: d.ID, Name: d.Name,
			Scopes: slices.Clone(d.Scopes), Hash: d.Hash, Created: e.At})
	case APIKeyRevoked:
		t.APIKeys = slices.DeleteFunc(slices.Clone(t.APIKeys), func(k APIKey) bool { return k.ID == d.ID })
	}
}

// ParseScopes checks a client's list of scope names and returns them without duplicates, in
// the order of [AllScopes]. An empty list or an unknown name is an error wrapping ErrInvalid.
func ParseScopes(names []string) ([]Scope, error) {
	if len(names) == 0 {
		return nil, Errorf(ErrInvalid, "scopes must name at least one scope")
	}
	for _, n := range names {
		if !slices.Contains(AllScopes(), Scope(n)) {
			return nil, Errorf(ErrInvalid, "unknown scope %q (known: %s)", n, scopeList())
		}
	}
	var out []Scope
	for _, s := range AllScopes() {
		if slices.Contains(names, string(s)) {
			out = append(out, s)
		}
	}
	return out, nil
}

func scopeList() string {
	var b strings.Builder
	for i, s := range AllScopes() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(s))
	}
	return b.String()
}

// CreateAPIKey gives a company a new API key for its own API (/api/v1) with the given name and
// scopes (see [ParseScopes]). It returns the tenant with the key, the key, and its secret: the
// secret is returned only here, the log keeps its SHA-256. It returns an error wrapping
// ErrNotFound for an unknown tenant and ErrInvalid for a missing name, unknown scopes or a
// company that already holds MaxAPIKeys keys.
func (s *Service) CreateAPIKey(ctx context.Context, tenant TenantID, name string, scopes []string) (Tenant, APIKey, string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return Tenant{}, APIKey{}, "", Errorf(ErrInvalid, "name is required")
	}
	if utf8.RuneCountInString(name) > MaxAPIKeyName {
		return Tenant{}, APIKey{}, "", Errorf(ErrInvalid, "name is longer than %d characters", MaxAPIKeyName)
	}
	sc, err := ParseScopes(scopes)
	if err != nil {
		return Tenant{}, APIKey{}, "", err
	}
	secret, err := NewToken(s.random(), APIKeyPrefix)
	if err != nil {
		return Tenant{}, APIKey{}, "", err
	}
	id := s.NewID()
	t, err := s.changeTenant(ctx, tenant, EventTenantAPIKeyCreated, func(t Tenant) (any, error) {
		if len(t.APIKeys) >= MaxAPIKeys {
			return nil, Errorf(ErrInvalid, "the company already has %d API keys: revoke one first", MaxAPIKeys)
		}
		return APIKeyCreated{ID: id, Name: name, Scopes: sc, Hash: HashToken(secret)}, nil
	})
	if err != nil {
		return Tenant{}, APIKey{}, "", err
	}
	k, _ := t.APIKey(id)
	return t, k, secret, nil
}

// RevokeAPIKey revokes a company API key: it stops authenticating once the read model applies
// the event (a caller that answers once its read model caught up never lets it work again). It
// returns an error wrapping ErrNotFound for an unknown tenant or a key it does not hold (never
// created, or revoked already).
func (s *Service) RevokeAPIKey(ctx context.Context, tenant TenantID, id string) (Tenant, error) {
	return s.changeTenant(ctx, tenant, EventTenantAPIKeyRevoked, func(t Tenant) (any, error) {
		if _, ok := t.APIKey(id); !ok {
			return nil, Errorf(ErrNotFound, "the company has no API key %q", id)
		}
		return APIKeyRevoked{ID: id}, nil
	})
}
