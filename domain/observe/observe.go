// Package observe is the port through which the event store and the projector report
// measurements without knowing how they are exported: httpapi implements [Observer] and turns
// the figures into Prometheus metrics, and reads the projector's [ProjectionLag]. The adapters
// meet here without importing each other. It is not part of the identity core (package domain)
// and imports only domain and the standard library.
package observe

import (
	"time"

	"github.com/idledger/idledger/domain"
)

// An Observer receives measurements from the adapters, so that eventstore and projections can
// be measured without knowing how the figures are exported (httpapi turns them into Prometheus
// metrics). Implementations must be safe for concurrent use and cheap: they are called on the
// write path and inside the projector's loop, and must not block.
type Observer interface {
	// Appended is called once for every [domain.EventLog] Append, after it returns, with how
	// long it took, the number of events in the batch and the error it returned (nil on
	// success). A lost race wraps [domain.ErrConflict] and a value held by another holder wraps
	// [domain.ErrUniqueness].
	Appended(d time.Duration, events int, err error)
	// Projected is called after a projector has committed a batch.
	Projected(b ProjectedBatch)
}

// A ProjectedBatch describes one batch that a projector has committed.
type ProjectedBatch struct {
	// Events is the number of events that were delivered in the batch, including any
	// re-delivered events that were skipped.
	Events int
	// Apply is the time from the start of the write transaction to the end of its commit.
	Apply time.Duration
	// Checkpoint is the log position that the read models reflect after the commit.
	Checkpoint domain.Version
}

// Nop discards every measurement. Adapters use it when they are given no Observer.
type Nop struct{}

// Appended does nothing.
func (Nop) Appended(time.Duration, int, error) {}

// Projected does nothing.
func (Nop) Projected(ProjectedBatch) {}

// A ProjectionLag says how far a projector's read models are behind the log.
type ProjectionLag struct {
	// Head is the position of the last message in the log, and Checkpoint is the last position
	// that the read models reflect.
	Head, Checkpoint domain.Version
	// Since is the At of the oldest change that the read models lack. It is the first event of
	// the batch that the projector is applying (or failed to apply) when it holds one; otherwise
	// the projector has not received the missing events yet and Since is the At of the last
	// event it applied, which errs towards a larger lag. A projector that has neither applied
	// nor received an event since it was created reports its creation time, a lower bound. It
	// is zero when the projector has caught up.
	Since time.Time
}

// Events returns how many log messages the read models lack (Head - Checkpoint, or 0).
func (l ProjectionLag) Events() uint64 {
	if l.Head <= l.Checkpoint {
		return 0
	}
	return uint64(l.Head - l.Checkpoint)
}

// Age returns how stale the read models are at now: now - Since, or 0 when Since is zero or in
// the future (events carry the deciding node's clock).
func (l ProjectionLag) Age(now time.Time) time.Duration {
	if l.Since.IsZero() || !now.After(l.Since) {
		return 0
	}
	return now.Sub(l.Since)
}
