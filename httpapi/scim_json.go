package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/jsonenc"
	"github.com/idledger/idledger/domain/scim"
)

// mimeSCIM is the media type of every SCIM response (RFC 7644 §3.1).
const mimeSCIM = "application/scim+json"

// schemaListResponse is the SCIM list response message schema (RFC 7644 §3.4.2).
const schemaListResponse = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

// writeSCIM writes v as application/scim+json, encoded as json.Marshal encodes it (by
// jsonenc.Append for the types SCIM representations are made of, into a buffer of s.buffers).
func (s *Server) writeSCIM(c echo.Context, status int, v any) error {
	buf := s.buffers.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= maxPooledBuffer {
			s.buffers.Put(buf)
		}
	}()
	b, ok := jsonenc.Append((*buf)[:0], v)
	*buf = b[:0] // keep what the encoder grew, also when it gave up
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			return fmt.Errorf("httpapi: encode response: %w", err)
		}
	}
	// Blob has written b to the connection (or its buffer) when it returns: b may be reused.
	return c.Blob(status, mimeSCIM+"; charset=utf-8", b)
}

// maxPooledBuffer is the largest response buffer kept for reuse; a larger one (a group with
// many members, a page of many users) is left to the garbage collector.
const maxPooledBuffer = 64 << 10

// newBufferPool returns the pool of response buffers writeSCIM encodes into.
func newBufferPool() *sync.Pool {
	return &sync.Pool{New: func() any {
		b := make([]byte, 0, 4096)
		return &b
	}}
}

// Limits of a JSON request body besides its size (the body limit): RFC 8259 §8.1 asks for
// UTF-8, and SCIM resources nest a handful of levels (an extension's manager's value is three
// deep, inside a PATCH operation six), so anything deeper is an attack on the decoder, not data.
const maxJSONDepth = 32

// readObject decodes a JSON object body. On a SCIM route a non-JSON Content-Type is a 415 (see
// checkSCIMContentType); a body that is not valid UTF-8, nests deeper than maxJSONDepth or is not
// exactly one JSON object is ErrInvalidSyntax, a number out of range ErrInvalid. Details name
// the problem in the client's terms, never the decoder's Go types.
func readObject(c echo.Context) (map[string]any, error) {
	if isSCIM(c) {
		if err := checkSCIMContentType(c.Request().Header.Get(echo.HeaderContentType)); err != nil {
			return nil, err
		}
	}
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return nil, bodyError(err) // over the body limit: echo's 413; unreadable: 400
	}
	return decodeObject(body)
}

// decodeObject is readObject without HTTP: the part the fuzzer drives.
func decodeObject(body []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, domain.Errorf(domain.ErrInvalidSyntax, "request body is empty; a JSON object is required")
	}
	if !utf8.Valid(body) {
		return nil, domain.Errorf(domain.ErrInvalidSyntax, "request body is not valid UTF-8")
	}
	if jsonDepth(body) > maxJSONDepth {
		return nil, domain.Errorf(domain.ErrInvalidSyntax, "request body nests deeper than %d levels", maxJSONDepth)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return nil, domain.Errorf(domain.ErrInvalidSyntax, "request body is not valid JSON: %s (at byte %d)", syn.Error(), syn.Offset)
		case errors.As(err, &typ) && strings.HasPrefix(typ.Value, "number"):
			return nil, domain.Errorf(domain.ErrInvalid, "request body: the %s is out of range (at byte %d)", typ.Value, typ.Offset)
		}
		return nil, domain.Errorf(domain.ErrInvalidSyntax, "request body must be a JSON object")
	}
	if m == nil {
		return nil, domain.Errorf(domain.ErrInvalidSyntax, "request body must be a JSON object")
	}
	return m, nil
}

// jsonDepth returns the deepest nesting of arrays and objects in b, counting brackets outside
// strings; it does not validate b (json.Unmarshal does, once the depth is known to be sane).
func jsonDepth(b []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, ch := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case ch == '\\':
				escaped = true
			case ch == '"':
				inString = false
			}
		case ch == '"':
			inString = true
		case ch == '[' || ch == '{':
			depth++
			deepest = max(deepest, depth)
		case ch == ']' || ch == '}':
			depth--
		}
	}
	return deepest
}

// checkSCIMContentType admits the media types RFC 7644 §3.1 and §8.1 name for SCIM requests:
// application/scim+json and application/json, optionally with charset=utf-8; a request without
// a Content-Type is read as JSON.
//
// Anything else is refused with 415 rather than parsed anyway: Entra always sends
// application/scim+json, so a SCIM write labelled text/plain, a form or XML comes from a client
// that means something else (or from a browser form, whose content types need no CORS
// preflight), and answering it with a JSON syntax error would hide the real mistake. The
// operator and company APIs stay lenient, because curl -d labels JSON as a form.
func checkSCIMContentType(h string) error {
	if strings.TrimSpace(h) == "" {
		return nil
	}
	mt, params, err := mime.ParseMediaType(h)
	if err == nil && (mt == "application/scim+json" || mt == "application/json") {
		if cs, ok := params["charset"]; !ok || strings.EqualFold(cs, "utf-8") {
			return nil
		}
	}
	return echo.NewHTTPError(http.StatusUnsupportedMediaType,
		"Content-Type must be application/scim+json or application/json (UTF-8)")
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
	return resourceJSON(u.Resource, u.Schemas, scim.SchemaUser, string(u.ID), "User",
		u.Created, u.Modified, s.userLocation(u.ID), u.Version)
}

// resourceJSON renders a stored resource with its common attributes (RFC 7643 §3.1): schemas
// (defaultSchema when none are stored), id, and meta with the version as a weak ETag.
func resourceJSON(res map[string]any, schemas []string, defaultSchema, id, resourceType string,
	created, modified time.Time, location string, v domain.Version) map[string]any {
	out := make(map[string]any, len(res)+4)
	for k, val := range res {
		out[k] = val
	}
	if len(schemas) == 0 {
		schemas = []string{defaultSchema}
	}
	out["schemas"] = schemas
	out["id"] = id
	out["meta"] = map[string]any{
		"resourceType": resourceType,
		"created":      created.UTC().Format(time.RFC3339Nano),
		"lastModified": modified.UTC().Format(time.RFC3339Nano),
		"location":     location,
		"version":      etag(v),
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
