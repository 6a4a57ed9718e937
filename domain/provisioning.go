package domain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/idledger/idledger/domain/scim"
)

// Provisioning modes of a company.
const (
	// ModeManual: the company manages its users through idledger's own API.
	ModeManual = "manual"
	// ModeManaged: SCIM provisioning (Entra) manages the users; the local user API is refused.
	ModeManaged = "managed"
)

// Provisioning is a company's management mode. The first successful SCIM write switches a
// company to managed; the operator or company admin can switch it back.
type Provisioning struct {
	Managed bool      `json:"managed,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	// Cause is the request id (correlation) of the SCIM request that locked the company.
	Cause string `json:"cause,omitempty"`
}

// Mode returns ModeManaged or ModeManual.
func (p Provisioning) Mode() string {
	if p.Managed {
		return ModeManaged
	}
	return ModeManual
}

func (p *Provisioning) apply(e Event) {
	switch d := e.Data.(type) {
	case ProvisioningLocked:
		p.Managed, p.Since, p.Cause = true, e.At, d.Request
	case ProvisioningUnlocked:
		p.Managed, p.Since, p.Cause = false, e.At, ""
	}
}

// ProvisioningLocked records the company's switch to provisioning-managed, appended in the same
// atomic batch as the SCIM write that caused it.
type ProvisioningLocked struct {
	Request string `json:"request,omitempty"`
	Method  string `json:"method,omitempty"`
	Path    string `json:"path,omitempty"`
}

// ProvisioningUnlocked records the company's return to manual management.
type ProvisioningUnlocked struct {
	Reason string `json:"reason,omitempty"`
}

// Actor prefixes of the token-authenticated APIs: the actor of an event made through the SCIM
// API is "scim:<token hash prefix>", through the company's own API with an API key
// "key:<key id>". Events written before API keys existed, when the SCIM token also opened the
// company API, carry "api:<token hash prefix>". They only name who acted; which rules a command
// follows is its [Origin].
const (
	ActorSCIMPrefix   = "scim:"
	ActorAPIKeyPrefix = "key:"
	ActorAPIPrefix    = "api:"
)

// Origin is the entry point a command comes through. It is an explicit part of every user and
// group command, and decides the management rules ([Service.tenantRules]), the adoption of
// locally invited users and the method recorded in the event. Tenant commands (the company
// itself: features, tokens, SSO, provisioning mode) follow no management rules and take none.
type Origin uint8

// Origins of commands.
const (
	// OriginSystem is idledger itself (start-up, tools): no management rules.
	OriginSystem Origin = iota
	// OriginSCIM is SCIM provisioning (Entra): its first write locks the company to managed
	// mode, and it adopts users invited locally before provisioning.
	OriginSCIM
	// OriginCompanyAPI is the company's own API (/api/v1): refused while provisioning manages
	// the company, and guarded so that it cannot slip in after the lock.
	OriginCompanyAPI
	// OriginOperator is the operator API (/admin/v1): no management rules.
	OriginOperator
	// OriginSSO is the SAML sign-in flow: no management rules.
	OriginSSO
)

// String returns the origin's name, for logs.
func (o Origin) String() string {
	switch o {
	case OriginSCIM:
		return "scim"
	case OriginCompanyAPI:
		return "company-api"
	case OriginOperator:
		return "operator"
	case OriginSSO:
		return "sso"
	default:
		return "system"
	}
}

// currentTenant returns the tenant state as of the log (see [load]).
func (s *Service) currentTenant(ctx context.Context, tenant TenantID) (Tenant, error) {
	return load(ctx, s, tenantKind, tenant, string(tenant), false)
}

// tenantRules applies the management rules of a user or group command's origin to the batch
// it is about to append:
//   - a SCIM write to a company in manual mode also locks it (tenant.provisioning_locked
//     first in the batch, asserting the tenant's version, so only one request locks it);
//   - a write through the company's API to a managed company is refused with ErrLocked, and
//     otherwise guarded so that it fails if the lock lands between decision and append.
//
// Other origins follow no rules.
func (s *Service) tenantRules(ctx context.Context, o Origin, b *Batch) error {
	scim, local := o == OriginSCIM, o == OriginCompanyAPI
	if !scim && !local {
		return nil
	}
	if scim && s.Read != nil {
		// Fast path for the common case: a managed company needs nothing more from a SCIM
		// write. Reading the read model without the log's version can only miss an unlock
		// applied milliseconds ago; then this write does not re-lock, and the next one does.
		if t, err := s.Read.FindTenant(ctx, b.Tenant); err == nil && t.Provisioning.Managed {
			return nil
		}
	}
	t, err := s.currentTenant(ctx, b.Tenant)
	if err != nil {
		return err
	}
	if local {
		if t.Provisioning.Managed {
			return errManaged
		}
		v := t.Version
		b.Guard = &v
		return nil
	}
	if t.Provisioning.Managed {
		return nil
	}
	r := RequestFrom(ctx)
	lock := s.newEvent(ctx, b.Tenant, KindTenant, string(b.Tenant), EventTenantProvisioningLocked,
		ProvisioningLocked{Request: r.Correlation, Method: r.Method, Path: r.Path})
	b.Writes = append([]Write{{Event: lock, Expected: t.Version}}, b.Writes...)
	return nil
}

// errManaged is the answer to a local write while provisioning manages the company.
var errManaged = Errorf(ErrLocked, "this company's users and groups are managed by its identity provider (SCIM provisioning); "+
	"change them there, or deactivate provisioning first")

// DeactivateProvisioning returns a managed company to manual management.
func (s *Service) DeactivateProvisioning(ctx context.Context, tenant TenantID, reason string) (Tenant, error) {
	return s.changeTenant(ctx, tenant, EventTenantProvisioningUnlocked, func(t Tenant) (any, error) {
		if !t.Provisioning.Managed {
			return nil, nil
		}
		return ProvisioningUnlocked{Reason: reason}, nil
	})
}

// InviteUser creates a user through the company's own API (manual mode only): userName and
// the primary work email are the email, displayName the name.
func (s *Service) InviteUser(ctx context.Context, o Origin, tenant TenantID, email, name string) (User, error) {
	email, name = strings.TrimSpace(email), strings.TrimSpace(name)
	if email == "" || !strings.Contains(email, "@") {
		return User{}, Errorf(ErrInvalid, "email is required and must be an address")
	}
	if err := errors.Join(checkLen(email, "emails.value"), checkLen(name, "displayName")); err != nil {
		return User{}, err // the limits of scim.CanonicalUser, which this path skips
	}
	email, err := s.prepareUserName(email)
	if err != nil {
		return User{}, err
	}
	attrs := map[string]any{
		"userName": email,
		"emails":   []any{map[string]any{"value": email, "type": "work", "primary": true}},
		"active":   true,
	}
	if name != "" {
		attrs["displayName"] = name
	}
	id := s.NewID()
	u, _, err := run(ctx, s, userKind, target{tenant: tenant, id: id, origin: o, create: true}, func(User) (decision, error) {
		return decision{
			events: []Event{s.newEvent(ctx, tenant, KindUser, id, EventUserInvited, UserCreated{Schemas: []string{scim.SchemaUser}, Attributes: attrs})},
			unique: s.nameClaims(email, id, false),
		}, nil
	})
	if errors.Is(err, ErrUniqueness) {
		return User{}, Errorf(ErrUniqueness, "a user with email %q already exists", email)
	}
	if err != nil {
		return User{}, fmt.Errorf("invite user: %w", err)
	}
	return u, nil
}

// LocalUserEdit is a change through the company's own user API; nil fields stay unchanged.
type LocalUserEdit struct {
	Email  *string
	Name   *string
	Active *bool
	// Admin marks the user as a company admin locally (a role with value "admin").
	Admin *bool
}

// EditUserLocally changes a user through the company's own API (manual mode only; ErrLocked
// while provisioning manages the company).
func (s *Service) EditUserLocally(ctx context.Context, o Origin, tenant TenantID, id UserID, edit LocalUserEdit) (User, error) {
	u, _, err := s.changeUser(ctx, o, tenant, id, nil, "API", nil, func(u User) (map[string]any, []string, error) {
		next := scim.Clone(u.Resource)
		if edit.Email != nil {
			email := strings.TrimSpace(*edit.Email)
			if email == "" || !strings.Contains(email, "@") {
				return nil, nil, Errorf(ErrInvalid, "email must be an address")
			}
			if err := checkLen(email, "emails.value"); err != nil {
				return nil, nil, err
			}
			next["userName"] = email
			next["emails"] = []any{map[string]any{"value": email, "type": "work", "primary": true}}
		}
		if edit.Name != nil {
			if n := strings.TrimSpace(*edit.Name); n != "" {
				if err := checkLen(n, "displayName"); err != nil {
					return nil, nil, err
				}
				next["displayName"] = n
			} else {
				delete(next, "displayName")
			}
		}
		if edit.Active != nil {
			next["active"] = *edit.Active
		}
		if edit.Admin != nil {
			var roles []any
			list, _ := next["roles"].([]any)
			for _, r := range list {
				if m, ok := r.(map[string]any); ok && isAdminRole(m) {
					continue
				}
				roles = append(roles, r)
			}
			if *edit.Admin {
				roles = append(roles, map[string]any{"value": "admin"})
			}
			if len(roles) > 0 {
				next["roles"] = roles
			} else {
				delete(next, "roles")
			}
		}
		return next, u.Schemas, nil
	})
	return u, err
}

// isAdminRole reports whether a roles element grants company admin: value "admin" in any case,
// also inside Entra's JSON-string role values ({"value":"Admin",…}).
func isAdminRole(m map[string]any) bool {
	v, _ := m["value"].(string)
	v = strings.TrimSpace(v)
	if strings.EqualFold(v, "admin") {
		return true
	}
	if strings.HasPrefix(v, "{") {
		var inner map[string]any
		if json.Unmarshal([]byte(v), &inner) == nil {
			if iv, _ := inner["value"].(string); strings.EqualFold(iv, "admin") {
				return true
			}
		}
	}
	return false
}

// IsAdmin reports whether the user is a company admin (a roles value "admin").
func (u *User) IsAdmin() bool {
	list, _ := u.Resource["roles"].([]any)
	for _, r := range list {
		if m, ok := r.(map[string]any); ok && isAdminRole(m) {
			return true
		}
	}
	return false
}

// ProvisioningStats are a company's provisioning figures, kept by the read model.
type ProvisioningStats struct {
	Users         int       `json:"users"`
	ActiveUsers   int       `json:"activeUsers"`
	InactiveUsers int       `json:"inactiveUsers"`
	LocalUsers    int       `json:"localUsers"`
	Admins        int       `json:"activeAdmins"`
	Groups        int       `json:"groups"`
	LastSCIMWrite time.Time `json:"lastScimWrite,omitzero"`
	Version       Version   `json:"version"`
}

// A LoginEntry is what a sign-in needs to know about a name: whose it is and whether that user
// may sign in.
type LoginEntry struct {
	User   UserID `json:"user"`
	Active bool   `json:"active"`
}
