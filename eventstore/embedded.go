package eventstore

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// startEmbedded starts a nats-server with JetStream in cfg.Dir/nats, without any network
// listener, and connects to it in-process.
// cfg.MaxStorage, if set, is JetStream's storage limit; else the server chooses (75 % of the
// free disk at start).
func startEmbedded(cfg Config) (*server.Server, *server.Options, *nats.Conn, error) {
	opts := &server.Options{
		ServerName:        "idledger",
		JetStream:         true,
		StoreDir:          embeddedDir(cfg.Dir),
		DontListen:        true,
		NoSigs:            true,
		NoLog:             true,
		SyncAlways:        !cfg.NoSync,
		JetStreamMaxStore: cfg.MaxStorage,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("eventstore: embedded nats-server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, nil, nil, fmt.Errorf("eventstore: embedded nats-server in %s did not start (is another idledger using this data dir?)", opts.StoreDir)
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("idledger"), syncQueue)
	if err != nil {
		srv.Shutdown()
		return nil, nil, nil, fmt.Errorf("eventstore: in-process connection: %w", err)
	}
	return srv, opts, nc, nil
}
