package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/idledger/idledger/cmd/internal/cli"
	"github.com/idledger/idledger/eventstore"
)

// offlineFlags are the flags every offline command shares: where the data lives.
type offlineFlags struct {
	DataDir  string
	NATSURL  string
	Replicas int // IDLEDGER_NATS_REPLICAS; 0: as serve does (1 embedded, 3 with a URL)
	// MasterKeyFile is the master key of personal data (empty: DIR/master.key if present).
	MasterKeyFile string
}

// register adds --data and --nats-url to fs, with the environment's defaults.
func (o *offlineFlags) register(fs *flag.FlagSet, e env) {
	o.Replicas = e.Replicas
	fs.StringVar(&o.DataDir, "data", "./data", "data directory of the server (DIR/nats, DIR/projections.db)")
	fs.StringVar(&o.NATSURL, "nats-url", e.NATSURL, "external NATS URL; empty opens the embedded store in DIR/nats (env IDLEDGER_NATS_URL)")
	fs.StringVar(&o.MasterKeyFile, "master-key-file", e.MasterKeyFile, "master key of personal data (env IDLEDGER_MASTER_KEY_FILE; default DIR/master.key)")
}

// storeConfig is the configuration of the event log an offline command opens, logging to
// stderr at the given level.
func (o *offlineFlags) storeConfig(stderr io.Writer, level slog.Level) (eventstore.Config, error) {
	master, _, err := eventstore.LoadMasterKey(o.DataDir, o.MasterKeyFile, false)
	if err != nil {
		return eventstore.Config{}, err
	}
	replicas := o.Replicas
	if replicas == 0 && o.NATSURL != "" {
		replicas = 3 // as serve does with a URL
	}
	return eventstore.Config{Dir: o.DataDir, URL: o.NATSURL, Replicas: replicas, Logger: cli.NewLogger(stderr, level), MasterKey: master}, nil
}

// errServerRunning is returned when a running server holds the data dir.
var errServerRunning = errors.New("the data dir is in use: an idledger server is running on it; stop it first (or use the online admin API)")

// holdDataDir takes a shared lock on DIR/projections.db for as long as an offline command that
// only reads the log runs: a running server holds it exclusively, so the command refuses to
// start next to a server, and a server refuses to start while the command runs. nats-server
// does not lock its store directory itself. It returns the release function.
func holdDataDir(dir string) (func(), error) {
	path := filepath.Join(dir, "projections.db")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return func() {}, nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, errServerRunning
	}
	if err != nil {
		return nil, err
	}
	return func() { db.Close() }, nil
}

// offlineStore is the event log of an offline command; Close also releases the data dir.
type offlineStore struct {
	*eventstore.Store
	release func()
}

// Close closes the log, then releases the data dir.
func (s *offlineStore) Close() error {
	err := s.Store.Close()
	s.release()
	return err
}

// openLog opens the event log of an offline command that does not write the read models: the
// embedded store in DIR/nats, or an external NATS. It refuses a data dir that a running server
// holds, and a dir without a log.
func (o *offlineFlags) openLog(ctx context.Context, stderr io.Writer) (*offlineStore, error) {
	release := func() {}
	if o.NATSURL == "" {
		if _, err := os.Stat(filepath.Join(o.DataDir, "nats")); err != nil {
			return nil, fmt.Errorf("no event log in %s (expected %s): %w", o.DataDir, filepath.Join(o.DataDir, "nats"), err)
		}
		var err error
		if release, err = holdDataDir(o.DataDir); err != nil {
			return nil, err
		}
	}
	cfg, err := o.storeConfig(stderr, 8)
	if err != nil {
		release()
		return nil, err
	}
	s, err := eventstore.Open(ctx, cfg)
	if err != nil {
		release()
		return nil, err
	}
	return &offlineStore{Store: s, release: release}, nil
}
