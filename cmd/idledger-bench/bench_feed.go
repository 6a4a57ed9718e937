package main

// Section 7 of the bench: the change feed (docs/events.md). The company's whole history read
// through the events API, the same history delivered by a webhook (replay from the first event)
// to a receiver on loopback, each as a ratio to the raw ordered-consumer read of this log; and
// the lag from a SCIM write to its webhook's arrival.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// benchLagWrites is how many SCIM writes the lag figure times.
const benchLagWrites = 200

// benchReceiver is a webhook receiver on loopback: it counts distinct event ids and notes when
// each lag marker ("bench-lag-<i>" in a displayName) arrived.
type benchReceiver struct {
	srv *http.Server
	url string

	mu      sync.Mutex
	seen    map[string]bool
	markers map[int]time.Time
	changed chan struct{} // closed and replaced at every new arrival
}

func startBenchReceiver() (*benchReceiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &benchReceiver{url: "http://" + l.Addr().String() + "/hook", seen: map[string]bool{}, markers: map[int]time.Time{},
		changed: make(chan struct{})}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(l) }()
	return r, nil
}

func (r *benchReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	now := time.Now()
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	if !r.seen[id] {
		r.seen[id] = true
		if _, rest, ok := strings.Cut(string(body), `"new":"bench-lag-`); ok {
			digits, _, _ := strings.Cut(rest, `"`)
			if i, err := strconv.Atoi(digits); err == nil {
				r.markers[i] = now
			}
		}
		close(r.changed)
		r.changed = make(chan struct{})
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// waitUntil waits until cond (called with the lock held) holds, or limit passes.
func (r *benchReceiver) waitUntil(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok, ch := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("not within %s", limit)
		case <-ch:
		}
	}
}

// feed runs section 7.
func (s *benchServer) feed(ctx context.Context) {
	api := newBenchClient(s.base+"/api/v1", s.apiKey, 1)
	defer api.close()
	total := s.feedRead(ctx, api)
	recv, err := startBenchReceiver()
	if err != nil {
		s.rep.fail("webhook receiver", err)
		return
	}
	defer recv.srv.Close()
	var hook struct {
		ID string `json:"id"`
	}
	body, _ := json.Marshal(map[string]any{"url": recv.url, "description": "bench"})
	if _, err := api.do(ctx, "POST", "/webhooks", body, &hook, http.StatusCreated); err != nil {
		s.rep.fail("webhook", err)
		return
	}
	defer func() {
		if _, err := api.do(context.WithoutCancel(ctx), "DELETE", "/webhooks/"+hook.ID, nil, nil, http.StatusNoContent); err != nil {
			s.rep.fail("webhook delete", err)
		}
	}()
	s.feedDeliver(ctx, api, recv, hook.ID, total)
	s.feedLag(ctx, recv)
}

// feedRead pages through the company's whole history with GET /api/v1/events and returns how
// many events it holds.
func (s *benchServer) feedRead(ctx context.Context, api *benchClient) int {
	r := &benchResult{Key: "feed.api_read", Section: "feed", Limit: limConsume, Unit: "events/s",
		Name: "events API, whole history (GET /api/v1/events, pages of 1000)",
		Note: "events = public events; the limit reads every message of the log"}
	s.rss.reset()
	bar := s.bar("feed events API", 0)
	n, after := 0, ""
	var pages []time.Duration
	start := time.Now()
	for {
		var page struct {
			Data       []json.RawMessage `json:"data"`
			NextCursor *string           `json:"nextCursor"`
			HasMore    bool              `json:"hasMore"`
		}
		d, err := api.do(ctx, "GET", "/events?limit=1000"+after, nil, &page, http.StatusOK)
		if err != nil {
			r.NotMeasured = err.Error()
			s.rep.fail("events API", err)
			bar.Done()
			s.rep.add(r)
			return 0
		}
		pages = append(pages, d)
		n += len(page.Data)
		bar.Update(uint64(n), 0)
		if !page.HasMore || page.NextCursor == nil {
			break
		}
		after = "&after=" + *page.NextCursor
	}
	elapsed := time.Since(start)
	bar.Done()
	r.Ops, r.Seconds, r.Rate, r.RSSMiB = n, elapsed.Seconds(), float64(n)/elapsed.Seconds(), s.phaseDone()
	r.Note += fmt.Sprintf("; latency per page of up to 1000 (%d pages)", len(pages))
	s.rep.add(r.withLatency(pages))
	return n
}

