package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/cmd/internal/app"
	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/saml/samltest"
)

// Issue #8, Cluster: a 3-node NATS cluster on loopback with an R3 stream, and two idledger
// instances on it (docs/event-model.md §1.3). It takes ~10-20 s, so `go test -short` skips it;
// `make test` runs it.

// natsCluster is three JetStream servers routed to each other on 127.0.0.1.
type natsCluster struct {
	t    *testing.T
	opts []*server.Options
	srvs []*server.Server
}

func startCluster(t *testing.T, dir string) *natsCluster {
	t.Helper()
	var routePorts []int
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		routePorts = append(routePorts, l.Addr().(*net.TCPAddr).Port)
		l.Close()
	}
	routes := fmt.Sprintf("nats://127.0.0.1:%d,nats://127.0.0.1:%d,nats://127.0.0.1:%d", routePorts[0], routePorts[1], routePorts[2])
	c := &natsCluster{t: t}
	for i := range 3 {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: filepath.Join(dir, fmt.Sprintf("n%d", i)),
			NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "idl-test", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:  server.RoutesFromStr(routes),
		}
		c.opts = append(c.opts, o)
		c.srvs = append(c.srvs, nil)
		c.start(i)
	}
	t.Cleanup(func() {
		for _, s := range c.srvs {
			if s != nil {
				s.Shutdown()
				s.WaitForShutdown()
			}
		}
	})
	return c
}

// start (re)starts node i on its first address and store.
func (c *natsCluster) start(i int) {
	c.t.Helper()
	srv, err := server.NewServer(c.opts[i])
	if err != nil {
		c.t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		c.t.Fatalf("nats node %d did not start", i)
	}
	c.opts[i].Port = srv.Addr().(*net.TCPAddr).Port // a restart comes back on the same address
	c.srvs[i] = srv
}

func (c *natsCluster) stop(i int) {
	c.srvs[i].Shutdown()
	c.srvs[i].WaitForShutdown()
	c.srvs[i] = nil
}

