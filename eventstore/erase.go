package eventstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
)

// identifying lists the (lower-case) user attributes whose values name a person in an error
// detail of a request record: what PersonalValues collects.
var identifying = map[string]bool{
	"username": true, "externalid": true, "displayname": true, "nickname": true,
	"emails": true, "name": true, "phonenumbers": true,
}

// PersonalValues returns the values that name the user (userName, external id, display name,
// names, emails, phone numbers; every value they had) as the user's events read now: what an
// erasure must also find in records outside the log. Call it before the key is destroyed.
func (s *Store) PersonalValues(ctx context.Context, tenant domain.TenantID, user domain.UserID) ([]string, error) {
	events, _, err := s.Load(ctx, tenant, domain.KindUser, string(user))
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool)
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			if x != "" && x != domain.ErasedValue && !seen[x] {
				seen[x] = true
				out = append(out, x)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		case map[string]any:
			for k, y := range x {
				if k != "type" && k != "primary" && k != "display" { // "work", "mobile": not names
					walk(y)
				}
			}
		}
	}
	for _, e := range events {
		switch d := e.Data.(type) {
		case domain.UserCreated:
			for k, v := range d.Attributes {
				if identifying[strings.ToLower(k)] {
					walk(v)
				}
			}
		case domain.UserChanged:
			for _, c := range d.Changes {
				root, _, _ := strings.Cut(c.Path, "[")
				root, _, _ = strings.Cut(root, ".")
				if identifying[strings.ToLower(root)] {
					walk(c.Old)
					walk(c.New)
				}
			}
		}
	}
	return out, nil
}

// EraseRequestRecords deletes securely (overwriting their bytes) the company's SCIM request
// records that name the user: its id in the path, or one of values (its userName, emails…)
// in the error detail. It returns how many it deleted.
func (s *Store) EraseRequestRecords(ctx context.Context, tenant domain.TenantID, user domain.UserID, values []string) (int, error) {
	if !validToken(string(tenant)) {
		return 0, nil
	}
	s.recordStream().flush(ctx)
	subj := requestSubject(tenant)
	last, err := s.requests.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable(fmt.Errorf("eventstore: erase request records: %w", err))
	}
	lower := make([]string, len(values))
	for i, v := range values {
		lower[i] = strings.ToLower(v)
	}
	var hits []uint64
	id := []byte(user)
	err = s.each(ctx, RequestStreamName, subj, 1, last.Sequence, func(m jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
		// Most records name neither the user's id nor any error detail: skip them undecoded.
		if data := m.Data(); !bytes.Contains(data, id) && !bytes.Contains(data, []byte(`"detail"`)) {
			return true, nil
		}
		r, err := decodeRecord(m.Data(), md.Sequence.Stream)
		if err != nil {
			return true, nil // an unreadable record names no one we could match
		}
		match := strings.Contains(r.Path, string(user))
		detail := strings.ToLower(r.Detail)
		for _, v := range lower {
			if match || detail == "" {
				break
			}
			match = strings.Contains(detail, v)
		}
		if match {
			hits = append(hits, md.Sequence.Stream)
		}
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	for _, seq := range hits {
		if err := s.requests.SecureDeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, unavailable(fmt.Errorf("eventstore: erase request record %d: %w", seq, err))
		}
	}
	return len(hits), nil
}

// Erasures in progress are marked in IDL_DATA_KEYS, one message per person on
//
//	idlk.pending.<tenant>.<user>
//
// written before user.erased is appended and deleted once every step is done, so that an
// erasure interrupted at any point (a crash, a lost connection) is found and finished at the
// next start (PendingErasures).
const pendingPrefix = keySubjectPrefix + "pending."

// An ErasureRef names a person whose erasure is in progress.
type ErasureRef struct {
	Tenant domain.TenantID
	User   domain.UserID
}

// MarkErasure records that the person's erasure has begun.
func (s *Store) MarkErasure(ctx context.Context, tenant domain.TenantID, user domain.UserID) error {
	if s.kr.master == nil {
		return nil
	}
	if !validToken(string(tenant)) || !validToken(string(user)) {
		return domain.Errorf(domain.ErrNotFound, "User %s not found", user)
	}
	if _, err := s.js.Publish(ctx, pendingPrefix+string(tenant)+"."+string(user), nil); err != nil {
		return unavailable(fmt.Errorf("eventstore: mark erasure: %w", err))
	}
	return nil
}

// UnmarkErasure removes the person's marks (MarkErasure).
func (s *Store) UnmarkErasure(ctx context.Context, tenant domain.TenantID, user domain.UserID) error {
	if s.kr.master == nil {
		return nil
	}
	for {
		m, err := s.kr.stream.GetLastMsgForSubject(ctx, pendingPrefix+string(tenant)+"."+string(user))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return unavailable(fmt.Errorf("eventstore: unmark erasure: %w", err))
		}
		if err := s.kr.stream.DeleteMsg(ctx, m.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return unavailable(fmt.Errorf("eventstore: unmark erasure: %w", err))
		}
	}
}

// PendingErasures lists the erasures begun and not finished.
func (s *Store) PendingErasures(ctx context.Context) ([]ErasureRef, error) {
	if s.kr.master == nil {
		return nil, nil
	}
	last, err := s.kr.stream.GetLastMsgForSubject(ctx, pendingPrefix+">")
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable(fmt.Errorf("eventstore: pending erasures: %w", err))
	}
	seen := make(map[ErasureRef]bool)
	var out []ErasureRef
	err = s.each(ctx, KeyStreamName, pendingPrefix+">", 1, last.Sequence, func(m jetstream.Msg, _ *jetstream.MsgMetadata) (bool, error) {
		parts := strings.Split(strings.TrimPrefix(m.Subject(), pendingPrefix), ".")
		if len(parts) == 2 {
			r := ErasureRef{Tenant: domain.TenantID(parts[0]), User: domain.UserID(parts[1])}
			if !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// withoutErased drops the holdings of erased persons.
func (s *Store) withoutErased(ctx context.Context, tenant domain.TenantID, hs []audit.Holding) ([]audit.Holding, error) {
	out := hs[:0]
	for _, h := range hs {
		erased, err := s.KeyErased(ctx, tenant, domain.UserID(h.ID))
		if err != nil {
			return nil, err
		}
		if !erased {
			out = append(out, h)
		}
	}
	return out, nil
}
