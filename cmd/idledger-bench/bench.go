package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/idledger/idledger/cmd/internal/cli"
)

// benchProfile sizes one run.
type benchProfile struct {
	Name        string `json:"name"`
	Users       int    `json:"users"`
	Groups      int    `json:"groups"`
	MembersAvg  int    `json:"members_avg"`
	Concurrency int    `json:"concurrency"`
	// Incremental cycle: percentages of users patched, disabled and renamed, of groups whose
	// members change.
	IncPatchPct   float64 `json:"inc_patch_pct"`
	IncDisablePct float64 `json:"inc_disable_pct"`
	IncRenamePct  float64 `json:"inc_rename_pct"`
	IncGroupPct   int     `json:"inc_group_pct"`
	// LimitOps is the number of messages of each append limit; the others scale from it.
	LimitOps    int `json:"limit_ops"`
	LookupOps   int `json:"lookup_ops"`
	SAMLLogins  int `json:"saml_logins"`
	AsOfQueries int `json:"asof_queries"`
	// Reads is the number of match queries of the reads-only figure.
	Reads int `json:"reads"`
}

var benchProfiles = map[string]benchProfile{
	"default": {Name: "default", Users: 100_000, Groups: 2_000, MembersAvg: 20, Concurrency: 32,
		IncPatchPct: 5, IncDisablePct: 2, IncRenamePct: 1, IncGroupPct: 10,
		LimitOps: 10_000, LookupOps: 200_000, SAMLLogins: 1_000, AsOfQueries: 3_000, Reads: 10_000},
	"short": {Name: "short", Users: 10_000, Groups: 200, MembersAvg: 20, Concurrency: 32,
		IncPatchPct: 5, IncDisablePct: 2, IncRenamePct: 1, IncGroupPct: 10,
		LimitOps: 3_000, LookupOps: 50_000, SAMLLogins: 300, AsOfQueries: 2_000, Reads: 5_000},
	// tiny is for the unit test: every phase runs, in seconds.
	"tiny": {Name: "tiny", Users: 200, Groups: 8, MembersAvg: 5, Concurrency: 8,
		IncPatchPct: 5, IncDisablePct: 2, IncRenamePct: 1, IncGroupPct: 25,
		LimitOps: 100, LookupOps: 1_000, SAMLLogins: 8, AsOfQueries: 40, Reads: 100},
}

// benchConfig is one run's settings.
type benchConfig struct {
	Profile  benchProfile
	DataDir  string // "" makes a fresh temp dir, removed at the end unless Keep
	Keep     bool
	Out      string // JSON results; the CPU profile goes next to it
	Doc      string // Markdown file whose profile section is replaced; "" writes none
	Command  string
	Baseline bool // run the in-memory SCIM baseline
	// NoSync runs the server and the JetStream limits without fsync before acknowledgement
	// (not durable): for comparison, and for the unit test, whose disk may be busy.
	NoSync bool
	// Trace, if set, is where an execution trace of the first seconds of the initial cycle's
	// manager step (writes only) is written: go tool trace -pprof=sync|syscall|net FILE.
	Trace string
	// Only, if not empty, names the sections to run (benchSections); the server's initial
	// cycle runs whenever a server section is named, since they all read what it wrote. Such a
	// run is no profile's record.
	Only map[string]bool
}

// benchSections are the names -only accepts, in the order they run.
var benchSections = []string{"baseline", "reads", "incremental", "replay", "feed", "saml", "console", "fairness", "privacy", "limits"}

// runs reports whether the section named name is to run.
func (c benchConfig) runs(name string) bool { return len(c.Only) == 0 || c.Only[name] }

// parseOnly parses -only's comma-separated list of sections.
func parseOnly(v string) (map[string]bool, error) {
	if v == "" {
		return nil, nil
	}
	only := make(map[string]bool)
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(benchSections, n) {
			return nil, fmt.Errorf("unknown section %q (%s)", n, strings.Join(benchSections, ", "))
		}
		only[n] = true
	}
	return only, nil
}

