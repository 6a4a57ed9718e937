package main

// Sections 2–5 of the bench against a real idledger server: app.Start (the same wiring as
// `idledger serve`, durable unless --no-fsync) on a loopback port in this process, one company created
// through the operator API, then the initial cycle (with its CPU profile, heap profile and the
// projection-lag sampler), the reads-only match queries, the incremental cycle, replay and
// SAML, in that order. The server is shut down before the limits run.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/cmd/internal/app"
	"github.com/idledger/idledger/cmd/internal/cli"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/projections"
)

// benchServer runs sections 2–5 against a real idledger server.
type benchServer struct {
	cfg         benchConfig
	dir         string
	model       *benchModel
	rss         *benchRSS
	rep         *benchReport
	bar         func(string, int) *cli.Progress
	progressOut io.Writer
	peakMiB     float64 // peak resident set over the server's phases
	cyclesMiB   float64 // peak resident set over the provisioning cycles (initial, reads, incremental)
	anon, file  float64 // anonymous and file-backed parts of the initial cycle's peak (MiB)
	heapMiB     float64 // live Go heap after the initial cycle (server + client)

	m      *app.Server
	base   string
	tenant string
	token  string // the company's SCIM token
	apiKey string // an API key of the company, for /api/v1
}

// replay runs section 4 (asOf, export, rebuild), with the raw read of this log (a limit of
// section 1) just before.
func (s *benchServer) replay(ctx context.Context, since time.Time) {
	s.asOf(ctx, since)
	if nc, err := nats.Connect("", nats.InProcessServer(s.m.Store)); err != nil {
		s.rep.fail("raw read", err)
	} else if js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(time.Minute)); err != nil {
		nc.Close()
		s.rep.fail("raw read", err)
	} else {
		lim := &benchLimits{prof: s.cfg.Profile, rss: s.rss, rep: s.rep, bar: s.bar}
		lim.orderedRead(ctx, js, eventstore.StreamName)
		nc.Close()
	}
	s.export(ctx)
	s.rebuild(ctx)
}

// phaseDone folds the current peak into the server-wide one.
func (s *benchServer) phaseDone() float64 {
	v := s.rss.peakMiB()
	s.peakMiB = max(s.peakMiB, v)
	return v
}

