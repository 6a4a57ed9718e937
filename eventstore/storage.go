package eventstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
)

// Full disks. A write the log cannot store for lack of space wraps domain.ErrStorageFull
// (httpapi answers 507 with Retry-After), and the store heals by itself once space returns.
//
// What the embedded nats-server does on ENOSPC: the file store keeps the first write error
// and returns it to every later write of that stream (fileStore.werr, msgBlock.werr), and the
// stream keeps it too (stream.werr); the error is sticky until the stream is loaded again, so
// freeing space alone does not help — before this file only a restart did. Depending on where
// the write failed, the client sees no answer at all (a timeout), "atomic publish batch is
// incomplete" (10176) or the store error itself (10077). The server's own limit
// (JetStreamMaxStore, Config.MaxStorage) answers "insufficient resources" (10023) instead, with
// nothing sticky; creating a stream beyond it answers 10047.
//
// So the store does two things:
//   - Before each append it refuses, with ErrStorageFull and without writing anything, while
//     the volume has less than Config.MinFreeBytes free or while it is healing. Refusing
//     before the disk is full keeps a batch from failing half-way (the file store writes a
//     batch's messages one by one) and leaves room for the read models and the KV buckets.
//   - After an append fails, it asks the embedded server whether a stream holds a write error
//     (Server.Healthz) or JetStream was disabled; if so it enters the full state and a healer
//     waits (with back-off) until the volume has room again, then reloads JetStream in
//     process (Server.ShutdownJetStream, then Server.EnableJetStream with the options the
//     server started with): the streams are recovered from their files as at a restart, the
//     sticky error is gone, and appends resume. The in-process client connection stays up
//     meanwhile; requests during the reload get no responder and answer 503. Live
//     subscriptions are ended at the reload (endOnReload), so the projector subscribes again
//     at once.
//   - Request records (requests.go) respect the same reserve, and a record lost to a kept
//     write error starts the same healing (recordLost): IDL_REQUESTS may meet the full disk
//     while no append does.

// embeddedDir is where the embedded server keeps JetStream's files: the volume the store
// watches.
func embeddedDir(dataDir string) string { return filepath.Join(dataDir, "nats") }

// storage is the store's view of its volume; embedded servers only (an external server's
// disk is its operator's).
type storage struct {
	mu        sync.Mutex
	full      error     // non-nil while appends are refused until the healer reloads JetStream
	since     time.Time // when full was set
	healing   bool
	checkedAt time.Time     // when the volume was last measured (low is cached for lowCacheFor)
	low       error         // non-nil when the volume had less than minFree free at checkedAt
	reloaded  chan struct{} // closed when the healer has reloaded JetStream (nil: none asked)
	checking  atomic.Bool   // a recordLost check runs
}

// endOnReload stops sub's consumer once the healer reloads JetStream: the consumer is gone
// then, and the ordered consumer would notice only after missed heartbeats (seconds), while a
// stopped one ends the subscription with ErrUnavailable at once and the reader (the
// projector) subscribes again from its position.
func (s *Store) endOnReload(sub *subscription) {
	if s.srv == nil {
		return
	}
	st := &s.storage
	st.mu.Lock()
	if st.reloaded == nil {
		st.reloaded = make(chan struct{})
	}
	reloaded := st.reloaded
	st.mu.Unlock()
	go func() {
		select {
		case <-reloaded:
			sub.it.Stop()
		case <-sub.done:
		case <-s.closed:
		}
	}()
}

// lowCacheFor bounds how often Append measures the volume (one statfs).
const lowCacheFor = 200 * time.Millisecond

// defaultMinFree returns the free space below which appends are refused on a volume of total
// bytes: 1/64 of it, between 4 MiB and 64 MiB.
func defaultMinFree(total uint64) int64 {
	return int64(min(max(total/64, 4<<20), 64<<20))
}