// run parses the command line (and the environment: IDLEDGER_MEMORY_LIMIT, GOMEMLIMIT), runs the
// bench and prints the table.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	envMemLimit, goMemLimit := os.Getenv("IDLEDGER_MEMORY_LIMIT"), os.Getenv("GOMEMLIMIT")
	fs := flag.NewFlagSet("idledger-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	short := fs.Bool("short", false, "the short profile: 10k users, 200 groups (make bench-short)")
	profile := fs.String("profile", "", "profile: default, short or tiny (overrides -short)")
	users := fs.Int("users", 0, "users (overrides the profile; the run is then a custom one)")
	groups := fs.Int("groups", 0, "groups (overrides the profile)")
	members := fs.Int("members", 0, "average members per group (overrides the profile)")
	conc := fs.Int("concurrency", 0, "concurrent requests (overrides the profile)")
	cfg := benchConfig{Baseline: true}
	fs.StringVar(&cfg.Out, "out", "bench-results.json", "JSON results file; the CPU profile of the initial cycle is written next to it (.cpu.pprof)")
	fs.StringVar(&cfg.Doc, "doc", "docs/benchmarks.md", "Markdown file whose section for this profile is replaced with the results (empty: none; custom runs write none unless set)")
	fs.StringVar(&cfg.DataDir, "data", "", "data directory to use (must not exist or be empty); default a fresh temp dir")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the data directory")
	fs.BoolVar(&cfg.NoSync, "no-fsync", false, "run the server and the JetStream limits without fsync before acknowledgement (not durable; a comparison run, recorded in no document unless --doc is set)")
	memLimit := fs.String("memory-limit", envMemLimit, "as `idledger serve --memory-limit`, for the whole bench process (server and load generator)")
	only := fs.String("only", "", "run only these comma-separated sections ("+strings.Join(benchSections, ", ")+"); the initial cycle runs for any server section")
	fs.StringVar(&cfg.Trace, "trace", "", "write an execution trace of 5 s of the initial cycle's manager PATCHes to this file (where writes wait)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: idledger-bench [-short] [flags]\n\nMeasures this machine's limits, an Entra-like provisioning cycle over HTTP, replay and SAML; see docs/benchmarks.md.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return cli.ErrUsage
	}
	name := "default"
	if *short {
		name = "short"
	}
	if *profile != "" {
		name = *profile
	}
	p, ok := benchProfiles[name]
	if !ok {
		fmt.Fprintf(stderr, "unknown profile %q (default, short, tiny)\n", name)
		return cli.ErrUsage
	}
	docSet := false
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "users", "groups", "members", "concurrency":
			p.Name = "custom"
		case "doc":
			docSet = true
		case "no-fsync":
			p.Name += "-nofsync"
		case "only":
			p.Name += "-partial"
		}
	})
	for _, o := range []struct {
		v   int
		dst *int
	}{{*users, &p.Users}, {*groups, &p.Groups}, {*members, &p.MembersAvg}, {*conc, &p.Concurrency}} {
		if o.v > 0 {
			*o.dst = o.v
		}
	}
	if p.Name != name && !docSet { // a custom or non-durable run is no profile's record
		cfg.Doc = ""
	}
	var err error
	if cfg.Only, err = parseOnly(*only); err != nil {
		fmt.Fprintln(stderr, err)
		return cli.ErrUsage
	}
	cfg.Profile = p
	cfg.Command = strings.TrimSpace("idledger-bench " + strings.Join(args, " "))
	if err := cli.ApplyMemoryLimit(*memLimit, goMemLimit, slog.New(slog.NewTextHandler(stderr, nil))); err != nil {
		fmt.Fprintln(stderr, err)
		return cli.ErrUsage
	}
	rep, err := runBench(ctx, cfg, stderr)
	if rep != nil {
		fmt.Fprintln(stdout)
		fmt.Fprint(stdout, rep.table())
		fmt.Fprintf(stdout, "\n%s profile, %s; results in %s", p.Name, time.Duration(rep.Seconds*float64(time.Second)).Round(time.Second), cfg.Out)
		if rep.CPUProfile != "" {
			fmt.Fprintf(stdout, ", CPU profile of the initial cycle in %s", rep.CPUProfile)
		}
		if cfg.Doc != "" {
			fmt.Fprintf(stdout, ", table recorded in %s", cfg.Doc)
		}
		fmt.Fprintln(stdout)
		for _, e := range rep.Errors {
			fmt.Fprintln(stdout, "error:", e)
		}
	}
	return err
}

