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
//	tenant_tokens        SCIM token hash, live API key hash → tenantID
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
//
// # Failing closed
//
// An event the projector cannot apply stops it (it never skips one: a skipped deactivation
// would let a removed user sign in). The read models keep serving the last consistent state,
// Ready turns into the error, and Status and the log name the sequence.
//
// # Rebuilding
//
// A file of another [SchemaVersion] is emptied by Open and refilled by Run, which logs its
// progress. [Projector.Rebuild] builds a fresh file, projections.db.rebuild, from sequence 1
// while the current one keeps serving and the live projector keeps applying, then pauses the
// live projector between two commits, brings the new file to exactly its checkpoint, and
// renames it over projections.db. Every transaction holds the DB's read lock, which the swap
// takes in write mode for the rename and a pointer swap, so readers see the old file or the new
// one, never a partial one. [DB.Dump] and [Diff] compare read models, and [Replay] builds one up
// to a given sequence (for `idledger projections check`).
package projections

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/projections/usernames"
)

// SchemaVersion is the layout version of the read models. A file written with another version
// is emptied and rebuilt from the log when opened.
const SchemaVersion = 4

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

// ErrCorrupt is returned by Open when the file is damaged (not a bbolt file, truncated, or
// with unreadable pages). The read models can be rebuilt from the log: move the file aside.
var ErrCorrupt = errors.New("projections: the read-model file is damaged")

// DB is the read-model file. It is safe for concurrent use; Close releases it.
//
// Every transaction runs through view or update, which hold mu in read mode, so a rebuild can
// replace the file under running readers: the swap takes mu in write mode for the time of a
// rename and a pointer assignment (rebuild.go). A callback run inside a transaction (Members'
// fn, a ListQuery's Keep) must therefore not call back into the same DB.
type DB struct {
	path string
	opts Options

	mu   sync.RWMutex // guards bolt: read mode around each transaction, write mode to swap or close
	bolt *bolt.DB

	// emptied is the schema version Open found and emptied ("" if none): the projector logs
	// that it rebuilds the read models from the log.
	emptied string
	// lazy is true while the file is committed without fsync under a lazy-sync marker.
	lazy bool

	// Compactions after erasures (erase.go): compactAsked counts calls, compactDone is the
	// count covered by the last finished compaction (guarded by compactMu).
	compactAsked atomic.Uint64
	compactMu    sync.Mutex
	compactDone  uint64
	// writeMu is held by every write transaction and by a compaction for its whole copy, so
	// that readers go on reading while no write can be lost.
	writeMu sync.Mutex
}

// Options tunes Open.
type Options struct {
	// NoSync skips fsync on commit (for rebuilds that sync once at the end).
	NoSync bool
	// Inspect opens an existing file as it is, for reading only: it is not created, and a file
	// of another schema version is not emptied. The lock is still exclusive, so no server or
	// other command changes the file meanwhile.
	Inspect bool
	// LazySync commits without fsync and syncs on Close, keeping a marker file with the boot id
	// meanwhile, so that Open can tell a crashed process (the file is good) from a crashed
	// machine (ErrUnsynced): see durability.go. The server's projector runs this way.
	LazySync bool
	// Recover starts afresh where the file cannot be trusted, instead of failing: a file left
	// unsynced by a machine that has restarted since (ErrUnsynced) is removed, and a damaged
	// one (ErrCorrupt) is moved aside to PATH.corrupt-<time> for a post-mortem. Either is
	// logged, and the projector refills the new, empty file from the log. The server opens its
	// file this way; without Recover, Open returns those errors. (A file of another schema
	// version is emptied either way.)
	Recover bool
	// Logger receives what Recover did; nil means slog.Default().
	Logger *slog.Logger
	// Now names the file moved aside; nil means time.Now.
	Now func() time.Time

	bootID string // the boot id to assume instead of the kernel's (tests)
}

