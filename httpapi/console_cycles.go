package httpapi

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
)

// The console shows sync cycle figures on its busiest pages (the setup page's live status, polled
// every few seconds, and the provisioning log). A cycle's counts are computed from its events
// and request records (domain/audit/cycles.go): an initial cycle of 100k users is hundreds of
// thousands of them, far too many to read per page view. So the console keeps the latest
// figures per company and refreshes them in the background when they are older than
// cycleFreshness (stale-while-revalidate): a page answers at once with figures at most a few
// seconds old, and at most one computation per company and figure runs at a time.

// cycleFreshness is how old cached cycle figures may be before a view starts a refresh; a
// figure that takes long to compute is refreshed at most every cycleCostFactor times its
// computation time, so that refreshes take a tenth of a processor at most (an initial cycle of
// 10k users takes seconds to count on a busy machine).
const (
	cycleFreshness  = 3 * time.Second
	cycleCostFactor = 10
)

// cycleFirstWait is how long a view waits for figures nobody has computed yet: a small
// company's are there by then; a large one's page says they are being counted, and fills them
// in (console.js, or a refresh of the page) once they are.
const cycleFirstWait = 50 * time.Millisecond

// cycleComputeTimeout bounds one background computation.
const cycleComputeTimeout = time.Minute

// consoleCycles caches the cycle figures the console shows, per company and figure.
type consoleCycles struct {
	log     *slog.Logger
	now     func() time.Time
	mu      sync.Mutex
	entries map[cycleFigure]*cycleEntry
}

// cycleFigure names one cached figure of a company.
type cycleFigure struct {
	tenant domain.TenantID
	what   string // "last" (the last cycle's summary) or "page" (the newest cycles and the newest's detail)
}

type cycleEntry struct {
	value   any
	at      time.Time     // when value was computed; zero before the first computation ends
	took    time.Duration // how long the last computation took
	running chan struct{} // closed when the running computation ends; nil when none runs
}

func newConsoleCycles(log *slog.Logger) *consoleCycles {
	return &consoleCycles{log: log, now: time.Now, entries: make(map[cycleFigure]*cycleEntry)}
}

// get returns the cached figure, starting a background refresh when it is older than
// cycleFreshness; without any figure yet it waits for the first up to cycleFirstWait. ready is
// false while no computation has ended (the figure is then nil).
func (cc *consoleCycles) get(ctx context.Context, key cycleFigure, compute func(context.Context) (any, error)) (value any, ready bool) {
	cc.mu.Lock()
	e := cc.entries[key]
	if e == nil {
		e = &cycleEntry{}
		cc.entries[key] = e
	}
	if cc.now().Sub(e.at) >= max(cycleFreshness, cycleCostFactor*e.took) && e.running == nil {
		done := make(chan struct{})
		e.running = done
		go cc.refresh(key, e, done, compute)
	}
	value, at, running := e.value, e.at, e.running
	cc.mu.Unlock()
	if !at.IsZero() || running == nil {
		return value, true
	}
	t := time.NewTimer(cycleFirstWait)
	defer t.Stop()
	select {
	case <-running:
	case <-t.C:
	case <-ctx.Done():
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return e.value, !e.at.IsZero()
}

// refresh computes a figure outside any request (the request that started it may end first).
func (cc *consoleCycles) refresh(key cycleFigure, e *cycleEntry, done chan struct{}, compute func(context.Context) (any, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), cycleComputeTimeout)
	defer cancel()
	start := cc.now()
	v, err := compute(ctx)
	cc.mu.Lock()
	e.took = cc.now().Sub(start)
	if err != nil {
		cc.log.Warn("console: sync cycle figures not computed", "tenant", key.tenant, "figure", key.what, "err", err)
	} else {
		e.value = v
	}
	// A failure counts as a computation too: the next one waits for cycleFreshness.
	e.at = cc.now()
	e.running = nil
	cc.mu.Unlock()
	close(done)
}

// lastCycleCached is lastSyncCycle (provisioning_cycles.go) through the cache; ready is false
// while it is being computed for the first time.
func (s *Server) lastCycleCached(ctx context.Context, tenant domain.TenantID) (last *audit.CycleSummary, ready bool) {
	if s.audit == nil {
		return nil, true
	}
	v, ready := s.cycles.get(ctx, cycleFigure{tenant, "last"}, func(ctx context.Context) (any, error) {
		return s.audit.LastCycle(ctx, tenant)
	})
	last, _ = v.(*audit.CycleSummary)
	return last, ready
}

// cyclesPageData is the default view of the provisioning log: the newest cycles and the
// newest's detail.
type cyclesPageData struct {
	cycles []audit.CycleSummary
	next   int
	newest *audit.CycleDetail
}

// newestCyclesCached returns the provisioning log's default view through the cache (nil
// until it is first computed).
func (s *Server) newestCyclesCached(ctx context.Context, tenant domain.TenantID) *cyclesPageData {
	v, _ := s.cycles.get(ctx, cycleFigure{tenant, "page"}, func(ctx context.Context) (any, error) {
		return s.cyclesPage(ctx, tenant, audit.Page{Limit: cyclesPerPage}, 0)
	})
	d, _ := v.(*cyclesPageData)
	return d
}

// cyclesPerPage is the cycles the provisioning log lists per page.
const cyclesPerPage = 20

// cyclesPage computes a page of cycles and the detail of cycle n (the page's newest if 0).
func (s *Server) cyclesPage(ctx context.Context, tenant domain.TenantID, p audit.Page, n int) (*cyclesPageData, error) {
	cycles, next, err := s.audit.Cycles(ctx, tenant, p)
	if err != nil {
		return nil, err
	}
	d := &cyclesPageData{cycles: cycles, next: next}
	if n == 0 && len(cycles) > 0 {
		n = cycles[0].Number
	}
	if n > 0 {
		cd, err := s.audit.Cycle(ctx, tenant, n, audit.Page{Limit: consolePageSize})
		if err != nil {
			return nil, err
		}
		d.newest = &cd
	}
	return d, nil
}
