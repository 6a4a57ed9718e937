package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
)

// SCIM request records (domain.RequestRecord) live in a stream of their own, IDL_REQUESTS,
// one subject per company:
//
//	idlr.<tenant>    every SCIM request of the company's provisioning client, failed or not
//
// They have no effect on state and are not part of the event log: the log's sync-cycle
// markers number the cycles for good; the records add the request counts and the failures
// (the way Entra's own provisioning logs show them) for as long as they are kept.
//
// # Retention
//
// Records expire after 30 days (Config.RequestRetention), the oldest first, and a company keeps
// at most its last million of them; the whole stream is capped at 1 GiB (Config.RequestMaxBytes),
// again dropping the oldest. Why:
//
//   - They carry personal data that must not outlive its purpose: the client's address and,
//     in error details, userNames ("userName "ada@…" is already used"). 30 days is the GDPR
//     erasure deadline, so a record never outlives an erasure request, and unlike the event
//     log (which cannot forget anything) the stream needs no erasure machinery.
//   - 30 days is as long as Entra keeps its own provisioning logs (P1/P2), so idledger shows
//     at least what the other side of the connection shows, for the weeks in which failures
//     are investigated (Entra quarantines a job after days of failures and alerts on it).
//   - The caps keep a misbehaving client from filling the disk the event log shares: the log
//     refuses writes (DiscardNew) when storage runs out, the records give way (DiscardOld).
//     A million records is a 100k-user initial sync (3 requests per user) plus a month of
//     incremental cycles.
//   - Losing the last records in a power cut is acceptable, so a single-node stream acks before
//     it flushes (async persist mode) and recording adds microseconds, not an fsync, to a request.
//
// The stream allows deleting messages (unlike IDL_EVENTS), so a record may be erased early.
const (
	// RequestStreamName is the name of the request-record stream.
	RequestStreamName = "IDL_REQUESTS"
	// DefaultRequestRetention is how long request records are kept.
	DefaultRequestRetention = 30 * 24 * time.Hour
	// DefaultRequestMaxBytes caps the request-record stream.
	DefaultRequestMaxBytes = 1 << 30
	// requestsPerCompany caps one company's records.
	requestsPerCompany = 1_000_000
)

// requestSubject is a company's request-record subject.
func requestSubject(tenant domain.TenantID) string { return "idlr." + string(tenant) }

// requestStreamConfig is the configuration of IDL_REQUESTS.
func (s *Store) requestStreamConfig() jetstream.StreamConfig {
	retention := s.cfg.RequestRetention
	if retention <= 0 {
		retention = DefaultRequestRetention
	}
	maxBytes := s.cfg.RequestMaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultRequestMaxBytes
	}
	cfg := jetstream.StreamConfig{
		Name:              RequestStreamName,
		Description:       "idledger SCIM request records (expire; not part of the event log)",
		Subjects:          []string{"idlr.>"},
		Storage:           jetstream.FileStorage,
		Replicas:          s.cfg.Replicas,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxAge:            retention,
		MaxBytes:          maxBytes,
		MaxMsgs:           -1,
		MaxMsgsPerSubject: requestsPerCompany,
		Duplicates:        10 * time.Second,
		AllowDirect:       true,
	}
	if s.cfg.Replicas <= 1 {
		cfg.PersistMode = jetstream.AsyncPersistMode // not supported on replicated streams
	}
	return cfg
}

// ensureRequests creates IDL_REQUESTS, or brings an existing one to the configured retention:
// unlike the event log, its settings may change.
func (s *Store) ensureRequests(ctx context.Context) error {
	st, err := s.js.CreateOrUpdateStream(ctx, s.requestStreamConfig())
	if err != nil {
		return fmt.Errorf("eventstore: create stream %s: %w", RequestStreamName, err)
	}
	s.requests = st
	return nil
}

// RecordRequest stores one request record. It implements [domain.RequestLog].
func (s *Store) RecordRequest(ctx context.Context, r domain.RequestRecord) error {
	if !validToken(string(r.Tenant)) {
		return fmt.Errorf("eventstore: record request: invalid tenant %q", r.Tenant)
	}
	r.Seq = 0
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("eventstore: record request: %w", err)
	}
	m := nats.NewMsg(requestSubject(r.Tenant))
	m.Data = body
	if _, err := s.js.PublishMsg(ctx, m, jetstream.WithExpectStream(RequestStreamName)); err != nil {
		return fmt.Errorf("eventstore: record request: %w", err)
	}
	return nil
}

// LastRequest returns a company's most recent request record, or an error wrapping
// domain.ErrNotFound if it has none (or they all expired).
func (s *Store) LastRequest(ctx context.Context, tenant domain.TenantID) (domain.RequestRecord, error) {
	if !validToken(string(tenant)) {
		return domain.RequestRecord{}, fmt.Errorf("eventstore: no request records: %w", domain.ErrNotFound)
	}
	m, err := s.requests.GetLastMsgForSubject(ctx, requestSubject(tenant))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return domain.RequestRecord{}, fmt.Errorf("eventstore: no request records: %w", domain.ErrNotFound)
	}
	if err != nil {
		return domain.RequestRecord{}, fmt.Errorf("eventstore: last request: %w", err)
	}
	return decodeRecord(m.Data, m.Sequence)
}

func decodeRecord(data []byte, seq uint64) (domain.RequestRecord, error) {
	var r domain.RequestRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("eventstore: request record at seq %d: %w", seq, err)
	}
	r.Seq = seq
	return r, nil
}

// Requests calls fn with a company's records of sync cycles from..through (through 0: no upper
// bound), in order, until fn returns false. Records are appended in cycle order, so it finds
// the first record of cycle from by bisecting the company's subject with direct gets and reads
// on from there. It implements [domain.RequestLog].
func (s *Store) Requests(ctx context.Context, tenant domain.TenantID, from, through int, fn func(domain.RequestRecord) bool) error {
	if !validToken(string(tenant)) {
		return nil
	}
	// Records may expire while they are read: never wait for one for ever.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	subj := requestSubject(tenant)
	last, err := s.requests.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("eventstore: requests: %w", err)
	}
	start, err := s.firstRecordOfCycle(ctx, subj, from, last.Sequence)
	if err != nil || start > last.Sequence {
		return err
	}
	return s.each(ctx, RequestStreamName, subj, start, last.Sequence, func(m jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
		r, err := decodeRecord(m.Data(), md.Sequence.Stream)
		if err != nil {
			return false, err
		}
		if through > 0 && r.Cycle > through {
			return false, nil
		}
		if r.Cycle < from {
			return true, nil
		}
		return fn(r), nil
	})
}

// firstRecordOfCycle returns the smallest stream position p such that the first record of subj
// at or after p belongs to cycle n or a later one (last+1 if there is none).
func (s *Store) firstRecordOfCycle(ctx context.Context, subj string, n int, last uint64) (uint64, error) {
	lo, hi := uint64(1), last+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := s.requests.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			hi = mid
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("eventstore: requests: %w", err)
		}
		r, err := decodeRecord(m.Data, m.Sequence)
		if err != nil {
			return 0, err
		}
		if r.Cycle >= n {
			hi = mid
		} else {
			lo = m.Sequence + 1
		}
	}
	return lo, nil
}
