package eventstore

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/idledger/idledger/domain"
)

// JetStream error codes that mean "a subject moved past the expected sequence".
const (
	codeWrongLastSeq      jetstream.ErrorCode = 10071
	codeWrongLastSeqConst jetstream.ErrorCode = 10164
)

// maxBatch is the server's limit of messages in one atomic batch.
const maxBatch = 1000

// claimPayload is the body of a claim index record. It holds only an opaque holder id.
type claimPayload struct {
	Holder string `json:"holder"`
}

// Append stores one request's messages as one atomic batch: the claim and release records of
// b.Unique first, then b.Writes, each asserting its subject's expected last sequence. It
// returns the sequence of the last message stored. A lost race wraps domain.ErrConflict; a
// value held by another holder wraps domain.ErrUniqueness. A batch with nothing to write
// returns 0. A batch larger than the server's limit of one atomic batch (maxBatch) is refused
// with domain.ErrTooMany, unless the excess is writes without a version check at its end
// (domain.Write.NoExpect): those follow in further batches once the rest is stored. If NATS
// cannot be reached the error wraps domain.ErrUnavailable (faults.go): a batch refused while
// disconnected was not stored; after a timeout waiting for the ack its outcome is unknown, as
// with any lost answer. If the disk is full it wraps domain.ErrStorageFull (storage.go). Config.Observer is told how long each call took and how it ended.
func (s *Store) Append(ctx context.Context, b domain.Batch) (domain.Version, error) {
	if err := s.connected(); err != nil {
		return 0, err
	}
	s.reload.RLock() // no JetStream reload (storage.go) under an append in flight
	defer s.reload.RUnlock()
	if err := s.roomToAppend(); err != nil {
		return 0, err
	}
	if s.obs == nil {
		v, err := s.append(ctx, b)
		return v, unavailable(s.storageError(err))
	}
	start := time.Now()
	v, err := s.append(ctx, b)
	err = unavailable(s.storageError(err))
	s.obs.Appended(time.Since(start), len(b.Writes), err)
	return v, err
}

