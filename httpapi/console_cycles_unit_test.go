package httpapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
)

// TestConsoleCycles_StaleWhileRevalidate: the first view waits for the figure; later views
// within cycleFreshness use it without computing; an older figure is answered at once while one
// refresh (never two) runs; a slow computation is repeated less often; a failed refresh keeps
// the last figure.
func TestConsoleCycles_StaleWhileRevalidate(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	cc := newConsoleCycles(slog.New(slog.NewTextHandler(io.Discard, nil)))
	cc.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	key := cycleFigure{domain.TenantID("acme"), "last"}

	calls := 0
	release := make(chan struct{})
	result, fail := 1, false
	compute := func(context.Context) (any, error) {
		<-release
		calls++ // computations never overlap (checked below), so no lock
		if fail {
			return nil, errors.New("log unreachable")
		}
		return result, nil
	}
	ctx := t.Context()
	get := func(cc *consoleCycles, key cycleFigure, compute func(context.Context) (any, error)) (any, bool) {
		return cc.get(ctx, key, compute)
	}

	// The first view waits cycleFirstWait at most: not ready while the computation runs.
	if v, ready := cc.get(ctx, key, compute); v != nil || ready {
		t.Fatalf("first view during the first computation: %v, %v", v, ready)
	}
	release <- struct{}{}
	waitDone(t, cc, key)
	if v, ready := get(cc, key, compute); v != 1 || !ready || calls != 1 {
		t.Fatalf("fresh view: %v after %d computations, want 1 after 1", v, calls)
	}

	advance(cycleFreshness)
	result = 2
	if v, _ := get(cc, key, compute); v != 1 {
		t.Fatalf("stale view: %v, want the old figure 1 at once", v)
	}
	if v, _ := get(cc, key, compute); v != 1 { // the refresh is still running: no second one
		t.Fatalf("stale view during the refresh: %v", v)
	}
	release <- struct{}{}
	waitDone(t, cc, key)
	if v, _ := get(cc, key, compute); v != 2 || calls != 2 {
		t.Fatalf("after the refresh: %v after %d computations, want 2 after 2", v, calls)
	}

	// A computation that took long is refreshed less often.
	advance(cycleFreshness)
	slow := func(ctx context.Context) (any, error) { advance(time.Second); return compute(ctx) }
	get(cc, key, slow)
	release <- struct{}{}
	waitDone(t, cc, key)
	advance(cycleFreshness)
	get(cc, key, compute)
	cc.mu.Lock()
	refreshing := cc.entries[key].running != nil
	cc.mu.Unlock()
	if refreshing {
		t.Fatal("a figure that took 1 s to compute was refreshed 3 s later, not 10 s")
	}
	advance(cycleCostFactor*time.Second - cycleFreshness)
	fail = true
	get(cc, key, compute)
	release <- struct{}{}
	waitDone(t, cc, key)
	if v, _ := get(cc, key, compute); v != 2 {
		t.Fatalf("after a failed refresh: %v, want the last figure 2", v)
	}
}

// waitDone waits until no computation of key runs.
func waitDone(t *testing.T, cc *consoleCycles, key cycleFigure) {
	t.Helper()
	cc.mu.Lock()
	running := cc.entries[key].running
	cc.mu.Unlock()
	if running != nil {
		select {
		case <-running:
		case <-time.After(10 * time.Second):
			t.Fatal("the refresh did not end")
		}
	}
}
