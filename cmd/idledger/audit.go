package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/idledger/idledger/cmd/internal/cli"
	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/projections"
	"github.com/idledger/idledger/projections/usernames"
)

const auditUsage = `usage (offline: the server must be stopped; the same answers as /api/v1/audit and
/api/v1/provisioning/cycles, as JSON on stdout):
  idledger audit timeline --data DIR --tenant ID (--user ID | --user-name NAME | --group ID | --group-name NAME)
                          [--after SEQ] [--limit N]
  idledger audit state    --data DIR --tenant ID (--user ID | --group ID) [--as-of RFC3339]
      a user as it was then, or a group's members then (now without --as-of)
  idledger audit cycles   --data DIR --tenant ID [--before N] [--limit N] | --cycle N [--after SEQ] [--limit N]
  idledger audit export   --data DIR --tenant ID [--since T] [--until T]  > FILE
      the company's events as JSON Lines on stdout, a progress bar on stderr
  idledger audit import   --data NEWDIR [FILE]   (FILE or stdin)
      append an export to a log without that company and rebuild the read models
  idledger audit verify   --data DIR
      check the log's hash chains and immutability settings
`

// auditCmd runs `idledger audit ...`.
func auditCmd(ctx context.Context, e env, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return cli.ErrUsage
	}
	switch args[0] {
	case "timeline":
		return auditTimeline(ctx, e, args[1:], stdout, stderr)
	case "state":
		return auditState(ctx, e, args[1:], stdout, stderr)
	case "cycles":
		return auditCycles(ctx, e, args[1:], stdout, stderr)
	case "export":
		return auditExport(ctx, e, args[1:], stdout, stderr)
	case "import":
		return auditImport(ctx, e, args[1:], stdout, stderr)
	case "verify":
		return auditVerify(ctx, e, args[1:], stdout, stderr) // verify.go
	case "-h", "--help", "help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown audit command %q\n\n%s", args[0], auditUsage)
	return cli.ErrUsage
}

// auditFlags are the flags of the offline audit queries.
type auditFlags struct {
	offlineFlags
	Tenant string
}

func newAuditFlags(name string, e env, stderr io.Writer) (*flag.FlagSet, *auditFlags) {
	fs := flag.NewFlagSet("audit "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &auditFlags{}
	f.register(fs, e)
	fs.StringVar(&f.Tenant, "tenant", "", "company id (required)")
	return fs, f
}

// parse parses args and requires --tenant.
func (f *auditFlags) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return cli.ErrUsage
	}
	if f.Tenant == "" || fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s needs --tenant ID and no other arguments\n", fs.Name())
		return cli.ErrUsage
	}
	return nil
}

// open opens the log offline and returns the audit over it; close releases the log.
func (f *auditFlags) open(ctx context.Context, stderr io.Writer) (*audit.Service, func(), error) {
	store, err := f.openLog(ctx, stderr)
	if err != nil {
		return nil, nil, err
	}
	a := &audit.Service{Log: store, History: store, Requests: store, Now: time.Now, Names: usernames.Rule{}}
	return a, func() { store.Close() }, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func auditTimeline(ctx context.Context, e env, args []string, stdout, stderr io.Writer) error {
	fs, f := newAuditFlags("timeline", e, stderr)
	var user, userName, group, groupName string
	var after uint64
	var limit int
	fs.StringVar(&user, "user", "", "user id")
	fs.StringVar(&userName, "user-name", "", "userName (every user that ever held it, deleted ones too)")
	fs.StringVar(&group, "group", "", "group id")
	fs.StringVar(&groupName, "group-name", "", "group displayName")
	fs.Uint64Var(&after, "after", 0, "start after this log position (the previous page's next)")
	fs.IntVar(&limit, "limit", audit.DefaultPageSize, "entries per page (at most 1000)")
	if err := f.parse(fs, args); err != nil {
		return err
	}
	set := 0
	for _, v := range []string{user, userName, group, groupName} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		fmt.Fprintln(stderr, "audit timeline needs exactly one of --user, --user-name, --group, --group-name")
		return cli.ErrUsage
	}
	a, closeLog, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	p := audit.Page{After: domain.Version(after), Limit: limit}
	tenant := domain.TenantID(f.Tenant)
	var t audit.Timeline
	switch {
	case user != "":
		t, err = a.Timeline(ctx, tenant, domain.KindUser, user, p)
	case group != "":
		t, err = a.Timeline(ctx, tenant, domain.KindGroup, group, p)
	case userName != "":
		t, err = a.TimelineByName(ctx, tenant, domain.KindUser, userName, p)
	default:
		t, err = a.TimelineByName(ctx, tenant, domain.KindGroup, groupName, p)
	}
	if err != nil {
		return err
	}
	return printJSON(stdout, t)
}

func auditState(ctx context.Context, e env, args []string, stdout, stderr io.Writer) error {
	fs, f := newAuditFlags("state", e, stderr)
	var user, group, asOf string
	fs.StringVar(&user, "user", "", "user id: the user as it was")
	fs.StringVar(&group, "group", "", "group id: its members then")
	fs.StringVar(&asOf, "as-of", "", "RFC 3339 time (default now)")
	if err := f.parse(fs, args); err != nil {
		return err
	}
	if (user == "") == (group == "") {
		fmt.Fprintln(stderr, "audit state needs one of --user, --group")
		return cli.ErrUsage
	}
	at := time.Now().UTC()
	if asOf != "" {
		t, err := parseTime(asOf)
		if err != nil {
			return err
		}
		at = t
	}
	a, closeLog, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	if user != "" {
		snap, err := a.UserAt(ctx, domain.TenantID(f.Tenant), domain.UserID(user), at)
		if err != nil {
			return err
		}
		return printJSON(stdout, snap)
	}
	snap, err := a.MembersAt(ctx, domain.TenantID(f.Tenant), domain.GroupID(group), at)
	if err != nil {
		return err
	}
	return printJSON(stdout, snap)
}

