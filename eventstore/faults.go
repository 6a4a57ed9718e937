package eventstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
)

// Faults. With an external NATS the connection may drop (a server restarts, a node of the
// cluster is lost, the network fails). The client reconnects by itself, for ever
// (nats.MaxReconnects(-1)), and buffers nothing meanwhile (nats.ReconnectBufSize(-1)): a
// request made while it is reconnecting fails at once instead of waiting for a timeout. Such
// failures become domain.ErrUnavailable here, once, so that httpapi answers 503 with
// Retry-After (Entra retries) and the projector resubscribes instead of failing closed.

// unavailable returns err wrapped with domain.ErrUnavailable if it means the log could not be
// reached (no connection, no responder, no answer in time, no JetStream leader), else err.
// A nil err stays nil. Context cancellation by the caller is not a fault of the log, but a
// deadline that passed while waiting for NATS is.
func unavailable(err error) error {
	if err == nil || errors.Is(err, domain.ErrUnavailable) || errors.Is(err, domain.ErrStorageFull) {
		return err
	}
	if isUnavailable(err) {
		return fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	return err
}

func isUnavailable(err error) bool {
	for _, target := range []error{
		nats.ErrConnectionClosed, nats.ErrConnectionReconnecting, nats.ErrDisconnected,
		nats.ErrNoResponders, nats.ErrTimeout, nats.ErrReconnectBufExceeded, nats.ErrConnectionDraining,
		nats.ErrStaleConnection, nats.ErrNoServers,
		jetstream.ErrNoStreamResponse, jetstream.ErrConnectionClosed, jetstream.ErrNoHeartbeat,
		jetstream.ErrConsumerLeadershipChanged, jetstream.ErrAsyncPublishTimeout,
		context.DeadlineExceeded,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	// JetStream answers 503 when a clustered stream or the meta layer has no leader yet
	// (10008 "JetStream system temporarily unavailable").
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code == http.StatusServiceUnavailable
}

// connected fails fast with domain.ErrUnavailable while the connection to NATS is down, so a
// request does not wait for a timeout it cannot beat.
func (s *Store) connected() error {
	if s.nc == nil || s.nc.IsConnected() {
		return nil
	}
	return domain.Errorf(domain.ErrUnavailable, "the event log is unreachable just now; retry later")
}