// defaultReservations fills the storage defaults of an embedded server from the size of the
// volume holding cfg.Dir: JetStream may use the whole volume (the real limit is the disk,
// which the store watches), and the request records at most an eighth of it (at most
// DefaultRequestMaxBytes), so that a small volume starts.
func defaultReservations(cfg *Config) {
	if err := os.MkdirAll(embeddedDir(cfg.Dir), 0o700); err != nil {
		return // startEmbedded reports it
	}
	total, _, ok := volumeSpace(embeddedDir(cfg.Dir))
	if !ok {
		return
	}
	if cfg.MaxStorage == 0 {
		cfg.MaxStorage = int64(total)
	}
	if cfg.RequestMaxBytes == 0 {
		cfg.RequestMaxBytes = min(DefaultRequestMaxBytes, int64(total/8))
	}
	if cfg.MinFreeBytes == 0 {
		cfg.MinFreeBytes = defaultMinFree(total)
	}
}

// StorageFault reports why writes are refused for lack of space, or nil if they are not. It
// is what /healthz says; its text names no internals.
func (s *Store) StorageFault() error {
	if err := s.roomToAppend(); err != nil {
		return err
	}
	if s.srv != nil && s.volumeNearlyFull() {
		return domain.Errorf(domain.ErrStorageFull, "the event log's disk is full; writes resume by themselves once space is freed")
	}
	return nil
}

// roomToAppend returns an error wrapping domain.ErrStorageFull while the store is healing
// or the volume is below Config.MinFreeBytes; nil otherwise (and always with an external
// NATS).
func (s *Store) roomToAppend() error {
	if s.srv == nil {
		return nil
	}
	st := &s.storage
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.full != nil {
		return domain.Errorf(domain.ErrStorageFull,
			"the event log's disk ran out of space at %s; nothing was stored; writes resume by themselves once space is freed",
			st.since.UTC().Format(time.RFC3339))
	}
	if s.cfg.MinFreeBytes < 0 {
		return nil
	}
	if now := time.Now(); now.Sub(st.checkedAt) >= lowCacheFor {
		st.checkedAt, st.low = now, nil
		if _, free, ok := volumeSpace(embeddedDir(s.cfg.Dir)); ok && free < uint64(s.cfg.MinFreeBytes) {
			st.low = domain.Errorf(domain.ErrStorageFull,
				"the event log's disk has %d bytes free, less than the %d it keeps in reserve; nothing was stored; writes resume once space is freed",
				free, s.cfg.MinFreeBytes)
		}
	}
	return st.low
}

// Codes of JetStream errors about storage.
const (
	codeInsufficientResources jetstream.ErrorCode = 10023 // the server's storage limit
	codeStorageExceeded       jetstream.ErrorCode = 10047 // a stream's reservation does not fit
)

// storageError classifies an append's error: if it was caused by a full disk or the server's
// storage limit it returns err wrapped with domain.ErrStorageFull (and, on a sticky write
// error of the embedded server, starts healing); otherwise err unchanged.
func (s *Store) storageError(err error) error {
	if err == nil || errors.Is(err, domain.ErrStorageFull) || errors.Is(err, domain.ErrConflict) ||
		errors.Is(err, domain.ErrUniqueness) || errors.Is(err, domain.ErrTooMany) || errors.Is(err, context.Canceled) {
		return err
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == codeInsufficientResources || apiErr.ErrorCode == codeStorageExceeded) {
		return fmt.Errorf("%w: %w", domain.ErrStorageFull, err)
	}
	if s.srv == nil {
		if strings.Contains(err.Error(), "no space left") {
			return fmt.Errorf("%w: %w", domain.ErrStorageFull, err)
		}
		return err
	}
	cause := s.writeFault()
	if cause != nil {
		s.startHealing(cause)
		return fmt.Errorf("%w: %w", domain.ErrStorageFull, err)
	}
	// Not sticky, but out of space all the same: a batch the server could not stage answers
	// "incomplete" (10176), a message it could not store 10077, or nothing (a timeout).
	if strings.Contains(err.Error(), "no space left") || s.volumeNearlyFull() {
		return fmt.Errorf("%w: %w", domain.ErrStorageFull, err)
	}
	return err
}

// nearlyFull is the free space below which a failed append is blamed on the disk.
const nearlyFull = 1 << 20