func (c *natsCluster) urls() string {
	var u []string
	for _, o := range c.opts {
		u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return strings.Join(u, ",")
}

// TestCluster_TwoInstancesR3 runs two idledger instances on a 3-node cluster with an R3 stream.
func TestCluster_TwoInstancesR3(t *testing.T) {
	if testing.Short() {
		t.Skip("the 3-node NATS cluster test takes ~15 s; run without -short (make test, .ci/run)")
	}
	t.Parallel()
	start := time.Now()
	dir := t.TempDir()
	cl := startCluster(t, dir)
	urls := cl.urls()

	// The meta leader needs an election before the stream can be created: retry.
	eventually(t, 30*time.Second, "the R3 stream is created", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		s, err := eventstore.Open(ctx, eventstore.Config{URL: urls, Replicas: 3})
		if err != nil {
			return false
		}
		s.Close()
		return true
	})
	t.Logf("cluster up and stream created in %s", time.Since(start).Round(time.Millisecond))

	// Two instances, as behind a load balancer: one public base URL, one shared SAML SP key.
	const publicBase = "http://idledger.test"
	startInstance := func(name, key, cert string) *app.Server {
		m, err := app.Start(t.Context(), app.Config{DataDir: filepath.Join(dir, name), Listen: "127.0.0.1:0", AdminToken: adminToken,
			NATSURL: urls, Replicas: 3, BaseURL: publicBase, SAMLKey: key, SAMLCert: cert})
		if err != nil {
			t.Fatalf("instance %s: %v", name, err)
		}
		t.Cleanup(func() { m.Close() })
		waitReady(t, m)
		return m
	}
	a := startInstance("a", "", "")
	b := startInstance("b", filepath.Join(dir, "a", "saml-sp.key"), filepath.Join(dir, "a", "saml-sp.crt"))
	baseA, baseB := "http://"+a.Addr(), "http://"+b.Addr()
	res := client{t, baseA, adminToken}.do("POST", "/admin/v1/tenants", `{"name":"Contoso"}`)
	if res.status != http.StatusCreated || !strings.HasPrefix(res.json(t)["scimBaseUrl"].(string), publicBase) {
		t.Fatalf("create tenant: %d %s", res.status, res.body)
	}
	tenant, token := res.json(t)["id"].(string), res.json(t)["scimToken"].(string)
	// The company as seen through either instance (instance B may need a moment to see it).
	sa, sb := client{t, baseA, token}, client{t, baseB, token}
	eventually(t, 10*time.Second, "instance B knows the company", func() bool {
		return sb.do("GET", "/scim/v2/Users", "").status == http.StatusOK
	})

	t.Run("UniqueUserNameAcrossInstances", func(t *testing.T) {
		const n = 10
		var wg sync.WaitGroup
		res := make([]response, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := []client{sa, sb}[i%2]
				name := "Race@Contoso.example"
				if i%3 == 0 {
					name = strings.ToLower(name)
				}
				res[i] = c.do("POST", "/scim/v2/Users", fmt.Sprintf(`{"userName":%q}`, name))
			}()
		}
		wg.Wait()
		created := 0
		for _, r := range res {
			switch r.status {
			case http.StatusCreated:
				created++
			case http.StatusConflict:
			default:
				t.Errorf("concurrent create: %d %s", r.status, r.body)
			}
		}
		if created != 1 {
			t.Errorf("%d of %d concurrent creates of one userName through two instances succeeded, want 1", created, n)
		}
	})

	t.Run("OptimisticConcurrencyAcrossInstances", func(t *testing.T) {
		r := sa.do("POST", "/scim/v2/Users", `{"userName":"occ@contoso.example","active":true}`)
		if r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		id, etag := r.json(t)["id"].(string), r.header.Get("ETag")
		eventually(t, 10*time.Second, "B sees the user", func() bool { return sb.do("GET", "/scim/v2/Users/"+id, "").status == http.StatusOK })
		var wg sync.WaitGroup
		statuses := make([]int, 2)
		for i, c := range []client{sa, sb} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("PUT", c.base+"/scim/v2/Users/"+id, strings.NewReader(
					fmt.Sprintf(`{"userName":"occ@contoso.example","displayName":"via %d","active":true}`, i)))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/scim+json")
				req.Header.Set("If-Match", etag)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				statuses[i] = res.StatusCode
			}()
		}
		wg.Wait()
		ok, stale := 0, 0
		for _, s := range statuses {
			switch s {
			case http.StatusOK:
				ok++
			case http.StatusPreconditionFailed:
				stale++
			}
		}
		if ok != 1 || stale != 1 {
			t.Errorf("two PUTs with the same If-Match through two instances: %v, want one 200 and one 412", statuses)
		}
	})

	t.Run("APIKeyRevokedOnEveryInstance", func(t *testing.T) {
		res := client{t, baseA, adminToken}.do("POST", "/admin/v1/tenants/"+tenant+"/api-keys", `{"name":"ci","scopes":["sso:read"]}`)
		if res.status != http.StatusCreated {
			t.Fatalf("create key: %d %s", res.status, res.body)
		}
		id, key := res.json(t)["id"].(string), res.json(t)["key"].(string)
		ka, kb := client{t, baseA, key}, client{t, baseB, key}
		eventually(t, 10*time.Second, "B takes the key", func() bool { return kb.do("GET", "/api/v1/sso", "").status == http.StatusOK })
		if res := (client{t, baseA, adminToken}).do("DELETE", "/admin/v1/tenants/"+tenant+"/api-keys/"+id, ""); res.status != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", res.status, res.body)
		}
		// Refused at once where it was revoked, and on B once B's read models have the event.
		if res := ka.do("GET", "/api/v1/sso", ""); res.status != http.StatusUnauthorized {
			t.Errorf("revoked key on A: %d, want 401", res.status)
		}
		eventually(t, 10*time.Second, "B refuses the revoked key", func() bool {
			return kb.do("GET", "/api/v1/sso", "").status == http.StatusUnauthorized
		})
	})

	t.Run("SAMLSessionSharedAcrossInstances", func(t *testing.T) {
		key := createAPIKey(t, baseA, tenant, "sso:read", "sso:write")
		kb := client{t, baseB, key}
		req, _ := http.NewRequest("PUT", baseA+"/api/v1/sso/idp-metadata", bytes.NewReader(samltest.Read(t, "entra-metadata.xml")))
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
		created := sa.do("POST", "/scim/v2/Users", `{"userName":"ada@contoso.example","active":true}`)
		if created.status != http.StatusCreated {
			t.Fatalf("provision: %d %s", created.status, created.body)
		}
		ada := created.json(t)["id"].(string)
		eventually(t, 10*time.Second, "B sees Ada and the IdP", func() bool {
			return sb.do("GET", "/scim/v2/Users/"+ada, "").status == http.StatusOK &&
				kb.do("GET", "/api/v1/sso", "").json(t)["enabled"] == true
		})
		jar, _ := cookiejar.New(nil) // cookies ignore ports: both instances share them, as behind one host
		browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		get := func(base, path string) (*http.Response, []byte) {
			t.Helper()
			res, err := browser.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			return res, body
		}
		// The login starts on A, the IdP's answer is posted to B (the AuthnRequest id is in
		// the shared KV), and the session works on both.
		res, _ = get(baseA, "/saml/"+tenant+"/login?return_to=%2Fapp")
		if res.StatusCode != http.StatusFound {
			t.Fatalf("login: %d", res.StatusCode)
		}
		_, spMetadata := get(baseA, "/saml/"+tenant+"/metadata")
		answer := samltest.New(t, samltest.Entra, time.Now).Login(t, res.Header.Get("Location"), spMetadata, "ada@contoso.example")
		acsURL, _ := url.Parse(answer.ACSURL)
		post := func(base string) *http.Response {
			res, err := browser.Post(base+acsURL.Path, "application/x-www-form-urlencoded", strings.NewReader(answer.Form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			return res
		}
		if r := post(baseB); r.StatusCode != http.StatusSeeOther {
			t.Fatalf("ACS on B: %d", r.StatusCode)
		}
		for name, base := range map[string]string{"A": baseA, "B": baseB} {
			if res, body := get(base, "/api/v1/me"); res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(ada)) {
				t.Errorf("/api/v1/me on %s with the session made on B: %d %s", name, res.StatusCode, body)
			}
		}
		// The replay cache is shared too: the same response posted to A is refused.
		if r := post(baseA); r.StatusCode == http.StatusSeeOther {
			t.Errorf("the assertion accepted on B was accepted again on A")
		}
	})

	t.Run("ConsoleSessionSharedAcrossInstances", func(t *testing.T) {
		// Opened on A by a setup link (console_test.go), held by B: the session store is shared.
		cookie := openSetupLink(t, baseA, tenant)
		if !consoleSessionLive(t, baseB, publicBase, cookie) {
			t.Errorf("the console session opened on A is not live on B")
		}
	})

	// The load: writers through both instances, one NATS node stopped and restarted meanwhile.
	type acked struct{ id, userName string }
	var (
		mu       sync.Mutex
		acks     []acked
		refused  atomic.Int64
		stopLoad = make(chan struct{})
		wg       sync.WaitGroup
	)
	const perInstance = 4
	for w := range 2 * perInstance {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := []client{sa, sb}[w%2]
			httpc := &http.Client{Timeout: 30 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				name := fmt.Sprintf("load-w%d-%d@contoso.example", w, i)
				req, _ := http.NewRequest("POST", c.base+"/scim/v2/Users", strings.NewReader(fmt.Sprintf(`{"userName":%q,"active":true}`, name)))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/scim+json")
				res, err := httpc.Do(req)
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				switch {
				case res.StatusCode == http.StatusCreated:
					var u struct{ ID string }
					if err := json.Unmarshal(body, &u); err != nil {
						t.Errorf("201 body: %s", body)
						return
					}
					mu.Lock()
					acks = append(acks, acked{u.ID, name})
					mu.Unlock()
				case res.StatusCode == http.StatusServiceUnavailable:
					refused.Add(1) // not acknowledged; Entra would retry later
					// Back off as a client does after a 503 (not a wait for a condition).
					select {
					case <-stopLoad:
						return
					case <-time.After(50 * time.Millisecond):
					}
				default:
					t.Errorf("writer %d create %s: %d %s", w, name, res.StatusCode, body)
					return
				}
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acks) }
	eventually(t, 30*time.Second, "load running", func() bool { return count() >= 100 })
	loadStart := time.Now()
	// The victim is the stream's leader: the hardest node to lose (a new leader is elected).
	victim := 1
	if nc, err := nats.Connect(urls); err == nil {
		if js, err := jetstream.New(nc); err == nil {
			if st, err := js.Stream(t.Context(), eventstore.StreamName); err == nil && st.CachedInfo().Cluster != nil {
				fmt.Sscanf(st.CachedInfo().Cluster.Leader, "n%d", &victim)
			}
		}
		nc.Close()
	}
	cl.stop(victim)
	stoppedAt, before := time.Now(), count()
	// Two nodes of three keep the stream writable: once a leader is elected without the
	// victim, acknowledged creates go on.
	eventually(t, 30*time.Second, fmt.Sprintf("creates acknowledged with n%d down", victim), func() bool { return count() >= before+50 })
	during := count() - before
	cl.start(victim)
	t.Logf("node n%d (the stream leader) stopped for %s: %d creates acknowledged meanwhile, %d refused with 503 so far", victim,
		time.Since(stoppedAt).Round(time.Millisecond), during, refused.Load())
	eventually(t, 30*time.Second, "load continues after the restart", func() bool { return count() >= before+during+100 })
	close(stopLoad)
	wg.Wait()
	n := count()
	t.Logf("load ran %s after the fault began", time.Since(loadStart).Round(time.Millisecond))

	// Both instances converge on the log's head, and hold every acknowledged write.
	head, err := a.Store.Head(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*app.Server{"A": a, "B": b} {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		if err := m.Projector.WaitFor(ctx, head); err != nil {
			t.Fatalf("instance %s did not reach the head %d: %v (checkpoint %d)", name, head, err, m.Projector.Checkpoint())
		}
		cancel()
	}
	created := map[string]int{}
	if err := a.Store.Scan(t.Context(), domain.TenantID(tenant), 0, 0, func(e domain.Event) bool {
		if e.Type == domain.EventUserCreated {
			switch d := e.Data.(type) {
			case domain.UserCreated:
				created[fmt.Sprint(d.Attributes["userName"])]++
			case *domain.UserCreated:
				created[fmt.Sprint(d.Attributes["userName"])]++
			}
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, ack := range acks {
		if created[ack.userName] != 1 {
			lost++
			t.Errorf("the log holds %d user.created for acknowledged %s", created[ack.userName], ack.userName)
		}
		for _, c := range []client{sa, sb} {
			if r := c.do("GET", "/scim/v2/Users/"+ack.id, ""); r.status != http.StatusOK {
				lost++
				t.Errorf("acknowledged %s missing on %s: %d", ack.userName, c.base, r.status)
			}
		}
	}
	var dumpA, dumpB bytes.Buffer
	if err := a.DB.Dump(&dumpA); err != nil {
		t.Fatal(err)
	}
	if err := b.DB.Dump(&dumpB); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dumpA.Bytes(), dumpB.Bytes()) {
		t.Errorf("the two instances' read models differ at head %d (%d vs %d bytes, first difference at %d)",
			head, dumpA.Len(), dumpB.Len(), firstDiff(dumpA.String(), dumpB.String()))
	}
	t.Logf("%d creates acknowledged through two instances (%d refused with 503), lost: %d; dumps equal (%d bytes) at head %d; total %s",
		n, refused.Load(), lost, dumpA.Len(), head, time.Since(start).Round(time.Millisecond))
}
