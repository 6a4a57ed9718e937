package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// openAPIPath serves the company API's OpenAPI 3.1 document, without a credential.
const openAPIPath = "/api/v1/openapi.json"

// bearerScheme names the security scheme of the company API in the OpenAPI document.
const bearerScheme = "apiKey"

// openAPIDocument returns the OpenAPI 3.1 document of the company API, written from the route
// table (scopes.go): every route with its parameters, its request and answer in brief, and
// the API key scope it needs as its security requirement.
func openAPIDocument(baseURL string, routes []apiRoute) map[string]any {
	paths := map[string]map[string]any{}
	for _, r := range routes {
		path, params := openAPIPathOf(r.path)
		for _, q := range r.query {
			s := map[string]any{"type": "string"}
			switch q.format {
			case "integer":
				s = map[string]any{"type": "integer", "minimum": 1}
			case "date-time":
				s["format"] = "date-time"
			}
			params = append(params, map[string]any{"name": q.name, "in": "query", "description": q.description, "schema": s})
		}
		op := map[string]any{
			"operationId": operationID(r.method, path),
			"summary":     r.summary,
			"security":    []any{map[string]any{bearerScheme: []string{string(r.scope)}}},
			"x-scope":     string(r.scope),
			"responses": map[string]any{
				strconv.Itoa(r.status): answer(r.status, r.response),
				"401":                  map[string]any{"$ref": "#/components/responses/Unauthorized"},
				"403":                  map[string]any{"$ref": "#/components/responses/Forbidden"},
				"429":                  map[string]any{"$ref": "#/components/responses/TooManyRequests"},
			},
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		switch {
		case r.body != nil:
			op["requestBody"] = map[string]any{"required": true,
				"content": map[string]any{"application/json": map[string]any{"schema": *r.body}}}
		case r.bodyType != "":
			op["requestBody"] = map[string]any{"required": true,
				"content": map[string]any{r.bodyType: map[string]any{"schema": map[string]any{"type": "string"}}}}
		}
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(r.method)] = op
	}
	errorBody := map[string]any{"content": map[string]any{"application/json": map[string]any{
		"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}}
	withDescription := func(d string) map[string]any {
		out := map[string]any{"description": d}
		for k, v := range errorBody {
			out[k] = v
		}
		return out
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "idledger company API",
			"version": "1",
			"description": "The company's own API. Authenticate with a company API key (Authorization: Bearer idl_key_…), " +
				"created by the operator with POST /admin/v1/tenants/{id}/api-keys; each route needs the scope named in its security requirement. " +
				"The SCIM token given to Entra opens /scim/v2 only and is refused here with 403.",
		},
		"servers": []any{map[string]any{"url": baseURL}},
		"paths":   paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{bearerScheme: map[string]any{
				"type": "http", "scheme": "bearer",
				"description": "A company API key; the roles of a security requirement are the API key scopes the route needs.",
			}},
			"schemas": map[string]any{"Error": map[string]any{
				"type": "object",
				"properties": map[string]any{
					"error": map[string]any{"type": "string", "description": "what went wrong, for people"},
					"code":  map[string]any{"type": "string", "description": "what went wrong, for programs (insufficient_scope, ...)"},
					"scope": map[string]any{"type": "string", "description": "with insufficient_scope: the scope the route needs"},
				},
				"required": []string{"code"},
			}},
			"responses": map[string]any{
				"Unauthorized":    withDescription("no valid API key (WWW-Authenticate: Bearer)"),
				"Forbidden":       withDescription(`the API key lacks the route's scope (code insufficient_scope, WWW-Authenticate: Bearer error="insufficient_scope"), or the credential is a SCIM token`),
				"TooManyRequests": withDescription("the company's rate limit is spent; retry after Retry-After seconds"),
			},
		},
	}
}

// openAPIPathOf turns echo's pattern into an OpenAPI path template and its path parameters.
func openAPIPathOf(pattern string) (string, []any) {
	segs := strings.Split(pattern, "/")
	var params []any
	for i, seg := range segs {
		if name, ok := strings.CutPrefix(seg, ":"); ok {
			segs[i] = "{" + name + "}"
			s := map[string]any{"type": "string"}
			if name == "n" {
				s = map[string]any{"type": "integer", "minimum": 1}
			}
			params = append(params, map[string]any{"name": name, "in": "path", "required": true, "schema": s})
		}
	}
	return strings.Join(segs, "/"), params
}

// operationID names an operation after its method and path: "get_api_v1_users_id".
func operationID(method, path string) string {
	r := strings.NewReplacer("/", "_", "{", "", "}", "", "-", "_")
	return strings.ToLower(method) + r.Replace(path)
}

// answer is the OpenAPI response object of a route's success.
func answer(status int, body *schema) map[string]any {
	out := map[string]any{"description": http.StatusText(status)}
	if body != nil {
		out["content"] = map[string]any{"application/json": map[string]any{"schema": *body}}
	}
	return out
}

// handleOpenAPI serves the OpenAPI document of routes, rendered once.
func (s *Server) handleOpenAPI(routes []apiRoute) echo.HandlerFunc {
	doc, err := json.MarshalIndent(openAPIDocument(s.cfg.BaseURL, routes), "", "  ")
	return func(c echo.Context) error {
		if err != nil {
			return err // a document that cannot be rendered is a bug: 500, logged
		}
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, doc)
	}
}
