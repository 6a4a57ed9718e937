package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/feed"
	"github.com/idledger/idledger/httpapi/webhook"
)

// Webhook endpoints of the company API (docs/events.md, "Webhooks"): the endpoints are company
// settings in the log; their secrets and delivery records are kept by the deliverer
// (httpapi/webhook), outside it.
//
//	POST   /api/v1/webhooks                      {"url","types","description"} → 201 with the secret, once
//	GET    /api/v1/webhooks                      the endpoints
//	GET    /api/v1/webhooks/{id}                 one, with its health
//	PATCH  /api/v1/webhooks/{id}                 {"url","types","description","enabled"}
//	DELETE /api/v1/webhooks/{id}
//	GET    /api/v1/webhooks/{id}/deliveries      recent attempts, status, latency, next retry
//	POST   /api/v1/webhooks/{id}/replay          {"after":"<event id>"}: send the events after it again
//	POST   /api/v1/webhooks/{id}/rotate-secret   a new secret, once; the old one stops signing

// webhookInfo is an endpoint as the API shows it.
type webhookInfo struct {
	ID             string     `json:"id"`
	URL            string     `json:"url"`
	Types          []string   `json:"types"`
	Description    string     `json:"description"`
	Enabled        bool       `json:"enabled"`
	DisabledReason string     `json:"disabledReason,omitempty"`
	DisabledAt     *time.Time `json:"disabledAt,omitempty"`
	CreatedAt      time.Time  `json:"createdAt"`
	// Health, from the delivery record: "healthy", "failing" or "disabled".
	Health       string     `json:"health"`
	FailingSince *time.Time `json:"failingSince,omitempty"`
	LastSuccess  *time.Time `json:"lastSuccess,omitempty"`
	Delivered    uint64     `json:"delivered"`
	// Secret is set only in the answers that create or rotate it.
	Secret string `json:"secret,omitempty"`
}

// deliverer returns the webhook deliverer, or an error if the server has none.
func (s *Server) deliverer() (*webhook.Deliverer, error) {
	if s.cfg.Webhooks == nil {
		return nil, domain.Errorf(domain.ErrNotFound, "webhooks are not enabled on this server")
	}
	return s.cfg.Webhooks, nil
}

func (s *Server) webhookInfo(ctx context.Context, d *webhook.Deliverer, tenant domain.TenantID, h domain.Webhook) webhookInfo {
	info := webhookInfo{ID: h.ID, URL: h.URL, Types: h.Types, Description: h.Description, Enabled: !h.Disabled,
		DisabledReason: h.DisabledReason, CreatedAt: h.Created, Health: "healthy"}
	if info.Types == nil {
		info.Types = []string{}
	}
	if h.Disabled {
		info.Health = "disabled"
		at := h.DisabledAt
		info.DisabledAt = &at
	}
	st, err := d.Deliveries(ctx, tenant, h.ID)
	if err != nil {
		s.log.Warn("webhook delivery record unavailable", "tenant", tenant, "endpoint", h.ID, "err", err)
		return info
	}
	info.Delivered = st.Delivered
	if !st.LastSuccess.IsZero() {
		info.LastSuccess = &st.LastSuccess
	}
	if !st.FailingSince.IsZero() && st.Epoch == h.Epoch {
		info.FailingSince = &st.FailingSince
		if !h.Disabled {
			info.Health = "failing"
		}
	}
	return info
}

// webhookBody reads the fields of a create or change: url, types, description, enabled.
func (s *Server) webhookBody(c echo.Context, d *webhook.Deliverer) (domain.WebhookChanged, error) {
	body, err := readObject(c)
	if err != nil {
		return domain.WebhookChanged{}, err
	}
	var ch domain.WebhookChanged
	for k, v := range body {
		switch k {
		case "url":
			u, ok := v.(string)
			if !ok {
				return ch, domain.Errorf(domain.ErrInvalid, "url must be a string")
			}
			if err := d.CheckURL(c.Request().Context(), u); err != nil {
				return ch, err
			}
			ch.URL = &u
		case "types":
			var names []string
			if v != nil {
				list, ok := v.([]any)
				if !ok {
					return ch, domain.Errorf(domain.ErrInvalid, "types must be a list of event types")
				}
				for _, t := range list {
					n, ok := t.(string)
					if !ok {
						return ch, domain.Errorf(domain.ErrInvalid, "types must be a list of event types")
					}
					names = append(names, n)
				}
				if err := checkWebhookTypes(names); err != nil {
					return ch, err
				}
			}
			ch.Types = &names
		case "description":
			desc, ok := v.(string)
			if !ok {
				return ch, domain.Errorf(domain.ErrInvalid, "description must be a string")
			}
			ch.Description = &desc
		case "enabled":
			on, ok := v.(bool)
			if !ok {
				return ch, domain.Errorf(domain.ErrInvalid, "enabled must be true or false")
			}
			ch.Enabled = &on
		default:
			return ch, domain.Errorf(domain.ErrInvalid, "unknown field %q", k)
		}
	}
	return ch, nil
}

