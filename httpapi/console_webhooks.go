package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/feed"
	"github.com/idledger/idledger/httpapi/webhook"
)

// The webhook endpoints on the console's Settings page (/console/{tenant}/settings#webhooks):
// each endpoint with its health and last deliveries, and forms that create, pause, resume,
// replay, rotate and delete, through the same actions as the JSON API (webhooks.go). A new
// secret is shown on the answer page itself, once, like an API key's.

// consoleRecentAttempts is how many of an endpoint's latest delivery attempts the page shows.
const consoleRecentAttempts = 5

// webhooksData is the Webhooks section of the Settings page.
type webhooksData struct {
	On bool // the server runs a webhook deliverer
	// AllowPrivate: the server lets endpoints use http and private addresses (development).
	AllowPrivate bool
	Endpoints    []consoleWebhook
	Types        []string       // the public event types, for the checkboxes
	NewSecret    *webhookSecret // a secret just created or rotated: shown this once
}

// consoleWebhook is one endpoint as the page shows it.
type consoleWebhook struct {
	webhookInfo
	// NextRetry is when a failing endpoint is tried again; LastError what its last attempt got.
	NextRetry *time.Time
	LastError string
	Attempts  []webhook.Attempt // newest first
}

// webhookSecret is a secret to show once, with the endpoint it signs for.
type webhookSecret struct {
	ID, URL, Secret string
}

// consoleWebhooks reads the company's endpoints, their health and recent attempts.
func (s *Server) consoleWebhooks(ctx context.Context, t domain.Tenant) webhooksData {
	d := webhooksData{On: s.cfg.Webhooks != nil, Types: feed.Types()}
	if !d.On {
		return d
	}
	d.AllowPrivate = s.cfg.Webhooks.AllowPrivate()
	for _, h := range t.Webhooks {
		w := consoleWebhook{webhookInfo: s.webhookInfo(ctx, s.cfg.Webhooks, t.ID, h)}
		st, err := s.cfg.Webhooks.Deliveries(ctx, t.ID, h.ID)
		if err != nil {
			s.log.Warn("webhook delivery record unavailable", "tenant", t.ID, "endpoint", h.ID, "err", err)
		}
		if st.Epoch == h.Epoch {
			w.Attempts = st.Attempts[:min(len(st.Attempts), consoleRecentAttempts)]
		}
		if len(w.Attempts) > 0 && !w.Attempts[0].Succeeded {
			w.NextRetry, w.LastError = w.Attempts[0].NextRetry, attemptResult(w.Attempts[0])
		}
		d.Endpoints = append(d.Endpoints, w)
	}
	return d
}

// attemptResult says what an attempt got: the receiver's status, or why there was none.
func attemptResult(a webhook.Attempt) string {
	var parts []string
	if a.Status != 0 {
		parts = append(parts, strconv.Itoa(a.Status)+" "+http.StatusText(a.Status))
	}
	if a.Error != "" {
		parts = append(parts, a.Error)
	}
	if len(parts) == 0 {
		return "no answer"
	}
	return strings.Join(parts, ": ")
}

// registerConsoleWebhooks registers the Settings page's webhook actions on the console group g,
// each wrapped by h (consoleHTML).
func (s *Server) registerConsoleWebhooks(g *echo.Group, h func(echo.HandlerFunc) echo.HandlerFunc) {
	g.POST("/settings/webhooks", h(s.handleConsoleCreateWebhook))
	g.POST("/settings/webhooks/:hookId/enable", h(s.handleConsoleEnableWebhook(true)))
	g.POST("/settings/webhooks/:hookId/disable", h(s.handleConsoleEnableWebhook(false)))
	g.POST("/settings/webhooks/:hookId/replay", h(s.handleConsoleReplayWebhook))
	g.POST("/settings/webhooks/:hookId/rotate-secret", h(s.handleConsoleRotateWebhookSecret))
	g.POST("/settings/webhooks/:hookId/delete", h(s.handleConsoleDeleteWebhook))
}

