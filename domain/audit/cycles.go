package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idledger/idledger/domain"
)

// DefaultCycleGap is the quiet time after which a company's next SCIM request starts a new sync
// cycle. Entra runs incremental cycles every 40 minutes and sends a cycle's requests seconds
// apart, so 10 minutes separates cycles without splitting one.
const DefaultCycleGap = 10 * time.Minute

// maxStartRetries bounds how often starting a cycle is decided again after losing a race.
const maxStartRetries = 5

// cycleSeen is this process's view of a company's current cycle.
type cycleSeen struct {
	n    int
	last time.Time // when its latest request arrived
}

func (a *Service) gap() time.Duration {
	if a.Gap > 0 {
		return a.Gap
	}
	return DefaultCycleGap
}

// EnterCycle returns the number of the sync cycle a company's SCIM request arriving now belongs
// to, starting a new one (appending its marker) when the company's previous request is at
// least Gap old. Starting is decided against the log, not only this process's memory: the
// last marker and the last request record, so several idledger processes agree, and of two
// that race to start the same cycle one appends (the marker asserts its subject's version)
// and the other adopts it.
func (a *Service) EnterCycle(ctx context.Context, tenant domain.TenantID) (int, error) {
	now := a.Now().UTC()
	gap := a.gap()
	if n, ok := a.fast(tenant, now, gap); ok {
		return n, nil
	}
	a.enter.Lock()
	defer a.enter.Unlock()
	if n, ok := a.fast(tenant, now, gap); ok {
		return n, nil
	}
	for range maxStartRetries {
		mark, v, err := a.lastMarker(ctx, tenant)
		if err != nil {
			return 0, err
		}
		last := mark.At
		if a.Requests != nil {
			r, err := a.Requests.LastRequest(ctx, tenant)
			switch {
			case err == nil:
				if r.At.After(last) && r.Cycle == mark.Number {
					last = r.At
				}
			case !errors.Is(err, domain.ErrNotFound):
				return 0, err
			}
		}
		if v != 0 && now.Sub(last) < gap {
			a.remember(tenant, mark.Number, now)
			return mark.Number, nil
		}
		n := mark.Number + 1
		e := domain.NewSyncCycleStarted(ctx, a.NewID(), tenant, now, n)
		_, err = a.Log.Append(ctx, domain.Batch{Tenant: tenant, Writes: []domain.Write{{Event: e, Expected: v}}})
		if errors.Is(err, domain.ErrConflict) {
			continue // another process started it: adopt it on the next round
		}
		if err != nil {
			return 0, fmt.Errorf("start sync cycle: %w", err)
		}
		a.remember(tenant, n, now)
		return n, nil
	}
	return 0, domain.Errorf(domain.ErrConflict, "sync cycle of %s is being started concurrently", tenant)
}

// fast answers from memory when this process saw the company's cycle within the gap.
func (a *Service) fast(tenant domain.TenantID, now time.Time, gap time.Duration) (int, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.seen[tenant]
	if !ok || now.Sub(c.last) >= gap {
		return 0, false
	}
	if now.After(c.last) {
		c.last = now
		a.seen[tenant] = c
	}
	return c.n, true
}

func (a *Service) remember(tenant domain.TenantID, n int, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen = make(map[domain.TenantID]cycleSeen)
	}
	a.seen[tenant] = cycleSeen{n: n, last: at}
}

// cycleMark is one decoded marker.
type cycleMark struct {
	domain.SyncCycleStarted
	Seq domain.Version
	At  time.Time
}

func markOf(e domain.Event) (cycleMark, bool) {
	d, ok := e.Data.(domain.SyncCycleStarted)
	return cycleMark{SyncCycleStarted: d, Seq: e.Version, At: e.At}, ok
}

// lastMarker returns the company's last cycle marker and the marker subject's version (0 and a
// zero marker if it has none).
func (a *Service) lastMarker(ctx context.Context, tenant domain.TenantID) (cycleMark, domain.Version, error) {
	v, err := a.Log.Version(ctx, tenant, domain.KindCycle, domain.CycleClient)
	if err != nil || v == 0 {
		return cycleMark{}, 0, err
	}
	events, err := a.History.Events(ctx, tenant, domain.KindCycle, domain.CycleClient, v-1, 1)
	if err != nil {
		return cycleMark{}, 0, err
	}
	if len(events) == 0 {
		return cycleMark{}, 0, fmt.Errorf("audit: cycle marker at seq %d of %s not readable", v, tenant)
	}
	m, _ := markOf(events[0])
	return m, v, nil
}

