package domain

import "time"

// Tenant is a company's state, folded from its events.
type Tenant struct {
	ID            TenantID  `json:"id"`
	Name          string    `json:"name"`
	SCIMTokenHash string    `json:"scimTokenHash"`
	Features      Features  `json:"features"`
	Created       time.Time `json:"created"`
	Version       Version   `json:"version"`

	// Provisioning says whether Entra (SCIM) manages the company's users (domain/provisioning.go).
	Provisioning Provisioning `json:"provisioning,omitzero"`
	// SSO is the company's SAML single sign-on state (domain/sso.go).
	SSO SSOConfig `json:"sso,omitzero"`
	// APIKeys are the company's live API keys, oldest first (domain/apikeys.go); a revoked key
	// leaves the list.
	APIKeys []APIKey `json:"apiKeys,omitempty"`
	// SetupLinks are the company's one-time console links, oldest first (domain/setuplinks.go);
	// a revoked link leaves the list.
	SetupLinks []SetupLink `json:"setupLinks,omitempty"`
}

// Features are the product options an operator turns on or off per company.
type Features struct {
	// GroupsOff turns /Groups off (groups are sold as an add-on); the zero value means on.
	GroupsOff bool `json:"groupsOff,omitempty"`
}

// Groups reports whether the company may use groups.
func (f Features) Groups() bool { return !f.GroupsOff }

// TenantFeaturesChanged records the operator switching features; nil fields are unchanged.
type TenantFeaturesChanged struct {
	Groups *bool `json:"groups,omitempty"`
}

// TenantCreated records a new company. Only the hash of its SCIM token is kept.
type TenantCreated struct {
	Name          string `json:"name"`
	SCIMTokenHash string `json:"scimTokenHash"`
}

// Exists reports whether the tenant has been created.
func (t *Tenant) Exists() bool { return t.Version != 0 }

// Apply folds one event into the tenant. Events of other aggregates and unknown types are
// ignored.
func (t *Tenant) Apply(e Event) {
	if e.Kind != KindTenant {
		return
	}
	switch d := e.Data.(type) {
	case TenantCreated:
		t.ID = e.Tenant
		t.Name = d.Name
		t.SCIMTokenHash = d.SCIMTokenHash
		t.Created = e.At
	case ProvisioningLocked, ProvisioningUnlocked:
		t.Provisioning.apply(e)
	case TenantFeaturesChanged:
		if d.Groups != nil {
			t.Features.GroupsOff = !*d.Groups
		}
	case SCIMTokenRotated:
		t.SCIMTokenHash = d.SCIMTokenHash
	case IDPMetadataSet, SSODisabled, SSOSettingsChanged:
		t.SSO.apply(e)
	case APIKeyCreated, APIKeyRevoked:
		t.applyAPIKey(e)
	case SetupLinkCreated, SetupLinkRevoked, SetupLinkUsed:
		t.applySetupLink(e)
	}
	t.Version = e.Version
}
