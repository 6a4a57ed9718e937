package eventstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Tamper evidence. Every message carries Idl-Hash, the SHA-256 of its content (subject, every
// Idl-* and Nats-Msg-Id header, body) and of Idl-Prev, the Idl-Hash of the message before it
// on the same subject. So each aggregate's events form a hash chain: a message changed,
// removed, re-ordered or slipped in without the chain breaks it, and `idledger audit verify`
// finds the first break. The chain is per aggregate (subject), not per company: the
// aggregate is the unit of optimistic concurrency, so its next message always knows its
// predecessor (the expected last sequence), and chains of different aggregates never contend.
//
// A message appended without an expectation on its own subject (a deleted user leaving its
// groups, sign-in records, guard records) is marked Idl-Prev "-": it is hashed but not
// linked, and the next linked message chains to it. The chain proves integrity and order; it
// is not a signature — a writer with publish rights on the stream and this algorithm could
// append a well-formed message, which is why the application's NATS user should be the only
// publisher (README) and the stream denies delete and purge.
const (
	hdrHash = "Idl-Hash"
	hdrPrev = "Idl-Prev"
	// unlinked is Idl-Prev of a message appended without knowing its predecessor.
	unlinked = "-"
)

// contentHash returns the chain hash of a message given its predecessor's hash.
func contentHash(prev, subject string, h nats.Header, data []byte) string {
	sum := sha256.New()
	sum.Write([]byte("idl-chain-v1\n" + prev + "\n" + subject + "\n"))
	var names []string
	for k := range h {
		if (strings.HasPrefix(k, "Idl-") && k != hdrHash && k != hdrPrev) || k == hdrMsgID {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		for _, v := range h[k] {
			sum.Write([]byte(k + ": " + v + "\n"))
		}
	}
	sum.Write([]byte("\n"))
	sum.Write(data)
	return hex.EncodeToString(sum.Sum(nil))
}

// chain sets Idl-Prev and Idl-Hash on a batch's messages in order. A message whose first
// appearance in the batch asserts its own subject's last sequence links to the message at
// that sequence; later messages of the same subject link to the one before them in the batch.
func (s *Store) chain(ctx context.Context, msgs []*nats.Msg) error {
	last := make(map[string]string) // subject → hash of the latest message in this batch
	for _, m := range msgs {
		prev, inBatch := last[m.Subject]
		switch {
		case inBatch:
		case m.Header.Get(jetstream.ExpectedLastSubjSeqSubjHeader) != "":
			prev = unlinked // asserts another subject (a guard record)
		case m.Header.Get(jetstream.ExpectedLastSubjSeqHeader) != "":
			seq := m.Header.Get(jetstream.ExpectedLastSubjSeqHeader)
			if seq != "0" {
				h, ok := s.cachedHash(seq)
				if !ok {
					var err error
					if h, err = s.hashAt(ctx, seq); err != nil {
						return err
					}
				}
				prev = h
			}
		default:
			prev = unlinked
		}
		if prev != "" {
			m.Header.Set(hdrPrev, prev)
		} else {
			m.Header.Del(hdrPrev)
		}
		h := contentHash(prev, m.Subject, m.Header, m.Data)
		m.Header.Set(hdrHash, h)
		last[m.Subject] = h
	}
	return nil
}

// hashCacheSize bounds the cache of hashes this process stored: one entry per aggregate it
// wrote (about 40 bytes of key and hash, some 70 with the map's overhead), so a million cover
// a directory of several hundred thousand users and their claims in some 70 MiB. Past it the
// cache starts over.
//
// Without the cache, every write to an aggregate looks up its predecessor's hash with a direct
// get, and nats-server loads the whole message block (up to 8 MiB) that holds it into its
// cache: an incremental cycle touching users all over the log keeps most of the log in memory.
const hashCacheSize = 1_000_000

// cachedHash returns the hash of the message at seq (a decimal) if this process stored it and
// nothing it stored since has replaced it on its subject. A stream sequence names one message,
// so the sequence alone is the key.
func (s *Store) cachedHash(seq string) (string, bool) {
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return "", false
	}
	s.hashMu.Lock()
	h, ok := s.hashes[n]
	s.hashMu.Unlock()
	if !ok {
		return "", false
	}
	return hex.EncodeToString(h[:]), true
}

// rememberHashes records the hashes of a request's messages once stored (their sequences are
// consecutive and end at last) and forgets the predecessors they replace: only the last message
// of a subject is ever asked for.
func (s *Store) rememberHashes(msgs []*nats.Msg, last uint64) {
	s.hashMu.Lock()
	defer s.hashMu.Unlock()
	if s.hashes == nil || len(s.hashes)+len(msgs) > hashCacheSize {
		s.hashes = make(map[uint64][sha256.Size]byte)
	}
	inBatch := make(map[string]uint64, len(msgs))
	for i, m := range msgs {
		seq := last - uint64(len(msgs)-1-i)
		if prev, ok := inBatch[m.Subject]; ok {
			delete(s.hashes, prev)
		} else if prev, err := strconv.ParseUint(m.Header.Get(jetstream.ExpectedLastSubjSeqHeader), 10, 64); err == nil && prev > 0 {
			delete(s.hashes, prev)
		}
		inBatch[m.Subject] = seq
		var h [sha256.Size]byte
		if n, err := hex.Decode(h[:], []byte(m.Header.Get(hdrHash))); err != nil || n != len(h) {
			continue
		}
		s.hashes[seq] = h
	}
}

// hashAt returns the Idl-Hash of the message at a stream sequence.
func (s *Store) hashAt(ctx context.Context, seq string) (string, error) {
	var n uint64
	if _, err := fmt.Sscan(seq, &n); err != nil {
		return "", fmt.Errorf("eventstore: chain: bad sequence %q", seq)
	}
	m, err := s.stream.GetMsg(ctx, n)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// The expectation will fail anyway: the append reports the conflict.
		return "missing", nil
	}
	if err != nil {
		return "", fmt.Errorf("eventstore: chain: read seq %d: %w", n, err)
	}
	return m.Header.Get(hdrHash), nil
}

