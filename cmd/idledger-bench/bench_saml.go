package main

// Section 5 of the bench: SAML single sign-on. The login lookup alone (what the ACS asks the
// read models for a NameID) and the full ACS over HTTP: responses signed beforehand by
// saml/samltest's in-process IdP (Entra-shaped metadata, crewjam's IdentityProvider), each
// answering its own SP-initiated /login, then posted at the profile's concurrency.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idledger/idledger/cmd/internal/app"
	"github.com/idledger/idledger/cmd/internal/cli"
	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/saml/samltest"
)

// benchSAMLTB lets the bench use samltest, which is written for tests: Helper does nothing and a
// failure panics with a benchSAMLFailure that benchSAMLTry turns back into an error. Any other method
// of testing.TB is never called by samltest (the embedded nil TB would panic).
type benchSAMLTB struct{ testing.TB }

type benchSAMLFailure string

func (benchSAMLTB) Helper()           {}
func (benchSAMLTB) Fatal(args ...any) { panic(benchSAMLFailure(fmt.Sprint(args...))) }
func (benchSAMLTB) Fatalf(format string, args ...any) {
	panic(benchSAMLFailure(fmt.Sprintf(format, args...)))
}
func (benchSAMLTB) Error(args ...any) { panic(benchSAMLFailure(fmt.Sprint(args...))) }
func (benchSAMLTB) Errorf(format string, args ...any) {
	panic(benchSAMLFailure(fmt.Sprintf(format, args...)))
}

// benchSAMLTry runs f and returns a samltest failure as an error.
func benchSAMLTry(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, ok := r.(benchSAMLFailure)
			if !ok {
				panic(r)
			}
			err = errors.New("samltest: " + string(msg))
		}
	}()
	f()
	return nil
}

// benchSAML measures section 5 against a running server.
type benchSAML struct {
	m      *app.Server
	base   string // http://host:port
	tenant string
	token  string // an API key of the company with sso:write (uploads the IdP metadata)
	users  []*benchUser
	prof   benchProfile
	rss    *benchRSS
	rep    *benchReport
	bar    func(label string, total int) *cli.Progress
	idp    *samltest.IDP
}

// setup uploads the test IdP's metadata for the company (done before the cycles, as an admin
// would).
func (b *benchSAML) setup(ctx context.Context) error {
	if err := benchSAMLTry(func() { b.idp = samltest.New(benchSAMLTB{}, samltest.Entra, time.Now) }); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, b.base+"/api/v1/sso/idp-metadata", bytes.NewReader(b.idp.Metadata))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/xml")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent && res.StatusCode != http.StatusOK {
		return fmt.Errorf("upload IdP metadata: %d %.300s", res.StatusCode, body)
	}
	return nil
}

// active returns the users that may sign in (active, created).
func (b *benchSAML) active() []*benchUser {
	var out []*benchUser
	for _, u := range b.users {
		if u.active && u.id != "" {
			out = append(out, u)
		}
	}
	return out
}

// lookups measures the read-model lookups of a login at the profile's concurrency.
func (b *benchSAML) lookups(ctx context.Context) {
	users := b.active()
	tenant := domain.TenantID(b.tenant)
	type lookup struct {
		key, name string
		fn        func(name string) error
	}
	for _, lk := range []lookup{
		{"saml.lookup", "login lookup: LoginByUserName (the ACS's)", func(name string) error {
			e, err := b.m.DB.LoginByUserName(ctx, tenant, name)
			if err == nil && !e.Active {
				err = fmt.Errorf("user %s is not active", name)
			}
			return err
		}},
	} {
		r := &benchResult{Key: lk.key, Section: "saml", Name: lk.name, Limit: limBoltGet, Unit: "lookups/s",
			Target: "p99 ≤ 1 ms", check: benchP99Target(time.Millisecond),
			Note: "in-process call on the read models, concurrency " + fmt.Sprint(b.prof.Concurrency)}
		if len(users) == 0 {
			r.NotMeasured = "no active users"
			b.rep.add(r)
			continue
		}
		total := b.prof.LookupOps
		b.rss.reset()
		bar := b.bar("saml "+lk.key, total)
		var done atomic.Int64
		var mu sync.Mutex
		all := benchSamples{}
		var first error
		var wg sync.WaitGroup
		start := time.Now()
		for g := range b.prof.Concurrency {
			n := total / b.prof.Concurrency
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 5))
				s := benchSamples{}
				var err error
				for range n {
					u := users[rng.IntN(len(users))]
					name := u.userName
					if rng.IntN(2) == 0 {
						name = strings.ToUpper(name) // NameIDs arrive in any case
					}
					t := time.Now()
					if err = lk.fn(name); err != nil {
						break
					}
					s.add("op", time.Since(t))
					if d := done.Add(1); d%1024 == 0 {
						bar.Update(uint64(d), uint64(total))
					}
				}
				mu.Lock()
				all.merge(s)
				if err != nil && first == nil {
					first = err
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		bar.Update(uint64(total), uint64(total))
		bar.Done()
		if first != nil {
			r.NotMeasured = first.Error()
			b.rep.fail(lk.name, first)
			b.rep.add(r)
			continue
		}
		n := len(all["op"])
		r.Ops, r.Seconds, r.Rate, r.RSSMiB = n, elapsed.Seconds(), float64(n)/elapsed.Seconds(), b.rss.peakMiB()
		r.withLatency(all["op"])
		b.rep.add(r)
	}
}