func auditCycles(ctx context.Context, e env, args []string, stdout, stderr io.Writer) error {
	fs, f := newAuditFlags("cycles", e, stderr)
	var cycle, before, limit int
	var after uint64
	fs.IntVar(&cycle, "cycle", 0, "one cycle with its changes and failed requests")
	fs.Uint64Var(&after, "after", 0, "with --cycle: changes after this log position (the previous page's next)")
	fs.IntVar(&before, "before", 0, "list cycles numbered below this one")
	fs.IntVar(&limit, "limit", 20, "cycles (or with --cycle, changes) per page")
	if err := f.parse(fs, args); err != nil {
		return err
	}
	a, closeLog, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	if cycle > 0 {
		d, err := a.Cycle(ctx, domain.TenantID(f.Tenant), cycle, audit.Page{After: domain.Version(after), Limit: limit})
		if err != nil {
			return err
		}
		return printJSON(stdout, d)
	}
	cycles, next, err := a.Cycles(ctx, domain.TenantID(f.Tenant), audit.Page{Before: before, Limit: limit})
	if err != nil {
		return err
	}
	return printJSON(stdout, struct {
		Cycles     []audit.CycleSummary `json:"cycles"`
		NextBefore int                  `json:"nextBefore,omitempty"`
	}{cycles, next})
}

// parseTime accepts RFC 3339 or a date (midnight UTC).
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time (2026-11-20T09:00:00Z) or a date (2026-11-20)", s)
}

func auditExport(ctx context.Context, e env, args []string, stdout, stderr io.Writer) error {
	fs, f := newAuditFlags("export", e, stderr)
	var since, until string
	fs.StringVar(&since, "since", "", "only events that happened at or after this time (RFC 3339 or a date); such an export cannot be imported")
	fs.StringVar(&until, "until", "", "only events that happened at or before this time")
	if err := f.parse(fs, args); err != nil {
		return err
	}
	var opt eventstore.ExportOptions
	var err error
	if since != "" {
		if opt.Since, err = parseTime(since); err != nil {
			return err
		}
	}
	if until != "" {
		if opt.Until, err = parseTime(until); err != nil {
			return err
		}
	}
	store, err := f.openLog(ctx, stderr)
	if err != nil {
		return err
	}
	defer store.Close()
	bar := cli.NewProgress(stderr, "export")
	opt.Progress = bar.Update
	start := time.Now()
	st, err := store.Export(ctx, domain.TenantID(f.Tenant), stdout, opt)
	bar.Done()
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(stderr, "exported %d of %d messages of company %s (%d bytes, through seq %d) in %s (%.0f messages/s)\n",
		st.Messages, st.Read, f.Tenant, st.Bytes, st.LastSeq, elapsed.Round(time.Millisecond), float64(st.Read)/max(elapsed.Seconds(), 1e-9))
	return nil
}

func auditImport(ctx context.Context, e env, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o offlineFlags
	o.register(fs, e)
	if err := fs.Parse(args); err != nil || fs.NArg() > 1 {
		return cli.ErrUsage
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// The read-model file first: its lock keeps a server away while we write.
	path := filepath.Join(o.DataDir, "projections.db")
	db, err := projections.Open(path, projections.Options{})
	if errors.Is(err, projections.ErrLocked) {
		return fmt.Errorf("%w (%s is locked)", errServerRunning, path)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	// The export's data keys are wrapped under this data dir's master key: make one if needed.
	if _, created, err := eventstore.LoadMasterKey(o.DataDir, o.MasterKeyFile, true); err != nil {
		return err
	} else if created {
		fmt.Fprintf(stderr, "generated %s, the master key of personal data: back it up\n", filepath.Join(o.DataDir, eventstore.DefaultMasterKeyFile))
	}
	cfg, err := o.storeConfig(stderr, slog.LevelError)
	if err != nil {
		return err
	}
	store, err := eventstore.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()

	in, cleanup, err := importSource(fs.Arg(0), o.DataDir)
	if err != nil {
		return err
	}
	defer cleanup()
	bar := cli.NewProgress(stderr, "import")
	st, err := store.Import(ctx, in, eventstore.ImportOptions{Progress: bar.Update})
	bar.Done()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d messages of company %s (log now ends at seq %d)\n", st.Messages, st.Tenant, st.LastSeq)
	head, err := store.Head(ctx)
	if err != nil {
		return err
	}
	cp, err := db.Checkpoint()
	if err != nil {
		return err
	}
	bar = cli.NewProgress(stderr, "read models")
	err = projections.Replay(ctx, db, store, head, bar.Update)
	bar.Done()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "read models in %s applied the log from seq %d to %d\n", path, cp+1, head)
	return nil
}

// importSource returns the export to read twice: the named file, or stdin spooled into a
// private temporary file in dir (it holds personal data) that cleanup removes.
func importSource(name, dir string) (io.ReadSeeker, func(), error) {
	if name != "" && name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, err
		}
		return f, func() { f.Close() }, nil
	}
	tmp, err := os.CreateTemp(dir, "import-*.jsonl")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { tmp.Close(); os.Remove(tmp.Name()) }
	if _, err := io.Copy(tmp, bufio.NewReaderSize(os.Stdin, 1<<20)); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("read the export from stdin: %w", err)
	}
	return tmp, cleanup, nil
}
