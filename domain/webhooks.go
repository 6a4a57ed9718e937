package domain

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Webhook endpoints are company settings: events on the tenant aggregate, folded into
// [Tenant.Webhooks]. Their signing secrets are not in the log (which cannot forget): the
// adapter keeps them in a deletable store (docs/events.md, "Webhooks").

// Wire names of webhook events.
const (
	EventTenantWebhookCreated  = "tenant.webhook_created"
	EventTenantWebhookChanged  = "tenant.webhook_changed"
	EventTenantWebhookDeleted  = "tenant.webhook_deleted"
	EventTenantWebhookDisabled = "tenant.webhook_disabled"
	EventTenantWebhookReplayed = "tenant.webhook_replayed"
)

// Limits of webhook endpoints.
const (
	// MaxWebhooks is how many endpoints a company may have.
	MaxWebhooks = 20
	// MaxWebhookURL is the longest endpoint URL, in bytes.
	MaxWebhookURL = 2048
	// MaxWebhookDescription is the longest description, in characters.
	MaxWebhookDescription = 500
)

// A Webhook is one of a company's webhook endpoints as the tenant state holds it.
type Webhook struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Types       []string `json:"types,omitempty"` // public event types; none means all
	Description string   `json:"description,omitempty"`
	// Disabled is set when deliveries stopped: after failing for the whole retry period, or
	// by the company; DisabledReason says why.
	Disabled       bool      `json:"disabled,omitempty"`
	DisabledReason string    `json:"disabledReason,omitempty"`
	DisabledAt     time.Time `json:"disabledAt,omitzero"`
	Created        time.Time `json:"created"`
	// From is the log position deliveries start after, and Epoch the position of the event
	// that set it (its creation or its last replay): the deliverer's progress is kept per
	// epoch, so a replay starts afresh.
	From  Version `json:"from"`
	Epoch Version `json:"epoch"`
	// Changed is the position of the endpoint's last event: a deliverer started before it
	// starts again.
	Changed Version `json:"changed"`
}

// Wants reports whether the endpoint receives events of a public type.
func (w Webhook) Wants(publicType string) bool {
	return len(w.Types) == 0 || slices.Contains(w.Types, publicType)
}

// WebhookCreated records a new endpoint.
type WebhookCreated struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Types       []string `json:"types,omitempty"`
	Description string   `json:"description,omitempty"`
}

// WebhookChanged records a change of an endpoint; nil fields are unchanged. Enabled true
// resumes a disabled endpoint where it stopped, false pauses it.
type WebhookChanged struct {
	ID          string    `json:"id"`
	URL         *string   `json:"url,omitempty"`
	Types       *[]string `json:"types,omitempty"`
	Description *string   `json:"description,omitempty"`
	Enabled     *bool     `json:"enabled,omitempty"`
}

// WebhookDeleted records that an endpoint is gone.
type WebhookDeleted struct {
	ID string `json:"id"`
}

// WebhookDisabled records that deliveries to an endpoint stopped, and why.
type WebhookDisabled struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// WebhookReplayed records that an endpoint receives the company's events again from a log
// position on (after it).
type WebhookReplayed struct {
	ID    string  `json:"id"`
	After Version `json:"after"`
}

// Webhook returns the endpoint with the given id.
func (t *Tenant) Webhook(id string) (Webhook, bool) {
	for _, w := range t.Webhooks {
		if w.ID == id {
			return w, true
		}
	}
	return Webhook{}, false
}

