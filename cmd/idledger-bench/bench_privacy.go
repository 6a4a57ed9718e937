package main

// Section 7 of the bench: personal data (README "Personal data"). The initial cycle runs on
// two fresh servers side by side, one storing personal data in clear (app.Config.
// PlainPersonalData, the bench's comparison only), one sealing it under per-person keys (the
// product). The cycle's steps are cut into chunks (a thousand users, a hundred groups), and
// each chunk runs on one server then on the other, the first of the pair alternating, each
// timed until that server's projector has applied what the chunk wrote. So both servers do
// the same requests on logs of the same size, moments apart, and a neighbour that loads the
// machine for a while slows both sides of the pairs it overlaps: the ratio of the rates over
// all pairs is what encryption costs. The row's note adds the spread of the pairs' own
// ratios, the ratio over each half of the users step (a cost growing with the log would
// show), and the process's CPU time per request of each side, which other processes on the
// machine disturb less than wall time. (Both servers share one Go heap, so the collector's
// work on the sealed server's larger heap is shared by both sides.) On the sealed server a
// tenth of the users (at most 100) are then deleted and erased one after the other (each
// erasure destroys a key, deletes request records and rewrites projections.db), and the users'
// state is read as of now through the audit API (which opens every sealed value of their
// events).

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/idledger/idledger/cmd/internal/app"
	"github.com/idledger/idledger/cmd/internal/cli"
)

// benchPrivacyMaxUsers bounds the users of the two cycles: the section compares, it does
// not need the full profile.
const benchPrivacyMaxUsers = 20_000

// The chunks of the section's cycles: so many users (the users and managers steps) or groups
// (the groups and members steps) run on one server before the same run on the other.
const (
	benchPrivacyChunkUsers  = 1000
	benchPrivacyChunkGroups = 100
)

// benchPrivacySide is one of the two servers of section 7.
type benchPrivacySide struct {
	name  string
	s     *benchServer
	c     *benchClient
	cy    *benchCycle
	steps []benchStep
}

// benchPrivacy runs section 7.
func benchPrivacy(ctx context.Context, cfg benchConfig, dir string, rep *benchReport, rss *benchRSS, bar func(string, int) *cli.Progress, progressOut io.Writer) error {
	p := cfg.Profile
	scale := min(1, float64(benchPrivacyMaxUsers)/float64(p.Users))
	p.Users = max(1, int(float64(p.Users)*scale))
	p.Groups = max(1, int(float64(p.Groups)*scale))
	var sides [2]*benchPrivacySide // plain, sealed
	defer func() {
		for _, sd := range sides {
			if sd != nil {
				sd.c.close()
				sd.s.m.Close()
			}
		}
	}()
	for i, name := range []string{"plain", "sealed"} {
		s, err := benchPrivacyServer(ctx, cfg, filepath.Join(dir, "privacy-"+name), name == "plain", rss, rep, bar, progressOut)
		if err != nil {
			return err
		}
		s.model = newBenchModel(p)
		c := newBenchClient(s.base+"/scim/v2", s.token, p.Concurrency)
		sides[i] = &benchPrivacySide{name: name, s: s, c: c, cy: &benchCycle{c: c, m: s.model, conc: p.Concurrency, bar: bar}}
	}
	pairs, err := benchPrivacyPairs(ctx, cfg, sides)
	if err != nil {
		return err
	}
	plain, sealed := sides[0], sides[1]
	rp := benchCycleResult("privacy.initial_plain", "privacy", fmt.Sprintf("initial cycle, personal data in clear (%d users)", p.Users), plain.steps)
	rs := benchCycleResult("privacy.initial_sealed", "privacy", fmt.Sprintf("initial cycle, personal data sealed (%d users)", p.Users), sealed.steps)
	rs.RSSMiB = sealed.s.phaseDone()
	rs.Limit, rs.Target = "privacy.initial_plain", "≥ 0.95× the same cycle in clear"
	rs.check = func(r *benchResult) string { return benchYesNo(r.Ratio >= 0.95) }
	rs.Note = benchPrivacyNote(pairs, rp, rs)
	rp.Note = "the same requests as the sealed row, in chunks alternating with it (see its note)"
	rep.add(rp)
	rep.add(rs)
	return sealed.s.privacyErase(ctx, sealed.c, p)
}

