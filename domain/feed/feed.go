// Package feed maps the log's internal events to the public change feed that a host
// application reads (docs/events.md): the events API, the live stream and webhooks all send
// the same items.
//
// The mapping is a pure function of a decoded [domain.Event]: reading the same history again
// gives the same items, byte for byte. It keeps nothing internal: no hashes, no claim records,
// no request details, no NameIDs.
package feed

import (
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/idledger/idledger/domain"
)

// Public event types. A name never changes once published.
const (
	TypeUserCreated          = "user.created"
	TypeUserUpdated          = "user.updated"
	TypeUserDeactivated      = "user.deactivated"
	TypeUserReactivated      = "user.reactivated"
	TypeUserDeleted          = "user.deleted"
	TypeGroupCreated         = "group.created"
	TypeGroupUpdated         = "group.updated"
	TypeGroupDeleted         = "group.deleted"
	TypeGroupMembersAdded    = "group.members_added"
	TypeGroupMembersRemoved  = "group.members_removed"
	TypeProvisioningManaged  = "provisioning.managed"
	TypeProvisioningManual   = "provisioning.manual"
	TypeSSOSignInSucceeded   = "sso.signin_succeeded"
	TypeSSOSignInFailed      = "sso.signin_failed"
	resourceUser             = "user"
	resourceGroup            = "group"
	resourceCompany          = "company"
	actorSCIM, actorAPIKey   = "scim", "api_key"
	actorOperator, actorUser = "operator", "user"
	actorSystem              = "system"
	actorAnonymous           = "anonymous"
)

// publicTypes maps each internal event type that has a public meaning to its public type.
var publicTypes = map[string]string{
	domain.EventUserCreated:                TypeUserCreated,
	domain.EventUserInvited:                TypeUserCreated,
	domain.EventUserAdopted:                TypeUserUpdated,
	domain.EventUserAttributesChanged:      TypeUserUpdated,
	domain.EventUserDeactivated:            TypeUserDeactivated,
	domain.EventUserReactivated:            TypeUserReactivated,
	domain.EventUserDeleted:                TypeUserDeleted,
	domain.EventGroupCreated:               TypeGroupCreated,
	domain.EventGroupRenamed:               TypeGroupUpdated,
	domain.EventGroupAttributesChanged:     TypeGroupUpdated,
	domain.EventGroupDeleted:               TypeGroupDeleted,
	domain.EventGroupMembersAdded:          TypeGroupMembersAdded,
	domain.EventGroupMembersRemoved:        TypeGroupMembersRemoved,
	domain.EventTenantProvisioningLocked:   TypeProvisioningManaged,
	domain.EventTenantProvisioningUnlocked: TypeProvisioningManual,
	domain.EventSignInSucceeded:            TypeSSOSignInSucceeded,
	domain.EventSignInFailed:               TypeSSOSignInFailed,
}

