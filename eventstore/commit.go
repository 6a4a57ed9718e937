package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// Group commit. With fsync before every acknowledgement, one publish costs one fsync however
// many requests wait, so concurrency does not raise throughput (docs/event-model.md §3.2). The
// committer therefore gathers the batches of concurrent Append calls and publishes them as one
// atomic batch: one fsync acknowledges them all. Batches that touch a common subject are never
// combined (a batch may check a subject's sequence only before writing to it), so each combined
// batch is exactly the requests' own batches side by side. If a combined batch fails (one
// request lost a race), every request is published again on its own, so one conflict never
// fails another request.

// commitReq is one Append's messages waiting for the committer.
type commitReq struct {
	msgs []*nats.Msg
	done chan commitRes
}

type commitRes struct {
	seq uint64
	err error
}

// commitWindow bounds how many messages one combined batch carries (the server allows 1000).
const commitWindow = maxBatch

// minCombined is the smallest number of messages worth an atomic batch: the server stages a
// batch at a fixed cost of a few milliseconds, while a plain publish costs one fsync (~0.3 ms
// here), so a handful of requests are published side by side instead.
const minCombined = 12

// committers is how many groups may be in flight at once: while one waits for its fsync,
// the next gathers and stages, so latency (and so throughput at a given concurrency) improves.
const committers = 2

// publish hands msgs to the committer and waits for their last sequence.
func (s *Store) publish(ctx context.Context, msgs []*nats.Msg) (uint64, error) {
	req := commitReq{msgs: msgs, done: make(chan commitRes, 1)}
	select {
	case s.commits <- req:
	case <-s.closed:
		return 0, fmt.Errorf("eventstore: %w", nats.ErrConnectionClosed)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case r := <-req.done:
		return r.seq, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// committer runs until the store closes, publishing waiting requests in combined batches.
// Several run at once (committers); Close waits for all of them.
func (s *Store) committer() {
	defer s.committerWG.Done()
	var held []commitReq // requests deferred to the next round (subject overlap or size)
	for {
		var first commitReq
		if len(held) > 0 {
			first, held = held[0], held[1:]
		} else {
			select {
			case first = <-s.commits:
			case <-s.closed:
				return
			}
		}
		group := []commitReq{first}
		subjects := subjectsOf(first.msgs, nil)
		n := len(first.msgs)
		// Take what is already waiting, without waiting for more: a lone request is never
		// delayed.
		var rest []commitReq
		for _, r := range held {
			if fits(r, subjects, n) {
				group = append(group, r)
				subjects = subjectsOf(r.msgs, subjects)
				n += len(r.msgs)
			} else {
				rest = append(rest, r)
			}
		}
		held = rest
	drain:
		for n < commitWindow {
			select {
			case r := <-s.commits:
				if fits(r, subjects, n) {
					group = append(group, r)
					subjects = subjectsOf(r.msgs, subjects)
					n += len(r.msgs)
				} else {
					held = append(held, r)
				}
			default:
				break drain
			}
		}
		s.commitGroup(group)
	}
}

// fits reports whether r can join a combined batch holding subjects and n messages.
func fits(r commitReq, subjects map[string]bool, n int) bool {
	if n+len(r.msgs) > commitWindow {
		return false
	}
	for _, m := range r.msgs {
		if subjects[m.Subject] {
			return false
		}
	}
	return true
}

func subjectsOf(msgs []*nats.Msg, into map[string]bool) map[string]bool {
	if into == nil {
		into = make(map[string]bool, len(msgs))
	}
	for _, m := range msgs {
		into[m.Subject] = true
	}
	return into
}

// commitGroup publishes a group of requests, combined when there are several.
func (s *Store) commitGroup(group []commitReq) {
	total := 0
	for _, r := range group {
		total += len(r.msgs)
	}
	if len(group) == 1 || total < minCombined {
		s.publishEach(group)
		return
	}
	// A bounded wait: while a cluster elects a new leader a publish may get no answer, and a
	// committer must not hold every waiting request for long (they fall back, then fail fast
	// as unavailable). A combined batch that did land meanwhile is found again by its message
	// ids when the requests are published on their own.
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	{
		var all []*nats.Msg
		for _, r := range group {
			all = append(all, r.msgs...)
		}
		ack, err := jetstreamext.PublishMsgBatch(ctx, s.js, all)
		if err == nil {
			// Sequences of an atomic batch are consecutive: walk back from the last one.
			seq := ack.Sequence
			for i := len(group) - 1; i >= 0; i-- {
				group[i].done <- commitRes{seq: seq}
				seq -= uint64(len(group[i].msgs))
			}
			return
		}
		for _, m := range all {
			clearBatchHeaders(m)
		}
	}
	s.publishEach(group)
}

// commitTimeout bounds one publish of the committer.
const commitTimeout = 5 * time.Second

// publishEach publishes each request of a group on its own, side by side (their subjects are
// distinct), each within commitTimeout.
func (s *Store) publishEach(group []commitReq) {
	var wg sync.WaitGroup
	for _, r := range group {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
			defer cancel()
			seq, err := s.publishOne(ctx, r.msgs)
			r.done <- commitRes{seq: seq, err: err}
		}()
	}
	wg.Wait()
}

// publishOne publishes one request's messages: a plain publish for one message (atomic, and
// it skips the server's batch staging), an atomic batch for several.
func (s *Store) publishOne(ctx context.Context, msgs []*nats.Msg) (uint64, error) {
	if len(msgs) == 1 {
		ack, err := s.js.PublishMsg(ctx, msgs[0])
		if err != nil {
			return 0, err
		}
		return ack.Sequence, nil
	}
	// The server keeps at most 50 atomic batches open per stream: take a slot, and treat "too
	// many in flight" (other processes share the limit) as a reason to try again shortly.
	select {
	case s.batchSlots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-s.batchSlots }()
	for attempt := 0; ; attempt++ {
		ack, err := jetstreamext.PublishMsgBatch(ctx, s.js, msgs)
		for _, m := range msgs {
			clearBatchHeaders(m)
		}
		var apiErr *jetstream.APIError
		if err != nil && attempt < 8 && errors.As(err, &apiErr) &&
			(apiErr.ErrorCode == jetstreamext.JSErrCodeAtomicPublishTooManyInflight || apiErr.ErrorCode == jetstreamext.JSErrCodeBatchPublishTooManyInflight) {
			select {
			case <-time.After(time.Duration(5<<attempt) * time.Millisecond):
				continue
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		if err != nil {
			return 0, err
		}
		return ack.Sequence, nil
	}
}

// maxOpenBatches bounds this process's atomic batches in flight (the server allows 50 per
// stream).
const maxOpenBatches = 16

// clearBatchHeaders removes the headers a batch publish added, so the message can be
// published again on its own.
func clearBatchHeaders(m *nats.Msg) {
	m.Header.Del(jetstreamext.BatchIDHeader)
	m.Header.Del(jetstreamext.BatchSeqHeader)
	m.Header.Del(jetstreamext.BatchCommitHeader)
	m.Reply = ""
}