// handleCreateWebhook serves POST /api/v1/webhooks: 201 with the endpoint and its secret.
func (s *Server) handleCreateWebhook(c echo.Context) error {
	d, err := s.deliverer()
	if err != nil {
		return err
	}
	ch, err := s.webhookBody(c, d)
	if err != nil {
		return err
	}
	if ch.URL == nil {
		return domain.Errorf(domain.ErrInvalid, "url is required")
	}
	if ch.Enabled != nil {
		return domain.Errorf(domain.ErrInvalid, "a new endpoint is enabled; pause it with PATCH")
	}
	create := domain.WebhookCreated{URL: *ch.URL}
	if ch.Types != nil {
		create.Types = *ch.Types
	}
	if ch.Description != nil {
		create.Description = *ch.Description
	}
	ctx, tenant := c.Request().Context(), tenantOf(c)
	t, h, secret, err := s.createWebhook(ctx, d, tenant, create)
	if err != nil {
		return err
	}
	s.waitVisible(c, t.Version)
	d.Kick()
	info := s.webhookInfo(ctx, d, tenant, h)
	info.Secret = secret
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, info)
}

// handleListWebhooks serves GET /api/v1/webhooks.
func (s *Server) handleListWebhooks(c echo.Context) error {
	d, err := s.deliverer()
	if err != nil {
		return err
	}
	ctx, tenant := c.Request().Context(), tenantOf(c)
	t, err := s.read.FindTenant(ctx, tenant)
	if err != nil {
		return err
	}
	out := make([]webhookInfo, 0, len(t.Webhooks))
	for _, h := range t.Webhooks {
		out = append(out, s.webhookInfo(ctx, d, tenant, h))
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out})
}

// findWebhook returns the deliverer and the company's endpoint named by the path parameter
// param ("id" on /api/v1, "hookId" in the console).
func (s *Server) findWebhook(c echo.Context, param string) (*webhook.Deliverer, domain.Webhook, error) {
	d, err := s.deliverer()
	if err != nil {
		return nil, domain.Webhook{}, err
	}
	t, err := s.read.FindTenant(c.Request().Context(), tenantOf(c))
	if err != nil {
		return nil, domain.Webhook{}, err
	}
	h, ok := t.Webhook(c.Param(param))
	if !ok {
		return nil, domain.Webhook{}, domain.Errorf(domain.ErrNotFound, "no webhook endpoint %q", c.Param(param))
	}
	return d, h, nil
}

// handleGetWebhook serves GET /api/v1/webhooks/:id.
func (s *Server) handleGetWebhook(c echo.Context) error {
	d, h, err := s.findWebhook(c, "id")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.webhookInfo(c.Request().Context(), d, tenantOf(c), h))
}

// handlePatchWebhook serves PATCH /api/v1/webhooks/:id.
func (s *Server) handlePatchWebhook(c echo.Context) error {
	d, h, err := s.findWebhook(c, "id")
	if err != nil {
		return err
	}
	ch, err := s.webhookBody(c, d)
	if err != nil {
		return err
	}
	ch.ID = h.ID
	ctx, tenant := c.Request().Context(), tenantOf(c)
	t, h, err := s.svc.ChangeWebhook(ctx, tenant, ch)
	if err != nil {
		return err
	}
	s.waitVisible(c, t.Version)
	d.Kick()
	return c.JSON(http.StatusOK, s.webhookInfo(ctx, d, tenant, h))
}

// handleDeleteWebhook serves DELETE /api/v1/webhooks/:id: the endpoint, its secret and its
// delivery record are gone.
func (s *Server) handleDeleteWebhook(c echo.Context) error {
	d, h, err := s.findWebhook(c, "id")
	if err != nil {
		return err
	}
	err = s.deleteWebhook(c.Request().Context(), d, tenantOf(c), h.ID, func(v domain.Version) error {
		s.waitVisible(c, v)
		return nil
	})
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// handleWebhookDeliveries serves GET /api/v1/webhooks/:id/deliveries: recent attempts, newest
// first.
func (s *Server) handleWebhookDeliveries(c echo.Context) error {
	d, h, err := s.findWebhook(c, "id")
	if err != nil {
		return err
	}
	st, err := d.Deliveries(c.Request().Context(), tenantOf(c), h.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"endpoint": h.ID, "delivered": st.Delivered, "failures": st.Failures,
		"data": st.Attempts})
}

