package domain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Kind names the type of aggregate an event belongs to.
type Kind string

// Aggregate kinds. Each aggregate is one subject of the log.
const (
	KindTenant Kind = "tenant"
	KindUser   Kind = "user"
	KindGroup  Kind = "group"
)

// Wire names of events. A name never changes once written; a new meaning gets a new name.
const (
	EventTenantCreated         = "tenant.created"
	EventTenantFeaturesChanged = "tenant.features_changed"
	// EventTenantSCIMTokenRotated carries the new token's hash (domain/tokens.go).
	EventTenantSCIMTokenRotated = "tenant.scim_token_rotated"
	// Company API keys (domain/apikeys.go): created with their hash and scopes, revoked by id.
	EventTenantAPIKeyCreated = "tenant.api_key_created"
	EventTenantAPIKeyRevoked = "tenant.api_key_revoked"
	// One-time console links (domain/setuplinks.go): created with their hash and expiry,
	// revoked by id, burned by their first use.
	EventTenantSetupLinkCreated = "tenant.setup_link_created"
	EventTenantSetupLinkRevoked = "tenant.setup_link_revoked"
	EventTenantSetupLinkUsed    = "tenant.setup_link_used"

	// Single sign-on (domain/sso.go).
	EventTenantIDPMetadataSet     = "tenant.idp_metadata_set"
	EventTenantSSODisabled        = "tenant.sso_disabled"
	EventTenantSSOSettingsChanged = "tenant.sso_settings_changed"

	EventSignInSucceeded = "signin.succeeded"
	EventSignInFailed    = "signin.failed"

	EventTenantProvisioningLocked   = "tenant.provisioning_locked"
	EventTenantProvisioningUnlocked = "tenant.provisioning_unlocked"

	EventUserCreated           = "user.created"
	EventUserInvited           = "user.invited"
	EventUserAdopted           = "user.adopted"
	EventUserAttributesChanged = "user.attributes_changed"
	EventUserDeactivated       = "user.deactivated"
	EventUserReactivated       = "user.reactivated"
	EventUserDeleted           = "user.deleted"

	EventGroupCreated           = "group.created"
	EventGroupRenamed           = "group.renamed"
	EventGroupAttributesChanged = "group.attributes_changed"
	EventGroupMembersAdded      = "group.members_added"
	EventGroupMembersRemoved    = "group.members_removed"
	EventGroupDeleted           = "group.deleted"

	// Provisioning sync cycles (domain/history.go).
	EventSyncCycleStarted = "cycle.started"
)

// An Event is one immutable fact about one aggregate.
type Event struct {
	// ID is unique per event and doubles as the log's de-duplication key.
	ID string
	// Tenant owns the aggregate.
	Tenant TenantID
	// Kind and AggregateID name the aggregate (for a tenant, AggregateID is the tenant id).
	Kind        Kind
	AggregateID string
	// Type is the wire name, Schema the payload's schema version for that type.
	Type   string
	Schema int
	// Version is the event's position in the log; zero until appended.
	Version Version
	// At is when the command was decided (the injected clock).
	At time.Time
	// Actor says who caused it ("scim:<token hash prefix>", "key:<API key id>", "admin",
	// "system"); never a name or email.
	Actor string
	// Correlation ties the events of one request together (the request id).
	Correlation string
	// UserAgent and Source describe the API client that caused the event (its User-Agent and
	// network address), for token-authenticated clients only (see [Request]); empty otherwise.
	UserAgent, Source string
	// Data is the typed payload (for example [UserCreated]); nil for an unknown type.
	Data any
}

// A Write is one event to append and the version of its aggregate it was decided on.
type Write struct {
	Event    Event
	Expected Version
	// NoExpect appends without a version check, for commutative changes decided elsewhere
	// (a deleted user leaving its groups).
	NoExpect bool
}