// runBench runs every section and writes the results; progress goes to progressOut. It
// returns the report even when a section failed (that section's rows say why), and an error
// if any did.
func runBench(ctx context.Context, cfg benchConfig, progressOut io.Writer) (*benchReport, error) {
	p := cfg.Profile
	dir := cfg.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "idledger-bench-")
		if err != nil {
			return nil, err
		}
		dir = d
	} else if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("bench: %s is not empty: the bench runs on a fresh data dir", dir)
	}
	if !cfg.Keep {
		defer os.RemoveAll(dir)
	}
	rep := &benchReport{Command: cfg.Command, Profile: p, Machine: benchDescribeMachine(dir), Started: time.Now(), DataDir: dir,
		Durable: !cfg.NoSync}
	rep.Machine.Load = benchLoadAvg()
	rss := startBenchRSS()
	defer rss.close()
	bar := func(label string, total int) *cli.Progress {
		return cli.NewProgress(progressOut, fmt.Sprintf("%-30s", label))
	}
	model := newBenchModel(p)

	// 2 (baseline): the same initial cycle against the in-memory SCIM server, first, so its
	// resident set is its own.
	if cfg.Baseline && cfg.runs("baseline") {
		if err := benchBaseline(ctx, p, rss, rep, bar); err != nil {
			rep.fail("baseline", err)
		}
		// Hand the baseline's heap back to the system: the server's resident set is its own.
		debug.FreeOSMemory()
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}

	// 2–5 against the real server.
	srv := &benchServer{cfg: cfg, dir: filepath.Join(dir, "server"), model: model, rss: rss, rep: rep, bar: bar, progressOut: progressOut}
	var payload benchPayload
	if slices.ContainsFunc([]string{"reads", "incremental", "replay", "feed", "saml", "console", "fairness", "limits"}, cfg.runs) {
		var err error
		if payload, err = srv.run(ctx); err != nil {
			rep.fail("server", err)
		}
	}
	rss.reset()
	rep.AfterServerMiB = rss.peakMiB()

	// 7: personal data (bench_privacy.go), on servers of its own.
	if ctx.Err() == nil && cfg.runs("privacy") {
		if err := benchPrivacy(ctx, cfg, dir, rep, rss, bar, progressOut); err != nil {
			rep.fail("privacy", err)
		}
		rss.reset()
	}

	// 1: the limits, last so they can move the payloads the product wrote.
	if ctx.Err() == nil && cfg.runs("limits") {
		if payload.Messages == 0 {
			payload = benchSyntheticPayload()
		}
		rep.Payload = payload
		lim := &benchLimits{dir: filepath.Join(dir, "limits"), prof: p, payload: payload, rss: rss, rep: rep, bar: bar, noSync: cfg.NoSync}
		if err := lim.run(ctx); err != nil {
			rep.fail("limits", err)
		}
	}

	rep.add(&benchResult{Key: "process.rss", Section: "process",
		Name:   "peak RSS in the provisioning cycles (server + load generator)",
		RSSMiB: srv.cyclesMiB, Target: "≤ 512 MiB at 100k users",
		Note: fmt.Sprintf("initial cycle peak: %.0f MiB anonymous (Go heap of server and client, NATS), %.0f MiB file-backed "+
			"(bbolt mmap); live Go heap after it %.0f MiB; peak over every server phase (with asOf, export, rebuild) %.0f MiB; "+
			"lifetime VmHWM %.0f MiB (includes baseline and limits)",
			srv.anon, srv.file, srv.heapMiB, srv.peakMiB, benchHWMMiB()),
		check: func(r *benchResult) string {
			if p.Users < 100_000 {
				return fmt.Sprintf("n/a (%dk users)", p.Users/1000)
			}
			return benchYesNo(r.RSSMiB <= 512)
		}})
	rep.resolve()
	rep.Seconds = time.Since(rep.Started).Seconds()
	rep.Machine.Load += " at start, " + benchLoadAvg() + " at end"
	if cfg.Out != "" {
		if err := rep.writeJSON(cfg.Out); err != nil {
			rep.fail("write results", err)
		}
	}
	if cfg.Doc != "" {
		if err := rep.updateDoc(cfg.Doc); err != nil {
			rep.fail("write "+cfg.Doc, err)
		}
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	if len(rep.Errors) > 0 {
		return rep, fmt.Errorf("bench: %d section(s) failed", len(rep.Errors))
	}
	return rep, nil
}

// benchBaseline runs the initial cycle against the in-memory SCIM server.
func benchBaseline(ctx context.Context, p benchProfile, rss *benchRSS, rep *benchReport, bar func(string, int) *cli.Progress) error {
	token := benchSecret()
	base, stop, err := startMemSCIM(token)
	if err != nil {
		return err
	}
	defer stop()
	c := newBenchClient(base, token, p.Concurrency)
	defer c.close()
	rss.reset()
	cy := &benchCycle{c: c, m: newBenchModel(p), conc: p.Concurrency, bar: bar}
	steps, err := cy.initial(ctx, "baseline")
	if err != nil {
		return err
	}
	r := benchCycleResult("baseline.all", "baseline", "in-memory SCIM (not durable): all requests", steps)
	r.RSSMiB = rss.peakMiB()
	r.Note = "map-backed net/http SCIM handler in the bench (bench_memscim.go), same client and request mix"
	rep.add(r)
	return nil
}

// benchCycleResult sums a cycle's steps into one row.
func benchCycleResult(key, section, name string, steps []benchStep) *benchResult {
	var elapsed time.Duration
	all := benchSamples{}
	for _, s := range steps {
		elapsed += s.Elapsed
		all.merge(s.Samples)
	}
	lat := all.all()
	r := &benchResult{Key: key, Section: section, Name: name, Ops: len(lat), Seconds: elapsed.Seconds(),
		Rate: float64(len(lat)) / elapsed.Seconds(), Unit: "req/s"}
	return r.withLatency(lat)
}

// benchSecret returns a random token for the bench's own tenant and operator.
func benchSecret() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "idl_bench_" + hex.EncodeToString(b)
}
