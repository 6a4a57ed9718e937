package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/observe"
)

// rebuildSlack is how close (in log sequences) the new file must come to the live projector
// before the live projector is paused for the last stretch.
const rebuildSlack = maxBatch

// replayBatch is the most events a rebuild or a Replay applies in one write transaction. They
// write a file nobody reads yet, without fsync per commit, so a batch is not bounded by how
// soon a writer must see its change: a larger one writes each rewritten page and each row
// changed by several events of the batch (the company's figures, a group's count) once for
// more events. It bounds the events held in memory.
const replayBatch = 4096

// pauseLimit bounds how long a rebuild may keep the live projector paused.
const pauseLimit = 30 * time.Second

// ErrRebuilding is returned by Rebuild and StartRebuild while another rebuild of the same
// projector runs. It wraps domain.ErrConflict.
var ErrRebuilding = domain.Errorf(domain.ErrConflict, "a projection rebuild is already running")

// A RebuildStatus is the progress of a rebuild.
type RebuildStatus struct {
	// Running is true until the rebuild has swapped the new file in or failed.
	Running bool
	// Done is the log sequence the new file has reached; Total the one it must reach (the
	// live projector's checkpoint, which moves while it runs, or the log head offline).
	Done, Total uint64
	// Started and Finished bound it; Finished is zero while it runs.
	Started, Finished time.Time
	// Err is why it failed; nil while it runs and after it succeeded.
	Err error
}

// Rebuild replaces the read models with ones built afresh from the whole log, calling progress
// (if not nil) after each batch with the sequence reached and the one to reach. It returns
// ErrRebuilding if a rebuild is already running.
//
// It builds DIR/projections.db.rebuild (no fsync per commit, one at the end) from sequence 1
// with a second projector over the same log, while the current file keeps serving readers.
//
//   - Online (Run is running): the live projector keeps applying new events meanwhile. Once the
//     new file is within a batch of it, Rebuild pauses it between two commits (Run waits on
//     commit), brings the new file to exactly the live checkpoint, fsyncs it, renames it over
//     the old file and swaps the handle under the DB's write lock, then resumes it. Run goes on
//     with its own subscription: the events it holds are all after that checkpoint. Readers
//     never see a partial file, WaitFor never goes backwards, Ready is unaffected. The pause
//     lasts milliseconds (at most 30 s, then the rebuild gives up and nothing changes). If Run
//     fails or stops meanwhile, the rebuild is abandoned.
//   - Offline (Run is not running, as in `idledger projections rebuild`): the new file is
//     built up to the log head as Rebuild found it, and swapped in the same way.
//
// A rebuild that fails or is cancelled removes its file and leaves the old one in service; the
// file of one cut short by a crash is removed by the next Open of the DB (removeStaleRebuild)
// or the next rebuild. The DB must stay open until Rebuild returns.
func (p *Projector) Rebuild(ctx context.Context, progress func(done, total uint64)) error {
	p.mu.Lock()
	err := p.beginRebuildLocked()
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return p.runRebuild(ctx, progress)
}

// StartRebuild starts an online Rebuild in the background and returns at once. It is part of
// the running projector: it ends with Run's context, and Run waits for it. It returns an error
// wrapping domain.ErrConflict if Run is not running, has failed, or a rebuild already runs.
// Its progress and outcome are in Status.
func (p *Projector) StartRebuild() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.failure != nil:
		return domain.Errorf(domain.ErrConflict, "the projector stopped at seq %d (%v): fix the cause and restart the server, "+
			"or stop it and run `idledger projections rebuild`", p.failure.Seq, p.failure.Err)
	case p.runCtx == nil:
		return domain.Errorf(domain.ErrConflict, "the projector is not running")
	}
	if err := p.beginRebuildLocked(); err != nil {
		return err
	}
	ctx := p.runCtx
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		_ = p.runRebuild(ctx, nil) // the outcome is logged and kept in Status
	}()
	return nil
}

func (p *Projector) beginRebuildLocked() error {
	if p.rebuild != nil && p.rebuild.Running {
		return ErrRebuilding
	}
	p.rebuild = &RebuildStatus{Running: true, Started: time.Now()}
	return nil
}

