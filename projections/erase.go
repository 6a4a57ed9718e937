package projections

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Erasure (README "Personal data"). A deleted user's rows are gone from the read models, but
// bbolt never overwrites a freed page: the old bytes stay in the file until the page is
// reused. After an erasure the file is therefore rewritten: Compact copies every live key
// into a new file and renames it over the old one, so no freed page (and no erased person's
// value in one) survives in projections.db.

// compactTxSize is how many bytes bolt.Compact copies per transaction.
const compactTxSize = 64 << 20

// Compact rewrites the file with its live data only and swaps it in. Writes (the projector)
// wait for the time of the copy; readers go on with the old file and wait only for the swap.
// Calls that arrive while a compaction runs are served by one more compaction after it, not
// one each.
func (db *DB) Compact(ctx context.Context) error {
	my := db.compactAsked.Add(1)
	db.compactMu.Lock()
	defer db.compactMu.Unlock()
	if db.compactDone >= my {
		return nil // a compaction that began after this call was made has covered it
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	upTo := db.compactAsked.Load()
	if err := db.compact(); err != nil {
		return err
	}
	db.compactDone = upTo
	return nil
}

func (db *DB) compact() error {
	tmp := db.path + ".compact"
	if err := os.Remove(tmp); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("projections: compact: %w", err)
	}
	// No write from here to the swap; readers go on with the old file until the swap.
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.mu.RLock()
	src := db.bolt
	db.mu.RUnlock()
	if src == nil {
		return fmt.Errorf("projections: compact: %w", berrors.ErrDatabaseNotOpen)
	}
	// The new file is mapped at twice the old one's size from the start: bbolt remaps a file
	// that outgrows its mapping at a commit, copying every node of the transaction out of
	// the old mapping first, which made most of the time of a compaction (bolt.Compact
	// commits every compactTxSize bytes).
	var mmap int
	if fi, err := os.Stat(db.path); err == nil {
		mmap = int(min(2*fi.Size(), 1<<40))
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{NoSync: true, NoFreelistSync: true, FreelistType: bolt.FreelistMapType, InitialMmapSize: mmap})
	if err != nil {
		return fmt.Errorf("projections: compact: %w", err)
	}
	fail := func(err error) error {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("projections: compact: %w", err)
	}
	if err := bolt.Compact(dst, src, compactTxSize); err != nil {
		return fail(err)
	}
	if err := dst.Sync(); err != nil {
		return fail(err)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.bolt != src { // replaced meanwhile (Close)
		return fail(berrors.ErrDatabaseNotOpen)
	}
	if err := os.Rename(tmp, db.path); err != nil {
		return fail(err)
	}
	dst.NoSync = db.opts.NoSync
	old := db.bolt
	db.bolt = dst
	if d, err := os.Open(filepath.Dir(db.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return old.Close()
}
