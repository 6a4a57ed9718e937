package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/idledger/idledger/httpapi/webhook"
)

// serveChildEnv switches TestServeKillChild on in a subprocess: the data dir.
const serveChildEnv = "IDLEDGER_SERVE_KILL_CHILD"

// TestWebhooks_ServerKilledMidDelivery is the durability test of the webhook deliveries
// against the whole server: `idledger serve` (its embedded NATS inside the process, fsync on,
// its own data dir, --webhook-allow-private for the local receiver) is killed with SIGKILL
// while the receiver holds one of its deliveries unanswered, after every SCIM write has been
// acknowledged. `idledger serve` restarted on the same data dir must deliver every event of
// those writes: the first arrivals in log order (a delivery may arrive twice: at least once),
// each with a valid signature.
func TestWebhooks_ServerKilledMidDelivery(t *testing.T) {
	t.Parallel()
	const users, killAt = 40, 15
	dir := t.TempDir()

	// The receiver: first arrivals by event id, signature check, and the hold of the
	// killAt-th event's first delivery until released.
	var (
		mu       sync.Mutex
		secret   string
		arrivals []string // the user ids of the user.created events, in first-arrival order
		seen     = map[string]bool{}
		badSig   atomic.Int32
		holdOnce sync.Once
	)
	holding, release := make(chan struct{}), make(chan struct{})
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get("webhook-id")
		mu.Lock()
		key := secret
		mu.Unlock()
		if webhook.Verify(key, id, r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), body, time.Now(), time.Minute) != nil {
			badSig.Add(1)
		}
		var item struct {
			ID       string
			Type     string
			Resource struct{ ID string }
		}
		if err := json.Unmarshal(body, &item); err != nil || item.ID != id || item.Type != "user.created" {
			badSig.Add(1)
		}
		mu.Lock()
		if !seen[id] && len(arrivals) == killAt {
			held := false
			holdOnce.Do(func() { held = true })
			if held {
				mu.Unlock()
				close(holding)
				<-release
				return // the sender is dead by now
			}
		}
		if !seen[id] {
			seen[id] = true
			arrivals = append(arrivals, item.Resource.ID)
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	var releaseOnce sync.Once
	releaseHeld := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseHeld()

	first, base := startServeChild(t, dir)
	tenant, token := createTenant(t, base, "Contoso")
	key := createAPIKey(t, base, tenant, "webhooks:write")
	hook := client{t, base, key}.do("POST", "/api/v1/webhooks", fmt.Sprintf(`{"url":%q,"types":["user.created"]}`, recv.URL+"/hook"))
	if hook.status != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", hook.status, hook.body)
	}
	mu.Lock()
	secret = hook.json(t)["secret"].(string)
	mu.Unlock()

	// Every write is acknowledged before the kill.
	scim := client{t, base, token}
	var want []string
	for i := range users {
		res := scim.do("POST", "/scim/v2/Users", fmt.Sprintf(
			`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"user%d@contoso.example","externalId":"%d","active":true}`, i, i))
		if res.status != http.StatusCreated {
			t.Fatalf("create user %d: %d %s", i, res.status, res.body)
		}
		want = append(want, res.json(t)["id"].(string))
	}
	select {
	case <-holding:
	case <-time.After(90 * time.Second):
		t.Fatal("the server never reached the delivery to kill it on")
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	releaseHeld()
	mu.Lock()
	before := len(arrivals)
	mu.Unlock()
	if before != killAt {
		t.Fatalf("%d events delivered before the kill, want %d", before, killAt)
	}

	// Restarted on the same data dir: the rest arrives, in order.
	killedAt := time.Now()
	startServeChild(t, dir)
	eventually(t, 3*time.Minute, "every event delivered after the restart", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(arrivals) >= users
	})
	t.Logf("all %d events delivered %s after the kill", users, time.Since(killedAt).Round(time.Millisecond))
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(arrivals, want) {
		t.Errorf("first arrivals (user ids) not in log order:\n%v\nwant\n%v", arrivals, want)
	}
	if n := badSig.Load(); n > 0 {
		t.Errorf("%d deliveries with an invalid signature, id or type", n)
	}
}

// TestServeKillChild runs `idledger serve` on the data dir in $IDLEDGER_SERVE_KILL_CHILD until
// it is killed (only as the subprocess of TestWebhooks_ServerKilledMidDelivery).
func TestServeKillChild(t *testing.T) {
	dir := os.Getenv(serveChildEnv)
	if dir == "" {
		t.Skip("the subprocess of TestWebhooks_ServerKilledMidDelivery")
	}
	err := run(context.Background(), []string{"serve", "--data", dir, "--listen", "127.0.0.1:0", "--webhook-allow-private"}, os.Stdout, os.Stderr)
	t.Fatalf("idledger serve returned: %v", err)
}

// startServeChild starts `idledger serve` over dir in a subprocess and returns it and its base
// URL, read from its "idledger listening" log line.
func startServeChild(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), serveChildEnv+"="+dir, "IDLEDGER_ADMIN_TOKEN="+adminToken)
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var seen syncBuffer
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(logs)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			fmt.Fprintln(&seen, sc.Text())
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "idledger listening" {
				addr <- line.Addr
			}
		}
		io.Copy(io.Discard, logs)
	}()
	select {
	case a := <-addr:
		base := "http://" + a
		eventually(t, 60*time.Second, "the server ready", func() bool {
			res, err := http.Get(base + "/healthz")
			if err != nil {
				return false
			}
			res.Body.Close()
			return res.StatusCode == http.StatusOK
		})
		return cmd, base
	case <-time.After(60 * time.Second):
		t.Fatalf("idledger serve did not start:\n%s", seen.String())
	}
	return nil, ""
}
