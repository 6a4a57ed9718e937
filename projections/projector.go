package projections

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/idledger/idledger/domain"
)

// maxBatch is the most events applied in one write transaction.
const maxBatch = 500

// Projector feeds the log into a DB. Create it with NewProjector, start it with Run; its other
// methods are safe for concurrent use.
type Projector struct {
	db   *DB
	src  domain.EventSource
	log  *slog.Logger
	obs  domain.Observer // never nil
	born time.Time       // when NewProjector ran: the lag's lower bound before any event is seen

	mu         sync.Mutex     // guards the fields below
	checkpoint domain.Version // last committed sequence
	appliedAt  time.Time      // At of the last event committed by this Run (zero before)
	pendingAt  time.Time      // At of the first event of the batch being applied (zero if none)
	target     domain.Version // log head seen at start; caught up once checkpoint reaches it
	caughtUp   bool
	failure    error         // set when the projector stopped on an event it cannot apply
	changed    chan struct{} // closed and replaced after every commit or failure
}

// A ProjectorOption configures a Projector in NewProjector.
type ProjectorOption func(*Projector)

// WithObserver makes the projector report each committed batch to o (nil measures nothing).
func WithObserver(o domain.Observer) ProjectorOption {
	return func(p *Projector) {
		if o != nil {
			p.obs = o
		}
	}
}

// NewProjector returns a projector of src into db.
func NewProjector(db *DB, src domain.EventSource, log *slog.Logger, opts ...ProjectorOption) *Projector {
	if log == nil {
		log = slog.Default()
	}
	cp, _ := db.Checkpoint() // Run reports a read error; until then 0 only delays waiters
	p := &Projector{db: db, src: src, log: log, obs: domain.NopObserver{}, born: time.Now(),
		changed: make(chan struct{}), checkpoint: cp}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Run applies events from the checkpoint on until ctx ends (returning nil) or an event cannot
// be applied. Then the projector fails closed: it stops, keeps the last consistent state for
// readers, reports the failure through Err and Ready, and Run returns the error.
func (p *Projector) Run(ctx context.Context) error {
	cp, err := p.db.Checkpoint()
	if err != nil {
		return p.fail(fmt.Errorf("projections: read checkpoint: %w", err))
	}
	head, err := p.src.Head(ctx)
	if err != nil {
		return p.fail(fmt.Errorf("projections: read log head: %w", err))
	}
	p.mu.Lock()
	p.checkpoint, p.target = cp, head
	p.caughtUp = cp >= head
	close(p.changed) // wake waiters for sequences the file already holds
	p.changed = make(chan struct{})
	p.mu.Unlock()
	if head < cp {
		return p.fail(fmt.Errorf("projections: checkpoint %d is ahead of the log (head %d): the read models belong to another log; delete projections.db to rebuild", cp, head))
	}
	p.log.Info("projector starting", "checkpoint", cp, "head", head)
	sub, err := p.src.Subscribe(ctx, cp)
	if err != nil {
		return p.fail(fmt.Errorf("projections: %w", err))
	}
	defer sub.Close()
	for {
		events, err := sub.Next(ctx, maxBatch)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return p.fail(fmt.Errorf("projections: after checkpoint %d: %w", p.Checkpoint(), err))
		}
		if err := p.applyBatch(events); err != nil {
			return p.fail(err)
		}
	}
}

// applyBatch applies events and the new checkpoint in one transaction and wakes waiters.
func (p *Projector) applyBatch(events []domain.Event) error {
	last := events[len(events)-1].Version
	p.mu.Lock()
	p.pendingAt = events[0].At // kept on failure: the lag then grows from the stuck event
	p.mu.Unlock()
	start := time.Now()
	err := p.db.bolt.Update(func(tx *bolt.Tx) error {
		cp := checkpoint(tx)
		if last <= cp {
			last = cp // a batch of re-delivered events: the checkpoint never moves backwards
			return nil
		}
		for _, e := range events {
			if e.Version <= cp {
				continue // re-delivered after a crash: already applied
			}
			if err := apply(tx, e); err != nil {
				return fmt.Errorf("projections: apply %s at seq %d: %w", e.Type, e.Version, err)
			}
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(last))
		return tx.Bucket(bucketMeta).Put(keyCheckpoint, b[:])
	})
	if err != nil {
		return err
	}
	apply := time.Since(start)
	p.mu.Lock()
	p.checkpoint = last
	p.appliedAt, p.pendingAt = events[len(events)-1].At, time.Time{}
	if last >= p.target {
		p.caughtUp = true
	}
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	p.obs.Projected(domain.ProjectedBatch{Events: len(events), Apply: apply, Checkpoint: last})
	return nil
}

// Lag reports how far the read models are behind the log now; it asks the log for its head,
// so it costs one round trip to the event store. It is safe for concurrent use.
func (p *Projector) Lag(ctx context.Context) (domain.ProjectionLag, error) {
	head, err := p.src.Head(ctx)
	if err != nil {
		return domain.ProjectionLag{}, fmt.Errorf("projections: lag: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	l := domain.ProjectionLag{Head: head, Checkpoint: p.checkpoint}
	if head > p.checkpoint {
		l.Since = p.pendingAt
		if l.Since.IsZero() {
			l.Since = p.appliedAt
		}
		if l.Since.IsZero() {
			l.Since = p.born // nothing received since start: at least this stale
		}
	}
	return l, nil
}

func (p *Projector) fail(err error) error {
	p.log.Error("projector stopped: read models are frozen until the cause is fixed", "checkpoint", p.Checkpoint(), "err", err)
	p.mu.Lock()
	p.failure = err
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	return err
}

// Checkpoint returns the last committed log sequence.
func (p *Projector) Checkpoint() domain.Version {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.checkpoint
}

// Ready reports whether the read models have caught up with the log as it was at start and the
// projector has not failed; if not, the error says why.
func (p *Projector) Ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.failure != nil:
		return p.failure
	case !p.caughtUp:
		return fmt.Errorf("projections: catching up (%d of %d)", p.checkpoint, p.target)
	}
	return nil
}

// ErrStopped is returned by WaitFor when the projector has failed.
var ErrStopped = errors.New("projections: projector stopped")

// WaitFor blocks until the event at log sequence v is visible in the read models, ctx ends
// (returning ctx's error) or the projector fails (returning an error wrapping ErrStopped).
func (p *Projector) WaitFor(ctx context.Context, v domain.Version) error {
	for {
		p.mu.Lock()
		cp, failure, ch := p.checkpoint, p.failure, p.changed
		p.mu.Unlock()
		if cp >= v {
			return nil
		}
		if failure != nil {
			return fmt.Errorf("%w: %w", ErrStopped, failure)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}