// A benchPrivacyPair is one chunk of the cycle as run on both servers.
type benchPrivacyPair struct {
	phase  string
	plain  time.Duration // the chunk on the server in clear, until its projector caught up
	sealed time.Duration
	// The process's CPU time over each side's run of the chunk (0: not measured).
	plainCPU, sealedCPU time.Duration
}

// benchCPUTime returns the CPU time this process has used (user and system), and whether it
// could be read.
func benchCPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// benchPrivacyPairs runs the initial cycle on both sides chunk by chunk, alternating which
// side goes first, and returns the pairs' timings; each side's steps collect its chunks. Each
// side's run of a chunk has its CPU profile, OUT.privacy-cpu/SIDE-N.pprof: go tool pprof
// merges the files it is given, so one side's profile is that of all its files.
func benchPrivacyPairs(ctx context.Context, cfg benchConfig, sides [2]*benchPrivacySide) ([]benchPrivacyPair, error) {
	var phases [2][]benchPhase
	for i, sd := range sides {
		phases[i] = sd.cy.initialPhases(ctx)
	}
	var pairs []benchPrivacyPair
	for ph := range phases[0] {
		n, name := phases[0][ph].n, phases[0][ph].name
		size := benchPrivacyChunkUsers
		if name == "groups" || name == "members" {
			size = benchPrivacyChunkGroups
		}
		for from := 0; from < n; from += size {
			to := min(from+size, n)
			pair := benchPrivacyPair{phase: name}
			order := []int{0, 1}
			if len(pairs)%2 == 1 {
				order = []int{1, 0}
			}
			for _, i := range order {
				sd := sides[i]
				job := phases[i][ph].job
				label := fmt.Sprintf("privacy %s %s %d-%d/%d", sd.name, name, from, to, n)
				stop, _ := benchCPUProfile(cfg, fmt.Sprintf("privacy-cpu/%s-%02d", sd.name, len(pairs)))
				cpu0, cpuOK := benchCPUTime()
				st, err := sd.cy.parallel(ctx, label, to-from, func(k int, s benchSamples) error { return job(from+k, s) })
				if err == nil {
					err = sd.caughtUp(ctx, &st)
				}
				var cpu time.Duration
				if cpu1, ok := benchCPUTime(); ok && cpuOK {
					cpu = cpu1 - cpu0
				}
				stop() // writing the profile is not the chunk's work
				sd.steps = append(sd.steps, st)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", sd.name, err)
				}
				if i == 0 {
					pair.plain, pair.plainCPU = st.Elapsed, cpu
				} else {
					pair.sealed, pair.sealedCPU = st.Elapsed, cpu
				}
			}
			pairs = append(pairs, pair)
		}
	}
	return pairs, nil
}

// caughtUp waits until the side's projector has applied the whole log and adds the wait to
// the step: the work a chunk causes is timed whole, the read models' included.
func (sd *benchPrivacySide) caughtUp(ctx context.Context, st *benchStep) error {
	start := time.Now()
	head, err := sd.s.m.Store.Head(ctx)
	if err != nil {
		return err
	}
	if err := sd.s.m.Projector.WaitFor(ctx, head); err != nil {
		return err
	}
	st.Elapsed += time.Since(start)
	return nil
}