// Open opens or creates the file at path, waiting at most a second for another process's lock
// (then it returns ErrLocked). A file of another schema version is emptied (its checkpoint reset
// to 0) so that the projector rebuilds it from the log. A file left unsynced by a machine that
// has restarted since is refused with ErrUnsynced, a damaged one with ErrCorrupt, unless
// opts.Recover is set.
func Open(path string, opts Options) (*DB, error) {
	db, err := open(path, opts)
	if !opts.Recover || opts.Inspect {
		return db, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if errors.Is(err, ErrUnsynced) {
		// The machine went down while the file was written without fsync: it may hold any
		// mix of old and new pages. The log has every acknowledged event: start afresh.
		log.Warn("projections.db was not synced before the machine restarted: rebuilding the read models from the log", "err", err)
		if rerr := RemoveUnsynced(path); rerr != nil {
			return nil, fmt.Errorf("%w; removing it: %w", err, rerr)
		}
		db, err = open(path, opts)
	}
	if errors.Is(err, ErrCorrupt) {
		// The read models are derived data: keep the damaged file for a post-mortem and
		// rebuild them from the log.
		now := time.Now
		if opts.Now != nil {
			now = opts.Now
		}
		aside := path + ".corrupt-" + now().UTC().Format("20060102T150405Z")
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, fmt.Errorf("%w; moving it aside: %w", err, rerr)
		}
		log.Warn("projections.db is damaged: moved it aside, rebuilding the read models from the log",
			"err", err, "moved_to", aside)
		db, err = open(path, opts)
	}
	return db, err
}

// open is Open without Recover.
func open(path string, opts Options) (*DB, error) {
	if opts.Inspect {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("projections: open %s: %w", path, err)
		}
		b, err := openBolt(path, opts)
		if err != nil {
			return nil, err
		}
		return &DB{path: path, opts: opts, bolt: b}, nil
	}
	boot := opts.currentBoot()
	hadMarker, err := checkMarker(path, boot)
	if err != nil {
		return nil, err
	}
	lazy := opts.LazySync && !opts.NoSync && boot != ""
	b, err := openBolt(path, opts)
	if err != nil {
		return nil, err
	}
	if err := removeStaleRebuild(path); err != nil { // rebuild.go
		b.Close()
		return nil, err
	}
	if lazy {
		opts.NoSync = true // also for a file a rebuild swaps in (replace)
	}
	db := &DB{path: path, opts: opts, bolt: b, lazy: lazy}
	if err := db.init(); err != nil {
		b.Close()
		return nil, err
	}
	switch {
	case lazy:
		// The marker goes down (durably) before the first unsynced commit; init committed
		// with fsync, as the bbolt handle only turns lazy below.
		if err := writeMarker(path, boot); err != nil {
			b.Close()
			return nil, err
		}
		b.NoSync = true
	case hadMarker:
		// Left by a crashed process of this boot, and now opened to commit with fsync: sync
		// what the page cache holds, then the marker has served its purpose.
		if err := b.Sync(); err != nil {
			b.Close()
			return nil, fmt.Errorf("projections: sync %s: %w", path, err)
		}
		if err := removeMarker(path); err != nil {
			b.Close()
			return nil, err
		}
	}
	return db, nil
}

// openBolt opens the file and checks what can be checked cheaply: that bbolt accepts its meta
// pages, that it is not shorter than they say, and that every bucket's root page reads. bbolt
// panics (or faults on a page beyond a truncated file's end) on some damage; both become
// ErrCorrupt here rather than a crash.
func openBolt(path string, opts Options) (b *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if b != nil {
				b.Close()
			}
			b, err = nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, r)
		}
	}()
	// bbolt rebuilds the free list on open in a goroutine of its own, where a page beyond
	// the end of a truncated file is a panic nothing can recover: look before opening.
	if err := checkMeta(path); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	b, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout: time.Second, NoSync: opts.NoSync,
		// The free list is rebuilt on open instead of written at every commit, whose cost
		// would otherwise grow with the file (as etcd does).
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, ErrLocked
	}
	if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) ||
		errors.Is(err, berrors.ErrVersionMismatch) || errors.Is(err, berrors.ErrInvalidMapping) {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("projections: open %s: %w", path, err)
	}
	if err := sane(b); err != nil {
		b.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	return b, nil
}

