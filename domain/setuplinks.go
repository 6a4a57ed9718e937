package domain

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Setup links (README, "Credentials"): the operator hands a company admin a one-time URL that
// opens the company console. The log keeps the SHA-256 of the link's secret, never the secret;
// the first use burns the link with an appended event, so every instance sees it burned, and two
// concurrent uses cannot both win (the tenant command appends at the version it decided on).

// Limits of setup links.
const (
	// DefaultSetupLinkLifetime is how long a link lasts when the operator does not say.
	DefaultSetupLinkLifetime = 24 * time.Hour
	// MaxSetupLinkLifetime is the longest a link may last.
	MaxSetupLinkLifetime = 7 * 24 * time.Hour
	// MaxSetupLinks is how many links a company may hold at once (live, used or expired ones
	// still remembered); revoking one makes room.
	MaxSetupLinks = 100
	// setupLinkMemory is how long after its expiry a link is still remembered (so that it answers
	// "expired" or "already used" rather than "unknown"): links expired longer ago leave the
	// company's state when the next link is created.
	setupLinkMemory = 7 * 24 * time.Hour
)

// Failures of using a setup link, for the caller to word (tested with errors.Is). An unknown
// or revoked link is ErrNotFound.
var (
	ErrSetupLinkUsed    = errors.New("setup link already used")
	ErrSetupLinkExpired = errors.New("setup link expired")
)

// A SetupLink is a company's one-time console link as the tenant state holds it. Only the hash
// of its secret is known.
type SetupLink struct {
	ID      string    `json:"id"`
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Used is when the link was exchanged for a console session (zero: not yet).
	Used time.Time `json:"used,omitzero"`
}

