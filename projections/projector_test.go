package projections_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/projections"
)

// source is the real event log with a recorder in front of it: it notes where the projector
// asks to start and what it is delivered. With replay set it ignores that start and
// re-delivers the log from the beginning one event per batch, as an at-least-once transport
// may after a crash, noting the file's checkpoint before each batch.
type source struct {
	*eventstore.Store
	replay bool
	db     *projections.DB // read for checkpoints when replay is set

	mu          sync.Mutex
	after       []domain.Version // Subscribe arguments
	delivered   []domain.Version // versions handed to the projector
	checkpoints []domain.Version // the file's checkpoint before each Next (replay only)
}

func (s *source) Subscribe(ctx context.Context, after domain.Version) (domain.Subscription, error) {
	s.mu.Lock()
	s.after = append(s.after, after)
	s.mu.Unlock()
	from := after
	if s.replay {
		from = 0
	}
	sub, err := s.Store.Subscribe(ctx, from)
	if err != nil {
		return nil, err
	}
	return &recordedSub{Subscription: sub, src: s}, nil
}

type recordedSub struct {
	domain.Subscription
	src *source
}

func (r *recordedSub) Next(ctx context.Context, max int) ([]domain.Event, error) {
	if r.src.replay {
		max = 1
		cp, err := r.src.db.Checkpoint()
		if err != nil {
			return nil, err
		}
		r.src.mu.Lock()
		r.src.checkpoints = append(r.src.checkpoints, cp)
		r.src.mu.Unlock()
	}
	events, err := r.Subscription.Next(ctx, max)
	r.src.mu.Lock()
	for _, e := range events {
		r.src.delivered = append(r.src.delivered, e.Version)
	}
	r.src.mu.Unlock()
	return events, err
}

func (s *source) record() (after, delivered, checkpoints []domain.Version) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]domain.Version(nil), s.after...), append([]domain.Version(nil), s.delivered...),
		append([]domain.Version(nil), s.checkpoints...)
}

