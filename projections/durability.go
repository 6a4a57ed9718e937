package projections

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// # Lazy sync
//
// The read models are derived data: the event log is what must survive a power cut, and it
// is fsynced before every acknowledgement. Fsyncing the read-model file at every projector
// commit as well (two fdatasyncs per bbolt commit) puts a second writer on the same disk, in
// the path of every write that waits to see its own result: measured, the projector's
// fdatasyncs take a third of the disk's time during a provisioning cycle.
//
// With Options.LazySync the file is committed without fsync. That is safe against a crash of
// the process: bbolt writes a commit's pages before its meta page, and both are in the
// kernel's page cache the moment write returns, so a killed process leaves a consistent file
// (the kill test in cmd/idledger proves it). It is not safe against a crash of the machine:
// after a power cut the disk may hold any subset of the unsynced pages. So while the file is
// open with lazy sync, a marker file next to it (projections.db.unsynced) holds the kernel's
// boot id. Close syncs the file and removes the marker. Open finds a marker left by a crash:
//
//   - same boot id: only the process died, the page cache still holds every write, and the
//     file is used as it is;
//   - another boot id (or an unreadable marker): the machine went down with unsynced writes,
//     and Open returns ErrUnsynced: the file must be discarded and rebuilt from the log.
//
// Where the boot id cannot be read (not Linux), LazySync falls back to fsync on every commit.

// ErrUnsynced is returned by Open when the file was being written without fsync and the
// machine has restarted since: its content cannot be trusted. Remove it (RemoveUnsynced) and
// rebuild the read models from the log.
var ErrUnsynced = errors.New("projections: the read-model file was written without fsync and the machine restarted before it was synced")

// bootIDPath is where Linux publishes the id of the running kernel's boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// markerPath is the lazy-sync marker of the file at path.
func markerPath(path string) string { return path + ".unsynced" }

// currentBoot returns the id of the current boot, or "" if it is unknown.
func (o Options) currentBoot() string {
	if o.bootID != "" {
		return o.bootID
	}
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

// checkMarker reports whether a lazy-sync marker lies next to path, and returns ErrUnsynced if
// it is another boot's.
func checkMarker(path, boot string) (bool, error) {
	b, err := os.ReadFile(markerPath(path))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("%w: %s: reading its marker: %w", ErrUnsynced, path, err)
	}
	if boot == "" || string(bytes.TrimSpace(b)) != boot {
		return true, fmt.Errorf("%w: %s (written during boot %q, this is boot %q)", ErrUnsynced, path, bytes.TrimSpace(b), boot)
	}
	return true, nil
}

// writeMarker durably records that path is about to be written without fsync during boot.
func writeMarker(path, boot string) error {
	m := markerPath(path)
	if b, err := os.ReadFile(m); err == nil && string(bytes.TrimSpace(b)) == boot {
		return nil
	}
	tmp := m + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("projections: write %s: %w", m, err)
	}
	_, err = f.WriteString(boot + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, m)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("projections: write %s: %w", m, err)
	}
	return syncDir(filepath.Dir(path))
}

// removeMarker removes path's marker once the file has been synced.
func removeMarker(path string) error {
	if err := os.Remove(markerPath(path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("projections: remove %s: %w", markerPath(path), err)
	}
	return syncDir(filepath.Dir(path))
}

// RemoveUnsynced deletes a read-model file that Open refused with ErrUnsynced, and its marker.
func RemoveUnsynced(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("projections: remove %s: %w", path, err)
	}
	return removeMarker(path)
}

// syncDir makes renames and removals in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("projections: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("projections: sync %s: %w", dir, err)
	}
	return nil
}
