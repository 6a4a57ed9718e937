package httpapi_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/saml/samltest"
)

var goldenEvents = flag.Bool("golden-events", false, "write missing testdata/events samples harvested from a real run")

// TestGoldenEventSamples drives a company through every kind of change idledger records and
// checks that the log then holds every event type the code writes — so the walk below stays
// complete as types are added. With -golden-events it also writes a sample of each type that
// testdata/events lacks (domain/golden_test.go requires one per type and schema version).
func TestGoldenEventSamples(t *testing.T) {
	e := newSSOEnv(t)
	tenant, token := e.company(t, "Contoso", samltest.Entra)
	must := func(res response, status int) map[string]any {
		t.Helper()
		if res.Status != status {
			t.Fatalf("status %d, want %d: %s", res.Status, status, res.Body)
		}
		if len(res.Body) == 0 {
			return nil
		}
		return res.JSON(t)
	}
	must(e.do(t, testAdminToken, "PATCH", "/admin/v1/tenants/"+tenant, `{"features":{"groups":true}}`), http.StatusOK)
	must(e.do(t, testAdminToken, "PATCH", "/admin/v1/tenants/"+tenant, `{"features":{"groups":false}}`), http.StatusOK)
	must(e.do(t, testAdminToken, "PATCH", "/admin/v1/tenants/"+tenant, `{"features":{"groups":true}}`), http.StatusOK)
	key := e.key(tenant)
	bob := must(e.do(t, key, "POST", "/api/v1/users", `{"email":"bob@contoso.example","name":"Bob"}`), http.StatusCreated)["id"].(string)

	ada := e.provision(t, token, "ada@contoso.example") // user.created + tenant.provisioning_locked
	patch := func(path, ops string) {
		t.Helper()
		must(e.do(t, token, "PATCH", path, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":`+ops+`}`), http.StatusNoContent)
	}
	patch("/scim/v2/Users/"+ada, `[{"op":"Replace","path":"displayName","value":"Ada Lovelace"}]`)
	patch("/scim/v2/Users/"+ada, `[{"op":"Replace","path":"active","value":"False"}]`)
	patch("/scim/v2/Users/"+ada, `[{"op":"Replace","path":"active","value":"True"}]`)
	patch("/scim/v2/Users/"+bob, `[{"op":"Replace","path":"title","value":"Engineer"}]`) // adopts Bob

	b := e.browser(t)
	b.login(t, tenant, samltest.Entra, "ada@contoso.example")
	loc := b.startLogin(t, tenant, "/app")
	b.post(t, e.idps[samltest.Entra].Login(t, loc, e.spMetadata(t, tenant), "nobody@contoso.example"))

	group := must(e.do(t, token, "POST", "/scim/v2/Groups", fmt.Sprintf(`{"displayName":"Finance","members":[{"value":%q}]}`, ada)), http.StatusCreated)["id"].(string)
	patch("/scim/v2/Groups/"+group, `[{"op":"Replace","path":"displayName","value":"Finance Team"}]`)
	patch("/scim/v2/Groups/"+group, `[{"op":"Replace","path":"externalId","value":"fin-1"}]`)
	patch("/scim/v2/Groups/"+group, fmt.Sprintf(`[{"op":"Add","path":"members","value":[{"value":%q}]}]`, bob))
	patch("/scim/v2/Groups/"+group, fmt.Sprintf(`[{"op":"Remove","path":"members","value":[{"value":%q}]}]`, bob))
	must(e.do(t, token, "DELETE", "/scim/v2/Groups/"+group, ""), http.StatusNoContent)
	must(e.do(t, token, "DELETE", "/scim/v2/Users/"+bob, ""), http.StatusNoContent)

	must(e.do(t, key, "PUT", "/api/v1/sso/settings", `{"allowIdpInitiated":true}`), http.StatusOK)
	must(e.do(t, key, "DELETE", "/api/v1/sso", ""), http.StatusNoContent)
	must(e.do(t, key, "POST", "/api/v1/provisioning/deactivate", ""), http.StatusOK)
	must(e.do(t, testAdminToken, "POST", "/admin/v1/tenants/"+tenant+"/rotate-token", ""), http.StatusOK)
	keyID := must(e.do(t, testAdminToken, "POST", "/admin/v1/tenants/"+tenant+"/api-keys", `{"name":"ci","scopes":["sso:read"]}`), http.StatusCreated)["id"].(string)
	must(e.do(t, testAdminToken, "DELETE", "/admin/v1/tenants/"+tenant+"/api-keys/"+keyID, ""), http.StatusNoContent)
	_, link := e.setupLink(t, tenant, "") // created, then used
	if res := e.browser(t).openLink(t, link); res.Status != http.StatusSeeOther {
		t.Fatalf("setup link: %d %s", res.Status, res.Body)
	}
	linkID, _ := e.setupLink(t, tenant, "")
	must(e.do(t, testAdminToken, "DELETE", "/admin/v1/tenants/"+tenant+"/setup-links/"+linkID, ""), http.StatusNoContent)

	// One sample of each type, from the real log.
	ctx := context.Background()
	js, err := jetstream.New(rawConn(t, e.Store))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, eventstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	samples := map[string][]byte{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		typ := m.Header.Get("Idl-Type")
		schema, _ := strconv.Atoi(m.Header.Get("Idl-Schema"))
		if domain.SchemaOf(typ) == 0 || samples[typ] != nil {
			continue
		}
		line, err := json.Marshal(map[string]any{"type": typ, "schema": schema, "data": json.RawMessage(m.Data)})
		if err != nil {
			t.Fatal(err)
		}
		samples[typ] = line
	}
	for typ, schema := range domain.EventTypes() {
		if typ == domain.EventSyncCycleStarted {
			continue // written by the audit recorder, which this env does not wire
		}
		line, ok := samples[typ]
		if !ok {
			t.Errorf("the walk wrote no %s event: extend it", typ)
			continue
		}
		path := filepath.Join("..", "testdata", "events", fmt.Sprintf("%s.v%d.jsonl", typ, schema))
		if _, err := os.Stat(path); *goldenEvents && os.IsNotExist(err) {
			if err := os.WriteFile(path, append(line, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", path)
		}
	}
}

// rawConn connects to the store's embedded nats-server, for a test that reads or writes the
// raw stream; the connection closes when the test ends.
func rawConn(tb testing.TB, s *eventstore.Store) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}
