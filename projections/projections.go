// Package projections keeps idledger's read models in one bbolt file.
//
// A [Projector] applies events in log order. Each batch of events and the new checkpoint commit
// in one write transaction, so a read model is never ahead of or behind its checkpoint, and a
// crash re-delivers at most the uncommitted batch (exactly-once effect). The file can be deleted
// at any time; it is rebuilt from the event log on start.
//
// # Layout
//
//	meta                 "checkpoint" → last applied log sequence (8 bytes, big endian)
//	                     "schema"     → projection schema version
//	tenants              tenantID → JSON domain.Tenant
//	tenant_tokens        SCIM token hash → tenantID
//	users                tenantID "/" userID → JSON domain.User
//	users_by_username    tenantID "/" folded userName → userID
//
// Keys start with the tenant id, so one tenant's rows are one contiguous key range.
package projections

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/idledger/idledger/domain"
)

// SchemaVersion is the layout version of the read models. A file written with another version
// is emptied and rebuilt from the log when opened.
const SchemaVersion = 1

// Bucket names.
var (
	bucketMeta      = []byte("meta")
	bucketTenants   = []byte("tenants")
	bucketTokens    = []byte("tenant_tokens")
	bucketUsers     = []byte("users")
	bucketUserNames = []byte("users_by_username")

	allBuckets = [][]byte{bucketMeta, bucketTenants, bucketTokens, bucketUsers, bucketUserNames}

	keyCheckpoint = []byte("checkpoint")
	keySchema     = []byte("schema")
)

// ErrLocked is returned by Open when another process holds the file.
var ErrLocked = errors.New("projections: file is in use by another process (is an idledger server running on this data dir?)")

// DB is the read-model file. It is safe for concurrent use; Close releases it.
type DB struct {
	bolt *bolt.DB
}

// Options tunes Open.
type Options struct {
	// NoSync skips fsync on commit (for rebuilds that sync once at the end).
	NoSync bool
}

// Open opens or creates the file at path, waiting at most a second for another process's lock.
// A file of another schema version is emptied (its checkpoint reset to 0) so it is rebuilt.
func Open(path string, opts Options) (*DB, error) {
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: opts.NoSync})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, ErrLocked
	}
	if err != nil {
		return nil, fmt.Errorf("projections: open %s: %w", path, err)
	}
	db := &DB{bolt: b}
	if err := db.init(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

func (db *DB) init() error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			if v := m.Get(keySchema); v != nil && string(v) != strconv.Itoa(SchemaVersion) {
				for _, name := range allBuckets {
					if tx.Bucket(name) != nil {
						if err := tx.DeleteBucket(name); err != nil {
							return err
						}
					}
				}
			}
		}
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("projections: create bucket %s: %w", name, err)
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
	})
}

// Close closes the file.
func (db *DB) Close() error {
	return db.bolt.Close()
}

// Check runs bbolt's consistency check and returns the first problem found.
func (db *DB) Check() error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
}

// Checkpoint returns the log sequence of the last applied event.
func (db *DB) Checkpoint() (domain.Version, error) {
	var v domain.Version
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v = checkpoint(tx)
		return nil
	})
	return v, err
}

func checkpoint(tx *bolt.Tx) domain.Version {
	b := tx.Bucket(bucketMeta).Get(keyCheckpoint)
	if len(b) != 8 {
		return 0
	}
	return domain.Version(binary.BigEndian.Uint64(b))
}

func key(tenant domain.TenantID, id string) []byte {
	return []byte(string(tenant) + "/" + id)
}

// FindTenantByTokenHash returns the tenant whose SCIM token hashes to hash, or an error wrapping
// domain.ErrNotFound.
func (db *DB) FindTenantByTokenHash(_ context.Context, hash string) (domain.Tenant, error) {
	var t domain.Tenant
	err := db.bolt.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketTokens).Get([]byte(hash))
		if id == nil {
			return domain.ErrNotFound
		}
		return getJSON(tx.Bucket(bucketTenants), id, &t)
	})
	return t, err
}

// FindTenant returns a tenant, or an error wrapping domain.ErrNotFound.
func (db *DB) FindTenant(_ context.Context, id domain.TenantID) (domain.Tenant, error) {
	var t domain.Tenant
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketTenants), []byte(id), &t)
	})
	return t, err
}

// FindUser implements domain.UserReader.
func (db *DB) FindUser(_ context.Context, tenant domain.TenantID, id domain.UserID) (domain.User, error) {
	var u domain.User
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketUsers), key(tenant, string(id)), &u)
	})
	if errors.Is(err, domain.ErrNotFound) {
		return u, domain.Errorf(domain.ErrNotFound, "User %s not found", id)
	}
	return u, err
}

// FindUserByUserName implements domain.UserReader.
func (db *DB) FindUserByUserName(_ context.Context, tenant domain.TenantID, name string) (domain.User, error) {
	var u domain.User
	err := db.bolt.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketUserNames).Get(key(tenant, domain.FoldUserName(name)))
		if id == nil {
			return domain.ErrNotFound
		}
		return getJSON(tx.Bucket(bucketUsers), key(tenant, string(id)), &u)
	})
	if errors.Is(err, domain.ErrNotFound) {
		return u, domain.Errorf(domain.ErrNotFound, "no user with userName %q", name)
	}
	return u, err
}

// ListUsers returns a tenant's users in creation order (user ids are time-ordered), calling
// keep to select them, skipping the first offset matches and returning at most limit of them,
// with the total number of matches.
func (db *DB) ListUsers(_ context.Context, tenant domain.TenantID, keep func(*domain.User) bool, offset, limit int) ([]domain.User, int, error) {
	var out []domain.User
	total := 0
	err := db.bolt.View(func(tx *bolt.Tx) error {
		prefix := key(tenant, "")
		c := tx.Bucket(bucketUsers).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var u domain.User
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("projections: user %s: %w", k, err)
			}
			if keep != nil && !keep(&u) {
				continue
			}
			if total >= offset && len(out) < limit {
				out = append(out, u)
			}
			total++
		}
		return nil
	})
	return out, total, err
}

func getJSON(b *bolt.Bucket, k []byte, v any) error {
	raw := b.Get(k)
	if raw == nil {
		return domain.ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("projections: decode %s: %w", k, err)
	}
	return nil
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("projections: encode %s: %w", k, err)
	}
	return b.Put(k, raw)
}
