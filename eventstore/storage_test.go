//go:build linux

package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
	"github.com/idledger/idledger/eventstore"
)

// mountTmpfs mounts a tmpfs of the given size (e.g. "64m") on a fresh directory and unmounts
// it when the test ends. It skips the test, saying why, when not root or when mounting fails.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("full-disk behaviour NOT tested: mounting a size-limited tmpfs needs root (CI runs as root)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("full-disk behaviour NOT tested: cannot mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// fillVolume writes a file into dir until the volume is full (ENOSPC) and returns its path.
func fillVolume(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4 << 10, 512} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill %s: %v", path, err)
				}
				break
			}
		}
	}
	return path
}

// TestStorageFull_heals_without_restart fills the volume of an embedded store whose reserve
// check is off, so that the nats-server itself meets ENOSPC and keeps the write error: appends
// answer ErrStorageFull (never half a batch), StorageFault says why, and once the filler is
// deleted appends succeed again within 10 s, with no restart, and every acknowledged append
// is in the log.
func TestStorageFull_heals_without_restart(t *testing.T) {
	t.Parallel()
	vol := mountTmpfs(t, "48m")
	s := mustOpen(t, eventstore.Config{Dir: vol, MinFreeBytes: -1})
	ctx := t.Context()
	tenant := domain.TenantID("t1")
	if _, err := s.Append(ctx, domain.Batch{Tenant: tenant, Writes: []domain.Write{{Event: tenantCreated(tenant, "ev-t")}}}); err != nil {
		t.Fatal(err)
	}
	ids := idSeq()
	n := 0
	acked := map[string]domain.Version{}
	create := func() (string, error) {
		n++
		id := fmt.Sprintf("u%05d", n)
		b := domain.Batch{Tenant: tenant, Writes: []domain.Write{{Event: userCreated(tenant, id, ids(), id+"@example.com")}}}
		if n%2 == 0 { // an atomic batch of a claim and the user; else a single message
			b.Unique = []domain.UniqueOp{{Field: "userName", Value: id + "@example.com", Holder: id}}
		}
		v, err := s.Append(ctx, b)
		if err == nil {
			acked[id] = v
		}
		return id, err
	}
	for range 20 {
		if _, err := create(); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := s.Subscribe(ctx, 0) // a reader that lives through the reload (the projector)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { sub.Close() }()
	filler := fillVolume(t, vol)

	// Appends may still fill the last pages of open files: go on until a single message
	// fails too. Every failure must be ErrStorageFull.
	failures := 0
	for range 2000 {
		_, err := create()
		if err == nil {
			continue
		}
		if !errors.Is(err, domain.ErrStorageFull) {
			t.Fatalf("append %d on a full volume = %v, want ErrStorageFull", n, err)
		}
		if failures++; failures == 1 || n%2 == 1 {
			t.Logf("append %d failed: %v", n, err)
		}
		if n%2 == 1 {
			break
		}
	}
	if failures == 0 {
		t.Fatal("no append failed on a full volume")
	}
	if err := s.StorageFault(); !errors.Is(err, domain.ErrStorageFull) {
		t.Errorf("StorageFault on a full volume = %v, want ErrStorageFull", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	eventually(t, 10*time.Second, "appends succeed again after space was freed", func() bool {
		_, err := create()
		return err == nil
	})
	t.Logf("appends resumed %s after space was freed", time.Since(freed).Round(time.Millisecond))
	if err := s.StorageFault(); err != nil {
		t.Errorf("StorageFault after recovery = %v, want nil", err)
	}
	for id, v := range acked {
		events, version, err := s.Load(ctx, tenant, domain.KindUser, id)
		if err != nil || len(events) != 1 || version != v {
			t.Errorf("acknowledged user %s (version %d): Load = %d events, version %d, %v", id, v, len(events), version, err)
		}
	}
	// The reader follows the log across the reload, resubscribing from its position if its
	// subscription ended (as the projector does on ErrUnavailable).
	var last domain.Version
	for _, v := range acked {
		last = max(last, v)
	}
	var seen domain.Version
	readCtx, cancel := context.WithTimeout(ctx, 5*time.Second) // not the seconds of missed heartbeats
	defer cancel()
	for seen < last {
		events, err := sub.Next(readCtx, 100)
		switch {
		case errors.Is(err, domain.ErrUnavailable):
			sub.Close()
			if sub, err = s.Subscribe(readCtx, seen); err != nil {
				t.Fatalf("subscribe again from %d: %v", seen, err)
			}
		case err != nil:
			t.Fatalf("reading the log after the reload, at %d of %d: %v", seen, last, err)
		}
		for _, e := range events {
			if e.Version <= seen {
				t.Fatalf("event %d delivered after %d", e.Version, seen)
			}
			seen = e.Version
		}
	}

	// Nothing half-written: every user in the log has its claim and the other way round.
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("u%05d", i)
		events, _, err := s.Load(ctx, tenant, domain.KindUser, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := acked[id]; !ok && len(events) != 0 {
			t.Errorf("user %s was refused but is in the log", id)
		}
	}
}

// TestStorageFull_request_records_heal: request records (published without waiting) that
// meet the full disk leave IDL_REQUESTS a write error the server keeps; the store notices the
// lost records and heals, so records are stored again once space is freed, without a restart
// and without any append having failed.
func TestStorageFull_request_records_heal(t *testing.T) {
	t.Parallel()
	vol := mountTmpfs(t, "48m")
	s := mustOpen(t, eventstore.Config{Dir: vol, MinFreeBytes: -1})
	ctx := t.Context()
	rec := func(i int) audit.RequestRecord {
		return audit.RequestRecord{Tenant: "t1", At: t0.Add(time.Duration(i) * time.Second), Method: "POST",
			Path: "/scim/v2/Users", Status: 201, RequestID: fmt.Sprintf("req-%05d", i), Actor: "scim"}
	}
	if err := s.RecordRequest(ctx, rec(0)); err != nil {
		t.Fatal(err)
	}
	filler := fillVolume(t, vol)
	// Records fill the last pages of open files, then are lost.
	for i := 1; i <= 3000; i++ {
		if err := s.RecordRequest(ctx, rec(i)); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			_ = s.FlushRequests(ctx)
			if s.StorageFault() != nil {
				break
			}
		}
	}
	eventually(t, 10*time.Second, "the store notices the full disk", func() bool { return s.StorageFault() != nil })
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	i := 10000
	// Records are not acknowledged writes: a flush waits up to 5 s for each lost one, so the
	// bound is wider than the appends' 10 s.
	eventually(t, 30*time.Second, "a record is stored again after space was freed", func() bool {
		i++
		if err := s.RecordRequest(ctx, rec(i)); err != nil {
			return false
		}
		_ = s.FlushRequests(ctx)
		last, err := s.LastRequest(ctx, "t1")
		return err == nil && last.RequestID == rec(i).RequestID
	})
}
