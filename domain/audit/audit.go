// Package audit answers history questions from the event log, never from a read model, so it
// works for deleted resources and offline (`idledger audit ...`), and answers with the write
// side's own fold. It imports only package domain and the standard library; the adapters
// (eventstore) implement the interfaces it reads the log through.
//
//   - A timeline (timeline.go) is one aggregate's subject read in order (a user's also merges
//     its sign-in subject, idl.<t>.signin.<id>). A user looked up by userName after it is gone
//     is found through its userName claim subject (idl.<t>.uname.<HMAC of the folded name>):
//     the key is computed from the name asked for, so nothing is scanned, and the subject lists
//     every user that ever held the name, renames included ([History.Holders]).
//   - "As of T" (asof.go) folds the longest prefix of that subject whose events happened at or
//     before T ([StateAt], [MembersAt]): a state that really existed.
//   - Sync cycles (cycles.go): the first SCIM request of a company after a quiet gap
//     ([Service.Gap]) appends a [domain.SyncCycleStarted] marker to idl.<t>.cycle.scim. The
//     marker makes the cycle's number permanent; the cycle's events are the company's SCIM
//     events after its marker and before the next one. Every SCIM request, failed or not, is
//     also kept in a [RequestLog] (a separate, expiring stream), which supplies the request
//     counts and the failures. The figures are folded incrementally (cycles_fold.go): every
//     message and record is applied once, and a read applies only those since the last one.
package audit

import (
	"context"
	"sync"
	"time"

	"github.com/idledger/idledger/domain"
)

// History is what the audit reads from the event log, besides [domain.EventLog].
type History interface {
	// Events returns up to limit (all if limit <= 0) events of one aggregate whose positions
	// are after the given one, in order; none for an aggregate without events.
	Events(ctx context.Context, tenant domain.TenantID, kind domain.Kind, id string, after domain.Version, limit int) ([]domain.Event, error)
	// Scan calls fn with the company's messages (events and index records) after position
	// after and up to through (0: up to the log's head when Scan starts), in order, until fn
	// returns false.
	Scan(ctx context.Context, tenant domain.TenantID, after, through domain.Version, fn func(domain.Event) bool) error
	// Holders returns every holder of a unique value ("userName" or "displayName", already
	// normalised with the [domain.UserNames] fold) in the order they claimed it; none if it was
	// never claimed.
	Holders(ctx context.Context, tenant domain.TenantID, field, value string) ([]Holding, error)
}

// A Holding is one period in which a user (or group) held a unique value such as a userName.
type Holding struct {
	// ID is the holder's id.
	ID string `json:"id"`
	// Claimed and Released are the log positions of the claim and of its release (0: still
	// held).
	Claimed  domain.Version `json:"claimedSeq"`
	Released domain.Version `json:"releasedSeq,omitempty"`
}

// RequestLog keeps a company's SCIM request records for a limited time (eventstore chooses
// and documents the retention).
type RequestLog interface {
	// RecordRequest stores one record.
	RecordRequest(ctx context.Context, r RequestRecord) error
	// LastRequest returns the company's most recent record, or an error wrapping
	// domain.ErrNotFound.
	LastRequest(ctx context.Context, tenant domain.TenantID) (RequestRecord, error)
	// Requests calls fn with the company's records of cycles from..through (through 0: no
	// upper bound) in order, until fn returns false.
	Requests(ctx context.Context, tenant domain.TenantID, from, through int, fn func(RequestRecord) bool) error
	// RequestsAfter calls fn with the company's records after position seq (0: all), in
	// order, until fn returns false.
	RequestsAfter(ctx context.Context, tenant domain.TenantID, seq uint64, fn func(RequestRecord) bool) error
	// RequestsAt calls fn with the company's records at the given positions (ascending) that
	// are still kept, in order, until fn returns false.
	RequestsAt(ctx context.Context, tenant domain.TenantID, seqs []uint64, fn func(RequestRecord) bool) error
	// OldestRequest returns the position of the company's oldest kept record; 0 if it has none.
	OldestRequest(ctx context.Context, tenant domain.TenantID) (uint64, error)
	// CountRequests returns how many records of the company are kept.
	CountRequests(ctx context.Context, tenant domain.TenantID) (int, error)
}