// runRebuild runs a rebuild registered by beginRebuildLocked and records its outcome.
func (p *Projector) runRebuild(ctx context.Context, progress func(done, total uint64)) error {
	p.log.Info("rebuilding the read models from the log", "file", p.db.path+".rebuild")
	m := newMeter(p.log, "rebuilding the read models", p.progressEvery, 0)
	cp, err := p.rebuildFile(ctx, func(done, total domain.Version) {
		p.mu.Lock()
		p.rebuild.Done, p.rebuild.Total = uint64(done), uint64(total)
		p.mu.Unlock()
		m.tick(done, total)
		if progress != nil {
			progress(uint64(done), uint64(total))
		}
	})
	p.mu.Lock()
	p.rebuild.Running, p.rebuild.Finished, p.rebuild.Err = false, time.Now(), err
	elapsed := p.rebuild.Finished.Sub(p.rebuild.Started)
	p.mu.Unlock()
	if err != nil {
		p.log.Error("rebuild failed: the read models in service are unchanged", "err", err)
		return err
	}
	p.log.Info("rebuilt the read models from the log", "checkpoint", cp,
		"seconds", elapsed.Round(time.Millisecond).Seconds())
	return nil
}

// rebuildFile builds the new file and swaps it in; it returns the new file's checkpoint.
func (p *Projector) rebuildFile(ctx context.Context, progress func(done, total domain.Version)) (domain.Version, error) {
	p.mu.Lock()
	online := p.runCtx != nil
	p.mu.Unlock()
	head, err := p.src.Head(ctx)
	if err != nil {
		return 0, fmt.Errorf("projections: rebuild: read log head: %w", err)
	}
	// target is the sequence to reach: the live checkpoint (it moves until the pause), or the
	// head as found now.
	target := func() domain.Version {
		if online {
			return p.Checkpoint()
		}
		return head
	}

	path := p.db.path + ".rebuild"
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("projections: rebuild: remove a stale %s: %w", path, err)
	}
	next, err := openPresized(path, p.db.size())
	if err != nil {
		return 0, fmt.Errorf("projections: rebuild: %w", err)
	}
	swapped := false
	defer func() {
		if !swapped {
			next.Close()
			os.Remove(path)
		}
	}()
	builder := &Projector{db: next, src: p.src, log: p.log, obs: observe.Nop{}, changed: make(chan struct{})}
	sub, err := p.src.Subscribe(ctx, 0)
	if err != nil {
		return 0, fmt.Errorf("projections: rebuild: %w", err)
	}
	defer sub.Close()
	step := func(ctx context.Context, limit domain.Version) error {
		if err := builder.step(ctx, sub, limit, max(limit, target())); err != nil {
			return fmt.Errorf("projections: rebuild: %w", err)
		}
		progress(builder.Checkpoint(), max(target(), builder.Checkpoint()))
		return nil
	}
	progress(0, target())

	// Catch up while the live projector keeps going (online only).
	for online && builder.Checkpoint()+rebuildSlack < target() {
		if err := step(ctx, 0); err != nil {
			return 0, err
		}
	}

	// Pause the live projector between two commits: its checkpoint is fixed from here on.
	p.commit.Lock()
	defer p.commit.Unlock()
	if online {
		p.mu.Lock()
		failure, running := p.failure, p.runCtx != nil
		p.mu.Unlock()
		switch {
		case failure != nil:
			return 0, fmt.Errorf("projections: rebuild abandoned: the projector stopped: %w", failure.Err)
		case !running:
			return 0, errors.New("projections: rebuild abandoned: the projector stopped")
		}
	}
	final := target()
	pctx := ctx
	if online {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, pauseLimit)
		defer cancel()
	}
	for builder.Checkpoint() < final {
		if err := step(pctx, final); err != nil {
			return 0, err
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("projections: rebuild: %w", err)
	}
	cp := builder.Checkpoint()
	if err := p.db.replace(next); err != nil {
		return 0, fmt.Errorf("projections: rebuild: %w", err)
	}
	swapped = true
	p.mu.Lock()
	if cp > p.checkpoint {
		p.checkpoint = cp // offline: the new file is at the log head
	}
	p.wakeLocked()
	p.mu.Unlock()
	return cp, nil
}

// step applies the next batch of sub, cut after limit (0: no limit), in one transaction: the
// events sub has buffered and, while the log is known to hold the events up to avail, those
// that follow, applied as they arrive, up to replayBatch events.
func (p *Projector) step(ctx context.Context, sub domain.Subscription, limit, avail domain.Version) error {
	cut := func(events []domain.Event) []domain.Event {
		if limit > 0 {
			for i, e := range events {
				if e.Version > limit {
					return events[:i]
				}
			}
		}
		return events
	}
	events, err := sub.Next(ctx, maxBatch)
	if err != nil {
		return fmt.Errorf("after seq %d: %w", p.Checkpoint(), err)
	}
	events = cut(events)
	if len(events) == 0 {
		return nil
	}
	n, last := len(events), events[len(events)-1].Version
	var later error // the log failed after some events: returned once they are committed
	more := func() []domain.Event {
		if n >= replayBatch || last >= avail || (limit > 0 && last >= limit) {
			return nil
		}
		next, err := sub.Next(ctx, min(maxBatch, replayBatch-n))
		if err != nil {
			later = err
			return nil
		}
		next = cut(next)
		if len(next) > 0 {
			n, last = n+len(next), next[len(next)-1].Version
		}
		return next
	}
	if err := p.applyBatch(events, more); err != nil {
		return err
	}
	if later != nil {
		return fmt.Errorf("after seq %d: %w", p.Checkpoint(), later)
	}
	return nil
}

