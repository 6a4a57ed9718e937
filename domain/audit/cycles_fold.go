package audit

import (
	"slices"
	"strconv"
	"time"

	"github.com/idledger/idledger/domain"
)

// Counting a sync cycle from scratch reads all of its events and request records: hundreds of
// thousands for the initial cycle of a large company, seconds of work. So a company's cycle
// figures are folded incrementally instead (cycleFold): each log message and each request
// record is applied once, in order, and a read first applies only what was appended since the
// last one (Service.catchUp), then answers from a few counters per cycle. The fold applies
// exactly the rules a full count would (what a cycle is: cycles.go), so the figures are the
// same.

// maxFailedKept bounds the failed requests whose positions a cycle keeps: the ones a
// [CycleDetail] lists (Failures still counts them all).
const maxFailedKept = MaxPageSize

// cycleTally is one cycle's figures as folded so far.
type cycleTally struct {
	mark     cycleMark
	changes  map[string]int
	eventEnd time.Time // latest of its marker and its changes
	// requestIDs are the distinct requests its changes carry, kept while the cycle is open (its
	// events may still grow); distinct counts them and stays once a newer cycle starts.
	requestIDs map[string]struct{}
	distinct   int

	records           int
	failures          map[string]int
	recordEnd         time.Time
	firstRec, lastRec uint64   // positions of its first and last folded record (0: none)
	failed            []uint64 // positions of its first maxFailedKept failed records
}

// cycleFold is a company's cycles folded from its log and request records up to two positions.
type cycleFold struct {
	logThrough domain.Version // last log position applied
	recThrough uint64         // last request record position applied
	cycles     []*cycleTally  // by number, ascending
}

// addEvent applies one log message of the company (in log order).
func (f *cycleFold) addEvent(e domain.Event) {
	if e.Version > f.logThrough {
		f.logThrough = e.Version
	}
	if m, ok := markOf(e); ok && e.Kind == domain.KindCycle {
		if n := len(f.cycles); n > 0 {
			f.cycles[n-1].close()
		}
		f.cycles = append(f.cycles, &cycleTally{mark: m, changes: map[string]int{}, eventEnd: m.At,
			requestIDs: map[string]struct{}{}, failures: map[string]int{}})
		return
	}
	if !isProvisioningChange(e) || len(f.cycles) == 0 {
		return // changes before the first marker belong to no cycle
	}
	c := f.cycles[len(f.cycles)-1]
	if e.Version <= c.mark.Seq {
		return
	}
	c.changes[e.Type]++
	if e.At.After(c.eventEnd) {
		c.eventEnd = e.At
	}
	if _, ok := c.requestIDs[e.Correlation]; !ok && c.requestIDs != nil {
		c.requestIDs[e.Correlation] = struct{}{}
		c.distinct++
	}
}

// close forgets the request ids of a cycle whose events are complete.
func (c *cycleTally) close() { c.requestIDs = nil }

// find returns cycle n, or nil.
func (f *cycleFold) find(n int) *cycleTally {
	i, ok := slices.BinarySearchFunc(f.cycles, n, func(c *cycleTally, n int) int { return c.mark.Number - n })
	if !ok {
		return nil
	}
	return f.cycles[i]
}

// addRecord applies one request record of the company (in record order).
func (f *cycleFold) addRecord(r RequestRecord) {
	if r.Seq > f.recThrough {
		f.recThrough = r.Seq
	}
	if c := f.find(r.Cycle); c != nil {
		c.addRecord(r)
	}
}

func (c *cycleTally) addRecord(r RequestRecord) {
	c.records++
	if c.firstRec == 0 {
		c.firstRec = r.Seq
	}
	c.lastRec = r.Seq
	if r.Failed() {
		c.failures[strconv.Itoa(r.Status)]++
		if len(c.failed) < maxFailedKept {
			c.failed = append(c.failed, r.Seq)
		}
	}
	if r.At.After(c.recordEnd) {
		c.recordEnd = r.At
	}
}

// resetRecords forgets a cycle's record figures (before they are recounted).
func (c *cycleTally) resetRecords() {
	c.records, c.failures, c.recordEnd = 0, map[string]int{}, time.Time{}
	c.firstRec, c.lastRec, c.failed = 0, 0, nil
}

// summary returns the cycle's figures as a full count of its events and kept records gives
// them.
func (c *cycleTally) summary() CycleSummary {
	s := CycleSummary{Number: c.mark.Number, Start: c.mark.At, End: c.eventEnd,
		Requests: c.records, Changes: make(map[string]int, len(c.changes)), Failures: make(map[string]int, len(c.failures))}
	for k, v := range c.changes {
		s.Changes[k] = v
	}
	for k, v := range c.failures {
		s.Failures[k] = v
	}
	if c.recordEnd.After(s.End) {
		s.End = c.recordEnd
	}
	if c.records == 0 {
		// The opening request was recorded unless its record has expired (or none are kept):
		// fall back to the requests the log shows.
		s.RequestsExpired = true
		s.Requests = c.distinct
	}
	return s
}
