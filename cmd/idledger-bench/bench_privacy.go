package main

// Section 7 of the bench: personal data (README "Personal data"). The same initial cycle runs
// on fresh servers storing personal data in clear (app.Config.PlainPersonalData, the bench's
// comparison only), sealed under per-person keys (the product), and in clear again, so the
// ratio of the sealed rate to the clear runs' is what encryption costs. On the sealed server a
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
	"time"

	"github.com/idledger/idledger/cmd/internal/app"
	"github.com/idledger/idledger/cmd/internal/cli"
)

// benchPrivacyMaxUsers bounds the users of the two cycles: the section compares, it does
// not need the full profile.
const benchPrivacyMaxUsers = 20_000

// benchPrivacy runs section 7.
func benchPrivacy(ctx context.Context, cfg benchConfig, dir string, rep *benchReport, rss *benchRSS, bar func(string, int) *cli.Progress, progressOut io.Writer) error {
	p := cfg.Profile
	scale := min(1, float64(benchPrivacyMaxUsers)/float64(p.Users))
	p.Users = max(1, int(float64(p.Users)*scale))
	p.Groups = max(1, int(float64(p.Groups)*scale))
	// In clear, sealed, in clear again: the sealed run is compared with both clear runs
	// together, so that neither a warm-up nor a later slowdown of the machine favours one side.
	var inClear []benchStep
	for round, plain := range []bool{true, false, true} {
		name := map[bool]string{true: "plain", false: "sealed"}[plain]
		s, err := benchPrivacyServer(ctx, cfg, filepath.Join(dir, fmt.Sprintf("privacy-%d-%s", round, name)), plain, rss, rep, bar, progressOut)
		if err != nil {
			return err
		}
		s.model = newBenchModel(p)
		c := newBenchClient(s.base+"/scim/v2", s.token, p.Concurrency)
		cy := &benchCycle{c: c, m: s.model, conc: p.Concurrency, bar: bar}
		steps, err := cy.initial(ctx, "privacy "+name)
		if err == nil && plain {
			inClear = append(inClear, steps...)
		}
		if err == nil && !plain {
			r := benchCycleResult("privacy.initial_sealed", "privacy", fmt.Sprintf("initial cycle, personal data sealed (%d users)", p.Users), steps)
			r.RSSMiB = s.phaseDone()
			r.Limit, r.Target = "privacy.initial_plain", "≥ 0.95× the same cycle in clear"
			r.check = func(r *benchResult) string { return benchYesNo(r.Ratio >= 0.95) }
			r.Note = "ratio to the same cycle with personal data in clear (a comparison switch of the bench only), run before and after it"
			rep.add(r)
			err = s.privacyErase(ctx, c, p)
		}
		c.close()
		s.m.Close()
		if err != nil {
			return err
		}
	}
	r := benchCycleResult("privacy.initial_plain", "privacy", fmt.Sprintf("initial cycle, personal data in clear (%d users, two runs)", p.Users), inClear)
	rep.add(r)
	return nil
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
