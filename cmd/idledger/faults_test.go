package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/idledger/idledger/cmd/internal/app"
	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/projections"
)

// Issue #8, Faults: NATS unreachable, the data dir held or unwritable, a damaged read-model
// file, and a SIGKILL during a concurrent write load.

// natsServer runs a nats-server with JetStream in storeDir on 127.0.0.1:port (-1: random).
// Its Shutdown is the test's fault; the cleanup shuts it down again (harmless).
func natsServer(t *testing.T, storeDir string, port int) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true,
		StoreDir: storeDir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// eventually polls cond every 50 ms until it holds or limit passes.
func eventually(tb testing.TB, limit time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			if cond() {
				return
			}
			tb.Fatalf("%s: not within %s", what, limit)
		}
	}
}

// TestFault_NATSUnavailable stops the external nats-server under a running idledger: SCIM
// writes answer 503 with Retry-After and store nothing, reads keep serving from the read
// models, and once NATS is back on the same address writes and the projector resume without
// a restart.
func TestFault_NATSUnavailable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := natsServer(t, filepath.Join(dir, "nats-server"), -1)
	port := srv.Addr().(*net.TCPAddr).Port
	var logs syncBuffer
	masterKey := filepath.Join(dir, "master.key") // an external NATS needs an explicit master key
	if _, err := eventstore.WriteNewMasterKeyFile(masterKey); err != nil {
		t.Fatal(err)
	}
	m, err := app.Start(t.Context(), app.Config{DataDir: filepath.Join(dir, "data"), Listen: "127.0.0.1:0", AdminToken: adminToken,
		NATSURL: srv.ClientURL(), Replicas: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil)), MasterKeyFile: masterKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	waitReady(t, m)
	base := "http://" + m.Addr()
	_, token := createTenant(t, base, "Contoso")
	scim := client{t, base, token}
	res := scim.do("POST", "/scim/v2/Users", `{"userName":"before@contoso.example","active":true}`)
	if res.status != http.StatusCreated {
		t.Fatalf("create before the fault: %d %s", res.status, res.body)
	}
	before := res.json(t)["id"].(string)

	// The fault: the NATS server goes away.
	faultAt := time.Now()
	srv.Shutdown()
	srv.WaitForShutdown()
	eventually(t, 10*time.Second, "client notices the disconnect", func() bool {
		_, err := m.Store.Head(t.Context())
		return errors.Is(err, domain.ErrUnavailable)
	})

	writes := []struct{ method, path, body string }{
		{"POST", "/scim/v2/Users", `{"userName":"during@contoso.example","active":true}`},
		{"PATCH", "/scim/v2/Users/" + before, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`},
		{"PUT", "/scim/v2/Users/" + before, `{"userName":"before@contoso.example","active":false}`},
		{"DELETE", "/scim/v2/Users/" + before, ""},
		{"POST", "/scim/v2/Groups", `{"displayName":"During"}`},
	}
	for _, w := range writes {
		start := time.Now()
		res := scim.do(w.method, w.path, w.body)
		wantSCIMError(t, res, http.StatusServiceUnavailable, "")
		if ra, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || ra <= 0 {
			t.Errorf("%s %s: Retry-After = %q, want a positive number of seconds", w.method, w.path, res.header.Get("Retry-After"))
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s %s took %s to fail: want an immediate 503", w.method, w.path, d)
		}
		if bytes.Contains(res.body, []byte("nats")) {
			t.Errorf("503 body shows internals: %s", res.body)
		}
	}
	// Reads serve from the read models.
	if res := scim.do("GET", "/scim/v2/Users/"+before, ""); res.status != http.StatusOK {
		t.Errorf("GET by id during the fault: %d %s", res.status, res.body)
	}
	if res := scim.do("GET", filterQuery(`userName eq "before@contoso.example"`), ""); res.status != http.StatusOK || res.json(t)["totalResults"] != float64(1) {
		t.Errorf("filter during the fault: %d %s", res.status, res.body)
	}

	// NATS comes back on the same address and store: service resumes without a restart.
	natsServer(t, filepath.Join(dir, "nats-server"), port)
	restartAt := time.Now()
	var after string
	eventually(t, 20*time.Second, "a SCIM create succeeds again", func() bool {
		res := scim.do("POST", "/scim/v2/Users", `{"userName":"after@contoso.example","active":true}`)
		if res.status == http.StatusCreated {
			after = res.json(t)["id"].(string)
			return true
		}
		if res.status != http.StatusServiceUnavailable {
			t.Fatalf("create after the fault: %d %s", res.status, res.body)
		}
		return false
	})
	t.Logf("outage of %s; writes resumed %s after NATS restarted", restartAt.Sub(faultAt).Round(time.Millisecond),
		time.Since(restartAt).Round(time.Millisecond))
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "projector") || strings.Contains(line, "NATS") {
			t.Log(line)
		}
	}
	// Read-your-writes holds again: the projector resubscribed from its checkpoint.
	if res := scim.do("GET", "/scim/v2/Users/"+after, ""); res.status != http.StatusOK {
		t.Errorf("GET the user written after the fault: %d %s", res.status, res.body)
	}
	if res := scim.do("GET", filterQuery(`userName eq "during@contoso.example"`), ""); res.json(t)["totalResults"] != float64(0) {
		t.Errorf("a write refused with 503 was stored: %s", res.body)
	}
	eventually(t, 10*time.Second, "projector ready", func() bool { return m.Projector.Ready() == nil })
	if st := m.Projector.Status(t.Context()); st.Failure != nil {
		t.Errorf("the projector failed closed on a transient fault: %v", st.Failure.Err)
	}
	if res := (client{t, base, ""}).do("GET", "/healthz", ""); res.status != http.StatusOK {
		t.Errorf("/healthz after the fault: %d %s", res.status, res.body)
	}
}

// dirState lists every file under dir with its size, mode and modification time.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d %s %d\n", strings.TrimPrefix(path, dir), fi.Size(), fi.Mode(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestFault_DataDirHeld starts a second server on a running server's data dir: it refuses
// with a clear error and touches nothing.
func TestFault_DataDirHeld(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := startMain(t, dir)
	base := "http://" + first.Addr()
	createTenant(t, base, "Contoso")
	// Let the first server go quiet, then compare the files before and after the second start.
	first.Close()
	first = startMain(t, dir)
	_ = first
	// Let the server go quiet: its files (DIR/nats included) unchanged for 200 ms.
	var stateBefore string
	changed := time.Now()
	eventually(t, 10*time.Second, "the first server's files unchanged for 200 ms", func() bool {
		if s := dirState(t, dir); s != stateBefore {
			stateBefore, changed = s, time.Now()
		}
		return time.Since(changed) >= 200*time.Millisecond
	})
	second, err := app.Start(t.Context(), app.Config{DataDir: dir, Listen: "127.0.0.1:0", AdminToken: adminToken, NoSync: true})
	if err == nil {
		second.Close()
		t.Fatal("a second server started on a data dir in use")
	}
	if !errors.Is(err, projections.ErrLocked) || !strings.Contains(err.Error(), "another process") {
		t.Errorf("error = %v, want one saying the dir is in use by another process", err)
	}
	t.Logf("second server: %v", err)
	if after := dirState(t, dir); after != stateBefore {
		t.Errorf("the refused start changed the data dir:\nbefore:\n%s\nafter:\n%s", stateBefore, after)
	}
}

// TestFault_DataDirUnwritable starts a server on a data dir it may not write to.
func TestFault_DataDirUnwritable(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("running as root: file modes do not stop root from writing, so an unwritable dir cannot be simulated")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	before := dirState(t, dir)
	m, err := app.Start(t.Context(), app.Config{DataDir: dir, Listen: "127.0.0.1:0", AdminToken: adminToken, NoSync: true})
	if err == nil {
		m.Close()
		t.Fatal("a server started on an unwritable data dir")
	}
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), dir) {
		t.Errorf("error = %v, want a permission error naming %s", err, dir)
	}
	if after := dirState(t, dir); after != before {
		t.Errorf("the refused start changed the data dir")
	}
}

// TestFault_CorruptProjections damages projections.db between two runs: the next start detects
// it, moves it aside and rebuilds the read models from the log.
func TestFault_CorruptProjections(t *testing.T) {
	t.Parallel()
	damage := map[string]func(t *testing.T, path string){
		"MetaPagesOverwritten": func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, 8192), 0); err != nil {
				t.Fatal(err)
			}
		},
		"Truncated": func(t *testing.T, path string) {
			if err := os.Truncate(path, 16<<10); err != nil {
				t.Fatal(err)
			}
		},
		"NotBbolt": func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("this is not a database\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, fn := range damage {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			m := startMain(t, dir)
			base := "http://" + m.Addr()
			_, token := createTenant(t, base, "Contoso")
			scim := client{t, base, token}
			var ids []string
			for i := range 50 {
				res := scim.do("POST", "/scim/v2/Users", fmt.Sprintf(`{"userName":"u%d@contoso.example","active":true}`, i))
				if res.status != http.StatusCreated {
					t.Fatalf("create: %d %s", res.status, res.body)
				}
				ids = append(ids, res.json(t)["id"].(string))
			}
			want := dumpFile(t, closeAndPath(t, m))
			path := filepath.Join(dir, "projections.db")
			fn(t, path)
			if _, err := projections.Open(path, projections.Options{}); !errors.Is(err, projections.ErrCorrupt) {
				t.Fatalf("projections.Open of the damaged file: %v, want ErrCorrupt", err)
			}

			var logs syncBuffer
			m2, err := app.Start(t.Context(), app.Config{DataDir: dir, Listen: "127.0.0.1:0", AdminToken: adminToken, NoSync: true,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m2.Close() })
			waitReady(t, m2)
			scim.base = "http://" + m2.Addr()
			for _, id := range ids {
				if res := scim.do("GET", "/scim/v2/Users/"+id, ""); res.status != http.StatusOK {
					t.Fatalf("after the rebuild GET %s: %d", id, res.status)
				}
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 {
				t.Errorf("damaged file kept as %v, want one projections.db.corrupt-<time>", aside)
			}
			if !strings.Contains(logs.String(), "damaged") {
				t.Errorf("the log does not say the file was damaged:\n%s", logs.String())
			}
			if got := dumpFile(t, closeAndPath(t, m2)); got != want {
				t.Errorf("the rebuilt read models differ from the ones before the damage")
			}
		})
	}
}

// closeAndPath stops m and returns its projections file.
func closeAndPath(t *testing.T, m *app.Server) string {
	t.Helper()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(m.DataDir, "projections.db")
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// crashChildEnv switches TestCrashChild on in a subprocess: the data dir.
const crashChildEnv = "IDLEDGER_CRASH_CHILD"

// TestCrashChild is the server of TestCrash_KilledDuringWrites; it skips in a normal run. It
// runs the server (app.Start) on the embedded NATS with fsync before every ack (as `idledger
// serve` does), prints "addr <host:port>" and serves until it is killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("the subprocess of TestCrash_KilledDuringWrites")
	}
	m, err := app.Start(context.Background(), app.Config{DataDir: dir, Listen: "127.0.0.1:0", AdminToken: adminToken})
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, m)
	fmt.Fprintf(os.Stdout, "addr %s\n", m.Addr())
	select {}
}

