package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/feed"
)

// Defaults of [Config].
const (
	DefaultRetryFor      = 72 * time.Hour
	DefaultTimeout       = 10 * time.Second
	DefaultFirstRetry    = 5 * time.Second
	DefaultMaxRetryDelay = time.Hour
	DefaultRefresh       = 2 * time.Second
	DefaultAckWait       = 60 * time.Second
	// maxResponseBody is how much of a receiver's answer is read (and thrown away).
	maxResponseBody = 16 << 10
	// keptAttempts is how many recent attempts an endpoint's record keeps.
	keptAttempts = 100
	// fetchWait is how long a worker waits for its endpoint's next message per fetch.
	fetchWait = 5 * time.Second
)

// Config is what a [Deliverer] needs.
type Config struct {
	// Queues are the log's durable per-endpoint queues (eventstore/feed_webhooks.go).
	Queues domain.WebhookQueues
	// Secrets holds each endpoint's secret, Deliveries its attempts and retry state: stores
	// outside the log (the NATS KV buckets IDL_WEBHOOK_SECRETS and IDL_WEBHOOK_DELIVERIES).
	Secrets, Deliveries domain.RecordStore
	// Endpoints returns the companies that have webhook endpoints (only ID and Webhooks are
	// used); the read models answer it.
	Endpoints func(ctx context.Context) ([]domain.Tenant, error)
	// Disable records that an endpoint's deliveries stopped (domain.Service.DisableWebhook).
	Disable func(ctx context.Context, tenant domain.TenantID, id, reason string) error
	// AllowPrivate lets webhooks reach loopback, private and link-local addresses and use
	// http (development and tests only).
	AllowPrivate bool
	// RetryFor is how long an event is retried before the endpoint is disabled (default 72 h);
	// Timeout bounds one attempt (default 10 s); retries wait FirstRetry, doubling up to
	// MaxRetryDelay, with ±20 % jitter (defaults 5 s and 1 h); Refresh is how often the list of
	// endpoints is read again (default 2 s).
	RetryFor, Timeout, FirstRetry, MaxRetryDelay, Refresh time.Duration
	// AckWait is how long an event fetched by an instance that then dies waits before another
	// instance takes it (default 60 s; more than Timeout).
	AckWait time.Duration
	// SecretTTL is how long a worker signs with a secret it read before reading it again, so
	// a rotation is in force everywhere within it (default 1 s; negative: read it every time).
	SecretTTL time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
}

// A Deliverer sends each company's public events to its webhook endpoints. Run it on every
// instance: each endpoint's durable queue lets one instance at a time deliver to it.
type Deliverer struct {
	cfg    Config
	client *http.Client
	kick   chan struct{}
}

