package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
)

// MigrateStats describe a finished MigrateEncrypt.
type MigrateStats struct {
	Messages, Sealed uint64
	LastSeq          uint64
}

// MigrateEncrypt copies the whole log of src into this store, which must be empty and have a
// master key: every message in the same order, with the same subjects, ids and headers, each
// personal value sealed under its person's new data key (a user's first event names it in
// Idl-Key), and the hash chain recomputed over the new bytes. The companies' claim keys are
// copied; the SCIM request records are not (they expire). Run it with both logs' servers
// stopped; afterwards the new data dir replaces the old one (README "Personal data").
func (s *Store) MigrateEncrypt(ctx context.Context, src *Store, progress func(done, total uint64)) (MigrateStats, error) {
	var st MigrateStats
	if s.kr.master == nil {
		return st, errors.New("eventstore: migrate: the new log needs a master key")
	}
	if n, err := s.Messages(ctx); err != nil {
		return st, err
	} else if n > 0 {
		return st, fmt.Errorf("eventstore: migrate: the new log already holds %d messages", n)
	}
	if err := s.copyClaimKeys(ctx, src); err != nil {
		return st, err
	}
	head, err := src.Head(ctx)
	if err != nil || head == 0 {
		return st, err
	}
	last := make(map[string]string)    // subject → hash of its last message in the new log
	newKeys := make(map[string]string) // tenant/user → key id
	var acks []jetstream.PubAckFuture
	wait := func() error {
		seq, err := awaitAcks(ctx, "migrate", acks)
		st.LastSeq = max(st.LastSeq, seq)
		acks = acks[:0]
		return err
	}
	err = src.each(ctx, StreamName, "idl.>", 1, uint64(head), func(m jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
		seq := md.Sequence.Stream
		if seq != st.Messages+1 {
			return false, fmt.Errorf("eventstore: migrate: the old log has a gap before seq %d", seq)
		}
		out := nats.NewMsg(m.Subject())
		for k, vs := range m.Headers() {
			if k == hdrHash || k == hdrPrev || (strings.HasPrefix(k, "Nats-") && k != hdrMsgID) {
				continue
			}
			out.Header[k] = append([]string(nil), vs...)
		}
		out.Data = m.Data()
		if out.Header.Get(hdrKey) != "" {
			return false, fmt.Errorf("eventstore: migrate: seq %d is already encrypted (Idl-Key): nothing to migrate", seq)
		}
		e, err := src.decodeOpen(ctx, m.Subject(), m.Headers(), m.Data(), seq, md.Timestamp)
		if err != nil {
			return false, fmt.Errorf("eventstore: migrate: %w", err)
		}
		if e.Data != nil && !isClaimKind(string(e.Kind)) {
			_, seen := last[m.Subject()]
			first := !seen && e.Kind == domain.KindUser && out.Header.Get(hdrKey) == ""
			if first || domain.HasPersonal(e) {
				if err := s.sealEvent(ctx, e, first, out, newKeys); err != nil {
					return false, fmt.Errorf("eventstore: migrate: seq %d: %w", seq, err)
				}
				st.Sealed++
			}
		}
		prev := last[m.Subject()]
		if m.Headers().Get(hdrPrev) == unlinked {
			prev = unlinked
		}
		if prev != "" {
			out.Header.Set(hdrPrev, prev)
		}
		h := contentHash(prev, out.Subject, out.Header, out.Data)
		out.Header.Set(hdrHash, h)
		last[out.Subject] = h
		f, err := s.js.PublishMsgAsync(out, jetstream.WithExpectLastSequence(seq-1))
		if err != nil {
			return false, fmt.Errorf("eventstore: migrate: publish seq %d: %w", seq, err)
		}
		acks = append(acks, f)
		st.Messages++
		if len(acks) == 1000 {
			if err := wait(); err != nil {
				return false, err
			}
			if progress != nil {
				progress(st.Messages, uint64(head))
			}
		}
		return true, nil
	})
	if err != nil {
		return st, err
	}
	if err := wait(); err != nil {
		return st, err
	}
	for ref, id := range newKeys {
		s.cacheUserKey(ref, id)
	}
	if progress != nil {
		progress(st.Messages, uint64(head))
	}
	return st, nil
}

// copyClaimKeys copies every company's claim key (IDL_KEYS) of src.
func (s *Store) copyClaimKeys(ctx context.Context, src *Store) error {
	lister, err := src.keys.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("eventstore: migrate: claim keys: %w", err)
	}
	defer lister.Stop()
	for name := range lister.Keys() {
		entry, err := src.keys.Get(ctx, name)
		if err != nil {
			return fmt.Errorf("eventstore: migrate: claim key %s: %w", name, err)
		}
		if _, err := s.keys.Put(ctx, name, entry.Value()); err != nil {
			return fmt.Errorf("eventstore: migrate: claim key %s: %w", name, err)
		}
	}
	return nil
}
