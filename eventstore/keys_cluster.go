package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/idledger/idledger/domain"
)

// Erasures across instances. Every instance that shares the log keeps unwrapped data keys in
// memory, so an erasure is effective only once each has dropped the key. Each instance
// announces itself in the KV bucket IDL_INSTANCES (an entry per instance, refreshed every
// instanceBeat, gone instanceTTL after its instance stops) and answers every erasure notice on
// keyInvalidateSubject with its id after dropping the key. EraseUserKey waits for the answer
// of every instance listed before it answers; one that does not answer within
// confirmTimeout makes the erasure fail with domain.ErrUnavailable (the key is gone already;
// a retry asks again).
const (
	instancesBucket = "IDL_INSTANCES"
	instanceTTL     = 30 * time.Second
	instanceBeat    = 10 * time.Second
	confirmTimeout  = 5 * time.Second
)

// announce registers this instance and keeps its entry fresh until the store closes.
func (s *Store) announce(ctx context.Context) error {
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      instancesBucket,
		Description: "idledger instances sharing the log (erasures wait for each to drop a key)",
		Storage:     jetstream.MemoryStorage,
		Replicas:    s.cfg.Replicas,
		History:     1,
		TTL:         instanceTTL,
	})
	if err != nil {
		return fmt.Errorf("eventstore: create bucket %s: %w", instancesBucket, err)
	}
	s.kr.instances, s.kr.id = kv, nuid.Next()
	if _, err := kv.Put(ctx, s.kr.id, nil); err != nil {
		return fmt.Errorf("eventstore: announce instance: %w", err)
	}
	s.healers.Add(1)
	go func() {
		defer s.healers.Done()
		t := time.NewTicker(instanceBeat)
		defer t.Stop()
		for {
			select {
			case <-s.closed:
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = kv.Delete(ctx, s.kr.id)
				cancel()
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), instanceBeat)
				if _, err := kv.Put(ctx, s.kr.id, nil); err != nil {
					s.log.Warn("could not refresh this instance's entry in "+instancesBucket, "err", err)
				}
				cancel()
			}
		}
	}()
	return nil
}

// confirmForgotten tells every instance that the key id is erased and waits until each listed
// in IDL_INSTANCES has answered that it dropped it.
func (s *Store) confirmForgotten(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, confirmTimeout)
	defer cancel()
	want := make(map[string]bool)
	lister, err := s.kr.instances.ListKeys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return unavailable(fmt.Errorf("eventstore: list instances: %w", err))
	}
	if lister != nil {
		for k := range lister.Keys() {
			want[k] = true
		}
		_ = lister.Stop()
	}
	inbox := s.nc.NewRespInbox()
	replies := make(chan string, 64)
	sub, err := s.nc.Subscribe(inbox, func(m *nats.Msg) {
		select {
		case replies <- string(m.Data):
		default:
		}
	})
	if err != nil {
		return unavailable(fmt.Errorf("eventstore: announce key erasure: %w", err))
	}
	defer sub.Unsubscribe()
	if err := s.nc.PublishRequest(keyInvalidateSubject, inbox, []byte(id)); err != nil {
		return unavailable(fmt.Errorf("eventstore: announce key erasure: %w", err))
	}
	for len(want) > 0 {
		select {
		case who := <-replies:
			delete(want, who)
		case <-ctx.Done():
			missing := make([]string, 0, len(want))
			for k := range want {
				missing = append(missing, k)
			}
			return fmt.Errorf("%w: eventstore: key erased, but %d instance(s) did not confirm dropping it from memory (%v): retry the erasure",
				domain.ErrUnavailable, len(missing), missing)
		}
	}
	return nil
}
