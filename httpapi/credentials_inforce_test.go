package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/httpapi"
	"github.com/idledger/idledger/projections"
)

// TestCredentialChanges_NotAcknowledgedBeforeInForce: while this instance's projector applies
// nothing (it stands for one stuck on a full disk, stopped on an event, or far behind), the
// operator is never told that a key is revoked or a token rotated while the old secret still
// opens its routes here: the answer is a 503 (refused, or stored and not yet in force), never a
// 2xx with the old secret still accepted.
func TestCredentialChanges_NotAcknowledgedBeforeInForce(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := eventstore.Open(ctx, eventstore.Config{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	db, err := projections.Open(filepath.Join(dir, "projections.db"), projections.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	proj := projections.NewProjector(db, store, projections.ProjectorConfig{})
	pctx, stopProjector := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = proj.Run(pctx) }()
	svc := &domain.Service{Log: store, Read: db, Sync: proj.WaitFor, Now: time.Now,
		NewID: func() string { return uuid.Must(uuid.NewV7()).String() }}
	srv := httptest.NewServer(nil)
	defer srv.Close()
	e := &testEnv{URL: srv.URL, Store: store, DB: db, Projector: proj, Service: svc}
	e.Server = httpapi.New(httpapi.Config{BaseURL: srv.URL, AdminToken: testAdminToken, WriteWait: 300 * time.Millisecond},
		svc, db, proj, nil)
	srv.Config.Handler = e.Server
	eventually(t, 10*time.Second, "the projector ready", func() bool { return proj.Ready() == nil })

	tenant, scimToken := e.tenant(t, "Acme")
	res := e.do(t, testAdminToken, "POST", "/admin/v1/tenants/"+tenant+"/api-keys", `{"name":"k","scopes":["sso:read"]}`)
	key, keyID := res.JSON(t)["key"].(string), res.JSON(t)["id"].(string)
	if r := e.do(t, key, "GET", "/api/v1/sso", ""); r.Status != http.StatusOK {
		t.Fatalf("the new key on GET /api/v1/sso: %d %s", r.Status, r.Body)
	}

	stopProjector()
	<-done

	revoke := e.do(t, testAdminToken, "DELETE", "/admin/v1/tenants/"+tenant+"/api-keys/"+keyID, "")
	after := e.do(t, key, "GET", "/api/v1/sso", "")
	if revoke.Status/100 == 2 && after.Status == http.StatusOK {
		t.Errorf("revocation answered %d while the key still opens /api/v1 (%d)", revoke.Status, after.Status)
	}
	if revoke.Status != http.StatusServiceUnavailable {
		t.Errorf("revocation with the projector stopped answered %d %s, want 503", revoke.Status, revoke.Body)
	}
	rotate := e.do(t, testAdminToken, "POST", "/admin/v1/tenants/"+tenant+"/rotate-token", "")
	old := e.do(t, scimToken, "GET", "/scim/v2/Users", "")
	if rotate.Status/100 == 2 && old.Status == http.StatusOK {
		t.Errorf("rotation answered %d while the old SCIM token still opens /scim/v2 (%d)", rotate.Status, old.Status)
	}
	if rotate.Status != http.StatusServiceUnavailable {
		t.Errorf("rotation with the projector stopped answered %d %s, want 503", rotate.Status, rotate.Body)
	}
}