// applyWebhook folds a webhook event into the tenant.
func (t *Tenant) applyWebhook(e Event) {
	hooks := slices.Clone(t.Webhooks)
	at := slices.IndexFunc(hooks, func(w Webhook) bool { return w.ID == webhookID(e.Data) })
	switch d := e.Data.(type) {
	case WebhookCreated:
		hooks = append(hooks, Webhook{ID: d.ID, URL: d.URL, Types: slices.Clone(d.Types), Description: d.Description,
			Created: e.At, From: e.Version, Epoch: e.Version})
	case WebhookChanged:
		if at < 0 {
			return
		}
		w := hooks[at]
		if d.URL != nil {
			w.URL = *d.URL
		}
		if d.Types != nil {
			w.Types = slices.Clone(*d.Types)
		}
		if d.Description != nil {
			w.Description = *d.Description
		}
		if d.Enabled != nil {
			w.Disabled, w.DisabledReason, w.DisabledAt = !*d.Enabled, "", time.Time{}
			if w.Disabled {
				w.DisabledReason, w.DisabledAt = "paused by the company", e.At
			}
		}
		hooks[at] = w
	case WebhookDisabled:
		if at < 0 {
			return
		}
		hooks[at].Disabled, hooks[at].DisabledReason, hooks[at].DisabledAt = true, d.Reason, e.At
	case WebhookReplayed:
		if at < 0 {
			return
		}
		hooks[at].From, hooks[at].Epoch = d.After, e.Version
	case WebhookDeleted:
		if at >= 0 {
			hooks = slices.Delete(hooks, at, at+1)
		}
		t.Webhooks = hooks
		return
	}
	if at = slices.IndexFunc(hooks, func(w Webhook) bool { return w.ID == webhookID(e.Data) }); at >= 0 {
		hooks[at].Changed = e.Version
	}
	t.Webhooks = hooks
}

func webhookID(data any) string {
	switch d := data.(type) {
	case WebhookCreated:
		return d.ID
	case WebhookChanged:
		return d.ID
	case WebhookDeleted:
		return d.ID
	case WebhookDisabled:
		return d.ID
	case WebhookReplayed:
		return d.ID
	}
	return ""
}