// markers returns all of a company's cycle markers in order.
func (a *Service) markers(ctx context.Context, tenant domain.TenantID) ([]cycleMark, error) {
	events, err := a.History.Events(ctx, tenant, domain.KindCycle, domain.CycleClient, 0, 0)
	if err != nil {
		return nil, err
	}
	out := make([]cycleMark, 0, len(events))
	for _, e := range events {
		if m, ok := markOf(e); ok {
			out = append(out, m)
		}
	}
	return out, nil
}

// cycleAt returns the number of the cycle a SCIM event at seq belongs to: that of the last
// marker before it (0 if none).
func cycleAt(marks []cycleMark, seq domain.Version) int {
	i, _ := slices.BinarySearchFunc(marks, seq, func(m cycleMark, s domain.Version) int {
		if m.Seq < s {
			return -1
		}
		return 1
	})
	if i == 0 {
		return 0
	}
	return marks[i-1].Number
}

// isProvisioningChange reports whether an event is a state change made by the SCIM client.
func isProvisioningChange(e domain.Event) bool {
	if !strings.HasPrefix(e.Actor, domain.ActorSCIMPrefix) {
		return false
	}
	switch e.Kind {
	case domain.KindUser, domain.KindGroup, domain.KindTenant:
		return true
	}
	return false
}

// A CycleSummary describes one sync cycle of a company's provisioning client.
type CycleSummary struct {
	Number int `json:"number"`
	// Start is when its first request arrived; End when its last request or change happened.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Requests counts its SCIM requests. Once their records have expired (RequestsExpired) it
	// counts the requests that changed something, which the log keeps forever.
	Requests        int  `json:"requests"`
	RequestsExpired bool `json:"requestsExpired,omitempty"`
	// Changes counts its events per type; Failures its rejected requests per HTTP status.
	Changes  map[string]int `json:"changes"`
	Failures map[string]int `json:"failures"`
}

// A CycleDetail is one cycle with a page of its changes and its rejected requests (at most
// MaxPageSize of them; Failures counts them all).
type CycleDetail struct {
	CycleSummary
	Events []TimelineEntry `json:"events"`
	// Next is the After of the next page of events, 0 on the last.
	Next           domain.Version  `json:"next,omitempty"`
	FailedRequests []RequestRecord `json:"failedRequests"`
}

// Cycles returns a company's sync cycles, newest first: at most p.Limit of them, numbered
// below p.Before if it is set. The second result is the Before of the next page (0: none).
func (a *Service) Cycles(ctx context.Context, tenant domain.TenantID, p Page) ([]CycleSummary, int, error) {
	tf, err := a.catchUp(ctx, tenant)
	if err != nil {
		return nil, 0, err
	}
	defer tf.mu.Unlock()
	all := tf.fold.cycles
	end := len(all) // the page is all[start:end]
	if p.Before > 0 {
		end = slices.IndexFunc(all, func(c *cycleTally) bool { return c.mark.Number >= p.Before })
		if end < 0 {
			end = len(all)
		}
	}
	start, next := 0, 0
	if limit := p.limit(); end > limit {
		start = end - limit
		next = all[start].mark.Number
	}
	out := make([]CycleSummary, 0, end-start)
	for i := end - 1; i >= start; i-- {
		out = append(out, all[i].summary())
	}
	return out, next, nil
}

// LastCycle returns the company's latest sync cycle, or nil if it has none.
func (a *Service) LastCycle(ctx context.Context, tenant domain.TenantID) (*CycleSummary, error) {
	tf, err := a.catchUp(ctx, tenant)
	if err != nil {
		return nil, err
	}
	defer tf.mu.Unlock()
	if len(tf.fold.cycles) == 0 {
		return nil, nil
	}
	s := tf.fold.cycles[len(tf.fold.cycles)-1].summary()
	return &s, nil
}

// Cycle returns sync cycle n with a page of its changes (those after p.After, at most p.Limit)
// and its failures, or an error wrapping domain.ErrNotFound. It reads only the page of changes
// and the failed requests (at most MaxPageSize), whatever the size of the cycle.
func (a *Service) Cycle(ctx context.Context, tenant domain.TenantID, n int, p Page) (CycleDetail, error) {
	return a.cycle(ctx, tenant, n, p, true)
}

