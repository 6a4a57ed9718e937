package main

// The noisy-neighbour figure: company B's trivial list request, alone and while company A (the
// bench's company, with the profile's users) floods the server with the most expensive list
// requests the filter limits allow.

import (
	"context"
	"errors"
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
)

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
	measure := func() ([]time.Duration, error) {
		ds := make([]time.Duration, 0, samples)
		for range samples {
			d, err := b.do(ctx, "GET", "/Users?count=1", nil, nil, 200)
			if err != nil {
				return nil, err
			}
			ds = append(ds, d)
		}
		return ds, nil
	}
	start := time.Now()
	alone, err := measure()
	if err != nil {
		return err
	}
	aloneSecs := time.Since(start).Seconds()

	// A's flood: benchFloodClients requests in flight, paced together at benchFloodRate, none
	// waiting for Retry-After.
	a := newBenchClient(s.base+"/scim/v2", s.token, benchFloodClients)
	defer a.close()
	path := benchFilterPath("Users", benchFloodFilter(), "sortBy=displayName&count=100")
	fctx, stop := context.WithCancel(ctx)
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
				var status int
				switch {
				case err == nil:
					ok.Add(1)
					continue
				case fctx.Err() != nil:
					return
				case strings.Contains(err.Error(), "status 429"):
					status = http.StatusTooManyRequests
				case strings.Contains(err.Error(), "status 503"):
					status = http.StatusServiceUnavailable
				}
				switch status {
				case http.StatusTooManyRequests:
					refused.Add(1)
				case http.StatusServiceUnavailable:
					unavailable.Add(1)
				default:
					once.Do(func() { floodErr = err })
					return
				}
			}
		}()
	}
	// Let the flood reach its steady state (every client sent at least once) before measuring.
	for ok.Load()+refused.Load() < benchFloodClients && fctx.Err() == nil && floodErr == nil {
		time.Sleep(10 * time.Millisecond)
	}
	start = time.Now()
	flooded, err := measure()
	floodSecs := time.Since(start).Seconds()
	stop()
	wg.Wait()
	if err == nil {
		err = floodErr
	}
	if err != nil {
		return err
	}
	peak := s.phaseDone()
	if ok.Load() == 0 {
		return errors.New("fairness: none of A's flood requests was answered")
	}

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
		Note: fmt.Sprintf("p99 %.2f× alone; A (%d users) at most %d req/s, no back-off: %d answered, %d refused 429 (scan budget), %d 503 (deadline)",
			ratio, p.Users, benchFloodRate, ok.Load(), refused.Load(), unavailable.Load()),
		check: func(*benchResult) string { return fmt.Sprintf("%s (%.2f×)", benchYesNo(ratio <= 2), ratio) },
	}).withLatency(flooded))
	return nil
}
