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
	"strconv"
	"time"

	"github.com/idledger/idledger/cmd/internal/cli"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/projections"
)

// errProjectionsDiffer is returned by `projections check` when the read models do not match
// the log.
var errProjectionsDiffer = errors.New("the read models differ from the log")

// maxShownDifferences bounds how many differing rows `projections check` prints.
const maxShownDifferences = 50

const projectionsUsage = `usage:
  idledger projections rebuild --data DIR [--nats-url URL]
      rebuild every read model from the log into DIR/projections.db.rebuild, then rename it
      over DIR/projections.db (the server must be stopped; online: POST /admin/v1/projections/rebuild)
  idledger projections check --data DIR [--nats-url URL]
      replay the log into a temporary file and compare it with DIR/projections.db; prints each
      difference and exits non-zero on any
`

// projectionsCmd runs `idledger projections rebuild|check`.
func projectionsCmd(ctx context.Context, e env, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, projectionsUsage)
		return cli.ErrUsage
	}
	switch args[0] {
	case "rebuild":
		return projectionsRebuild(ctx, e, args[1:], stdout, stderr)
	case "check":
		return projectionsCheck(ctx, e, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, projectionsUsage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown projections command %q\n\n%s", args[0], projectionsUsage)
	return cli.ErrUsage
}

// offlineProjections is what the offline projection commands open: the read-model file
// (first: its lock tells whether a server runs on DIR) and the log.
type offlineProjections struct {
	db    *projections.DB
	store *eventstore.Store
}

func (o *offlineProjections) Close() {
	if o.db != nil {
		o.db.Close()
	}
	if o.store != nil {
		o.store.Close()
	}
}

// openProjections opens DIR/projections.db (inspect: as it is, for reading) and then the log,
// holding the file's lock throughout. The lock is what keeps a server and this command apart:
// nats-server does not lock its store directory, so two processes would happily open DIR/nats
// together and damage it.
func openProjections(ctx context.Context, f offlineFlags, inspect bool, stderr io.Writer) (*offlineProjections, error) {
	if f.NATSURL == "" {
		if _, err := os.Stat(filepath.Join(f.DataDir, "nats")); err != nil {
			return nil, fmt.Errorf("no event log in %s (expected %s): %w", f.DataDir, filepath.Join(f.DataDir, "nats"), err)
		}
	}
	path := filepath.Join(f.DataDir, "projections.db")
	db, err := projections.Open(path, projections.Options{Inspect: inspect})
	if !inspect && errors.Is(err, projections.ErrUnsynced) {
		// Left unsynced by a machine crash: worthless, and rebuilding is what we are here for.
		fmt.Fprintf(stderr, "%v: discarding it\n", err)
		if rerr := projections.RemoveUnsynced(path); rerr != nil {
			return nil, rerr
		}
		db, err = projections.Open(path, projections.Options{})
	}
	switch {
	case errors.Is(err, projections.ErrLocked):
		return nil, fmt.Errorf("%w (%s is locked)", errServerRunning, path)
	case inspect && errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("no read models to check in %s (%s does not exist; the server or `idledger projections rebuild` creates it)", f.DataDir, path)
	case err != nil:
		return nil, fmt.Errorf("%w (if the file is damaged, delete it: the server rebuilds it from the log at start)", err)
	}
	o := &offlineProjections{db: db}
	cfg, err := f.storeConfig(stderr, slog.LevelError)
	if err == nil {
		o.store, err = eventstore.Open(ctx, cfg)
	}
	if err != nil {
		o.Close()
		return nil, err
	}
	return o, nil
}

// projectionsRebuild runs `idledger projections rebuild`.
func projectionsRebuild(ctx context.Context, e env, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("projections rebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f offlineFlags
	f.register(fs, e)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return cli.ErrUsage
	}
	o, err := openProjections(ctx, f, false, stderr)
	if err != nil {
		return err
	}
	defer o.Close()
	// The projector's own log lines would interleave with the bar; its errors come back.
	p := projections.NewProjector(o.db, o.store, projections.ProjectorConfig{Logger: slog.New(slog.DiscardHandler)})
	start := time.Now()
	bar := cli.NewProgress(stderr, "rebuild")
	err = p.Rebuild(ctx, bar.Update)
	bar.Done()
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	cp := p.Checkpoint()
	fmt.Fprintf(stdout, "rebuilt %s from the log: %d events in %s (%.0f events/s)\n",
		o.db.Path(), cp, elapsed.Round(time.Millisecond), float64(cp)/max(elapsed.Seconds(), 1e-9))
	return nil
}

// projectionsCheck runs `idledger projections check`.
func projectionsCheck(ctx context.Context, e env, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("projections check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f offlineFlags
	f.register(fs, e)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return cli.ErrUsage
	}
	o, err := openProjections(ctx, f, true, stderr)
	if err != nil {
		return err
	}
	defer o.Close()
	if schema, err := o.db.Schema(); err != nil {
		return err
	} else if schema != strconv.Itoa(projections.SchemaVersion) {
		fmt.Fprintf(stdout, "%s has projection schema %q, this idledger writes %d: the server rebuilds it at its next start (or run `idledger projections rebuild`)\n",
			o.db.Path(), schema, projections.SchemaVersion)
		return errProjectionsDiffer
	}
	cp, err := o.db.Checkpoint()
	if err != nil {
		return err
	}
	head, err := o.store.Head(ctx)
	if err != nil {
		return err
	}
	if cp > head {
		fmt.Fprintf(stdout, "%s has checkpoint %d but the log ends at %d: the read models belong to another log\n", o.db.Path(), cp, head)
		return errProjectionsDiffer
	}

	// The replay goes to a temporary file, never near the real one, up to the stored
	// checkpoint exactly: a file that lags the log is not wrong, only behind.
	tmp, err := os.MkdirTemp("", "idledger-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fresh, err := projections.Open(filepath.Join(tmp, "projections.db"), projections.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer fresh.Close()
	bar := cli.NewProgress(stderr, "replay")
	err = projections.Replay(ctx, fresh, o.store, cp, bar.Update)
	bar.Done()
	if err != nil {
		return err
	}
	diffs, n, err := projections.Diff(o.db, fresh, maxShownDifferences)
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintf(stdout, "projections match the log (%d events)\n", cp)
		if head > cp {
			fmt.Fprintf(stdout, "the log has %d newer events; the server applies them when it starts\n", head-cp)
		}
		return nil
	}
	show := func(in bool, v string) string {
		if !in {
			return "(absent)"
		}
		return v
	}
	for _, d := range diffs {
		fmt.Fprintf(stdout, "%s %s\n  stored:   %s\n  replayed: %s\n", d.Bucket, d.Key, show(d.InA, d.A), show(d.InB, d.B))
	}
	more := ""
	if n > len(diffs) {
		more = fmt.Sprintf(" (first %d shown)", len(diffs))
	}
	fmt.Fprintf(stdout, "%d rows of %s differ from the log replayed to seq %d%s; `idledger projections rebuild` replaces them\n",
		n, o.db.Path(), cp, more)
	return errProjectionsDiffer
}
