package httpapi

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// The company console (/console/{tenant}): server-rendered pages for a company's IT admin,
// signed in by a console session (console_auth.go). Pages are html/template files and the CSS
// and script are files of web/, all compiled into the binary: nothing is loaded from another
// origin, so the strict Content-Security-Policy of setConsoleHeaders holds and the console
// works offline. Every action is a form that posts (with the session's CSRF token) and
// answers 303 to the page it came from, so everything works without script; the script only
// adds Copy buttons, local times and the live status of the setup page (GET .../status).
//
// The console acts with domain.OriginCompanyAPI: it is the company managing itself, under the
// same rules as the company API (refused while Entra manages the users), and its events name
// the console session as their actor.

//go:embed web/templates/*.html web/static/*
var consoleFiles embed.FS

// consolePages are the parsed pages, each the layout with its own "content". They are parsed
// once and never change.
var consolePages = parseConsolePages()

// consoleReader is what the console reads beyond the SCIM handlers: keyset pages that read
// only the rows shown (projections/pages.go).
type consoleReader interface {
	UsersPage(ctx context.Context, tenant domain.TenantID, after domain.UserID, limit int) ([]domain.User, error)
	UsersByNamePrefix(ctx context.Context, tenant domain.TenantID, prefix, after string, limit int) ([]domain.User, error)
	GroupsPage(ctx context.Context, tenant domain.TenantID, after domain.GroupID, limit int) ([]domain.Group, error)
	MembersPage(ctx context.Context, tenant domain.TenantID, group domain.GroupID, after domain.UserID, limit int) ([]domain.Member, error)
}

func parseConsolePages() map[string]*template.Template {
	funcs := template.FuncMap{
		"time":   htmlTime,
		"join":   strings.Join,
		"value":  displayValue,
		"query":  url.QueryEscape,
		"scopes": domain.AllScopes,
		"deref":  func(t *time.Time) time.Time { return *t },

		"attemptResult": attemptResult, // console_webhooks.go
		"changes":       changeList,    // console_provisioning.go
		"statusText":    statusText,    // console_provisioning.go
	}
	names, err := fs.Glob(consoleFiles, "web/templates/*.html")
	if err != nil {
		panic(err)
	}
	pages := make(map[string]*template.Template, len(names))
	for _, n := range names {
		base := strings.TrimPrefix(n, "web/templates/")
		if base == "layout.html" {
			continue
		}
		pages[strings.TrimSuffix(base, ".html")] = template.Must(
			template.New("layout.html").Funcs(funcs).ParseFS(consoleFiles, "web/templates/layout.html", n))
	}
	return pages
}

// htmlTime renders t as a <time> element: UTC text without script, the browser's own zone
// with it (console.js).
func htmlTime(t time.Time) template.HTML {
	if t.IsZero() {
		return "—"
	}
	t = t.UTC()
	return template.HTML(`<time datetime="` + t.Format(time.RFC3339) + `">` +
		template.HTMLEscapeString(t.Format("2006-01-02 15:04:05")+" UTC") + `</time>`)
}

// displayValue renders an attribute value of an audit change as short text.
func displayValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "—"
	case string:
		return x
	case bool, float64, int:
		return fmt.Sprint(x)
	}
	return fmt.Sprintf("%v", v)
}

// consoleView is what every page template gets.
type consoleView struct {
	Title   string
	Nav     string // the current section, for aria-current
	Tenant  domain.TenantID
	Company string
	CSRF    string
	Notice  string // what the last action did (from ?done=)
	Refresh int    // seconds after which the page reloads itself (0: never)
	Data    any
}

// refresher is page data that asks for the page to reload itself after some seconds.
type refresher interface{ refreshAfter() int }

// consoleNotices are the messages a 303 after an action may show (?done=<key>): fixed texts,
// so a link cannot make the page say anything else.
var consoleNotices = map[string]string{
	"metadata":    "Federation Metadata XML uploaded: single sign-on trusts this IdP.",
	"invited":     "User invited.",
	"edited":      "User saved.",
	"removed":     "User removed.",
	"stopped":     "Provisioning stopped: the company is back in manual mode. Users and groups can be invited and edited here again.",
	"sso-off":     "Single sign-on turned off.",
	"sso-saved":   "Single sign-on settings saved.",
	"key-revoked": "API key revoked.",

	"hook-enabled":  "Webhook endpoint enabled: deliveries resume where they stopped.",
	"hook-disabled": "Webhook endpoint disabled: nothing is sent to it until it is enabled again.",
	"hook-replayed": "Replay started: the endpoint receives those events again, in order.",
	"hook-deleted":  "Webhook endpoint deleted.",
}

// render answers a console page with status.
func (s *Server) render(c echo.Context, status int, page string, title, nav string, data any) error {
	v := consoleView{Title: title, Nav: nav, Tenant: tenantOf(c), Data: data,
		Notice: consoleNotices[c.QueryParam("done")]}
	if sess := consoleSessionOf(c); sess != nil {
		v.CSRF = sess.CSRF
	}
	if r, ok := data.(refresher); ok {
		v.Refresh = r.refreshAfter()
	}
	if v.Tenant != "" {
		if t, err := s.read.FindTenant(c.Request().Context(), v.Tenant); err == nil {
			v.Company = t.Name
		}
	}
	return s.writePage(c, status, page, v)
}

