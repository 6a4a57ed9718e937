package projections_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/projections"
)

// MustOpenDB opens a read-model file in a temp dir. At test end it runs bbolt's consistency
// check and closes the file (closing it earlier is fine).
func MustOpenDB(tb testing.TB) *projections.DB {
	tb.Helper()
	return mustOpenDBAt(tb, filepath.Join(tb.TempDir(), "projections.db"))
}

func mustOpenDBAt(tb testing.TB, path string) *projections.DB {
	tb.Helper()
	db, err := projections.Open(path, projections.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := db.Check(); err != nil && !errors.Is(err, berrors.ErrDatabaseNotOpen) {
			tb.Errorf("bbolt check of %s: %v", path, err)
		}
		db.Close()
	})
	return db
}

// closeDB checks and closes db, so that the file can be opened again.
func closeDB(tb testing.TB, db *projections.DB) {
	tb.Helper()
	if err := db.Check(); err != nil {
		tb.Errorf("bbolt check: %v", err)
	}
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
}

// mustOpenStore opens an event log on an embedded JetStream in a temp dir.
func mustOpenStore(tb testing.TB) *eventstore.Store {
	tb.Helper()
	s, err := eventstore.Open(tb.Context(), eventstore.Config{Dir: tb.TempDir(), NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

var quiet = slog.New(slog.DiscardHandler)

// newService returns a command service over log with a fixed clock and time-ordered ids.
func newService(log domain.EventLog) *domain.Service {
	var n atomic.Uint64
	return &domain.Service{
		Log:   log,
		Now:   func() time.Time { return time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC) },
		NewID: func() string { return fmt.Sprintf("%032x", 0x0192_0000_0000+n.Add(1)) },
	}
}

// running is a projector whose Run is in a goroutine; Stop ends it and returns Run's result.
type running struct {
	*projections.Projector
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func startProjector(tb testing.TB, db *projections.DB, src domain.EventSource) *running {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Projector: projections.NewProjector(db, src, projections.ProjectorConfig{Logger: quiet}), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = r.Run(ctx)
	}()
	tb.Cleanup(func() { r.Stop() })
	return r
}

func (r *running) Stop() error {
	r.cancel()
	<-r.done
	return r.err
}

// waitFor waits, with a bound, until the projector has applied v.
func (r *running) waitFor(tb testing.TB, v domain.Version) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 10*time.Second)
	defer cancel()
	if err := r.WaitFor(ctx, v); err != nil {
		tb.Fatalf("WaitFor(%d): %v", v, err)
	}
}