// populate creates a tenant and n users and returns them.
func populate(t *testing.T, svc *domain.Service, n int) (domain.Tenant, []domain.User) {
	t.Helper()
	tenant, _, err := svc.CreateTenant(t.Context(), "Acme")
	if err != nil {
		t.Fatal(err)
	}
	var users []domain.User
	for i := range n {
		u, err := svc.CreateUser(t.Context(), domain.OriginSystem, tenant.ID, map[string]any{"userName": fmt.Sprintf("user%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	return tenant, users
}

// snapshot reads the tenant and users back from the read model.
func snapshot(t *testing.T, db *projections.DB, tenant domain.TenantID, users []domain.User) (domain.Tenant, []domain.User) {
	t.Helper()
	tn, err := db.FindTenant(t.Context(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	var out []domain.User
	for _, u := range users {
		got, err := db.FindUser(t.Context(), tenant, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got)
	}
	return tn, out
}

// waitReady polls Ready until it reports nil; Ready has nothing to wait on.
func waitReady(t *testing.T, p *projections.Projector) {
	t.Helper()
	eventually(t, 10*time.Second, "projector ready", func() bool { return p.Ready() == nil })
}

func publishUndecodable(t *testing.T, s *eventstore.Store, tenant domain.TenantID, user string) domain.Version {
	t.Helper()
	js, err := jetstream.New(rawConn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg("idl." + string(tenant) + ".user." + user)
	m.Header.Set("Idl-Type", domain.EventUserCreated)
	m.Header.Set("Idl-Schema", "1")
	m.Data = []byte("{not json")
	ack, err := js.PublishMsg(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	return domain.Version(ack.Sequence)
}

func TestProjector(t *testing.T) {
	t.Parallel()

	t.Run("ready_reports_catching_up_then_ready", func(t *testing.T) {
		t.Parallel()
		store := mustOpenStore(t)
		populate(t, newService(store), 3)
		db := MustOpenDB(t)
		idle := projections.NewProjector(db, store, projections.ProjectorConfig{Logger: quiet}) // never started
		if err := idle.Ready(); err == nil || !strings.Contains(err.Error(), "catching up") {
			t.Errorf("Ready before Run = %v, want a catching-up error", err)
		}
		p := startProjector(t, db, store)
		waitReady(t, p.Projector)
		if cp := p.Checkpoint(); cp != head(t, store) {
			t.Errorf("ready at checkpoint %d, want the head %d", cp, head(t, store))
		}
	})

	t.Run("empty_log_is_ready_at_once", func(t *testing.T) {
		t.Parallel()
		p := startProjector(t, MustOpenDB(t), mustOpenStore(t))
		waitReady(t, p.Projector)
		if err := p.WaitFor(t.Context(), 0); err != nil {
			t.Errorf("WaitFor(0) = %v", err)
		}
	})

	t.Run("WaitFor_returns_once_visible_and_follows_live_appends", func(t *testing.T) {
		t.Parallel()
		store := mustOpenStore(t)
		svc := newService(store)
		tenant, _ := populate(t, svc, 1)
		db := MustOpenDB(t)
		p := startProjector(t, db, store)
		for i := range 3 {
			u, err := svc.CreateUser(t.Context(), domain.OriginSystem, tenant.ID, map[string]any{"userName": fmt.Sprint("live", i)})
			if err != nil {
				t.Fatal(err)
			}
			p.waitFor(t, u.Version)
			got, err := db.FindUser(t.Context(), tenant.ID, u.ID)
			if err != nil || got.Version != u.Version {
				t.Errorf("after WaitFor(%d): FindUser = %+v, %v", u.Version, got, err)
			}
		}
		if cp, _ := db.Checkpoint(); cp != head(t, store) {
			t.Errorf("checkpoint %d, want the head %d", cp, head(t, store))
		}
	})

	t.Run("restart_resumes_from_checkpoint_without_reapplying", func(t *testing.T) {
		t.Parallel()
		store := mustOpenStore(t)
		svc := newService(store)
		tenant, users := populate(t, svc, 3)
		path := filepath.Join(t.TempDir(), "projections.db")
		db := mustOpenDBAt(t, path)
		first := startProjector(t, db, store)
		h1 := head(t, store)
		first.waitFor(t, h1)
		if err := first.Stop(); err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
		tn1, us1 := snapshot(t, db, tenant.ID, users)
		closeDB(t, db)

		added, err := svc.CreateUser(t.Context(), domain.OriginSystem, tenant.ID, map[string]any{"userName": "late"})
		if err != nil {
			t.Fatal(err)
		}
		h2 := head(t, store)

		db = mustOpenDBAt(t, path)
		src := &source{Store: store}
		second := startProjector(t, db, src)
		second.waitFor(t, h2)
		after, delivered, _ := src.record()
		if !reflect.DeepEqual(after, []domain.Version{h1}) {
			t.Errorf("restarted projector subscribed after %v, want [%d]", after, h1)
		}
		for _, v := range delivered {
			if v <= h1 {
				t.Errorf("restarted projector was delivered %d, at or before its checkpoint %d", v, h1)
			}
		}
		if want := int(h2 - h1); len(delivered) != want {
			t.Errorf("delivered %v, want the %d messages after %d", delivered, want, h1)
		}
		tn2, us2 := snapshot(t, db, tenant.ID, users)
		if !reflect.DeepEqual(tn1, tn2) || !reflect.DeepEqual(us1, us2) {
			t.Errorf("restart changed existing rows:\n%+v %+v\n%+v %+v", tn1, us1, tn2, us2)
		}
		if got, err := db.FindUser(t.Context(), tenant.ID, added.ID); err != nil || got.Version != added.Version {
			t.Errorf("user added while stopped: %+v, %v", got, err)
		}
		if _, total, _ := db.ListUsers(t.Context(), tenant.ID, nil, 0, 100); total != 4 {
			t.Errorf("%d users listed, want 4", total)
		}
	})

	// WaitFor on a projector whose file already holds the sequence must return once Run has
	// read the checkpoint, even if no new event ever arrives.
	t.Run("restarted_WaitFor_for_applied_sequence_returns_without_new_events", func(t *testing.T) {
		t.Parallel()
		store := mustOpenStore(t)
		populate(t, newService(store), 2)
		path := filepath.Join(t.TempDir(), "projections.db")
		db := mustOpenDBAt(t, path)
		first := startProjector(t, db, store)
		h := head(t, store)
		first.waitFor(t, h)
		first.Stop()
		closeDB(t, db)

		db = mustOpenDBAt(t, path)
		p := projections.NewProjector(db, store, projections.ProjectorConfig{Logger: quiet})
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		waiting := make(chan error, 1)
		started := make(chan struct{})
		go func() {
			close(started)
			waiting <- p.WaitFor(ctx, h)
		}()
		<-started
		runCtx, stop := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); p.Run(runCtx) }()
		defer func() { stop(); <-done }()
		waitReady(t, p)
		if err := <-waiting; err != nil {
			t.Errorf("WaitFor(%d) with checkpoint %d loaded = %v, want nil", h, p.Checkpoint(), err)
		}
	})

	t.Run("other_schema_file_is_emptied_and_rebuilt", func(t *testing.T) {
		t.Parallel()
		store := mustOpenStore(t)
		tenant, users := populate(t, newService(store), 2)
		h := head(t, store)
		path := filepath.Join(t.TempDir(), "projections.db")
		db := mustOpenDBAt(t, path)
		first := startProjector(t, db, store)
		first.waitFor(t, h)
		first.Stop()
		_, want := snapshot(t, db, tenant.ID, users)
		closeDB(t, db)

		other := strconv.Itoa(projections.SchemaVersion + 1)
		withBolt(t, path, func(tx *bolt.Tx) error {
			if err := tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte(other)); err != nil {
				return err
			}
			return tx.Bucket([]byte("users")).Put([]byte("zz/stray"), []byte(`{"id":"stray"}`))
		})

		db = mustOpenDBAt(t, path)
		if cp, err := db.Checkpoint(); err != nil || cp != 0 {
			t.Errorf("checkpoint after schema change = %d, %v; want 0", cp, err)
		}
		if _, err := db.FindUser(t.Context(), tenant.ID, users[0].ID); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("FindUser after schema change err = %v, want ErrNotFound (emptied)", err)
		}
		if _, total, _ := db.ListUsers(t.Context(), "zz", nil, 0, 10); total != 0 {
			t.Errorf("a row of the old file survived: %d users in tenant zz", total)
		}
		second := startProjector(t, db, store)
		second.waitFor(t, h)
		if _, got := snapshot(t, db, tenant.ID, users); !reflect.DeepEqual(got, want) {
			t.Errorf("rebuilt users = %+v, want %+v", got, want)
		}
		second.Stop()
		closeDB(t, db)
		withBolt(t, path, func(tx *bolt.Tx) error {
			if got := string(tx.Bucket([]byte("meta")).Get([]byte("schema"))); got != strconv.Itoa(projections.SchemaVersion) {
				t.Errorf("meta/schema = %q after rebuild, want %d", got, projections.SchemaVersion)
			}
			return nil
		})
	})

	t.Run("undecodable_event_fails_closed", func(t *testing.T) {
		t.Parallel()
		store := mustOpenStore(t)
		svc := newService(store)
		tenant, users := populate(t, svc, 2)
		bad := publishUndecodable(t, store, tenant.ID, "0192ffffffffffffffffffffffffffff")
		later, err := svc.CreateUser(t.Context(), domain.OriginSystem, tenant.ID, map[string]any{"userName": "after-bad"})
		if err != nil {
			t.Fatal(err)
		}
		db := MustOpenDB(t)
		p := startProjector(t, db, store)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not stop on an undecodable event")
		}
		if p.err == nil || !strings.Contains(p.err.Error(), fmt.Sprintf("seq %d", bad)) {
			t.Fatalf("Run = %v, want an error naming seq %d", p.err, bad)
		}
		// Ready names the sequence without internals (it is shown on the public /healthz) and
		// still carries Run's error for errors.Is.
		if err := p.Ready(); err == nil || !errors.Is(err, p.err) || !errors.Is(err, projections.ErrStopped) ||
			!strings.Contains(err.Error(), fmt.Sprintf("seq %d", bad)) || strings.Contains(err.Error(), "invalid character") {
			t.Errorf("Ready = %v, want a safe error wrapping Run's error %v", err, p.err)
		}
		if err := p.WaitFor(t.Context(), bad-1); err != nil {
			t.Errorf("WaitFor(%d), before the bad event = %v, want nil", bad-1, err)
		}
		for _, v := range []domain.Version{bad, later.Version} {
			if err := p.WaitFor(t.Context(), v); !errors.Is(err, projections.ErrStopped) {
				t.Errorf("WaitFor(%d) = %v, want ErrStopped", v, err)
			}
		}
		if cp, _ := db.Checkpoint(); cp != bad-1 {
			t.Errorf("checkpoint = %d, want %d (the last event before the bad one)", cp, bad-1)
		}
		for _, u := range users {
			if got, err := db.FindUser(t.Context(), tenant.ID, u.ID); err != nil || got.Version != u.Version {
				t.Errorf("FindUser(%s) after failure = %+v, %v; want the last consistent state", u.ID, got, err)
			}
		}
		if _, err := db.FindUser(t.Context(), tenant.ID, later.ID); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("user appended after the bad event is visible (err %v)", err)
		}
	})

	t.Run("checkpoint_ahead_of_log_fails_closed", func(t *testing.T) {
		t.Parallel()
		store := mustOpenStore(t)
		populate(t, newService(store), 2)
		db := MustOpenDB(t)
		first := startProjector(t, db, store)
		first.waitFor(t, head(t, store))
		first.Stop()

		p := startProjector(t, db, mustOpenStore(t)) // another, empty log
		<-p.done
		if p.err == nil || !strings.Contains(p.err.Error(), "ahead of the log") {
			t.Errorf("Run = %v, want a checkpoint-ahead error", p.err)
		}
		if err := p.Ready(); err == nil {
			t.Error("Ready = nil after failure")
		}
		if err := p.WaitFor(t.Context(), head(t, store)+1); !errors.Is(err, projections.ErrStopped) {
			t.Errorf("WaitFor = %v, want ErrStopped", err)
		}
	})

	t.Run("redelivered_events_are_skipped", func(t *testing.T) {
		t.Parallel()
		store := mustOpenStore(t)
		svc := newService(store)
		tenant, users := populate(t, svc, 3)
		h1 := head(t, store)
		db := MustOpenDB(t)
		first := startProjector(t, db, store)
		first.waitFor(t, h1)
		first.Stop()
		tn1, us1 := snapshot(t, db, tenant.ID, users)

		added, err := svc.CreateUser(t.Context(), domain.OriginSystem, tenant.ID, map[string]any{"userName": "new"})
		if err != nil {
			t.Fatal(err)
		}
		h2 := head(t, store)
		src := &source{Store: store, replay: true, db: db}
		second := startProjector(t, db, src)
		second.waitFor(t, h2)
		second.Stop()

		_, delivered, checkpoints := src.record()
		if len(delivered) < int(h2) || delivered[0] != 1 {
			t.Fatalf("replaying source delivered %v, want every message from 1", delivered)
		}
		tn2, us2 := snapshot(t, db, tenant.ID, users)
		if !reflect.DeepEqual(tn1, tn2) || !reflect.DeepEqual(us1, us2) {
			t.Errorf("re-delivery changed rows:\n%+v %+v\n%+v %+v", tn1, us1, tn2, us2)
		}
		if got, err := db.FindUser(t.Context(), tenant.ID, added.ID); err != nil || got.Version != added.Version {
			t.Errorf("new user after re-delivery: %+v, %v", got, err)
		}
		if _, total, _ := db.ListUsers(t.Context(), tenant.ID, nil, 0, 100); total != 4 {
			t.Errorf("%d users after re-delivery, want 4", total)
		}
		if cp, _ := db.Checkpoint(); cp != h2 {
			t.Errorf("checkpoint = %d, want %d", cp, h2)
		}

		// A batch made only of re-delivered events must not move the checkpoint back.
		t.Run("checkpoint_never_moves_backwards", func(t *testing.T) {
			for i, cp := range checkpoints {
				if cp < h1 || (i > 0 && cp < checkpoints[i-1]) {
					t.Fatalf("file checkpoint went from %d back to %d while re-delivered events were skipped (sequence of checkpoints %v)",
						max(h1, checkpoints[max(i-1, 0)]), cp, checkpoints)
				}
			}
		})
	})
}

// withBolt opens the closed read-model file with bbolt itself and runs f in a write
// transaction.
func withBolt(t *testing.T, path string, f func(*bolt.Tx) error) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Update(f); err != nil {
		t.Fatal(err)
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

// TestProjector_RefuseWrites: a projector that trails a waiting write for longer than
// WriteLag refuses new writes until it has applied it; a failed projector refuses them too.
func TestProjector_RefuseWrites(t *testing.T) {
	t.Parallel()
	store := mustOpenStore(t)
	tenant, _ := populate(t, newService(store), 1)
	db := MustOpenDB(t)
	p := projections.NewProjector(db, store, projections.ProjectorConfig{Logger: quiet, WriteLag: 20 * time.Millisecond})
	if err := p.RefuseWrites(); err != nil {
		t.Fatalf("RefuseWrites with no write waiting = %v", err)
	}
	v := head(t, store)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := p.WaitFor(ctx, v); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor on a projector not running = %v", err)
	}
	if err := p.RefuseWrites(); err == nil || !strings.Contains(err.Error(), "trail") {
		t.Errorf("RefuseWrites after trailing a write for 50 ms = %v, want a refusal", err)
	}
	rctx, stop := context.WithCancel(context.Background())
	r := &running{Projector: p, cancel: stop, done: make(chan struct{})}
	go func() { defer close(r.done); r.err = r.Run(rctx) }()
	t.Cleanup(func() { r.Stop() })
	r.waitFor(t, v)
	if err := p.RefuseWrites(); err != nil {
		t.Errorf("RefuseWrites once caught up = %v", err)
	}
	publishUndecodable(t, store, tenant.ID, "0192ffffffffffffffffffffffffffff")
	eventually(t, 10*time.Second, "projector stopped", func() bool { return p.Ready() != nil })
	if err := p.RefuseWrites(); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("RefuseWrites of a stopped projector = %v", err)
	}
}