// A UniqueOp claims or releases a tenant-wide unique value (such as a folded userName) for a
// holder, atomically with the writes of the same [Batch].
type UniqueOp struct {
	// Field names the constraint, for example "userName".
	Field string
	// Value is the already-normalised value (for userName: [FoldUserName]).
	Value string
	// Holder is the aggregate id that holds (or held) the value.
	Holder string
	// Release frees the value instead of claiming it.
	Release bool
}

// A Batch is everything one command appends: it is stored whole or not at all. The log alone
// knows how many records one atomic append may hold: writes without a version check at the end
// of a batch (NoExpect) that exceed it may be stored right after the rest.
type Batch struct {
	Tenant TenantID
	Writes []Write
	Unique []UniqueOp
	// Guard, when set, makes the batch fail with ErrConflict unless the tenant aggregate is
	// still at this version: a local write decided while the company was in manual mode cannot
	// slip in after the provisioning lock (docs/event-model.md §2.6-bis).
	Guard *Version
}

// EventLog is the write side's view of the log.
type EventLog interface {
	// Append stores the batch atomically and returns the log position of its last message.
	// It returns an error wrapping ErrConflict if an aggregate moved past its expected version,
	// and ErrUniqueness if a claimed value is held by another holder.
	Append(ctx context.Context, b Batch) (Version, error)
	// Load returns the events of one aggregate in order and its current version. An aggregate
	// without events returns no events and version 0.
	Load(ctx context.Context, tenant TenantID, kind Kind, id string) ([]Event, Version, error)
	// Version returns an aggregate's current version without reading its events (0 if it
	// has none).
	Version(ctx context.Context, tenant TenantID, kind Kind, id string) (Version, error)
}

// EventSource delivers the whole log in order, for projectors.
type EventSource interface {
	// Subscribe returns a subscription delivering every event after the given position.
	Subscribe(ctx context.Context, after Version) (Subscription, error)
	// Head returns the position of the last message in the log (0 if empty).
	Head(ctx context.Context) (Version, error)
}

// A Subscription delivers events in log order. It is not safe for concurrent use.
type Subscription interface {
	// Next blocks until at least one event is available (or ctx ends), then returns up to max
	// events that are already available. An event the log cannot decode is an error carrying
	// its position.
	Next(ctx context.Context, max int) ([]Event, error)
	// Close stops the subscription.
	Close() error
}

// Request describes who is making a request; it is carried in the context and stamped on every
// event the request appends.
type Request struct {
	Actor       string
	Correlation string
	// Method and Path are the HTTP request line, kept for events that cite their cause.
	Method, Path string
	// UserAgent and Source are the client's User-Agent header and network address. Events
	// carry them only when the actor is a token-authenticated client (scim:, api:, admin),
	// never for a browser: headers cannot be erased (docs/event-model.md §2.9).
	UserAgent, Source string
}

type requestKey struct{}

// WithRequest returns a context carrying r.
func WithRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

// RequestFrom returns the Request carried by ctx, or one with actor "system".
func RequestFrom(ctx context.Context) Request {
	if r, ok := ctx.Value(requestKey{}).(Request); ok {
		return r
	}
	return Request{Actor: "system"}
}

// ErrUnknownEvent is returned by DecodeData for a type this code does not know. Projectors
// ignore such events; replay tools report them.
var ErrUnknownEvent = errors.New("unknown event type")

