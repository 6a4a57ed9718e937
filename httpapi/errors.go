package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// SCIM message schema of error bodies (RFC 7644 §3.12).
const schemaError = "urn:ietf:params:scim:api:messages:2.0:Error"

// scimError is the RFC 7644 §3.12 error body; status is a string.
type scimError struct {
	Schemas  []string `json:"schemas"`
	Status   string   `json:"status"`
	ScimType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail"`
}

// errorKinds maps each domain error kind to its status and SCIM scimType.
var errorKinds = []struct {
	kind     error
	status   int
	scimType string
}{
	{domain.ErrNotFound, http.StatusNotFound, ""},
	{domain.ErrUniqueness, http.StatusConflict, "uniqueness"},
	{domain.ErrInvalid, http.StatusBadRequest, "invalidValue"},
	{domain.ErrInvalidSyntax, http.StatusBadRequest, "invalidSyntax"},
	{domain.ErrInvalidFilter, http.StatusBadRequest, "invalidFilter"},
	{domain.ErrInvalidPath, http.StatusBadRequest, "invalidPath"},
	{domain.ErrNoTarget, http.StatusBadRequest, "noTarget"},
	{domain.ErrMutability, http.StatusBadRequest, "mutability"},
	{domain.ErrTooMany, http.StatusBadRequest, "tooMany"},
	{domain.ErrConflict, http.StatusConflict, ""},
	{domain.ErrLocked, http.StatusConflict, ""},
	{domain.ErrPrecondition, http.StatusPreconditionFailed, ""},
	{domain.ErrUnauthorized, http.StatusUnauthorized, ""},
	{domain.ErrForbidden, http.StatusForbidden, ""},
	{domain.ErrStorageFull, http.StatusInsufficientStorage, ""},
	{domain.ErrUnavailable, http.StatusServiceUnavailable, ""},
}

// retryAfterUnavailable is the Retry-After (seconds) of a 503: NATS reconnects within a
// couple of seconds once it is back.
const retryAfterUnavailable = 5

// retryAfterStorageFull is the Retry-After (seconds) of a 507: the log heals within seconds of
// space returning, but freeing space is an operator's task.
const retryAfterStorageFull = 30

// handleError is the only place an error becomes a response. SCIM routes answer with SCIM
// error bodies, the others with {"error","code"}. Only 5xx responses log the full error.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed || s.browserNotFound(err, c) { // console_root.go
		return
	}
	status, scimType, detail := http.StatusInternalServerError, "", "internal error"
	var he *echo.HTTPError
	if errors.As(err, &he) {
		status = he.Code
		detail = strings.ToLower(http.StatusText(status))
		if m, ok := he.Message.(string); ok && m != "" {
			detail = m
		}
		switch status {
		case http.StatusRequestEntityTooLarge:
			limit := s.cfg.BodyLimit
			if n, ok := c.Get(bodyLimitKey).(int64); ok {
				limit = n
			}
			detail = "request body exceeds " + strconv.FormatInt(limit, 10) + " bytes"
		case http.StatusInternalServerError:
			detail = "internal error" // whatever echo or a handler put in the message stays in the log
		}
	} else {
		for _, k := range errorKinds {
			if errors.Is(err, k.kind) {
				status, scimType = k.status, k.scimType
				detail = domain.ErrorDetail(err)
				if detail == "" {
					detail = k.kind.Error()
				}
				break
			}
		}
	}
	if status >= 500 {
		s.log.Error("request failed", "method", c.Request().Method, "path", logPath(c),
			"status", status, "err", err, "request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	}
	if status == http.StatusServiceUnavailable {
		// The event log is unreachable: clients (Entra) back off and retry the same request.
		c.Response().Header().Set("Retry-After", strconv.Itoa(retryAfterUnavailable))
	}
	if status == http.StatusInsufficientStorage {
		// The same request succeeds once space is freed (storage.go in eventstore heals without
		// a restart). Refused before the append, nothing was stored; a write the disk failed
		// while it was being stored may have been (its retry then meets 409 or 412).
		c.Response().Header().Set("Retry-After", strconv.Itoa(retryAfterStorageFull))
		s.metrics.writeRefused(refusedStorageFull)
	}
	if status == http.StatusUnauthorized {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="idledger"`)
	}
	var werr error
	if isSCIM(c) {
		werr = s.writeSCIM(c, status, scimError{
			Schemas: []string{schemaError}, Status: strconv.Itoa(status), ScimType: scimType, Detail: detail,
		})
	} else {
		code := "internal"
		if scimType != "" {
			code = scimType
		} else if status < 500 || status == http.StatusInsufficientStorage {
			code = strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_")
		}
		werr = c.JSON(status, map[string]string{"error": detail, "code": code})
	}
	if werr != nil {
		s.log.Error("write error response", "err", werr)
	}
}

func isSCIM(c echo.Context) bool {
	return strings.HasPrefix(c.Request().URL.Path, "/scim/")
}

func (s *Server) handleSCIMNotFound(c echo.Context) error {
	return domain.Errorf(domain.ErrNotFound, "no SCIM endpoint %s %s", c.Request().Method, c.Request().URL.Path)
}

func isNotFound(err error) bool { return errors.Is(err, domain.ErrNotFound) }

// bodyError is the error to answer when reading a request body failed with err: echo's 413
// when the body limit cut it off, otherwise ErrInvalidSyntax (400). A body that cannot be read
// (a malformed chunked encoding, a connection that ends mid-body) is the client's fault, so it
// must not answer 500 nor count as a server failure in the metrics and the error log. The
// detail does not quote err, which may name the server's addresses.
func bodyError(err error) error {
	var he *echo.HTTPError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return err
	case errors.As(err, &mbe):
		return echo.ErrStatusRequestEntityTooLarge
	}
	return domain.Errorf(domain.ErrInvalidSyntax,
		"the request body could not be read: its chunked encoding is malformed or it ended early")
}
