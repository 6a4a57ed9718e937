package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/scim"
	"github.com/idledger/idledger/eventstore"
)

// MustOpenStore opens a Store on an embedded JetStream in a temp dir; closed at test end.
func MustOpenStore(tb testing.TB) *eventstore.Store {
	tb.Helper()
	return mustOpen(tb, eventstore.Config{Dir: tb.TempDir(), NoSync: true})
}

// mustOpen opens a Store with cfg; it is closed at test end (closing it earlier is fine).
func mustOpen(tb testing.TB, cfg eventstore.Config) *eventstore.Store {
	tb.Helper()
	s, err := eventstore.Open(tb.Context(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// rawStream returns the IDL_EVENTS stream through the store's own connection, for looking at
// what the server really holds.
func rawStream(tb testing.TB, s *eventstore.Store) (jetstream.JetStream, jetstream.Stream) {
	tb.Helper()
	js, err := jetstream.New(rawConn(tb, s))
	if err != nil {
		tb.Fatal(err)
	}
	st, err := js.Stream(tb.Context(), eventstore.StreamName)
	if err != nil {
		tb.Fatal(err)
	}
	return js, st
}

func messages(tb testing.TB, s *eventstore.Store) uint64 {
	tb.Helper()
	n, err := s.Messages(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// idSeq returns a generator of time-ordered looking ids (32 lowercase hex), safe for
// concurrent use.
func idSeq() func() string {
	var n atomic.Uint64
	return func() string { return fmt.Sprintf("%032x", 0x0192_0000_0000+n.Add(1)) }
}

var t0 = time.Date(2026, 11, 20, 9, 0, 0, 123456789, time.UTC)

func tenantCreated(tenant domain.TenantID, eventID string) domain.Event {
	return domain.Event{
		ID: eventID, Tenant: tenant, Kind: domain.KindTenant, AggregateID: string(tenant),
		Type: domain.EventTenantCreated, Schema: 1, At: t0, Actor: "admin", Correlation: "req-1",
		Data: domain.TenantCreated{Name: "Acme", SCIMTokenHash: domain.HashToken("idl_token")},
	}
}

func userCreated(tenant domain.TenantID, id, eventID, userName string) domain.Event {
	return domain.Event{
		ID: eventID, Tenant: tenant, Kind: domain.KindUser, AggregateID: id,
		Type: domain.EventUserCreated, Schema: 1, At: t0.Add(time.Second), Actor: "scim:tok1", Correlation: "req-2",
		Data: domain.UserCreated{
			Schemas: []string{scim.SchemaUser},
			Attributes: map[string]any{
				"userName": userName,
				"active":   true,
				"name":     map[string]any{"givenName": "Ada", "familyName": "Lovelace"},
				"emails":   []any{map[string]any{"value": "ada@example.com", "primary": true}},
			},
		},
	}
}

// noop is an event of a type this code does not know: stored and loaded with a nil Data.
func noop(tenant domain.TenantID, id, eventID string) domain.Event {
	return domain.Event{ID: eventID, Tenant: tenant, Kind: domain.KindUser, AggregateID: id,
		Type: "test.noop", Schema: 1, At: t0, Actor: "system"}
}

func TestStreamConfig(t *testing.T) {
	t.Parallel()

	t.Run("created_immutable_unlimited", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		_, st := rawStream(t, s)
		info, err := st.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		c := info.Config
		for _, f := range []struct {
			name      string
			got, want any
		}{
			{"subjects", c.Subjects, []string{"idl.>"}},
			{"storage", c.Storage, jetstream.FileStorage},
			{"replicas", c.Replicas, 1},
			{"retention", c.Retention, jetstream.LimitsPolicy},
			{"discard", c.Discard, jetstream.DiscardNew},
			{"deny_delete", c.DenyDelete, true},
			{"deny_purge", c.DenyPurge, true},
			{"allow_atomic", c.AllowAtomicPublish, true},
			{"allow_direct", c.AllowDirect, true},
			{"allow_rollup", c.AllowRollup, false},
			{"allow_msg_ttl", c.AllowMsgTTL, false},
			{"sealed", c.Sealed, false},
			{"max_age", c.MaxAge, time.Duration(0)},
			{"max_msgs", c.MaxMsgs, int64(-1)},
			{"max_bytes", c.MaxBytes, int64(-1)},
			{"max_msgs_per_subject", c.MaxMsgsPerSubject, int64(-1)},
			{"max_msg_size", c.MaxMsgSize, int32(-1)},
			{"duplicate_window", c.Duplicates, 2 * time.Minute},
		} {
			if !reflect.DeepEqual(f.got, f.want) {
				t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
			}
		}
	})

	t.Run("reopen_same_dir_keeps_events", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		cfg := eventstore.Config{Dir: dir} // fsync on: this is about durability across restarts
		s := mustOpen(t, cfg)
		v, err := s.Append(t.Context(), domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: tenantCreated("t1", "e1")}}})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()

		s = mustOpen(t, cfg)
		events, got, err := s.Load(t.Context(), "t1", domain.KindTenant, "t1")
		if err != nil {
			t.Fatal(err)
		}
		if got != v || len(events) != 1 || events[0].ID != "e1" {
			t.Errorf("after reopen: version %d, %d events, want version %d and event e1", got, len(events), v)
		}
		if head, _ := s.Head(t.Context()); head != v {
			t.Errorf("Head = %d, want %d", head, v)
		}
	})

	t.Run("reopen_with_other_duplicate_window_fails_naming_it", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		mustOpen(t, eventstore.Config{Dir: dir, NoSync: true}).Close()
		s, err := eventstore.Open(t.Context(), eventstore.Config{Dir: dir, NoSync: true, DuplicateWindow: 5 * time.Minute})
		if err == nil {
			s.Close()
			t.Fatal("Open with another duplicate window succeeded, want an error")
		}
		if !strings.Contains(err.Error(), "duplicate_window") {
			t.Errorf("error %q does not name duplicate_window", err)
		}
	})

	t.Run("foreign_stream_with_other_config_fails_naming_each_difference", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		withRawServer(t, dir, func(js jetstream.JetStream) {
			_, err := js.CreateStream(t.Context(), jetstream.StreamConfig{
				Name: eventstore.StreamName, Subjects: []string{"idl.>"}, Storage: jetstream.FileStorage,
				Discard: jetstream.DiscardNew, Duplicates: 30 * time.Second,
				DenyDelete: true, DenyPurge: false, AllowDirect: true, AllowAtomicPublish: true,
			})
			if err != nil {
				t.Fatal(err)
			}
		})
		s, err := eventstore.Open(t.Context(), eventstore.Config{Dir: dir, NoSync: true})
		if err == nil {
			s.Close()
			t.Fatal("Open of a stream with another config succeeded, want an error")
		}
		for _, name := range []string{"duplicate_window", "deny_purge"} {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name %s", err, name)
			}
		}
		for _, name := range []string{"deny_delete", "allow_direct", "subjects"} {
			if strings.Contains(err.Error(), name) {
				t.Errorf("error %q names %s, which is as wanted", err, name)
			}
		}
	})

	// The server lets any client with API access turn these on (and refuses to turn
	// AllowMsgTTL off again). Open must refuse such a stream like any other difference:
	// with AllowMsgTTL a message published with a Nats-TTL header is removed from the log
	// despite DenyDelete; a sealed stream refuses every append.
	t.Run("open_refuses_stream_with_unchecked_setting", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name   string
			change func(*jetstream.StreamConfig)
		}{
			{"allow_msg_ttl", func(c *jetstream.StreamConfig) { c.AllowMsgTTL = true }},
			{"sealed", func(c *jetstream.StreamConfig) { c.Sealed = true }},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				s := mustOpen(t, eventstore.Config{Dir: dir, NoSync: true})
				js, st := rawStream(t, s)
				c := st.CachedInfo().Config
				tt.change(&c)
				if _, err := js.UpdateStream(t.Context(), c); err != nil {
					t.Fatalf("server refused the update: %v", err)
				}
				s.Close()
				s2, err := eventstore.Open(t.Context(), eventstore.Config{Dir: dir, NoSync: true})
				if err == nil {
					s2.Close()
					t.Fatalf("Open accepted a stream with %s set, want an error naming it", tt.name)
				}
				if !strings.Contains(err.Error(), tt.name) {
					t.Errorf("error %q does not name %s", err, tt.name)
				}
			})
		}
	})

	t.Run("server_refuses_delete_purge_and_lifting_deny_flags", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		if _, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: tenantCreated("t1", "e1")}}}); err != nil {
			t.Fatal(err)
		}
		js, st := rawStream(t, s)
		if err := st.DeleteMsg(ctx, 1); err == nil {
			t.Error("DeleteMsg succeeded, want refusal")
		}
		if err := st.SecureDeleteMsg(ctx, 1); err == nil {
			t.Error("SecureDeleteMsg succeeded, want refusal")
		}
		if err := st.Purge(ctx); err == nil {
			t.Error("Purge succeeded, want refusal")
		}
		if err := st.Purge(ctx, jetstream.WithPurgeSubject("idl.t1.tenant")); err == nil {
			t.Error("Purge of a subject succeeded, want refusal")
		}
		rollup := nats.NewMsg("idl.t1.tenant")
		rollup.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
		if _, err := js.PublishMsg(ctx, rollup); err == nil {
			t.Error("publish with Nats-Rollup succeeded, want refusal")
		}
		for name, change := range map[string]func(*jetstream.StreamConfig){
			"deny_purge":  func(c *jetstream.StreamConfig) { c.DenyPurge = false },
			"deny_delete": func(c *jetstream.StreamConfig) { c.DenyDelete = false },
		} {
			c := st.CachedInfo().Config
			change(&c)
			if _, err := js.UpdateStream(ctx, c); err == nil {
				t.Errorf("UpdateStream lifting %s succeeded, want refusal", name)
			}
		}
		if n := messages(t, s); n != 1 {
			t.Errorf("stream holds %d messages, want 1", n)
		}
		if _, err := st.GetMsg(ctx, 1); err != nil {
			t.Errorf("message 1 is gone: %v", err)
		}
	})
}