// checkMeta reads bbolt's two meta pages (page header 16 bytes, then magic, version, page
// size, flags, root bucket, free list, page count, txid, FNV-64a checksum, little endian on
// every platform we build for) and checks that one is valid and that the file holds every
// page the newest valid one counts. A missing or empty file is a new database.
func checkMeta(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return nil // bbolt reports it with its own words
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return nil
	}
	meta := func(off int64) (pageSize uint32, pages, txid uint64, ok bool) {
		var b [80]byte
		if _, err := f.ReadAt(b[:], off); err != nil {
			return 0, 0, 0, false
		}
		m := b[16:]
		h := fnv.New64a()
		h.Write(m[:56])
		if binary.LittleEndian.Uint32(m[0:]) != 0xED0CDAED || binary.LittleEndian.Uint64(m[56:]) != h.Sum64() {
			return 0, 0, 0, false
		}
		return binary.LittleEndian.Uint32(m[8:]), binary.LittleEndian.Uint64(m[40:]), binary.LittleEndian.Uint64(m[48:]), true
	}
	ps0, pages, tx0, ok0 := meta(0)
	off1 := int64(os.Getpagesize())
	if ok0 {
		off1 = int64(ps0)
	}
	ps1, pages1, tx1, ok1 := meta(off1)
	ps := ps0
	switch {
	case !ok0 && !ok1:
		return errors.New("no valid meta page (not a bbolt file, or overwritten)")
	case !ok0 || (ok1 && tx1 > tx0):
		ps, pages = ps1, pages1
	}
	if need := int64(pages) * int64(ps); fi.Size() < need {
		return fmt.Errorf("file is %d bytes, its meta page counts %d pages of %d (truncated)", fi.Size(), pages, ps)
	}
	return nil
}

// sane reads the file size the meta page claims and every top-level bucket's first key.
func sane(b *bolt.DB) error {
	fi, err := os.Stat(b.Path())
	if err != nil {
		return err
	}
	return b.View(func(tx *bolt.Tx) error {
		if size := tx.Size(); fi.Size() < size {
			return fmt.Errorf("file is %d bytes, its meta page says %d (truncated)", fi.Size(), size)
		}
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			bk.Cursor().First()
			return nil
		})
	})
}

func (db *DB) init() error {
	return db.update(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			if v := m.Get(keySchema); v != nil && string(v) != strconv.Itoa(SchemaVersion) {
				db.emptied = string(v)
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

// view runs fn in a read transaction of the current file.
func (db *DB) view(fn func(*bolt.Tx) error) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.bolt.View(fn)
}

// update runs fn in a write transaction of the current file. Only the projector that owns
// the DB writes (and Open), so write transactions never wait for each other.
func (db *DB) update(fn func(*bolt.Tx) error) error {
	db.writeMu.Lock() // a compaction (erase.go) holds it while it copies the file
	defer db.writeMu.Unlock()
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.bolt.Update(fn)
}

// Path returns the file's path.
func (db *DB) Path() string { return db.path }

// Close closes the file. Transactions in progress finish first. A lazily synced file is
// synced first, and its marker removed.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.lazy {
		if err := db.bolt.Sync(); err != nil {
			db.bolt.Close()
			return fmt.Errorf("projections: sync %s: %w", db.path, err)
		}
	}
	if err := db.bolt.Close(); err != nil {
		return err
	}
	if db.lazy {
		return removeMarker(db.path)
	}
	return nil
}

// Check runs bbolt's consistency check and returns the first problem found.
func (db *DB) Check() error {
	return db.view(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
}

// Schema returns the projection schema version recorded in the file ("" if none).
func (db *DB) Schema() (string, error) {
	var v string
	err := db.view(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			v = string(m.Get(keySchema))
		}
		return nil
	})
	return v, err
}