// CheckWebhookURL checks an endpoint URL's form: absolute, https (or http when allowHTTP),
// with a host, no credentials and no fragment, at most MaxWebhookURL bytes. Where the host
// may point is the adapter's check (it resolves names).
func CheckWebhookURL(raw string, allowHTTP bool) (*url.URL, error) {
	if len(raw) > MaxWebhookURL {
		return nil, Errorf(ErrInvalid, "url is longer than %d bytes", MaxWebhookURL)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Hostname() == "" {
		return nil, Errorf(ErrInvalid, "url must be an absolute https URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowHTTP:
	default:
		return nil, Errorf(ErrInvalid, "url must use https")
	}
	if u.User != nil || u.Fragment != "" {
		return nil, Errorf(ErrInvalid, "url must not carry credentials or a fragment")
	}
	return u, nil
}

func checkWebhookDescription(d string) error {
	if utf8.RuneCountInString(d) > MaxWebhookDescription {
		return Errorf(ErrInvalid, "description is longer than %d characters", MaxWebhookDescription)
	}
	return nil
}

// CreateWebhook adds an endpoint to a company; url and types must have been checked by the
// caller ([CheckWebhookURL], the feed's public types). Deliveries start with the events after
// it. It returns ErrNotFound for an unknown tenant and ErrInvalid beyond MaxWebhooks.
func (s *Service) CreateWebhook(ctx context.Context, tenant TenantID, c WebhookCreated) (Tenant, Webhook, error) {
	c.Description = strings.TrimSpace(c.Description)
	if err := checkWebhookDescription(c.Description); err != nil {
		return Tenant{}, Webhook{}, err
	}
	c.ID = "wh_" + strings.ReplaceAll(s.NewID(), "-", "")
	t, err := s.changeTenant(ctx, tenant, EventTenantWebhookCreated, func(t Tenant) (any, error) {
		if len(t.Webhooks) >= MaxWebhooks {
			return nil, Errorf(ErrInvalid, "the company already has %d webhook endpoints: delete one first", MaxWebhooks)
		}
		return c, nil
	})
	if err != nil {
		return Tenant{}, Webhook{}, err
	}
	w, _ := t.Webhook(c.ID)
	return t, w, nil
}

// ChangeWebhook changes an endpoint (see [WebhookChanged]); a change that changes nothing
// appends nothing. It returns ErrNotFound for an unknown tenant or endpoint.
func (s *Service) ChangeWebhook(ctx context.Context, tenant TenantID, c WebhookChanged) (Tenant, Webhook, error) {
	if c.Description != nil {
		d := strings.TrimSpace(*c.Description)
		if err := checkWebhookDescription(d); err != nil {
			return Tenant{}, Webhook{}, err
		}
		c.Description = &d
	}
	t, err := s.changeTenant(ctx, tenant, EventTenantWebhookChanged, func(t Tenant) (any, error) {
		w, ok := t.Webhook(c.ID)
		if !ok {
			return nil, Errorf(ErrNotFound, "the company has no webhook endpoint %q", c.ID)
		}
		next := t
		next.applyWebhook(Event{Data: c, At: w.DisabledAt})
		if n, _ := next.Webhook(c.ID); webhookEqual(n, w) {
			return nil, nil
		}
		return c, nil
	})
	if err != nil {
		return Tenant{}, Webhook{}, err
	}
	w, _ := t.Webhook(c.ID)
	return t, w, nil
}

func webhookEqual(a, b Webhook) bool {
	return a.URL == b.URL && slices.Equal(a.Types, b.Types) && a.Description == b.Description && a.Disabled == b.Disabled
}

// DeleteWebhook removes an endpoint. It returns ErrNotFound for an unknown tenant or endpoint.
func (s *Service) DeleteWebhook(ctx context.Context, tenant TenantID, id string) (Tenant, error) {
	return s.changeTenant(ctx, tenant, EventTenantWebhookDeleted, func(t Tenant) (any, error) {
		if _, ok := t.Webhook(id); !ok {
			return nil, Errorf(ErrNotFound, "the company has no webhook endpoint %q", id)
		}
		return WebhookDeleted{ID: id}, nil
	})
}

// DisableWebhook stops deliveries to an endpoint (the deliverer gave up); an endpoint already
// disabled or gone changes nothing.
func (s *Service) DisableWebhook(ctx context.Context, tenant TenantID, id, reason string) (Tenant, error) {
	return s.changeTenant(ctx, tenant, EventTenantWebhookDisabled, func(t Tenant) (any, error) {
		if w, ok := t.Webhook(id); !ok || w.Disabled {
			return nil, nil
		}
		return WebhookDisabled{ID: id, Reason: reason}, nil
	})
}

// ReplayWebhook makes an endpoint receive the company's events after log position after
// again (0: from the first). It returns ErrNotFound for an unknown tenant or endpoint.
func (s *Service) ReplayWebhook(ctx context.Context, tenant TenantID, id string, after Version) (Tenant, error) {
	return s.changeTenant(ctx, tenant, EventTenantWebhookReplayed, func(t Tenant) (any, error) {
		if _, ok := t.Webhook(id); !ok {
			return nil, Errorf(ErrNotFound, "the company has no webhook endpoint %q", id)
		}
		return WebhookReplayed{ID: id, After: after}, nil
	})
}

// WebhookQueues are the log's durable per-endpoint queues of a company's messages, from which
// webhooks are delivered (eventstore implements it). An endpoint has one queue per epoch (see
// [Webhook]), starting after a log position; a queue hands out one message at a time, so
// deliveries are in order and no two deliverers hold the same endpoint's next message.
type WebhookQueues interface {
	// WebhookQueue opens (creating it the first time) the queue of an endpoint's epoch, which
	// starts after log position from; a message a deliverer fetched and neither acknowledged
	// nor handed back goes to another after ackWait.
	WebhookQueue(ctx context.Context, tenant TenantID, id string, epoch, from Version, ackWait time.Duration) (WebhookQueue, error)
	// DeleteWebhookQueue deletes the queue of an endpoint's epoch (none is fine).
	DeleteWebhookQueue(ctx context.Context, tenant TenantID, id string, epoch Version) error
}

// A WebhookQueue is one endpoint's queue.
type WebhookQueue interface {
	// Next waits up to wait for the next message; nil if none came.
	Next(ctx context.Context, wait time.Duration) (PendingEvent, error)
}

// A PendingEvent is a message a deliverer holds until it acknowledges or hands it back.
type PendingEvent interface {
	// Event is the message: an index record or a private event comes too (acknowledge it).
	Event() Event
	// Ack moves the queue past the message.
	Ack(ctx context.Context) error
	// Retry hands the message back, to be fetched again after delay; the queue stays on it.
	Retry(delay time.Duration) error
}

// RecordStore is a store of records that do not expire, outside the log, shared by every
// instance (eventstore.Bucket implements it). Get of a missing key wraps ErrNotFound.
type RecordStore interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
}
