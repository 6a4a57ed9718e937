package httpapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/idledger/idledger/httpapi"
	"github.com/idledger/idledger/projections"
)

// projectionAdmin adapts the real projector to httpapi.ProjectionAdmin, as cmd does.
type projectionAdmin struct{ *projections.Projector }

func (a projectionAdmin) ProjectionState(ctx context.Context) httpapi.ProjectionState {
	st := a.Status(ctx)
	s := httpapi.ProjectionState{Checkpoint: uint64(st.Checkpoint), Head: uint64(st.Head), Ready: st.Ready == nil, Running: st.Running}
	if st.Failure != nil {
		s.Failure = &httpapi.ProjectionFailure{Seq: uint64(st.Failure.Seq), Error: st.Failure.Err.Error(), At: st.Failure.At}
	}
	if r := st.Rebuild; r != nil {
		s.Rebuild = &httpapi.RebuildState{Running: r.Running, Done: r.Done, Total: r.Total, Started: r.Started}
		if !r.Finished.IsZero() {
			s.Rebuild.Finished = &r.Finished
		}
		if r.Err != nil {
			s.Rebuild.Error = r.Err.Error()
		}
	}
	return s
}

func TestProjectionAdmin(t *testing.T) {
	e := newTestEnv(t)
	e.tenant(t, "Acme")

	t.Run("404_without_a_projection_admin", func(t *testing.T) {
		for _, r := range []struct{ method, path string }{{"GET", "/admin/v1/projections"}, {"POST", "/admin/v1/projections/rebuild"}} {
			res := e.do(t, testAdminToken, r.method, r.path, "")
			if res.Status != http.StatusNotFound || res.JSON(t)["code"] != "not_found" {
				t.Errorf("%s %s = %d %s, want 404", r.method, r.path, res.Status, res.Body)
			}
		}
	})

	srv := httptest.NewServer(nil)
	defer srv.Close()
	srv.Config.Handler = httpapi.New(httpapi.Config{BaseURL: srv.URL, AdminToken: testAdminToken},
		e.Service, e.DB, projectionAdmin{e.Projector}, slog.New(slog.DiscardHandler))
	admin := &testEnv{URL: srv.URL}

	t.Run("operator_token_required", func(t *testing.T) {
		if res := admin.do(t, "nope", "GET", "/admin/v1/projections", ""); res.Status != http.StatusUnauthorized {
			t.Errorf("GET with a wrong token = %d", res.Status)
		}
		if res := admin.do(t, "", "POST", "/admin/v1/projections/rebuild", ""); res.Status != http.StatusUnauthorized {
			t.Errorf("POST without a token = %d", res.Status)
		}
	})

	t.Run("status_and_rebuild", func(t *testing.T) {
		res := admin.do(t, testAdminToken, "GET", "/admin/v1/projections", "")
		st := res.JSON(t)
		if res.Status != http.StatusOK || st["ready"] != true || st["running"] != true || st["checkpoint"] != st["head"] || st["lag"] != 0.0 {
			t.Fatalf("GET /admin/v1/projections = %d %s", res.Status, res.Body)
		}
		res = admin.do(t, testAdminToken, "POST", "/admin/v1/projections/rebuild", "")
		if res.Status != http.StatusAccepted || res.Header.Get("Location") != "/admin/v1/projections" {
			t.Fatalf("POST rebuild = %d %s", res.Status, res.Body)
		}
		var rb map[string]any
		eventually(t, 10*time.Second, "rebuild finished", func() bool {
			st = admin.do(t, testAdminToken, "GET", "/admin/v1/projections", "").JSON(t)
			rb, _ = st["rebuild"].(map[string]any)
			return rb != nil && rb["finished"] != nil
		})
		if rb["error"] != nil || rb["done"] != st["checkpoint"] {
			t.Errorf("rebuild = %v, checkpoint %v", rb, st["checkpoint"])
		}
		// The swapped-in read models serve writes and reads as before.
		if id, _ := e.tenant(t, "Beta"); id == "" {
			t.Error("no tenant after the rebuild")
		}
	})
}