// feedDeliver replays the whole history to the receiver and times it.
func (s *benchServer) feedDeliver(ctx context.Context, api *benchClient, recv *benchReceiver, hook string, total int) {
	r := &benchResult{Key: "feed.webhook_delivery", Section: "feed", Limit: limConsume, Unit: "events/s",
		Name: "webhook, whole history replayed to a loopback receiver",
		Note: "one endpoint: in order, one signed POST per event, each acknowledged in JetStream"}
	if total == 0 {
		r.NotMeasured = "the events API read nothing"
		s.rep.add(r)
		return
	}
	s.rss.reset()
	bar := s.bar("feed webhook replay", total)
	start := time.Now()
	if _, err := api.do(ctx, "POST", "/webhooks/"+hook+"/replay", []byte(`{}`), nil, http.StatusAccepted); err != nil {
		r.NotMeasured = err.Error()
		s.rep.fail("webhook replay", err)
		s.rep.add(r)
		return
	}
	err := recv.waitUntil(ctx, 30*time.Minute, func() bool {
		bar.Update(uint64(len(recv.seen)), uint64(total))
		return len(recv.seen) >= total
	})
	elapsed := time.Since(start)
	bar.Done()
	if err != nil {
		r.NotMeasured = fmt.Sprintf("%d of %d delivered: %v", len(recv.seen), total, err)
		s.rep.fail("webhook replay", err)
		s.rep.add(r)
		return
	}
	r.Ops, r.Seconds, r.Rate, r.RSSMiB = total, elapsed.Seconds(), float64(total)/elapsed.Seconds(), s.phaseDone()
	s.rep.add(r)
}

// feedLag times SCIM writes (a displayName each) to their webhook's arrival, one at a time.
func (s *benchServer) feedLag(ctx context.Context, recv *benchReceiver) {
	r := &benchResult{Key: "feed.webhook_lag", Section: "feed", Unit: "writes/s",
		Name:   "lag SCIM write → webhook arrival",
		Target: "p99 reported", Note: "one PATCH at a time; lag from sending the PATCH to the receiver's arrival"}
	scim := newBenchClient(s.base+"/scim/v2", s.token, 1)
	defer scim.close()
	var lags []time.Duration
	start := time.Now()
	for i, u := range s.model.users {
		if len(lags) == benchLagWrites {
			break
		}
		if u.id == "" {
			continue
		}
		body := fmt.Appendf(nil, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"displayName","value":"bench-lag-%d"}]}`, i)
		sent := time.Now()
		if _, err := scim.do(ctx, "PATCH", "/Users/"+u.id, body, nil, http.StatusOK, http.StatusNoContent); err != nil {
			if strings.Contains(err.Error(), "status 404") {
				continue // deleted by the incremental cycle
			}
			r.NotMeasured = err.Error()
			s.rep.fail("webhook lag", err)
			s.rep.add(r)
			return
		}
		var at time.Time
		err := recv.waitUntil(ctx, time.Minute, func() bool {
			t, ok := recv.markers[i]
			at = t
			return ok
		})
		if err != nil {
			r.NotMeasured = fmt.Sprintf("write %d: %v", i, err)
			s.rep.fail("webhook lag", err)
			s.rep.add(r)
			return
		}
		lags = append(lags, at.Sub(sent))
	}
	elapsed := time.Since(start)
	if len(lags) == 0 {
		r.NotMeasured = "no write reached the receiver"
		s.rep.add(r)
		return
	}
	r.Ops, r.Seconds, r.Rate = len(lags), elapsed.Seconds(), float64(len(lags))/elapsed.Seconds()
	s.rep.add(r.withLatency(lags))
}
