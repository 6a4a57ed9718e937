package main

// The noisy-neighbour figure: company B's trivial list request, alone and while company A (the
// bench's company, with the profile's users) floods the server with the most expensive list
// requests the filter limits allow. B is measured the same way both times (one request at a
// time, at least the same number of requests and the same minimum time); flooded, from A's
// first answer on (A's scans are running) until at least benchFloodScans of them have been
// answered, so that at 100k users, where one scan takes seconds, the figure spans several.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// benchFloodClients is the number of A's concurrent requests, as in the probe.
	benchFloodClients = 48
	// benchFloodRate caps A's requests per second at `idledger serve`'s default rate limit
	// (the bench's server runs without one, for the cycles): above it a production server
	// answers 429 before reading the query, so more would measure the rate limiter.
	benchFloodRate = 200
	// benchFloodTerms is the most comparisons a filter may hold (domain/scim maxFilterTerms).
	benchFloodTerms = 50
	// benchNeighbourUsers is the size of company B.
	benchNeighbourUsers = 100
	// benchFloodScans is how many of A's scans must be answered while B is measured flooded.
	benchFloodScans = 3
	// benchFloodStartWait bounds the wait for A's first answer: longer than the server's read
	// deadline (30 s), after which a scan answers 503 instead.
	benchFloodStartWait = 45 * time.Second
	// benchFloodMaxWindow bounds B's flooded measurement when A's scans are slow.
	benchFloodMaxWindow = 3 * time.Minute
)

// benchFairWindow is the shortest time B is measured, alone and flooded: 5 s from 10,000
// users on (at 100,000 users a scan of A takes seconds), less on the tiny profile.
func benchFairWindow(p benchProfile) time.Duration {
	return time.Duration(float64(5*time.Second) * min(1, float64(p.Users)/10_000))
}

// benchFloodFilter is the costliest filter the limits allow: no index answers it, every one of
// its comparisons is evaluated on every user (49 substring searches that match nothing, then
// one that matches everyone), and with sortBy every user is rendered and sorted.
func benchFloodFilter() string {
	terms := make([]string, 0, benchFloodTerms)
	for i := range benchFloodTerms - 1 {
		terms = append(terms, fmt.Sprintf(`emails.value co "no-such-mailbox-%02d@nowhere.example"`, i))
	}
	return strings.Join(append(terms, "userName pr"), " or ")
}

