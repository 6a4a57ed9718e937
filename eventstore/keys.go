package eventstore

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/idledger/idledger/domain"
)

// Data keys (crypto.go says what they seal). One per user, held in the stream IDL_DATA_KEYS:
//
//	idlk.<key id>    one message: the data key wrapped under the master key
//
// Unlike the event log the stream allows deleting a message, and erasing a person deletes
// their key's message with JetStream's secure delete, which overwrites the message's bytes in
// the stream's files (nats-server's filestore, eraseMsg) instead of only marking it deleted.
//
// A user's key is named by the Idl-Key header of the first event on the user's subject (the
// user's creation or invitation): the link is in the log, the key outside it. Keys are made in
// advance, keyPoolSize at a time in one atomic batch (one write to disk), so that creating a
// user costs no write of its own besides its events; a key made and never used is harmless.
// Users created before encryption have no Idl-Key: their events stay in clear and cannot be
// erased.
const (
	// KeyStreamName is the stream of wrapped data keys.
	KeyStreamName    = "IDL_DATA_KEYS"
	keySubjectPrefix = "idlk."
	// hdrKey names the data key of a user on the first event of the user's subject.
	hdrKey = "Idl-Key"
	// keyInvalidateSubject carries the id of an erased key to every instance (core NATS), so
	// that each drops it from its cache.
	keyInvalidateSubject = "idlc.keys.erased"
	keyPoolSize          = 256
	keyPoolLow           = 64
	// keyCacheSize bounds the unwrapped keys and user→key links kept in memory; past it half
	// of a cache is dropped (evictHalf).
	keyCacheSize = 200_000
)

// keyRecord is the body of a key message.
type keyRecord struct {
	// KEK is the id of the master key that wrapped it (MasterKey.ID).
	KEK string `json:"kek"`
	// Key is the wrapped data key (nonce ‖ ciphertext).
	Key []byte `json:"key"`
}

// A dataKey is one unwrapped data key.
type dataKey struct {
	id   string
	aead cipher.AEAD
}

// keyring is the Store's state for data keys.
type keyring struct {
	master *MasterKey
	next   *MasterKey // Config.NextMasterKey: the key a rotation moves to
	stream jetstream.Stream
	sub    *nats.Subscription
	// instances lists the instances sharing the log; id is this one's (keys_cluster.go).
	instances jetstream.KeyValue
	id        string

	mu     sync.Mutex
	pool   []*dataKey
	keys   map[string]*dataKey // key id → key; a nil value: erased
	users  map[string]string   // tenant/user → key id ("" for a user without a key)
	refill sync.Mutex          // one refill at a time
}

func userRef(tenant domain.TenantID, user domain.UserID) string {
	return string(tenant) + "/" + string(user)
}

// keyStreamConfig is the configuration of IDL_DATA_KEYS.
func (s *Store) keyStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:               KeyStreamName,
		Description:        "idledger per-person data keys, wrapped under the master key (deleted on erasure)",
		Subjects:           []string{keySubjectPrefix + ">"},
		Storage:            jetstream.FileStorage,
		Replicas:           s.cfg.Replicas,
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardNew,
		MaxMsgs:            -1,
		MaxBytes:           -1,
		MaxMsgsPerSubject:  -1,
		DenyPurge:          true,
		AllowAtomicPublish: true,
		// Reads go to the leader: a replica that lags must not report a new key as erased.
		AllowDirect: false,
	}
}

// ensureKeys creates the key stream and subscribes to erasures on other instances.
func (s *Store) ensureKeys(ctx context.Context) error {
	st, err := s.js.CreateOrUpdateStream(ctx, s.keyStreamConfig())
	if err != nil {
		return fmt.Errorf("eventstore: create stream %s: %w", KeyStreamName, err)
	}
	s.kr.stream = st
	if err := s.checkMasterKey(ctx); err != nil {
		return err
	}
	s.kr.keys = make(map[string]*dataKey)
	s.kr.users = make(map[string]string)
	if err := s.announce(ctx); err != nil { // keys_cluster.go
		return err
	}
	s.kr.sub, err = s.nc.Subscribe(keyInvalidateSubject, func(m *nats.Msg) {
		s.forgetKey(string(m.Data))
		if m.Reply != "" {
			_ = m.Respond([]byte(s.kr.id))
		}
	})
	if err != nil {
		return fmt.Errorf("eventstore: subscribe to key erasures: %w", err)
	}
	return nil
}

