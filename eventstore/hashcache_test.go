package eventstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestHashCache checks the chain's hash cache: it answers for the last message of each subject
// this process stored, forgets what a later write replaced (in the same batch or later), and
// never answers for a sequence it did not store.
func TestHashCache(t *testing.T) {
	s := &Store{}
	msg := func(subject string, expected uint64, content string) *nats.Msg {
		m := nats.NewMsg(subject)
		if expected > 0 {
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, fmt.Sprint(expected))
		}
		sum := sha256.Sum256([]byte(content))
		m.Header.Set(hdrHash, hex.EncodeToString(sum[:]))
		return m
	}
	want := func(seq uint64, content string) {
		t.Helper()
		sum := sha256.Sum256([]byte(content))
		if h, ok := s.cachedHash(fmt.Sprint(seq)); !ok || h != hex.EncodeToString(sum[:]) {
			t.Errorf("seq %d: %q, %v; want the hash of %q", seq, h, ok, content)
		}
	}
	gone := func(seq uint64) {
		t.Helper()
		if h, ok := s.cachedHash(fmt.Sprint(seq)); ok {
			t.Errorf("seq %d still cached (%s)", seq, h)
		}
	}
	// seq 1: claim, 2: user (a create); 3: another user.
	s.rememberHashes([]*nats.Msg{msg("idl.t.uname.x", 0, "claim"), msg("idl.t.user.a", 0, "a1")}, 2)
	s.rememberHashes([]*nats.Msg{msg("idl.t.user.b", 0, "b1")}, 3)
	want(1, "claim")
	want(2, "a1")
	want(3, "b1")
	// seq 4: a's next event replaces seq 2.
	s.rememberHashes([]*nats.Msg{msg("idl.t.user.a", 2, "a2")}, 4)
	gone(2)
	want(4, "a2")
	// seqs 5–6: two events of b in one batch; only the first carries the expectation.
	s.rememberHashes([]*nats.Msg{msg("idl.t.user.b", 3, "b2"), msg("idl.t.user.b", 0, "b3")}, 6)
	gone(3)
	gone(5)
	want(6, "b3")
	gone(7)
	if _, ok := s.cachedHash("not a number"); ok {
		t.Error("a malformed sequence answered")
	}
	if n := len(s.hashes); n != 3 {
		t.Errorf("%d entries, want 3 (one per subject)", n)
	}
}
