package projections

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/idledger/idledger/domain"
)

// maxBatch is the most events applied in one write transaction.
const maxBatch = 500

// Projector feeds the log into a DB. Create it with NewProjector, start it with Run; its other
// methods are safe for concurrent use.
type Projector struct {
	db  *DB
	src domain.EventSource
	log *slog.Logger

	mu         sync.Mutex     // guards the fields below
	checkpoint domain.Version // last committed sequence
	target     domain.Version // log head seen at start; caught up once checkpoint reaches it
	caughtUp   bool
	failure    error         // set when the projector stopped on an event it cannot apply
	changed    chan struct{} // closed and replaced after every commit or failure
}

// NewProjector returns a projector of src into db.
func NewProjector(db *DB, src domain.EventSource, log *slog.Logger) *Projector {
	if log == nil {
		log = slog.Default()
	}
	cp, _ := db.Checkpoint() // Run reports a read error; until then 0 only delays waiters
	return &Projector{db: db, src: src, log: log, changed: make(chan struct{}), checkpoint: cp}
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
	p.mu.Lock()
	p.checkpoint = last
	if last >= p.target {
		p.caughtUp = true
	}
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	return nil
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