// checkMasterKey refuses a master key other than the one that wrapped the newest data key:
// an instance started with the wrong key would otherwise fail on every read of personal data.
func (s *Store) checkMasterKey(ctx context.Context) error {
	m, err := s.kr.stream.GetLastMsgForSubject(ctx, keySubjectPrefix+"*")
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("eventstore: stream %s: %w", KeyStreamName, err)
	}
	var rec keyRecord
	if json.Unmarshal(m.Data, &rec) == nil && rec.KEK != "" && rec.KEK != s.kr.master.id && (s.kr.next == nil || rec.KEK != s.kr.next.id) {
		return fmt.Errorf("eventstore: the data keys are wrapped under master key %s, this instance was given %s: start it with the master key file the log was written with", rec.KEK, s.kr.master.id)
	}
	return nil
}

// forgetKey drops an erased key from this instance's caches.
func (s *Store) forgetKey(id string) {
	s.kr.mu.Lock()
	s.kr.keys[id] = nil
	for u, k := range s.kr.users {
		if k == id {
			delete(s.kr.users, u)
		}
	}
	s.kr.mu.Unlock()
}

// newKey takes a fresh data key from the pool, refilling it when it runs low.
func (s *Store) newKey(ctx context.Context) (*dataKey, error) {
	for {
		s.kr.mu.Lock()
		if n := len(s.kr.pool); n > 0 {
			k := s.kr.pool[n-1]
			s.kr.pool = s.kr.pool[:n-1]
			s.kr.mu.Unlock()
			s.cacheKey(k.id, k) // its events are sealed and read by this process next
			if n-1 == keyPoolLow {
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), recordAckTimeout)
					defer cancel()
					if err := s.refillKeys(ctx); err != nil {
						s.log.Warn("could not make data keys in advance", "err", err)
					}
				}()
			}
			return k, nil
		}
		s.kr.mu.Unlock()
		if err := s.refillKeys(ctx); err != nil {
			return nil, err
		}
	}
}

// refillKeys makes keyPoolSize keys, stores them wrapped in one atomic batch and adds them to
// the pool once stored.
func (s *Store) refillKeys(ctx context.Context) error {
	s.kr.refill.Lock()
	defer s.kr.refill.Unlock()
	s.kr.mu.Lock()
	n := len(s.kr.pool)
	s.kr.mu.Unlock()
	if n > keyPoolLow {
		return nil
	}
	keys := make([]*dataKey, 0, keyPoolSize)
	msgs := make([]*nats.Msg, 0, keyPoolSize)
	raw := make([]byte, 32)
	for range keyPoolSize {
		if _, err := rand.Read(raw); err != nil {
			return fmt.Errorf("eventstore: data key: %w", err)
		}
		id := nuid.Next()
		aead, err := newGCM(raw)
		if err != nil {
			return err
		}
		m, err := s.keyMsg(id, raw)
		if err != nil {
			return err
		}
		keys = append(keys, &dataKey{id: id, aead: aead})
		msgs = append(msgs, m)
	}
	clear(raw)
	if _, err := jetstreamext.PublishMsgBatch(ctx, s.js, msgs); err != nil {
		return unavailable(fmt.Errorf("eventstore: store data keys: %w", err))
	}
	s.kr.mu.Lock()
	s.kr.pool = append(s.kr.pool, keys...)
	s.kr.mu.Unlock()
	return nil
}

// keyMsg returns the message storing data key raw (named id) wrapped under the master key.
func (s *Store) keyMsg(id string, raw []byte) (*nats.Msg, error) {
	wrapped, err := s.kr.master.wrap(id, raw)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(keyRecord{KEK: s.kr.master.id, Key: wrapped})
	if err != nil {
		return nil, fmt.Errorf("eventstore: data key: %w", err)
	}
	m := nats.NewMsg(keySubjectPrefix + id)
	m.Data = body
	return m, nil
}

// key returns the data key named id, or nil if it has been erased.
func (s *Store) key(ctx context.Context, id string) (*dataKey, error) {
	s.kr.mu.Lock()
	k, ok := s.kr.keys[id]
	s.kr.mu.Unlock()
	if ok {
		return k, nil
	}
	if !validToken(id) {
		return nil, fmt.Errorf("eventstore: bad data key id %q", id)
	}
	m, err := s.kr.stream.GetLastMsgForSubject(ctx, keySubjectPrefix+id)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		s.cacheKey(id, nil)
		return nil, nil
	}
	if err != nil {
		return nil, unavailable(fmt.Errorf("eventstore: read data key: %w", err))
	}
	var rec keyRecord
	if err := json.Unmarshal(m.Data, &rec); err != nil {
		return nil, fmt.Errorf("eventstore: data key %s: %w", id, err)
	}
	raw, err := s.kekFor(rec).unwrap(id, rec.Key)
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(raw)
	clear(raw)
	if err != nil {
		return nil, err
	}
	k = &dataKey{id: id, aead: aead}
	s.cacheKey(id, k)
	return k, nil
}