// benchPrivacyNote says what the sealed row's ratio is computed from: the pairs' totals, the
// spread of the pairs' own ratios, and the ratio over the first and the second half of the
// users created (a cost that grew with the log would show in the second).
func benchPrivacyNote(pairs []benchPrivacyPair, plain, sealed *benchResult) string {
	var ratios []float64
	var half [2][2]time.Duration // [first, second half of the users][plain, sealed]
	var cpu [2]time.Duration     // plain, sealed
	users := 0
	for _, p := range pairs {
		cpu[0] += p.plainCPU
		cpu[1] += p.sealedCPU
		if p.plain > 0 && p.sealed > 0 {
			ratios = append(ratios, p.plain.Seconds()/p.sealed.Seconds())
		}
		if p.phase == "users" {
			users++
		}
	}
	k := 0
	for _, p := range pairs {
		if p.phase != "users" {
			continue
		}
		h := min(1, 2*k/max(1, users))
		half[h][0] += p.plain
		half[h][1] += p.sealed
		k++
	}
	slices.Sort(ratios)
	q := func(f float64) float64 {
		if len(ratios) == 0 {
			return 0
		}
		return ratios[min(len(ratios)-1, int(f*float64(len(ratios))))]
	}
	hr := func(h int) float64 { return half[h][0].Seconds() / max(1e-9, half[h][1].Seconds()) }
	cpuNote := ""
	if cpu[0] > 0 && cpu[1] > 0 {
		perReq := func(d time.Duration, n int) float64 { return d.Seconds() * 1e3 / float64(max(1, n)) }
		cpuNote = fmt.Sprintf("; CPU time of the process per request (server and client, whatever other processes do): in clear %.2f ms, sealed %.2f ms, ratio %.2f",
			perReq(cpu[0], plain.Ops), perReq(cpu[1], sealed.Ops), cpu[0].Seconds()/cpu[1].Seconds())
	}
	return fmt.Sprintf("ratio of the rates over %d chunk pairs run alternately on two fresh servers, same requests, same log size at each chunk's start, each timed until its projector caught up: "+
		"in clear %d requests in %.1f s (%.0f req/s), sealed %d in %.1f s (%.0f req/s); the pairs' own ratios: median %.2f, quartiles %.2f–%.2f; users step, first half %.2f, second half %.2f",
		len(pairs), plain.Ops, plain.Seconds, plain.Rate, sealed.Ops, sealed.Seconds, sealed.Rate, q(0.5), q(0.25), q(0.75), hr(0), hr(1)) + cpuNote
}

// benchCPUProfile writes a CPU profile of a part of the bench (a section, a chunk of a cycle,
// the erasures) next to the JSON results: OUT.NAME.cpu.pprof, or OUT.DIR/FILE.pprof for a name
// DIR/FILE. It returns the function that stops it (once, however often it is called) and the
// profile's path ("" if none is written).
func benchCPUProfile(cfg benchConfig, name string) (stop func(), written string) {
	if cfg.Out == "" {
		return func() {}, ""
	}
	path := strings.TrimSuffix(cfg.Out, ".json") + "." + name + ".cpu.pprof"
	if dir, file := filepath.Split(name); dir != "" {
		path = filepath.Join(strings.TrimSuffix(cfg.Out, ".json")+"."+dir, file+".pprof")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return func() {}, ""
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return func() {}, ""
	}
	if pprof.StartCPUProfile(f) != nil {
		f.Close()
		return func() {}, ""
	}
	return sync.OnceFunc(func() {
		pprof.StopCPUProfile()
		f.Close()
	}), path
}

