package httpapi

import (
	"sync"

	"github.com/idledger/idledger/domain"
)

// Checkpointer is implemented by a [Projector] that tells which log position its read models
// reflect (projections.Projector does). With it the server remembers which company a token
// hash belongs to for as long as the read models do not change; without it every request
// looks its token up.
type Checkpointer interface {
	// Checkpoint returns the last log position applied to the read models; it is set once
	// the position is visible to reads and never decreases.
	Checkpoint() domain.Version
}

// maxCachedTokens bounds the token cache; above it the cache starts again empty. Companies are
// created by the operator, so it is only ever reached by a very large installation.
const maxCachedTokens = 10_000

// tokenCache maps token hashes to their credential (company, kind, API key and scopes) as the
// read models had them at one checkpoint.
// It answers only while the read models are still at that checkpoint: once anything changes
// them (a token rotation or a key revocation among them) its entries are stale and never answer
// again (the next put drops them), so a rotated token or a revoked key is refused from the
// moment the change is visible, exactly as without the cache. A rotation's or a revocation's
// answer waits until it is visible, so the old secret is refused from that answer on. Unknown hashes are never kept, so a client guessing
// tokens cannot fill it. It is safe for concurrent use; a nil *tokenCache caches nothing.
//
// Under writes the checkpoint moves with every change and the cache helps little; it pays off
// while a provisioning client reads, as in Entra's match queries.
type tokenCache struct {
	src Checkpointer

	mu  sync.RWMutex
	at  domain.Version        // the checkpoint the entries were read at
	ids map[string]credential // token hash → credential
}

// newTokenCache returns a cache fed by p's checkpoint, or nil if p does not tell it.
func newTokenCache(p Projector) *tokenCache {
	src, ok := p.(Checkpointer)
	if !ok {
		return nil
	}
	return &tokenCache{src: src, ids: make(map[string]credential)}
}

// checkpoint returns the read models' checkpoint now; read it before a lookup whose result
// is to be put.
func (c *tokenCache) checkpoint() domain.Version {
	if c == nil {
		return 0
	}
	return c.src.Checkpoint()
}

// get returns the credential of hash if it was looked up at checkpoint cp.
func (c *tokenCache) get(hash string, cp domain.Version) (credential, bool) {
	if c == nil {
		return credential{}, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.at != cp {
		return credential{}, false
	}
	id, ok := c.ids[hash]
	return id, ok
}

// put remembers that hash was credential id in the read models at checkpoint cp or
// later; cp must have been read before the lookup, so an entry is never older than its
// checkpoint. An entry of an older checkpoint than the cache's is dropped.
func (c *tokenCache) put(hash string, id credential, cp domain.Version) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cp > c.at || len(c.ids) >= maxCachedTokens {
		clear(c.ids)
		c.at = max(c.at, cp)
	}
	if cp == c.at {
		c.ids[hash] = id
	}
}
