package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// mimeSCIM is the media type of every SCIM response (RFC 7644 §3.1).
const mimeSCIM = "application/scim+json"

// schemaListResponse is the SCIM list response message schema (RFC 7644 §3.4.2).
const schemaListResponse = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

// writeSCIM writes v as application/scim+json.
func writeSCIM(c echo.Context, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("httpapi: encode response: %w", err)
	}
	return c.Blob(status, mimeSCIM+"; charset=utf-8", b)
}

// readObject decodes a JSON object body. Anything else is ErrInvalidSyntax.
func readObject(c echo.Context) (map[string]any, error) {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return nil, err // body limit exceeded: echo's 413
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, domain.Errorf(domain.ErrInvalidSyntax, "request body is not valid JSON: %v", err)
	}
	if m == nil {
		return nil, domain.Errorf(domain.ErrInvalidSyntax, "request body must be a JSON object")
	}
	if dec.More() {
		return nil, domain.Errorf(domain.ErrInvalidSyntax, "request body has data after the JSON object")
	}
	return m, nil
}

// etag renders a version as a weak entity tag (RFC 7232 §2.3).
func etag(v domain.Version) string {
	return `W/"` + strconv.FormatUint(uint64(v), 10) + `"`
}

// userLocation returns the user's meta.location.
func (s *Server) userLocation(id domain.UserID) string {
	return s.cfg.BaseURL + "/scim/v2/Users/" + string(id)
}

// userJSON renders a user as its SCIM representation.
func (s *Server) userJSON(u domain.User) map[string]any {
	out := make(map[string]any, len(u.Resource)+3)
	for k, v := range u.Resource {
		out[k] = v
	}
	schemas := u.Schemas
	if len(schemas) == 0 {
		schemas = []string{domain.SchemaUser}
	}
	out["schemas"] = schemas
	out["id"] = u.ID
	out["meta"] = map[string]any{
		"resourceType": "User",
		"created":      u.Created.UTC().Format(time.RFC3339Nano),
		"lastModified": u.Modified.UTC().Format(time.RFC3339Nano),
		"location":     s.userLocation(u.ID),
		"version":      etag(u.Version),
	}
	return out
}

// listResponse renders a SCIM ListResponse; Resources is always present.
func listResponse(total, startIndex int, resources []any) map[string]any {
	if resources == nil {
		resources = []any{}
	}
	return map[string]any{
		"schemas":      []string{schemaListResponse},
		"totalResults": total,
		"startIndex":   startIndex,
		"itemsPerPage": len(resources),
		"Resources":    resources,
	}
}
