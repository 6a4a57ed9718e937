package main

// Section 4 of the bench: reading the log back. The online projection rebuild from sequence 1
// (Projector.Rebuild), the audit export of the company (Store.Export) and asOf queries through
// the audit API (a user's state and a group's members at a past moment).

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/eventstore"
)

// benchRebuildBound is the matching limit of the rebuild: the slower of reading the log and
// writing bbolt as the rebuild does (no fsync per commit) (issue 7: rebuild ≥ 0.5 × min(raw
// consume, raw bbolt write)).
const benchRebuildBound = "min:" + limConsume + "," + limBoltWriteNoSync

// profile starts a CPU profile of a section (benchCPUProfile), if the initial cycle's was
// written, and records its path in *path; the returned function stops it.
func (s *benchServer) profile(name string, path *string) (stop func()) {
	if s.rep.CPUProfile == "" {
		return func() {}
	}
	stop, *path = benchCPUProfile(s.cfg, name)
	return stop
}

// benchRebuild rebuilds the running server's read models from sequence 1 with
// Projector.Rebuild (online: a second file built beside the live one, then swapped in).
func (s *benchServer) rebuild(ctx context.Context) *benchResult {
	r := &benchResult{Key: "replay.rebuild", Section: "replay", Limit: benchRebuildBound, Unit: "events/s",
		Name:   "rebuild from seq 1 (Projector.Rebuild)",
		Target: "≥ 0.5× min(read, bbolt write)",
		check:  func(r *benchResult) string { return benchYesNo(r.Ratio >= 0.5) },
		Note:   "events = every message of the log (claims, sign-ins, request records included); each writes several bbolt keys"}
	s.rss.reset()
	defer s.profile("rebuild", &s.rep.RebuildProfile)()
	bar := s.bar("replay rebuild", 0)
	var total atomic.Uint64
	start := time.Now()
	err := s.m.Projector.Rebuild(ctx, func(done, t uint64) {
		total.Store(t)
		bar.Update(done, t)
	})
	elapsed := time.Since(start)
	bar.Done()
	if err != nil {
		r.NotMeasured = err.Error()
		s.rep.fail("rebuild", err)
		return s.rep.add(r)
	}
	if err := s.m.DB.Check(); err != nil {
		r.NotMeasured = "rebuilt file: " + err.Error()
		s.rep.fail("rebuild", err)
		return s.rep.add(r)
	}
	n := int(total.Load())
	r.Ops, r.Seconds, r.Rate, r.RSSMiB = n, elapsed.Seconds(), float64(n)/elapsed.Seconds(), s.phaseDone()
	return s.rep.add(r)
}

// benchCounter is an io.Writer that only counts.
type benchCounter struct{ n int64 }

func (c *benchCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// export writes the company's whole log as the audit export does (`idledger audit export`),
// into a counter.
func (s *benchServer) export(ctx context.Context) *benchResult {
	r := &benchResult{Key: "replay.export", Section: "replay", Limit: limConsume, Unit: "events/s",
		Name: "audit export (Store.Export)"}
	s.rss.reset()
	bar := s.bar("replay audit export", 0)
	var w benchCounter
	start := time.Now()
	st, err := s.m.Store.Export(ctx, domain.TenantID(s.tenant), &w, eventstore.ExportOptions{Progress: bar.Update})
	elapsed := time.Since(start)
	bar.Done()
	if err != nil {
		r.NotMeasured = err.Error()
		s.rep.fail("audit export", err)
		return s.rep.add(r)
	}
	r.Ops, r.Seconds, r.Rate, r.RSSMiB = int(st.Read), elapsed.Seconds(), float64(st.Read)/elapsed.Seconds(), s.phaseDone()
	r.Note = fmt.Sprintf("%d messages written, %.1f MiB", st.Messages, float64(w.n)/(1<<20))
	return s.rep.add(r)
}

// asOf queries the audit API for past states at the profile's concurrency: a user's state
// (GET /api/v1/audit/users/{id}/state?asOf=) and a group's members
// (GET /api/v1/audit/groups/{id}/members?asOf=), each at a random moment since the initial
// cycle began. A 404 (the resource did not exist yet then) is a valid answer.
func (s *benchServer) asOf(ctx context.Context, since time.Time) {
	c := newBenchClient(s.base+"/api/v1", s.apiKey, s.cfg.Profile.Concurrency)
	defer c.close()
	cy := &benchCycle{c: c, m: s.model, conc: s.cfg.Profile.Concurrency, bar: s.bar}
	span := time.Since(since)
	for _, q := range []struct {
		key, name, op string
		n             int
		path          func(i int) string
	}{
		{"replay.asof_user", "asOf: user state (HTTP)", "GET /audit/users/{id}/state?asOf",
			s.cfg.Profile.AsOfQueries, func(i int) string {
				return "/audit/users/" + s.model.users[(i*7919)%len(s.model.users)].id + "/state"
			}},
		{"replay.asof_members", "asOf: group members (HTTP)", "GET /audit/groups/{id}/members?asOf",
			min(s.cfg.Profile.AsOfQueries, 10*len(s.model.groups)), func(i int) string {
				return "/audit/groups/" + s.model.groups[(i*31)%len(s.model.groups)].id + "/members"
			}},
	} {
		r := &benchResult{Key: q.key, Section: "replay", Name: q.name, Unit: "queries/s", Limit: limDirectGet,
			Note: fmt.Sprintf("concurrency %d; asOf uniform since the initial cycle began; 404 (not yet created) counts", cy.conc)}
		s.rss.reset()
		st, err := cy.parallel(ctx, "replay "+q.key, q.n, func(i int, smp benchSamples) error {
			rng := rand.New(rand.NewPCG(uint64(i), 13))
			at := since.Add(time.Duration(rng.Int64N(int64(span) + 1))).UTC().Format(time.RFC3339Nano)
			d, err := c.do(ctx, "GET", q.path(i)+"?asOf="+url.QueryEscape(at), nil, nil, 200, 404)
			if err != nil {
				return err
			}
			smp.add(q.op, d)
			return nil
		})
		if err != nil {
			r.NotMeasured = err.Error()
			s.rep.fail(q.name, err)
			s.rep.add(r)
			continue
		}
		ds := st.Samples[q.op]
		r.Ops, r.Seconds, r.Rate, r.RSSMiB = len(ds), st.Elapsed.Seconds(), float64(len(ds))/st.Elapsed.Seconds(), s.phaseDone()
		s.rep.add(r.withLatency(ds))
	}
}

func benchYesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// benchP99Target returns a check that p99 is at most max.
func benchP99Target(max time.Duration) func(r *benchResult) string {
	return func(r *benchResult) string {
		if r.P99ms == nil {
			return ""
		}
		return benchYesNo(*r.P99ms <= float64(max)/float64(time.Millisecond))
	}
}
