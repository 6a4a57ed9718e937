package eventstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
)

// Webhook deliveries (docs/events.md, "Webhooks"): each endpoint has its own durable consumer
// of the company's subjects, so its progress survives restarts and is shared by every
// instance. The consumer lets one message be outstanding at a time (MaxAckPending 1): deliveries
// to an endpoint are in log order, and two instances never deliver to it at the same time
// (the one holding the message delivers; the other's fetch waits). Secrets and delivery
// records live in KV buckets, outside the log.

// KV buckets of the webhooks. Neither expires: an endpoint's records are deleted with it.
const (
	// BucketWebhookSecrets holds each endpoint's signing secret: the log cannot forget, so a
	// secret never enters it, and deleting an endpoint or rotating its secret deletes the old
	// one for good.
	BucketWebhookSecrets = "IDL_WEBHOOK_SECRETS"
	// BucketWebhookDeliveries holds each endpoint's recent delivery attempts and retry state.
	BucketWebhookDeliveries = "IDL_WEBHOOK_DELIVERIES"
)

// DefaultWebhookAckWait is how long a fetched message stays with one deliverer before
// JetStream hands it to another (a deliverer that died): longer than a delivery's timeout.
const DefaultWebhookAckWait = 60 * time.Second

// A Bucket is a KV bucket of records that do not expire, shared by every instance. It
// implements [domain.RecordStore].
type Bucket struct {
	kv jetstream.KeyValue
}

// OpenBucket creates (or opens) a KV bucket without expiry.
func (s *Store) OpenBucket(ctx context.Context, bucket, description string) (*Bucket, error) {
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, Description: description, Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas, History: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("eventstore: create bucket %s: %w", bucket, err)
	}
	return &Bucket{kv: kv}, nil
}

// queueKey turns a company and endpoint id into a token of a consumer name.
func queueKey(tenant domain.TenantID, id string) string {
	h := sha256.New()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return hex.EncodeToString(h.Sum(nil)[:20])
}

// Get returns the value under key, or an error wrapping domain.ErrNotFound.
func (b *Bucket) Get(ctx context.Context, key string) ([]byte, error) {
	e, err := b.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, domain.Errorf(domain.ErrNotFound, "no record")
	}
	if err != nil {
		return nil, unavailable(fmt.Errorf("eventstore: get record: %w", err))
	}
	return e.Value(), nil
}

// Put stores value under key.
func (b *Bucket) Put(ctx context.Context, key string, value []byte) error {
	if _, err := b.kv.Put(ctx, key, value); err != nil {
		return unavailable(fmt.Errorf("eventstore: put record: %w", err))
	}
	return nil
}

// Delete removes key (and, the bucket keeping one revision, its value).
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := b.kv.Purge(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return unavailable(fmt.Errorf("eventstore: delete record: %w", err))
	}
	return nil
}

// webhookQueue is one endpoint's durable consumer of its company's messages.
type webhookQueue struct {
	store *Store // opens sealed personal values (keys.go)
	cons  jetstream.Consumer
}

// webhookConsumer names an endpoint's consumer for one epoch (a replay starts a new one).
func webhookConsumer(tenant domain.TenantID, id string, epoch domain.Version) string {
	return "WH_" + queueKey(tenant, id) + "_" + strconv.FormatUint(uint64(epoch), 10)
}

// WebhookQueue opens (creating it the first time) the durable consumer of an endpoint's
// epoch, which starts after log position from; ackWait (0: DefaultWebhookAckWait) is how long
// a fetched message stays with its deliverer, fixed when the consumer is created. It
// implements [domain.WebhookQueues].
func (s *Store) WebhookQueue(ctx context.Context, tenant domain.TenantID, id string, epoch, from domain.Version, ackWait time.Duration) (domain.WebhookQueue, error) {
	if ackWait <= 0 {
		ackWait = DefaultWebhookAckWait
	}
	if !validToken(string(tenant)) {
		return nil, domain.Errorf(domain.ErrInvalid, "invalid company id")
	}
	if err := s.connected(); err != nil {
		return nil, err
	}
	name := webhookConsumer(tenant, id, epoch)
	cons, err := s.js.CreateConsumer(ctx, StreamName, jetstream.ConsumerConfig{
		Durable:        name,
		Description:    "webhook deliveries of one endpoint",
		FilterSubjects: []string{tenantFilter(tenant)},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    uint64(from) + 1,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        ackWait,
		MaxAckPending:  1,
		MaxDeliver:     -1,
		Replicas:       s.cfg.Replicas,
	})
	if errors.Is(err, jetstream.ErrConsumerExists) {
		cons, err = s.js.Consumer(ctx, StreamName, name)
	}
	if err != nil {
		return nil, unavailable(fmt.Errorf("eventstore: webhook queue: %w", err))
	}
	return &webhookQueue{cons: cons, store: s}, nil
}

// DeleteWebhookQueue deletes an endpoint's consumer of one epoch (none is fine).
func (s *Store) DeleteWebhookQueue(ctx context.Context, tenant domain.TenantID, id string, epoch domain.Version) error {
	err := s.js.DeleteConsumer(ctx, StreamName, webhookConsumer(tenant, id, epoch))
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return unavailable(fmt.Errorf("eventstore: delete webhook queue: %w", err))
	}
	return nil
}

// pending is the next message of an endpoint's queue, held by its deliverer until it
// acknowledges or retries it.
type pending struct {
	event domain.Event
	msg   jetstream.Msg
}

// Event is the message (an index record or a private event comes with it too: the deliverer
// acknowledges what it does not send).
func (p *pending) Event() domain.Event { return p.event }

// Next waits up to wait for the queue's next message; it returns nil if none came.
func (q *webhookQueue) Next(ctx context.Context, wait time.Duration) (domain.PendingEvent, error) {
	fctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	batch, err := q.cons.Fetch(1, jetstream.FetchContext(fctx))
	if err != nil {
		if fctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, unavailable(fmt.Errorf("eventstore: webhook queue: %w", err))
	}
	if m, ok := <-batch.Messages(); ok {
		md, err := m.Metadata()
		if err != nil {
			return nil, unavailable(fmt.Errorf("eventstore: webhook queue: %w", err))
		}
		e, err := q.store.decodeOpen(ctx, m.Subject(), m.Headers(), m.Data(), md.Sequence.Stream, md.Timestamp)
		if err != nil {
			return nil, err
		}
		return &pending{event: e, msg: m}, nil
	}
	if err := batch.Error(); err != nil && fctx.Err() == nil {
		return nil, unavailable(fmt.Errorf("eventstore: webhook queue: %w", err))
	}
	return nil, ctx.Err()
}

// Ack records that the message was delivered (or needs no delivery): the queue moves on. It
// does not wait for the server's confirmation: the next fetch on the same connection comes
// after it, and a lost acknowledgement only means one more delivery (at least once).
func (p *pending) Ack(context.Context) error {
	if err := p.msg.Ack(); err != nil {
		return unavailable(fmt.Errorf("eventstore: webhook ack: %w", err))
	}
	return nil
}

// Retry hands the message back, to be fetched again after delay; the queue stays on it.
func (p *pending) Retry(delay time.Duration) error {
	if err := p.msg.NakWithDelay(delay); err != nil {
		return unavailable(fmt.Errorf("eventstore: webhook retry: %w", err))
	}
	return nil
}

var (
	_ domain.WebhookQueues = (*Store)(nil)
	_ domain.RecordStore   = (*Bucket)(nil)
)
