package scim

import (
	"errors"
	"fmt"
)

// Kinds of SCIM protocol failure (RFC 7644 §3.12). Test with errors.Is; package domain
// re-exports them under the same names, and httpapi maps each kind to one HTTP status and
// SCIM scimType.
var (
	// ErrInvalid is a value of the wrong type or out of range (scimType invalidValue).
	ErrInvalid = errors.New("invalid value")
	// ErrInvalidSyntax is a request body that is not a SCIM message (invalidSyntax).
	ErrInvalidSyntax = errors.New("invalid syntax")
	// ErrInvalidFilter is a filter that cannot be parsed or evaluated (invalidFilter).
	ErrInvalidFilter = errors.New("invalid filter")
	// ErrInvalidPath is a PATCH path that cannot be parsed or resolved (invalidPath).
	ErrInvalidPath = errors.New("invalid path")
	// ErrNoTarget is a PATCH operation without a target where one is needed (noTarget).
	ErrNoTarget = errors.New("no target")
	// ErrMutability is a change to a read-only attribute (mutability).
	ErrMutability = errors.New("attribute is read-only")
	// ErrTooMany is a request past a limit (tooMany).
	ErrTooMany = errors.New("too many results")
)

// An Error pairs a kind with a message that is safe to show an API client.
type Error struct {
	Kind   error
	Detail string
}

// Error returns the client-safe detail.
func (e *Error) Error() string { return e.Detail }

// Unwrap returns the kind, so errors.Is(err, ErrInvalidPath) works through wrapping.
func (e *Error) Unwrap() error { return e.Kind }

// errorf builds an *Error of the given kind with a formatted detail.
func errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// errorDetail returns the client-safe detail of err if it carries one, or "".
func errorDetail(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Detail
	}
	return ""
}
