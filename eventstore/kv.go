package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
)

// KV buckets for short-lived records that every idledger instance shares and that survive a
// restart. Unlike the event log they hold no history: a record expires on its own.
const (
	// BucketSAMLRequests holds outstanding SAML AuthnRequests, keyed by request id.
	BucketSAMLRequests = "IDL_SAML_REQUESTS"
	// BucketSAMLAssertions holds the ids of accepted SAML assertions until they expire, so that
	// each is accepted once (the replay cache).
	BucketSAMLAssertions = "IDL_SAML_ASSERTIONS"
	// BucketSessions holds browser sessions, keyed by a hash of the session id: SAML sessions
	// under "s.<hash>", company console sessions under "c.<hash>".
	BucketSessions = "IDL_SESSIONS"
	// BucketKeyUsage holds when each company API key was last used, keyed by tenant and key id.
	BucketKeyUsage = "IDL_KEY_USAGE"
)

// markerTTL is how long a bucket keeps the marker left by an expired or removed record.
const markerTTL = time.Minute

// A Records store is one NATS KV bucket of records that expire on their own: each record has
// its own time to live, and the bucket's MaxAge bounds every record (and every removal marker).
// It is safe for concurrent use and shared by every instance connected to the same NATS.
type Records struct {
	kv     jetstream.KeyValue
	maxAge time.Duration
	// replicated: the bucket has several replicas and a read may be served by one that has not
	// yet seen a record created a moment ago on another instance, so a miss is confirmed.
	replicated bool
}

// OpenRecords creates (or updates) the KV bucket and returns it. maxAge bounds the life of any
// record in it.
func (s *Store) OpenRecords(ctx context.Context, bucket, description string, maxAge time.Duration) (*Records, error) {
	if maxAge < time.Second {
		return nil, fmt.Errorf("eventstore: bucket %s: max age %s is too short", bucket, maxAge)
	}
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         bucket,
		Description:    description,
		Storage:        jetstream.FileStorage,
		Replicas:       s.cfg.Replicas,
		History:        1,
		TTL:            maxAge,
		LimitMarkerTTL: markerTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("eventstore: create bucket %s: %w", bucket, err)
	}
	return &Records{kv: kv, maxAge: maxAge, replicated: s.cfg.Replicas > 1}, nil
}

// Create stores value under key for ttl (at least a second, at most the bucket's max age),
// only if key holds no live record. It is atomic across instances: of two concurrent creates
// one fails with an error wrapping domain.ErrUniqueness. An invalid key wraps domain.ErrInvalid.
func (r *Records) Create(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	ttl = min(max(ttl, time.Second), r.maxAge)
	_, err := r.kv.Create(ctx, key, value, jetstream.KeyTTL(ttl.Truncate(time.Second)))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return fmt.Errorf("eventstore: record exists: %w", domain.ErrUniqueness)
	case errors.Is(err, jetstream.ErrInvalidKey):
		return domain.Errorf(domain.ErrInvalid, "invalid record key")
	}
	return fmt.Errorf("eventstore: create record: %w", err)
}

// Get returns the record under key and its revision, or an error wrapping domain.ErrNotFound
// if there is none (never stored, removed or expired).
//
// On a replicated bucket a miss is read again a few times within about 100 ms: a session created
// by another instance a moment ago may not have reached the replica that answered.
func (r *Records) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := r.kv.Get(ctx, key)
	for wait := 10 * time.Millisecond; r.replicated && errors.Is(err, jetstream.ErrKeyNotFound) && wait <= 40*time.Millisecond; wait *= 2 {
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("eventstore: get record: %w", ctx.Err())
		case <-time.After(wait):
		}
		e, err = r.kv.Get(ctx, key)
	}
	switch {
	case err == nil:
		return e.Value(), e.Revision(), nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return nil, 0, fmt.Errorf("eventstore: record: %w", domain.ErrNotFound)
	case errors.Is(err, jetstream.ErrInvalidKey):
		return nil, 0, domain.Errorf(domain.ErrNotFound, "invalid record key")
	}
	return nil, 0, fmt.Errorf("eventstore: get record: %w", err)
}

// Delete removes the record under key. With a revision other than 0 it removes it only if it
// is still that revision, atomically, so that a record read with Get is taken by one caller
// only; otherwise it fails with an error wrapping domain.ErrConflict. Removing a record that
// does not exist without a revision is not an error.
func (r *Records) Delete(ctx context.Context, key string, revision uint64) error {
	var opts []jetstream.KVDeleteOpt
	if revision != 0 {
		opts = append(opts, jetstream.LastRevision(revision))
	}
	// Purge drops the record's data at once; the marker expires after markerTTL.
	opts = append(opts, jetstream.PurgeTTL(markerTTL))
	err := r.kv.Purge(ctx, key, opts...)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return fmt.Errorf("eventstore: record changed: %w", domain.ErrConflict)
	case errors.Is(err, jetstream.ErrInvalidKey):
		return domain.Errorf(domain.ErrInvalid, "invalid record key")
	}
	return fmt.Errorf("eventstore: delete record: %w", err)
}

// Put stores value under key, replacing what it held, for the bucket's max age.
func (r *Records) Put(ctx context.Context, key string, value []byte) error {
	_, err := r.kv.Put(ctx, key, value)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrInvalidKey):
		return domain.Errorf(domain.ErrInvalid, "invalid record key")
	}
	return fmt.Errorf("eventstore: put record: %w", err)
}