// handleReplayWebhook serves POST /api/v1/webhooks/:id/replay {"after":"<event id>"}: the
// endpoint receives the company's events after that one again (all of them without after).
func (s *Server) handleReplayWebhook(c echo.Context) error {
	d, h, err := s.findWebhook(c, "id")
	if err != nil {
		return err
	}
	body, err := readObject(c)
	if err != nil {
		return err
	}
	after := ""
	if v, ok := body["after"]; ok && v != nil {
		if after, ok = v.(string); !ok {
			return domain.Errorf(domain.ErrInvalid, "after must be an event id")
		}
	}
	ctx, tenant := c.Request().Context(), tenantOf(c)
	t, err := s.replayWebhook(ctx, tenant, h.ID, after)
	if err != nil {
		return err
	}
	s.waitVisible(c, t.Version)
	d.Kick()
	h, _ = t.Webhook(h.ID)
	return c.JSON(http.StatusAccepted, s.webhookInfo(ctx, d, tenant, h))
}

// handleRotateWebhookSecret serves POST /api/v1/webhooks/:id/rotate-secret: a new secret,
// shown once; deliveries are signed with it from now on.
func (s *Server) handleRotateWebhookSecret(c echo.Context) error {
	d, h, err := s.findWebhook(c, "id")
	if err != nil {
		return err
	}
	ctx, tenant := c.Request().Context(), tenantOf(c)
	secret, err := rotateWebhookSecret(ctx, d, tenant, h.ID)
	if err != nil {
		return err
	}
	info := s.webhookInfo(ctx, d, tenant, h)
	info.Secret = secret
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, info)
}

// The actions below are shared by the JSON handlers above and the console's Settings page
// (console_webhooks.go), so both follow the same rules.

// checkWebhookTypes refuses a name that is not a public event type (domain/feed).
func checkWebhookTypes(names []string) error {
	for _, n := range names {
		if _, err := feed.ParseTypes(n); err != nil || n == "" {
			return domain.Errorf(domain.ErrInvalid, "unknown event type %q", n)
		}
	}
	return nil
}

// createWebhook records a new endpoint and stores its new secret, which it returns (to be
// shown once).
func (s *Server) createWebhook(ctx context.Context, d *webhook.Deliverer, tenant domain.TenantID, create domain.WebhookCreated) (domain.Tenant, domain.Webhook, string, error) {
	secret, err := webhook.NewSecret()
	if err != nil {
		return domain.Tenant{}, domain.Webhook{}, "", err
	}
	t, h, err := s.svc.CreateWebhook(ctx, tenant, create)
	if err != nil {
		return domain.Tenant{}, domain.Webhook{}, "", err
	}
	if err := d.SetSecret(ctx, tenant, h.ID, secret); err != nil {
		// An endpoint without a secret cannot be signed for: take it back.
		if _, derr := s.svc.DeleteWebhook(context.WithoutCancel(ctx), tenant, h.ID); derr != nil {
			s.log.Error("webhook endpoint left without a secret", "tenant", tenant, "endpoint", h.ID, "err", derr)
		}
		return domain.Tenant{}, domain.Webhook{}, "", err
	}
	return t, h, secret, nil
}

// deleteWebhook deletes an endpoint, waits with visible until the deliverer's reads no longer
// show it, then forgets its secret and delivery record.
func (s *Server) deleteWebhook(ctx context.Context, d *webhook.Deliverer, tenant domain.TenantID, id string, visible func(domain.Version) error) error {
	t, err := s.svc.DeleteWebhook(ctx, tenant, id)
	if err != nil {
		return err
	}
	if err := visible(t.Version); err != nil {
		return err
	}
	d.Kick()
	if err := d.Forget(ctx, tenant, id); err != nil {
		s.log.Warn("webhook secret not deleted", "tenant", tenant, "endpoint", id, "err", err)
	}
	return nil
}

// replayWebhook makes the endpoint receive the company's events after the event id after
// again (all of them if after is empty); an id that is not one of the company's events is
// domain.ErrInvalid.
func (s *Server) replayWebhook(ctx context.Context, tenant domain.TenantID, id, after string) (domain.Tenant, error) {
	log, err := s.feedLog()
	if err != nil {
		return domain.Tenant{}, err
	}
	pos, err := cursor(ctx, log, tenant, after)
	if err != nil {
		return domain.Tenant{}, err
	}
	return s.svc.ReplayWebhook(ctx, tenant, id, pos)
}

// rotateWebhookSecret gives the endpoint a new secret and returns it (to be shown once).
func rotateWebhookSecret(ctx context.Context, d *webhook.Deliverer, tenant domain.TenantID, id string) (string, error) {
	secret, err := webhook.NewSecret()
	if err != nil {
		return "", err
	}
	if err := d.SetSecret(ctx, tenant, id, secret); err != nil {
		return "", err
	}
	return secret, nil
}