// TestCrash_KilledDuringWrites kills a server subprocess with SIGKILL while 8 writers create
// users over HTTP, restarts on the same data dir, and checks that every create answered 201 is
// there exactly once (by id, by userName filter, and as one user.created in the log) and that
// `idledger projections check` finds the read models equal to the log.
func TestCrash_KilledDuringWrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "addr "); ok {
				addrCh <- a
			}
		}
		io.Copy(io.Discard, out)
	}()
	var base string
	select {
	case a := <-addrCh:
		base = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatalf("the child did not start:\n%s", stderr.String())
	}
	tenant, token := createTenant(t, base, "Contoso")

	type acked struct{ id, userName string }
	var (
		mu      sync.Mutex
		acks    []acked
		tried   atomic.Int64
		killed  = make(chan struct{})
		writers sync.WaitGroup
	)
	httpc := &http.Client{Timeout: 30 * time.Second}
	const nWriters = 8
	for w := range nWriters {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; ; i++ {
				name := fmt.Sprintf("w%d-%d@crash.example", w, i)
				req, _ := http.NewRequest("POST", base+"/scim/v2/Users", strings.NewReader(
					fmt.Sprintf(`{"userName":%q,"active":true,"displayName":"Writer %d"}`, name, w)))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/scim+json")
				tried.Add(1)
				res, err := httpc.Do(req)
				if err != nil {
					select {
					case <-killed:
						return // the server is gone: this write's outcome is unknown, never acknowledged
					default:
						t.Errorf("create %s before the kill: %v", name, err)
						return
					}
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode == http.StatusCreated {
					var u struct{ ID string }
					if jerr := json.Unmarshal(body, &u); jerr != nil || u.ID == "" {
						t.Errorf("201 without an id: %s", body)
						return
					}
					mu.Lock()
					acks = append(acks, acked{u.ID, name})
					mu.Unlock()
				} else {
					select {
					case <-killed:
						return
					default:
						t.Errorf("create %s: %d %s", name, res.StatusCode, body)
						return
					}
				}
			}
		}()
	}
	// Kill once the load runs at full speed, at a point that is not a request boundary.
	eventually(t, 30*time.Second, "200 acknowledged creates", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acks) >= 200
	})
	// A random delay is the point here, not a wait for a condition: the kill must land at a
	// random point of a write, not right after an acknowledgement the test observed.
	time.Sleep(time.Duration(time.Now().UnixNano()%50) * time.Millisecond)
	killAt := time.Now()
	close(killed)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	writers.Wait()
	mu.Lock()
	n := len(acks)
	mu.Unlock()
	t.Logf("SIGKILL after %d acknowledged creates of %d sent by %d writers", n, tried.Load(), nWriters)

	// Restart on the same data dir (in-process), and check every acknowledged write.
	m := startMain(t, dir)
	t.Logf("restarted and caught up in %s", time.Since(killAt).Round(time.Millisecond))
	scim := client{t, "http://" + m.Addr(), token}
	for _, a := range acks {
		res := scim.do("GET", "/scim/v2/Users/"+a.id, "")
		if res.status != http.StatusOK || res.json(t)["userName"] != a.userName {
			t.Errorf("acknowledged %s (%s) after the crash: %d %s", a.userName, a.id, res.status, res.body)
			continue
		}
		res = scim.do("GET", filterQuery(fmt.Sprintf("userName eq %q", a.userName)), "")
		if list := res.json(t); list["totalResults"] != float64(1) {
			t.Errorf("filter %s after the crash: %s", a.userName, res.body)
		}
	}
	created := map[string]int{}
	err = m.Store.Scan(t.Context(), domain.TenantID(tenant), 0, 0, func(e domain.Event) bool {
		if e.Type == domain.EventUserCreated {
			switch d := e.Data.(type) {
			case domain.UserCreated:
				created[fmt.Sprint(d.Attributes["userName"])]++
			case *domain.UserCreated:
				created[fmt.Sprint(d.Attributes["userName"])]++
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, a := range acks {
		if c := created[a.userName]; c != 1 {
			lost++
			t.Errorf("the log holds %d user.created for acknowledged %s, want 1", c, a.userName)
		}
	}
	t.Logf("log holds %d user.created (%d acknowledged, %d unacknowledged but stored); acknowledged writes lost: %d",
		len(created), n, len(created)-n, lost)

	// `idledger projections check`, in-process, on the stopped server's dir.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	var stdout, errOut bytes.Buffer
	if err := run(t.Context(), []string{"projections", "check", "--data", dir}, &stdout, &errOut); err != nil {
		t.Fatalf("projections check: %v\n%s%s", err, stdout.String(), errOut.String())
	}
	if !strings.Contains(stdout.String(), "projections match the log") {
		t.Errorf("projections check: %s", stdout.String())
	}
}