// fairness measures B's GET /Users?count=1 p99 alone and under A's flood, and adds the rows.
func (s *benchServer) fairness(ctx context.Context, admin string) error {
	s.rss.reset()
	p := s.cfg.Profile
	samples := max(p.Reads/10, 20)
	ac := newBenchClient(s.base, admin, 1)
	defer ac.close()
	var t struct {
		SCIMToken string `json:"scimToken"`
	}
	if _, err := ac.do(ctx, "POST", "/admin/v1/tenants", []byte(`{"name":"Fabrikam (bench neighbour)"}`), &t, 201); err != nil {
		return err
	}
	b := newBenchClient(s.base+"/scim/v2", t.SCIMToken, 1)
	defer b.close()
	for i := range benchNeighbourUsers {
		body := fmt.Appendf(nil, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"user%d@fabrikam.example","active":true}`, i)
		if _, err := b.do(ctx, "POST", "/Users", body, nil, 201); err != nil {
			return err
		}
	}
	// B is measured the same way alone and flooded: at least samples requests and at least the
	// window; flooded, also at least as many requests as alone and until benchFloodScans of A's
	// scans have been answered within the window, so that the figure spans several of them.
	window := benchFairWindow(p)
	measure := func(done func(n int, elapsed time.Duration) bool) ([]time.Duration, time.Duration, error) {
		ds := make([]time.Duration, 0, samples)
		start := time.Now()
		for len(ds) < samples || !done(len(ds), time.Since(start)) {
			d, err := b.do(ctx, "GET", "/Users?count=1", nil, nil, 200)
			if err != nil {
				return nil, 0, err
			}
			ds = append(ds, d)
		}
		return ds, time.Since(start), nil
	}
	alone, aloneTime, err := measure(func(_ int, elapsed time.Duration) bool { return elapsed >= window })
	if err != nil {
		return err
	}

	// A's flood: benchFloodClients requests in flight, paced together at benchFloodRate, none
	// waiting for Retry-After.
	a := newBenchClient(s.base+"/scim/v2", s.token, benchFloodClients)
	defer a.close()
	path := benchFilterPath("Users", benchFloodFilter(), "sortBy=displayName&count=100")
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	var ok, refused, unavailable atomic.Int64
	var floodErr error
	var once sync.Once
	tick := time.NewTicker(time.Second / benchFloodRate)
	defer tick.Stop()
	var wg sync.WaitGroup
	for range benchFloodClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-fctx.Done():
					return
				case <-tick.C:
				}
				var list benchSCIMList
				_, err := a.do(fctx, "GET", path, nil, &list, http.StatusOK)
				switch {
				case err == nil:
					ok.Add(1)
				case fctx.Err() != nil:
					return
				case strings.Contains(err.Error(), "status 429"):
					refused.Add(1)
				case strings.Contains(err.Error(), "status 503"):
					unavailable.Add(1)
				default:
					once.Do(func() { floodErr = err })
					stop()
					return
				}
			}
		}()
	}
	// Measure B once A's scans run: from A's first answer on, a scan is running or about to
	// (A's refused requests retry at the next tick). A scan lasts at most the server's read
	// deadline (30 s), after which it answers 503.
	waitUntil := time.Now().Add(benchFloodStartWait)
	for ok.Load() == 0 && fctx.Err() == nil && time.Now().Before(waitUntil) {
		time.Sleep(10 * time.Millisecond)
	}
	var flooded []time.Duration
	var floodTime time.Duration
	var answered, refusedIn, unavailableIn int64
	if ok.Load() > 0 && fctx.Err() == nil {
		ok0, refused0, unavailable0 := ok.Load(), refused.Load(), unavailable.Load()
		flooded, floodTime, err = measure(func(n int, elapsed time.Duration) bool {
			return fctx.Err() != nil || elapsed >= benchFloodMaxWindow ||
				(elapsed >= window && n >= len(alone) && ok.Load()-ok0 >= benchFloodScans)
		})
		answered, refusedIn, unavailableIn = ok.Load()-ok0, refused.Load()-refused0, unavailable.Load()-unavailable0
	}
	stop()
	wg.Wait()
	if err == nil {
		err = floodErr
	}
	if err != nil {
		return err
	}
	peak := s.phaseDone()
	if flooded == nil {
		return fmt.Errorf("fairness: none of A's flood requests was answered within %s (%d refused 429, %d 503)",
			benchFloodStartWait, refused.Load(), unavailable.Load())
	}
	aloneSecs, floodSecs := aloneTime.Seconds(), floodTime.Seconds()

	aloneLat, floodLat := benchLatencyOf(alone), benchLatencyOf(flooded)
	ratio := float64(floodLat.P99) / float64(aloneLat.P99)
	s.rep.add((&benchResult{Key: "fairness.neighbour_alone", Section: "fairness",
		Name: fmt.Sprintf("company B (%d users): GET /Users?count=1 alone, c=1", benchNeighbourUsers),
		Ops:  len(alone), Seconds: aloneSecs, Rate: float64(len(alone)) / aloneSecs, Unit: "req/s", RSSMiB: peak,
	}).withLatency(alone))
	s.rep.add((&benchResult{Key: "fairness.neighbour_flooded", Section: "fairness",
		Name: fmt.Sprintf("company B: the same while A floods (%d in flight, %d-term filters, sortBy)", benchFloodClients, benchFloodTerms),
		Ops:  len(flooded), Seconds: floodSecs, Rate: float64(len(flooded)) / floodSecs, Unit: "req/s", RSSMiB: peak,
		Target: "p99 ≤ 2× alone",
		Note: fmt.Sprintf("p99 %.2f× alone; A (%d users) at most %d req/s, no back-off; while B was measured, A had %d answered, %d refused 429 (scan budget), %d 503 (deadline)",
			ratio, p.Users, benchFloodRate, answered, refusedIn, unavailableIn),
		check: func(*benchResult) string { return fmt.Sprintf("%s (%.2f×)", benchYesNo(ratio <= 2), ratio) },
	}).withLatency(flooded))
	return nil
}
