package eventstore_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
)

// TestAppend_past_the_batch_limit: the server stores at most 1000 messages in one atomic batch.
// The domain does not know that limit: writes without a version check at the end of a batch
// (a deleted user leaving its groups) follow in further batches, anything else past the limit
// is refused whole.
func TestAppend_past_the_batch_limit(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	event := func(kind domain.Kind, id, typ string, data any) domain.Event {
		return domain.Event{ID: fmt.Sprint(kind, "-", id), Tenant: "t1", Kind: kind, AggregateID: id,
			Type: typ, Schema: domain.SchemaOf(typ), At: at, Actor: "system", Data: data}
	}
	const groups = 2100
	deleteBatch := func(expected domain.Version) domain.Batch {
		b := domain.Batch{Tenant: "t1", Writes: []domain.Write{{Expected: expected,
			Event: event(domain.KindUser, "u1", domain.EventUserDeleted, domain.UserDeleted{})}}}
		for i := range groups {
			b.Writes = append(b.Writes, domain.Write{NoExpect: true, Event: event(domain.KindGroup, fmt.Sprint("g", i),
				domain.EventGroupMembersRemoved, domain.GroupMembersRemoved{Members: []domain.UserID{"u1"}, Cause: domain.EventUserDeleted})})
		}
		return b
	}

	t.Run("unchecked writes at the end follow in further batches", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		v, err := s.Append(ctx, deleteBatch(0))
		if err != nil {
			t.Fatal(err)
		}
		if n := messages(t, s); v != groups+1 || n != groups+1 {
			t.Fatalf("Append = %d, stream holds %d messages; want %d", v, n, groups+1)
		}
		for id, want := range map[string]domain.Version{"g0": 2, "g998": 1000, "g999": 1001, "g2099": groups + 1} {
			if got, err := s.Version(ctx, "t1", domain.KindGroup, id); err != nil || got != want {
				t.Errorf("group %s at %d (%v), want %d", id, got, err, want)
			}
		}
		if got, _ := s.Version(ctx, "t1", domain.KindUser, "u1"); got != 1 {
			t.Errorf("user at %d, want 1", got)
		}
	})

	t.Run("a lost race in the first batch stores nothing", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		if _, err := s.Append(t.Context(), deleteBatch(7)); !errors.Is(err, domain.ErrConflict) {
			t.Fatalf("err = %v, want ErrConflict", err)
		}
		if n := messages(t, s); n != 0 {
			t.Errorf("stream holds %d messages, want 0", n)
		}
	})

	t.Run("a checked write past the limit is refused whole", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		b := deleteBatch(0)
		b.Writes = append(b.Writes, domain.Write{Event: event(domain.KindUser, "u2", domain.EventUserDeleted, domain.UserDeleted{})})
		if _, err := s.Append(t.Context(), b); !errors.Is(err, domain.ErrTooMany) {
			t.Fatalf("err = %v, want ErrTooMany", err)
		}
		if n := messages(t, s); n != 0 {
			t.Errorf("stream holds %d messages, want 0", n)
		}
	})
}
