package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
)

// streamConfig is the only configuration the event stream may have.
func (s *Store) streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:               StreamName,
		Description:        "idledger event log (immutable)",
		Subjects:           []string{"idl.>"},
		Storage:            jetstream.FileStorage,
		Replicas:           s.cfg.Replicas,
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardNew,
		MaxAge:             0,
		MaxMsgs:            -1,
		MaxBytes:           -1,
		MaxMsgsPerSubject:  -1,
		Duplicates:         s.cfg.DuplicateWindow,
		DenyDelete:         true,
		DenyPurge:          true,
		AllowDirect:        true,
		AllowAtomicPublish: true,
	}
}

// ensure creates the stream and the key bucket if missing and checks an existing stream's
// configuration.
func (s *Store) ensure(ctx context.Context) error {
	want := s.streamConfig()
	st, err := s.js.CreateStream(ctx, want)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		st, err = s.js.Stream(ctx, StreamName)
		if err == nil {
			if diff := configDiff(st.CachedInfo().Config, want); diff != "" {
				return fmt.Errorf("eventstore: stream %s exists with a different configuration (%s); "+
					"idledger will not change an existing log: fix it with the nats CLI or use another data dir", StreamName, diff)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("eventstore: create stream %s: %w", StreamName, err)
	}
	s.stream = st
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      keysBucket,
		Description: "idledger per-tenant secrets kept out of the immutable log",
		Storage:     jetstream.FileStorage,
		Replicas:    s.cfg.Replicas,
		History:     1,
	})
	if err != nil {
		return fmt.Errorf("eventstore: create key bucket %s: %w", keysBucket, err)
	}
	s.keys = kv
	return nil
}

// configDiff lists the settings of got that differ from want, or "" if none does.
func configDiff(got, want jetstream.StreamConfig) string {
	var d []string
	check := func(name string, g, w any) {
		if fmt.Sprint(g) != fmt.Sprint(w) {
			d = append(d, fmt.Sprintf("%s is %v, want %v", name, g, w))
		}
	}
	check("subjects", got.Subjects, want.Subjects)
	check("storage", got.Storage, want.Storage)
	check("replicas", got.Replicas, want.Replicas)
	check("retention", got.Retention, want.Retention)
	check("discard", got.Discard, want.Discard)
	check("max_age", got.MaxAge, want.MaxAge)
	check("max_msgs", got.MaxMsgs, want.MaxMsgs)
	check("max_bytes", got.MaxBytes, want.MaxBytes)
	check("max_msgs_per_subject", got.MaxMsgsPerSubject, want.MaxMsgsPerSubject)
	check("duplicate_window", got.Duplicates, want.Duplicates)
	check("deny_delete", got.DenyDelete, want.DenyDelete)
	check("deny_purge", got.DenyPurge, want.DenyPurge)
	check("allow_direct", got.AllowDirect, want.AllowDirect)
	check("allow_atomic", got.AllowAtomicPublish, want.AllowAtomicPublish)
	// Settings that would let messages leave the log or change behind its back.
	check("allow_msg_ttl", got.AllowMsgTTL, false)
	check("sealed", got.Sealed, false)
	check("mirror", got.Mirror != nil, false)
	check("sources", len(got.Sources), 0)
	check("republish", got.RePublish != nil, false)
	check("subject_transform", got.SubjectTransform != nil, false)
	check("allow_rollup_hdrs", got.AllowRollup, false)
	if got.MaxMsgSize > 0 && got.MaxMsgSize < 1<<20 {
		d = append(d, fmt.Sprintf("max_msg_size is %d, want unlimited or at least 1 MiB", got.MaxMsgSize))
	}
	return strings.Join(d, "; ")
}

// Head returns the sequence of the last message in the stream.
func (s *Store) Head(ctx context.Context) (domain.Version, error) {
	if err := s.connected(); err != nil {
		return 0, err
	}
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, unavailable(fmt.Errorf("eventstore: stream info: %w", err))
	}
	return domain.Version(info.State.LastSeq), nil
}

// Messages returns the number of messages in the stream.
func (s *Store) Messages(ctx context.Context) (uint64, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("eventstore: stream info: %w", err)
	}
	return info.State.Msgs, nil
}