// withRawServer runs f against a plain embedded JetStream on dir, the way eventstore lays it
// out, and shuts it down again.
func withRawServer(tb testing.TB, dir string, f func(jetstream.JetStream)) {
	tb.Helper()
	srv, err := server.NewServer(&server.Options{ServerName: "idledger", JetStream: true,
		StoreDir: filepath.Join(dir, "nats"), DontListen: true, NoSigs: true, NoLog: true})
	if err != nil {
		tb.Fatal(err)
	}
	srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(10 * time.Second) {
		tb.Fatal("raw nats-server did not start")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		tb.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	f(js)
}

func TestAppendLoad(t *testing.T) {
	t.Parallel()

	t.Run("tenant_and_user_batch_round_trips", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		tn := tenantCreated("t1", "ev-t")
		us := userCreated("t1", "u1", "ev-u", "Ada.Lovelace@example.com")
		v, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: tn}, {Event: us}}})
		if err != nil {
			t.Fatal(err)
		}
		if v != 2 {
			t.Errorf("Append = %d, want 2 (sequence of the last message)", v)
		}
		tn.Version, us.Version = 1, 2
		for _, tt := range []struct {
			kind domain.Kind
			id   string
			want domain.Event
		}{
			{domain.KindTenant, "t1", tn},
			{domain.KindTenant, "", tn}, // the tenant subject does not depend on the id
			{domain.KindUser, "u1", us},
		} {
			events, version, err := s.Load(ctx, "t1", tt.kind, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if version != tt.want.Version {
				t.Errorf("Load(%s %q) version = %d, want %d", tt.kind, tt.id, version, tt.want.Version)
			}
			if len(events) != 1 || !reflect.DeepEqual(events[0], tt.want) {
				t.Errorf("Load(%s %q) =\n%#v\nwant\n%#v", tt.kind, tt.id, events, []domain.Event{tt.want})
			}
		}
	})

	t.Run("envelope_headers_on_stored_message", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		us := userCreated("t1", "u1", "ev-u", "ada")
		v, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: us}}})
		if err != nil {
			t.Fatal(err)
		}
		_, st := rawStream(t, s)
		m, err := st.GetMsg(ctx, uint64(v))
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "idl.t1.user.u1" {
			t.Errorf("subject = %q, want idl.t1.user.u1", m.Subject)
		}
		for h, want := range map[string]string{
			"Nats-Msg-Id":     "ev-u",
			"Idl-Type":        "user.created",
			"Idl-Schema":      "1",
			"Idl-Tenant":      "t1",
			"Idl-Aggregate":   "user:u1",
			"Idl-Actor":       "scim:tok1",
			"Idl-Correlation": "req-2",
			"Idl-Occurred":    "2026-11-20T09:00:01.123456789Z",
		} {
			if got := m.Header.Get(h); got != want {
				t.Errorf("header %s = %q, want %q", h, got, want)
			}
		}
	})

	t.Run("unknown_aggregate_loads_empty_at_version_0", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		if _, err := s.Append(t.Context(), domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: userCreated("t1", "u1", "e1", "a")}}}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"u2", "u1.x", "*", ">", ""} {
			events, v, err := s.Load(t.Context(), "t1", domain.KindUser, id)
			if err != nil || len(events) != 0 || v != 0 {
				t.Errorf("Load(%q) = %v, %d, %v; want no events, 0, nil", id, events, v, err)
			}
		}
		events, v, err := s.Load(t.Context(), "t2", domain.KindTenant, "t2")
		if err != nil || len(events) != 0 || v != 0 {
			t.Errorf("Load(unknown tenant) = %v, %d, %v; want no events, 0, nil", events, v, err)
		}
	})

	t.Run("expected_version_mismatch_conflicts_and_stores_nothing", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		v, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: userCreated("t1", "u1", "e1", "a")}}})
		if err != nil {
			t.Fatal(err)
		}
		before := messages(t, s)
		for _, expected := range []domain.Version{0, v - 1, v + 1, 1000} {
			_, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: noop("t1", "u1", fmt.Sprint("n", expected)), Expected: expected}}})
			if !errors.Is(err, domain.ErrConflict) {
				t.Errorf("Append expecting %d (current %d): err = %v, want ErrConflict", expected, v, err)
			}
		}
		// A fresh aggregate expected at a non-zero version conflicts too.
		_, err = s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: noop("t1", "u9", "n9"), Expected: v}}})
		if !errors.Is(err, domain.ErrConflict) {
			t.Errorf("Append to a fresh aggregate expecting %d: err = %v, want ErrConflict", v, err)
		}
		if after := messages(t, s); after != before {
			t.Errorf("stream holds %d messages after conflicts, want %d", after, before)
		}
		// The right expectation still works.
		if _, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: noop("t1", "u1", "ok"), Expected: v}}}); err != nil {
			t.Errorf("Append at the current version: %v", err)
		}
	})

	t.Run("atomic_batch_with_bad_second_expectation_stores_nothing", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		if _, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: tenantCreated("t1", "e0")}}}); err != nil {
			t.Fatal(err)
		}
		before := messages(t, s)
		_, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{
			{Event: userCreated("t1", "u1", "e1", "a")},              // fine on its own
			{Event: userCreated("t1", "u2", "e2", "b"), Expected: 7}, // u2 is empty: wrong
		}})
		if !errors.Is(err, domain.ErrConflict) {
			t.Errorf("err = %v, want ErrConflict", err)
		}
		if after := messages(t, s); after != before {
			t.Errorf("stream holds %d messages, want %d", after, before)
		}
		if events, v, _ := s.Load(ctx, "t1", domain.KindUser, "u1"); len(events) != 0 || v != 0 {
			t.Errorf("first message of the refused batch was stored: %d events at version %d", len(events), v)
		}
	})

	t.Run("load_spans_several_direct_get_batches_and_filters_subject", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		var writes []domain.Write
		for i := range 300 {
			writes = append(writes,
				domain.Write{Event: noop("t1", "a", fmt.Sprint("a", i))},
				domain.Write{Event: noop("t1", "b", fmt.Sprint("b", i))})
		}
		va, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: writes})
		if err != nil {
			t.Fatal(err)
		}
		writes = writes[:0]
		for i := 300; i < 600; i++ {
			writes = append(writes, domain.Write{Event: noop("t1", "a", fmt.Sprint("a", i)), Expected: va - 1})
		}
		v, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: writes})
		if err != nil {
			t.Fatal(err)
		}
		events, got, err := s.Load(ctx, "t1", domain.KindUser, "a")
		if err != nil {
			t.Fatal(err)
		}
		if got != v || len(events) != 600 {
			t.Fatalf("Load = %d events at %d, want 600 at %d", len(events), got, v)
		}
		for i, e := range events {
			if e.ID != fmt.Sprint("a", i) || e.AggregateID != "a" || e.Data != nil {
				t.Fatalf("event %d = %+v, want id a%d on aggregate a with nil Data", i, e, i)
			}
			if i > 0 && e.Version <= events[i-1].Version {
				t.Fatalf("event %d version %d not after %d", i, e.Version, events[i-1].Version)
			}
		}
	})

	t.Run("invalid_ids_and_oversized_batches_are_refused", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		for _, id := range []string{"", "a.b", "a*", ">", "a b"} {
			if _, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: noop("t1", id, "e")}}}); err == nil {
				t.Errorf("Append to aggregate %q succeeded, want an error", id)
			}
		}
		if _, err := s.Append(ctx, domain.Batch{Tenant: "t.1", Writes: []domain.Write{{Event: tenantCreated("t.1", "e")}}}); err == nil {
			t.Error("Append for tenant \"t.1\" succeeded, want an error")
		}
		writes := make([]domain.Write, 1001)
		for i := range writes {
			writes[i] = domain.Write{Event: noop("t1", "a", fmt.Sprint(i))}
		}
		if _, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: writes}); !errors.Is(err, domain.ErrTooMany) {
			t.Errorf("Append of 1001 messages: err = %v, want ErrTooMany", err)
		}
		if n := messages(t, s); n != 0 {
			t.Errorf("stream holds %d messages, want 0", n)
		}
		if v, err := s.Append(ctx, domain.Batch{Tenant: "t1"}); v != 0 || err != nil {
			t.Errorf("empty Append = %d, %v; want 0, nil", v, err)
		}
	})
}

