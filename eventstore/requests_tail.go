package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
)

// The reads below let the audit fold a company's request records incrementally (the records
// since the last fold, the failed ones by position, the oldest kept) instead of rereading a
// whole sync cycle's (domain/audit/cycles_fold.go).

// RequestsAfter calls fn with a company's records after stream position seq, in order, until
// fn returns false. It implements [audit.RequestLog].
func (s *Store) RequestsAfter(ctx context.Context, tenant domain.TenantID, seq uint64, fn func(audit.RequestRecord) bool) error {
	if !validToken(string(tenant)) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second) // records may expire while they are read
	defer cancel()
	subj, last, err := s.lastRecord(ctx, tenant)
	if err != nil || last <= seq {
		return err
	}
	return s.each(ctx, RequestStreamName, subj, seq+1, last, func(m jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
		r, err := decodeRecord(m.Data(), md.Sequence.Stream)
		if err != nil {
			return false, err
		}
		return fn(r), nil
	})
}

// lastRecord returns the subject of a company's records and the stream position of its last
// one (0 if it has none), once the records this process has sent are stored.
func (s *Store) lastRecord(ctx context.Context, tenant domain.TenantID) (subj string, last uint64, err error) {
	s.recordStream().flush(ctx)
	subj = requestSubject(tenant)
	m, err := s.requests.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return subj, 0, nil
	}
	if err != nil {
		return subj, 0, fmt.Errorf("eventstore: requests: %w", err)
	}
	return subj, m.Sequence, nil
}

// RequestsAt calls fn with a company's records at the given stream positions that are still
// kept, in order, until fn returns false. It implements [audit.RequestLog].
func (s *Store) RequestsAt(ctx context.Context, tenant domain.TenantID, seqs []uint64, fn func(audit.RequestRecord) bool) error {
	if !validToken(string(tenant)) {
		return nil
	}
	subj := requestSubject(tenant)
	for _, seq := range seqs {
		m, err := s.requests.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // expired or erased
		}
		if err != nil {
			return fmt.Errorf("eventstore: request at %d: %w", seq, err)
		}
		if m.Subject != subj {
			continue
		}
		r, err := decodeRecord(m.Data, m.Sequence)
		if err != nil {
			return err
		}
		if !fn(r) {
			return nil
		}
	}
	return nil
}

// OldestRequest returns the stream position of a company's oldest kept record, 0 if it has
// none. It implements [audit.RequestLog].
func (s *Store) OldestRequest(ctx context.Context, tenant domain.TenantID) (uint64, error) {
	if !validToken(string(tenant)) {
		return 0, nil
	}
	m, err := s.requests.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(requestSubject(tenant)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("eventstore: oldest request: %w", err)
	}
	return m.Sequence, nil
}

// CountRequests returns how many records of a company are kept. It implements
// [audit.RequestLog].
func (s *Store) CountRequests(ctx context.Context, tenant domain.TenantID) (int, error) {
	if !validToken(string(tenant)) {
		return 0, nil
	}
	subj := requestSubject(tenant)
	info, err := s.requests.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return 0, fmt.Errorf("eventstore: count requests: %w", err)
	}
	return int(info.State.Subjects[subj]), nil
}