// New returns a Deliverer with cfg's defaults filled in.
func New(cfg Config) *Deliverer {
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = DefaultRetryFor
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.FirstRetry <= 0 {
		cfg.FirstRetry = DefaultFirstRetry
	}
	if cfg.MaxRetryDelay <= 0 {
		cfg.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.SecretTTL == 0 {
		cfg.SecretTTL = secretTTL
	}
	if cfg.AckWait <= cfg.Timeout {
		cfg.AckWait = max(DefaultAckWait, cfg.Timeout+time.Second)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout}
	if !cfg.AllowPrivate {
		dialer.Control = dialControl
	}
	transport := &http.Transport{
		Proxy:       nil, // a proxy would dial for us, past the address check
		DialContext: dialer.DialContext, TLSHandshakeTimeout: cfg.Timeout, ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true,
	}
	client := &http.Client{Transport: transport, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &Deliverer{cfg: cfg, client: client, kick: make(chan struct{}, 1)}
}

// recordKey is an endpoint's key in the record stores: a hash of the company and endpoint ids
// (valid as a NATS KV key whatever the ids hold).
func recordKey(tenant domain.TenantID, id string) string {
	h := sha256.New()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return hex.EncodeToString(h.Sum(nil)[:20])
}

// AllowPrivate reports whether private addresses and http are allowed.
func (d *Deliverer) AllowPrivate() bool { return d.cfg.AllowPrivate }

// CheckURL checks an endpoint URL: its form, and unless private addresses are allowed, that
// its host resolves to public addresses only. Errors wrap domain.ErrInvalid.
func (d *Deliverer) CheckURL(ctx context.Context, raw string) error {
	u, err := domain.CheckWebhookURL(raw, d.cfg.AllowPrivate)
	if err != nil {
		return err
	}
	if d.cfg.AllowPrivate {
		return nil
	}
	return CheckHost(ctx, net.DefaultResolver, u.Hostname())
}

// Kick makes Run read the list of endpoints now (after a change through the API).
func (d *Deliverer) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// SetSecret stores an endpoint's secret (replacing the old one, which stops signing at once).
func (d *Deliverer) SetSecret(ctx context.Context, tenant domain.TenantID, id, secret string) error {
	return d.cfg.Secrets.Put(ctx, recordKey(tenant, id), []byte(secret))
}

// Forget deletes an endpoint's secret and delivery records.
func (d *Deliverer) Forget(ctx context.Context, tenant domain.TenantID, id string) error {
	key := recordKey(tenant, id)
	return errors.Join(d.cfg.Secrets.Delete(ctx, key), d.cfg.Deliveries.Delete(ctx, key))
}

// An Attempt is one delivery attempt as GET /api/v1/webhooks/{id}/deliveries lists it.
type Attempt struct {
	EventID   string     `json:"eventId"`
	EventType string     `json:"eventType"`
	Attempt   int        `json:"attempt"`
	At        time.Time  `json:"at"`
	Succeeded bool       `json:"succeeded"`
	Status    int        `json:"status,omitempty"`
	Error     string     `json:"error,omitempty"`
	LatencyMs int64      `json:"latencyMs"`
	NextRetry *time.Time `json:"nextRetry,omitempty"`
}

// State is an endpoint's delivery record: its retry state and recent attempts, newest first.
type State struct {
	Epoch        domain.Version `json:"epoch"`
	Delivered    uint64         `json:"delivered"`
	LastSuccess  time.Time      `json:"lastSuccess,omitzero"`
	FailingSince time.Time      `json:"failingSince,omitzero"`
	Failures     int            `json:"failures"`
	GaveUp       bool           `json:"gaveUp,omitempty"`
	Attempts     []Attempt      `json:"attempts"`
}

// Deliveries returns an endpoint's delivery record (empty if nothing was attempted yet).
func (d *Deliverer) Deliveries(ctx context.Context, tenant domain.TenantID, id string) (State, error) {
	return d.state(ctx, recordKey(tenant, id))
}

func (d *Deliverer) state(ctx context.Context, key string) (State, error) {
	st := State{Attempts: []Attempt{}}
	b, err := d.cfg.Deliveries.Get(ctx, key)
	if errors.Is(err, domain.ErrNotFound) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return State{Attempts: []Attempt{}}, fmt.Errorf("webhook: delivery record: %w", err)
	}
	return st, nil
}

func (d *Deliverer) saveState(ctx context.Context, key string, st State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("webhook: delivery record: %w", err)
	}
	return d.cfg.Deliveries.Put(ctx, key, b)
}

// worker is the goroutine delivering to one endpoint.
type worker struct {
	hook   domain.Webhook
	cancel context.CancelFunc
	done   chan struct{}
}

type endpointKey struct {
	tenant domain.TenantID
	id     string
}

// Run delivers until ctx ends: one worker per enabled endpoint, started, restarted (on a
// change) and stopped as the list of endpoints changes.
func (d *Deliverer) Run(ctx context.Context) error {
	workers := make(map[endpointKey]*worker)
	var wg sync.WaitGroup
	defer func() {
		for _, w := range workers {
			w.cancel()
		}
		wg.Wait()
	}()
	// seen holds every endpoint (disabled ones too) as the last refresh listed it: the queue of
	// one that is gone, or of an epoch a replay ended, is deleted (by every instance: deleting
	// a deleted queue is fine).
	var seen map[endpointKey]domain.Webhook
	tick := time.NewTicker(d.cfg.Refresh)
	defer tick.Stop()
	for {
		tenants, err := d.cfg.Endpoints(ctx)
		if err != nil && ctx.Err() == nil {
			d.cfg.Logger.Warn("webhooks: cannot list the endpoints", "err", err)
		}
		if err == nil {
			want := make(map[endpointKey]domain.Webhook)
			all := make(map[endpointKey]domain.Webhook)
			for _, t := range tenants {
				for _, h := range t.Webhooks {
					k := endpointKey{t.ID, h.ID}
					all[k] = h
					if !h.Disabled {
						want[k] = h
					}
				}
			}
			for k, w := range workers {
				if h, ok := want[k]; ok && sameEndpoint(h, w.hook) {
					continue
				}
				w.cancel()
				<-w.done
				delete(workers, k)
			}
			for k, old := range seen {
				if h, ok := all[k]; ok && h.Epoch == old.Epoch {
					continue
				}
				if err := d.cfg.Queues.DeleteWebhookQueue(ctx, k.tenant, k.id, old.Epoch); err != nil {
					d.cfg.Logger.Warn("webhooks: cannot delete an old queue", "tenant", k.tenant, "endpoint", k.id, "err", err)
				}
			}
			seen = all
			for k, h := range want {
				if _, ok := workers[k]; ok {
					continue
				}
				wctx, cancel := context.WithCancel(ctx)
				w := &worker{hook: h, cancel: cancel, done: make(chan struct{})}
				workers[k] = w
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer close(w.done)
					d.work(wctx, k.tenant, h)
				}()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-d.kick:
		}
	}
}