func TestUniqueness(t *testing.T) {
	t.Parallel()

	t.Run("16_racing_creates_of_one_userName_one_wins", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		svc := &domain.Service{Log: s, Now: func() time.Time { return t0 }, NewID: idSeq()}
		tenant, _, err := svc.CreateTenant(ctx, "Acme")
		if err != nil {
			t.Fatal(err)
		}
		before := messages(t, s)
		names := []string{"Ada.Lovelace@example.com", "ada.lovelace@example.com", "ADA.LOVELACE@EXAMPLE.COM", " Ada.Lovelace@Example.com "}
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			users = make([]domain.User, 16)
			errs  = make([]error, 16)
		)
		for i := range 16 {
			wg.Go(func() {
				<-start
				users[i], errs[i] = svc.CreateUser(ctx, domain.OriginSystem, tenant.ID, map[string]any{"userName": names[i%len(names)]})
			})
		}
		close(start)
		wg.Wait()
		var winner domain.User
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
				winner = users[i]
			case !errors.Is(err, domain.ErrUniqueness):
				t.Errorf("create %d: err = %v, want ErrUniqueness", i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d creates succeeded, want exactly 1", wins)
		}
		if n := messages(t, s); n != before+2 {
			t.Errorf("stream holds %d messages, want %d (tenant, one claim, one user.created)", n, before+2)
		}
		_, st := rawStream(t, s)
		claim, err := st.GetMsg(ctx, uint64(before)+1)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(claim.Subject, "idl."+string(tenant.ID)+".uname.") || claim.Header.Get("Idl-Type") != "uname.claimed" {
			t.Errorf("message %d = %s %s, want the uname claim", claim.Sequence, claim.Subject, claim.Header.Get("Idl-Type"))
		}
		if !strings.Contains(string(claim.Data), string(winner.ID)) {
			t.Errorf("claim body %s does not name the winner %s", claim.Data, winner.ID)
		}
		events, v, err := s.Load(ctx, tenant.ID, domain.KindUser, string(winner.ID))
		if err != nil || len(events) != 1 || v != winner.Version {
			t.Errorf("Load(winner) = %d events at %d, %v; want 1 at %d", len(events), v, err, winner.Version)
		}
	})

	t.Run("16_racing_appends_of_one_claim_one_wins", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			errs  = make([]error, 16)
		)
		for i := range 16 {
			wg.Go(func() {
				<-start
				id := fmt.Sprint("u", i)
				_, errs[i] = s.Append(ctx, domain.Batch{Tenant: "t1",
					Writes: []domain.Write{{Event: userCreated("t1", id, "e"+id, "Ada")}},
					Unique: []domain.UniqueOp{{Field: "userName", Value: "ada", Holder: id}}})
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("appends %d and %d both succeeded", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, domain.ErrUniqueness):
				t.Errorf("append %d: err = %v, want ErrUniqueness", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no append succeeded")
		}
		if n := messages(t, s); n != 2 {
			t.Errorf("stream holds %d messages, want 2 (the winner's claim and user)", n)
		}
		if _, v, _ := s.Load(ctx, "t1", domain.KindUser, fmt.Sprint("u", winner)); v != 2 {
			t.Errorf("winner u%d at version %d, want 2", winner, v)
		}
	})

	t.Run("release_makes_value_claimable_by_another_holder", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		claim := func(holder string, release bool) (domain.Version, error) {
			return s.Append(ctx, domain.Batch{Tenant: "t1", Unique: []domain.UniqueOp{
				{Field: "userName", Value: "ada", Holder: holder, Release: release}}})
		}
		if _, err := claim("u1", false); err != nil {
			t.Fatalf("first claim: %v", err)
		}
		if _, err := claim("u2", false); !errors.Is(err, domain.ErrUniqueness) {
			t.Errorf("claim by u2 while u1 holds: err = %v, want ErrUniqueness", err)
		}
		// Claiming what one holds and releasing what one does not hold write nothing.
		before := messages(t, s)
		if v, err := claim("u1", false); v != 0 || err != nil {
			t.Errorf("re-claim by the holder = %d, %v; want 0, nil", v, err)
		}
		if v, err := claim("u2", true); v != 0 || err != nil {
			t.Errorf("release by a non-holder = %d, %v; want 0, nil", v, err)
		}
		if n := messages(t, s); n != before {
			t.Errorf("no-op claims stored %d messages", n-before)
		}
		if _, err := claim("u1", true); err != nil {
			t.Fatalf("release by u1: %v", err)
		}
		if _, err := claim("u2", false); err != nil {
			t.Errorf("claim by u2 after release: %v", err)
		}
		if _, err := claim("u1", false); !errors.Is(err, domain.ErrUniqueness) {
			t.Errorf("claim by u1 after u2 took it: err = %v, want ErrUniqueness", err)
		}
		// Another field or another tenant is another key.
		if _, err := s.Append(ctx, domain.Batch{Tenant: "t1", Unique: []domain.UniqueOp{{Field: "displayName", Value: "ada", Holder: "g1"}}}); err != nil {
			t.Errorf("claim of the same value in another field: %v", err)
		}
		if _, err := s.Append(ctx, domain.Batch{Tenant: "t2", Unique: []domain.UniqueOp{{Field: "userName", Value: "ada", Holder: "u1"}}}); err != nil {
			t.Errorf("claim of the same value in another tenant: %v", err)
		}
	})

	t.Run("no_userName_in_any_subject_or_header", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		svc := &domain.Service{Log: s, Now: func() time.Time { return t0 }, NewID: idSeq()}
		tenant, _, err := svc.CreateTenant(ctx, "Acme")
		if err != nil {
			t.Fatal(err)
		}
		const name = "Grace.Hopper@Example.com"
		u, err := svc.CreateUser(ctx, domain.OriginSystem, tenant.ID, map[string]any{"userName": name, "externalId": "ext-grace"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, domain.Batch{Tenant: tenant.ID, Unique: []domain.UniqueOp{
			{Field: "userName", Value: domain.FoldCase(name), Holder: string(u.ID), Release: true}}}); err != nil {
			t.Fatal(err)
		}
		head, err := s.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, st := rawStream(t, s)
		claimSubject := regexp.MustCompile(`^idl\.` + string(tenant.ID) + `\.uname\.[a-z2-7]{26}$`)
		claims := 0
		for seq := uint64(1); seq <= uint64(head); seq++ {
			m, err := st.GetMsg(ctx, seq)
			if err != nil {
				t.Fatal(err)
			}
			texts := []string{m.Subject}
			for k, vs := range m.Header {
				texts = append(texts, k)
				texts = append(texts, vs...)
			}
			for _, s := range texts {
				for _, secret := range []string{"grace", "hopper", "ext-grace"} {
					if strings.Contains(strings.ToLower(s), secret) {
						t.Errorf("message %d carries %q outside its body: %q", seq, secret, s)
					}
				}
			}
			if strings.Contains(m.Subject, ".uname.") {
				claims++
				if !claimSubject.MatchString(m.Subject) {
					t.Errorf("claim subject %q is not idl.<tenant>.uname.<26 base32>", m.Subject)
				}
			}
		}
		if claims != 2 {
			t.Errorf("%d claim records, want 2 (claimed, released)", claims)
		}
	})
}