func head(tb testing.TB, s *eventstore.Store) domain.Version {
	tb.Helper()
	h, err := s.Head(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// fixture is a log with two tenants and the read model projected from it.
type fixture struct {
	db      *projections.DB
	a, b    domain.Tenant
	tokenA  string
	usersA  []domain.User // creation order; usersA[2] is inactive
	userB   domain.User
	head    domain.Version
	running *running
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	store := mustOpenStore(t)
	svc := newService(store)
	f := &fixture{}
	var err error
	if f.a, f.tokenA, err = svc.CreateTenant(ctx, "Acme"); err != nil {
		t.Fatal(err)
	}
	if f.b, _, err = svc.CreateTenant(ctx, "Beta"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		in := map[string]any{"userName": fmt.Sprintf("User%d@Acme.example", i), "active": i != 2}
		u, err := svc.CreateUser(ctx, domain.OriginSystem, f.a.ID, in)
		if err != nil {
			t.Fatal(err)
		}
		f.usersA = append(f.usersA, u)
	}
	// The same userName in another tenant is another user.
	if f.userB, err = svc.CreateUser(ctx, domain.OriginSystem, f.b.ID, map[string]any{"userName": "user0@acme.example"}); err != nil {
		t.Fatal(err)
	}
	f.head = head(t, store)
	f.db = MustOpenDB(t)
	f.running = startProjector(t, f.db, store)
	f.running.waitFor(t, f.head)
	return f
}

func TestReadModel(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()

	t.Run("checkpoint_is_last_sequence", func(t *testing.T) {
		cp, err := f.db.Checkpoint()
		if err != nil || cp != f.head {
			t.Errorf("DB.Checkpoint = %d, %v; want %d", cp, err, f.head)
		}
		if cp := f.running.Checkpoint(); cp != f.head {
			t.Errorf("Projector.Checkpoint = %d, want %d", cp, f.head)
		}
	})

	t.Run("FindTenant_and_FindTenantByTokenHash", func(t *testing.T) {
		got, err := f.db.FindTenantByTokenHash(ctx, domain.HashToken(f.tokenA))
		if err != nil || got.ID != f.a.ID || got.Name != "Acme" || got.Version != f.a.Version {
			t.Errorf("FindTenantByTokenHash = %+v, %v; want tenant %s at %d", got, err, f.a.ID, f.a.Version)
		}
		for _, hash := range []string{domain.HashToken("idl_wrong"), f.tokenA, ""} {
			if _, err := f.db.FindTenantByTokenHash(ctx, hash); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("FindTenantByTokenHash(%q) err = %v, want ErrNotFound", hash, err)
			}
		}
		if got, err := f.db.FindTenant(ctx, f.b.ID); err != nil || got.Name != "Beta" {
			t.Errorf("FindTenant(b) = %+v, %v", got, err)
		}
		if _, err := f.db.FindTenant(ctx, "nope"); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("FindTenant(unknown) err = %v, want ErrNotFound", err)
		}
	})

	t.Run("FindUser", func(t *testing.T) {
		want := f.usersA[1]
		got, err := f.db.FindUser(ctx, f.a.ID, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != want.ID || got.Tenant != f.a.ID || got.Version != want.Version || got.UserName() != want.UserName() {
			t.Errorf("FindUser = %+v, want %+v", got, want)
		}
		if _, err := f.db.FindUser(ctx, f.b.ID, want.ID); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("FindUser in another tenant err = %v, want ErrNotFound", err)
		}
	})

	t.Run("FindUserByUserName_is_case_insensitive_and_per_tenant", func(t *testing.T) {
		for _, name := range []string{"User3@Acme.example", "user3@acme.example", "USER3@ACME.EXAMPLE", " user3@acme.example "} {
			got, err := f.db.FindUserByUserName(ctx, f.a.ID, name)
			if err != nil || got.ID != f.usersA[3].ID {
				t.Errorf("FindUserByUserName(%q) = %s, %v; want %s", name, got.ID, err, f.usersA[3].ID)
			}
		}
		if got, err := f.db.FindUserByUserName(ctx, f.b.ID, "USER0@acme.example"); err != nil || got.ID != f.userB.ID {
			t.Errorf("FindUserByUserName in tenant b = %s, %v; want %s", got.ID, err, f.userB.ID)
		}
		if _, err := f.db.FindUserByUserName(ctx, f.b.ID, "user1@acme.example"); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("FindUserByUserName of a user of tenant a in tenant b: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("queries_stop_when_their_context_ends", func(t *testing.T) {
		ended, cancel := context.WithCancel(ctx)
		cancel()
		for name, q := range map[string]domain.ListQuery{
			"scan":  {Limit: -1},
			"index": {IndexAttr: "userName", IndexValue: "user1@acme.example", Limit: -1},
		} {
			if _, _, err := f.db.QueryUsers(ended, f.a.ID, q); !errors.Is(err, context.Canceled) {
				t.Errorf("QueryUsers %s with an ended context: %v, want context.Canceled", name, err)
			}
			if _, _, err := f.db.QueryGroups(ended, f.a.ID, q); err != nil {
				t.Errorf("QueryGroups %s of no candidates with an ended context: %v", name, err)
			}
		}
		if _, total, err := f.db.QueryUsers(ctx, f.a.ID, domain.ListQuery{Limit: -1}); err != nil || total != 5 {
			t.Errorf("QueryUsers with a live context: total %d, %v", total, err)
		}
	})

	t.Run("QueryUsers_decodes_what_Keep_reads_and_completes_what_it_holds", func(t *testing.T) {
		var seen []map[string]any
		var held []*domain.User
		q := domain.ListQuery{Reads: []string{"USERNAME"}, Offset: 1, Limit: 1,
			Keep: func(r domain.Resource) bool {
				u := r.(*domain.User)
				seen = append(seen, maps.Clone(u.Resource))
				return u.UserName() != "User0@Acme.example"
			},
			Hold: func(r domain.Resource) bool {
				u := r.(*domain.User)
				if u.UserName() == "User3@Acme.example" {
					held = append(held, u)
					return true
				}
				return false
			}}
		page, total, err := f.db.QueryUsers(ctx, f.a.ID, q)
		if err != nil || total != 4 || len(page) != 1 || page[0].ID != f.usersA[2].ID {
			t.Fatalf("QueryUsers = %d users, total %d, %v; want usersA[2] of 4", len(page), total, err)
		}
		if len(seen) != 5 {
			t.Fatalf("Keep saw %d users, want 5", len(seen))
		}
		for _, res := range seen {
			if len(res) != 1 || res["userName"] == nil {
				t.Errorf("Keep saw %v; want the userName only", res)
			}
		}
		// What a caller keeps (the page, what Hold held) is the whole user.
		if page[0].Resource["active"] != false || page[0].Version != f.usersA[2].Version {
			t.Errorf("page user = %+v, want the whole of usersA[2]", page[0])
		}
		if len(held) != 1 || held[0].ID != f.usersA[3].ID || held[0].Resource["active"] != true {
			t.Errorf("held = %+v, want the whole of usersA[3]", held)
		}
		// Without Reads, Keep sees whole users.
		q = domain.ListQuery{Limit: -1, Keep: func(r domain.Resource) bool { return r.(*domain.User).Resource["active"] != nil }}
		if _, total, err := f.db.QueryUsers(ctx, f.a.ID, q); err != nil || total != 5 {
			t.Errorf("QueryUsers without Reads: total %d, %v; want 5 whole users", total, err)
		}
	})

	t.Run("ListUsers_pages_in_creation_order", func(t *testing.T) {
		ids := func(us []domain.User) string {
			var s []string
			for _, u := range us {
				s = append(s, string(u.ID))
			}
			return strings.Join(s, ",")
		}
		for _, tt := range []struct {
			offset, limit int
			want          []domain.User
		}{
			{0, 10, f.usersA},
			{0, 2, f.usersA[:2]},
			{2, 2, f.usersA[2:4]},
			{4, 2, f.usersA[4:]},
			{5, 2, nil},
			{9, 2, nil},
		} {
			got, total, err := f.db.ListUsers(ctx, f.a.ID, nil, tt.offset, tt.limit)
			if err != nil || total != 5 || ids(got) != ids(tt.want) {
				t.Errorf("ListUsers(offset %d, limit %d) = [%s], total %d, %v; want [%s], total 5",
					tt.offset, tt.limit, ids(got), total, err, ids(tt.want))
			}
		}
		active := func(u *domain.User) bool { return u.Active() }
		got, total, err := f.db.ListUsers(ctx, f.a.ID, active, 1, 2)
		want := []domain.User{f.usersA[1], f.usersA[3]}
		if err != nil || total != 4 || ids(got) != ids(want) {
			t.Errorf("ListUsers(active, 1, 2) = [%s], total %d, %v; want [%s], total 4", ids(got), total, err, ids(want))
		}
		got, total, err = f.db.ListUsers(ctx, f.b.ID, nil, 0, 10)
		if err != nil || total != 1 || ids(got) != string(f.userB.ID) {
			t.Errorf("ListUsers(tenant b) = [%s], total %d, %v; want [%s]", ids(got), total, err, f.userB.ID)
		}
		if got, total, err := f.db.ListUsers(ctx, "nope", nil, 0, 10); err != nil || total != 0 || len(got) != 0 {
			t.Errorf("ListUsers(unknown tenant) = %d users, total %d, %v", len(got), total, err)
		}
	})
}
