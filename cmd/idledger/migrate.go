package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/idledger/idledger/cmd/internal/cli"
	"github.com/idledger/idledger/eventstore"
)

const migrateUsage = `idledger migrate encrypt --from DIR --to NEWDIR [--master-key-file FILE]

Writes a new log in NEWDIR/nats holding every event of DIR's log in the same order, with the
same ids, each person's personal data encrypted under their own data key and the hash chain
recomputed. The master key is FILE, or NEWDIR/master.key (generated: back it up). Run it with
the server stopped; then start the server on NEWDIR (it builds its read models from the log).
See README, "Personal data".
`

// migrateCmd runs `idledger migrate …`.
func migrateCmd(ctx context.Context, e env, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "encrypt" {
		fmt.Fprint(stderr, migrateUsage)
		return cli.ErrUsage
	}
	fs := flag.NewFlagSet("migrate encrypt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "data dir of the log to copy (read only)")
	to := fs.String("to", "", "new, empty data dir")
	keyFile := fs.String("master-key-file", e.MasterKeyFile, "master key of the new log (env IDLEDGER_MASTER_KEY_FILE; default NEWDIR/master.key, generated)")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 || *from == "" || *to == "" {
		fmt.Fprint(stderr, migrateUsage)
		return cli.ErrUsage
	}
	if _, err := os.Stat(filepath.Join(*to, "nats")); err == nil {
		return fmt.Errorf("%s already holds a log: migrate into a new, empty dir", *to)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	src := offlineFlags{DataDir: *from}
	old, err := src.openLog(ctx, stderr)
	if err != nil {
		return err
	}
	defer old.Close()
	if err := os.MkdirAll(*to, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	master, created, err := eventstore.LoadMasterKey(*to, *keyFile, true)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stderr, "generated %s, the master key of personal data: back it up\n", filepath.Join(*to, eventstore.DefaultMasterKeyFile))
	}
	dst := offlineFlags{DataDir: *to}
	cfg, err := dst.storeConfig(stderr, 8)
	if err != nil {
		return err
	}
	cfg.MasterKey = master
	store, err := eventstore.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	bar := cli.NewProgress(stderr, "migrate")
	st, err := store.MigrateEncrypt(ctx, old.Store, bar.Update)
	bar.Done()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "copied %d messages (%d with personal data, now encrypted) to %s; the log ends at seq %d\n",
		st.Messages, st.Sealed, *to, st.LastSeq)
	return nil
}