func TestRetrySafety(t *testing.T) {
	t.Parallel()

	t.Run("same_batch_twice_returns_same_version_stored_once", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		b := domain.Batch{Tenant: "t1", Writes: []domain.Write{
			{Event: tenantCreated("t1", "e1")},
			{Event: userCreated("t1", "u1", "e2", "ada")},
		}}
		v1, err := s.Append(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		n := messages(t, s)
		v2, err := s.Append(ctx, b)
		if err != nil || v2 != v1 {
			t.Errorf("retry = %d, %v; want %d, nil", v2, err, v1)
		}
		if got := messages(t, s); got != n {
			t.Errorf("stream holds %d messages after retry, want %d", got, n)
		}
	})

	// The retry of a batch whose ack was lost may come after another writer appended to the
	// same aggregate. The server answers 10201 (duplicate message id in batch) and stores
	// nothing; the batch was stored, so the retry must still report it as stored.
	t.Run("retry_after_aggregate_moved_on_reports_stored_batch", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		b := domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: userCreated("t1", "u1", "e1", "ada")}}}
		v1, err := s.Append(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: noop("t1", "u1", "e2"), Expected: v1}}}); err != nil {
			t.Fatal(err)
		}
		n := messages(t, s)
		v, err := s.Append(ctx, b)
		if err != nil || v != v1 {
			t.Errorf("retry = %d, %v; want %d, nil", v, err, v1)
		}
		if got := messages(t, s); got != n {
			t.Errorf("stream holds %d messages after retry, want %d", got, n)
		}
	})

	t.Run("same_create_with_claim_twice_returns_same_version_stored_once", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		b := domain.Batch{Tenant: "t1",
			Writes: []domain.Write{{Event: userCreated("t1", "u1", "e1", "Ada")}},
			Unique: []domain.UniqueOp{{Field: "userName", Value: "ada", Holder: "u1"}}}
		v1, err := s.Append(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		n := messages(t, s)
		v2, err := s.Append(ctx, b)
		if err != nil || v2 != v1 {
			t.Errorf("retry = %d, %v; want %d, nil", v2, err, v1)
		}
		if got := messages(t, s); got != n {
			t.Errorf("stream holds %d messages after retry, want %d", got, n)
		}
	})
}