// benchPrivacyServer starts a fresh server and its company for section 7.
func benchPrivacyServer(ctx context.Context, cfg benchConfig, dir string, plain bool, rss *benchRSS, rep *benchReport, bar func(string, int) *cli.Progress, progressOut io.Writer) (*benchServer, error) {
	admin := benchSecret()
	m, err := app.Start(ctx, app.Config{DataDir: dir, Listen: "127.0.0.1:0", AdminToken: admin, BodyLimit: 1 << 20,
		NoSync: cfg.NoSync, PlainPersonalData: plain, Logger: cli.NewLogger(progressOut, slog.LevelError)})
	if err != nil {
		return nil, err
	}
	s := &benchServer{cfg: cfg, dir: dir, rss: rss, rep: rep, bar: bar, m: m, base: "http://" + m.Addr()}
	for m.Projector.Ready() != nil {
		if ctx.Err() != nil {
			m.Close()
			return nil, ctx.Err()
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.createTenant(ctx, admin); err != nil {
		m.Close()
		return nil, err
	}
	// The section's API key erases and reads the audit trail.
	c := newBenchClient(s.base, admin, 1)
	defer c.close()
	var k struct {
		Key string `json:"key"`
	}
	if _, err := c.do(ctx, "POST", "/admin/v1/tenants/"+s.tenant+"/api-keys", []byte(`{"name":"privacy","scopes":["privacy:write","audit:read"]}`), &k, 201); err != nil {
		m.Close()
		return nil, err
	}
	s.apiKey = k.Key
	rss.reset()
	return s, nil
}

// privacyErase deletes and erases users one after the other, measuring each erasure, then
// reads users' state through the audit API.
func (s *benchServer) privacyErase(ctx context.Context, scim *benchClient, p benchProfile) error {
	n := min(100, max(1, p.Users/10))
	api := newBenchClient(s.base+"/api/v1", s.apiKey, 1)
	defer api.close()
	erase := benchSamples{}
	stop, _ := benchCPUProfile(s.cfg, "privacy-erase")
	defer stop()
	start := time.Now()
	for i := range n {
		u := s.model.users[len(s.model.users)-1-i]
		if _, err := scim.do(ctx, "DELETE", "/Users/"+u.id, nil, nil, 204); err != nil {
			return err
		}
		d, err := api.do(ctx, "POST", "/users/"+u.id+"/erase", nil, nil, 200)
		if err != nil {
			return err
		}
		erase.add("erase", d)
	}
	elapsed := time.Since(start)
	stop()
	fi, _ := os.Stat(filepath.Join(s.dir, "projections.db"))
	var size int64
	if fi != nil {
		size = fi.Size()
	}
	r := &benchResult{Key: "privacy.erase", Section: "privacy", Name: "erase a deleted user (POST /api/v1/users/{id}/erase)",
		Ops: n, Seconds: elapsed.Seconds(), Rate: float64(n) / elapsed.Seconds(), Unit: "erasures/s", RSSMiB: s.phaseDone(),
		Note: fmt.Sprintf("sequential, each after its user's SCIM DELETE (not timed); includes rewriting projections.db (%.0f MiB after)", float64(size)/(1<<20))}
	s.rep.add(r.withLatency(erase["erase"]))

	// asOf with sealed events: every read opens the user's sealed values.
	q := min(p.AsOfQueries, len(s.model.users)-n)
	cy := &benchCycle{c: api, m: s.model, conc: p.Concurrency, bar: s.bar}
	at := time.Now().UTC().Format(time.RFC3339Nano)
	st, err := cy.parallel(ctx, "privacy asOf", q, func(i int, smp benchSamples) error {
		u := s.model.users[(i*7919)%(len(s.model.users)-n)]
		d, err := api.do(ctx, "GET", "/audit/users/"+u.id+"/state?asOf="+at, nil, nil, 200)
		if err != nil {
			return err
		}
		smp.add("asof", d)
		return nil
	})
	if err != nil {
		return err
	}
	ds := st.Samples["asof"]
	a := &benchResult{Key: "privacy.asof_user", Section: "privacy", Name: "asOf: user state with sealed events (HTTP)",
		Ops: len(ds), Seconds: st.Elapsed.Seconds(), Rate: float64(len(ds)) / st.Elapsed.Seconds(), Unit: "queries/s",
		Limit: "replay.asof_user", RSSMiB: s.phaseDone(), Note: "ratio to section 4's asOf (same wiring, a larger log)"}
	s.rep.add(a.withLatency(ds))
	return nil
}
