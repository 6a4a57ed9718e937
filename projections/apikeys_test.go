package projections_test

import (
	"errors"
	"testing"

	"github.com/idledger/idledger/domain"
)

// TestAPIKeyIndex: a created API key's hash leads to its company (whose row holds the key), a
// revoked key's leads nowhere, and the SCIM token is unaffected either way.
func TestAPIKeyIndex(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := mustOpenStore(t)
	svc := newService(store)
	tenant, scimToken, err := svc.CreateTenant(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	_, kept, keptSecret, err := svc.CreateAPIKey(ctx, tenant.ID, "kept", []string{"sso:read"})
	if err != nil {
		t.Fatal(err)
	}
	_, gone, goneSecret, err := svc.CreateAPIKey(ctx, tenant.ID, "gone", []string{"sso:write"})
	if err != nil {
		t.Fatal(err)
	}
	db := MustOpenDB(t)
	r := startProjector(t, db, store)
	r.waitFor(t, head(t, store))
	if got, err := db.FindTenantByTokenHash(ctx, domain.HashToken(goneSecret)); err != nil || got.ID != tenant.ID {
		t.Fatalf("before revocation: %+v, %v", got, err)
	} else if k, ok := got.APIKeyByHash(domain.HashToken(goneSecret)); !ok || k.ID != gone.ID {
		t.Errorf("the tenant row lacks the key: %+v", got.APIKeys)
	}

	if _, err := svc.RevokeAPIKey(ctx, tenant.ID, gone.ID); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, head(t, store))
	if _, err := db.FindTenantByTokenHash(ctx, domain.HashToken(goneSecret)); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("revoked key: err = %v, want ErrNotFound", err)
	}
	for name, secret := range map[string]string{"kept key": keptSecret, "SCIM token": scimToken} {
		got, err := db.FindTenantByTokenHash(ctx, domain.HashToken(secret))
		if err != nil || got.ID != tenant.ID || len(got.APIKeys) != 1 || got.APIKeys[0].ID != kept.ID {
			t.Errorf("%s: %+v, %v", name, got, err)
		}
	}
}
