package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/idledger/idledger/domain"
)

// loadBatch is how many messages one direct-get batch request returns.
const loadBatch = 512

// syncQueue sizes the channel of each synchronous subscription. A batched direct get
// (jetstreamext.GetBatch, at most loadBatch replies) subscribes synchronously once per call,
// and nats.go's default channel of 65,536 pointers is half a megabyte per call: under an
// incremental cycle or asOf queries that garbage alone drove the heap to gigabytes. Four batches
// of room keeps a slow reader from ever dropping a reply.
func syncQueue(o *nats.Options) error { return nats.SyncQueueLen(4 * loadBatch)(o) }

// Load returns one aggregate's events in order and its version (the sequence of its last
// message), reading only that aggregate's subject with direct gets.
func (s *Store) Load(ctx context.Context, tenant domain.TenantID, kind domain.Kind, id string) ([]domain.Event, domain.Version, error) {
	if !validToken(string(tenant)) || (kind != domain.KindTenant && !validToken(id)) {
		return nil, 0, nil
	}
	if err := s.connected(); err != nil {
		return nil, 0, err
	}
	subj := subject(tenant, kind, id)
	last, err := s.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, unavailable(fmt.Errorf("eventstore: load %s: %w", subj, err))
	}
	// Batched direct gets end silently when their deadline passes (orbit's RequestMany), so
	// give them a generous one and treat a short read as an error, never as the history.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var events []domain.Event
	next := uint64(1)
	for next <= last.Sequence {
		msgs, err := jetstreamext.GetBatch(ctx, s.js, StreamName, loadBatch,
			jetstreamext.GetBatchSeq(next), jetstreamext.GetBatchSubject(subj))
		if err != nil {
			return nil, 0, unavailable(fmt.Errorf("eventstore: load %s: %w", subj, err))
		}
		n := 0
		for m, err := range msgs {
			if err != nil {
				return nil, 0, unavailable(fmt.Errorf("eventstore: load %s: %w", subj, err))
			}
			if m.Sequence > last.Sequence {
				break
			}
			e, err := s.decodeOpen(ctx, m.Subject, m.Header, m.Data, m.Sequence, m.Time)
			if err != nil {
				return nil, 0, err
			}
			events = append(events, e)
			next = m.Sequence + 1
			n++
		}
		if n == 0 {
			return nil, 0, unavailable(fmt.Errorf("eventstore: load %s: incomplete read (through seq %d of %d): %w",
				subj, next-1, last.Sequence, context.DeadlineExceeded))
		}
	}
	return events, domain.Version(last.Sequence), nil
}

// Version returns the sequence of an aggregate's last message (0 if none) with one direct get.
func (s *Store) Version(ctx context.Context, tenant domain.TenantID, kind domain.Kind, id string) (domain.Version, error) {
	if !validToken(string(tenant)) || (kind != domain.KindTenant && !validToken(id)) {
		return 0, nil
	}
	if err := s.connected(); err != nil {
		return 0, err
	}
	subj := subject(tenant, kind, id)
	last, err := s.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable(fmt.Errorf("eventstore: version of %s: %w", subj, err))
	}
	return domain.Version(last.Sequence), nil
}

// Subscribe delivers every message after the given sequence through an ordered consumer.
// Errors that mean the log could not be reached, from Subscribe or from Next, wrap
// domain.ErrUnavailable: subscribing again from the last position applied is safe. Any other
// error from Next is about the event at the next position (it cannot be decoded).
func (s *Store) Subscribe(ctx context.Context, after domain.Version) (domain.Subscription, error) {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if after > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = uint64(after) + 1
	}
	if err := s.connected(); err != nil {
		return nil, err
	}
	cons, err := s.js.OrderedConsumer(ctx, StreamName, cfg)
	if err != nil {
		return nil, unavailable(fmt.Errorf("eventstore: subscribe: %w", err))
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return nil, unavailable(fmt.Errorf("eventstore: subscribe: %w", err))
	}
	sub := &subscription{it: it, store: s, ch: make(chan item, 1024), done: make(chan struct{})}
	go sub.pump()
	s.endOnReload(sub) // storage.go
	return sub, nil
}

type item struct {
	e   domain.Event
	err error
}

// subscription turns the ordered consumer's blocking iterator into batches.
type subscription struct {
	it     jetstream.MessagesContext
	store  *Store
	ch     chan item
	done   chan struct{}
	failed error // set once the stream of events has ended; returned by every later Next
}

func (s *subscription) pump() {
	defer close(s.ch)
	for {
		m, err := s.it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return
		}
		var it item
		if err != nil {
			// The consumer itself failed (connection lost, consumer gone), not an event: the
			// reader may subscribe again from its position.
			it.err = fmt.Errorf("%w: eventstore: subscription: %w", domain.ErrUnavailable, err)
		} else if md, merr := m.Metadata(); merr != nil {
			it.err = fmt.Errorf("eventstore: subscription metadata: %w", merr)
		} else {
			it.e, it.err = s.store.decodeOpen(context.Background(), m.Subject(), m.Headers(), m.Data(), md.Sequence.Stream, md.Timestamp)
		}
		select {
		case s.ch <- it:
		case <-s.done:
			return
		}
		if it.err != nil {
			return
		}
	}
}

// Next blocks for the first event, then adds those already buffered, up to max. A message
// that cannot be decoded ends the batch before it and is returned as the error of the next call.
func (s *subscription) Next(ctx context.Context, max int) ([]domain.Event, error) {
	if s.failed != nil {
		return nil, s.failed
	}
	var out []domain.Event
	for len(out) < max {
		var it item
		var ok bool
		if len(out) == 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case it, ok = <-s.ch:
			}
		} else {
			select {
			case it, ok = <-s.ch:
			default:
				return out, nil
			}
		}
		if !ok {
			s.failed = fmt.Errorf("%w: eventstore: subscription closed", domain.ErrUnavailable)
			break
		}
		if it.err != nil {
			s.failed = it.err
			break
		}
		out = append(out, it.e)
	}
	if len(out) == 0 {
		return nil, s.failed
	}
	return out, nil
}

// Close stops the consumer.
func (s *subscription) Close() error {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.it.Stop()
	return nil
}
