package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
)

// SCIM request records (audit.RequestRecord) live in a stream of their own, IDL_REQUESTS,
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
// # Asynchronous recording
//
// RecordRequest does not wait for the stream's acknowledgement: it publishes the record
// asynchronously (its own JetStream context, at most maxPendingRecords unacknowledged, a
// publish beyond that stalls for up to 200 ms and then fails) and returns, so a SCIM
// request pays for encoding and sending its record, not for a round trip through the server.
// A record the stream refuses or does not acknowledge within recordAckTimeout is logged as
// lost, as a failed synchronous publish was. The readers of records (LastRequest, Requests)
// first wait until every record published before them is settled, so a record is visible to
// them as soon as the request it describes has been answered.
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

	// maxPendingRecords bounds the records published and not yet acknowledged. With that many
	// in flight, RecordRequest waits for a free slot for up to the client's stall wait (200
	// ms) and then gives up on the record.
	maxPendingRecords = 4096
	// recordAckTimeout is how long a published record may wait for its acknowledgement before
	// it is counted (and logged) as lost.
	recordAckTimeout = 10 * time.Second
	// maxRecordFlushWait bounds how long a reader of records waits for pending ones.
	maxRecordFlushWait = 5 * time.Second
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

// requestStream is IDL_REQUESTS (it is what Store.requests holds) together with the JetStream
// context that publishes its records asynchronously and the count of records in flight.
//
// It lives here, wrapped around the stream handle, so that everything about request records
// stays in this file; it would sit as well in fields of Store.
type requestStream struct {
	jetstream.Stream
	js  jetstream.JetStream // asynchronous publisher of records only (its own pending window)
	log *slog.Logger

	sent    atomic.Uint64 // records handed to the publisher
	settled atomic.Uint64 // of those, acknowledged or failed
	waiters atomic.Int32  // readers waiting in flush

	mu      sync.Mutex    // guards changed
	changed chan struct{} // closed (and replaced) when a record settles while readers wait
}

// ensureRequests creates IDL_REQUESTS, or brings an existing one to the configured retention:
// unlike the event log, its settings may change.
func (s *Store) ensureRequests(ctx context.Context) error {
	st, err := s.js.CreateOrUpdateStream(ctx, s.requestStreamConfig())
	if err != nil {
		return fmt.Errorf("eventstore: create stream %s: %w", RequestStreamName, err)
	}
	rs := &requestStream{Stream: st, log: s.log, changed: make(chan struct{})}
	rs.js, err = jetstream.New(s.nc,
		jetstream.WithPublishAsyncMaxPending(maxPendingRecords),
		jetstream.WithPublishAsyncTimeout(recordAckTimeout),
		jetstream.WithPublishAsyncAckHandler(func(jetstream.JetStream, *nats.Msg, *jetstream.PubAck) { rs.settle() }),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			rs.log.Warn("request record lost", "subject", m.Subject, "err", err)
			rs.settle()
			s.recordLost() // storage.go: a full disk may have left IDL_REQUESTS a write error
		}))
	if err != nil {
		return fmt.Errorf("eventstore: request records: %w", err)
	}
	s.requests = rs
	return nil
}

// settle counts one record acknowledged or lost and wakes the readers waiting for it.
func (rs *requestStream) settle() {
	rs.settled.Add(1)
	if rs.waiters.Load() > 0 {
		rs.mu.Lock()
		close(rs.changed)
		rs.changed = make(chan struct{})
		rs.mu.Unlock()
	}
}

// flush waits until every record published before it was called has been acknowledged or
// lost, ctx ends or maxRecordFlushWait passes; a reader then reads what the stream has.
func (rs *requestStream) flush(ctx context.Context) {
	if rs == nil {
		return
	}
	target := rs.sent.Load()
	if rs.settled.Load() >= target {
		return
	}
	rs.waiters.Add(1)
	defer rs.waiters.Add(-1)
	timer := time.NewTimer(maxRecordFlushWait)
	defer timer.Stop()
	for {
		rs.mu.Lock()
		ch := rs.changed
		rs.mu.Unlock()
		if rs.settled.Load() >= target {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		case <-timer.C:
			rs.log.Warn("request records: reading before earlier records were acknowledged",
				"pending", target-rs.settled.Load())
			return
		}
	}
}

// FlushRequests waits until every request record sent so far has been stored (or given up
// as lost), or ctx ends. Readers of records do it themselves, and Close does it (for at most
// 2 s), so that the records of the last requests are not left in the embedded server's queue
// when it shuts down.
func (s *Store) FlushRequests(ctx context.Context) error {
	s.recordStream().flush(ctx)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("eventstore: flush request records: %w", err)
	}
	return nil
}

// recordStream returns the request-record stream; nil for a Store that Open did not set up.
func (s *Store) recordStream() *requestStream {
	rs, _ := s.requests.(*requestStream)
	return rs
}