func (s *Store) cacheKey(id string, k *dataKey) {
	s.kr.mu.Lock()
	evictHalf(s.kr.keys)
	s.kr.keys[id] = k
	s.kr.mu.Unlock()
}

func (s *Store) cacheUserKey(ref, id string) {
	s.kr.mu.Lock()
	evictHalf(s.kr.users)
	s.kr.users[ref] = id
	s.kr.mu.Unlock()
}

// evictHalf drops about half of a full cache (keyCacheSize entries), chosen at random (the
// order of a map's iteration): a company larger than the cache then misses on some of its
// people, not on all of them at once as an emptied cache would.
func evictHalf[V any](m map[string]V) {
	if len(m) < keyCacheSize {
		return
	}
	for k := range m {
		if len(m) <= keyCacheSize/2 {
			return
		}
		delete(m, k)
	}
}

// userKeyID returns the id of a user's data key as the first event on the user's subject
// names it: "" for a user without events or created before encryption.
func (s *Store) userKeyID(ctx context.Context, tenant domain.TenantID, user domain.UserID) (string, error) {
	ref := userRef(tenant, user)
	s.kr.mu.Lock()
	id, ok := s.kr.users[ref]
	s.kr.mu.Unlock()
	if ok {
		return id, nil
	}
	if !validToken(string(user)) {
		return "", nil
	}
	m, err := s.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subject(tenant, domain.KindUser, string(user))))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", nil // no such user (yet): not cached, its creation may come
	}
	if err != nil {
		return "", unavailable(fmt.Errorf("eventstore: find data key: %w", err))
	}
	id = m.Header.Get(hdrKey)
	s.cacheUserKey(ref, id)
	return id, nil
}

// EraseUserKey destroys a user's data key: its message is deleted securely (overwritten on
// disk) and every instance drops it from memory. From then on the user's personal values read
// back as domain.ErasedValue. It is idempotent; had reports whether the user had a key (false
// for a user created before encryption, whose events stay readable).
func (s *Store) EraseUserKey(ctx context.Context, tenant domain.TenantID, user domain.UserID) (had bool, err error) {
	if s.kr.master == nil {
		return false, nil
	}
	id, err := s.userKeyID(ctx, tenant, user)
	if err != nil || id == "" {
		return false, err
	}
	for {
		m, err := s.kr.stream.GetLastMsgForSubject(ctx, keySubjectPrefix+id)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return true, unavailable(fmt.Errorf("eventstore: erase data key: %w", err))
		}
		if err := s.kr.stream.SecureDeleteMsg(ctx, m.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return true, unavailable(fmt.Errorf("eventstore: erase data key: %w", err))
		}
	}
	s.forgetKey(id)
	return true, s.confirmForgotten(ctx, id) // every instance drops it before we answer
}

// KeyErased reports whether the user's data key has been destroyed (false for a user without
// a key).
func (s *Store) KeyErased(ctx context.Context, tenant domain.TenantID, user domain.UserID) (bool, error) {
	if s.kr.master == nil {
		return false, nil
	}
	id, err := s.userKeyID(ctx, tenant, user)
	if err != nil || id == "" {
		return false, err
	}
	_, err = s.kr.stream.GetLastMsgForSubject(ctx, keySubjectPrefix+id)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true, nil
	}
	if err != nil {
		return false, unavailable(fmt.Errorf("eventstore: read data key: %w", err))
	}
	return false, nil
}

// sealEvent replaces the personal values of the message m encoding e with sealed ones. The
// first event of a user's subject (expected version 0) gets a new key, named in Idl-Key.
// newKeys collects user→key links to remember once the batch is stored.
func (s *Store) sealEvent(ctx context.Context, e domain.Event, first bool, m *nats.Msg, newKeys map[string]string) error {
	data, keyID, err := s.sealData(ctx, e, first, newKeys)
	if err != nil {
		return err
	}
	if keyID != "" {
		m.Header.Set(hdrKey, keyID)
	}
	if !domain.HasPersonal(e) || s.kr.master == nil {
		return nil
	}
	m.Data, err = domain.EncodeData(data)
	return err
}

