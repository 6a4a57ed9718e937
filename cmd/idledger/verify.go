package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/idledger/idledger/cmd/internal/cli"
)

// errVerifyFailed is returned when the log does not verify.
var errVerifyFailed = errors.New("the event log does not verify")

// auditVerify runs `idledger audit verify --data DIR`: it checks every message's hash chain and
// the stream's immutability settings and reports the first break precisely.
func auditVerify(ctx context.Context, e env, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o offlineFlags
	o.register(fs, e)
	if err := fs.Parse(args); err != nil {
		return cli.ErrUsage
	}
	store, err := o.openLog(ctx, stderr)
	if err != nil {
		return err
	}
	defer store.Close()
	bar := cli.NewProgress(stderr, "verify")
	r, err := store.Verify(ctx, bar.Update)
	bar.Done()
	if err != nil {
		return err
	}
	ok := true
	if r.Config != "" {
		ok = false
		fmt.Fprintf(stdout, "stream settings: NOT IMMUTABLE: %s\n", r.Config)
	} else {
		fmt.Fprintln(stdout, "stream settings: ok (deny delete, deny purge, discard new, no limits, no TTL, not sealed)")
	}
	if len(r.Breaks) > 0 {
		ok = false
		fmt.Fprintf(stdout, "hash chains: %d messages on %d subjects: %d break(s)\n", r.Messages, r.Subjects, len(r.Breaks))
		fmt.Fprintf(stdout, "first break: %s\n", r.Breaks[0])
		for _, b := range r.Breaks[1:min(len(r.Breaks), 20)] {
			fmt.Fprintf(stdout, "  also: %s\n", b)
		}
		if len(r.Breaks) > 20 {
			fmt.Fprintf(stdout, "  … and %d more\n", len(r.Breaks)-20)
		}
	} else {
		fmt.Fprintf(stdout, "hash chains: %d messages on %d subjects: ok\n", r.Messages, r.Subjects)
	}
	if !ok {
		return errVerifyFailed
	}
	return nil
}