// Replay applies the log to db from its checkpoint up to sequence to exactly, calling progress
// (if not nil) after each batch with the sequence reached and to. It is how `idledger
// projections check` builds the read models it compares the stored ones with. An event that
// cannot be applied ends it with an error wrapping an *EventError.
func Replay(ctx context.Context, db *DB, src domain.EventSource, to domain.Version, progress func(done, total uint64)) error {
	p := &Projector{db: db, src: src, log: slog.New(slog.DiscardHandler), obs: observe.Nop{}, changed: make(chan struct{})}
	cp, err := db.Checkpoint()
	if err != nil {
		return err
	}
	p.checkpoint = cp
	if cp >= to {
		return nil
	}
	sub, err := src.Subscribe(ctx, cp)
	if err != nil {
		return fmt.Errorf("projections: replay: %w", err)
	}
	defer sub.Close()
	for p.Checkpoint() < to {
		if err := p.step(ctx, sub, to, to); err != nil {
			return fmt.Errorf("projections: replay: %w", err)
		}
		if progress != nil {
			progress(uint64(p.Checkpoint()), uint64(to))
		}
	}
	return nil
}

// replace makes next's file the DB's file: it fsyncs next, renames it over the DB's path and
// swaps the handles while no transaction runs, then closes the old handle. On success next is
// consumed (its handle now belongs to db) and must not be used or closed afterwards; on error
// nothing has changed.
//
// The handle stays open across the rename rather than being closed and reopened, so that there
// is no moment at which the path names an unlocked file or db has no usable handle (bbolt
// reads and writes through the open descriptor and its lock follows the inode).
func (db *DB) replace(next *DB) error {
	if err := next.bolt.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", next.path, err)
	}
	next.bolt.NoSync = db.opts.NoSync // from now on it commits like the file it replaces
	db.mu.Lock()
	if err := os.Rename(next.path, db.path); err != nil {
		db.mu.Unlock()
		next.bolt.NoSync = true
		return fmt.Errorf("rename %s: %w", next.path, err)
	}
	old := db.bolt
	db.bolt, next.bolt = next.bolt, nil
	db.emptied = ""
	db.mu.Unlock()
	// Make the rename itself durable; the content was synced above.
	if d, err := os.Open(filepath.Dir(db.path)); err == nil {
		d.Sync()
		d.Close()
	}
	_ = old.Close() // no transaction can be open on it; its inode is already unlinked
	return nil
}

// removeStaleRebuild removes path's rebuild file (path + ".rebuild"), left behind by a
// process that crashed while rebuilding: a copy of all the read models that nothing would
// ever use or remove. Open calls it once it holds the lock on path. A rebuild writes its file
// only while its projector's DB holds that lock (in this process or another), so a file found
// then is no running rebuild's.
func removeStaleRebuild(path string) error {
	stale := path + ".rebuild"
	if err := os.Remove(stale); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("projections: remove a stale %s: %w", stale, err)
	}
	return nil
}

// openPresized creates the file at path (without fsync per commit) and extends it to size
// bytes (at most maxPresize) before bbolt maps it. bbolt maps a file whole and maps it again
// each time it outgrows the mapping, which first copies every page the running transaction has
// touched to the heap, and fsyncs each time the file grows: from a file as large as it will
// get, it does neither. A file rebuilt from scratch gets about as large as the one it
// replaces; the extension is sparse and bbolt ignores the pages past its high-water mark.
func openPresized(path string, size int64) (*DB, error) {
	db, err := Open(path, Options{NoSync: true})
	if err != nil || size <= 0 {
		return db, err
	}
	size = min(size, maxPresize)
	if fi, err := os.Stat(path); err != nil || fi.Size() >= size {
		return db, nil
	}
	if err := db.Close(); err != nil {
		return nil, err
	}
	if err := os.Truncate(path, size); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("presize %s: %w", path, err)
	}
	if db, err = Open(path, Options{NoSync: true}); err != nil {
		os.Remove(path)
		return nil, err
	}
	return db, nil
}

// maxPresize bounds openPresized's room.
const maxPresize = 1 << 30

// size returns the size of the file in service (0 if unknown).
func (db *DB) size() int64 {
	db.mu.RLock()
	defer db.mu.RUnlock()
	fi, err := os.Stat(db.path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// emptiedSchema returns the schema version that Open emptied ("" if none since).
func (db *DB) emptiedSchema() string {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.emptied
}