// SetupLinkCreated records a new setup link: its id, the SHA-256 of its secret and when it
// expires.
type SetupLinkCreated struct {
	ID        string    `json:"id"`
	Hash      string    `json:"secretHash"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// SetupLinkRevoked records that a setup link stops working (the company forgets it).
type SetupLinkRevoked struct {
	ID string `json:"id"`
}

// SetupLinkUsed records that a setup link was exchanged for a console session: it never works
// again. Session names the session opened (a hash prefix of its id, never the id).
type SetupLinkUsed struct {
	ID      string `json:"id"`
	Session string `json:"session,omitempty"`
}

// SetupLink returns the company's setup link with the given id.
func (t *Tenant) SetupLink(id string) (SetupLink, bool) {
	for _, l := range t.SetupLinks {
		if l.ID == id {
			return l, true
		}
	}
	return SetupLink{}, false
}

// SetupLinkByHash returns the company's setup link whose secret hashes to hash.
func (t *Tenant) SetupLinkByHash(hash string) (SetupLink, bool) {
	for _, l := range t.SetupLinks {
		if l.Hash == hash {
			return l, true
		}
	}
	return SetupLink{}, false
}

// applySetupLink folds a setup link event into the tenant.
func (t *Tenant) applySetupLink(e Event) {
	switch d := e.Data.(type) {
	case SetupLinkCreated:
		links := slices.DeleteFunc(slices.Clone(t.SetupLinks), func(l SetupLink) bool { return forgotten(l, e.At) })
		t.SetupLinks = append(links, SetupLink{ID: d.ID, Hash: d.Hash, Created: e.At, Expires: d.ExpiresAt})
	case SetupLinkRevoked:
		t.SetupLinks = slices.DeleteFunc(slices.Clone(t.SetupLinks), func(l SetupLink) bool { return l.ID == d.ID })
	case SetupLinkUsed:
		t.SetupLinks = slices.Clone(t.SetupLinks)
		for i := range t.SetupLinks {
			if t.SetupLinks[i].ID == d.ID {
				t.SetupLinks[i].Used = e.At
			}
		}
	}
}

// forgotten reports whether a link expired longer than setupLinkMemory before now.
func forgotten(l SetupLink, now time.Time) bool {
	return l.Expires.Add(setupLinkMemory).Before(now)
}

// CreateSetupLink gives a company a one-time console link that lasts lifetime (at most
// MaxSetupLinkLifetime). It returns the tenant with the link, the link and its secret: the
// secret is returned only here, the log keeps its SHA-256. It returns an error wrapping
// ErrNotFound for an unknown tenant and ErrInvalid for a lifetime out of range or a company
// that already holds MaxSetupLinks links.
func (s *Service) CreateSetupLink(ctx context.Context, tenant TenantID, lifetime time.Duration) (Tenant, SetupLink, string, error) {
	if lifetime <= 0 || lifetime > MaxSetupLinkLifetime {
		return Tenant{}, SetupLink{}, "", Errorf(ErrInvalid, "expiresIn must be more than 0 and at most %s", MaxSetupLinkLifetime)
	}
	secret, err := NewToken(s.random(), SetupLinkPrefix)
	if err != nil {
		return Tenant{}, SetupLink{}, "", err
	}
	id := s.NewID()
	expires := s.Now().UTC().Add(lifetime)
	t, err := s.changeTenant(ctx, tenant, EventTenantSetupLinkCreated, func(t Tenant) (any, error) {
		now := s.Now()
		if n := len(slices.DeleteFunc(slices.Clone(t.SetupLinks), func(l SetupLink) bool { return forgotten(l, now) })); n >= MaxSetupLinks {
			return nil, Errorf(ErrInvalid, "the company already has %d setup links: revoke one first", MaxSetupLinks)
		}
		return SetupLinkCreated{ID: id, Hash: HashToken(secret), ExpiresAt: expires}, nil
	})
	if err != nil {
		return Tenant{}, SetupLink{}, "", err
	}
	l, _ := t.SetupLink(id)
	return t, l, secret, nil
}

// RevokeSetupLink revokes a company's setup link: from the moment the read model applies the
// event it is unknown. It returns an error wrapping ErrNotFound for an unknown tenant or a
// link it does not hold (never created, revoked already, or forgotten).
func (s *Service) RevokeSetupLink(ctx context.Context, tenant TenantID, id string) (Tenant, error) {
	return s.changeTenant(ctx, tenant, EventTenantSetupLinkRevoked, func(t Tenant) (any, error) {
		if _, ok := t.SetupLink(id); !ok {
			return nil, Errorf(ErrNotFound, "the company has no setup link %q", id)
		}
		return SetupLinkRevoked{ID: id}, nil
	})
}

// UseSetupLink burns the company's setup link whose secret hashes to hash, for the console
// session named session (see SetupLinkUsed), and returns the link. The decision is made on the
// log's state and appended at its version, so of two concurrent uses, on any instances, exactly
// one succeeds. It returns an error wrapping ErrNotFound for an unknown tenant or link (never
// created, or revoked), ErrSetupLinkUsed for a link used before and ErrSetupLinkExpired for one
// past its expiry; those append nothing.
func (s *Service) UseSetupLink(ctx context.Context, tenant TenantID, hash, session string) (SetupLink, error) {
	var used SetupLink
	_, err := s.changeTenant(ctx, tenant, EventTenantSetupLinkUsed, func(t Tenant) (any, error) {
		l, ok := t.SetupLinkByHash(hash)
		switch {
		case !ok:
			return nil, Errorf(ErrNotFound, "unknown setup link")
		case !l.Used.IsZero():
			return nil, Errorf(ErrSetupLinkUsed, "the setup link was already used")
		case !s.Now().Before(l.Expires):
			return nil, Errorf(ErrSetupLinkExpired, "the setup link expired")
		}
		used = l
		return SetupLinkUsed{ID: l.ID, Session: session}, nil
	})
	if err != nil {
		return SetupLink{}, err
	}
	return used, nil
}

// Actor prefixes of the company console (README, "Credentials"): a session opened by a setup
// link acts as "console:link:<link id>", one opened by a SAML sign-in of a company admin as
// "console:user:<user id>". Like every actor they only name who acted; console writes take
// the origin of the API they call.
const (
	ActorConsoleLinkPrefix = "console:link:"
	ActorConsoleUserPrefix = "console:user:"
)