// sameEndpoint reports whether a worker started for b may go on for a: nothing happened to
// the endpoint since.
func sameEndpoint(a, b domain.Webhook) bool {
	return a.Changed == b.Changed && a.Epoch == b.Epoch && a.Disabled == b.Disabled
}

// errGaveUp ends a worker whose endpoint it disabled.
var errGaveUp = errors.New("webhook: gave up")

// work delivers to one endpoint until ctx ends or it gives up, opening its queue again after
// an error of the log.
func (d *Deliverer) work(ctx context.Context, tenant domain.TenantID, h domain.Webhook) {
	pause := time.Second
	for ctx.Err() == nil {
		q, err := d.cfg.Queues.WebhookQueue(ctx, tenant, h.ID, h.Epoch, h.From, d.cfg.AckWait)
		if err == nil {
			err = d.drain(ctx, tenant, h, q)
			if errors.Is(err, errGaveUp) {
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		d.cfg.Logger.Warn("webhooks: delivery interrupted", "tenant", tenant, "endpoint", h.ID, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// flushEvery is how often a worker that only succeeds writes its delivery record: a success
// needs no durable record (the queue's acknowledgement is the progress), a failure is written
// at once.
const flushEvery = time.Second

// secretTTL is how long a worker signs with the secret it read before reading it again: a
// rotated secret is in force for every instance within it.
const secretTTL = time.Second

// endpointState is a worker's copy of its endpoint's delivery record and secret.
type endpointState struct {
	key      string
	st       State
	dirty    bool
	saved    time.Time
	secret   string
	secretAt time.Time
}

func (d *Deliverer) flush(ctx context.Context, es *endpointState) error {
	if !es.dirty {
		return nil
	}
	if err := d.saveState(ctx, es.key, es.st); err != nil {
		return err
	}
	es.dirty, es.saved = false, time.Now()
	return nil
}

// signingSecret returns the endpoint's secret, read again after secretTTL.
func (d *Deliverer) signingSecret(ctx context.Context, es *endpointState) (string, error) {
	if es.secret != "" && time.Since(es.secretAt) < d.cfg.SecretTTL {
		return es.secret, nil
	}
	b, err := d.cfg.Secrets.Get(ctx, es.key)
	if err != nil {
		return "", fmt.Errorf("no secret: %w", err)
	}
	es.secret, es.secretAt = string(b), time.Now()
	return es.secret, nil
}

// drain delivers the queue's messages in order.
func (d *Deliverer) drain(ctx context.Context, tenant domain.TenantID, h domain.Webhook, q domain.WebhookQueue) error {
	es := &endpointState{key: recordKey(tenant, h.ID)}
	st, err := d.state(ctx, es.key)
	if err != nil {
		return err
	}
	es.st = st
	if st.GaveUp || st.Epoch != h.Epoch {
		// Enabled again after it gave up, or replayed: the retry period starts afresh.
		es.st.GaveUp, es.st.FailingSince, es.st.Failures, es.st.Epoch, es.dirty = false, time.Time{}, 0, h.Epoch, true
	}
	defer func() { _ = d.flush(context.WithoutCancel(ctx), es) }()
	for {
		if time.Since(es.saved) >= flushEvery {
			if err := d.flush(ctx, es); err != nil {
				return err
			}
		}
		p, err := q.Next(ctx, fetchWait)
		if err != nil {
			return err
		}
		if p == nil {
			continue
		}
		item, ok := feed.Map(p.Event())
		if !ok || !h.Wants(item.Type) {
			if err := p.Ack(ctx); err != nil {
				return err
			}
			continue
		}
		if err := d.deliver(ctx, tenant, h, es, item, p); err != nil {
			return err
		}
	}
}

// deliver makes one attempt to deliver a pending event, and acknowledges it, schedules its
// retry, or gives up on the endpoint.
func (d *Deliverer) deliver(ctx context.Context, tenant domain.TenantID, h domain.Webhook, es *endpointState, item feed.Event, p domain.PendingEvent) error {
	body, err := feed.Marshal(item)
	if err != nil {
		return err
	}
	a := Attempt{EventID: item.ID, EventType: item.Type, Attempt: es.st.Failures + 1, At: d.cfg.Now().UTC()}
	var status int
	secret, err := d.signingSecret(ctx, es)
	if err == nil {
		status, err = d.send(ctx, h.URL, item.ID, secret, body)
	}
	a.LatencyMs = d.cfg.Now().Sub(a.At).Milliseconds()
	if ctx.Err() != nil {
		// Stopped (shutdown, or the endpoint changed): hand the event back at once.
		_ = p.Retry(0)
		return ctx.Err()
	}
	a.Status = status
	if err == nil {
		a.Succeeded = true
		if err := p.Ack(ctx); err != nil {
			return err
		}
		wasFailing := es.st.Failures > 0
		es.st.Delivered++
		es.st.LastSuccess, es.st.FailingSince, es.st.Failures = a.At, time.Time{}, 0
		es.st, es.dirty = record(es.st, a), true
		if wasFailing {
			return d.flush(ctx, es) // "healthy again" shows at once
		}
		return nil
	}
	// A failure: start from the stored record (another instance may have delivered or failed
	// since this one last wrote), and write it at once.
	if err := d.flush(ctx, es); err != nil {
		_ = p.Retry(d.cfg.FirstRetry)
		return err
	}
	st, serr := d.state(ctx, es.key)
	if serr != nil {
		_ = p.Retry(d.cfg.FirstRetry)
		return serr
	}
	es.st = st
	es.secret = "" // read it again: it may have been rotated
	a.Error = err.Error()
	a.Attempt = es.st.Failures + 1
	es.st.Failures++
	if es.st.FailingSince.IsZero() {
		es.st.FailingSince = a.At
	}
	if d.cfg.Now().Sub(es.st.FailingSince) >= d.cfg.RetryFor {
		es.st.GaveUp = true
		es.st, es.dirty = record(es.st, a), true
		if err := d.flush(ctx, es); err != nil {
			_ = p.Retry(d.cfg.FirstRetry)
			return err
		}
		reason := fmt.Sprintf("every delivery failed for %s (last: %s)", d.cfg.RetryFor, a.Error)
		if err := d.cfg.Disable(ctx, tenant, h.ID, reason); err != nil {
			_ = p.Retry(d.cfg.FirstRetry)
			return err
		}
		d.cfg.Logger.Warn("webhooks: endpoint disabled", "tenant", tenant, "endpoint", h.ID, "reason", reason)
		_ = p.Retry(0) // the event waits, in the queue, for the endpoint to be enabled again
		return errGaveUp
	}
	delay := d.backoff(es.st.Failures)
	next := a.At.Add(delay)
	a.NextRetry = &next
	es.st, es.dirty = record(es.st, a), true
	if err := d.flush(ctx, es); err != nil {
		_ = p.Retry(delay)
		return err
	}
	return p.Retry(delay)
}

func record(st State, a Attempt) State {
	st.Attempts = append([]Attempt{a}, st.Attempts...)
	if len(st.Attempts) > keptAttempts {
		st.Attempts = st.Attempts[:keptAttempts]
	}
	return st
}

// backoff is the wait before retry n (1 for the first): FirstRetry doubling up to
// MaxRetryDelay, ±20 % jitter so that endpoints that failed together do not retry together.
func (d *Deliverer) backoff(n int) time.Duration {
	delay := d.cfg.FirstRetry
	for i := 1; i < n && delay < d.cfg.MaxRetryDelay; i++ {
		delay *= 2
	}
	delay = min(delay, d.cfg.MaxRetryDelay)
	jitter := time.Duration(rand.Int64N(int64(delay)/5*2+1)) - delay/5
	return delay + jitter
}

// send POSTs one signed message; a 2xx answer is success, anything else an error.
func (d *Deliverer) send(ctx context.Context, rawURL, id, secret string, body []byte) (int, error) {
	if _, err := domain.CheckWebhookURL(rawURL, d.cfg.AllowPrivate); err != nil {
		return 0, err
	}
	at := d.cfg.Now()
	sig, err := Sign(secret, id, at, body)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("webhook: request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "idledger-webhooks")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	res, err := d.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrBlocked) {
			return 0, fmt.Errorf("the url resolves to a blocked address: %w", ErrBlocked)
		}
		return 0, fmt.Errorf("webhook: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxResponseBody))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return res.StatusCode, fmt.Errorf("status %d", res.StatusCode)
	}
	return res.StatusCode, nil
}