// schemas maps each wire name to its current payload schema version and a decoder.
var schemas = map[string]struct {
	version int
	decode  func([]byte) (any, error)
}{
	EventTenantCreated:              {1, decodeJSON[TenantCreated]},
	EventTenantFeaturesChanged:      {1, decodeJSON[TenantFeaturesChanged]},
	EventUserCreated:                {1, decodeJSON[UserCreated]},
	EventUserInvited:                {1, decodeJSON[UserCreated]},
	EventUserAdopted:                {1, decodeJSON[UserChanged]},
	EventTenantProvisioningLocked:   {1, decodeJSON[ProvisioningLocked]},
	EventTenantProvisioningUnlocked: {1, decodeJSON[ProvisioningUnlocked]},
	EventUserAttributesChanged:      {1, decodeJSON[UserChanged]},
	EventUserDeactivated:            {1, decodeJSON[UserChanged]},
	EventUserReactivated:            {1, decodeJSON[UserChanged]},
	EventUserDeleted:                {1, decodeJSON[UserDeleted]},
	EventGroupCreated:               {1, decodeJSON[GroupCreated]},
	EventGroupRenamed:               {1, decodeJSON[GroupChanged]},
	EventGroupAttributesChanged:     {1, decodeJSON[GroupChanged]},
	EventGroupMembersAdded:          {1, decodeJSON[GroupMembersAdded]},
	EventGroupMembersRemoved:        {1, decodeJSON[GroupMembersRemoved]},
	EventGroupDeleted:               {1, decodeJSON[GroupDeleted]},
	EventSyncCycleStarted:           {1, decodeJSON[SyncCycleStarted]},

	// Single sign-on and the login history (domain/sso.go).
	EventTenantIDPMetadataSet:     {1, decodeJSON[IDPMetadataSet]},
	EventTenantSSODisabled:        {1, decodeJSON[SSODisabled]},
	EventTenantSSOSettingsChanged: {1, decodeJSON[SSOSettingsChanged]},
	EventSignInSucceeded:          {1, decodeJSON[SignInRecorded]},
	EventSignInFailed:             {1, decodeJSON[SignInRecorded]},

	// Token rotation (domain/tokens.go).
	EventTenantSCIMTokenRotated: {1, decodeJSON[SCIMTokenRotated]},

	// Company API keys (domain/apikeys.go).
	EventTenantAPIKeyCreated: {1, decodeJSON[APIKeyCreated]},
	EventTenantAPIKeyRevoked: {1, decodeJSON[APIKeyRevoked]},

	// Setup links (domain/setuplinks.go).
	EventTenantSetupLinkCreated: {1, decodeJSON[SetupLinkCreated]},
	EventTenantSetupLinkRevoked: {1, decodeJSON[SetupLinkRevoked]},
	EventTenantSetupLinkUsed:    {1, decodeJSON[SetupLinkUsed]},
}

func decodeJSON[T any](b []byte) (any, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// SchemaOf returns the current payload schema version of an event type, or 0 if unknown.
func SchemaOf(eventType string) int {
	return schemas[eventType].version
}

// MaxEventData is the largest encoded event payload, in bytes: with its headers an event must
// fit one log message (NATS' max_payload, 1 MiB by default). JSON encoding can grow a request's
// strings up to six-fold ("<" becomes \u003c), so a body within the HTTP limit can still exceed it.
const MaxEventData = 900 << 10

// EncodeData returns the wire form of an event payload. A payload larger than MaxEventData is
// an error wrapping ErrInvalid: the change is refused before anything is appended.
func EncodeData(data any) ([]byte, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("domain: encode event: %w", err)
	}
	if len(b) > MaxEventData {
		return nil, Errorf(ErrInvalid, "the change is too large to record (%d KiB encoded; at most %d KiB)", len(b)>>10, MaxEventData>>10)
	}
	return b, nil
}

// DecodeData decodes a payload of the given type and schema version into its current typed
// form, upcasting older schema versions. It returns ErrUnknownEvent for an unknown type.
func DecodeData(eventType string, schema int, b []byte) (any, error) {
	s, ok := schemas[eventType]
	if !ok {
		return nil, fmt.Errorf("domain: %q: %w", eventType, ErrUnknownEvent)
	}
	if schema < 1 || schema > s.version {
		return nil, fmt.Errorf("domain: %s schema %d: no upcaster to %d", eventType, schema, s.version)
	}
	v, err := s.decode(b)
	if err != nil {
		return nil, fmt.Errorf("domain: decode %s: %w", eventType, err)
	}
	return v, nil
}

// EventTypes returns every event type this code writes with its current schema version,
// sorted by type: the golden samples in testdata/events must cover each.
func EventTypes() map[string]int {
	out := make(map[string]int, len(schemas))
	for t, s := range schemas {
		out[t] = s.version
	}
	return out
}