// run starts the server, runs the sections in order and returns a payload sample of the log
// for the limits. The server is shut down before it returns.
func (s *benchServer) run(ctx context.Context) (benchPayload, error) {
	s.rss.reset()
	admin := benchSecret()
	m, err := app.Start(ctx, app.Config{DataDir: s.dir, Listen: "127.0.0.1:0", AdminToken: admin, BodyLimit: 1 << 20,
		NoSync: s.cfg.NoSync, Logger: cli.NewLogger(s.progressOut, slog.LevelError),
		WebhookAllowPrivate: true}) // section 7 delivers to a receiver on loopback
	if err != nil {
		return benchPayload{}, err
	}
	s.m = m
	defer func() {
		if s.m != nil {
			s.m.Close()
		}
	}()
	s.base = "http://" + s.m.Addr()
	for s.m.Projector.Ready() != nil {
		if ctx.Err() != nil {
			return benchPayload{}, ctx.Err()
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.createTenant(ctx, admin); err != nil {
		return benchPayload{}, err
	}
	sso := &benchSAML{m: s.m, base: s.base, tenant: s.tenant, token: s.apiKey, users: s.model.users,
		prof: s.cfg.Profile, rss: s.rss, rep: s.rep, bar: s.bar}
	ssoErr := sso.setup(ctx)

	p := s.cfg.Profile
	c := newBenchClient(s.base+"/scim/v2", s.token, p.Concurrency)
	defer c.close()
	cy := &benchCycle{c: c, m: s.model, conc: p.Concurrency, bar: s.bar}
	since := time.Now()
	if err := s.initial(ctx, cy); err != nil {
		return benchPayload{}, err
	}
	run := s.cfg.runs
	if run("reads") {
		if err := s.reads(ctx, cy); err != nil {
			s.rep.fail("reads", err)
		}
	}
	if run("incremental") {
		if err := s.incremental(ctx, cy); err != nil {
			s.rep.fail("incremental cycle", err)
		}
	}

	if run("replay") {
		s.replay(ctx, since) // 4
	}
	if run("feed") {
		s.feed(ctx) // 7: the change feed (bench_feed.go)
	}

	// 5: SAML.
	switch {
	case !run("saml"):
	case ssoErr != nil:
		s.rep.fail("saml setup", ssoErr)
		s.rep.add(&benchResult{Key: "saml.acs", Section: "saml", Name: "SAML", NotMeasured: ssoErr.Error()})
	default:
		sso.lookups(ctx)
		s.phaseDone()
		if err := sso.acs(ctx); err != nil {
			s.rep.fail("saml ACS", err)
		}
		s.phaseDone()
	}

	// 7: the company console's pages (bench_console.go), on the company the cycles provisioned.
	if run("console") {
		if err := s.console(ctx, admin); err != nil {
			s.rep.fail("console", err)
			s.rep.add(&benchResult{Key: "console.pages", Section: "console", Name: "console pages", NotMeasured: err.Error()})
		}
		s.phaseDone()
	}

	payload, err := benchSamplePayload(ctx, s.m.Store, 2000)
	if err != nil {
		s.rep.fail("sample payload", err)
	}
	// 6: fairness, last: it adds a second company, which no figure above should see.
	if run("fairness") {
		if err := s.fairness(ctx, admin); err != nil {
			s.rep.fail("fairness", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.m.Shutdown(sctx); err != nil {
		s.rep.fail("shutdown", err)
	}
	s.m = nil // let the limits run without the server's memory
	return payload, nil
}

// createTenant creates the company through the operator API, as an operator would.
func (s *benchServer) createTenant(ctx context.Context, admin string) error {
	c := newBenchClient(s.base, admin, 1)
	defer c.close()
	var t struct {
		ID        string `json:"id"`
		SCIMToken string `json:"scimToken"`
	}
	if _, err := c.do(ctx, "POST", "/admin/v1/tenants", []byte(`{"name":"Contoso (bench)"}`), &t, 201); err != nil {
		return err
	}
	s.tenant, s.token = t.ID, t.SCIMToken
	// The company API (SSO setup, audit replays) takes an API key, not the SCIM token.
	var k struct {
		Key string `json:"key"`
	}
	body := []byte(`{"name":"bench","scopes":["sso:read","sso:write","audit:read","events:read","webhooks:write"]}`)
	if _, err := c.do(ctx, "POST", "/admin/v1/tenants/"+t.ID+"/api-keys", body, &k, 201); err != nil {
		return err
	}
	s.apiKey = k.Key
	return nil
}

// initial runs the initial cycle with a CPU profile and the projection-lag sampler, and adds
// its rows.
func (s *benchServer) initial(ctx context.Context, cy *benchCycle) error {
	s.rss.reset()
	if s.cfg.Out != "" {
		path := strings.TrimSuffix(s.cfg.Out, ".json") + ".cpu.pprof"
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
			if f, err := os.Create(path); err == nil {
				if err := pprof.StartCPUProfile(f); err == nil {
					s.rep.CPUProfile = path
					defer func() {
						pprof.StopCPUProfile()
						f.Close()
					}()
				} else {
					f.Close()
				}
			}
		}
	}
	if s.cfg.Trace != "" {
		cy.onStep = func(label string) {
			if strings.HasSuffix(label, " managers") {
				go benchTrace(ctx, s.cfg.Trace, 5*time.Second, s.rep)
			}
		}
		defer func() { cy.onStep = nil }()
	}
	lag := startBenchLagSampler(ctx, s.m.Store, s.m.Projector, 10*time.Millisecond)
	steps, err := cy.initial(ctx, "initial")
	lags := lag.stop()
	peak := s.phaseDone()
	s.cyclesMiB = max(s.cyclesMiB, peak)
	s.anon, s.file = s.rss.peakParts()
	if err != nil {
		return err
	}
	if s.rep.CPUProfile != "" {
		s.heapProfile(strings.TrimSuffix(s.rep.CPUProfile, ".cpu.pprof") + ".heap.pprof")
	}
	s.rep.Server = benchScrapeMetrics(ctx, s.base)

	r := benchCycleResult("initial.all", "initial", "initial cycle: all requests", steps)
	r.RSSMiB, r.Limit, r.Target = peak, "baseline.all", "≥ 1× in-memory SCIM server"
	r.check = func(r *benchResult) string { return benchYesNo(r.Ratio >= 1) }
	r.Note = "ratio to the in-memory baseline's requests/s, not to a limit of (1)"
	s.rep.add(r)

	byOp := map[string]benchStep{}
	for _, st := range steps {
		for op := range st.Samples {
			byOp[op] = st
		}
	}
	rows := []struct {
		op, key, limit, target string
		check                  func(*benchResult) string
	}{
		{opGetUserFilter, "initial.get_filter", "", "p99 ≤ 5 ms", benchP99Target(5 * time.Millisecond)},
		{opPostUser, "initial.post_user", limFsyncC32, "", nil},
		{opGetGroupFilter, "initial.get_group_filter", "", "", nil},
		{opPostGroup, "initial.post_group", limFsyncC32, "", nil},
		{opPatchMembers, "initial.patch_members", limFsyncC32, "", nil},
		{opPatchManager, "initial.patch_manager", limFsyncC32, "", nil},
	}
	for _, row := range rows {
		st, ok := byOp[row.op]
		if !ok {
			continue
		}
		ds := st.Samples[row.op]
		r := &benchResult{Key: row.key, Section: "initial", Name: row.op, Ops: len(ds), Seconds: st.Elapsed.Seconds(),
			Rate: float64(len(ds)) / st.Elapsed.Seconds(), Unit: "req/s", RSSMiB: peak, Limit: row.limit,
			Target: row.target, check: row.check, Note: "throughput over its step (" + st.Name + ")"}
		s.rep.add(r.withLatency(ds))
	}

	// The durable-write target: the managers step is writes only, at full concurrency.
	if st, ok := byOp[opPatchManager]; ok {
		ds := st.Samples[opPatchManager]
		w := &benchResult{Key: "initial.durable_writes", Section: "initial",
			Name: fmt.Sprintf("durable writes: manager PATCH step, c=%d", cy.conc),
			Ops:  len(ds), Seconds: st.Elapsed.Seconds(), Rate: float64(len(ds)) / st.Elapsed.Seconds(), Unit: "writes/s",
			RSSMiB: peak, Limit: limFsyncC32, Target: "≥ 2× (group commit) / ≥ 0.8× without",
			check: func(r *benchResult) string {
				switch {
				case r.Ratio >= 2:
					return "yes"
				case r.Ratio >= 0.8:
					return "0.8× only"
				}
				return "no"
			}}
		s.rep.add(w.withLatency(ds))
	}
	lr := &benchResult{Key: "initial.projection_lag", Section: "initial", Ops: len(lags), RSSMiB: peak,
		Name:   "projection lag in the cycle (head → visible, 10 ms samples)",
		Target: "p99 ≤ 100 ms", check: benchP99Target(100 * time.Millisecond)}
	s.rep.add(lr.withLatency(lags))
	return nil
}

// reads measures Entra's match query alone at full concurrency once the users exist: GET
// /Users?filter=userName eq "<a user, in another case>", one result each.
func (s *benchServer) reads(ctx context.Context, cy *benchCycle) error {
	s.rss.reset()
	n := min(len(s.model.users), s.cfg.Profile.Reads)
	st, err := cy.parallel(ctx, "reads", n, func(i int, smp benchSamples) error {
		u := s.model.users[(i*7919)%len(s.model.users)]
		var list benchSCIMList
		d, err := cy.c.do(ctx, "GET", benchFilterPath("Users", fmt.Sprintf("userName eq %q", strings.ToUpper(u.userName)), ""), nil, &list, 200)
		if err != nil {
			return err
		}
		if list.TotalResults != 1 {
			return fmt.Errorf("match for %s: totalResults %d, want 1", u.userName, list.TotalResults)
		}
		smp.add(opGetUserFilter, d)
		return nil
	})
	peak := s.phaseDone()
	s.cyclesMiB = max(s.cyclesMiB, peak)
	if err != nil {
		return err
	}
	ds := st.Samples[opGetUserFilter]
	r := &benchResult{Key: "initial.get_filter_reads", Section: "initial", Name: fmt.Sprintf("GET /Users?filter, reads only, c=%d", cy.conc),
		Ops: len(ds), Seconds: st.Elapsed.Seconds(), Rate: float64(len(ds)) / st.Elapsed.Seconds(), Unit: "req/s", RSSMiB: peak,
		Limit: limBoltGet, Target: "p99 ≤ 5 ms", check: benchP99Target(5 * time.Millisecond),
		Note: "after the initial cycle, at full concurrency, no writes running"}
	s.rep.add(r.withLatency(ds))
	return nil
}

// incremental runs the incremental cycle and adds its rows.
func (s *benchServer) incremental(ctx context.Context, cy *benchCycle) error {
	s.rss.reset()
	st, err := cy.incremental(ctx, "incremental", s.cfg.Profile)
	peak := s.phaseDone()
	s.cyclesMiB = max(s.cyclesMiB, peak)
	if err != nil {
		return err
	}
	r := benchCycleResult("incremental.all", "incremental", "incremental: all requests", []benchStep{st})
	r.RSSMiB = peak
	s.rep.add(r)
	var writes []time.Duration
	for op, ds := range st.Samples {
		if benchIsWrite(op) {
			writes = append(writes, ds...)
		}
	}
	w := &benchResult{Key: "incremental.writes", Section: "incremental", Name: "incremental: PATCH writes",
		Ops: len(writes), Seconds: st.Elapsed.Seconds(), Rate: float64(len(writes)) / st.Elapsed.Seconds(), Unit: "writes/s",
		RSSMiB: peak, Limit: limFsyncC32, Note: "writes/s over the whole step, which also reads each user first"}
	s.rep.add(w.withLatency(writes))
	return nil
}

// benchLagSampler measures how long the read models take to show what the log holds: every tick
// it reads the log head and waits, in the background, until the projector has applied it.
type benchLagSampler struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex // guards lags
	lags   []time.Duration
	loop   chan struct{}
}

func startBenchLagSampler(ctx context.Context, store *eventstore.Store, proj *projections.Projector, every time.Duration) *benchLagSampler {
	ctx, cancel := context.WithCancel(ctx)
	l := &benchLagSampler{cancel: cancel, loop: make(chan struct{})}
	go func() {
		defer close(l.loop)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			at := time.Now()
			head, err := store.Head(ctx)
			if err != nil {
				continue
			}
			l.wg.Go(func() {
				if proj.WaitFor(ctx, head) == nil {
					d := time.Since(at)
					l.mu.Lock()
					l.lags = append(l.lags, d)
					l.mu.Unlock()
				}
			})
		}
	}()
	return l
}

// stop ends sampling, lets the last waits finish and returns the lags.
func (l *benchLagSampler) stop() []time.Duration {
	time.Sleep(50 * time.Millisecond) // let the samples of the last writes resolve
	l.cancel()
	<-l.loop
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lags
}

// benchScrapeMetrics reads the server's /metrics and keeps the means that explain a write's
// latency: the append (fsync included), the projection batch and its apply time.
func benchScrapeMetrics(ctx context.Context, base string) map[string]any {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	sums := map[string]float64{}
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(f[0], "{")
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil && (strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count") || strings.HasSuffix(name, "_total")) {
			sums[name] += v
		}
	}
	out := map[string]any{}
	mean := func(key, metric string, scale float64) {
		if n := sums[metric+"_count"]; n > 0 {
			out[key] = sums[metric+"_sum"] / n * scale
		}
	}
	mean("append_mean_ms", "idledger_eventstore_append_duration_seconds", 1000)
	mean("projection_batch_mean_events", "idledger_projection_batch_events", 1)
	mean("projection_apply_mean_ms", "idledger_projection_apply_duration_seconds", 1000)
	mean("http_request_mean_ms", "idledger_http_request_duration_seconds", 1000)
	if n := sums["idledger_eventstore_append_duration_seconds_count"]; n > 0 {
		out["appends"] = n
	}
	if n := sums["idledger_projection_batch_events_count"]; n > 0 {
		out["projection_batches"] = n
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// heapProfile writes the live heap (after a GC) to path: what the server and the client keep
// once the initial cycle is done.
func (s *benchServer) heapProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		s.rep.fail("heap profile", err)
		return
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		s.rep.fail("heap profile", err)
		return
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.heapMiB = float64(ms.HeapAlloc) / (1 << 20)
	s.rep.HeapProfile = path
}

// benchTrace writes an execution trace of the next d to path.
func benchTrace(ctx context.Context, path string, d time.Duration, rep *benchReport) {
	f, err := os.Create(path)
	if err != nil {
		rep.fail("trace", err)
		return
	}
	defer f.Close()
	if err := trace.Start(f); err != nil {
		rep.fail("trace", err)
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	trace.Stop()
}
