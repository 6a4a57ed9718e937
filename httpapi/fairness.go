package httpapi

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// Fairness: the rate limit (ratelimit.go) counts requests, not what they cost, and one list
// request that no index answers reads, decodes and matches every user of the company. Such
// scans are what one company can slow the others with (a few dozen concurrent filters of many
// terms took another company's one-user GET from 3 ms to more than a second). Four bounds
// keep a company's scans to its share of the CPUs:
//
//   - the filter parser refuses more than 50 comparisons and 16 levels of nesting (domain/scim,
//     400 invalidFilter), which bounds the cost of one scan per resource;
//   - each company may run ScanBudget scans at once; one more answers 429 with Retry-After,
//     which Entra honours by pausing and retrying (docs/entra-scim.md §8). Entra's own queries
//     (§4.1: userName, externalId or emails eq) are index look-ups and never count;
//   - every list read runs under ReadTimeout: the read models' scan loops stop at the deadline
//     and the request answers 503 with Retry-After;
//   - within its slot, a scan parks for about a millisecond after each millisecond of work
//     (projections, scanpace.go), so that a processor it leaves idle reads the network and
//     serves the requests that arrived meanwhile; a company refused a slot within pressWindow
//     (one that keeps its slots busy and asks for more) has its scans work in quarter
//     milliseconds and park seven times as long (domain.ListQuery.Yield): another company's
//     request waits behind one for a quarter of a millisecond at most.
//
// A sorted list keeps only the matches up to its page (scim_list_rank.go) rather than
// rendering and sorting every user of the company, and a scan decodes of each user only the
// attributes its filter and sort read (domain.ListQuery.Reads): decoding every user whole made
// most of a flooded server's garbage, and the collector's pauses fell on every company.

// FairnessConfig bounds what one company's list reads may cost the others.
type FairnessConfig struct {
	// ScanBudget is how many list reads that scan (no index answers their filter, or there is
	// no filter) one company may run at once; one more answers 429 with Retry-After. Zero
	// means half the CPUs Go may use (GOMAXPROCS), at least one, so that one company's scans
	// leave the other half to the rest; negative means no limit.
	ScanBudget int
	// ReadTimeout bounds a list or search read; a scan still running then stops and the
	// request answers 503 with Retry-After. Zero means 30 s, half of Entra's own 60 s
	// timeout; negative means none.
	ReadTimeout time.Duration
}

// withDefaults fills the zero values of c.
func (c FairnessConfig) withDefaults() FairnessConfig {
	if c.ScanBudget == 0 {
		c.ScanBudget = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 30 * time.Second
	}
	return c
}

// retryAfterScan is the Retry-After (seconds) of a 429 for a full scan budget: a scan that the
// limits allow takes well under a second on a company of 10,000 users.
const retryAfterScan = 1

// pressWindow is how long after a refusal a company counts as pushing past its scan budget:
// its scans then yield more of the processor (domain.ListQuery.Yield), so that a company that
// keeps its slots busy and asks for more takes less of the machine than one that does not.
const pressWindow = 2 * time.Second

// scanBudget counts each company's running scans. It is safe for concurrent use; a nil
// scanBudget admits everything.
type scanBudget struct {
	limit int
	now   func() time.Time

	mu      sync.Mutex // guards running and refused
	running map[domain.TenantID]int
	refused map[domain.TenantID]time.Time // the last refusal of companies refused within pressWindow
}

// newScanBudget returns a budget of limit scans per company; nil if limit is negative.
func newScanBudget(limit int) *scanBudget {
	if limit < 0 {
		return nil
	}
	return &scanBudget{limit: limit, now: time.Now, running: make(map[domain.TenantID]int),
		refused: make(map[domain.TenantID]time.Time)}
}

// acquire takes one of the company's slots; false if all are taken.
func (b *scanBudget) acquire(t domain.TenantID) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running[t] >= b.limit {
		b.refused[t] = b.now()
		return false
	}
	b.running[t]++
	return true
}

// pressed reports whether the company was refused a slot within pressWindow.
func (b *scanBudget) pressed(t domain.TenantID) bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	at, ok := b.refused[t]
	if ok && b.now().Sub(at) >= pressWindow {
		delete(b.refused, t) // only companies refused lately stay in the map
		ok = false
	}
	return ok
}

// release gives back a slot acquire took.
func (b *scanBudget) release(t domain.TenantID) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running[t]--; b.running[t] <= 0 {
		delete(b.running, t) // only companies with a running scan stay in the map
	}
}

// yieldScans sets q.Yield for a company that pushes past its scan budget (scanBudget.pressed).
func (s *Server) yieldScans(c echo.Context, q *domain.ListQuery) {
	q.Yield = s.scans.pressed(tenantOf(c))
}

// admitList admits a list read of p on a resource type whose read model has the given
// indexes. A read that scans takes one of the company's scan slots, or answers 429 with
// Retry-After when none is free. Every list read gets the read deadline: admitList replaces
// c's request context with one that carries it until done. The caller must call done when the
// read and its rendering are over.
func (s *Server) admitList(c echo.Context, p listParams, indexes []string) (done func(), err error) {
	t := tenantOf(c)
	release := func() {}
	if _, indexed := p.lookup(indexes); !indexed {
		if !s.scans.acquire(t) {
			c.Response().Header().Set("Retry-After", strconv.Itoa(retryAfterScan))
			return nil, echo.NewHTTPError(http.StatusTooManyRequests,
				"too many concurrent queries that read every resource for this company (at most "+
					strconv.Itoa(s.cfg.Fairness.ScanBudget)+"); retry after "+strconv.Itoa(retryAfterScan)+
					" s, or filter with eq on an indexed attribute (id, externalId; userName or emails of users, "+
					"displayName of groups), which answers without a scan")
		}
		release = func() { s.scans.release(t) }
	}
	if s.cfg.Fairness.ReadTimeout < 0 {
		return release, nil
	}
	orig := c.Request()
	ctx, cancel := context.WithTimeout(orig.Context(), s.cfg.Fairness.ReadTimeout)
	c.SetRequest(orig.WithContext(ctx))
	return func() {
		cancel()
		c.SetRequest(orig) // POST /.search reads users, then groups: each under its own deadline
		release()
	}, nil
}

// statusClientClosed is the status recorded for a request whose client went away before the
// answer (nginx's 499): no one reads it, and it must not count as a server failure.
const statusClientClosed = 499

// readError turns a read stopped by the request's context into 503 at the deadline (with
// Retry-After, see handleError), or 499 when the client went away, and leaves other errors
// alone. A deadline is not the client's doing, so it is not a 4xx; the client may retry
// (Entra does, docs/entra-scim.md §8), and its own queries are index look-ups that reach the
// deadline only when the whole server is overloaded.
func readError(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return domain.Errorf(domain.ErrUnavailable,
			"the query did not finish in time; retry later, or filter with eq on an indexed attribute (id, externalId; "+
				"userName or emails of users, displayName of groups), which answers without a scan")
	case errors.Is(err, context.Canceled):
		return echo.NewHTTPError(statusClientClosed, "the query was stopped: the client closed the request")
	}
	return err
}
