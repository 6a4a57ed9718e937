package projections

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/observe"
)

// maxBatch is the most events applied in one write transaction.
const maxBatch = 500

// defaultProgressEvery is how often a long catch-up or rebuild logs its progress.
const defaultProgressEvery = 5 * time.Second

// Projector feeds the log into a DB. Create it with NewProjector, start it with Run; its other
// methods are safe for concurrent use.
//
// The projector is the only writer of its DB. Run commits one batch at a time while holding
// commit; a rebuild (rebuild.go) holds commit to pause Run between two batches, so it sees a
// checkpoint that does not move while it brings the new file level with it and swaps it in.
type Projector struct {
	db            *DB
	src           domain.EventSource
	log           *slog.Logger
	obs           observe.Observer // never nil
	born          time.Time        // when NewProjector ran: the lag's lower bound before any event is seen
	progressEvery time.Duration    // how often a catch-up or rebuild logs progress
	writeLag      time.Duration    // ProjectorConfig.WriteLag

	commit sync.Mutex // held by Run around each commit; Rebuild holds it to pause Run

	bg sync.WaitGroup // background rebuilds started by StartRebuild; Run waits for them

	mu         sync.Mutex     // guards the fields below
	checkpoint domain.Version // last committed sequence
	appliedAt  time.Time      // At of the last event committed by this Run (zero before)
	pendingAt  time.Time      // At of the first event of the batch being applied (zero if none)
	target     domain.Version // log head seen at start; caught up once checkpoint reaches it
	caughtUp   bool
	failure    *Failure        // set when the projector stopped on an event it cannot apply
	lost       error           // set while the log cannot be reached (Run resubscribes)
	stuck      error           // set while the read-model file cannot be written (Run retries)
	wanted     domain.Version  // the highest version a WaitFor asked for
	mark       domain.Version  // the wanted version when behind was set
	behind     time.Time       // since when mark is not reached (zero: no write waits)
	runCtx     context.Context // Run's context while Run is running, else nil
	rebuild    *RebuildStatus  // the current or last rebuild (nil if none)
	changed    chan struct{}   // closed and replaced after every commit, swap or failure
}

// ProjectorConfig tunes a Projector. The zero value is the default of each field.
type ProjectorConfig struct {
	// Logger receives the projector's log; nil means slog.Default().
	Logger *slog.Logger
	// Observer is told of each committed batch; nil measures nothing.
	Observer observe.Observer
	// ProgressInterval is how often a long catch-up (at start) or rebuild logs its progress
	// (default 5 s).
	ProgressInterval time.Duration
	// WriteLag bounds how long the read models may trail a write that waits to become visible
	// before RefuseWrites turns new writes away (default DefaultWriteLag).
	WriteLag time.Duration
}

// NewProjector returns a projector of src into db.
func NewProjector(db *DB, src domain.EventSource, cfg ProjectorConfig) *Projector {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = observe.Nop{}
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = defaultProgressEvery
	}
	if cfg.WriteLag <= 0 {
		cfg.WriteLag = DefaultWriteLag
	}
	cp, _ := db.Checkpoint() // Run reports a read error; until then 0 only delays waiters
	return &Projector{db: db, src: src, log: cfg.Logger, obs: cfg.Observer, born: time.Now(),
		progressEvery: cfg.ProgressInterval, writeLag: cfg.WriteLag, changed: make(chan struct{}), checkpoint: cp}
}

// A Failure is why a projector stopped (fail closed).
type Failure struct {
	// Seq is the log sequence of the event that could not be applied, or 0 when the failure
	// is not about one event (the log could not be read).
	Seq domain.Version
	// Err is the cause; it names the sequence too.
	Err error
	// At is when the projector stopped.
	At time.Time
}

// An EventError is the failure to apply the event at Seq. Run stops on it.
type EventError struct {
	Seq  domain.Version
	Type string
	Err  error
}

func (e *EventError) Error() string {
	return fmt.Sprintf("projections: apply %s at seq %d: %v", e.Type, e.Seq, e.Err)
}

func (e *EventError) Unwrap() error { return e.Err }

