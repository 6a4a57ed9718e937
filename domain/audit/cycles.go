package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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

// cyclesEnd returns the last log position of the cycles marks[:end]: just before the next
// marker, or 0 (the log's head) if there is none.
func cyclesEnd(marks []cycleMark, end int) domain.Version {
	if end < len(marks) {
		return marks[end].Seq - 1
	}
	return 0
}

// Cycles returns a company's sync cycles, newest first: at most p.Limit of them, numbered
// below p.Before if it is set. The second result is the Before of the next page (0: none).
func (a *Service) Cycles(ctx context.Context, tenant domain.TenantID, p Page) ([]CycleSummary, int, error) {
	all, err := a.markers(ctx, tenant)
	if err != nil {
		return nil, 0, err
	}
	end := len(all) // marks = all[start:end]
	if p.Before > 0 {
		end = slices.IndexFunc(all, func(m cycleMark) bool { return m.Number >= p.Before })
		if end < 0 {
			end = len(all)
		}
	}
	start, next := 0, 0
	if limit := p.limit(); end > limit {
		start = end - limit
		next = all[start].Number
	}
	out, err := a.summarise(ctx, tenant, all[start:end], cyclesEnd(all, end), nil, nil)
	if err != nil {
		return nil, 0, err
	}
	slices.Reverse(out)
	return out, next, nil
}

// LastCycle returns the company's latest sync cycle, or nil if it has none.
func (a *Service) LastCycle(ctx context.Context, tenant domain.TenantID) (*CycleSummary, error) {
	mark, v, err := a.lastMarker(ctx, tenant)
	if err != nil || v == 0 {
		return nil, err
	}
	cs, err := a.summarise(ctx, tenant, []cycleMark{mark}, 0, nil, nil)
	if err != nil {
		return nil, err
	}
	return &cs[0], nil
}

// Cycle returns sync cycle n with a page of its changes (those after p.After, at most p.Limit)
// and its failures, or an error wrapping domain.ErrNotFound.
func (a *Service) Cycle(ctx context.Context, tenant domain.TenantID, n int, p Page) (CycleDetail, error) {
	all, err := a.markers(ctx, tenant)
	if err != nil {
		return CycleDetail{}, err
	}
	i := slices.IndexFunc(all, func(m cycleMark) bool { return m.Number == n })
	if i < 0 {
		return CycleDetail{}, domain.Errorf(domain.ErrNotFound, "sync cycle %d not found", n)
	}
	marks := all[i : i+1]
	d := CycleDetail{Events: []TimelineEntry{}, FailedRequests: []RequestRecord{}}
	limit := p.limit()
	sums, err := a.summarise(ctx, tenant, marks, cyclesEnd(all, i+1),
		func(e domain.Event) {
			switch {
			case e.Version <= p.After:
			case len(d.Events) < limit:
				d.Events = append(d.Events, entryOf(e, marks))
			case d.Next == 0:
				d.Next = d.Events[limit-1].Seq
			}
		},
		func(r RequestRecord) {
			if r.Failed() && len(d.FailedRequests) < MaxPageSize {
				d.FailedRequests = append(d.FailedRequests, r)
			}
		})
	if err != nil {
		return CycleDetail{}, err
	}
	d.CycleSummary = sums[0]
	return d, nil
}

// summarise computes the summaries of the consecutive cycles want, whose events end at
// position through (0: the log's head). onEvent and onRecord, if set, see each change and
// record.
func (a *Service) summarise(ctx context.Context, tenant domain.TenantID, want []cycleMark, through domain.Version,
	onEvent func(domain.Event), onRecord func(RequestRecord)) ([]CycleSummary, error) {
	if len(want) == 0 {
		return []CycleSummary{}, nil
	}
	sums := make([]CycleSummary, len(want))
	index := make(map[int]int, len(want))
	requests := make([]map[string]bool, len(want)) // request ids seen in events
	for i, m := range want {
		sums[i] = CycleSummary{Number: m.Number, Start: m.At, End: m.At,
			Changes: map[string]int{}, Failures: map[string]int{}}
		index[m.Number] = i
		requests[i] = map[string]bool{}
	}
	err := a.History.Scan(ctx, tenant, want[0].Seq, through, func(e domain.Event) bool {
		if !isProvisioningChange(e) {
			return true
		}
		i, ok := index[cycleAt(want, e.Version)]
		if !ok {
			return true
		}
		s := &sums[i]
		s.Changes[e.Type]++
		if e.At.After(s.End) {
			s.End = e.At
		}
		requests[i][e.Correlation] = true
		if onEvent != nil {
			onEvent(e)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	records := make([]int, len(want))
	if a.Requests != nil {
		err := a.Requests.Requests(ctx, tenant, want[0].Number, want[len(want)-1].Number, func(r RequestRecord) bool {
			i, ok := index[r.Cycle]
			if !ok {
				return true
			}
			s := &sums[i]
			records[i]++
			if r.Failed() {
				s.Failures[fmt.Sprint(r.Status)]++
			}
			if r.At.After(s.End) {
				s.End = r.At
			}
			if onRecord != nil {
				onRecord(r)
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	for i := range sums {
		sums[i].Requests = records[i]
		if records[i] == 0 {
			// The opening request was recorded unless its record has expired (or none are
			// kept): fall back to the requests the log shows.
			sums[i].RequestsExpired = true
			sums[i].Requests = len(requests[i])
		}
	}
	return sums, nil
}
