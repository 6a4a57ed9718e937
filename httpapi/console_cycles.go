package httpapi

import (
	"context"
	"sync"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
)

// The console shows sync cycle figures on its busiest pages (the setup page's live status, polled
// every few seconds, and the provisioning log). The audit keeps them folded incrementally
// (domain/audit/cycles_fold.go): a read folds only what was appended since the last one and
// then reads a few counters per cycle, so the pages read them directly. Only a company's first
// fold in this process reads all of its history (seconds for a large company's initial
// cycle): the console runs that one in the background, waits for it up to cycleFirstWait, and
// meanwhile says the figures are being counted (console.js, or a refresh of the page, fills
// them in once they are).

// cycleFirstWait is how long a view waits for a company's first fold.
const cycleFirstWait = 50 * time.Millisecond

// cycleFirstFoldTimeout bounds a company's first fold.
const cycleFirstFoldTimeout = 5 * time.Minute

// consoleCycles runs the first fold of each company's cycle figures, once at a time.
type consoleCycles struct {
	mu      sync.Mutex
	running map[domain.TenantID]chan struct{} // closed when the company's first fold ends
}

func newConsoleCycles() *consoleCycles {
	return &consoleCycles{running: make(map[domain.TenantID]chan struct{})}
}

// cyclesReady reports whether the company's figures can be read at once: folded before, or
// folded by the first fold this call starts (or joins) within cycleFirstWait.
func (s *Server) cyclesReady(ctx context.Context, tenant domain.TenantID) bool {
	if s.audit.CaughtUp(tenant) {
		return true
	}
	cc := s.cycles
	cc.mu.Lock()
	done := cc.running[tenant]
	if done == nil {
		done = make(chan struct{})
		cc.running[tenant] = done
		go func() {
			// Outside any request: the view that started it may end first.
			fctx, cancel := context.WithTimeout(context.Background(), cycleFirstFoldTimeout)
			defer cancel()
			if err := s.audit.CatchUp(fctx, tenant); err != nil {
				s.log.Warn("console: sync cycle figures not counted", "tenant", tenant, "err", err)
			}
			cc.mu.Lock()
			delete(cc.running, tenant)
			cc.mu.Unlock()
			close(done)
		}()
	}
	cc.mu.Unlock()
	t := time.NewTimer(cycleFirstWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
	return s.audit.CaughtUp(tenant)
}

// lastCycleRead is lastSyncCycle (provisioning_cycles.go) for the console; ready is false
// while the company's figures are being counted for the first time.
func (s *Server) lastCycleRead(ctx context.Context, tenant domain.TenantID) (last *audit.CycleSummary, ready bool) {
	if s.audit == nil {
		return nil, true
	}
	if !s.cyclesReady(ctx, tenant) {
		return nil, false
	}
	return s.lastSyncCycle(ctx, tenant), true
}

// cyclesPageData is a view of the provisioning log: a page of cycles and one cycle's detail.
type cyclesPageData struct {
	cycles []audit.CycleSummary
	next   int
	newest *audit.CycleDetail
}

// cyclesPerPage is the cycles the provisioning log lists per page.
const cyclesPerPage = 20

// cyclesPage reads a page of cycles and the detail of cycle n (the page's newest if 0); nil
// while the company's figures are being counted for the first time.
func (s *Server) cyclesPage(ctx context.Context, tenant domain.TenantID, p audit.Page, n int) (*cyclesPageData, error) {
	if !s.cyclesReady(ctx, tenant) {
		return nil, nil
	}
	cycles, next, err := s.audit.Cycles(ctx, tenant, p)
	if err != nil {
		return nil, err
	}
	d := &cyclesPageData{cycles: cycles, next: next}
	if n == 0 && len(cycles) > 0 {
		n = cycles[0].Number
	}
	if n > 0 {
		cd, err := s.audit.CycleFailures(ctx, tenant, n) // the page lists its failures, not its changes
		if err != nil {
			return nil, err
		}
		d.newest = &cd
	}
	return d, nil
}
