package domain

import (
	"errors"
	"fmt"

	"github.com/idledger/idledger/domain/scim"
)

// Kinds of failure a caller can act on. Test with errors.Is; httpapi maps each kind to one HTTP
// status and SCIM scimType.
var (
	ErrNotFound      = errors.New("not found")
	ErrUniqueness    = errors.New("already exists")
	ErrInvalid       = scim.ErrInvalid
	ErrInvalidSyntax = scim.ErrInvalidSyntax
	ErrInvalidFilter = scim.ErrInvalidFilter
	ErrInvalidPath   = scim.ErrInvalidPath
	ErrNoTarget      = scim.ErrNoTarget
	ErrMutability    = scim.ErrMutability
	ErrTooMany       = scim.ErrTooMany
	ErrConflict      = errors.New("changed concurrently")
	ErrPrecondition  = errors.New("version does not match")
	ErrLocked        = errors.New("managed by provisioning")
	ErrUnauthorized  = errors.New("unauthorized")
	ErrForbidden     = errors.New("forbidden")
	// ErrUnavailable means the event log cannot be reached just now; the same request may
	// succeed later (HTTP 503 with Retry-After). Nothing was written.
	ErrUnavailable = errors.New("event log unavailable")
	// ErrStorageFull means the event log's volume (or its configured storage limit) has no
	// room for the write: nothing was stored, and the same request may succeed once space is
	// freed (HTTP 507 with Retry-After). The log heals by itself when space returns.
	ErrStorageFull = errors.New("event log storage full")
)

// An Error pairs a kind with a message that is safe to show an API client. It is the SCIM
// package's error type, so an error from the SCIM machinery needs no conversion.
type Error = scim.Error

// Errorf builds an *Error of the given kind with a formatted detail.
func Errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// ErrorDetail returns the client-safe detail of err if it carries one, or "".
func ErrorDetail(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Detail
	}
	return ""
}