// encodeSealed turns e into its message (encode) with its personal values sealed (sealData),
// encoding the payload once. first and newKeys are sealEvent's.
func (s *Store) encodeSealed(ctx context.Context, e domain.Event, first bool, newKeys map[string]string) (*nats.Msg, error) {
	data, keyID, err := s.sealData(ctx, e, first, newKeys)
	if err != nil {
		return nil, err
	}
	e.Data = data
	m, err := encode(e)
	if err != nil {
		return nil, err
	}
	if keyID != "" {
		m.Header.Set(hdrKey, keyID)
	}
	return m, nil
}

// sealData returns e's payload with its personal values sealed, and, for the first event of a
// user's subject, the id of the user's new data key (else ""). Data without personal values
// is returned as it is. newKeys collects user→key links to remember once the batch is stored.
func (s *Store) sealData(ctx context.Context, e domain.Event, first bool, newKeys map[string]string) (data any, keyID string, err error) {
	if s.kr.master == nil {
		return e.Data, "", nil
	}
	if first && e.Kind == domain.KindUser {
		k, err := s.newKey(ctx)
		if err != nil {
			return nil, "", err
		}
		keyID = k.id
		newKeys[userRef(e.Tenant, domain.UserID(e.AggregateID))] = k.id
	}
	if !domain.HasPersonal(e) {
		return e.Data, keyID, nil
	}
	// Most values of an event are one person's: look their key up once (one lock, no direct
	// get) and build the additional data once.
	var (
		lastUser domain.UserID
		lastKey  *dataKey
		lastAD   []byte
		looked   bool
	)
	data, err = domain.MapPersonal(e, func(user domain.UserID, v any) (any, error) {
		if !looked || user != lastUser {
			id, ok := newKeys[userRef(e.Tenant, user)]
			if !ok {
				var err error
				if id, err = s.userKeyID(ctx, e.Tenant, user); err != nil {
					return nil, err
				}
			}
			var k *dataKey
			if id != "" {
				var err error
				if k, err = s.key(ctx, id); err != nil {
					return nil, err
				}
				if k == nil {
					k = erasedKey
				}
			}
			lastUser, lastKey, lastAD, looked = user, k, valueAD(e.Tenant, user, e.Type), true
		}
		switch lastKey {
		case nil:
			return v, nil // a user created before encryption, or no user
		case erasedKey:
			return domain.ErasedValue, nil // never seal anew for an erased person
		}
		return sealValue(lastKey, lastAD, v)
	})
	if err != nil {
		return nil, "", err
	}
	return data, keyID, nil
}

// erasedKey stands for a destroyed data key in the lookups of sealData and openEvent.
var erasedKey = &dataKey{}

// openEvent replaces the sealed values of a decoded event by their plain values, or by
// domain.ErasedValue where the person's key is destroyed.
func (s *Store) openEvent(ctx context.Context, e *domain.Event, h nats.Header) error {
	if id := h.Get(hdrKey); id != "" && s.kr.users != nil {
		s.cacheUserKey(userRef(e.Tenant, domain.UserID(e.AggregateID)), id)
	}
	if !domain.HasPersonal(*e) {
		return nil
	}
	// As in sealData: one key lookup and one additional data per person of the event.
	var (
		lastID   string
		lastUser domain.UserID
		lastKey  *dataKey
		lastAD   []byte
	)
	data, err := domain.MapPersonal(*e, func(user domain.UserID, v any) (any, error) {
		id, ct, ok := parseSealed(v)
		if !ok {
			return v, nil
		}
		if s.kr.master == nil {
			return nil, fmt.Errorf("eventstore: seq %d holds sealed personal data and the store has no master key", e.Version)
		}
		if lastKey == nil || id != lastID || user != lastUser {
			k, err := s.key(ctx, id)
			if err != nil {
				return nil, err
			}
			if k == nil {
				k = erasedKey
			}
			lastID, lastUser, lastKey, lastAD = id, user, k, valueAD(e.Tenant, user, e.Type)
		}
		if lastKey == erasedKey {
			return domain.ErasedValue, nil
		}
		return openValue(lastKey, lastAD, ct)
	})
	if err != nil {
		return err
	}
	e.Data = data
	return nil
}

// exportedKey is the data key named by an exported message's Idl-Key header, in clear, in the
// message's line ("dataKey"): an import wraps it under its own master key. An erased person's
// key is absent from the store and so from the export. (The export holds the company's
// personal data in any case and must be protected like the log: README "Personal data".)
type exportedKey struct {
	ID  string `json:"id"`
	Key []byte `json:"key"`
}

