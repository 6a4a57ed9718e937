package domain

import "time"

// Tenant is a company's state, folded from its events.
type Tenant struct {
	ID            TenantID  `json:"id"`
	Name          string    `json:"name"`
	SCIMTokenHash string    `json:"scimTokenHash"`
	Created       time.Time `json:"created"`
	Version       Version   `json:"version"`
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
	}
	t.Version = e.Version
}
