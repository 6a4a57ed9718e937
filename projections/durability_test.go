package projections

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// putMeta commits one key in the meta bucket.
func putMeta(t *testing.T, db *DB, key, value string) {
	t.Helper()
	if err := db.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte(key), []byte(value)) }); err != nil {
		t.Fatal(err)
	}
}

func getMeta(t *testing.T, db *DB, key string) string {
	t.Helper()
	var v string
	if err := db.view(func(tx *bolt.Tx) error { v = string(tx.Bucket(bucketMeta).Get([]byte(key))); return nil }); err != nil {
		t.Fatal(err)
	}
	return v
}

// copyFile copies src to dst as the page cache has it (what survives a killed process).
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestLazySyncMarker(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "projections.db")
	db, err := Open(path, Options{LazySync: true, bootID: "boot-A"})
	if err != nil {
		t.Fatal(err)
	}
	if !db.bolt.NoSync {
		t.Fatal("a lazily synced file commits with fsync")
	}
	if !exists(markerPath(path)) {
		t.Fatal("no marker while the file is written without fsync")
	}
	putMeta(t, db, "k", "v1")

	// The process dies: what the page cache holds is the file, the marker stays.
	crashed := filepath.Join(t.TempDir(), "projections.db")
	copyFile(t, path, crashed)
	copyFile(t, markerPath(path), markerPath(crashed))

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if exists(markerPath(path)) {
		t.Fatal("Close left the marker")
	}
	db, err = Open(path, Options{LazySync: true, bootID: "boot-B"})
	if err != nil {
		t.Fatalf("a cleanly closed file is refused after a reboot: %v", err)
	}
	if got := getMeta(t, db, "k"); got != "v1" {
		t.Fatalf("after a clean close: %q", got)
	}
	db.Close()

	t.Run("process crash, same boot: the file is used", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "projections.db")
		copyFile(t, crashed, p)
		copyFile(t, markerPath(crashed), markerPath(p))
		db, err := Open(p, Options{LazySync: true, bootID: "boot-A"})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if got := getMeta(t, db, "k"); got != "v1" {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("process crash, opened with fsync: synced and the marker removed", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "projections.db")
		copyFile(t, crashed, p)
		copyFile(t, markerPath(crashed), markerPath(p))
		db, err := Open(p, Options{bootID: "boot-A"})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if exists(markerPath(p)) {
			t.Fatal("marker kept")
		}
		if db.bolt.NoSync {
			t.Fatal("opened without LazySync but commits without fsync")
		}
	})

	t.Run("machine crash: refused, removed, rebuilt empty", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "projections.db")
		copyFile(t, crashed, p)
		copyFile(t, markerPath(crashed), markerPath(p))
		for _, o := range []Options{{LazySync: true, bootID: "boot-B"}, {bootID: "boot-B"}} {
			if _, err := Open(p, o); !errors.Is(err, ErrUnsynced) {
				t.Fatalf("Open(%+v) = %v, want ErrUnsynced", o, err)
			}
		}
		if err := RemoveUnsynced(p); err != nil {
			t.Fatal(err)
		}
		db, err := Open(p, Options{LazySync: true, bootID: "boot-B"})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if got := getMeta(t, db, "k"); got != "" {
			t.Fatalf("the discarded file's content is back: %q", got)
		}
		if cp, err := db.Checkpoint(); err != nil || cp != 0 {
			t.Fatalf("checkpoint %d, %v", cp, err)
		}
	})

}
