package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"

	"github.com/idledger/idledger/cmd/internal/app"
	"github.com/idledger/idledger/eventstore"
)

const adminToken = "test-admin-token"

// startMain runs a server (app.Start) on 127.0.0.1:0 over dir until the test ends or stop is called.
func startMain(tb testing.TB, dir string) *app.Server {
	tb.Helper()
	m, err := app.Start(tb.Context(), app.Config{DataDir: dir, Listen: "127.0.0.1:0", AdminToken: adminToken, NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	waitReady(tb, m)
	return m
}

func waitReady(tb testing.TB, m *app.Server) {
	tb.Helper()
	eventually(tb, 15*time.Second, "server ready", func() bool { return m.Projector.Ready() == nil })
}

type client struct {
	tb    testing.TB
	base  string
	token string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		tb.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func (c client) do(method, path, body string) response {
	c.tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.tb.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.tb.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func createTenant(tb testing.TB, base, name string) (id, token string) {
	tb.Helper()
	res := client{tb, base, adminToken}.do("POST", "/admin/v1/tenants", fmt.Sprintf(`{"name":%q}`, name))
	if res.status != http.StatusCreated {
		tb.Fatalf("create tenant: %d %s", res.status, res.body)
	}
	m := res.json(tb)
	if m["scimBaseUrl"] != base+"/scim/v2" {
		tb.Errorf("scimBaseUrl = %v, want %s/scim/v2", m["scimBaseUrl"], base)
	}
	saml, _ := m["saml"].(map[string]any)
	if want := base + "/saml/" + m["id"].(string) + "/metadata"; saml["entityId"] != want {
		tb.Errorf("saml.entityId = %v, want %s", saml["entityId"], want)
	}
	return m["id"].(string), m["scimToken"].(string)
}

func filterQuery(f string) string { return "/scim/v2/Users?filter=" + url.QueryEscape(f) }

// wantSCIMError checks an RFC 7644 §3.12 error body.
func wantSCIMError(tb testing.TB, res response, status int, scimType string) {
	tb.Helper()
	if res.status != status {
		tb.Fatalf("status = %d, want %d (body %s)", res.status, status, res.body)
	}
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/scim+json") {
		tb.Errorf("Content-Type = %q, want application/scim+json", ct)
	}
	m := res.json(tb)
	if s, _ := m["schemas"].([]any); len(s) != 1 || s[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
		tb.Errorf("schemas = %v", m["schemas"])
	}
	if m["status"] != fmt.Sprint(status) {
		tb.Errorf("status field = %v, want %q", m["status"], fmt.Sprint(status))
	}
	if got, _ := m["scimType"].(string); got != scimType {
		tb.Errorf("scimType = %q, want %q", got, scimType)
	}
	if d, _ := m["detail"].(string); d == "" {
		tb.Errorf("detail is empty")
	}
}

func streamMessages(tb testing.TB, m *app.Server) uint64 {
	tb.Helper()
	n, err := m.Store.Messages(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestWalkingSkeleton walks issue #2's contract end to end through the real server.
func TestWalkingSkeleton(t *testing.T) {
	dir := t.TempDir()
	m := startMain(t, dir)
	base := "http://" + m.Addr()
	_, token := createTenant(t, base, "Acme")
	acme := client{t, base, token}

	res := acme.do("POST", "/scim/v2/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
		"userName":"Grace.Hopper@contoso.com","externalId":"grace","active":true,
		"name":{"givenName":"Grace","familyName":"Hopper"},
		"emails":[{"value":"grace@contoso.com","type":"work","primary":true}]}`)
	if res.status != http.StatusCreated {
		t.Fatalf("create user: %d %s", res.status, res.body)
	}
	created := res.json(t)
	id, _ := created["id"].(string)
	meta, _ := created["meta"].(map[string]any)
	if loc := res.header.Get("Location"); loc == "" || loc != meta["location"] || loc != base+"/scim/v2/Users/"+id {
		t.Errorf("Location = %q, meta.location = %v", loc, meta["location"])
	}
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/scim+json") {
		t.Errorf("Content-Type = %q", ct)
	}

	// readBack checks the user by id and by a userName filter in another letter case.
	readBack := func(t *testing.T, c client) {
		t.Helper()
		res := c.do("GET", "/scim/v2/Users/"+id, "")
		if res.status != http.StatusOK {
			t.Fatalf("get by id: %d %s", res.status, res.body)
		}
		got := res.json(t)
		if got["userName"] != "Grace.Hopper@contoso.com" || got["externalId"] != "grace" || got["id"] != id {
			t.Errorf("get by id = %s", res.body)
		}
		if name, _ := got["name"].(map[string]any); name["familyName"] != "Hopper" {
			t.Errorf("name = %v", got["name"])
		}
		res = c.do("GET", filterQuery(`userName eq "grace.hopper@CONTOSO.com"`), "")
		if res.status != http.StatusOK {
			t.Fatalf("filter: %d %s", res.status, res.body)
		}
		list := res.json(t)
		rs, _ := list["Resources"].([]any)
		if list["totalResults"] != float64(1) || len(rs) != 1 || rs[0].(map[string]any)["id"] != id {
			t.Errorf("filter = %s", res.body)
		}
	}
	t.Run("ReadBack", func(t *testing.T) { readBack(t, acme) })

	t.Run("OtherTenantSeesNothing", func(t *testing.T) {
		_, other := createTenant(t, base, "Globex")
		c := client{t, base, other}
		wantSCIMError(t, c.do("GET", "/scim/v2/Users/"+id, ""), http.StatusNotFound, "")
		res := c.do("GET", filterQuery(`userName eq "Grace.Hopper@contoso.com"`), "")
		list := res.json(t)
		if res.status != http.StatusOK || list["totalResults"] != float64(0) {
			t.Errorf("other tenant filter: %d %s", res.status, res.body)
		}
		if rs, ok := list["Resources"].([]any); !ok || len(rs) != 0 {
			t.Errorf("Resources = %v, want []", list["Resources"])
		}
		res = c.do("GET", "/scim/v2/Users", "")
		if list := res.json(t); list["totalResults"] != float64(0) {
			t.Errorf("other tenant list: %s", res.body)
		}
	})

	t.Run("BadRequestsChangeNothing", func(t *testing.T) {
		before := streamMessages(t, m)
		wantSCIMError(t, client{t, base, ""}.do("POST", "/scim/v2/Users", `{"userName":"x@y"}`), http.StatusUnauthorized, "")
		wantSCIMError(t, client{t, base, "idl_wrong"}.do("POST", "/scim/v2/Users", `{"userName":"x@y"}`), http.StatusUnauthorized, "")
		wantSCIMError(t, client{t, base, "idl_wrong"}.do("GET", "/scim/v2/Users/"+id, ""), http.StatusUnauthorized, "")
		wantSCIMError(t, acme.do("POST", "/scim/v2/Users", `{"userName":`), http.StatusBadRequest, "invalidSyntax")
		wantSCIMError(t, acme.do("POST", "/scim/v2/Users", `[1,2]`), http.StatusBadRequest, "invalidSyntax")
		wantSCIMError(t, acme.do("POST", "/scim/v2/Users", `{"displayName":"no userName"}`), http.StatusBadRequest, "invalidValue")
		if res := (client{t, base, "wrong"}).do("POST", "/admin/v1/tenants", `{"name":"x"}`); res.status != http.StatusUnauthorized || res.json(t)["error"] == "" {
			t.Errorf("admin with a wrong token: %d %s", res.status, res.body)
		}
		if after := streamMessages(t, m); after != before {
			t.Errorf("stream holds %d messages after rejected requests, want %d", after, before)
		}
	})

	t.Run("ConcurrentSameUserName", func(t *testing.T) {
		const n = 20
		var wg sync.WaitGroup
		statuses := make([]response, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := []byte("race.condition@contoso.com")
				for j := range name {
					if (i>>(j%5))&1 == 1 && name[j] >= 'a' && name[j] <= 'z' {
						name[j] -= 'a' - 'A'
					}
				}
				statuses[i] = acme.do("POST", "/scim/v2/Users", fmt.Sprintf(`{"userName":%q}`, name))
			}()
		}
		wg.Wait()
		created := 0
		for _, res := range statuses {
			switch res.status {
			case http.StatusCreated:
				created++
			case http.StatusConflict:
				wantSCIMError(t, res, http.StatusConflict, "uniqueness")
			default:
				t.Errorf("status %d: %s", res.status, res.body)
			}
		}
		if created != 1 {
			t.Errorf("%d creates succeeded, want exactly 1", created)
		}
		res := acme.do("GET", filterQuery(`userName eq "RACE.CONDITION@contoso.com"`), "")
		if list := res.json(t); list["totalResults"] != float64(1) {
			t.Errorf("after race: %s", res.body)
		}
	})

	t.Run("NoTokenInTheLog", func(t *testing.T) {
		raw := rawStream(t, m)
		for _, secret := range []string{token, adminToken} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("the event stream contains a token in plain text")
			}
		}
		if !bytes.Contains(raw, []byte("tenant.created")) {
			t.Errorf("raw stream dump looks empty")
		}
	})

	// Restart on the same data dir: the same answers.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := startMain(t, dir)
	acme.base = "http://" + m2.Addr()
	t.Run("AfterRestart", func(t *testing.T) { readBack(t, acme) })

	// Throw the read models away: they are rebuilt from the log.
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "projections.db")); err != nil {
		t.Fatal(err)
	}
	m3 := startMain(t, dir)
	acme.base = "http://" + m3.Addr()
	t.Run("AfterRebuild", func(t *testing.T) { readBack(t, acme) })

	// The read models are committed without fsync while the server runs (lazy sync): a
	// marker with this boot's id says so, and a clean shutdown removes it.
	dbPath := filepath.Join(dir, "projections.db")
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatalf("this test needs Linux's boot id: %v", err)
	}
	if marker, err := os.ReadFile(dbPath + ".unsynced"); err != nil || !bytes.Equal(marker, boot) {
		t.Fatalf("lazy-sync marker while serving: %q, %v; want the boot id %q", marker, err, boot)
	}
	if err := m3.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dbPath + ".unsynced"); !os.IsNotExist(err) {
		t.Fatalf("the marker outlived a clean shutdown: %v", err)
	}

	// A machine crash: the marker of an earlier boot is left, and the file may hold any mix of
	// old and new pages (a canary row stands for them). It is discarded and rebuilt from the log.
	canary := func() (found bool) {
		b, err := bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		b.View(func(tx *bolt.Tx) error {
			found = tx.Bucket([]byte("meta")).Get([]byte("canary")) != nil
			return nil
		})
		return found
	}
	b, err := bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("canary"), []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := os.WriteFile(dbPath+".unsynced", []byte("boot-before-the-crash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m4 := startMain(t, dir)
	acme.base = "http://" + m4.Addr()
	t.Run("AfterMachineCrash", func(t *testing.T) { readBack(t, acme) })
	if err := m4.Close(); err != nil {
		t.Fatal(err)
	}
	if canary() {
		t.Fatal("the read models of the crashed boot were kept")
	}
}

// rawStream returns every stored message of the event stream and the key bucket, subjects,
// headers and bodies, as one byte slice.
func rawStream(tb testing.TB, m *app.Server) []byte {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(rawConn(tb, m.Store))
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	for _, stream := range []string{eventstore.StreamName} {
		st, err := js.Stream(ctx, stream)
		if err != nil {
			tb.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
			msg, err := st.GetMsg(ctx, seq)
			if err != nil {
				tb.Fatal(err)
			}
			fmt.Fprintf(&buf, "%s %v %s\n", msg.Subject, msg.Header, msg.Data)
		}
	}
	return buf.Bytes()
}

// TestServeDemo checks that `serve --demo` prints a working token and base URL.
func TestServeDemo(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	m, err := app.Start(t.Context(), app.Config{DataDir: dir, Listen: "127.0.0.1:0", Demo: true, NoSync: true, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var demo app.DemoCompany
	raw, err := os.ReadFile(filepath.Join(dir, "demo.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &demo); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{demo.Token, demo.APIKey, m.AdminToken, "http://" + m.Addr() + "/scim/v2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.HasPrefix(demo.APIKey, "idl_key_") || !strings.HasPrefix(m.AdminToken, "idl_op_") || !strings.HasPrefix(demo.Token, "idl_scim_") {
		t.Errorf("secrets without their kind's prefix: API key %q, operator %q, SCIM %q", demo.APIKey, m.AdminToken, demo.Token)
	}
	if fi, err := os.Stat(filepath.Join(dir, "demo.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("demo.json: %v, %v; want mode 0600", fi, err)
	}
	res := client{t, "http://" + m.Addr(), demo.Token}.do("GET", "/scim/v2/Users", "")
	if res.status != http.StatusOK {
		t.Errorf("demo token: %d %s", res.status, res.body)
	}
	if res := (client{t, "http://" + m.Addr(), demo.APIKey}).do("PUT", "/api/v1/sso/settings", `{"allowIdpInitiated":false}`); res.status != http.StatusOK {
		t.Errorf("demo API key on /api/v1: %d %s", res.status, res.body)
	}
	// The printed setup link opens the demo company's console.
	link := regexp.MustCompile(`setup link +(\S+)`).FindStringSubmatch(out.String())
	if link == nil || !strings.HasPrefix(link[1], "http://"+m.Addr()+"/console/setup/") {
		t.Fatalf("banner lacks the setup link:\n%s", out.String())
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := noFollow.Get(link[1])
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/console/"+string(demo.ID) {
		t.Errorf("demo setup link: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
}

// TestRestart_CatchingUpAnswers503 restarts a server whose read models must be rebuilt from the
// log (as after a machine crash): until they have caught up, SCIM and the company API answer
// 503 with Retry-After (Entra retries) — never 401 for a token not projected yet, nor an empty
// list — and the operator API stays open.
func TestRestart_CatchingUpAnswers503(t *testing.T) {
	dir := t.TempDir()
	m := startMain(t, dir)
	base := "http://" + m.Addr()
	_, token := createTenant(t, base, "Acme")
	acme := client{t, base, token}
	// A log long enough that replaying it takes a while: users, then big groups.
	const users = 800
	ids := make([]string, users)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < users; i += 8 {
				res := acme.do("POST", "/scim/v2/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"u%04d@contoso.com"}`, i))
				if res.status != http.StatusCreated {
					t.Errorf("create user %d: %d %s", i, res.status, res.body)
					return
				}
				ids[i], _ = res.json(t)["id"].(string)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var members strings.Builder
	for i, id := range ids {
		if i > 0 {
			members.WriteByte(',')
		}
		fmt.Fprintf(&members, `{"value":%q}`, id)
	}
	for g := range 10 {
		res := acme.do("POST", "/scim/v2/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"g%d","members":[%s]}`, g, members.String()))
		if res.status != http.StatusCreated {
			t.Fatalf("create group %d: %d %s", g, res.status, res.body)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "projections.db")); err != nil {
		t.Fatal(err)
	}

	m2, err := app.Start(t.Context(), app.Config{DataDir: dir, Listen: "127.0.0.1:0", AdminToken: adminToken, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m2.Close() })
	acme.base = "http://" + m2.Addr()
	admin := client{t, acme.base, adminToken}
	unavailable := 0
	for deadline := time.Now().Add(30 * time.Second); ; {
		res := acme.do("GET", "/scim/v2/Users?count=1", "")
		if res.status == http.StatusServiceUnavailable {
			unavailable++
			if res.header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
			wantSCIMError(t, res, http.StatusServiceUnavailable, "")
			if p := admin.do("GET", "/admin/v1/projections", ""); p.status != http.StatusOK {
				t.Fatalf("operator API while catching up: %d %s", p.status, p.body)
			}
			if time.Now().After(deadline) {
				t.Fatal("still catching up after 30 s")
			}
			continue
		}
		if res.status != http.StatusOK {
			t.Fatalf("while catching up: %d %s, want 503 or, once caught up, 200", res.status, res.body)
		}
		if total := res.json(t)["totalResults"]; total != float64(users) {
			t.Fatalf("first answer after catching up: totalResults %v, want %d", total, users)
		}
		break
	}
	if unavailable == 0 {
		t.Fatal("the replay was over before the first request: no 503 observed (make the log longer)")
	}
	t.Logf("%d requests answered 503 while the read models were rebuilt", unavailable)
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