// next calls sub.Next with a bound, so a broken subscription fails the test instead of
// hanging it.
func next(t *testing.T, sub domain.Subscription, max int) ([]domain.Event, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return sub.Next(ctx, max)
}

func TestSubscribe(t *testing.T) {
	t.Parallel()

	t.Run("delivers_after_version_in_order_in_batches_up_to_max", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		for i := range 5 {
			// Two messages per append (a claim and a user) so index records are delivered too.
			id := fmt.Sprint("u", i)
			if _, err := s.Append(ctx, domain.Batch{Tenant: "t1",
				Writes: []domain.Write{{Event: userCreated("t1", id, "e"+id, id)}},
				Unique: []domain.UniqueOp{{Field: "userName", Value: id, Holder: id}}}); err != nil {
				t.Fatal(err)
			}
		}
		sub, err := s.Subscribe(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		var got []domain.Event
		for len(got) < 7 {
			batch, err := next(t, sub, 3)
			if err != nil {
				t.Fatalf("after %d events: %v", len(got), err)
			}
			if len(batch) == 0 || len(batch) > 3 {
				t.Fatalf("batch of %d events, want 1..3", len(batch))
			}
			got = append(got, batch...)
		}
		for i, e := range got {
			if want := domain.Version(4 + i); e.Version != want {
				t.Errorf("event %d has version %d, want %d", i, e.Version, want)
			}
			wantKind := domain.KindUser
			if e.Version%2 == 1 {
				wantKind = "uname"
			}
			if e.Kind != wantKind {
				t.Errorf("event at %d has kind %q, want %q", e.Version, e.Kind, wantKind)
			}
		}
		if len(got) != 7 {
			t.Errorf("got %d events, want 7", len(got))
		}
	})

	t.Run("blocks_when_caught_up_and_resumes_on_append", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		v, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: tenantCreated("t1", "e1")}}})
		if err != nil {
			t.Fatal(err)
		}
		sub, err := s.Subscribe(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		events, err := sub.Next(short, 10)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || len(events) != 0 {
			t.Fatalf("Next when caught up = %d events, %v; want to block until the deadline", len(events), err)
		}
		type result struct {
			events []domain.Event
			err    error
		}
		res := make(chan result, 1)
		go func() {
			events, err := next(t, sub, 10)
			res <- result{events, err}
		}()
		v2, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: userCreated("t1", "u1", "e2", "a")}}})
		if err != nil {
			t.Fatal(err)
		}
		r := <-res
		if r.err != nil || len(r.events) != 1 || r.events[0].Version != v2 || r.events[0].ID != "e2" {
			t.Errorf("Next after append = %+v, %v; want event e2 at %d", r.events, r.err, v2)
		}
	})

	t.Run("undecodable_message_ends_batch_then_errors_with_sequence", func(t *testing.T) {
		t.Parallel()
		s := MustOpenStore(t)
		ctx := t.Context()
		for i := range 2 {
			id := fmt.Sprint("u", i)
			if _, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: userCreated("t1", id, "e"+id, id)}}}); err != nil {
				t.Fatal(err)
			}
		}
		bad := publishUndecodable(t, s, "t1", "u9")
		if _, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: userCreated("t1", "u3", "eu3", "u3")}}}); err != nil {
			t.Fatal(err)
		}
		sub, err := s.Subscribe(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		var got []domain.Event
		for {
			batch, err := next(t, sub, 100)
			if err != nil {
				if !strings.Contains(err.Error(), fmt.Sprintf("seq %d", bad)) {
					t.Errorf("error %q does not carry sequence %d", err, bad)
				}
				break
			}
			got = append(got, batch...)
			if len(got) > 2 {
				t.Fatalf("delivered %d events, want only the 2 before the undecodable one", len(got))
			}
		}
		if len(got) != 2 || got[0].Version != 1 || got[1].Version != 2 {
			t.Errorf("delivered %+v before the error, want versions 1 and 2", got)
		}
		if _, err := next(t, sub, 100); err == nil {
			t.Error("Next after the error succeeded, want the error again")
		}
	})
}

// publishUndecodable stores a user.created message whose body is not JSON, as a buggy or
// foreign writer could, and returns its sequence.
func publishUndecodable(tb testing.TB, s *eventstore.Store, tenant, user string) uint64 {
	tb.Helper()
	js, _ := rawStream(tb, s)
	m := nats.NewMsg("idl." + tenant + ".user." + user)
	m.Header.Set("Idl-Type", domain.EventUserCreated)
	m.Header.Set("Idl-Schema", "1")
	m.Data = []byte("{not json")
	ack, err := js.PublishMsg(tb.Context(), m)
	if err != nil {
		tb.Fatal(err)
	}
	return ack.Sequence
}

// rawConn connects to the store's embedded nats-server, for a test that reads or writes the
// raw stream; the connection closes when the test ends.
func rawConn(tb testing.TB, s *eventstore.Store) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}
