package eventlogtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
)

// RunSource checks that the sources newSource returns keep the domain.EventSource contract:
// newSource must append the given batches, in order, to a fresh log and return a source that
// delivers that log. The batches hold only writes (no claims or guards), so every message of
// the log is one of their events.
func RunSource(t *testing.T, newSource func(t *testing.T, batches []domain.Batch) domain.EventSource) {
	t.Helper()
	for _, c := range sourceChecks {
		t.Run(c.name, func(t *testing.T) {
			f := &fixture{t: t, tenant: domain.TenantID("t" + token())}
			var batches []domain.Batch
			var ids []string
			for i := range c.batches {
				user := "u" + string(rune('a'+i%5))
				w := f.user(user, 0)
				w.NoExpect = true
				b := f.batch(w)
				if i%3 == 2 {
					g := domain.Write{Event: f.event(domain.KindGroup, "g"+user), NoExpect: true}
					b.Writes = append(b.Writes, g)
				}
				for _, w := range b.Writes {
					ids = append(ids, w.Event.ID)
				}
				batches = append(batches, b)
			}
			c.check(&sourceFixture{t: t, src: newSource(t, batches), ids: ids})
		})
	}
}

var sourceChecks = []struct {
	name    string
	batches int
	check   func(f *sourceFixture)
}{
	{"Empty", 0, checkSourceEmpty},
	{"DeliversAllInOrder", 12, checkSourceDeliversAllInOrder},
	{"After", 12, checkSourceAfter},
	{"Max", 6, checkSourceMax},
}

// sourceFixture is one check's source and the ids of the events its log holds, in order.
type sourceFixture struct {
	t   *testing.T
	src domain.EventSource
	ids []string
}

// quiet is how long a check waits to see that Next blocks when nothing is left: a negative
// result cannot be waited for by a condition.
const quiet = 50 * time.Millisecond

func (f *sourceFixture) head() domain.Version {
	f.t.Helper()
	h, err := f.src.Head(f.t.Context())
	if err != nil {
		f.t.Fatalf("Head: %v", err)
	}
	return h
}

func (f *sourceFixture) subscribe(after domain.Version) domain.Subscription {
	f.t.Helper()
	sub, err := f.src.Subscribe(f.t.Context(), after)
	if err != nil {
		f.t.Fatalf("Subscribe(%d): %v", after, err)
	}
	f.t.Cleanup(func() { sub.Close() })
	return sub
}

// readN reads n events from sub in batches of at most max.
func (f *sourceFixture) readN(sub domain.Subscription, n, max int) []domain.Event {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.t.Context(), 30*time.Second)
	defer cancel()
	var out []domain.Event
	for len(out) < n {
		events, err := sub.Next(ctx, max)
		if err != nil {
			f.t.Fatalf("Next after %d of %d events: %v", len(out), n, err)
		}
		if len(events) == 0 || len(events) > max {
			f.t.Fatalf("Next(%d) returned %d events", max, len(events))
		}
		out = append(out, events...)
	}
	return out
}

// wantBlocks checks that Next delivers nothing more and returns the context's error.
func (f *sourceFixture) wantBlocks(sub domain.Subscription) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.t.Context(), quiet)
	defer cancel()
	events, err := sub.Next(ctx, 100)
	if len(events) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		f.t.Fatalf("Next past the end = %d events, %v; want none and the context's deadline", len(events), err)
	}
}

// An empty log has head 0, and a subscription to it waits.
func checkSourceEmpty(f *sourceFixture) {
	if h := f.head(); h != 0 {
		f.t.Fatalf("Head of an empty log = %d, want 0", h)
	}
	f.wantBlocks(f.subscribe(0))
}

// A subscription from 0 delivers every event once, in log order, up to Head, then waits.
func checkSourceDeliversAllInOrder(f *sourceFixture) {
	sub := f.subscribe(0)
	got := f.readN(sub, len(f.ids), 1000)
	var last domain.Version
	for i, e := range got {
		if i >= len(f.ids) || e.ID != f.ids[i] {
			f.t.Fatalf("event %d is %q, want %q", i, e.ID, f.ids[min(i, len(f.ids)-1)])
		}
		if e.Version <= last {
			f.t.Fatalf("event %d at version %d after %d", i, e.Version, last)
		}
		if e.Data == nil {
			f.t.Fatalf("event %d (%s) has no payload", i, e.Type)
		}
		last = e.Version
	}
	if h := f.head(); h != last {
		f.t.Fatalf("Head = %d, last event at %d", h, last)
	}
	f.wantBlocks(sub)
}

// A subscription after a position delivers exactly the events after it.
func checkSourceAfter(f *sourceFixture) {
	all := f.readN(f.subscribe(0), len(f.ids), 1000)
	for _, k := range []int{0, 1, len(all) / 2, len(all) - 1} {
		sub := f.subscribe(all[k].Version)
		rest := f.readN(sub, len(all)-k-1, 1000)
		for i, e := range rest {
			if e.ID != all[k+1+i].ID {
				f.t.Fatalf("after %d: event %d is %q, want %q", all[k].Version, i, e.ID, all[k+1+i].ID)
			}
		}
		f.wantBlocks(sub)
	}
	f.wantBlocks(f.subscribe(f.head()))
}

// Next returns at most max events.
func checkSourceMax(f *sourceFixture) {
	sub := f.subscribe(0)
	got := f.readN(sub, 1, 1)
	got = append(got, f.readN(sub, len(f.ids)-1, 2)...)
	if len(got) != len(f.ids) {
		f.t.Fatalf("read %d events, want %d", len(got), len(f.ids))
	}
	f.wantBlocks(sub)
}
