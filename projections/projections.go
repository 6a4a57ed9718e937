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
//	users_by_externalid  tenantID "/" externalId NUL userID → ""
//	users_by_email       tenantID "/" folded email NUL userID → ""
//	groups               tenantID "/" groupID → JSON domain.Group (member count, no members)
//	groups_by_name       tenantID "/" folded displayName → groupID
//	groups_by_externalid tenantID "/" externalId NUL groupID → ""
//	group_members        tenantID "/" groupID "/" userID → JSON domain.Member
//	user_groups          tenantID "/" userID "/" groupID → ""
//	login_index          tenantID "/u/" folded userName | "/e/" folded email → JSON domain.LoginEntry
//	provisioning         tenantID → JSON domain.ProvisioningStats
//
// Keys start with the tenant id, so one tenant's rows are one contiguous key range; ids are
// time-ordered UUIDv7, so a prefix scan lists in creation order. A group's members are a key
// range of their own, so adding one member to a 100k-member group touches two keys.
package projections

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/idledger/idledger/domain"
)

// SchemaVersion is the layout version of the read models. A file written with another version
// is emptied and rebuilt from the log when opened.
const SchemaVersion = 3

// Bucket names.
var (
	bucketMeta      = []byte("meta")
	bucketTenants   = []byte("tenants")
	bucketTokens    = []byte("tenant_tokens")
	bucketUsers     = []byte("users")
	bucketUserNames = []byte("users_by_username")
	bucketUserExtID = []byte("users_by_externalid")
	bucketUserEmail = []byte("users_by_email")
	bucketGroups    = []byte("groups")
	bucketGroupName = []byte("groups_by_name")
	bucketGroupExt  = []byte("groups_by_externalid")
	bucketMembers   = []byte("group_members")
	bucketUserGrps  = []byte("user_groups")
	bucketLogin     = []byte("login_index")
	bucketProv      = []byte("provisioning")

	allBuckets = [][]byte{bucketMeta, bucketTenants, bucketTokens, bucketUsers, bucketUserNames,
		bucketUserExtID, bucketUserEmail, bucketGroups, bucketGroupName, bucketGroupExt,
		bucketMembers, bucketUserGrps, bucketLogin, bucketProv}

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
	b, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: time.Second, NoSync: opts.NoSync,
		// The free list is rebuilt on open instead of written at every commit, whose cost
		// would otherwise grow with the file (as etcd does).
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType,
	})
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

// ListUsers returns a tenant's users in creation order, calling keep to select them,
// skipping the first offset matches and returning at most limit of them, with the total
// number of matches.
func (db *DB) ListUsers(ctx context.Context, tenant domain.TenantID, keep func(*domain.User) bool, offset, limit int) ([]domain.User, int, error) {
	q := domain.ListQuery{Offset: offset, Limit: limit}
	if keep != nil {
		q.Keep = func(r domain.Resource) bool { return keep(r.(*domain.User)) }
	}
	return db.QueryUsers(ctx, tenant, q)
}

// QueryUsers returns one page of a tenant's users selected by q, in creation order, and the
// total number of matches. An index attribute narrows the candidates first.
func (db *DB) QueryUsers(_ context.Context, tenant domain.TenantID, q domain.ListQuery) ([]domain.User, int, error) {
	var out []domain.User
	total := 0
	err := db.bolt.View(func(tx *bolt.Tx) error {
		users := tx.Bucket(bucketUsers)
		return candidates(tx, tenant, q, users, userIndex, func(id, raw []byte) error {
			var u domain.User
			if err := json.Unmarshal(raw, &u); err != nil {
				return fmt.Errorf("projections: user %s: %w", id, err)
			}
			if q.Keep != nil && !q.Keep(&u) {
				return nil
			}
			if total >= q.Offset && (q.Limit < 0 || len(out) < q.Limit) {
				out = append(out, u)
			}
			total++
			return nil
		})
	})
	return out, total, err
}

// QueryGroups is QueryUsers for groups.
func (db *DB) QueryGroups(_ context.Context, tenant domain.TenantID, q domain.ListQuery) ([]domain.Group, int, error) {
	var out []domain.Group
	total := 0
	err := db.bolt.View(func(tx *bolt.Tx) error {
		groups := tx.Bucket(bucketGroups)
		return candidates(tx, tenant, q, groups, groupIndex, func(id, raw []byte) error {
			var g domain.Group
			if err := json.Unmarshal(raw, &g); err != nil {
				return fmt.Errorf("projections: group %s: %w", id, err)
			}
			if q.Keep != nil && !q.Keep(&g) {
				return nil
			}
			if total >= q.Offset && (q.Limit < 0 || len(out) < q.Limit) {
				out = append(out, g)
			}
			total++
			return nil
		})
	})
	return out, total, err
}

// indexDef describes an index bucket: unique (value → id) or multi (value NUL id → ""), and
// whether values are case-folded.
type indexDef struct {
	bucket []byte
	unique bool
	fold   bool
}

// userIndex and groupIndex name the index bucket of each indexable attribute and whether
// it is unique (value → id) or multi (value NUL id → "").
var (
	userIndex = map[string]indexDef{
		"username":     {bucketUserNames, true, true},
		"externalid":   {bucketUserExtID, false, false},
		"emails.value": {bucketUserEmail, false, true},
	}
	groupIndex = map[string]indexDef{
		"displayname": {bucketGroupName, true, true},
		"externalid":  {bucketGroupExt, false, false},
	}
)

// candidates calls fn with the id and row of every candidate of q in creation order: all
// rows of the tenant, or those an index names.
func candidates(tx *bolt.Tx, tenant domain.TenantID, q domain.ListQuery, rows *bolt.Bucket,
	index map[string]indexDef, fn func(id, raw []byte) error) error {
	attr := strings.ToLower(q.IndexAttr)
	if _, ok := index[attr]; !ok && attr != "id" {
		attr = "" // no index on this attribute here: scan, Keep decides
	}
	if attr == "" {
		prefix := key(tenant, "")
		c := rows.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if err := fn(k[len(prefix):], v); err != nil {
				return err
			}
		}
		return nil
	}
	var ids [][]byte
	if attr == "id" {
		ids = [][]byte{[]byte(q.IndexValue)}
	} else {
		ix := index[attr]
		value := q.IndexValue
		if ix.fold {
			value = domain.FoldUserName(value)
		}
		b := tx.Bucket(ix.bucket)
		if ix.unique {
			if id := b.Get(key(tenant, value)); id != nil {
				ids = [][]byte{append([]byte(nil), id...)}
			}
		} else {
			prefix := append(key(tenant, value), 0)
			c := b.Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				ids = append(ids, append([]byte(nil), k[len(prefix):]...))
			}
		}
	}
	slices.SortFunc(ids, bytes.Compare)
	for _, id := range slices.CompactFunc(ids, bytes.Equal) {
		if raw := rows.Get(key(tenant, string(id))); raw != nil {
			if err := fn(id, raw); err != nil {
				return err
			}
		}
	}
	return nil
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
