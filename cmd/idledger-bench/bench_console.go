package main

// Section 7 of the bench: the company console. A company admin's browser session (opened with a
// setup link, as the SaaS hands one out) asks for every console page of the company the
// cycles provisioned (the profile's users and groups): first pages, deep pages, a search, a
// user's history, the largest group's members. The figure is each page's answer time over
// loopback, sequential (one admin), which is the server's time plus a local round trip.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"time"
)

// benchConsoleTarget is the console's page time target (issue: ≤ 50 ms p99 at 100k users).
const benchConsoleTarget = 50 * time.Millisecond

// console measures the console pages; admin is the operator token that makes the setup link.
func (s *benchServer) console(ctx context.Context, admin string) error {
	c := newBenchClient(s.base, admin, 1)
	defer c.close()
	var link struct {
		URL string `json:"url"`
	}
	if _, err := c.do(ctx, "POST", "/admin/v1/tenants/"+s.tenant+"/setup-links", []byte(`{}`), &link, 201); err != nil {
		return err
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	browser := &http.Client{Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// The link is made for the server's public base URL; the bench reaches it on its address.
	u, err := url.Parse(link.URL)
	if err != nil {
		return fmt.Errorf("setup link %q: %w", link.URL, err)
	}
	if status, _, err := benchConsoleGet(ctx, browser, s.base+u.Path); err != nil || status != http.StatusSeeOther {
		return fmt.Errorf("setup link: status %d, %v", status, err)
	}

	m := s.model
	base := "/console/" + s.tenant
	mid := m.users[len(m.users)/2]
	pages := []struct{ name, path string }{
		{"setup", base},
		{"status", base + "/status"},
		{"users", base + "/users"},
		{"users, middle page", base + "/users?after=" + url.QueryEscape(mid.id)},
		{"users, search", base + "/users?q=" + url.QueryEscape(mid.userName[:max(1, len(mid.userName)-2)])},
		{"user", base + "/users/" + mid.id},
		{"groups", base + "/groups"},
		{"provisioning", base + "/provisioning"},
		{"settings", base + "/settings"},
	}
	if len(m.groups) > 0 {
		big := m.groups[0]
		for _, g := range m.groups {
			if len(g.members) > len(big.members) {
				big = g
			}
		}
		pages = append(pages, struct{ name, path string }{"groups, middle page", base + "/groups?after=" + url.QueryEscape(m.groups[len(m.groups)/2].id)},
			struct{ name, path string }{fmt.Sprintf("group of %d members", len(big.members)), base + "/groups/" + big.id})
		if len(big.members) > 2 {
			pages = append(pages, struct{ name, path string }{"its middle page", base + "/groups/" + big.id + "?after=" +
				url.QueryEscape(m.users[big.members[len(big.members)/2]].id)})
		}
	}
	rounds := 100
	if s.cfg.Profile.Users < 1000 {
		rounds = 10
	}
	total := uint64(rounds * len(pages))
	bar := s.bar("console pages", int(total))
	done := uint64(0)
	var all []time.Duration
	var notes []string
	defer s.profile("console", &s.rep.ConsoleProfile)()
	start := time.Now()
	for _, p := range pages {
		ds := make([]time.Duration, 0, rounds)
		for range rounds {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			t0 := time.Now()
			status, body, err := benchConsoleGet(ctx, browser, s.base+p.path)
			d := time.Since(t0)
			if err != nil {
				return fmt.Errorf("console %s: %w", p.name, err)
			}
			if status != http.StatusOK {
				return fmt.Errorf("console %s: status %d: %.200s", p.name, status, body)
			}
			ds = append(ds, d)
			done++
			bar.Update(done, total)
		}
		all = append(all, ds...)
		l := benchLatencyOf(ds)
		notes = append(notes, fmt.Sprintf("%s %s (p50 %s)", p.name, benchFmtMs(*benchMs(l.P99)), benchFmtMs(*benchMs(l.P50))))
	}
	elapsed := time.Since(start)
	bar.Done()
	slices.Sort(all)
	r := &benchResult{Key: "console.pages", Section: "console",
		Name: fmt.Sprintf("console pages (%dk users, %d groups), one admin", len(m.users)/1000, len(m.groups)),
		Ops:  len(all), Seconds: elapsed.Seconds(), Rate: float64(len(all)) / elapsed.Seconds(), Unit: "pages/s",
		Target: "p99 ≤ 50 ms", check: benchP99Target(benchConsoleTarget),
		Note: "answer time over loopback, per page p99 (p50): " + strings.Join(notes, ", ")}
	s.rep.add(r.withLatency(all))
	return nil
}

// benchConsoleGet fetches a console page as the signed-in browser.
func benchConsoleGet(ctx context.Context, c *http.Client, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "text/html")
	res, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}