// Run applies events from the checkpoint on until ctx ends (returning nil) or an event cannot
// be applied. Then the projector fails closed: it stops, keeps the last consistent state for
// readers, reports the failure through Ready and Status, and Run returns the error. A
// background rebuild (StartRebuild) is part of the run: Run stops it and waits for it before
// returning. Run may be called once at a time.
func (p *Projector) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	p.mu.Lock()
	if p.runCtx != nil {
		p.mu.Unlock()
		cancel()
		return errors.New("projections: Run is already running")
	}
	p.runCtx = ctx
	p.mu.Unlock()
	defer func() {
		cancel() // ends a background rebuild
		p.mu.Lock()
		p.runCtx = nil // no StartRebuild from here on, so bg.Wait cannot race with bg.Add
		p.mu.Unlock()
		p.bg.Wait()
	}()

	cp, err := p.db.Checkpoint()
	if err != nil {
		return p.fail(0, fmt.Errorf("projections: read checkpoint: %w", err))
	}
	head, err := p.src.Head(ctx)
	if err != nil {
		return p.fail(0, fmt.Errorf("projections: read log head: %w", err))
	}
	p.mu.Lock()
	p.checkpoint, p.target = cp, head
	p.caughtUp = cp >= head
	p.wakeLocked() // wake waiters for sequences the file already holds
	p.mu.Unlock()
	if head < cp {
		return p.fail(0, fmt.Errorf("projections: checkpoint %d is ahead of the log (head %d): the read models belong to another log; delete projections.db to rebuild", cp, head))
	}
	if old := p.db.emptiedSchema(); old != "" {
		p.log.Warn("the read models were written by another projection schema: rebuilding them from the log",
			"file_schema", old, "schema", SchemaVersion, "events", head)
	}
	p.log.Info("projector starting", "checkpoint", cp, "head", head)
	sub, err := p.subscribe(ctx, cp)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return p.fail(cp+1, fmt.Errorf("projections: %w", err))
	}
	defer func() {
		if sub != nil { // nil if resubscribing failed
			sub.Close()
		}
	}()
	catchUp := newMeter(p.log, "projector catching up", p.progressEvery, cp)
	for {
		events, err := sub.Next(ctx, maxBatch)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, domain.ErrUnavailable) {
			// The log could not be read (NATS down, connection lost): not an event's fault, so
			// no reason to fail closed. Subscribe again from the checkpoint, with back-off.
			sub.Close()
			cp := p.Checkpoint()
			p.log.Warn("projector lost its subscription: resubscribing from the checkpoint", "checkpoint", cp, "err", err)
			if sub, err = p.subscribe(ctx, cp); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return p.fail(cp+1, fmt.Errorf("projections: %w", err))
			}
			continue
		}
		if err != nil {
			// The subscription ends a batch before an event it cannot decode: it is the next one.
			return p.fail(p.Checkpoint()+1, fmt.Errorf("projections: after checkpoint %d: %w", p.Checkpoint(), err))
		}
		err = p.applyRetrying(ctx, events)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var ee *EventError
			if errors.As(err, &ee) {
				return p.fail(ee.Seq, err)
			}
			return p.fail(events[0].Version, err)
		}
		if catchUp != nil {
			p.mu.Lock()
			cp, target, done := p.checkpoint, p.target, p.caughtUp
			p.mu.Unlock()
			if done {
				catchUp.finish("projector caught up", cp)
				catchUp = nil
			} else {
				catchUp.tick(cp, target)
			}
		}
	}
}

