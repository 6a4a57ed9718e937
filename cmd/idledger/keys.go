package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/idledger/idledger/cmd/internal/cli"
	"github.com/idledger/idledger/eventstore"
)

const keysUsage = `idledger keys rotate-master --data DIR --new-key-file FILE [--master-key-file OLD]

Wraps every person's data key anew under the master key in FILE (64 hexadecimal digits; make
one with: openssl rand -hex 32 > FILE; chmod 600 FILE) and deletes, securely, each copy wrapped
under the current master key (--master-key-file, default DIR/master.key). Run it with the
server stopped; it may be run again after an interruption. Afterwards start every instance
with --master-key-file FILE (or move FILE to DIR/master.key), then destroy the old key and its
backups.
`

// keysCmd runs `idledger keys …`.
func keysCmd(ctx context.Context, e env, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate-master" {
		fmt.Fprint(stderr, keysUsage)
		return cli.ErrUsage
	}
	fs := flag.NewFlagSet("keys rotate-master", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o offlineFlags
	o.register(fs, e)
	newFile := fs.String("new-key-file", "", "file of the new master key (64 hexadecimal digits)")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 || *newFile == "" {
		fmt.Fprint(stderr, keysUsage)
		return cli.ErrUsage
	}
	next, err := eventstore.ReadMasterKeyFile(*newFile)
	if err != nil {
		return err
	}
	cfg, err := o.storeConfig(stderr, 8)
	if err != nil {
		return err
	}
	if cfg.MasterKey == nil {
		return fmt.Errorf("no master key in %s (give --master-key-file)", o.DataDir)
	}
	cfg.NextMasterKey = next
	release, err := holdDataDir(o.DataDir)
	if err != nil {
		return err
	}
	defer release()
	store, err := eventstore.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	bar := cli.NewProgress(stderr, "rotate")
	n, err := store.RotateMasterKey(ctx, bar.Update)
	bar.Done()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "re-wrapped %d data keys under master key %s (was %s): start the server with --master-key-file %s, then destroy the old key\n",
		n, next.ID(), cfg.MasterKey.ID(), *newFile)
	return nil
}
