package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/idledger/idledger/eventstore"
)

// offlineFlags are the flags every offline command shares: where the data lives.
type offlineFlags struct {
	DataDir string
	NATSURL string
}

// register adds --data and --nats-url to fs.
func (o *offlineFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.DataDir, "data", "./data", "data directory of the server (DIR/nats, DIR/projections.db)")
	fs.StringVar(&o.NATSURL, "nats-url", os.Getenv("IDLEDGER_NATS_URL"), "external NATS URL; empty opens the embedded store in DIR/nats (env IDLEDGER_NATS_URL)")
}

// errServerRunning is returned when a running server holds the data dir.
var errServerRunning = errors.New("the data dir is in use: an idledger server is running on it; stop it first (or use the online admin API)")

// checkNotRunning fails when a running server holds DIR: the server keeps the read-model file
// locked for as long as it runs, so a short lock attempt tells (without changing anything).
func checkNotRunning(dir string) error {
	path := filepath.Join(dir, "projections.db")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return errServerRunning
	}
	if err != nil {
		return err
	}
	return db.Close()
}

// openLog opens the event log of an offline command: the embedded store in DIR/nats, or an
// external NATS. It refuses a data dir that a running server holds, and a dir without a log.
func (o *offlineFlags) openLog(ctx context.Context, stderr io.Writer) (*eventstore.Store, error) {
	if o.NATSURL == "" {
		if err := checkNotRunning(o.DataDir); err != nil {
			return nil, err
		}
		if _, err := os.Stat(filepath.Join(o.DataDir, "nats")); err != nil {
			return nil, fmt.Errorf("no event log in %s (expected %s): %w", o.DataDir, filepath.Join(o.DataDir, "nats"), err)
		}
	}
	s, err := eventstore.Open(ctx, eventstore.Config{Dir: o.DataDir, URL: o.NATSURL, Logger: newLogger(stderr, 8)})
	if err != nil {
		return nil, err
	}
	return s, nil
}