// CycleFailures returns sync cycle n with its failures but none of its changes (Events is
// empty), or an error wrapping domain.ErrNotFound.
func (a *Service) CycleFailures(ctx context.Context, tenant domain.TenantID, n int) (CycleDetail, error) {
	return a.cycle(ctx, tenant, n, Page{}, false)
}

func (a *Service) cycle(ctx context.Context, tenant domain.TenantID, n int, p Page, events bool) (CycleDetail, error) {
	tf, err := a.catchUp(ctx, tenant)
	if err != nil {
		return CycleDetail{}, err
	}
	all := tf.fold.cycles
	i := slices.IndexFunc(all, func(c *cycleTally) bool { return c.mark.Number == n })
	if i < 0 {
		tf.mu.Unlock()
		return CycleDetail{}, domain.Errorf(domain.ErrNotFound, "sync cycle %d not found", n)
	}
	d := CycleDetail{CycleSummary: all[i].summary(), Events: []TimelineEntry{}, FailedRequests: []RequestRecord{}}
	marks := []cycleMark{all[i].mark}
	through := domain.Version(0) // the cycle's events end before the next marker, or at the head
	if i+1 < len(all) {
		through = all[i+1].mark.Seq - 1
	}
	failed := slices.Clone(all[i].failed)
	tf.mu.Unlock()

	if events {
		if err := a.changesPage(ctx, tenant, marks, through, p, &d); err != nil {
			return CycleDetail{}, err
		}
	}
	if a.Requests != nil && len(failed) > 0 {
		// Records that expired since they were counted are gone: the detail lists those kept.
		err := a.Requests.RequestsAt(ctx, tenant, failed, func(r RequestRecord) bool {
			d.FailedRequests = append(d.FailedRequests, r)
			return true
		})
		if err != nil {
			return CycleDetail{}, err
		}
	}
	return d, nil
}

// changesPage reads into d the page p of the changes of the cycle of marks[0], which end at
// log position through (0: the head).
func (a *Service) changesPage(ctx context.Context, tenant domain.TenantID, marks []cycleMark, through domain.Version, p Page, d *CycleDetail) error {
	limit := p.limit()
	err := a.History.Scan(ctx, tenant, max(marks[0].Seq, p.After), through, func(e domain.Event) bool {
		if !isProvisioningChange(e) {
			return true
		}
		if len(d.Events) == limit {
			d.Next = d.Events[limit-1].Seq
			return false
		}
		d.Events = append(d.Events, entryOf(e, marks))
		return true
	})
	if err != nil {
		return fmt.Errorf("audit: sync cycle %d: %w", marks[0].Number, err)
	}
	return nil
}

// tenantFold is a company's cycle fold; mu is held while it is caught up and read.
type tenantFold struct {
	mu      sync.Mutex
	fold    cycleFold
	folded  atomic.Bool // caught up once (read without mu, which a long first fold holds)
	pending atomic.Bool // a background catch-up is scheduled (FoldAhead)
}

// DefaultFoldAhead is the FoldAhead idledger runs with: a second's requests are a few
// hundred records and changes to fold at most, during a large initial cycle.
const DefaultFoldAhead = time.Second

// foldAheadTimeout bounds a background catch-up.
const foldAheadTimeout = 5 * time.Minute

// fold returns the company's fold entry, creating it.
func (a *Service) fold(tenant domain.TenantID) *tenantFold {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.folds == nil {
		a.folds = make(map[domain.TenantID]*tenantFold)
	}
	tf := a.folds[tenant]
	if tf == nil {
		tf = &tenantFold{}
		a.folds[tenant] = tf
	}
	return tf
}

// foldSoon schedules a background catch-up of the company's figures FoldAhead from now,
// unless one is pending already. A failed one is left to the next read or request.
func (a *Service) foldSoon(tenant domain.TenantID) {
	if a.FoldAhead <= 0 {
		return
	}
	tf := a.fold(tenant)
	if tf.pending.Swap(true) {
		return
	}
	time.AfterFunc(a.FoldAhead, func() {
		tf.pending.Store(false) // requests recorded from now on schedule the next one
		ctx, cancel := context.WithTimeout(context.Background(), foldAheadTimeout)
		defer cancel()
		_ = a.CatchUp(ctx, tenant)
	})
}

// catchUp applies to the company's fold the log messages and request records appended since
// it was last caught up, and returns it locked: the caller unlocks it once it has read it.
func (a *Service) catchUp(ctx context.Context, tenant domain.TenantID) (*tenantFold, error) {
	tf := a.fold(tenant)
	tf.mu.Lock()
	if err := a.catchUpLocked(ctx, tenant, &tf.fold); err != nil {
		tf.mu.Unlock()
		return nil, err
	}
	tf.folded.Store(true)
	return tf, nil
}

