package eventstore_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/eventstore"
)

func TestRecords(t *testing.T) {
	t.Parallel()
	s := MustOpenStore(t)
	ctx := t.Context()
	r, err := s.OpenRecords(ctx, "IDL_TEST_RECORDS", "test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("CreateOnce", func(t *testing.T) {
		if err := r.Create(ctx, "a.1", []byte("one"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := r.Create(ctx, "a.1", []byte("two"), time.Minute); !errors.Is(err, domain.ErrUniqueness) {
			t.Fatalf("second create: err = %v, want ErrUniqueness", err)
		}
		v, rev, err := r.Get(ctx, "a.1")
		if err != nil || string(v) != "one" || rev == 0 {
			t.Fatalf("get = %q, %d, %v", v, rev, err)
		}
	})

	t.Run("ConcurrentCreate", func(t *testing.T) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for range 8 {
			wg.Go(func() {
				if err := r.Create(ctx, "race", []byte("x"), time.Minute); err == nil {
					mu.Lock()
					won++
					mu.Unlock()
				} else if !errors.Is(err, domain.ErrUniqueness) {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("%d creates won, want 1", won)
		}
	})

	t.Run("DeleteAtRevision", func(t *testing.T) {
		if err := r.Create(ctx, "b", []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
		_, rev, err := r.Get(ctx, "b")
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Delete(ctx, "b", rev+100); !errors.Is(err, domain.ErrConflict) {
			t.Fatalf("stale delete: err = %v, want ErrConflict", err)
		}
		if err := r.Delete(ctx, "b", rev); err != nil {
			t.Fatal(err)
		}
		if err := r.Delete(ctx, "b", rev); !errors.Is(err, domain.ErrConflict) {
			t.Fatalf("second take: err = %v, want ErrConflict", err)
		}
		if _, _, err := r.Get(ctx, "b"); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("get after delete: err = %v, want ErrNotFound", err)
		}
		if err := r.Create(ctx, "b", []byte("again"), time.Minute); err != nil {
			t.Fatalf("create after delete: %v", err)
		}
	})

	t.Run("InvalidKey", func(t *testing.T) {
		if err := r.Create(ctx, "no spaces", nil, time.Minute); !errors.Is(err, domain.ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
		if _, _, err := r.Get(ctx, "no spaces"); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})

	t.Run("Expires", func(t *testing.T) {
		if testing.Short() {
			t.Skip("waits for a record to expire")
		}
		if err := r.Create(ctx, "short", []byte("v"), time.Second); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "record gone after its TTL", func() bool {
			_, _, err := r.Get(ctx, "short")
			if err != nil && !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("Get: %v", err)
			}
			return errors.Is(err, domain.ErrNotFound)
		})
		if err := r.Create(ctx, "short", []byte("v2"), time.Minute); err != nil {
			t.Fatalf("create after expiry: %v", err)
		}
	})
}

func TestRecords_SurviveRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpen(t, eventstore.Config{Dir: dir})
	r, err := s.OpenRecords(t.Context(), eventstore.BucketSessions, "sessions", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Create(t.Context(), "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = mustOpen(t, eventstore.Config{Dir: dir})
	r, err = s.OpenRecords(t.Context(), eventstore.BucketSessions, "sessions", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if v, _, err := r.Get(t.Context(), "k"); err != nil || string(v) != "v" {
		t.Fatalf("after restart: %q, %v", v, err)
	}
}
