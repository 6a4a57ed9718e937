package httpapi

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/idledger/idledger/domain"
)

// fakeProjector is a Projector with a checkpoint the test moves.
type fakeProjector struct{ cp atomic.Uint64 }

func (p *fakeProjector) WaitFor(context.Context, domain.Version) error { return nil }
func (p *fakeProjector) Ready() error                                  { return nil }
func (p *fakeProjector) Checkpoint() domain.Version                    { return domain.Version(p.cp.Load()) }

// projectorOnly is a Projector that does not tell its checkpoint.
type projectorOnly struct{}

func (projectorOnly) WaitFor(context.Context, domain.Version) error { return nil }
func (projectorOnly) Ready() error                                  { return nil }

func TestTokenCache(t *testing.T) {
	t.Parallel()
	if c := newTokenCache(projectorOnly{}); c != nil {
		t.Fatal("a cache without a checkpoint to check it against")
	}
	var none *tokenCache // caches nothing, and does not fail
	none.put("h", credential{tenant: "t"}, none.checkpoint())
	if _, ok := none.get("h", 0); ok {
		t.Fatal("nil cache answered")
	}

	p := &fakeProjector{}
	p.cp.Store(5)
	c := newTokenCache(p)
	cp := c.checkpoint()
	if _, ok := c.get("h1", cp); ok {
		t.Fatal("empty cache answered")
	}
	c.put("h1", credential{tenant: "t1"}, cp)
	if id, ok := c.get("h1", c.checkpoint()); !ok || id.tenant != "t1" {
		t.Fatalf("get = %+v, %v", id, ok)
	}

	// The read models move on (a rotation, say): nothing of checkpoint 5 is answered, and a
	// lookup that started before the move does not put its (possibly stale) answer back.
	p.cp.Store(6)
	if _, ok := c.get("h1", c.checkpoint()); ok {
		t.Fatal("entry of an older checkpoint answered")
	}
	c.put("h2", credential{tenant: "t2"}, 6)
	c.put("h1", credential{tenant: "t1"}, 5) // looked up at 5, finished after 6 was put
	if _, ok := c.get("h1", 6); ok {
		t.Fatal("entry read at checkpoint 5 kept at checkpoint 6")
	}
	if id, ok := c.get("h2", 6); !ok || id.tenant != "t2" {
		t.Fatalf("get h2 = %+v, %v", id, ok)
	}

	// Bounded: the cache starts again empty when full.
	for i := range maxCachedTokens + 1 {
		c.put(fmt.Sprintf("k%d", i), credential{tenant: "t"}, 6)
	}
	if n := len(c.ids); n > maxCachedTokens {
		t.Fatalf("%d entries, want at most %d", n, maxCachedTokens)
	}
}
