package domain

import (
	"errors"
	"fmt"
)

// Kinds of failure a caller can act on. Test with errors.Is; httpapi maps each kind to one HTTP
// status and SCIM scimType.
var (
	ErrNotFound      = errors.New("not found")
	ErrUniqueness    = errors.New("already exists")
	ErrInvalid       = errors.New("invalid value")
	ErrInvalidSyntax = errors.New("invalid syntax")
	ErrInvalidFilter = errors.New("invalid filter")
	ErrInvalidPath   = errors.New("invalid path")
	ErrNoTarget      = errors.New("no target")
	ErrMutability    = errors.New("attribute is read-only")
	ErrTooMany       = errors.New("too many results")
	ErrConflict      = errors.New("changed concurrently")
	ErrPrecondition  = errors.New("version does not match")
	ErrLocked        = errors.New("managed by provisioning")
	ErrUnauthorized  = errors.New("unauthorized")
	ErrForbidden     = errors.New("forbidden")
	// ErrUnavailable means the event log cannot be reached just now; the same request may
	// succeed later (HTTP 503 with Retry-After). Nothing was written.
	ErrUnavailable = errors.New("event log unavailable")
)

// An Error pairs a kind with a message that is safe to show an API client.
type Error struct {
	Kind   error
	Detail string
}

// Error returns the client-safe detail.
func (e *Error) Error() string { return e.Detail }

// Unwrap returns the kind, so errors.Is(err, ErrNotFound) works through wrapping.
func (e *Error) Unwrap() error { return e.Kind }

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