// Checkpoint returns the log sequence of the last applied event.
func (db *DB) Checkpoint() (domain.Version, error) {
	var v domain.Version
	err := db.view(func(tx *bolt.Tx) error {
		v = checkpoint(tx)
		return nil
	})
	return v, err
}

func checkpoint(tx *bolt.Tx) domain.Version {
	m := tx.Bucket(bucketMeta)
	if m == nil {
		return 0 // a file opened with Inspect that was never initialised
	}
	b := m.Get(keyCheckpoint)
	if len(b) != 8 {
		return 0
	}
	return domain.Version(binary.BigEndian.Uint64(b))
}

func key(tenant domain.TenantID, id string) []byte {
	return []byte(string(tenant) + "/" + id)
}

// FindTenantByTokenHash returns the tenant whose SCIM token, live API key or remembered setup
// link hashes to hash (the tenant's SCIMTokenHash, APIKeys and SetupLinks tell which), or an
// error wrapping domain.ErrNotFound.
func (db *DB) FindTenantByTokenHash(_ context.Context, hash string) (domain.Tenant, error) {
	var t domain.Tenant
	err := db.view(func(tx *bolt.Tx) error {
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
	err := db.view(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketTenants), []byte(id), &t)
	})
	return t, err
}

// FindUser implements domain.UserReader.
func (db *DB) FindUser(_ context.Context, tenant domain.TenantID, id domain.UserID) (domain.User, error) {
	var u domain.User
	err := db.view(func(tx *bolt.Tx) error {
		return getUser(tx, key(tenant, string(id)), &u)
	})
	if errors.Is(err, domain.ErrNotFound) {
		return u, domain.Errorf(domain.ErrNotFound, "User %s not found", id)
	}
	return u, err
}

