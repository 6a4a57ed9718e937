// Package eventstore keeps idledger's event log in NATS JetStream.
//
// It implements [domain.EventLog] and [domain.EventSource] and is the only package that speaks
// JetStream. Without a NATS URL it starts an embedded nats-server (JetStream file store in
// DIR/nats, no network listener, in-process client connection); with one it connects to an
// external server or cluster.
//
// # Layout
//
// One stream, IDL_EVENTS, holds every event under subjects of the form
//
//	idl.<tenant>.tenant               the company aggregate
//	idl.<tenant>.user.<userID>        one user aggregate
//	idl.<tenant>.uname.<claimKey>     one userName claim (an index record, not a domain event)
//	idl.<tenant>.group.<groupID>      one group aggregate (membership changes included)
//	idl.<tenant>.gname.<claimKey>     one group displayName claim (index record)
//	idl.<tenant>.cycle.scim           the SCIM client's sync-cycle markers (domain/history.go)
//
// A second stream, IDL_REQUESTS (requests.go), keeps every SCIM request's record for a limited
// time; it is not part of the log.
//
// The stream denies delete and purge and discards new messages rather than old ones: nothing
// that was acknowledged ever leaves the log. Each request's messages are appended as one atomic
// batch; each message asserts its subject's last sequence (optimistic concurrency) and carries a
// Nats-Msg-Id (de-duplication). Claim keys are keyed hashes, so no userName appears in a subject.
// The per-tenant hash keys live in the KV bucket IDL_KEYS, which, unlike the log, may be deleted.
package eventstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain/observe"
)

// StreamName is the name of the event stream.
const StreamName = "IDL_EVENTS"

// keysBucket holds per-tenant secrets that must stay out of the immutable log.
const keysBucket = "IDL_KEYS"

// Config says where the log lives and how durable it is.
type Config struct {
	// Dir is the data directory; the embedded server stores JetStream data in Dir/nats.
	Dir string
	// URL, when set, connects to an external NATS server or cluster instead.
	URL string
	// Replicas is the stream's replication factor: 1 for the embedded server (the default),
	// typically 3 on a cluster.
	Replicas int
	// NoSync turns off fsync before acknowledgement on the embedded server. The default (false)
	// fsyncs every write before it is acknowledged.
	NoSync bool
	// DuplicateWindow is the de-duplication window for Nats-Msg-Id (default 2 minutes).
	DuplicateWindow time.Duration
	// Logger receives operational messages; nil means slog.Default().
	Logger *slog.Logger
	// Observer is told the duration and outcome of every Append; nil measures nothing.
	Observer observe.Observer
	// RequestRetention and RequestMaxBytes bound the SCIM request records kept in
	// IDL_REQUESTS (requests.go); zero means the defaults: 30 days, and 1 GiB or, with the
	// embedded server, an eighth of the data volume if that is less.
	RequestRetention time.Duration
	RequestMaxBytes  int64
	// MaxStorage is the embedded server's storage limit (JetStream's max_file_store); zero
	// means the size of the data volume (storage.go). Appends beyond it wrap
	// domain.ErrStorageFull.
	MaxStorage int64
	// MinFreeBytes is the free space on the data volume below which the embedded store refuses
	// appends with domain.ErrStorageFull before writing anything; zero means 1/64 of the volume
	// (4 to 64 MiB), negative turns the check off (storage.go).
	MinFreeBytes int64
	// MasterKey wraps the per-person data keys under which personal values are sealed
	// (crypto.go, keys.go). Nil stores personal data in clear and cannot erase it: only for
	// tests and the benchmark's comparison run.
	MasterKey *MasterKey
	// NextMasterKey is the master key RotateMasterKey moves the data keys to; nil otherwise.
	NextMasterKey *MasterKey
}

