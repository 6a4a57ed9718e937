package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/idledger/idledger/domain"
)

// Envelope headers (docs/event-model.md §2.2). NATS reserves the Nats- prefix.
const (
	hdrMsgID       = "Nats-Msg-Id"
	hdrType        = "Idl-Type"
	hdrSchema      = "Idl-Schema"
	hdrTenant      = "Idl-Tenant"
	hdrAggregate   = "Idl-Aggregate"
	hdrCorrelation = "Idl-Correlation"
	hdrActor       = "Idl-Actor"
	hdrOccurred    = "Idl-Occurred"
	hdrUserAgent   = "Idl-User-Agent"
	hdrSource      = "Idl-Source"
)

// Index record types written next to domain events; the domain fold never sees them. The
// same two types serve every claim kind; the subject says which.
const (
	typeClaimed  = "uname.claimed"
	typeReleased = "uname.released"
)

// claimKinds maps a unique field to the subject token of its claims: userName claims are
// idl.<t>.uname.<key>, group displayName claims idl.<t>.gname.<key>.
var claimKinds = map[string]string{
	"userName":    "uname",
	"displayName": "gname",
}

// guardKind is the subject token of guard records (idl.<t>.guard): each records that a local
// write asserted the tenant's version; typeGuard is their type.
const (
	guardKind = "guard"
	typeGuard = "guard.checked"
)

// isClaimKind reports whether a subject's kind token is an index record (a claim or a guard),
// not an aggregate.
func isClaimKind(kind string) bool {
	if kind == guardKind {
		return true
	}
	for _, k := range claimKinds {
		if k == kind {
			return true
		}
	}
	return false
}

// subject returns the subject of an aggregate.
func subject(tenant domain.TenantID, kind domain.Kind, id string) string {
	if kind == domain.KindTenant {
		return "idl." + string(tenant) + ".tenant"
	}
	return "idl." + string(tenant) + "." + string(kind) + "." + id
}

// validToken reports whether s can be one token of a subject.
func validToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n")
}

// encode turns a domain event into a message on its aggregate's subject.
func encode(e domain.Event) (*nats.Msg, error) {
	if !validToken(string(e.Tenant)) || (e.Kind != domain.KindTenant && !validToken(e.AggregateID)) {
		return nil, fmt.Errorf("eventstore: invalid aggregate %s/%s/%s", e.Tenant, e.Kind, e.AggregateID)
	}
	data, err := domain.EncodeData(e.Data)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(subject(e.Tenant, e.Kind, e.AggregateID))
	m.Data = data
	m.Header.Set(hdrMsgID, e.ID)
	m.Header.Set(hdrType, e.Type)
	m.Header.Set(hdrSchema, strconv.Itoa(e.Schema))
	m.Header.Set(hdrTenant, string(e.Tenant))
	m.Header.Set(hdrAggregate, string(e.Kind)+":"+e.AggregateID)
	if e.Correlation != "" {
		m.Header.Set(hdrCorrelation, e.Correlation)
	}
	m.Header.Set(hdrActor, e.Actor)
	m.Header.Set(hdrOccurred, e.At.UTC().Format(time.RFC3339Nano))
	if e.UserAgent != "" {
		m.Header.Set(hdrUserAgent, e.UserAgent)
	}
	if e.Source != "" {
		m.Header.Set(hdrSource, e.Source)
	}
	return m, nil
}

// errUndecodable marks a message that is in the log but cannot be turned into an event.
var errUndecodable = errors.New("undecodable event")

// decode turns a stored message back into a domain event. Index records come back with their
// own Kind and a nil Data; unknown event types come back with a nil Data.
func decode(subj string, h nats.Header, data []byte, seq uint64, stored time.Time) (domain.Event, error) {
	parts := strings.Split(subj, ".")
	if len(parts) < 3 || parts[0] != "idl" {
		return domain.Event{}, fmt.Errorf("eventstore: seq %d: subject %q: %w", seq, subj, errUndecodable)
	}
	e := domain.Event{
		ID:          h.Get(hdrMsgID),
		Tenant:      domain.TenantID(parts[1]),
		Kind:        domain.Kind(parts[2]),
		Type:        h.Get(hdrType),
		Version:     domain.Version(seq),
		Actor:       h.Get(hdrActor),
		Correlation: h.Get(hdrCorrelation),
		UserAgent:   h.Get(hdrUserAgent),
		Source:      h.Get(hdrSource),
		At:          stored,
	}
	if e.Kind == domain.KindTenant || (e.Kind == guardKind && len(parts) == 3) {
		e.AggregateID = parts[1]
	} else if len(parts) == 4 {
		e.AggregateID = parts[3]
	} else {
		return domain.Event{}, fmt.Errorf("eventstore: seq %d: subject %q: %w", seq, subj, errUndecodable)
	}
	if t, err := time.Parse(time.RFC3339Nano, h.Get(hdrOccurred)); err == nil {
		e.At = t
	}
	if isClaimKind(string(e.Kind)) {
		return e, nil
	}
	schema, err := strconv.Atoi(h.Get(hdrSchema))
	if err != nil {
		return domain.Event{}, fmt.Errorf("eventstore: seq %d: schema %q: %w", seq, h.Get(hdrSchema), errUndecodable)
	}
	e.Schema = schema
	e.Data, err = domain.DecodeData(e.Type, schema, data)
	if errors.Is(err, domain.ErrUnknownEvent) {
		return e, nil
	}
	if err != nil {
		return domain.Event{}, fmt.Errorf("eventstore: seq %d: %w: %w", seq, errUndecodable, err)
	}
	return e, nil
}

// decodeOpen decodes a stored message (decode) and opens its sealed personal values
// (keys.go): an erased person's values come back as domain.ErasedValue.
func (s *Store) decodeOpen(ctx context.Context, subj string, h nats.Header, data []byte, seq uint64, stored time.Time) (domain.Event, error) {
	e, err := decode(subj, h, data, seq, stored)
	if err != nil || e.Data == nil {
		return e, err
	}
	if err := s.openEvent(ctx, &e, h); err != nil {
		return domain.Event{}, fmt.Errorf("eventstore: seq %d: %w", seq, err)
	}
	return e, nil
}