// sealedScanner is a History that can scan without opening sealed personal values
// (eventstore.Store.ScanSealed), for readers that use none.
type sealedScanner interface {
	ScanSealed(ctx context.Context, tenant domain.TenantID, after, through domain.Version, fn func(domain.Event) bool) error
}

func (a *Service) catchUpLocked(ctx context.Context, tenant domain.TenantID, f *cycleFold) error {
	// The log first: a record's cycle has its marker in the log before the record is sent.
	// The fold reads no personal value: a log that can skip opening them (sealedScanner) does.
	scan := a.History.Scan
	if s, ok := a.History.(sealedScanner); ok {
		scan = s.ScanSealed
	}
	err := scan(ctx, tenant, f.logThrough, 0, func(e domain.Event) bool {
		f.addEvent(e)
		return true
	})
	if err != nil {
		return fmt.Errorf("audit: sync cycles: %w", err)
	}
	if a.Requests == nil {
		return nil
	}
	err = a.Requests.RequestsAfter(ctx, tenant, f.recThrough, func(r RequestRecord) bool {
		f.addRecord(r)
		return true
	})
	if err != nil {
		return fmt.Errorf("audit: sync cycles: %w", err)
	}
	if err := a.forgetExpired(ctx, tenant, f); err != nil {
		return err
	}
	return a.forgetErased(ctx, tenant, f)
}

// forgetErased folds all of the company's records again if some that were folded are gone
// before their time (a person's erasure deletes the records that name them), so that the
// figures count the records kept, as a full count would.
func (a *Service) forgetErased(ctx context.Context, tenant domain.TenantID, f *cycleFold) error {
	kept, err := a.Requests.CountRequests(ctx, tenant)
	if err != nil {
		return fmt.Errorf("audit: sync cycles: %w", err)
	}
	folded := 0
	for _, c := range f.cycles {
		folded += c.records
	}
	if folded <= kept {
		return nil // records recorded since the fold may hide an erasure until the next read
	}
	for _, c := range f.cycles {
		c.resetRecords()
	}
	f.recThrough = 0
	err = a.Requests.RequestsAfter(ctx, tenant, 0, func(r RequestRecord) bool {
		f.addRecord(r)
		return true
	})
	if err != nil {
		return fmt.Errorf("audit: sync cycles: %w", err)
	}
	return nil
}

// forgetExpired brings the record figures of the cycles whose oldest records have expired
// since they were counted in line with the records still kept: a cycle whose records are all
// gone counts the requests its changes show, one whose records are partly gone is recounted.
func (a *Service) forgetExpired(ctx context.Context, tenant domain.TenantID, f *cycleFold) error {
	oldest, err := a.Requests.OldestRequest(ctx, tenant)
	if err != nil {
		return fmt.Errorf("audit: sync cycles: %w", err)
	}
	for _, c := range f.cycles {
		switch {
		case c.records == 0 || (oldest > 0 && c.firstRec >= oldest):
		case oldest == 0 || c.lastRec < oldest:
			c.resetRecords()
		default:
			c.resetRecords()
			err := a.Requests.Requests(ctx, tenant, c.mark.Number, c.mark.Number, func(r RequestRecord) bool {
				if r.Seq <= f.recThrough && r.Cycle == c.mark.Number {
					c.addRecord(r)
				}
				return true
			})
			if err != nil {
				return fmt.Errorf("audit: sync cycles: %w", err)
			}
		}
	}
	return nil
}

// CatchUp folds the company's sync cycle figures up to now: the first time, all of its log
// and request records (seconds for a large company's initial cycle), later only what was
// appended since. Every cycle read does it; a caller may do it ahead (in the background) so
// that the first read need not.
func (a *Service) CatchUp(ctx context.Context, tenant domain.TenantID) error {
	tf, err := a.catchUp(ctx, tenant)
	if err != nil {
		return err
	}
	tf.mu.Unlock()
	return nil
}

// CaughtUp reports whether the company's figures have been folded before in this process, so
// that a cycle read only folds what was appended since.
func (a *Service) CaughtUp(tenant domain.TenantID) bool {
	a.mu.Lock()
	tf := a.folds[tenant]
	a.mu.Unlock()
	return tf != nil && tf.folded.Load()
}
