package projections

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpen_Recover: with Recover, Open replaces a file the log must rebuild (left unsynced by a
// machine crash, or damaged) by an empty one and says so in the log; without it, Open refuses
// the file and leaves it where it is.
func TestOpen_Recover(t *testing.T) {
	at := time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)

	t.Run("unsynced by a machine crash: removed", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "projections.db")
		db, err := Open(p, Options{LazySync: true, bootID: "boot-A"})
		if err != nil {
			t.Fatal(err)
		}
		putMeta(t, db, "k", "v1")
		db.bolt.Close() // the machine goes down: no sync, the marker stays

		if _, err := Open(p, Options{LazySync: true, bootID: "boot-B"}); !errors.Is(err, ErrUnsynced) {
			t.Fatalf("Open without Recover = %v, want ErrUnsynced", err)
		}
		var logs bytes.Buffer
		db, err = Open(p, Options{LazySync: true, Recover: true, Logger: slog.New(slog.NewTextHandler(&logs, nil)), bootID: "boot-B"})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if got := getMeta(t, db, "k"); got != "" {
			t.Errorf("the unsynced file's content is back: %q", got)
		}
		if !strings.Contains(logs.String(), "not synced") {
			t.Errorf("log does not say why the read models are rebuilt:\n%s", logs.String())
		}
	})

	t.Run("damaged: moved aside", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "projections.db")
		damaged := bytes.Repeat([]byte("not a bbolt file "), 1024)
		if err := os.WriteFile(p, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(p, Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open without Recover = %v, want ErrCorrupt", err)
		}
		var logs bytes.Buffer
		db, err := Open(p, Options{Recover: true, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		aside := p + ".corrupt-20261120T093000Z"
		if b, err := os.ReadFile(aside); err != nil || !bytes.Equal(b, damaged) {
			t.Errorf("damaged file not kept as %s: %v", aside, err)
		}
		if cp, err := db.Checkpoint(); err != nil || cp != 0 {
			t.Errorf("new file: checkpoint %d, %v", cp, err)
		}
		if !strings.Contains(logs.String(), "damaged") || !strings.Contains(logs.String(), aside) {
			t.Errorf("log does not name the damage and where the file went:\n%s", logs.String())
		}
	})
}