func (s *Store) append(ctx context.Context, b domain.Batch) (_ domain.Version, err error) {
	var msgs []*nats.Msg
	var claims []claimCheck
	for _, u := range b.Unique {
		m, c, err := s.uniqueMsg(ctx, b.Tenant, u)
		if err != nil {
			return 0, err
		}
		if m != nil {
			msgs = append(msgs, m)
			claims = append(claims, c)
		}
	}
	if b.Guard != nil {
		msgs = append(msgs, guardMsg(b.Tenant, *b.Guard))
	}
	seen := make(map[string]bool)
	newKeys := make(map[string]string)
	for _, w := range b.Writes {
		e := w.Event
		m, err := s.encodeSealed(ctx, e, !seen[subject(e.Tenant, e.Kind, e.AggregateID)] && !w.NoExpect && w.Expected == 0, newKeys)
		if err != nil {
			return 0, err
		}
		// Only the first message of a subject in a batch may carry its expectation.
		if !seen[m.Subject] && !w.NoExpect {
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, fmt.Sprint(uint64(w.Expected)))
			seen[m.Subject] = true
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	defer func() {
		if err == nil {
			for ref, id := range newKeys {
				s.cacheUserKey(ref, id)
			}
		}
	}()
	if len(msgs) <= maxBatch {
		return s.appendMsgs(ctx, msgs, claims)
	}
	// Past the server's limit, writes without a version check at the end of the batch (a
	// deleted user leaving its groups: they commute with everything else) follow in further
	// batches, after the first one holding everything else has been stored.
	loose := 0
	for i := len(b.Writes) - 1; i >= 0 && b.Writes[i].NoExpect; i-- {
		loose++
	}
	if len(msgs)-loose > maxBatch {
		return 0, domain.Errorf(domain.ErrTooMany, "one request may change at most %d records", maxBatch)
	}
	v, err := s.appendMsgs(ctx, msgs[:maxBatch], claims)
	if err != nil {
		return 0, err
	}
	for rest := range slices.Chunk(msgs[maxBatch:], maxBatch) {
		next, err := s.appendMsgs(ctx, rest, nil)
		if err != nil {
			return 0, fmt.Errorf("eventstore: append the rest of a batch stored up to %d: %w", v, err)
		}
		v = next
	}
	return v, nil
}

// appendMsgs stores msgs (at most maxBatch) as one atomic batch and returns the sequence of the
// last one. claims are the batch's claim records, to tell a lost race from a held value.
func (s *Store) appendMsgs(ctx context.Context, msgs []*nats.Msg, claims []claimCheck) (domain.Version, error) {
	if err := s.chain(ctx, msgs); err != nil {
		return 0, err
	}
	last := msgs[len(msgs)-1]
	lastID := last.Header.Get(hdrMsgID)
	seq, err := s.publish(ctx, msgs)
	if err == nil {
		s.rememberHashes(msgs, seq)
		return domain.Version(seq), nil
	}
	// An earlier attempt of this very batch may have been stored (a retry after a lost ack):
	// then the last subject's last message carries our id, or, if the aggregate moved on
	// since, the server refuses the batch as a duplicate (10201) and we find our message.
	if seq, ok := s.lastHasID(ctx, last.Subject, lastID); ok {
		return domain.Version(seq), nil
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstreamext.JSErrCodeBatchPublishDuplicateMsgID {
		if seq, ok := s.findID(ctx, last.Subject, lastID, 1); ok {
			return domain.Version(seq), nil
		}
		return 0, fmt.Errorf("eventstore: append: batch holds a message id already stored elsewhere: %w", err)
	}
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == codeWrongLastSeq || apiErr.ErrorCode == codeWrongLastSeqConst) {
		// On R1 a single publish checks the expectation before de-duplication: a retry of a
		// message that was stored finds it after the sequence it expected.
		if len(msgs) == 1 {
			var from uint64
			fmt.Sscan(last.Header.Get(jetstream.ExpectedLastSubjSeqHeader), &from)
			if seq, ok := s.findID(ctx, last.Subject, lastID, from+1); ok {
				return domain.Version(seq), nil
			}
		}
		for _, c := range claims {
			if holder, _, _ := s.claimHolder(ctx, c.subject); holder != "" && holder != c.holder && !c.release {
				return 0, fmt.Errorf("eventstore: append: %w", domain.ErrUniqueness)
			}
		}
		return 0, fmt.Errorf("eventstore: append: %w", domain.ErrConflict)
	}
	return 0, fmt.Errorf("eventstore: append %d messages: %w", len(msgs), err)
}

// guardMsg returns the index record that makes a batch fail unless the tenant subject is
// still at version v: it asserts another subject's last sequence
// (Nats-Expected-Last-Subject-Sequence-Subject), which a message may do for any subject.
func guardMsg(tenant domain.TenantID, v domain.Version) *nats.Msg {
	m := nats.NewMsg("idl." + string(tenant) + "." + guardKind)
	m.Data = []byte("{}")
	m.Header.Set(hdrMsgID, nuid.Next())
	m.Header.Set(hdrType, typeGuard)
	m.Header.Set(hdrSchema, "1")
	m.Header.Set(hdrTenant, string(tenant))
	m.Header.Set(hdrAggregate, guardKind+":"+string(tenant))
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, fmt.Sprint(uint64(v)))
	m.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, subject(tenant, domain.KindTenant, ""))
	return m
}

type claimCheck struct {
	subject string
	holder  string
	release bool
}

// uniqueMsg returns the claim or release record for u, or nil if nothing needs writing (the
// holder already holds the value, or releases a value it does not hold).
func (s *Store) uniqueMsg(ctx context.Context, tenant domain.TenantID, u domain.UniqueOp) (*nats.Msg, claimCheck, error) {
	key, err := s.claimKey(ctx, tenant, u.Field, u.Value)
	if err != nil {
		return nil, claimCheck{}, err
	}
	kind, ok := claimKinds[u.Field]
	if !ok {
		return nil, claimCheck{}, fmt.Errorf("eventstore: no claim subject for field %q", u.Field)
	}
	subj := "idl." + string(tenant) + "." + kind + "." + key
	holder, seq, err := s.claimHolder(ctx, subj)
	if err != nil {
		return nil, claimCheck{}, err
	}
	typ := typeClaimed
	switch {
	case u.Release && holder != u.Holder:
		return nil, claimCheck{}, nil
	case u.Release:
		typ = typeReleased
	case holder == u.Holder:
		return nil, claimCheck{}, nil
	case holder != "":
		return nil, claimCheck{}, fmt.Errorf("eventstore: claim %s: %w", u.Field, domain.ErrUniqueness)
	}
	body, _ := json.Marshal(claimPayload{Holder: u.Holder})
	m := nats.NewMsg(subj)
	m.Data = body
	m.Header.Set(hdrMsgID, nuid.Next())
	m.Header.Set(hdrType, typ)
	m.Header.Set(hdrSchema, "1")
	m.Header.Set(hdrTenant, string(tenant))
	m.Header.Set(hdrAggregate, kind+":"+key)
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, fmt.Sprint(seq))
	return m, claimCheck{subject: subj, holder: u.Holder, release: u.Release}, nil
}