// showSecret answers the Settings page with a secret that is shown this once.
func (s *Server) showSecret(c echo.Context, secret webhookSecret) error {
	d, err := s.settingsData(c)
	if err != nil {
		return err
	}
	d.Hooks.NewSecret = &secret
	return s.render(c, http.StatusOK, "settings", "Settings", "settings", d)
}

// handleConsoleCreateWebhook serves POST /console/{tenant}/settings/webhooks (url, type...,
// description): no type ticked means every type. The secret is in this answer only.
func (s *Server) handleConsoleCreateWebhook(c echo.Context) error {
	d, err := s.deliverer()
	if err != nil {
		return err
	}
	form, err := c.FormParams()
	if err != nil {
		return bodyError(err)
	}
	ctx, tenant := c.Request().Context(), tenantOf(c)
	create := domain.WebhookCreated{URL: strings.TrimSpace(form.Get("url")), Types: form["type"],
		Description: strings.TrimSpace(form.Get("description"))}
	if create.URL == "" {
		return domain.Errorf(domain.ErrInvalid, "enter the endpoint's URL")
	}
	if err := d.CheckURL(ctx, create.URL); err != nil {
		return err
	}
	if err := checkWebhookTypes(create.Types); err != nil {
		return err
	}
	t, h, secret, err := s.createWebhook(ctx, d, tenant, create)
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, t.Version); err != nil {
		return err
	}
	d.Kick()
	s.log.Info("webhook endpoint created", "tenant", tenant, "endpoint", h.ID,
		"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	return s.showSecret(c, webhookSecret{ID: h.ID, URL: h.URL, Secret: secret})
}

// handleConsoleEnableWebhook serves POST .../settings/webhooks/{id}/enable and .../disable:
// resume an endpoint where it stopped, or pause it.
func (s *Server) handleConsoleEnableWebhook(on bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		d, h, err := s.findWebhook(c, "hookId")
		if err != nil {
			return err
		}
		t, _, err := s.svc.ChangeWebhook(c.Request().Context(), tenantOf(c), domain.WebhookChanged{ID: h.ID, Enabled: &on})
		if err != nil {
			return err
		}
		if err := s.awaitVisible(c, t.Version); err != nil {
			return err
		}
		d.Kick()
		done := "hook-disabled"
		if on {
			done = "hook-enabled"
		}
		return seeOther(c, "/settings#webhooks", done)
	}
}

// handleConsoleReplayWebhook serves POST .../settings/webhooks/{id}/replay (after): the
// endpoint receives the company's events after that event id again (all of them if empty).
func (s *Server) handleConsoleReplayWebhook(c echo.Context) error {
	d, h, err := s.findWebhook(c, "hookId")
	if err != nil {
		return err
	}
	t, err := s.replayWebhook(c.Request().Context(), tenantOf(c), h.ID, strings.TrimSpace(c.FormValue("after")))
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, t.Version); err != nil {
		return err
	}
	d.Kick()
	return seeOther(c, "/settings#webhooks", "hook-replayed")
}

// handleConsoleRotateWebhookSecret serves POST .../settings/webhooks/{id}/rotate-secret: a new
// secret, in this answer only; deliveries are signed with it from now on.
func (s *Server) handleConsoleRotateWebhookSecret(c echo.Context) error {
	d, h, err := s.findWebhook(c, "hookId")
	if err != nil {
		return err
	}
	secret, err := rotateWebhookSecret(c.Request().Context(), d, tenantOf(c), h.ID)
	if err != nil {
		return err
	}
	return s.showSecret(c, webhookSecret{ID: h.ID, URL: h.URL, Secret: secret})
}

// handleConsoleDeleteWebhook serves POST .../settings/webhooks/{id}/delete: the endpoint, its
// secret and its delivery record are gone.
func (s *Server) handleConsoleDeleteWebhook(c echo.Context) error {
	d, h, err := s.findWebhook(c, "hookId")
	if err != nil {
		return err
	}
	err = s.deleteWebhook(c.Request().Context(), d, tenantOf(c), h.ID, func(v domain.Version) error {
		return s.awaitVisible(c, v)
	})
	if err != nil {
		return err
	}
	return seeOther(c, "/settings#webhooks", "hook-deleted")
}