// applyRetrying applies a batch; while the read-model file cannot be written for lack of
// space (isStorageError) it keeps the batch and tries again with back-off (up to 5 s apart),
// reporting it through Ready and RefuseWrites, instead of stopping: the file is derived data,
// and once space is freed the projector resumes by itself. Any other error is returned (the
// caller fails closed), as is ctx's end.
func (p *Projector) applyRetrying(ctx context.Context, events []domain.Event) error {
	wait := 100 * time.Millisecond
	for {
		p.commit.Lock()
		err := p.applyBatch(events, nil)
		p.commit.Unlock()
		var ee *EventError
		if err == nil || errors.As(err, &ee) || !isStorageError(err) {
			p.mu.Lock()
			if p.stuck != nil {
				p.log.Info("projector writes the read models again", "checkpoint", p.checkpoint)
				p.stuck = nil
				p.wakeLocked()
			}
			p.mu.Unlock()
			return err
		}
		p.mu.Lock()
		if p.stuck == nil {
			p.log.Error("projector cannot write the read models (disk full): retrying; writes answer 503 meanwhile",
				"checkpoint", p.checkpoint, "err", err)
		}
		p.stuck = err
		p.wakeLocked()
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// isStorageError reports whether err means the file system had no room (or quota) for a
// write: a state that ends when space is freed, not a fault of an event. bbolt returns some of
// these with %s (a resize), so the text is checked too.
func isStorageError(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "no space left on device") || strings.Contains(msg, "disk quota exceeded")
}

// DefaultWriteLag is the default of ProjectorConfig.WriteLag.
const DefaultWriteLag = 10 * time.Second

// RefuseWrites returns why a new write could not become visible now (the projector stopped,
// cannot reach the log, cannot write the read-model file, or has trailed the writes waiting
// for it for more than ProjectorConfig.WriteLag), or nil. The HTTP server then refuses writes before
// appending anything (fail closed on the read side), which also lets a slow projector catch up.
func (p *Projector) RefuseWrites() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.failure != nil:
		return errors.New("the projector stopped")
	case p.stuck != nil:
		return errors.New("the read-model file cannot be written: its disk is full")
	case p.lost != nil:
		return errors.New("the event log cannot be read")
	case !p.behind.IsZero() && p.checkpoint < p.mark && time.Since(p.behind) > p.writeLag:
		return fmt.Errorf("the read models trail the writes by more than %s", p.writeLag)
	}
	return nil
}