// A RequestRecord is one request of a company's provisioning (SCIM) client, successful or not.
// Records have no effect on state; they are kept in a [RequestLog] for a limited time. They
// never hold a request body or query (which may carry personal data); Detail may quote a
// userName in an error message, which is one reason the records expire.
type RequestRecord struct {
	// Seq is the record's position in the request log, set when it is read.
	Seq    uint64          `json:"seq,omitempty"`
	Tenant domain.TenantID `json:"tenant"`
	// At is when the request arrived (the injected clock); Cycle the sync cycle it belongs to
	// (0 if none could be determined).
	At    time.Time `json:"at"`
	Cycle int       `json:"cycle,omitempty"`
	// Method, Route (the route pattern) and Path (without the query) describe the request.
	Method string `json:"method"`
	Route  string `json:"route,omitempty"`
	Path   string `json:"path"`
	// Status is the HTTP status answered; SCIMType and Detail the SCIM error, if any.
	Status   int    `json:"status"`
	SCIMType string `json:"scimType,omitempty"`
	Detail   string `json:"detail,omitempty"`
	// RequestID is the correlation id its events carry (X-Request-Id).
	RequestID string `json:"requestId"`
	Actor     string `json:"actor"`
	UserAgent string `json:"userAgent,omitempty"`
	Source    string `json:"source,omitempty"`
	// Millis is how long the answer took.
	Millis float64 `json:"durationMs"`
}

// Failed reports whether the request was rejected (4xx or 5xx).
func (r RequestRecord) Failed() bool { return r.Status >= 400 }

// Service answers history questions from the log and tracks sync cycles. Create it with its
// fields set; it is safe for concurrent use.
type Service struct {
	// Log appends the cycle markers; History reads everything else.
	Log     domain.EventLog
	History History
	// Requests keeps SCIM request records; nil leaves cycles without request counts and
	// failures.
	Requests RequestLog
	// Now and NewID are injected like [domain.Service]'s.
	Now   func() time.Time
	NewID func() string
	// Gap is the quiet time that ends a sync cycle (DefaultCycleGap if zero).
	Gap time.Duration
	// Names folds userNames as the commands did when they claimed them; nil means
	// [domain.CaseFold].
	Names domain.UserNames
	// FoldAhead, if positive, keeps each company's sync cycle figures folded in the
	// background: a recorded request schedules a catch-up that long after (one pending per
	// company), so that a read finds little left to fold (cycles_fold.go). Zero folds on reads
	// only.
	FoldAhead time.Duration

	enter sync.Mutex // serialises starting a cycle in this process
	mu    sync.Mutex // guards seen and folds
	seen  map[domain.TenantID]cycleSeen
	folds map[domain.TenantID]*tenantFold // sync cycle figures (cycles_fold.go)
}

// A Page selects part of a list: entries after a position (or cycles before a number), at
// most Limit of them.
type Page struct {
	After  domain.Version
	Before int
	Limit  int
}

// Page size bounds.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return DefaultPageSize
	case p.Limit > MaxPageSize:
		return MaxPageSize
	}
	return p.Limit
}

// RecordRequest keeps a SCIM request's record in the request log (nothing if there is none).
func (a *Service) RecordRequest(ctx context.Context, r RequestRecord) error {
	if a.Requests == nil {
		return nil
	}
	if err := a.Requests.RecordRequest(ctx, r); err != nil {
		return err
	}
	a.foldSoon(r.Tenant)
	return nil
}

// names returns the service's userName rule.
func (a *Service) names() domain.UserNames {
	if a.Names == nil {
		return domain.CaseFold{}
	}
	return a.Names
}