// RecordRequest stores one request record. It implements [audit.RequestLog].
//
// It returns once the record is sent, before the stream acknowledges it (see "Asynchronous
// recording" above); an error means the record was not sent. A record the stream then refuses
// is logged. Records read afterwards through this Store include it.
func (s *Store) RecordRequest(ctx context.Context, r audit.RequestRecord) error {
	if !validToken(string(r.Tenant)) {
		return fmt.Errorf("eventstore: record request: invalid tenant %q", r.Tenant)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("eventstore: record request: %w", err)
	}
	r.Seq = 0
	body, err := encodeRecord(r)
	if err != nil {
		return fmt.Errorf("eventstore: record request: %w", err)
	}
	// The header is WithExpectStream's, set here: publish options cost more than the header.
	m := &nats.Msg{Subject: requestSubject(r.Tenant), Data: body,
		Header: nats.Header{jetstream.ExpectedStreamHeader: []string{RequestStreamName}}}
	rs := s.recordStream()
	if rs == nil {
		return fmt.Errorf("eventstore: record request: %w", domain.ErrUnavailable)
	}
	// Records respect the log's reserve of free space (storage.go): they must not use it up.
	if err := s.roomToAppend(); err != nil {
		return fmt.Errorf("eventstore: record request: %w", err)
	}
	// Counted before the publish: a flush that starts now waits for this record too. An ack
	// cannot overtake the count, and a record that is not sent is settled at once.
	rs.sent.Add(1)
	if _, err := rs.js.PublishMsgAsync(m); err != nil {
		rs.settle()
		return fmt.Errorf("eventstore: record request: %w", err)
	}
	return nil
}

// LastRequest returns a company's most recent request record, or an error wrapping
// domain.ErrNotFound if it has none (or they all expired).
func (s *Store) LastRequest(ctx context.Context, tenant domain.TenantID) (audit.RequestRecord, error) {
	if !validToken(string(tenant)) {
		return audit.RequestRecord{}, fmt.Errorf("eventstore: no request records: %w", domain.ErrNotFound)
	}
	s.recordStream().flush(ctx)
	m, err := s.requests.GetLastMsgForSubject(ctx, requestSubject(tenant))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return audit.RequestRecord{}, fmt.Errorf("eventstore: no request records: %w", domain.ErrNotFound)
	}
	if err != nil {
		return audit.RequestRecord{}, fmt.Errorf("eventstore: last request: %w", err)
	}
	return decodeRecord(m.Data, m.Sequence)
}

// encodeRecord returns r as JSON: the fields json.Marshal writes, in its order, decoding to the
// same record. Recording is on every SCIM request's path, so the common case (no Seq, a UTC
// time of years 0–9999) is written by hand; TestRequests_RecordEncoding checks it against
// json.Marshal on every field of audit.RequestRecord.
func encodeRecord(r audit.RequestRecord) ([]byte, error) {
	if r.Seq != 0 || r.At.Location() != time.UTC || r.At.Year() < 0 || r.At.Year() > 9999 ||
		math.IsNaN(r.Millis) || math.IsInf(r.Millis, 0) {
		return json.Marshal(r)
	}
	b := make([]byte, 0, 512)
	b = append(b, `{"tenant":`...)
	b = appendJSONString(b, string(r.Tenant))
	b = append(b, `,"at":"`...)
	b = r.At.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if r.Cycle != 0 {
		b = append(b, `,"cycle":`...)
		b = strconv.AppendInt(b, int64(r.Cycle), 10)
	}
	b = appendJSONField(b, "method", r.Method, false)
	b = appendJSONField(b, "route", r.Route, true)
	b = appendJSONField(b, "path", r.Path, false)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = appendJSONField(b, "scimType", r.SCIMType, true)
	b = appendJSONField(b, "detail", r.Detail, true)
	b = appendJSONField(b, "requestId", r.RequestID, false)
	b = appendJSONField(b, "actor", r.Actor, false)
	b = appendJSONField(b, "userAgent", r.UserAgent, true)
	b = appendJSONField(b, "source", r.Source, true)
	b = append(b, `,"durationMs":`...)
	// encoding/json's float64 form: %f, or %e (with a one-digit negative exponent) outside
	// [1e-6, 1e21).
	format := byte('f')
	if abs := math.Abs(r.Millis); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, r.Millis, format, -1, 64)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return append(b, '}'), nil
}

// appendJSONField appends ,"name":"value", or nothing for an empty value if omitEmpty.
func appendJSONField(b []byte, name, value string, omitEmpty bool) []byte {
	if omitEmpty && value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendJSONString(b, value)
}

func decodeRecord(data []byte, seq uint64) (audit.RequestRecord, error) {
	var r audit.RequestRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("eventstore: request record at seq %d: %w", seq, err)
	}
	r.Seq = seq
	return r, nil
}

// Requests calls fn with a company's records of sync cycles from..through (through 0: no upper
// bound), in order, until fn returns false. Records are appended in cycle order, so it finds
// the first record of cycle from by bisecting the company's subject with direct gets and reads
// on from there. It implements [audit.RequestLog].
func (s *Store) Requests(ctx context.Context, tenant domain.TenantID, from, through int, fn func(audit.RequestRecord) bool) error {
	if !validToken(string(tenant)) {
		return nil
	}
	// Records may expire while they are read: never wait for one for ever.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	subj, last, err := s.lastRecord(ctx, tenant)
	if err != nil || last == 0 {
		return err
	}
	start, err := s.firstRecordOfCycle(ctx, subj, from, last)
	if err != nil || start > last {
		return err
	}
	return s.each(ctx, RequestStreamName, subj, start, last, func(m jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
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
