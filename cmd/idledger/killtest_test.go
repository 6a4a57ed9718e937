package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/observe"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/projections"
)

// killChildEnv switches TestKillChild on in a subprocess: "<nats url>|<projections file>".
const killChildEnv = "IDLEDGER_KILL_CHILD"

// TestProjector_KilledAndRestarted is the exactly-once test of issue #4: a subprocess catching up
// a 20k-event log into a projections file is killed with SIGKILL at random points, restarted
// on the same file each time, and must end with read models that dump byte for byte like an
// uninterrupted run's.
//
// The parent owns the NATS server (embedded here, over TCP on 127.0.0.1), and the children
// connect to it: what gets killed is only the projector and its bbolt file, the thing under
// test. A child owning an embedded JetStream store would be killed with it and force a store
// recovery on every restart (it does recover, but that tests nats-server, costs time and adds
// a source of flakiness that says nothing about the projector).
func TestProjector_KilledAndRestarted(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	url := startNATS(t, filepath.Join(dir, "nats"))
	store, err := eventstore.Open(ctx, eventstore.Config{URL: url, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	start := time.Now()
	n := writeKillLog(t, store)
	head, err := store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("log: %d events (%d messages) appended in %s", n, head, time.Since(start).Round(time.Millisecond))

	// The uninterrupted run: the same subprocess, never killed, alongside the killed ones.
	refPath := filepath.Join(dir, "uninterrupted.db")
	ref := startKillChild(t, url, refPath)

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("seed %d", seed)
	path := filepath.Join(dir, "killed.db")
	const kills = 5
	var cp domain.Version // the file's checkpoint before each run
	interrupted := 0
	for i := 0; i <= kills; i++ {
		runStart := time.Now()
		child := startKillChild(t, url, path)
		if i == kills {
			if err := child.finish(60 * time.Second); err != nil {
				t.Fatalf("last run: %v\n%s", err, child.output())
			}
		} else {
			// Aim each kill at a random point of what is left, spread over the kills to come,
			// then let a random few milliseconds pass so that it may land inside a commit.
			left := uint64(head - cp)
			aim := cp + domain.Version(rng.Uint64N(max(left/uint64(kills-i+1), 1))+1)
			reached, finished := child.waitFor(aim, 30*time.Second)
			time.Sleep(time.Duration(rng.IntN(4000)) * time.Microsecond)
			child.kill()
			if finished {
				t.Logf("kill %d: the run had already finished (reached %d)", i+1, reached)
			} else {
				interrupted++
				// The child wrote without fsync: its lazy-sync marker stays behind the kill.
				if _, err := os.Stat(path + ".unsynced"); err != nil {
					t.Errorf("kill %d: no lazy-sync marker next to the file: %v", i+1, err)
				}
			}
		}
		got := fileCheckpoint(t, path)
		if last := child.lastReported(); got < last {
			t.Fatalf("run %d: the file's checkpoint is %d, but the run had reported committing %d", i+1, got, last)
		}
		t.Logf("run %d: checkpoint %d → %d of %d in %s (%d batches)", i+1, cp, got, head, time.Since(runStart).Round(time.Millisecond), child.batches)
		cp = got
	}
	if interrupted < 3 {
		t.Errorf("only %d of %d kills landed while the projector was catching up", interrupted, kills)
	}
	if cp != head {
		t.Fatalf("after the last run the checkpoint is %d, want %d", cp, head)
	}
	if err := ref.finish(60 * time.Second); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, ref.output())
	}
	want := dumpFile(t, refPath)
	got := dumpFile(t, path)
	if got != want {
		t.Errorf("the read models after %d kills differ from an uninterrupted run's (%d vs %d bytes); first difference at byte %d",
			kills, len(got), len(want), firstDiff(got, want))
	}
}

