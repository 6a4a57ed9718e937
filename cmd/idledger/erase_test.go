package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/cmd/internal/app"
	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/saml/samltest"
)

// person is one provisioned user with distinctive personal data.
type person struct {
	userName, given, family, work, home, phone string
	id                                         string
}

func (p *person) values() []string {
	return []string{p.userName, p.given, p.family, p.work, p.home, p.phone}
}

// body is the user as Entra provisions it (POST /Users).
func (p *person) body() string {
	b, _ := json.Marshal(map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"},
		"externalId":  "ext-" + p.given,
		"userName":    p.userName,
		"active":      true,
		"displayName": p.given + " " + p.family,
		"emails": []any{map[string]any{"primary": true, "type": "work", "value": p.work},
			map[string]any{"type": "home", "value": p.home}},
		"phoneNumbers": []any{map[string]any{"type": "mobile", "value": p.phone}},
		"name":         map[string]any{"formatted": p.given + " " + p.family, "familyName": p.family, "givenName": p.given},
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": map[string]any{"department": "Erasure Research"},
	})
	return string(b)
}

// variants returns the forms in which a value could be stored: as is, in lower and upper
// case, and JSON-escaped.
func variants(v string) []string {
	out := []string{v, strings.ToLower(v), strings.ToUpper(v)}
	b, _ := json.Marshal(v)
	out = append(out, string(b[1:len(b)-1]))
	return out
}

