package projections_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/projections"
)

// syncBuffer is a log sink safe for concurrent writes.
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

// mustMatchLog fails unless db holds exactly the log replayed up to its checkpoint.
func mustMatchLog(tb testing.TB, db *projections.DB, src domain.EventSource) domain.Version {
	tb.Helper()
	cp, err := db.Checkpoint()
	if err != nil {
		tb.Fatal(err)
	}
	fresh := replayed(tb, src, cp)
	diffs, n, err := projections.Diff(db, fresh, 5)
	if err != nil {
		tb.Fatal(err)
	}
	if n != 0 {
		tb.Errorf("the read models differ from the log replayed to %d in %d rows, first: %+v", cp, n, diffs)
	}
	if a, b := dump(tb, db), dump(tb, fresh); a != b {
		tb.Errorf("Dump differs from a fresh replay's although Diff found nothing")
	}
	return cp
}

func TestProjector_Rebuild(t *testing.T) {
	t.Parallel()

	t.Run("offline_replaces_a_damaged_file_with_the_log_replayed", func(t *testing.T) {
		t.Parallel()
		store := mustOpenStore(t)
		svc := newService(store)
		tenant, users := populate(t, svc, 20)
		h := head(t, store)
		path := filepath.Join(t.TempDir(), "projections.db")
		db := mustOpenDBAt(t, path)
		r := startProjector(t, db, store)
		r.waitFor(t, h)
		r.Stop()
		closeDB(t, db)
		withBolt(t, path, func(tx *bolt.Tx) error { // damage: a stray row, a lost user
			if err := tx.Bucket([]byte("users")).Put([]byte("zz/stray"), []byte(`{}`)); err != nil {
				return err
			}
			return tx.Bucket([]byte("users")).Delete([]byte(string(tenant.ID) + "/" + string(users[3].ID)))
		})
		db = mustOpenDBAt(t, path)
		p := projections.NewProjector(db, store, projections.ProjectorConfig{Logger: quiet})
		var calls []string
		err := p.Rebuild(t.Context(), func(done, total uint64) { calls = append(calls, fmt.Sprintf("%d/%d", done, total)) })
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%d/%d", h, h); len(calls) < 2 || calls[0] != fmt.Sprintf("0/%d", h) || calls[len(calls)-1] != want {
			t.Errorf("progress calls %v, want 0/%d first and %s last", calls, h, want)
		}
		if cp := mustMatchLog(t, db, store); cp != h || p.Checkpoint() != h {
			t.Errorf("checkpoint after rebuild = %d (projector %d), want %d", cp, p.Checkpoint(), h)
		}
		if _, err := db.FindUser(t.Context(), tenant.ID, users[3].ID); err != nil {
			t.Errorf("lost user not restored: %v", err)
		}
		if _, err := os.Stat(path + ".rebuild"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s.rebuild left behind: %v", path, err)
		}
		s := p.Status(t.Context())
		if s.Rebuild == nil || s.Rebuild.Running || s.Rebuild.Err != nil || s.Rebuild.Done != uint64(h) || s.Rebuild.Finished.IsZero() {
			t.Errorf("Status.Rebuild = %+v, want finished at %d", s.Rebuild, h)
		}
		// The swapped-in file is the one at the path: it survives a reopen.
		closeDB(t, db)
		db = mustOpenDBAt(t, path)
		mustMatchLog(t, db, store)
	})

	t.Run("online_loses_no_write_and_readers_never_miss", func(t *testing.T) {
		t.Parallel()
		store := mustOpenStore(t)
		svc := newService(store)
		tenant, before := populate(t, svc, 300) // > a batch, so the copy has work to do
		db := MustOpenDB(t)
		r := startProjector(t, db, store)
		r.waitFor(t, head(t, store))
		svc.Read, svc.Sync = db, r.WaitFor

		ctx, stop := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		var mu sync.Mutex
		var written []domain.User
		var n atomic.Int64
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					u, err := svc.CreateUser(context.Background(), domain.OriginSystem, tenant.ID, map[string]any{"userName": fmt.Sprintf("w%d-%d", w, i)})
					if err != nil {
						t.Errorf("CreateUser during rebuild: %v", err)
						return
					}
					r.waitFor(t, u.Version)
					if _, err := db.FindUser(context.Background(), tenant.ID, u.ID); err != nil {
						t.Errorf("acknowledged user %s not readable: %v", u.ID, err)
					}
					mu.Lock()
					written = append(written, u)
					mu.Unlock()
					n.Add(1)
				}
			})
		}
		wg.Go(func() { // readers see every user that was there before, throughout
			for i := 0; ctx.Err() == nil; i++ {
				u := before[i%len(before)]
				if _, err := db.FindUserByUserName(context.Background(), tenant.ID, u.UserName()); err != nil {
					t.Errorf("reader: %s: %v", u.UserName(), err)
					return
				}
			}
		})
		eventually(t, 30*time.Second, "20 users written before the rebuild", func() bool { return n.Load() >= 20 })
		if err := r.Rebuild(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
		after := n.Load()
		// Writes go on after the swap.
		eventually(t, 30*time.Second, "20 users written after the swap", func() bool { return n.Load() >= after+20 })
		stop()
		wg.Wait()
		r.waitFor(t, head(t, store))
		if err := r.Ready(); err != nil {
			t.Errorf("Ready after rebuild = %v", err)
		}
		for _, u := range append(before, written...) {
			if got, err := db.FindUser(t.Context(), tenant.ID, u.ID); err != nil || got.Version != u.Version {
				t.Errorf("after rebuild FindUser(%s) = v%d, %v; want v%d", u.ID, got.Version, err, u.Version)
			}
		}
		t.Logf("%d users written during the rebuild, %d after the swap", after, n.Load()-after)
		r.Stop()
		mustMatchLog(t, db, store)
	})

	t.Run("one_at_a_time", func(t *testing.T) {
		t.Parallel()
		store := mustOpenStore(t)
		populate(t, newService(store), 3)
		db := MustOpenDB(t)
		r := startProjector(t, db, store)
		r.waitFor(t, head(t, store))
		inside, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		done := make(chan error, 1)
		go func() {
			done <- r.Rebuild(t.Context(), func(uint64, uint64) {
				once.Do(func() { close(inside); <-release })
			})
		}()
		<-inside
		if err := r.Rebuild(t.Context(), nil); !errors.Is(err, projections.ErrRebuilding) || !errors.Is(err, domain.ErrConflict) {
			t.Errorf("second Rebuild = %v, want ErrRebuilding (a conflict)", err)
		}
		if err := r.StartRebuild(); !errors.Is(err, projections.ErrRebuilding) {
			t.Errorf("StartRebuild during a rebuild = %v, want ErrRebuilding", err)
		}
		if s := r.Status(t.Context()); s.Rebuild == nil || !s.Rebuild.Running {
			t.Errorf("Status.Rebuild = %+v, want running", s.Rebuild)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("StartRebuild_runs_in_the_background_of_Run", func(t *testing.T) {
		t.Parallel()
		store := mustOpenStore(t)
		svc := newService(store)
		populate(t, svc, 3)
		db := MustOpenDB(t)
		p := projections.NewProjector(db, store, projections.ProjectorConfig{Logger: quiet})
		if err := p.StartRebuild(); !errors.Is(err, domain.ErrConflict) {
			t.Errorf("StartRebuild before Run = %v, want ErrConflict", err)
		}
		r := startProjector(t, db, store)
		r.waitFor(t, head(t, store))
		if err := r.StartRebuild(); err != nil {
			t.Fatal(err)
		}
		var s projections.Status
		eventually(t, 10*time.Second, "background rebuild finished", func() bool {
			s = r.Status(t.Context())
			return s.Rebuild != nil && !s.Rebuild.Running
		})
		if s.Rebuild.Err != nil {
			t.Fatalf("background rebuild: %v", s.Rebuild.Err)
		}
		r.Stop()
		mustMatchLog(t, db, store)
	})

	t.Run("a_failing_event_abandons_it_and_the_old_file_stays", func(t *testing.T) {
		t.Parallel()
		store := mustOpenStore(t)
		tenant, _ := populate(t, newService(store), 3)
		db := MustOpenDB(t)
		r := startProjector(t, db, store)
		h := head(t, store)
		r.waitFor(t, h)
		bad := publishUndecodable(t, store, tenant.ID, "0192ffffffffffffffffffffffffffff")
		<-r.done // fails closed on it
		before := dump(t, db)
		s := r.Status(t.Context())
		if s.Failure == nil || s.Failure.Seq != bad || !strings.Contains(s.Failure.Err.Error(), fmt.Sprintf("seq %d", bad)) || s.Ready == nil {
			t.Errorf("Status after failure = %+v, want the failure at seq %d", s, bad)
		}
		if err := r.StartRebuild(); !errors.Is(err, domain.ErrConflict) || !strings.Contains(err.Error(), fmt.Sprintf("seq %d", bad)) {
			t.Errorf("StartRebuild on a stopped projector = %v, want a conflict naming seq %d", err, bad)
		}
		// Offline (the projector has stopped), the same event stops the rebuild too.
		if err := r.Rebuild(t.Context(), nil); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("seq %d", bad)) {
			t.Errorf("Rebuild over the bad event = %v, want its sequence", err)
		}
		if after := dump(t, db); after != before {
			t.Error("a failed rebuild changed the file in service")
		}
		if _, err := os.Stat(db.Path() + ".rebuild"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf(".rebuild left behind: %v", err)
		}
		if s := r.Status(t.Context()); s.Rebuild == nil || s.Rebuild.Err == nil {
			t.Errorf("Status.Rebuild = %+v, want its error", s.Rebuild)
		}
	})
}

func TestProjector_logs_a_long_catch_up(t *testing.T) {
	t.Parallel()
	store := mustOpenStore(t)
	populate(t, newService(store), 300) // several batches
	h := head(t, store)
	var logs syncBuffer
	db := MustOpenDB(t)
	p := projections.NewProjector(db, store, projections.ProjectorConfig{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), ProgressInterval: time.Nanosecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer wcancel()
	if err := p.WaitFor(wctx, h); err != nil {
		t.Fatal(err)
	}
	// The projector wakes waiters when it commits, and logs the end of its catch-up just after.
	eventually(t, 10*time.Second, "the catch-up's last log line", func() bool {
		return strings.Contains(logs.String(), `"msg":"projector caught up"`)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{`"msg":"projector catching up"`, `"events_per_second":`, `"eta":`, `"msg":"projector caught up"`, fmt.Sprintf(`"head":%d`, h)} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

// TestOpen_removes_a_stale_rebuild_file: a rebuild cut short by a crash leaves
// projections.db.rebuild, a full copy of the read models; the next Open removes it, but only
// once it holds the lock on projections.db, which every running rebuild's DB holds.
func TestOpen_removes_a_stale_rebuild_file(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "projections.db")
	stale := path + ".rebuild"
	// leave writes a bbolt file at stale, as a rebuild does before it is cut short.
	leave := func(t *testing.T) {
		t.Helper()
		db, err := projections.Open(stale, projections.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		closeDB(t, db)
		if _, err := os.Stat(stale); err != nil {
			t.Fatal(err)
		}
	}

	leave(t)
	db := mustOpenDBAt(t, path)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open left the stale %s: %v", stale, err)
	}
	if _, err := db.Checkpoint(); err != nil {
		t.Errorf("the DB opened beside a stale rebuild file: %v", err)
	}

	// While the DB is open a rebuild may be writing the file: an Open that cannot take the
	// lock leaves it alone.
	leave(t)
	if other, err := projections.Open(path, projections.Options{NoSync: true}); !errors.Is(err, projections.ErrLocked) {
		if err == nil {
			other.Close()
		}
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if _, err := os.Stat(stale); err != nil {
		t.Errorf("an Open without the lock removed %s: %v", stale, err)
	}
	closeDB(t, db)
	mustOpenDBAt(t, path)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reopening left the stale %s: %v", stale, err)
	}
}