// volumeNearlyFull reports whether the data volume has less than nearlyFull (or
// Config.MinFreeBytes, if larger) free.
func (s *Store) volumeNearlyFull() bool {
	_, free, ok := volumeSpace(embeddedDir(s.cfg.Dir))
	return ok && free < uint64(max(nearlyFull, s.cfg.MinFreeBytes))
}

// recordLost is told that a request record was not stored. If the cause is a write error the
// server keeps (IDL_REQUESTS met the full disk: records go on failing even once space is back),
// the store heals as for a failed append. The check runs in the background, at most one at a
// time.
func (s *Store) recordLost() {
	if s.srv == nil || !s.storage.checking.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.storage.checking.Store(false)
		if cause := s.writeFault(); cause != nil {
			s.startHealing(cause)
		}
	}()
}

// writeFault asks the embedded server whether JetStream is off or a stream holds a write
// error (sticky until the stream is reloaded); nil if neither.
func (s *Store) writeFault() error {
	if !s.srv.JetStreamEnabled() {
		return errors.New("eventstore: JetStream was disabled by the server")
	}
	h := s.srv.Healthz(&server.HealthzOptions{Details: true})
	if h == nil {
		return nil
	}
	for _, e := range h.Errors {
		if strings.Contains(e.Error, "write error") {
			return errors.New(e.Error)
		}
	}
	if strings.Contains(h.Error, "write error") {
		return errors.New(h.Error)
	}
	return nil
}

// startHealing enters the full state (appends are refused) and starts the healer once.
func (s *Store) startHealing(cause error) {
	st := &s.storage
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.full == nil {
		st.full, st.since = cause, time.Now()
		s.log.Error("event log storage failed: writes answer 507 until space is freed; the store heals by itself", "err", cause)
	}
	if !st.healing {
		select {
		case <-s.closed: // closing: nothing is to be healed any more
			return
		default:
		}
		st.healing = true
		s.healers.Add(1)
		go func() {
			defer s.healers.Done()
			s.heal()
		}()
	}
}

// heal waits until the volume has room, then reloads JetStream and leaves the full state.
func (s *Store) heal() {
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		select {
		case <-s.closed:
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 2*time.Second)
		if s.volumeNearlyFull() {
			continue
		}
		if err := s.reloadExclusively(); err != nil {
			s.log.Warn("event log storage: reloading JetStream failed; retrying", "attempt", attempt, "err", err)
			continue
		}
		st := &s.storage
		st.mu.Lock()
		down := time.Since(st.since)
		st.full, st.healing, st.checkedAt = nil, false, time.Time{}
		if st.reloaded != nil {
			close(st.reloaded)
			st.reloaded = nil
		}
		st.mu.Unlock()
		s.log.Info("event log storage recovered: writes resume", "refused_for", down.Round(time.Millisecond))
		return
	}
}

// reloadExclusively reloads JetStream once no append is in flight (and none starts until it is
// done), unless the store is closing.
func (s *Store) reloadExclusively() error {
	s.reload.Lock()
	defer s.reload.Unlock()
	select {
	case <-s.closed:
		return errors.New("the store is closing")
	default:
	}
	return s.reloadJetStream()
}

// reloadJetStream shuts JetStream down and enables it again with the options the server
// started with, then checks that the stream answers and holds no write error.
func (s *Store) reloadJetStream() error {
	if s.srv.JetStreamEnabled() {
		if err := s.srv.ShutdownJetStream(); err != nil {
			return fmt.Errorf("shut JetStream down: %w", err)
		}
	}
	o := s.srvOpts
	err := s.srv.EnableJetStream(&server.JetStreamConfig{
		StoreDir: o.StoreDir, SyncInterval: o.SyncInterval, SyncAlways: o.SyncAlways,
		MaxMemory: o.JetStreamMaxMemory, MaxStore: o.JetStreamMaxStore, Strict: !o.NoJetStreamStrict,
	})
	if err != nil {
		return fmt.Errorf("enable JetStream: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.stream.Info(ctx); err != nil {
		return fmt.Errorf("stream %s after the reload: %w", StreamName, err)
	}
	if err := s.writeFault(); err != nil {
		return err
	}
	return nil
}
