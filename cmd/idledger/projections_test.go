package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/projections"

	"github.com/idledger/idledger/cmd/internal/cli"
)

// runCmd runs the idledger command line in-process and returns its stdout, stderr and error.
func runCmd(tb testing.TB, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	var out, errOut bytes.Buffer
	err = run(tb.Context(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// populateDir runs a server on dir, writes a company with users and a group through SCIM, and
// stops it. It returns the company's users' ids.
func populateDir(t *testing.T, dir string) []string {
	t.Helper()
	m := startMain(t, dir)
	base := "http://" + m.Addr()
	_, token := createTenant(t, base, "Acme")
	c := client{t, base, token}
	var ids []string
	for i := range 5 {
		res := c.do("POST", "/scim/v2/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
			"userName":"user%d@acme.example","externalId":"x%d","emails":[{"value":"u%d@acme.example","primary":true}]}`, i, i, i))
		if res.status != http.StatusCreated {
			t.Fatalf("create user: %d %s", res.status, res.body)
		}
		ids = append(ids, res.json(t)["id"].(string))
	}
	res := c.do("POST", "/scim/v2/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
		"displayName":"Staff","members":[{"value":%q},{"value":%q}]}`, ids[0], ids[1]))
	if res.status != http.StatusCreated {
		t.Fatalf("create group: %d %s", res.status, res.body)
	}
	if res := c.do("DELETE", "/scim/v2/Users/"+ids[1], ""); res.status != http.StatusNoContent {
		t.Fatalf("delete user: %d %s", res.status, res.body)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// editFile changes DIR/projections.db behind the projector's back.
func editFile(t *testing.T, dir string, f func(*bolt.Tx) error) {
	t.Helper()
	b, err := bolt.Open(filepath.Join(dir, "projections.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Update(f); err != nil {
		t.Fatal(err)
	}
}

func TestProjectionsCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ids := populateDir(t, dir)

	t.Run("check_passes_on_a_served_dir", func(t *testing.T) {
		out, _, err := runCmd(t, "projections", "check", "--data", dir)
		if err != nil || !strings.HasPrefix(out, "projections match the log (") {
			t.Fatalf("check = %v, stdout %q", err, out)
		}
	})

	t.Run("refused_while_a_server_runs", func(t *testing.T) {
		m := startMain(t, dir)
		for _, cmd := range []string{"check", "rebuild"} {
			_, _, err := runCmd(t, "projections", cmd, "--data", dir)
			if !errors.Is(err, errServerRunning) || !strings.Contains(err.Error(), "projections.db is locked") {
				t.Errorf("%s with a server running = %v, want errServerRunning", cmd, err)
			}
		}
		m.Close()
	})

	var tenant string
	t.Run("check_prints_each_difference", func(t *testing.T) {
		editFile(t, dir, func(tx *bolt.Tx) error {
			users := tx.Bucket([]byte("users"))
			k, _ := users.Cursor().First()
			tenant, _, _ = strings.Cut(string(k), "/")
			if err := users.Delete(k); err != nil { // a user lost
				return err
			}
			return tx.Bucket([]byte("users_by_username")).Put([]byte(tenant+"/ghost"), []byte("nobody")) // one invented
		})
		out, _, err := runCmd(t, "projections", "check", "--data", dir)
		if !errors.Is(err, errProjectionsDiffer) {
			t.Fatalf("check of a damaged file = %v, want errProjectionsDiffer; stdout:\n%s", err, out)
		}
		for _, want := range []string{
			fmt.Sprintf("users %q\n  stored:   (absent)\n  replayed: {", tenant+"/"+ids[0]),
			fmt.Sprintf("users_by_username %q\n  stored:   \"nobody\"\n  replayed: (absent)\n", tenant+"/ghost"),
			"2 rows of " + filepath.Join(dir, "projections.db") + " differ from the log replayed to seq ",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("check output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("rebuild_repairs_it_with_a_progress_bar", func(t *testing.T) {
		out, errOut, err := runCmd(t, "projections", "rebuild", "--data", dir)
		if err != nil {
			t.Fatalf("rebuild = %v; stderr:\n%s", err, errOut)
		}
		if !strings.HasPrefix(out, "rebuilt "+filepath.Join(dir, "projections.db")+" from the log: ") {
			t.Errorf("rebuild stdout = %q", out)
		}
		// stderr is not a terminal here: whole lines, the last one at 100%.
		if !strings.Contains(errOut, "rebuild [==============================] 100.0%") || !strings.Contains(errOut, "events/s  ETA") {
			t.Errorf("rebuild stderr = %q, want a progress line at 100%% with rate and ETA", errOut)
		}
		if _, err := os.Stat(filepath.Join(dir, "projections.db.rebuild")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("projections.db.rebuild left behind: %v", err)
		}
		if out, _, err := runCmd(t, "projections", "check", "--data", dir); err != nil {
			t.Errorf("check after rebuild = %v:\n%s", err, out)
		}
		// The server serves the rebuilt file.
		m := startMain(t, dir)
		for _, id := range []string{ids[0], ids[2], ids[4]} {
			if _, err := m.DB.FindUser(t.Context(), domain.TenantID(tenant), domain.UserID(id)); err != nil {
				t.Errorf("user %s after the rebuild: %v", id, err)
			}
		}
		if _, err := m.DB.FindUser(t.Context(), domain.TenantID(tenant), domain.UserID(ids[1])); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("deleted user %s after the rebuild: %v, want ErrNotFound", ids[1], err)
		}
		m.Close()
	})

	t.Run("check_reports_another_schema", func(t *testing.T) {
		editFile(t, dir, func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("1"))
		})
		out, _, err := runCmd(t, "projections", "check", "--data", dir)
		if !errors.Is(err, errProjectionsDiffer) || !strings.Contains(out, `has projection schema "1", this idledger writes`) {
			t.Errorf("check of an old schema = %v, %q", err, out)
		}
		if _, _, err := runCmd(t, "projections", "rebuild", "--data", dir); err != nil {
			t.Fatal(err)
		}
		if out, _, err := runCmd(t, "projections", "check", "--data", dir); err != nil {
			t.Errorf("check after rebuilding an old schema = %v:\n%s", err, out)
		}
	})

	t.Run("usage_and_missing_log", func(t *testing.T) {
		if _, errOut, err := runCmd(t, "projections"); !errors.Is(err, cli.ErrUsage) || !strings.Contains(errOut, "projections rebuild --data DIR") {
			t.Errorf("projections without a command = %v, %q", err, errOut)
		}
		empty := t.TempDir()
		for _, cmd := range []string{"check", "rebuild"} {
			if _, _, err := runCmd(t, "projections", cmd, "--data", empty); err == nil || !strings.Contains(err.Error(), "no event log in") {
				t.Errorf("%s on an empty dir = %v", cmd, err)
			}
		}
		if _, err := os.Stat(filepath.Join(empty, "projections.db")); !errors.Is(err, os.ErrNotExist) {
			t.Error("a refused command created projections.db")
		}
	})
}

// TestProjectionsRebuild_online_under_SCIM_writes rebuilds the read models through the operator
// API while SCIM clients keep creating users, and checks that no acknowledged write is lost and
// that the result is exactly the log replayed.
func TestProjectionsRebuild_online_under_SCIM_writes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := startMain(t, dir)
	base := "http://" + m.Addr()
	tenant, token := createTenant(t, base, "Acme")
	admin := client{t, base, adminToken}

	// Some history for the rebuild to copy: more than one batch.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				if _, err := m.Service.CreateUser(context.Background(), domain.OriginSystem, domain.TenantID(tenant),
					map[string]any{"userName": fmt.Sprintf("pre%d-%d@acme.example", w, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	ctx, stop := context.WithCancel(t.Context())
	var mu sync.Mutex
	var acked []string
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"w%d-%d@acme.example"}`, w, i)
				req, _ := http.NewRequest("POST", base+"/scim/v2/Users", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/scim+json")
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Errorf("POST /Users: %v", err)
					return
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusCreated {
					t.Errorf("POST /Users during the rebuild: %d %s", res.StatusCode, b)
					return
				}
				var u struct{ ID string }
				json.Unmarshal(b, &u)
				mu.Lock()
				acked = append(acked, u.ID)
				mu.Unlock()
			}
		})
	}
	waitCount := func(n int) {
		eventually(t, 30*time.Second, fmt.Sprintf("%d SCIM users acknowledged", n), func() bool { return count() >= n })
	}
	waitCount(10)

	res := admin.do("POST", "/admin/v1/projections/rebuild", "")
	if res.status != http.StatusAccepted || res.header.Get("Location") != "/admin/v1/projections" {
		t.Fatalf("POST rebuild: %d %s", res.status, res.body)
	}
	if st := res.json(t); st["rebuild"] == nil {
		t.Errorf("202 body has no rebuild progress: %s", res.body)
	}
	var state, rb map[string]any
	eventually(t, 60*time.Second, "rebuild finished", func() bool {
		res := admin.do("GET", "/admin/v1/projections", "")
		if res.status != http.StatusOK {
			t.Fatalf("GET /admin/v1/projections: %d %s", res.status, res.body)
		}
		state = res.json(t)
		rb, _ = state["rebuild"].(map[string]any)
		return rb != nil && rb["finished"] != nil
	})
	if rb["error"] != nil || rb["running"] != false || rb["done"] != rb["total"] || rb["percent"] != 100.0 {
		t.Errorf("rebuild ended: %v", rb)
	}
	during := count()
	waitCount(during + 20) // writes go on after the swap
	stop()
	wg.Wait()
	if state["ready"] != true || state["running"] != true || state["failure"] != nil {
		t.Errorf("projection state after the rebuild: %v", state)
	}
	t.Logf("%d SCIM users acknowledged before the swap, %d after", during, count()-during)

	c := client{t, base, token}
	for _, id := range acked {
		if res := c.do("GET", "/scim/v2/Users/"+id, ""); res.status != http.StatusOK {
			t.Errorf("acknowledged user %s after the rebuild: %d %s", id, res.status, res.body)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if out, _, err := runCmd(t, "projections", "check", "--data", dir); err != nil {
		t.Errorf("check after the online rebuild = %v:\n%s", err, out)
	}
	if got, want := storedAndReplayedDumps(t, dir); got != want {
		t.Error("the stored read models do not dump like a fresh replay of the log")
	}
}

// storedAndReplayedDumps returns the Dump of DIR/projections.db and that of the log replayed
// to its checkpoint in a fresh file.
func storedAndReplayedDumps(t *testing.T, dir string) (string, string) {
	t.Helper()
	o, err := openProjections(t.Context(), offlineFlags{DataDir: dir}, true, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	cp, err := o.db.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := projections.Open(filepath.Join(t.TempDir(), "fresh.db"), projections.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := projections.Replay(t.Context(), fresh, o.store, cp, nil); err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	if err := o.db.Dump(&a); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Dump(&b); err != nil {
		t.Fatal(err)
	}
	return a.String(), b.String()
}

// TestProjectionsAdmin_shows_a_stopped_projector: an event the projector cannot apply stops it;
// the operator sees the sequence and the error, /healthz says why it is unready, and an online
// rebuild is refused.
func TestProjectionsAdmin_shows_a_stopped_projector(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := startMain(t, dir)
	base := "http://" + m.Addr()
	tenant, scimToken := createTenant(t, base, "Acme")
	admin := client{t, base, adminToken}

	res := admin.do("GET", "/admin/v1/projections", "")
	st := res.json(t)
	if res.status != http.StatusOK || st["ready"] != true || st["lag"] != 0.0 || st["checkpoint"] != st["head"] || st["failure"] != nil {
		t.Fatalf("GET /admin/v1/projections = %d %s", res.status, res.body)
	}
	if res := (client{t, base, "wrong"}).do("GET", "/admin/v1/projections", ""); res.status != http.StatusUnauthorized {
		t.Errorf("without the operator token: %d", res.status)
	}

	js, err := jetstream.New(rawConn(t, m.Store))
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("idl." + tenant + ".user.0192ffffffffffffffffffffffffffff")
	msg.Header.Set("Idl-Type", "user.created")
	msg.Header.Set("Idl-Schema", "1")
	msg.Data = []byte("{not json")
	ack, err := js.PublishMsg(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "projector stopped on the bad event", func() bool { return m.Projector.Ready() != nil })
	res = admin.do("GET", "/admin/v1/projections", "")
	st = res.json(t)
	f, _ := st["failure"].(map[string]any)
	if st["ready"] != false || f == nil || f["seq"] != float64(ack.Sequence) ||
		!strings.Contains(fmt.Sprint(f["error"]), fmt.Sprintf("seq %d", ack.Sequence)) || st["lag"] != 1.0 {
		t.Errorf("state of a stopped projector = %s, want the failure at seq %d", res.body, ack.Sequence)
	}
	if res := (client{t, base, ""}).do("GET", "/healthz", ""); res.status != http.StatusServiceUnavailable ||
		!strings.Contains(string(res.body), fmt.Sprintf("seq %d", ack.Sequence)) {
		t.Errorf("/healthz = %d %s", res.status, res.body)
	}
	// Fail closed: frozen read models answer nothing that relies on them (a user deactivated
	// after the bad event would still sign in, a key revoked since would still open the API).
	for _, path := range []string{"/scim/v2/Users", "/saml/" + tenant + "/login"} {
		res := (client{t, base, scimToken}).do("GET", path, "")
		if res.status != http.StatusServiceUnavailable {
			t.Errorf("GET %s with the projector stopped = %d %s, want 503", path, res.status, res.body)
		}
	}
	res = admin.do("POST", "/admin/v1/projections/rebuild", "")
	if res.status != http.StatusConflict || !strings.Contains(string(res.body), "projections rebuild") {
		t.Errorf("online rebuild of a stopped projector = %d %s, want 409 pointing to the offline command", res.status, res.body)
	}
}