// benchLogin is one browser's login, signed by the IdP and ready to post to the ACS.
type benchLogin struct {
	client *http.Client
	resp   samltest.Response
}

// acs measures full logins: the browser posts the IdP's signed response to the ACS, which
// verifies it (crewjam), takes the outstanding request, consumes the assertion id in the
// replay cache, looks the user up, records the sign-in in the log and opens a session.
func (b *benchSAML) acs(ctx context.Context) error {
	r := &benchResult{Key: "saml.acs", Section: "saml", Limit: limFsyncC32, Unit: "logins/s",
		Name: fmt.Sprintf("full ACS over HTTP, c=%d", b.prof.Concurrency),
		Note: "each login is ≥ 3 durable writes (sign-in event, assertion id, session) plus taking the request; responses signed beforehand"}
	users := b.active()
	if len(users) == 0 {
		r.NotMeasured = "no active users"
		b.rep.add(r)
		return nil
	}
	spMeta, err := b.get(ctx, nil, "/saml/"+b.tenant+"/metadata", http.StatusOK)
	if err != nil {
		return err
	}
	n := b.prof.SAMLLogins
	logins := make([]benchLogin, n)
	bar := b.bar("saml sign responses (not timed)", n)
	var done atomic.Int64
	errs := make(chan error, b.prof.Concurrency)
	var wg sync.WaitGroup
	next := make(chan int)
	for range b.prof.Concurrency {
		wg.Go(func() {
			for i := range next {
				jar, _ := cookiejar.New(nil)
				c := &http.Client{Jar: jar, Timeout: time.Minute,
					CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
				loc, err := b.startLogin(ctx, c)
				if err == nil {
					u := users[(i*7919)%len(users)]
					err = benchSAMLTry(func() { logins[i] = benchLogin{client: c, resp: b.idp.Login(benchSAMLTB{}, loc, spMeta, u.userName)} })
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				bar.Update(uint64(done.Add(1)), uint64(n))
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	bar.Done()
	select {
	case err := <-errs:
		return fmt.Errorf("prepare logins: %w", err)
	default:
	}

	b.rss.reset()
	bar = b.bar("saml ACS", n)
	done.Store(0)
	var mu sync.Mutex
	all := benchSamples{}
	var first error
	next = make(chan int)
	start := time.Now()
	for range b.prof.Concurrency {
		wg.Go(func() {
			s := benchSamples{}
			for i := range next {
				p := logins[i]
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.resp.ACSURL, strings.NewReader(p.resp.Form.Encode()))
				if err != nil {
					continue
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				t := time.Now()
				res, err := p.client.Do(req)
				if err == nil {
					io.Copy(io.Discard, res.Body) //nolint:errcheck
					res.Body.Close()
					if res.StatusCode != http.StatusSeeOther {
						err = fmt.Errorf("ACS: status %d, want 303", res.StatusCode)
					}
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					continue
				}
				s.add("op", time.Since(t))
				bar.Update(uint64(done.Add(1)), uint64(n))
			}
			mu.Lock()
			all.merge(s)
			mu.Unlock()
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	bar.Done()
	if first != nil {
		r.NotMeasured = first.Error()
		b.rep.add(r)
		return first
	}
	r.Ops, r.Seconds, r.Rate, r.RSSMiB = n, elapsed.Seconds(), float64(n)/elapsed.Seconds(), b.rss.peakMiB()
	r.withLatency(all["op"])
	b.rep.add(r)
	return nil
}

// startLogin opens /saml/<tenant>/login in a browser and returns the IdP URL it is sent to.
func (b *benchSAML) startLogin(ctx context.Context, c *http.Client) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/saml/"+b.tenant+"/login?return_to=%2Fapp", nil)
	if err != nil {
		return "", err
	}
	res, err := c.Do(req)
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, res.Body) //nolint:errcheck
	res.Body.Close()
	if res.StatusCode != http.StatusFound {
		return "", fmt.Errorf("login: status %d, want 302", res.StatusCode)
	}
	return res.Header.Get("Location"), nil
}

func (b *benchSAML) get(ctx context.Context, c *http.Client, path string, want int) ([]byte, error) {
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base+path, nil)
	if err != nil {
		return nil, err
	}
	res, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != want {
		err = fmt.Errorf("GET %s: status %d: %.300s", path, res.StatusCode, body)
	}
	return body, err
}