// A ChainBreak is the first place where the log does not verify.
type ChainBreak struct {
	Sequence uint64
	Subject  string
	Reason   string
}

func (b ChainBreak) String() string {
	return fmt.Sprintf("seq %d (%s): %s", b.Sequence, b.Subject, b.Reason)
}

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	Messages uint64
	Subjects int
	// Config lists stream settings that weaken immutability (empty when sound).
	Config string
	// Breaks lists every message that does not verify, in log order.
	Breaks []ChainBreak
}

// Verify reads the whole log in order and checks every message's hash chain and the stream's
// immutability settings. progress, if not nil, is called now and then with the messages read
// and the log head.
func (s *Store) Verify(ctx context.Context, progress func(done, total uint64)) (VerifyReport, error) {
	var r VerifyReport
	info, err := s.stream.Info(ctx)
	if err != nil {
		return r, fmt.Errorf("eventstore: verify: %w", err)
	}
	r.Config = configDiff(info.Config, s.streamConfig())
	head := info.State.LastSeq
	if head == 0 {
		return r, nil
	}
	cons, err := s.js.OrderedConsumer(ctx, StreamName, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return r, fmt.Errorf("eventstore: verify: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return r, fmt.Errorf("eventstore: verify: %w", err)
	}
	defer it.Stop()
	last := make(map[string]string)
	for {
		m, err := it.Next()
		if err != nil {
			return r, fmt.Errorf("eventstore: verify: %w", err)
		}
		md, err := m.Metadata()
		if err != nil {
			return r, fmt.Errorf("eventstore: verify: %w", err)
		}
		seq, subj, h := md.Sequence.Stream, m.Subject(), m.Headers()
		r.Messages++
		fail := func(format string, args ...any) {
			r.Breaks = append(r.Breaks, ChainBreak{Sequence: seq, Subject: subj, Reason: fmt.Sprintf(format, args...)})
		}
		got := h.Get(hdrHash)
		prev, hasPrev := h.Get(hdrPrev), len(h.Values(hdrPrev)) > 0
		tracked, seen := last[subj]
		switch {
		case got == "":
			fail("no %s header: not written by idledger", hdrHash)
		case got != contentHash(prev, subj, h, m.Data()):
			fail("content does not match its hash (modified after it was written)")
		case prev == unlinked:
		case !hasPrev && seen:
			fail("starts a new chain although the subject already has messages (last %s…)", short(tracked))
		case hasPrev && prev != tracked:
			fail("links to %s… but the previous message on its subject is %s…", short(prev), short(tracked))
		}
		if got != "" {
			last[subj] = got
		}
		if progress != nil && (r.Messages%10000 == 0 || seq >= head) {
			progress(seq, head)
		}
		if seq >= head {
			break
		}
	}
	r.Subjects = len(last)
	return r, nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "(none)"
	}
	return h
}
