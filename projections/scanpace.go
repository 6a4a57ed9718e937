package projections

import (
	"context"
	"time"
)

// A scan (a list read that no index answers) reads, decodes and matches every row of the
// company, for up to seconds; one company can keep one running after another (as many at once
// as httpapi's scan budget allows). Go's scheduler would give such a goroutine its processor
// back at once after runtime.Gosched (it takes the run queue before it polls the network), so
// on a machine of two processors a request that has just arrived on a connection of another
// company waits until the other processor is free (the garbage collector's workers or the
// event log's goroutines often hold it for milliseconds) or the runtime's monitor polls the
// network (every 10 ms). A scan therefore runs in slices of scanSlice and parks for scanPause
// between them: with nothing else runnable the processor polls the network and runs what has
// arrived. The scan takes up to twice as long. A query with Yield (a company pushing past its
// budget of scans) works in slices of yieldSlice and parks yieldPause: it works an eighth of
// the time, and a request of another company that lands behind it on a processor waits a
// quarter of a millisecond at most. (The fairness bench's flood took another company's p99 to
// 2.4–3.2× its figure alone with millisecond slices; with quarter-millisecond slices to
// 1.6–2.1×, and at 100k users to 2.12× parked 750 µs and 1.92× parked 1.75 ms, when a 50-term
// scan of 100k users takes about 15 s; then 1.24–1.28× once a scan decoded only what its
// filter reads, rowpartial.go.) An index look-up that names many candidates is paced
// the same way; one of Entra's (one candidate) never works a whole slice.
const (
	// scanSlice is how long a scan works between two pauses.
	scanSlice = time.Millisecond
	// scanPause is how long a scan parks; the runtime's timers make it about a millisecond.
	scanPause = 50 * time.Microsecond
	// yieldSlice and yieldPause are scanSlice and scanPause for a query with Yield.
	yieldSlice = 250 * time.Microsecond
	yieldPause = 1750 * time.Microsecond
	// paceEvery is how many rows a scan reads between two looks at the clock.
	paceEvery = 8
)

// scanPacer runs one scan in slices. The zero value is not ready: use newScanPacer.
type scanPacer struct {
	n     int
	since time.Time
	slice time.Duration
	pause time.Duration
	timer *time.Timer
}

// newScanPacer returns a pacer of scanSlice and scanPause, or of yieldSlice and yieldPause if
// yield is set.
func newScanPacer(yield bool) *scanPacer {
	p := &scanPacer{since: time.Now(), slice: scanSlice, pause: scanPause}
	if yield {
		p.slice, p.pause = yieldSlice, yieldPause
	}
	return p
}

// step is called before each row; once the current slice is spent it parks the goroutine for
// its pause, or until ctx ends (then it returns ctx's error).
func (p *scanPacer) step(ctx context.Context) error {
	if p.n++; p.n%paceEvery != 0 || time.Since(p.since) < p.slice {
		return nil
	}
	if p.timer == nil {
		p.timer = time.NewTimer(p.pause)
	} else {
		p.timer.Reset(p.pause)
	}
	select {
	case <-p.timer.C:
	case <-ctx.Done():
		p.timer.Stop()
		return ctx.Err()
	}
	p.since = time.Now()
	return nil
}