// Types returns every public event type, sorted.
func Types() []string {
	seen := make(map[string]bool)
	var out []string
	for _, t := range publicTypes {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// ParseTypes checks a comma-separated list of public types (as in ?types=a,b) and returns
// them as a set; an empty list means every type (nil). An unknown name wraps domain.ErrInvalid.
func ParseTypes(list string) (map[string]bool, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	known := Types()
	out := make(map[string]bool)
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !slices.Contains(known, t) {
			return nil, domain.Errorf(domain.ErrInvalid, "unknown event type %q (known: %s)", t, strings.Join(known, ", "))
		}
		out[t] = true
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// An Event is one item of the change feed: the events API's item, one SSE message's data and
// one webhook body.
type Event struct {
	// ID is stable across reads of the log: it is derived from the event's position (see
	// [ID]), so the host can deduplicate by it and resume after it.
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	OccurredAt time.Time `json:"occurredAt"`
	Tenant     string    `json:"tenant"`
	Resource   Resource  `json:"resource"`
	Actor      Actor     `json:"actor"`
	Data       any       `json:"data"`
}

// Resource names what an event is about.
type Resource struct {
	// Type is "user", "group" or "company".
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Actor says who caused an event: "scim" (the company's SCIM client, such as Entra),
// "api_key" (ID is the key's id), "operator", "user" (a person signing in; ID is the user's
// id), "anonymous" (a sign-in that matched no user) or "system".
type Actor struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

// Change is one changed attribute of a user or group: its SCIM path and its values before and
// after (null when absent).
type Change struct {
	Path string `json:"path"`
	Old  any    `json:"old"`
	New  any    `json:"new"`
}

// Payloads of the public types.
type (
	// ResourceData is the data of user.created and group.created: the SCIM attributes as
	// stored (without id and meta), and for a group the ids of its first members (the rest
	// follow in group.members_added).
	ResourceData struct {
		Attributes map[string]any `json:"attributes"`
		Members    []string       `json:"members,omitempty"`
	}
	// ChangesData is the data of user.updated, user.deactivated, user.reactivated and
	// group.updated: the changed attributes, old → new, sorted by path.
	ChangesData struct {
		Changes []Change `json:"changes"`
	}
	// MembersData is the data of group.members_added and group.members_removed: the ids of
	// the users actually added or removed (a large change comes in several events). Reason is
	// "user_deleted" when the members left because their users were deleted.
	MembersData struct {
		Members []string `json:"members"`
		Reason  string   `json:"reason,omitempty"`
	}
	// EmptyData is the data of user.deleted, group.deleted and provisioning.managed.
	EmptyData struct{}
	// ManualData is the data of provisioning.manual: why the company returned to manual mode.
	ManualData struct {
		Reason string `json:"reason,omitempty"`
	}
	// SignInData is the data of sso.signin_succeeded and sso.signin_failed: the flow
	// ("sp_initiated" or "idp_initiated") and, for a failure, its public reason code.
	SignInData struct {
		Flow   string `json:"flow,omitempty"`
		Reason string `json:"reason,omitempty"`
	}
)

// idPrefix starts every public event id.
const idPrefix = "evt_"

// idEncoding is lower-case base32hex without padding: ids of later events sort after those
// of earlier ones, as strings too.
var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// ID returns the public id of the event at log position seq: "evt_" and 13 characters.
func ID(seq domain.Version) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(seq))
	return idPrefix + idEncoding.EncodeToString(b[:])
}

// ErrBadID is wrapped by ParseID for a string that is no event id.
var ErrBadID = errors.New("not an event id")

// ParseID returns the log position of a public event id.
func ParseID(id string) (domain.Version, error) {
	s, ok := strings.CutPrefix(id, idPrefix)
	if !ok || len(s) != 13 {
		return 0, fmt.Errorf("feed: %q: %w", id, ErrBadID)
	}
	b, err := idEncoding.DecodeString(s)
	if err != nil || len(b) != 8 {
		return 0, fmt.Errorf("feed: %q: %w", id, ErrBadID)
	}
	seq := domain.Version(binary.BigEndian.Uint64(b))
	if seq == 0 || ID(seq) != id {
		return 0, fmt.Errorf("feed: %q: %w", id, ErrBadID)
	}
	return seq, nil
}

// Public reports whether an internal event type has a public type, and which.
func Public(internalType string) (string, bool) {
	t, ok := publicTypes[internalType]
	return t, ok
}

// Map returns the public form of an internal event, or false for an event that has none
// (company settings, index records, sync-cycle markers, types this code does not know). It
// depends on nothing but e.
func Map(e domain.Event) (Event, bool) {
	typ, ok := publicTypes[e.Type]
	if !ok || e.Data == nil || e.Version == 0 {
		return Event{}, false
	}
	out := Event{ID: ID(e.Version), Type: typ, OccurredAt: e.At.UTC(), Tenant: string(e.Tenant), Actor: actor(e.Actor)}
	switch e.Kind {
	case domain.KindUser:
		out.Resource = Resource{Type: resourceUser, ID: e.AggregateID}
	case domain.KindGroup:
		out.Resource = Resource{Type: resourceGroup, ID: e.AggregateID}
	default:
		out.Resource = Resource{Type: resourceCompany, ID: string(e.Tenant)}
	}
	switch d := e.Data.(type) {
	case domain.UserCreated:
		out.Data = ResourceData{Attributes: nonNil(d.Attributes)}
	case domain.UserChanged:
		out.Data = ChangesData{Changes: changes(d.Changes)}
	case domain.UserDeleted, domain.GroupDeleted, domain.ProvisioningLocked:
		out.Data = EmptyData{}
	case domain.GroupCreated:
		out.Data = ResourceData{Attributes: nonNil(d.Attributes), Members: memberIDs(d.Members)}
	case domain.GroupChanged:
		out.Data = ChangesData{Changes: changes(d.Changes)}
	case domain.GroupMembersAdded:
		out.Data = MembersData{Members: memberIDs(d.Members)}
	case domain.GroupMembersRemoved:
		ids := make([]string, len(d.Members))
		for i, m := range d.Members {
			ids[i] = string(m)
		}
		m := MembersData{Members: ids}
		if d.Cause == domain.EventUserDeleted {
			m.Reason = "user_deleted"
		}
		out.Data = m
	case domain.ProvisioningUnlocked:
		out.Data = ManualData{Reason: d.Reason}
	case domain.SignInRecorded:
		// The sign-in's subject is the user's (or SignInNoUser): the resource is the user
		// when there is one, else the company. Detail and Source stay private.
		if d.User != "" {
			out.Resource = Resource{Type: resourceUser, ID: string(d.User)}
			out.Actor = Actor{Type: actorUser, ID: string(d.User)}
		} else {
			out.Resource = Resource{Type: resourceCompany, ID: string(e.Tenant)}
			out.Actor = Actor{Type: actorAnonymous}
		}
		s := SignInData{Flow: d.Flow}
		if typ == TypeSSOSignInFailed {
			s.Reason = d.Reason
		}
		out.Data = s
	default:
		return Event{}, false
	}
	return out, true
}

// Marshal returns an item's JSON: the same event gives the same bytes (encoding/json sorts
// map keys), without HTML escaping.
func Marshal(e Event) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("feed: encode %s: %w", e.ID, err)
	}
	return []byte(strings.TrimSuffix(b.String(), "\n")), nil
}

// actor turns the log's actor into its public form without the SCIM token's hash prefix.
func actor(a string) Actor {
	switch {
	case strings.HasPrefix(a, domain.ActorSCIMPrefix):
		return Actor{Type: actorSCIM}
	case strings.HasPrefix(a, domain.ActorAPIKeyPrefix):
		return Actor{Type: actorAPIKey, ID: strings.TrimPrefix(a, domain.ActorAPIKeyPrefix)}
	case strings.HasPrefix(a, domain.ActorAPIPrefix):
		return Actor{Type: actorAPIKey}
	case a == "admin":
		return Actor{Type: actorOperator}
	case a == "anonymous":
		return Actor{Type: actorAnonymous}
	}
	return Actor{Type: actorSystem}
}

func changes(in []domain.Change) []Change {
	out := make([]Change, len(in))
	for i, c := range in {
		out[i] = Change{Path: c.Path, Old: c.Old, New: c.New}
	}
	return out
}

func memberIDs(in []domain.Member) []string {
	if len(in) == 0 {
		return nil
	}
	out := make([]string, len(in))
	for i, m := range in {
		out[i] = m.Value
	}
	return out
}

func nonNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