// TestKillChild is the subprocess of TestProjector_KilledAndRestarted; it skips in a normal run.
// It runs the projector (lazy sync, as in production: no fsync per commit, so what a kill
// leaves is exactly what bbolt wrote to the page cache) until it has caught up with
// the log, printing "checkpoint N" after each commit and "caught up" at the end.
func TestKillChild(t *testing.T) {
	spec := os.Getenv(killChildEnv)
	if spec == "" {
		t.Skip("the subprocess of TestProjector_KilledAndRestarted")
	}
	url, path, _ := strings.Cut(spec, "|")
	ctx := context.Background()
	store, err := eventstore.Open(ctx, eventstore.Config{URL: url, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	db, err := projections.Open(path, projections.Options{LazySync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	head, err := store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := projections.NewProjector(db, store, projections.ProjectorConfig{Logger: slog.New(slog.DiscardHandler), Observer: reporter{}})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	if err := p.WaitFor(ctx, head); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(os.Stdout, "caught up")
}

// reporter prints each committed checkpoint on stdout (unbuffered: the parent reads it live).
type reporter struct{}

func (reporter) Appended(time.Duration, int, error) {}

func (reporter) Projected(b observe.ProjectedBatch) {
	fmt.Fprintf(os.Stdout, "checkpoint %d\n", b.Checkpoint)
}

// killChild is one run of TestKillChild.
type killChild struct {
	cmd      *exec.Cmd
	reports  chan domain.Version // committed checkpoints; closed at EOF
	finished chan struct{}       // closed when the child says it caught up
	out      bytes.Buffer        // everything else it printed (read it only after eof)
	last     domain.Version
	batches  int
	eof      chan struct{}
}

func startKillChild(t *testing.T, url, path string) *killChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"="+url+"|"+path)
	r, w, err := os.Pipe() // stdout and stderr together, as a terminal would show them
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	c := &killChild{cmd: cmd, reports: make(chan domain.Version, 1024), finished: make(chan struct{}), eof: make(chan struct{})}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	go func() {
		defer close(c.eof)
		defer close(c.reports)
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "checkpoint "); ok {
				n, _ := strconv.ParseUint(v, 10, 64)
				c.batches++
				c.reports <- domain.Version(n)
			} else if line == "caught up" {
				close(c.finished)
			} else {
				c.out.WriteString(line + "\n")
			}
		}
	}()
	t.Cleanup(func() { c.cmd.Process.Kill(); c.cmd.Wait() })
	return c
}

// waitFor waits until the child reports a checkpoint ≥ v or says it caught up.
func (c *killChild) waitFor(v domain.Version, limit time.Duration) (domain.Version, bool) {
	timeout := time.After(limit)
	for c.last < v {
		select {
		case r, ok := <-c.reports:
			if !ok {
				return c.last, true
			}
			c.last = r
		case <-c.finished:
			return c.last, true
		case <-timeout:
			return c.last, false
		}
	}
	return c.last, false
}

// kill sends SIGKILL and reaps the child.
func (c *killChild) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
	<-c.eof
}

// finish waits for the child to exit by itself.
func (c *killChild) finish(limit time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		<-c.eof
		return err
	case <-time.After(limit):
		c.cmd.Process.Kill()
		return fmt.Errorf("did not finish within %s", limit)
	}
}

// lastReported drains the reports and returns the last committed checkpoint the child printed.
func (c *killChild) lastReported() domain.Version {
	for r := range c.reports {
		c.last = r
	}
	return c.last
}

func (c *killChild) output() string {
	<-c.eof
	return c.out.String()
}

// startNATS runs a nats-server with JetStream in storeDir on a random local port until the
// test ends, and returns its URL.
func startNATS(t *testing.T, storeDir string) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: storeDir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv.ClientURL()
}

