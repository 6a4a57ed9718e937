package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// apiRoute is one route of the company API (/api/v1): what it needs and what it does. The one
// table of them, [Server.companyAPI], both registers and protects the routes (each behind
// requireScope with its scope) and writes the OpenAPI document (openapi.go), so the two cannot
// disagree.
type apiRoute struct {
	method, path string       // echo's pattern: "/api/v1/users/:id"
	scope        domain.Scope // the API key scope it needs
	handler      echo.HandlerFunc
	middleware   []echo.MiddlewareFunc // after the scope check

	summary  string
	query    []param // query parameters (path parameters come from the pattern)
	body     *schema // JSON request body, if any
	bodyType string  // the request body's media type when not JSON
	status   int     // success status
	response *schema // success body, if any
}

// param is a documented query parameter.
type param struct {
	name, description, format string
}

// schema is a JSON Schema in brief, as the OpenAPI document shows it.
type schema = map[string]any

// object returns the schema of an object with the given properties (name → JSON type, or a
// schema).
func object(props map[string]any) *schema {
	p := make(map[string]any, len(props))
	for name, v := range props {
		if t, ok := v.(string); ok {
			v = map[string]any{"type": t}
		}
		p[name] = v
	}
	return &schema{"type": "object", "properties": p}
}

// companyAPI returns the company API's routes: the one route → scope table.
func (s *Server) companyAPI() []apiRoute {
	// Shapes of answers used by several routes.
	userShape := object(map[string]any{"id": "string", "userName": "string", "email": "string", "name": "string",
		"active": "boolean", "admin": "boolean", "managedBy": "string", "version": "string"})
	array := map[string]any{"type": "array", "items": map[string]any{"type": "object"}}
	ssoShape := object(map[string]any{"enabled": "boolean", "spEntityId": "string", "acsUrl": "string",
		"metadataUrl": "string", "loginUrl": "string", "idpEntityId": "string", "idpSsoUrl": "string",
		"fingerprints": map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		"certificates": array, "metadataUpdated": "string", "allowIdpInitiated": "boolean"})
	provisioningShape := object(map[string]any{"mode": "string", "since": "string", "causedByRequest": "string",
		"counts": "object", "lastScimWrite": "string", "adminPresent": "boolean", "lastSyncCycle": "object"})
	timelineShape := object(map[string]any{"kind": "string", "id": "string", "holders": array, "entries": array, "next": "integer"})
	webhookShape := object(map[string]any{"id": "string", "url": "string", "types": map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		"description": "string", "enabled": "boolean", "disabledReason": "string", "disabledAt": "string", "createdAt": "string",
		"health": "string", "failingSince": "string", "lastSuccess": "string", "delivered": "integer", "secret": "string"})
	pageParams := []param{{"after", "the log position after which to list", "integer"}, {"limit", "at most this many entries", "integer"}}
	asOf := param{"asOf", "RFC 3339 time (default now)", "date-time"}
	return []apiRoute{
		{method: http.MethodGet, path: "/api/v1/sso", scope: domain.ScopeSSORead, handler: s.handleGetSSO,
			summary: "The company's SAML single sign-on: IdP, certificate fingerprints and expiry, settings",
			status:  http.StatusOK, response: ssoShape},
		{method: http.MethodPut, path: "/api/v1/sso/idp-metadata", scope: domain.ScopeSSOWrite, handler: s.handlePutIDPMetadata,
			middleware: []echo.MiddlewareFunc{limitBody(domain.MaxIDPMetadataSize)},
			summary:    "Trust the IdP of this metadata XML (Entra: Federation Metadata XML); ends the company's sessions",
			bodyType:   "application/xml", status: http.StatusNoContent},
		{method: http.MethodPut, path: "/api/v1/sso/settings", scope: domain.ScopeSSOWrite, handler: s.handlePutSSOSettings,
			summary: "Change SSO settings", body: object(map[string]any{"allowIdpInitiated": "boolean"}),
			status: http.StatusOK, response: ssoShape},
		{method: http.MethodDelete, path: "/api/v1/sso", scope: domain.ScopeSSOWrite, handler: s.handleDeleteSSO,
			summary: "Turn single sign-on off (the IdP is no longer trusted); ends the company's sessions",
			status:  http.StatusNoContent},

		{method: http.MethodPost, path: "/api/v1/users", scope: domain.ScopeUsersWrite, handler: s.handleInviteUser,
			summary: "Invite a user (manual mode only: 409 once provisioning manages the company)",
			body:    object(map[string]any{"email": "string", "name": "string", "active": "boolean", "admin": "boolean"}),
			status:  http.StatusCreated, response: userShape},
		{method: http.MethodPatch, path: "/api/v1/users/:id", scope: domain.ScopeUsersWrite, handler: s.handleEditUser,
			summary: "Edit a locally managed user (manual mode only)",
			body:    object(map[string]any{"email": "string", "name": "string", "active": "boolean", "admin": "boolean"}),
			status:  http.StatusOK, response: userShape},
		{method: http.MethodDelete, path: "/api/v1/users/:id", scope: domain.ScopeUsersWrite, handler: s.handleRemoveUser,
			summary: "Delete a user (manual mode only)", status: http.StatusNoContent},
		{method: http.MethodPost, path: "/api/v1/users/:id/erase", scope: domain.ScopePrivacyWrite, handler: s.handleEraseUser,
			summary: "Erase a deleted user's personal data (GDPR Art. 17); 409 while the user exists", status: http.StatusOK, response: erasureShape},

		{method: http.MethodGet, path: "/api/v1/provisioning", scope: domain.ScopeProvisioningRead, handler: s.handleProvisioning,
			summary: "Management mode (manual or managed), since when and why, counts, admin present",
			status:  http.StatusOK, response: provisioningShape},
		{method: http.MethodPost, path: "/api/v1/provisioning/deactivate", scope: domain.ScopeProvisioningWrite, handler: s.handleDeactivateProvisioning,
			summary: "Return the company to manual mode", status: http.StatusOK, response: provisioningShape},
		{method: http.MethodGet, path: "/api/v1/provisioning/cycles", scope: domain.ScopeProvisioningRead, handler: s.handleListCycles,
			summary: "Entra's sync cycles, newest first",
			query:   []param{{"before", "list the cycles before this cycle number", "integer"}, {"limit", "at most this many cycles", "integer"}},
			status:  http.StatusOK, response: object(map[string]any{"cycles": map[string]any{"type": "array", "items": map[string]any{"type": "object"}}, "nextBefore": "integer"})},
		{method: http.MethodGet, path: "/api/v1/provisioning/cycles/:n", scope: domain.ScopeProvisioningRead, handler: s.handleGetCycle,
			summary: "One sync cycle: requests, changes per event type, failures per status, rejected requests",
			status:  http.StatusOK, response: object(map[string]any{"number": "integer"})},

		{method: http.MethodGet, path: "/api/v1/audit/users", scope: domain.ScopeAuditRead, handler: s.handleAuditByName(domain.KindUser, "userName"),
			summary: "Every event of the users that had this userName (deleted ones too)",
			query:   append([]param{{"userName", "the userName (case-insensitive)", ""}}, pageParams...),
			status:  http.StatusOK, response: timelineShape},
		{method: http.MethodGet, path: "/api/v1/audit/users/:id", scope: domain.ScopeAuditRead, handler: s.handleAuditTimeline(domain.KindUser),
			summary: "Every event of a user, sign-ins included: time, type, changes, actor, request", query: pageParams,
			status: http.StatusOK, response: timelineShape},
		{method: http.MethodGet, path: "/api/v1/audit/users/:id/state", scope: domain.ScopeAuditRead, handler: s.handleAuditUserState,
			summary: "The user as it was at asOf, replayed from its events", query: []param{asOf},
			status: http.StatusOK, response: object(map[string]any{"asOf": "string", "user": "object"})},
		{method: http.MethodGet, path: "/api/v1/audit/groups", scope: domain.ScopeAuditRead, handler: s.handleAuditByName(domain.KindGroup, "displayName"),
			summary: "Every event of the groups that had this displayName",
			query:   append([]param{{"displayName", "the displayName (case-insensitive)", ""}}, pageParams...),
			status:  http.StatusOK, response: timelineShape},
		{method: http.MethodGet, path: "/api/v1/audit/groups/:id", scope: domain.ScopeAuditRead, handler: s.handleAuditTimeline(domain.KindGroup),
			summary: "Every event of a group", query: pageParams, status: http.StatusOK, response: timelineShape},
		{method: http.MethodGet, path: "/api/v1/audit/groups/:id/members", scope: domain.ScopeAuditRead, handler: s.handleAuditGroupMembers,
			summary: "The group's members as they were at asOf", query: []param{asOf},
			status: http.StatusOK, response: object(map[string]any{"asOf": "string", "group": "string", "displayName": "string",
				"deleted": "boolean", "version": "integer", "count": "integer", "members": array})},

		// The change feed (events.go, docs/events.md).
		{method: http.MethodGet, path: "/api/v1/events", scope: domain.ScopeEventsRead, handler: s.handleListEvents,
			summary: "The company's events, oldest first, from its first event or after a cursor (an event id)",
			query: []param{{"after", "an event id: list the events after it (default: from the first)", ""},
				{"types", "comma-separated event types (default: all)", ""}, {"limit", "at most this many events (1-1000, default 100)", "integer"}},
			status: http.StatusOK, response: object(map[string]any{"data": array, "nextCursor": "string", "hasMore": "boolean"})},
		{method: http.MethodGet, path: "/api/v1/events/stream", scope: domain.ScopeEventsRead, handler: s.handleEventStream,
			summary: "The company's events as Server-Sent Events, live; resumes after Last-Event-ID (or ?after=)",
			query:   []param{{"after", "an event id to resume after (default: Last-Event-ID, else from now)", ""}, {"types", "comma-separated event types (default: all)", ""}},
			status:  http.StatusOK},

		// Webhook endpoints (webhooks.go, docs/events.md).
		{method: http.MethodPost, path: "/api/v1/webhooks", scope: domain.ScopeWebhooksWrite, handler: s.handleCreateWebhook,
			summary: "Add a webhook endpoint (https); the answer holds its signing secret, once",
			body:    object(map[string]any{"url": "string", "types": map[string]any{"type": "array", "items": map[string]any{"type": "string"}}, "description": "string"}),
			status:  http.StatusCreated, response: webhookShape},
		{method: http.MethodGet, path: "/api/v1/webhooks", scope: domain.ScopeWebhooksWrite, handler: s.handleListWebhooks,
			summary: "The company's webhook endpoints and their health", status: http.StatusOK, response: object(map[string]any{"data": array})},
		{method: http.MethodGet, path: "/api/v1/webhooks/:id", scope: domain.ScopeWebhooksWrite, handler: s.handleGetWebhook,
			summary: "One webhook endpoint and its health (enabled, failing since, disabled and why)", status: http.StatusOK, response: webhookShape},
		{method: http.MethodPatch, path: "/api/v1/webhooks/:id", scope: domain.ScopeWebhooksWrite, handler: s.handlePatchWebhook,
			summary: "Change a webhook endpoint; enabled: true resumes a disabled one where it stopped",
			body:    object(map[string]any{"url": "string", "types": map[string]any{"type": "array", "items": map[string]any{"type": "string"}}, "description": "string", "enabled": "boolean"}),
			status:  http.StatusOK, response: webhookShape},
		{method: http.MethodDelete, path: "/api/v1/webhooks/:id", scope: domain.ScopeWebhooksWrite, handler: s.handleDeleteWebhook,
			summary: "Delete a webhook endpoint and its secret", status: http.StatusNoContent},
		{method: http.MethodGet, path: "/api/v1/webhooks/:id/deliveries", scope: domain.ScopeWebhooksWrite, handler: s.handleWebhookDeliveries,
			summary: "Recent delivery attempts, newest first: event, status, latency, next retry",
			status:  http.StatusOK, response: object(map[string]any{"endpoint": "string", "delivered": "integer", "failures": "integer", "data": array})},
		{method: http.MethodPost, path: "/api/v1/webhooks/:id/replay", scope: domain.ScopeWebhooksWrite, handler: s.handleReplayWebhook,
			summary: "Send the company's events after an event id again (all without after)",
			body:    object(map[string]any{"after": "string"}), status: http.StatusAccepted, response: webhookShape},
		{method: http.MethodPost, path: "/api/v1/webhooks/:id/rotate-secret", scope: domain.ScopeWebhooksWrite, handler: s.handleRotateWebhookSecret,
			summary: "A new signing secret, shown once; the old one stops signing at once", status: http.StatusOK, response: webhookShape},
	}
}

// registerCompanyAPI registers the company API's routes, each behind the read models' start-up
// wait and its scope, and the public OpenAPI document that describes them.
func (s *Server) registerCompanyAPI(e *echo.Echo) {
	routes := s.companyAPI()
	for _, r := range routes {
		mw := append([]echo.MiddlewareFunc{s.whileCatchingUp, s.requireScope(r.scope)}, r.middleware...)
		e.Add(r.method, r.path, r.handler, mw...)
	}
	e.GET(openAPIPath, s.handleOpenAPI(routes)) // openapi.go
}