// scanDir returns, for each value, the files under dir holding any of its variants.
func scanDir(tb testing.TB, dir string, values []string) map[string][]string {
	tb.Helper()
	hits := make(map[string][]string)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, v := range values {
			for _, form := range variants(v) {
				if bytes.Contains(b, []byte(form)) {
					hits[v] = append(hits[v], strings.TrimPrefix(path, dir))
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return hits
}

// TestErasure_NoBytesLeft is issue 15's "done when": users with distinctive personal data are
// provisioned through an Entra-shaped cycle, one signs in, one is deprovisioned and erased;
// after a clean stop no file under the data dir holds any of the erased person's values,
// while the same scan finds the other person's.
func TestErasure_NoBytesLeft(t *testing.T) {
	dir := t.TempDir()
	var logs syncBuffer
	m, err := app.Start(t.Context(), app.Config{DataDir: dir, Listen: "127.0.0.1:0", AdminToken: adminToken, NoSync: true,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	waitReady(t, m)
	base := "http://" + m.Addr()
	tenant, token := createTenant(t, base, "Contoso")
	scim := client{t, base, token}
	key := createAPIKey(t, base, tenant, "sso:write", "privacy:write", "audit:read", "events:read")
	api := client{t, base, key}

	req, _ := http.NewRequest("PUT", base+"/api/v1/sso/idp-metadata", bytes.NewReader(samltest.Read(t, "entra-metadata.xml")))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/xml")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("metadata upload: %d", res.StatusCode)
	}

	erin := &person{userName: "Zeynep.Quixotewald@Contoso.example", given: "Zeynepqx", family: "Quixotewald",
		work: "zeynep.quixotewald@contoso.example", home: "zq-private-mailbox@privmail.example", phone: "+49 30 5550987123"}
	keeper := &person{userName: "Bartholomew.Keepington@Contoso.example", given: "Bartholomewkp", family: "Keepington",
		work: "b.keepington@contoso.example", home: "bk-home-mailbox@privmail.example", phone: "+49 30 5550111999"}
	for _, p := range []*person{erin, keeper} {
		// Entra's match, then create.
		if r := scim.do("GET", filterQuery(fmt.Sprintf("userName eq %q", p.userName)), ""); r.status != http.StatusOK {
			t.Fatalf("match: %d %s", r.status, r.body)
		}
		r := scim.do("POST", "/scim/v2/Users", p.body())
		if r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		p.id = r.json(t)["id"].(string)
		// An attribute change with old and new values in the event.
		if r := scim.do("PATCH", "/scim/v2/Users/"+p.id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"title","value":"Senior `+p.family+` Analyst"}]}`); r.status != http.StatusNoContent && r.status != http.StatusOK {
			t.Fatalf("patch: %d %s", r.status, r.body)
		}
	}
	// A duplicate create: its request record's error detail quotes the userName.
	if r := scim.do("POST", "/scim/v2/Users", erin.body()); r.status != http.StatusConflict || !strings.Contains(string(r.body), erin.userName) {
		t.Fatalf("duplicate create: %d %s", r.status, r.body)
	}
	g := scim.do("POST", "/scim/v2/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Erasure Testers"}`)
	if g.status != http.StatusCreated {
		t.Fatalf("group: %d %s", g.status, g.body)
	}
	gid := g.json(t)["id"].(string)
	members := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"members","value":[{"value":%q,"display":%q},{"value":%q}]}]}`,
		erin.id, erin.given+" "+erin.family, keeper.id)
	if r := scim.do("PATCH", "/scim/v2/Groups/"+gid, members); r.status != http.StatusNoContent && r.status != http.StatusOK {
		t.Fatalf("members: %d %s", r.status, r.body)
	}

	// Erin signs in through SAML.
	browser, get := newBrowser(t, base)
	res, _ = get("/saml/" + tenant + "/login?return_to=" + url.QueryEscape("/app/home"))
	if res.StatusCode != http.StatusFound {
		t.Fatalf("login: %d", res.StatusCode)
	}
	_, spMetadata := get("/saml/" + tenant + "/metadata")
	answer := samltest.New(t, samltest.Entra, time.Now).Login(t, res.Header.Get("Location"), spMetadata, erin.userName)
	acs, err := browser.Post(answer.ACSURL, "application/x-www-form-urlencoded", strings.NewReader(answer.Form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	acs.Body.Close()
	if acs.StatusCode != http.StatusSeeOther {
		t.Fatalf("ACS: %d", acs.StatusCode)
	}

	// A live user cannot be erased.
	if r := api.do("POST", "/api/v1/users/"+erin.id+"/erase", ""); r.status != http.StatusConflict || !strings.Contains(string(r.body), "deprovision") {
		t.Fatalf("erase a live user: %d %s, want 409 saying to deprovision first", r.status, r.body)
	}
	// Entra disables, then deletes Erin; the company erases her.
	if r := scim.do("PATCH", "/scim/v2/Users/"+erin.id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`); r.status != http.StatusNoContent && r.status != http.StatusOK {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	if r := scim.do("DELETE", "/scim/v2/Users/"+erin.id, ""); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if res, body := get("/api/v1/me"); res.StatusCode == http.StatusOK {
		t.Fatalf("the deleted person's session still works: %s", body)
	}
	r := api.do("POST", "/api/v1/users/"+erin.id+"/erase", "")
	if r.status != http.StatusOK || r.json(t)["keyDestroyed"] != true || r.json(t)["requestRecordsDeleted"].(float64) < 4 {
		t.Fatalf("erase: %d %s", r.status, r.body)
	}
	// Idempotent.
	operator := client{t, base, adminToken}
	if r := operator.do("POST", "/admin/v1/tenants/"+tenant+"/users/"+erin.id+"/erase", ""); r.status != http.StatusOK {
		t.Fatalf("erase again (operator): %d %s %s", r.status, r.body, operator.do("GET", "/admin/v1/projections", "").body)
	}
	// The company cannot be erased while Keeper exists.
	if r := operator.do("POST", "/admin/v1/tenants/"+tenant+"/erase", ""); r.status != http.StatusConflict {
		t.Fatalf("erase a company with users: %d %s", r.status, r.body)
	}
	if r := scim.do("GET", "/scim/v2/Users/"+erin.id, ""); r.status != http.StatusNotFound {
		t.Fatalf("SCIM GET after erasure: %d", r.status)
	}
	// The timeline still lists her events, with the values erased.
	tl := api.do("GET", "/api/v1/audit/users/"+erin.id, "")
	if tl.status != http.StatusOK || !strings.Contains(string(tl.body), `"erased"`) || strings.Contains(string(tl.body), erin.family) {
		t.Fatalf("timeline after erasure: %d %s", tl.status, tl.body)
	}
	// The change feed shows her events with the values erased, and the others' values opened.
	feed := api.do("GET", "/api/v1/events?limit=1000", "")
	if body := string(feed.body); feed.status != http.StatusOK || !strings.Contains(body, erin.id) || !strings.Contains(body, `"erased"`) ||
		strings.Contains(body, erin.family) || !strings.Contains(body, keeper.family) || strings.Contains(body, "idl:sealed") {
		t.Fatalf("change feed after erasure: %d %s", feed.status, feed.body)
	}
	// Her name no longer leads to her.
	if r := api.do("GET", "/api/v1/audit/users?userName="+url.QueryEscape(erin.userName), ""); strings.Contains(string(r.body), erin.id) {
		t.Fatalf("the audit by userName still finds the erased person: %d %s", r.status, r.body)
	}
	// A later user with the same userName is a new person (new id, new key); it is erased in
	// turn, so that the scan below looks for the name with no one holding it.
	again := scim.do("POST", "/scim/v2/Users", fmt.Sprintf(`{"userName":%q,"active":true}`, erin.userName))
	if again.status != http.StatusCreated {
		t.Fatalf("create after erasure: %d %s", again.status, again.body)
	}
	newID := again.json(t)["id"].(string)
	if newID == erin.id {
		t.Fatal("the new person got the erased person's id")
	}
	if r := scim.do("GET", filterQuery(fmt.Sprintf("userName eq %q", erin.userName)), ""); !strings.Contains(string(r.body), newID) {
		t.Fatalf("the new person is not found by the name: %s", r.body)
	}
	if r := scim.do("DELETE", "/scim/v2/Users/"+newID, ""); r.status != http.StatusNoContent {
		t.Fatalf("delete the new person: %d", r.status)
	}
	if r := api.do("POST", "/api/v1/users/"+newID+"/erase", ""); r.status != http.StatusOK || r.json(t)["keyDestroyed"] != true {
		t.Fatalf("erase the new person: %d %s", r.status, r.body)
	}

	// A refused sign-in of a name nobody has: logged, without the name.
	res, _ = get("/saml/" + tenant + "/login")
	refused := samltest.New(t, samltest.Entra, time.Now).Login(t, res.Header.Get("Location"), spMetadata, erin.userName)
	if r, err := browser.Post(refused.ACSURL, "application/x-www-form-urlencoded", strings.NewReader(refused.Form.Encode())); err != nil {
		t.Fatal(err)
	} else {
		r.Body.Close()
	}

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "sign-in refused") {
		t.Errorf("the server log has no refused sign-in: the scan of the log below could not fail")
	}
	for _, p := range []*person{erin, keeper} {
		for _, v := range p.values() {
			for _, form := range variants(v) {
				if strings.Contains(logs.String(), form) {
					t.Errorf("the server log holds %q", form)
				}
			}
		}
	}
	if hits := scanDir(t, dir, erin.values()); len(hits) > 0 {
		t.Errorf("the erased person's data is still on disk: %v", hits)
	}
	hits := scanDir(t, dir, keeper.values())
	for _, v := range keeper.values() {
		if len(hits[v]) == 0 {
			t.Errorf("the scan does not find %q of the person not erased: it could not fail", v)
		}
	}
	if out, errOut, err := runCLI(t, "audit", "verify", "--data", dir); err != nil {
		t.Fatalf("audit verify after erasure: %v\n%s%s", err, out, errOut)
	}
	if out, errOut, err := runCLI(t, "projections", "check", "--data", dir); err != nil {
		t.Fatalf("projections check after erasure: %v\n%s%s", err, out, errOut)
	}

	// Export → import gives the same read models; the erased person stays erased.
	out, errOut, err := runCLI(t, "audit", "export", "--data", dir, "--tenant", tenant)
	if err != nil {
		t.Fatalf("export: %v %s", err, errOut)
	}
	file := filepath.Join(t.TempDir(), "contoso.jsonl")
	if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "restored")
	if _, errOut, err := runCLI(t, "audit", "import", "--data", fresh, file); err != nil {
		t.Fatalf("import: %v %s", err, errOut)
	}
	if a, b := dump(t, filepath.Join(dir, "projections.db")), dump(t, filepath.Join(fresh, "projections.db")); !bytes.Equal(a, b) {
		t.Errorf("read models differ after import:\n%s\n---\n%s", a, b)
	}
	if hits := scanDir(t, fresh, erin.values()); len(hits) > 0 {
		t.Errorf("the erased person's data is in the imported dir: %v", hits)
	}
}

