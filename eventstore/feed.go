package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
)

// Reads for the change feed (docs/events.md): a company's messages from a position on, for the
// events API, the live stream's catch-up and webhook replays.

// ReadCompany calls fn with a company's messages (events and index records) after position
// after, in log order, until fn returns false, limit messages (all if limit <= 0) were passed, or
// the messages the company had when the read started were passed. It reads with an ordered
// consumer filtered on the company's subjects that starts at after+1 and pulls about as many
// messages as it may pass: a page costs reads of its own messages only, wherever it is in the
// log, and the consumer's pending count at its creation says where the company's log ends (a
// look-up of the company's last position would walk every subject of the company). It returns
// the position of the last message passed to fn (after if none) and whether the company had
// more messages after it when the read started.
func (s *Store) ReadCompany(ctx context.Context, tenant domain.TenantID, after domain.Version, limit int,
	fn func(domain.Event) bool) (last domain.Version, more bool, err error) {
	last = after
	if !validToken(string(tenant)) {
		return last, false, nil
	}
	if err := s.connected(); err != nil {
		return last, false, err
	}
	filter := tenantFilter(tenant)
	pull := 2048
	if limit > 0 {
		pull = min(pull, max(limit, 64))
	}
	cons, err := s.js.OrderedConsumer(ctx, StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    uint64(after) + 1,
	})
	if err != nil {
		return last, false, unavailable(fmt.Errorf("eventstore: read %s: %w", filter, err))
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(pull))
	if err != nil {
		return last, false, unavailable(fmt.Errorf("eventstore: read %s: %w", filter, err))
	}
	defer it.Stop()
	info := cons.CachedInfo()
	if info == nil {
		return last, false, unavailable(fmt.Errorf("eventstore: read %s: the consumer's pending count is unknown", filter))
	}
	pending := info.NumPending // the company's messages after `after` when the read started
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for passed := uint64(0); passed < pending; {
		if limit > 0 && passed == uint64(limit) {
			return last, true, nil
		}
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return last, false, unavailable(fmt.Errorf("eventstore: read %s: %w", filter, err))
		}
		md, err := m.Metadata()
		if err != nil {
			return last, false, unavailable(fmt.Errorf("eventstore: read %s: %w", filter, err))
		}
		e, err := s.decodeOpen(ctx, m.Subject(), m.Headers(), m.Data(), md.Sequence.Stream, md.Timestamp)
		if err != nil {
			return last, false, err
		}
		last = e.Version
		passed++
		if !fn(e) {
			return last, passed < pending, nil
		}
	}
	return last, false, nil
}

// CompanyEvent returns the message at position seq if it belongs to the company, and an error
// wrapping domain.ErrNotFound if there is none or it is another company's.
func (s *Store) CompanyEvent(ctx context.Context, tenant domain.TenantID, seq domain.Version) (domain.Event, error) {
	if !validToken(string(tenant)) || seq == 0 {
		return domain.Event{}, domain.Errorf(domain.ErrNotFound, "no such event")
	}
	if err := s.connected(); err != nil {
		return domain.Event{}, err
	}
	m, err := s.stream.GetMsg(ctx, uint64(seq))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return domain.Event{}, domain.Errorf(domain.ErrNotFound, "no such event")
	}
	if err != nil {
		return domain.Event{}, unavailable(fmt.Errorf("eventstore: get %d: %w", seq, err))
	}
	if !strings.HasPrefix(m.Subject, "idl."+string(tenant)+".") {
		return domain.Event{}, domain.Errorf(domain.ErrNotFound, "no such event")
	}
	return s.decodeOpen(ctx, m.Subject, m.Header, m.Data, m.Sequence, m.Time)
}
