package projections_test

import (
	"errors"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
)

// TestSetupLinkIndex: a setup link's hash leads to its company while the company remembers the
// link (used included, with its use on the row) and nowhere once revoked.
func TestSetupLinkIndex(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := mustOpenStore(t)
	svc := newService(store)
	tenant, _, err := svc.CreateTenant(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	_, used, usedSecret, err := svc.CreateSetupLink(ctx, tenant.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, gone, goneSecret, err := svc.CreateSetupLink(ctx, tenant.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.UseSetupLink(ctx, tenant.ID, domain.HashToken(usedSecret), "s"); err != nil {
		t.Fatal(err)
	}
	db := MustOpenDB(t)
	r := startProjector(t, db, store)
	r.waitFor(t, head(t, store))
	got, err := db.FindTenantByTokenHash(ctx, domain.HashToken(usedSecret))
	if err != nil || got.ID != tenant.ID {
		t.Fatalf("used link: %+v, %v", got, err)
	}
	if l, ok := got.SetupLinkByHash(domain.HashToken(usedSecret)); !ok || l.ID != used.ID || l.Used.IsZero() {
		t.Errorf("the tenant row lacks the used link: %+v", got.SetupLinks)
	}
	if _, err := svc.RevokeSetupLink(ctx, tenant.ID, gone.ID); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, head(t, store))
	if _, err := db.FindTenantByTokenHash(ctx, domain.HashToken(goneSecret)); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("revoked link: err = %v, want ErrNotFound", err)
	}
}