// TestErasure_FinishedAfterCrash: an erasure interrupted after user.erased was appended (the
// key not yet destroyed) is finished at the next start.
func TestErasure_FinishedAfterCrash(t *testing.T) {
	dir := t.TempDir()
	m := startMain(t, dir)
	base := "http://" + m.Addr()
	tenant, token := createTenant(t, base, "Contoso")
	scim := client{t, base, token}
	r := scim.do("POST", "/scim/v2/Users", `{"userName":"crash.test@contoso.example","active":true}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := domain.UserID(r.json(t)["id"].(string))
	if r := scim.do("DELETE", "/scim/v2/Users/"+string(id), ""); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d", r.status)
	}
	// The first steps of an erasure, then the process ends.
	ctx := t.Context()
	if err := m.Store.MarkErasure(ctx, domain.TenantID(tenant), id); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Service.EraseUser(ctx, domain.TenantID(tenant), id); err != nil {
		t.Fatal(err)
	}
	if erased, err := m.Store.KeyErased(ctx, domain.TenantID(tenant), id); err != nil || erased {
		t.Fatalf("key erased before the restart: %v %v", erased, err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = startMain(t, dir)
	if erased, err := m.Store.KeyErased(ctx, domain.TenantID(tenant), id); err != nil || !erased {
		t.Fatalf("key erased after the restart: %v %v", erased, err)
	}
	if p, err := m.Store.PendingErasures(ctx); err != nil || len(p) != 0 {
		t.Fatalf("pending after the restart: %v %v", p, err)
	}
	// The company, without users now, can be erased as a whole (nothing left to do but answer).
	res := client{t, "http://" + m.Addr(), adminToken}.do("POST", "/admin/v1/tenants/"+tenant+"/erase", "")
	if res.status != http.StatusOK || !strings.Contains(string(res.body), string(id)) {
		t.Fatalf("erase the company: %d %s", res.status, res.body)
	}
}

// TestMigrateEncrypt_CLI: a data dir written before encryption is migrated into a new one; the
// server on the new dir serves the same user, whose erasure then leaves no byte of them.
func TestMigrateEncrypt_CLI(t *testing.T) {
	old := t.TempDir()
	m, err := app.Start(t.Context(), app.Config{DataDir: old, Listen: "127.0.0.1:0", AdminToken: adminToken, NoSync: true, PlainPersonalData: true})
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, m)
	base := "http://" + m.Addr()
	tenant, token := createTenant(t, base, "Contoso")
	p := &person{userName: "Ottoline.Migratova@Contoso.example", given: "Ottolinemg", family: "Migratova",
		work: "ottoline.migratova@contoso.example", home: "om-home@privmail.example", phone: "+49 30 5550444777"}
	r := client{t, base, token}.do("POST", "/scim/v2/Users", p.body())
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	p.id = r.json(t)["id"].(string)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if hits := scanDir(t, filepath.Join(old, "nats"), []string{p.family}); len(hits) == 0 {
		t.Fatal("the old log does not hold the values in clear: nothing to migrate")
	}

	fresh := filepath.Join(t.TempDir(), "new")
	out, errOut, err := runCLI(t, "migrate", "encrypt", "--from", old, "--to", fresh)
	if err != nil || !strings.Contains(out, "copied ") {
		t.Fatalf("migrate: %v %s %s", err, out, errOut)
	}
	if hits := scanDir(t, filepath.Join(fresh, "nats"), p.values()); len(hits) > 0 {
		t.Fatalf("the new log holds values in clear: %v", hits)
	}
	if out, errOut, err := runCLI(t, "audit", "verify", "--data", fresh); err != nil {
		t.Fatalf("verify the new log: %v %s %s", err, out, errOut)
	}
	m = startMain(t, fresh)
	base = "http://" + m.Addr()
	scim := client{t, base, token}
	if r := scim.do("GET", "/scim/v2/Users/"+p.id, ""); r.status != http.StatusOK || !strings.Contains(string(r.body), p.family) {
		t.Fatalf("the migrated user: %d %s", r.status, r.body)
	}
	if r := scim.do("DELETE", "/scim/v2/Users/"+p.id, ""); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d", r.status)
	}
	if r := (client{t, base, adminToken}).do("POST", "/admin/v1/tenants/"+tenant+"/users/"+p.id+"/erase", ""); r.status != http.StatusOK || r.json(t)["keyDestroyed"] != true {
		t.Fatalf("erase: %d %s", r.status, r.body)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if hits := scanDir(t, fresh, p.values()); len(hits) > 0 {
		t.Errorf("the erased person's data is still on disk: %v", hits)
	}
}

// TestErasure_EveryInstanceForgets: two instances share an external NATS; B has read (and so
// cached) a person's key; once A's erasure returns, B reads the person's values as erased,
// without waiting. An instance that stopped without leaving makes the erasure fail until its
// entry expires, rather than answer while it might still hold the key.
func TestErasure_EveryInstanceForgets(t *testing.T) {
	dir := t.TempDir()
	srv := natsServer(t, filepath.Join(dir, "nats"), -1)
	key, err := eventstore.WriteNewMasterKeyFile(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	open := func() *eventstore.Store {
		s, err := eventstore.Open(t.Context(), eventstore.Config{URL: srv.ClientURL(), Replicas: 1, MasterKey: key})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	ctx := t.Context()
	const tenant = "t1"
	e := domain.Event{ID: "e1", Tenant: tenant, Kind: domain.KindUser, AggregateID: "u1", Type: domain.EventUserCreated, Schema: 1,
		At: time.Now(), Actor: "scim:x", Data: domain.UserCreated{Attributes: map[string]any{"userName": "lin.cachewood@contoso.example"}}}
	if _, err := a.Append(ctx, domain.Batch{Tenant: tenant, Writes: []domain.Write{{Event: e}}}); err != nil {
		t.Fatal(err)
	}
	userName := func(s *eventstore.Store) any {
		t.Helper()
		events, _, err := s.Load(ctx, tenant, domain.KindUser, "u1")
		if err != nil || len(events) != 1 {
			t.Fatalf("load: %v %v", err, events)
		}
		return events[0].Data.(domain.UserCreated).Attributes["userName"]
	}
	if got := userName(b); got != "lin.cachewood@contoso.example" {
		t.Fatalf("B reads %v", got)
	}
	if had, err := a.EraseUserKey(ctx, tenant, "u1"); err != nil || !had {
		t.Fatalf("erase on A: %v %v", had, err)
	}
	if got := userName(b); got != domain.ErasedValue {
		t.Fatalf("B reads %v right after A's erasure, want %q", got, domain.ErasedValue)
	}

	// An instance that stopped without leaving (its entry in IDL_INSTANCES not yet expired)
	// cannot confirm: the erasure fails, to be retried, rather than answer while it might
	// still hold the key.
	e.ID, e.AggregateID = "e2", "u2"
	if _, err := a.Append(ctx, domain.Batch{Tenant: tenant, Writes: []domain.Write{{Event: e}}}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "IDL_INSTANCES")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "crashed-instance", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.EraseUserKey(ctx, tenant, "u2"); !errors.Is(err, domain.ErrUnavailable) || !strings.Contains(err.Error(), "crashed-instance") {
		t.Fatalf("erase with an instance that does not answer: %v, want ErrUnavailable naming it", err)
	}
}