// Store is the event log. It is safe for concurrent use; Close releases it.
type Store struct {
	cfg Config
	log *slog.Logger
	obs observe.Observer // nil measures nothing

	hashMu sync.Mutex                   // guards hashes
	hashes map[uint64][sha256.Size]byte // sequence → hash of the last message per subject this process stored (chain.go)

	commits     chan commitReq // Append calls waiting for the committer (commit.go)
	batchSlots  chan struct{}  // one token per atomic batch in flight (commit.go)
	closed      chan struct{}  // closed by Close
	committerWG sync.WaitGroup
	closeOnce   sync.Once
	// reload keeps appends and a JetStream reload (storage.go) apart: appends hold it for
	// reading, the healer for writing, so JetStream is never shut down under an append in
	// flight (whose outcome would then be unknown).
	reload   sync.RWMutex
	healers  sync.WaitGroup  // the healer goroutine (storage.go); Close waits for it
	srv      *server.Server  // nil with an external NATS
	srvOpts  *server.Options // the embedded server's options, to reload JetStream (storage.go)
	storage  storage         // full-disk state of the embedded server (storage.go)
	nc       *nats.Conn
	js       jetstream.JetStream
	stream   jetstream.Stream
	keys     jetstream.KeyValue
	requests jetstream.Stream // IDL_REQUESTS, the expiring SCIM request records (requests.go)

	kr keyring // data keys of personal data (keys.go)

	mu          sync.Mutex        // guards claimSecret
	claimSecret map[string][]byte // tenant id → claim HMAC key
}

// Open starts or connects to NATS, ensures the stream exists with the expected configuration
// and returns the Store. A stream that exists with a different configuration is an error that
// names each difference.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.DuplicateWindow <= 0 {
		cfg.DuplicateWindow = 2 * time.Minute
	}
	s := &Store{cfg: cfg, log: cfg.Logger, obs: cfg.Observer, claimSecret: make(map[string][]byte),
		commits: make(chan commitReq, 256), closed: make(chan struct{}), batchSlots: make(chan struct{}, maxOpenBatches)}
	for range committers {
		s.committerWG.Add(1)
		go s.committer()
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	var err error
	if cfg.URL == "" {
		defaultReservations(&s.cfg)
		s.srv, s.srvOpts, s.nc, err = startEmbedded(s.cfg)
	} else {
		// Reconnect for ever, and buffer nothing while reconnecting: a request fails at
		// once with domain.ErrUnavailable instead of hanging (faults.go).
		s.nc, err = nats.Connect(cfg.URL, nats.Name("idledger"), syncQueue, nats.MaxReconnects(-1),
			nats.ReconnectBufSize(-1), nats.ReconnectWait(time.Second),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err != nil { // nil: our own Close
					s.log.Warn("lost the connection to NATS: writes answer 503 until it is back", "err", err)
				}
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				s.log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
			}))
		if err != nil {
			err = fmt.Errorf("eventstore: connect %s: %w", cfg.URL, err)
		}
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	s.js, err = jetstream.New(s.nc)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("eventstore: jetstream: %w", err)
	}
	if err := s.ensure(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.ensureRequests(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if cfg.MasterKey != nil {
		s.kr.master, s.kr.next = cfg.MasterKey, cfg.NextMasterKey
		if err := s.ensureKeys(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Close drains the connection and shuts the embedded server down. It is safe to call twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	s.committerWG.Wait()
	if s.nc != nil && s.nc.IsConnected() {
		// Request records are published without waiting: let the last ones land (bounded,
		// they are not part of the log).
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.FlushRequests(ctx)
		cancel()
	}
	if s.nc != nil {
		if err := s.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			s.nc.Close()
		}
		for s.nc.IsDraining() {
			time.Sleep(5 * time.Millisecond)
		}
		s.nc.Close()
	}
	s.healers.Wait() // a healer may be reloading JetStream: let it finish before the shutdown
	if s.srv != nil {
		// s.srv stays set: a late reader (a request record's error handler) then meets a server
		// that is shut down, not a nil pointer.
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
	return nil
}

// Embedded reports whether the store runs its own nats-server.
func (s *Store) Embedded() bool { return s.srv != nil }

// ErrNotEmbedded is returned by InProcessConn when the store uses an external NATS.
var ErrNotEmbedded = errors.New("eventstore: the store is connected to an external NATS; connect to its URL instead")

// InProcessConn opens a new in-process connection to the embedded nats-server, for tools and
// tests that read or write the raw stream: with it a Store is a nats.InProcessConnProvider,
// so nats.Connect("", nats.InProcessServer(store)) connects to the store's server. With an
// external NATS it returns ErrNotEmbedded.
func (s *Store) InProcessConn() (net.Conn, error) {
	if s.srv == nil {
		return nil, ErrNotEmbedded
	}
	return s.srv.InProcessConn()
}