// writePage executes a page into a buffer first, so a template error is a 500 and never half
// a page.
func (s *Server) writePage(c echo.Context, status int, page string, v consoleView) error {
	t, ok := consolePages[page]
	if !ok {
		return fmt.Errorf("httpapi: no console page %q", page)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		return fmt.Errorf("httpapi: render %s: %w", page, err)
	}
	setConsoleHeaders(c)
	return c.HTMLBlob(status, buf.Bytes())
}

// consoleHTML turns the errors of a console handler into an HTML page with the status the
// JSON API would give (errors.go) and what happened, with a way back.
func (s *Server) consoleHTML(h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := h(c)
		if err == nil || c.Response().Committed {
			return err
		}
		status, detail := errorStatus(err)
		if status >= 500 {
			s.log.Error("console request failed", "method", c.Request().Method, "path", c.Request().URL.Path,
				"status", status, "err", err, "request_id", c.Response().Header().Get(echo.HeaderXRequestID))
			detail = "Something went wrong on our side. Try again in a moment."
		}
		back := "/console/" + string(tenantOf(c))
		if ref := c.Request().Header.Get("Referer"); ref != "" {
			if u, perr := url.Parse(ref); perr == nil && localPath(u.Path) && strings.HasPrefix(u.Path, back) {
				back = u.Path
			}
		}
		return s.render(c, status, "error", http.StatusText(status), "",
			map[string]any{"Status": status, "Detail": detail, "Back": back})
	}
}

// errorStatus returns the status and client-safe detail of a handler's error, as handleError
// answers them.
func errorStatus(err error) (int, string) {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if m, ok := he.Message.(string); ok && m != "" && he.Code < 500 {
			return he.Code, m
		}
		return he.Code, http.StatusText(he.Code)
	}
	for _, k := range errorKinds {
		if errors.Is(err, k.kind) {
			d := domain.ErrorDetail(err)
			if d == "" {
				d = k.kind.Error()
			}
			return k.status, d
		}
	}
	return http.StatusInternalServerError, ""
}

// seeOther ends an action: 303 to the console page path (under the company's console, without
// a query, with an optional #fragment), with the notice key done.
func seeOther(c echo.Context, path, done string) error {
	path, fragment, _ := strings.Cut(path, "#")
	to := "/console/" + string(tenantOf(c)) + path
	if done != "" {
		to += "?done=" + url.QueryEscape(done)
	}
	if fragment != "" {
		to += "#" + fragment
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// registerConsole registers the console's pages and actions, all behind the console session
// (requireConsole), and its static files.
func (s *Server) registerConsole(e *echo.Echo) {
	e.GET("/", s.handleRootPage) // console_root.go
	static := echo.WrapHandler(http.StripPrefix("/console/static/", http.FileServer(http.FS(consoleStatic()))))
	e.GET("/console/static/*", func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderCacheControl, "public, max-age=3600")
		c.Response().Header().Set("X-Content-Type-Options", "nosniff")
		return static(c)
	})

	g := e.Group("/console/:tenant", s.whileCatchingUp, s.requireConsole)
	h := s.consoleHTML
	g.GET("", h(s.handleConsoleSetup))
	g.GET("/status", s.handleConsoleStatus) // JSON for the live refresh of the setup page
	g.POST("/sso/metadata", h(s.handleConsoleUploadMetadata), limitBody(domain.MaxIDPMetadataSize+64<<10))
	g.POST("/scim-token", h(s.handleConsoleGenerateToken))
	g.GET("/test-signin", h(s.handleConsoleTestSignIn))
	g.GET("/test-signin/done", h(s.handleConsoleTestSignInDone))

	g.GET("/users", h(s.handleConsoleUsers)) // console_users.go
	g.POST("/users", h(s.handleConsoleInvite))
	g.GET("/users/:id", h(s.handleConsoleUser))
	g.POST("/users/:id", h(s.handleConsoleEditUser))
	g.POST("/users/:id/remove", h(s.handleConsoleRemoveUser))
	g.GET("/groups", h(s.handleConsoleGroups))
	g.GET("/groups/:id", h(s.handleConsoleGroup))

	g.GET("/provisioning", h(s.handleConsoleProvisioning)) // console_provisioning.go
	g.POST("/provisioning/stop", h(s.handleConsoleStopProvisioning))

	g.GET("/settings", h(s.handleConsoleSettings)) // console_settings.go
	g.POST("/settings/sso", h(s.handleConsoleSSOSettings))
	g.POST("/settings/sso/off", h(s.handleConsoleSSOOff))
	g.POST("/settings/api-keys", h(s.handleConsoleCreateKey))
	g.POST("/settings/api-keys/:keyId/revoke", h(s.handleConsoleRevokeKey))
	s.registerConsoleWebhooks(g, h) // console_webhooks.go
}

// consoleStatic is the static files' directory.
func consoleStatic() fs.FS {
	sub, err := fs.Sub(consoleFiles, "web/static")
	if err != nil {
		panic(err)
	}
	return sub
}