// FindUserByUserName implements domain.UserReader.
func (db *DB) FindUserByUserName(_ context.Context, tenant domain.TenantID, name string) (domain.User, error) {
	var u domain.User
	err := db.view(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketUserNames).Get(key(tenant, usernames.Fold(name)))
		if id == nil {
			return domain.ErrNotFound
		}
		return getUser(tx, key(tenant, string(id)), &u)
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
// total number of matches. An index attribute narrows the candidates first; with q.Reads,
// candidates are decoded only as far as Keep and Hold read them.
//
// It stops with ctx's error when ctx ends: a scan of a large company checks it as it goes.
func (db *DB) QueryUsers(ctx context.Context, tenant domain.TenantID, q domain.ListQuery) ([]domain.User, int, error) {
	var part func([]byte, *domain.User) error
	if q.Reads != nil {
		part = userPartial(newAttrSet(q.Reads))
	}
	return query(ctx, db, tenant, q, bucketUsers, userIndex, unmarshalUser, part)
}

// QueryGroups is QueryUsers for groups.
func (db *DB) QueryGroups(ctx context.Context, tenant domain.TenantID, q domain.ListQuery) ([]domain.Group, int, error) {
	var part func([]byte, *domain.Group) error
	if q.Reads != nil {
		part = groupPartial(newAttrSet(q.Reads))
	}
	return query(ctx, db, tenant, q, bucketGroups, groupIndex, unmarshalGroup, part)
}

// query is QueryUsers and QueryGroups: it decodes each candidate whole with decode, or with
// part (nil: decode) for Keep and Hold, then whole if it is on the page or held. A candidate
// that nothing reads (no Keep, no Hold, not on the page) is counted without being decoded.
func query[T any, P interface {
	*T
	domain.Resource
}](ctx context.Context, db *DB, tenant domain.TenantID, q domain.ListQuery, bucket []byte, index map[string]indexDef,
	decode, part func([]byte, *T) error) ([]T, int, error) {
	var out []T
	total := 0
	onPage := func() bool { return total >= q.Offset && (q.Limit < 0 || len(out) < q.Limit) }
	partial := part != nil && (q.Keep != nil || q.Hold != nil)
	first := decode // what Keep and Hold see
	if partial {
		first = part
	}
	err := db.view(func(tx *bolt.Tx) error {
		return candidates(ctx, tx, tenant, q, tx.Bucket(bucket), index, func(id, raw []byte) error {
			if q.Keep == nil && q.Hold == nil && !onPage() {
				total++
				return nil
			}
			row := new(T)
			if err := first(raw, row); err != nil {
				return fmt.Errorf("projections: %s %s: %w", bucket, id, err)
			}
			if q.Keep != nil && !q.Keep(P(row)) {
				return nil
			}
			held := q.Hold != nil && q.Hold(P(row))
			page := onPage()
			if partial && (held || page) {
				*row = *new(T)
				if err := decode(raw, row); err != nil {
					return fmt.Errorf("projections: %s %s: %w", bucket, id, err)
				}
			}
			if page {
				out = append(out, *row)
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
	fold   func(string) string // the index's fold of a value, nil for exact values
}

// userIndex and groupIndex name the index bucket of each indexable attribute and whether
// it is unique (value → id) or multi (value NUL id → "").
var (
	userIndex = map[string]indexDef{
		"username":     {bucketUserNames, true, usernames.Fold},
		"externalid":   {bucketUserExtID, false, nil},
		"emails.value": {bucketUserEmail, false, domain.FoldCase},
	}
	groupIndex = map[string]indexDef{
		"displayname": {bucketGroupName, true, domain.FoldCase},
		"externalid":  {bucketGroupExt, false, nil},
	}
)

// ctxCheckEvery is how many candidates a query reads between two looks at its context (a
// look costs a lock; a candidate a decode and a filter match).
const ctxCheckEvery = 32

// candidates calls fn with the id and row of every candidate of q in creation order: all
// rows of the tenant, or those an index names. It returns ctx's error (wrapped) once ctx has
// ended, checking before the first candidate and then every ctxCheckEvery. A query that reads
// for long runs in slices of work with pauses between them (scanPacer).
func candidates(ctx context.Context, tx *bolt.Tx, tenant domain.TenantID, q domain.ListQuery, rows *bolt.Bucket,
	index map[string]indexDef, fn func(id, raw []byte) error) error {
	n := 0
	stopped := func() error {
		if n++; n%ctxCheckEvery != 1 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("projections: query stopped after %d candidates: %w", n-1, err)
		}
		return nil
	}
	attr := strings.ToLower(q.IndexAttr)
	if _, ok := index[attr]; !ok && attr != "id" {
		attr = "" // no index on this attribute here: scan, Keep decides
	}
	if attr == "" {
		prefix := key(tenant, "")
		c := rows.Cursor()
		pace := newScanPacer(q.Yield)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if err := stopped(); err != nil {
				return err
			}
			if err := pace.step(ctx); err != nil {
				return fmt.Errorf("projections: query stopped after %d candidates: %w", n-1, err)
			}
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
		if ix.fold != nil {
			value = ix.fold(value)
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
	pace := newScanPacer(q.Yield)
	for _, id := range slices.CompactFunc(ids, bytes.Equal) {
		if err := stopped(); err != nil {
			return err
		}
		if err := pace.step(ctx); err != nil {
			return fmt.Errorf("projections: query stopped after %d candidates: %w", n-1, err)
		}
		if raw := rows.Get(key(tenant, string(id))); raw != nil {
			if err := fn(id, raw); err != nil {
				return err
			}
		}
	}
	return nil
}

// getUser decodes the user row k with the row codec (rowjson.go).
func getUser(tx *bolt.Tx, k []byte, u *domain.User) error {
	raw := tx.Bucket(bucketUsers).Get(k)
	if raw == nil {
		return domain.ErrNotFound
	}
	if err := unmarshalUser(raw, u); err != nil {
		return fmt.Errorf("projections: decode %s: %w", k, err)
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