// dumpFile opens the projections file at path, checks it with bbolt and returns its Dump.
func dumpFile(t *testing.T, path string) string {
	t.Helper()
	db, err := projections.Open(path, projections.Options{Inspect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		t.Fatalf("bbolt check of %s: %v", path, err)
	}
	var b bytes.Buffer
	if err := db.Dump(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// fileCheckpoint opens the file a killed child left, checks it and returns its checkpoint.
func fileCheckpoint(t *testing.T, path string) domain.Version {
	t.Helper()
	db, err := projections.Open(path, projections.Options{Inspect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		t.Fatalf("bbolt check after a kill: %v", err)
	}
	cp, err := db.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// writeKillLog appends a log of three companies with users, groups, memberships, renames,
// deactivations and deletes (at least 20,000 events) in large unchecked batches, and returns
// the number of events.
func writeKillLog(t *testing.T, store *eventstore.Store) int {
	t.Helper()
	const (
		companies = 3
		users     = 4000
		groups    = 100
	)
	at := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	seq := 0
	id := func() string { seq++; return fmt.Sprintf("0192%028x", seq) }
	total := 0
	var batch []domain.Write
	var tenant domain.TenantID
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if _, err := store.Append(t.Context(), domain.Batch{Tenant: tenant, Writes: batch}); err != nil {
			t.Fatal(err)
		}
		total += len(batch)
		batch = batch[:0]
	}
	add := func(kind domain.Kind, agg, typ string, data any) {
		at = at.Add(time.Millisecond)
		batch = append(batch, domain.Write{NoExpect: true, Event: domain.Event{
			ID: id(), Tenant: tenant, Kind: kind, AggregateID: agg, Type: typ, Schema: 1,
			At: at, Actor: domain.ActorSCIMPrefix + "kill", Correlation: "kill-test", Data: data,
		}})
		if len(batch) == 1000 { // the most one atomic batch may hold
			flush()
		}
	}
	userSchemas := []string{"urn:ietf:params:scim:schemas:core:2.0:User"}
	for c := range companies {
		tenant = domain.TenantID(id())
		add(domain.KindTenant, string(tenant), domain.EventTenantCreated,
			domain.TenantCreated{Name: fmt.Sprintf("Company %d", c), SCIMTokenHash: domain.HashToken(fmt.Sprintf("token-%d", c))})
		uids := make([]string, users)
		for i := range users {
			uids[i] = id()
			add(domain.KindUser, uids[i], domain.EventUserCreated, domain.UserCreated{Schemas: userSchemas, Attributes: map[string]any{
				"userName": fmt.Sprintf("user%d@c%d.example", i, c), "active": true, "externalId": fmt.Sprintf("ext-%d", i%997),
				"emails": []any{map[string]any{"value": fmt.Sprintf("User%d@c%d.example", i, c), "primary": true}},
			}})
		}
		for i := 0; i < users; i += 5 {
			add(domain.KindUser, uids[i], domain.EventUserAttributesChanged, domain.UserChanged{Changes: []domain.Change{
				{Path: "userName", Old: fmt.Sprintf("user%d@c%d.example", i, c), New: fmt.Sprintf("renamed%d@c%d.example", i, c)}}})
		}
		for i := 1; i < users; i += 7 {
			add(domain.KindUser, uids[i], domain.EventUserDeactivated, domain.UserChanged{Changes: []domain.Change{
				{Path: "active", Old: true, New: false}}})
		}
		gids := make([]string, groups)
		for g := range groups {
			gids[g] = id()
			var members []domain.Member
			for k := range 10 {
				members = append(members, domain.Member{Value: uids[(g*37+k)%users]})
			}
			add(domain.KindGroup, gids[g], domain.EventGroupCreated, domain.GroupCreated{
				Attributes: map[string]any{"displayName": fmt.Sprintf("Group %d", g)}, Members: members})
		}
		for round := range 10 {
			for g := range groups {
				var members []domain.Member
				for k := range 5 {
					members = append(members, domain.Member{Value: uids[(g*131+round*7+k*11)%users], Display: "m"})
				}
				add(domain.KindGroup, gids[g], domain.EventGroupMembersAdded, domain.GroupMembersAdded{Members: members})
			}
		}
		for g := 0; g < groups; g += 4 {
			add(domain.KindGroup, gids[g], domain.EventGroupRenamed, domain.GroupChanged{Changes: []domain.Change{
				{Path: "displayName", Old: fmt.Sprintf("Group %d", g), New: fmt.Sprintf("Team %d", g)}}})
		}
		for g := 0; g < groups; g += 3 {
			add(domain.KindGroup, gids[g], domain.EventGroupMembersRemoved, domain.GroupMembersRemoved{
				Members: []domain.UserID{domain.UserID(uids[(g*37)%users]), domain.UserID(uids[(g*37+1)%users])}})
		}
		for i := 2; i < users; i += 11 {
			add(domain.KindUser, uids[i], domain.EventUserDeleted, domain.UserDeleted{})
		}
		for g := 5; g < groups; g += 10 {
			add(domain.KindGroup, gids[g], domain.EventGroupDeleted, domain.GroupDeleted{})
		}
		flush()
	}
	if total < 20000 {
		t.Fatalf("the log has %d events, want at least 20,000", total)
	}
	return total
}