// subscribe subscribes to the log after cp, retrying with back-off (up to 5 s apart) for as
// long as the log is unavailable; meanwhile Ready reports it. It returns another error, or
// ctx's, at once.
func (p *Projector) subscribe(ctx context.Context, cp domain.Version) (domain.Subscription, error) {
	wait := 100 * time.Millisecond
	for {
		sub, err := p.src.Subscribe(ctx, cp)
		if err == nil || !errors.Is(err, domain.ErrUnavailable) {
			p.mu.Lock()
			if err == nil && p.lost != nil {
				p.log.Info("projector subscribed again", "checkpoint", cp)
			}
			p.lost = nil
			p.mu.Unlock()
			return sub, err
		}
		p.mu.Lock()
		if p.lost == nil {
			p.log.Warn("projector cannot reach the log: retrying", "checkpoint", cp, "err", err)
		}
		p.lost = err
		p.wakeLocked()
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// applyBatch applies events, then those more returns until it returns none (more may be nil),
// and the new checkpoint in one transaction, and wakes waiters. Events at or before the
// checkpoint are skipped: the checkpoint never moves backwards.
func (p *Projector) applyBatch(events []domain.Event, more func() []domain.Event) error {
	p.mu.Lock()
	p.pendingAt = events[0].At // kept on failure: the lag then grows from the stuck event
	p.mu.Unlock()
	start := time.Now()
	var (
		last   domain.Version // the checkpoint committed
		lastAt time.Time      // At of the last event of the batch
		n      int            // events in the batch
	)
	err := p.db.update(func(tx *bolt.Tx) error {
		cp := checkpoint(tx)
		last = cp
		var w *writer
		for len(events) > 0 {
			for i := range events {
				e := &events[i]
				lastAt = e.At
				if e.Version <= cp {
					continue // re-delivered after a crash: already applied
				}
				if w == nil {
					size := len(events)
					if more != nil {
						size = replayBatch
					}
					var err error
					if w, err = newWriter(tx, size); err != nil {
						return err
					}
				}
				if err := w.apply(e); err != nil {
					return &EventError{Seq: e.Version, Type: e.Type, Err: err}
				}
				last = e.Version
			}
			n += len(events)
			if more == nil {
				break
			}
			events = more()
		}
		if w == nil {
			return nil // only re-delivered events
		}
		if err := w.flush(); err != nil {
			return err
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
	if !p.behind.IsZero() && last >= p.mark { // measure again from now to what waits now
		p.behind, p.mark = time.Time{}, 0
		if last < p.wanted {
			p.behind, p.mark = time.Now(), p.wanted
		}
	}
	p.appliedAt, p.pendingAt = lastAt, time.Time{}
	if last >= p.target {
		p.caughtUp = true
	}
	p.wakeLocked()
	p.mu.Unlock()
	p.obs.Projected(observe.ProjectedBatch{Events: n, Apply: apply, Checkpoint: last})
	return nil
}

// wakeLocked wakes every WaitFor; p.mu must be held.
func (p *Projector) wakeLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Lag reports how far the read models are behind the log now; it asks the log for its head,
// so it costs one round trip to the event store. It is safe for concurrent use.
func (p *Projector) Lag(ctx context.Context) (observe.ProjectionLag, error) {
	head, err := p.src.Head(ctx)
	if err != nil {
		return observe.ProjectionLag{}, fmt.Errorf("projections: lag: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	l := observe.ProjectionLag{Head: head, Checkpoint: p.checkpoint}
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

// fail records why the projector stops, logs it with the sequence, and returns err.
func (p *Projector) fail(seq domain.Version, err error) error {
	p.log.Error("projector stopped: read models are frozen until the cause is fixed",
		"seq", seq, "checkpoint", p.Checkpoint(), "err", err)
	p.mu.Lock()
	p.failure = &Failure{Seq: seq, Err: err, At: time.Now()}
	p.wakeLocked()
	p.mu.Unlock()
	return err
}

// Checkpoint returns the last committed log sequence.
func (p *Projector) Checkpoint() domain.Version {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.checkpoint
}

// CatchingUp reports whether the read models have yet to catch up with the log as it was when
// Run started (true before Run starts too), unless the projector has failed. Until then they
// miss acknowledged changes — after a machine crash or a schema change they start empty — so
// the HTTP server answers 503 to the requests that read them instead of answers a client would
// act on (a token not found, a user absent).
func (p *Projector) CatchingUp() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.caughtUp && p.failure == nil
}

// Failed returns why the projector stopped on an event it cannot apply, or nil while it runs.
// The read models are then frozen: later changes (a deactivation) are not in them.
func (p *Projector) Failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failure != nil {
		return stoppedError{seq: p.failure.Seq, err: p.failure.Err}
	}
	return nil
}

// Ready reports whether the read models have caught up with the log as it was at start and the
// projector has not failed; if not, the error says why.
func (p *Projector) Ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.failure != nil:
		return stoppedError{seq: p.failure.Seq, err: p.failure.Err}
	case p.stuck != nil:
		return errors.New("projections: the read-model file cannot be written (disk full); retrying")
	case p.lost != nil:
		return errors.New("projections: the event log is unreachable; resubscribing")
	case !p.caughtUp:
		return fmt.Errorf("projections: catching up (%d of %d)", p.checkpoint, p.target)
	}
	return nil
}

// stoppedError is Ready's answer once the projector has failed. Its text is safe to show on
// the public /healthz (no internals); the cause stays reachable with errors.Is/As and is shown
// to the operator by Status and in the log.
type stoppedError struct {
	seq domain.Version
	err error
}

func (e stoppedError) Error() string {
	if e.seq == 0 {
		return "projections: stopped: the event log could not be read; the operator sees the cause in GET /admin/v1/projections and the server log"
	}
	return fmt.Sprintf("projections: stopped at seq %d: an event could not be applied; the operator sees the cause in GET /admin/v1/projections and the server log", e.seq)
}

func (e stoppedError) Unwrap() []error { return []error{ErrStopped, e.err} }

// ErrStopped is returned by WaitFor when the projector has failed.
var ErrStopped = errors.New("projections: projector stopped")

// WaitFor blocks until the event at log sequence v is visible in the read models, ctx ends
// (returning ctx's error) or the projector fails (returning an error wrapping ErrStopped). A
// rebuild's swap does not disturb it: the new file holds at least what the old one held.
func (p *Projector) WaitFor(ctx context.Context, v domain.Version) error {
	p.mu.Lock()
	if v > p.wanted {
		p.wanted = v
		if p.behind.IsZero() && v > p.checkpoint {
			p.behind, p.mark = time.Now(), v
		}
	}
	p.mu.Unlock()
	for {
		p.mu.Lock()
		cp, failure, ch := p.checkpoint, p.failure, p.changed
		p.mu.Unlock()
		if cp >= v {
			return nil
		}
		if failure != nil {
			return fmt.Errorf("%w: %w", ErrStopped, failure.Err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// A Status is a projector's state as an operator sees it (GET /admin/v1/projections).
type Status struct {
	// Checkpoint is the last log sequence the read models reflect; Head the log's last
	// sequence, unless HeadErr says why it could not be read.
	Checkpoint, Head domain.Version
	HeadErr          error
	// Running is true while Run applies events.
	Running bool
	// Ready is what Ready returns: nil once caught up and not failed.
	Ready error
	// Failure is why the projector stopped (fail closed); nil while it has not.
	Failure *Failure
	// Rebuild is the current or last rebuild since the projector was created; nil if none.
	Rebuild *RebuildStatus
}

// Status reports the projector's state; it asks the log for its head.
func (p *Projector) Status(ctx context.Context) Status {
	head, herr := p.src.Head(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Status{Checkpoint: p.checkpoint, Head: head, HeadErr: herr, Running: p.runCtx != nil}
	switch {
	case p.failure != nil:
		f := *p.failure
		s.Failure, s.Ready = &f, f.Err
	case p.stuck != nil:
		s.Ready = fmt.Errorf("projections: the read-model file cannot be written (disk full); retrying: %w", p.stuck)
	case p.lost != nil:
		s.Ready = fmt.Errorf("projections: the event log is unreachable; resubscribing: %w", p.lost)
	case !p.caughtUp:
		s.Ready = fmt.Errorf("projections: catching up (%d of %d)", p.checkpoint, p.target)
	}
	if p.rebuild != nil {
		r := *p.rebuild
		s.Rebuild = &r
	}
	return s
}

// A meter logs the progress of a long replay every so often: position, rate and ETA.
type meter struct {
	log   *slog.Logger
	msg   string
	every time.Duration
	from  domain.Version
	start time.Time
	last  time.Time
}

func newMeter(log *slog.Logger, msg string, every time.Duration, from domain.Version) *meter {
	now := time.Now()
	return &meter{log: log, msg: msg, every: every, from: from, start: now, last: now}
}

// tick logs the position if the last line is older than the interval.
func (m *meter) tick(at, target domain.Version) {
	now := time.Now()
	if now.Sub(m.last) < m.every {
		return
	}
	m.last = now
	rate := m.rate(at, now)
	attrs := []any{"checkpoint", at, "head", target, "events_per_second", int64(rate)}
	if target > at && rate > 0 {
		eta := time.Duration(float64(target-at) / rate * float64(time.Second))
		attrs = append(attrs, "eta", eta.Round(time.Second).String())
	}
	if target > 0 {
		attrs = append(attrs, "percent", int(float64(at)*100/float64(target)))
	}
	m.log.Info(m.msg, attrs...)
}

// finish logs the end of a replay that was long enough to have logged progress.
func (m *meter) finish(msg string, at domain.Version) {
	now := time.Now()
	if now.Sub(m.start) < m.every {
		return
	}
	m.log.Info(msg, "checkpoint", at, "events", uint64(at-m.from),
		"seconds", now.Sub(m.start).Round(time.Millisecond).Seconds(), "events_per_second", int64(m.rate(at, now)))
}

func (m *meter) rate(at domain.Version, now time.Time) float64 {
	s := now.Sub(m.start).Seconds()
	if s <= 0 || at < m.from {
		return 0
	}
	return float64(at-m.from) / s
}