// claimHolder returns who holds a claim subject ("" if never claimed or released) and the
// subject's last sequence.
func (s *Store) claimHolder(ctx context.Context, subj string) (string, uint64, error) {
	msg, err := s.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("eventstore: read claim: %w", err)
	}
	if msg.Header.Get(hdrType) != typeClaimed {
		return "", msg.Sequence, nil
	}
	var p claimPayload
	if err := json.Unmarshal(msg.Data, &p); err != nil {
		return "", 0, fmt.Errorf("eventstore: claim at seq %d: %w", msg.Sequence, err)
	}
	return p.Holder, msg.Sequence, nil
}

// lastHasID reports whether the last message on subj has the given Nats-Msg-Id, and its
// sequence.
func (s *Store) lastHasID(ctx context.Context, subj, id string) (uint64, bool) {
	msg, err := s.stream.GetLastMsgForSubject(ctx, subj)
	if err != nil || msg.Header.Get(hdrMsgID) != id {
		return 0, false
	}
	return msg.Sequence, true
}

// findID scans a subject for the message with the given Nats-Msg-Id and returns its
// sequence. It is only used to resolve the rare retry of a batch that was already stored.
func (s *Store) findID(ctx context.Context, subj, id string, from uint64) (uint64, bool) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	next := max(from, 1)
	for {
		msgs, err := jetstreamext.GetBatch(ctx, s.js, StreamName, loadBatch,
			jetstreamext.GetBatchSeq(next), jetstreamext.GetBatchSubject(subj))
		if err != nil {
			return 0, false
		}
		n := 0
		for m, err := range msgs {
			if err != nil {
				return 0, false
			}
			if m.Header.Get(hdrMsgID) == id {
				return m.Sequence, true
			}
			next = m.Sequence + 1
			n++
		}
		if n == 0 {
			return 0, false
		}
	}
}

// claimKey returns base32(HMAC-SHA256(tenant key, field ":" value))[:26], so that subjects
// never carry a userName (docs/event-model.md §2.1).
func (s *Store) claimKey(ctx context.Context, tenant domain.TenantID, field, value string) (string, error) {
	secret, err := s.tenantSecret(ctx, tenant)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(field + ":" + value))
	enc := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(mac.Sum(nil))
	return strings.ToLower(enc[:26]), nil
}

// tenantSecret returns the tenant's claim key from IDL_KEYS, creating it on first use.
func (s *Store) tenantSecret(ctx context.Context, tenant domain.TenantID) ([]byte, error) {
	s.mu.Lock()
	k, ok := s.claimSecret[string(tenant)]
	s.mu.Unlock()
	if ok {
		return k, nil
	}
	k, err := s.loadTenantSecret(ctx, "claim."+string(tenant))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.claimSecret[string(tenant)] = k
	s.mu.Unlock()
	return k, nil
}

// loadTenantSecret reads a company's claim key from IDL_KEYS, creating it on first use. The
// bucket's reads may be served by a replica that has not seen a key created a moment ago (on
// another instance, or by this one): a key this call creates is used as created, and a key
// another writer created first is read again until a replica has it.
func (s *Store) loadTenantSecret(ctx context.Context, name string) ([]byte, error) {
	entry, err := s.keys.Get(ctx, name)
	if err == nil {
		return entry.Value(), nil
	}
	if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("eventstore: tenant key: %w", err)
	}
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("eventstore: tenant key: %w", err)
	}
	_, err = s.keys.Create(ctx, name, fresh)
	if err == nil {
		return fresh, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("eventstore: create tenant key: %w", err)
	}
	for wait := 5 * time.Millisecond; ; wait *= 2 {
		entry, err := s.keys.Get(ctx, name)
		if err == nil {
			return entry.Value(), nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) || wait > time.Second {
			return nil, fmt.Errorf("eventstore: tenant key: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("eventstore: tenant key: %w", ctx.Err())
		case <-time.After(wait):
		}
	}
}