// exportKey returns the data key named by a message's Idl-Key header, or nil if it has none
// or the key is erased.
func (s *Store) exportKey(ctx context.Context, h nats.Header) (*exportedKey, error) {
	id := h.Get(hdrKey)
	if id == "" || s.kr.master == nil || !validToken(id) {
		return nil, nil
	}
	m, err := s.kr.stream.GetLastMsgForSubject(ctx, keySubjectPrefix+id)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable(fmt.Errorf("eventstore: export data key: %w", err))
	}
	var rec keyRecord
	if err := json.Unmarshal(m.Data, &rec); err != nil {
		return nil, fmt.Errorf("eventstore: export data key %s: %w", id, err)
	}
	raw, err := s.kekFor(rec).unwrap(id, rec.Key)
	if err != nil {
		return nil, err
	}
	return &exportedKey{ID: id, Key: raw}, nil
}

// importDataKey stores an exported data key, wrapped under this store's master key, unless
// the store has it already.
func (s *Store) importDataKey(ctx context.Context, k *exportedKey) error {
	if s.kr.master == nil {
		return domain.Errorf(domain.ErrInvalid, "the export holds encrypted personal data: import it with a master key (--master-key-file, or DIR/master.key)")
	}
	if !validToken(k.ID) || len(k.Key) != 32 {
		return domain.Errorf(domain.ErrInvalid, "bad data key %q in the export", k.ID)
	}
	if _, err := s.kr.stream.GetLastMsgForSubject(ctx, keySubjectPrefix+k.ID); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return unavailable(fmt.Errorf("eventstore: import data key: %w", err))
	}
	m, err := s.keyMsg(k.ID, k.Key)
	if err != nil {
		return err
	}
	if _, err := s.js.PublishMsg(ctx, m); err != nil {
		return unavailable(fmt.Errorf("eventstore: import data key: %w", err))
	}
	return nil
}

// kekFor returns the master key that wrapped rec: the next one during a rotation if its id
// says so, else the master key.
func (s *Store) kekFor(rec keyRecord) *MasterKey {
	if s.kr.next != nil && rec.KEK == s.kr.next.id {
		return s.kr.next
	}
	return s.kr.master
}

// RotateMasterKey wraps every data key anew under Config.NextMasterKey and deletes (securely)
// each copy wrapped under the old master key. It may be run again after an interruption: keys
// already under the new master key are left alone. It returns how many keys it re-wrapped.
// Run it with the server stopped; afterwards start the server with the new key only.
func (s *Store) RotateMasterKey(ctx context.Context, progress func(done, total uint64)) (int, error) {
	if s.kr.master == nil || s.kr.next == nil {
		return 0, errors.New("eventstore: rotate: needs the current and the new master key")
	}
	var last uint64
	if m, err := s.kr.stream.GetLastMsgForSubject(ctx, keySubjectPrefix+"*"); err == nil {
		last = m.Sequence
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, fmt.Errorf("eventstore: rotate: %w", err)
	}
	type old struct {
		seq uint64
		id  string
		rec keyRecord
	}
	var olds []old
	if last > 0 {
		err := s.each(ctx, KeyStreamName, keySubjectPrefix+"*", 1, last, func(m jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
			var rec keyRecord
			if err := json.Unmarshal(m.Data(), &rec); err != nil {
				return false, fmt.Errorf("eventstore: rotate: key at seq %d: %w", md.Sequence.Stream, err)
			}
			if rec.KEK != s.kr.next.id {
				olds = append(olds, old{md.Sequence.Stream, m.Subject()[len(keySubjectPrefix):], rec})
			}
			return true, nil
		})
		if err != nil {
			return 0, err
		}
	}
	for i, o := range olds {
		if o.rec.KEK != s.kr.master.id {
			return i, fmt.Errorf("eventstore: rotate: data key %s is wrapped under master key %s, neither the current (%s) nor the new one", o.id, o.rec.KEK, s.kr.master.id)
		}
		raw, err := s.kr.master.unwrap(o.id, o.rec.Key)
		if err != nil {
			return i, err
		}
		wrapped, err := s.kr.next.wrap(o.id, raw)
		clear(raw)
		if err != nil {
			return i, err
		}
		body, err := json.Marshal(keyRecord{KEK: s.kr.next.id, Key: wrapped})
		if err != nil {
			return i, fmt.Errorf("eventstore: rotate: %w", err)
		}
		if _, err := s.js.Publish(ctx, keySubjectPrefix+o.id, body); err != nil {
			return i, unavailable(fmt.Errorf("eventstore: rotate: %w", err))
		}
		if err := s.kr.stream.SecureDeleteMsg(ctx, o.seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return i, unavailable(fmt.Errorf("eventstore: rotate: %w", err))
		}
		if progress != nil && (i%1000 == 0 || i == len(olds)-1) {
			progress(uint64(i+1), uint64(len(olds)))
		}
	}
	return len(olds), nil
}
