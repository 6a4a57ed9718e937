package eventstore

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
)

var (
	codecAt     = time.Date(2026, 11, 20, 9, 0, 0, 5, time.UTC)
	codecStored = time.Date(2026, 11, 20, 9, 0, 1, 0, time.UTC)
)

func TestEncodeDecode(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		e       domain.Event
		subject string
	}{
		{"tenant_created", domain.Event{ID: "e1", Tenant: "t1", Kind: domain.KindTenant, AggregateID: "t1",
			Type: domain.EventTenantCreated, Schema: 1, At: codecAt, Actor: "admin", Correlation: "r1",
			Data: domain.TenantCreated{Name: "Acme", SCIMTokenHash: "abc"}}, "idl.t1.tenant"},
		{"user_created_without_correlation", domain.Event{ID: "e2", Tenant: "t1", Kind: domain.KindUser, AggregateID: "u1",
			Type: domain.EventUserCreated, Schema: 1, At: codecAt, Actor: "scim:k",
			Data: domain.UserCreated{Attributes: map[string]any{"userName": "ada", "active": true}}}, "idl.t1.user.u1"},
		{"unknown_type_keeps_envelope_with_nil_data", domain.Event{ID: "e3", Tenant: "t1", Kind: domain.KindUser, AggregateID: "u1",
			Type: "user.from_the_future", Schema: 9, At: codecAt, Actor: "system"}, "idl.t1.user.u1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := encode(tt.e)
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject != tt.subject {
				t.Errorf("subject = %q, want %q", m.Subject, tt.subject)
			}
			if _, ok := m.Header[hdrCorrelation]; ok != (tt.e.Correlation != "") {
				t.Errorf("Idl-Correlation present = %v, want %v", ok, tt.e.Correlation != "")
			}
			got, err := decode(m.Subject, m.Header, m.Data, 42, codecStored)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.e
			want.Version = 42
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decode(encode(e)) =\n%#v\nwant\n%#v", got, want)
			}
		})
	}
}

func TestEncodeRefusesInvalidSubjectTokens(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "a.b", "a*b", "a>", "a b", "a\tb", "a\nb"} {
		if _, err := encode(domain.Event{Tenant: domain.TenantID(bad), Kind: domain.KindTenant, Type: "x"}); err == nil {
			t.Errorf("encode with tenant %q succeeded", bad)
		}
		if _, err := encode(domain.Event{Tenant: "t1", Kind: domain.KindUser, AggregateID: bad, Type: "x"}); err == nil {
			t.Errorf("encode with user id %q succeeded", bad)
		}
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	hdr := func(kv ...string) nats.Header {
		h := nats.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	userHdr := hdr(hdrType, domain.EventUserCreated, hdrSchema, "1", hdrMsgID, "e1")

	t.Run("claim_record_has_its_kind_and_nil_data", func(t *testing.T) {
		e, err := decode("idl.t1.uname.abc", hdr(hdrType, typeClaimed, hdrSchema, "1"), []byte(`{"holder":"u1"}`), 7, codecStored)
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind != "uname" || e.AggregateID != "abc" || e.Data != nil || e.Version != 7 {
			t.Errorf("claim decoded as %+v", e)
		}
	})

	t.Run("missing_or_bad_occurred_falls_back_to_stored_time", func(t *testing.T) {
		for _, occurred := range []string{"", "yesterday"} {
			h := hdr(hdrType, domain.EventUserCreated, hdrSchema, "1", hdrOccurred, occurred)
			e, err := decode("idl.t1.user.u1", h, []byte(`{"attributes":{}}`), 1, codecStored)
			if err != nil {
				t.Fatal(err)
			}
			if !e.At.Equal(codecStored) {
				t.Errorf("Idl-Occurred %q: At = %v, want the stored time %v", occurred, e.At, codecStored)
			}
		}
	})

	for _, tt := range []struct {
		name    string
		subject string
		h       nats.Header
		data    string
	}{
		{"not_idl_subject", "foo.t1.user.u1", userHdr, `{}`},
		{"too_short_subject", "idl.t1", userHdr, `{}`},
		{"user_subject_without_id", "idl.t1.user", userHdr, `{}`},
		{"user_subject_with_extra_token", "idl.t1.user.u1.x", userHdr, `{}`},
		{"missing_schema", "idl.t1.user.u1", hdr(hdrType, domain.EventUserCreated), `{}`},
		{"schema_not_a_number", "idl.t1.user.u1", hdr(hdrType, domain.EventUserCreated, hdrSchema, "v1"), `{}`},
		{"schema_newer_than_code", "idl.t1.user.u1", hdr(hdrType, domain.EventUserCreated, hdrSchema, "99"), `{}`},
		{"schema_zero", "idl.t1.user.u1", hdr(hdrType, domain.EventUserCreated, hdrSchema, "0"), `{}`},
		{"body_not_json", "idl.t1.user.u1", userHdr, `{not json`},
		{"body_wrong_shape", "idl.t1.user.u1", userHdr, `{"attributes":"ada"}`},
	} {
		t.Run(tt.name+"_is_undecodable", func(t *testing.T) {
			_, err := decode(tt.subject, tt.h, []byte(tt.data), 13, codecStored)
			if !errors.Is(err, errUndecodable) {
				t.Fatalf("err = %v, want errUndecodable", err)
			}
			if !strings.Contains(err.Error(), "seq 13") {
				t.Errorf("error %q does not carry the sequence", err)
			}
		})
	}
}

func TestConfigDiff(t *testing.T) {
	t.Parallel()
	s := &Store{cfg: Config{Replicas: 1, DuplicateWindow: 2 * time.Minute}}
	want := s.streamConfig()
	if d := configDiff(want, want); d != "" {
		t.Errorf("configDiff(want, want) = %q, want empty", d)
	}
	for _, tt := range []struct {
		name   string
		change func(*jetstream.StreamConfig)
	}{
		{"subjects", func(c *jetstream.StreamConfig) { c.Subjects = []string{"idl.*.>"} }},
		{"storage", func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage }},
		{"replicas", func(c *jetstream.StreamConfig) { c.Replicas = 3 }},
		{"retention", func(c *jetstream.StreamConfig) { c.Retention = jetstream.WorkQueuePolicy }},
		{"discard", func(c *jetstream.StreamConfig) { c.Discard = jetstream.DiscardOld }},
		{"max_age", func(c *jetstream.StreamConfig) { c.MaxAge = time.Hour }},
		{"max_msgs", func(c *jetstream.StreamConfig) { c.MaxMsgs = 10 }},
		{"max_bytes", func(c *jetstream.StreamConfig) { c.MaxBytes = 10 }},
		{"max_msgs_per_subject", func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject = 1 }},
		{"duplicate_window", func(c *jetstream.StreamConfig) { c.Duplicates = time.Minute }},
		{"deny_delete", func(c *jetstream.StreamConfig) { c.DenyDelete = false }},
		{"deny_purge", func(c *jetstream.StreamConfig) { c.DenyPurge = false }},
		{"allow_direct", func(c *jetstream.StreamConfig) { c.AllowDirect = false }},
		{"allow_atomic", func(c *jetstream.StreamConfig) { c.AllowAtomicPublish = false }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := want
			got.Subjects = append([]string(nil), want.Subjects...)
			tt.change(&got)
			d := configDiff(got, want)
			if !strings.HasPrefix(d, tt.name+" is ") || strings.Contains(d, ";") {
				t.Errorf("configDiff = %q, want exactly one difference naming %s", d, tt.name)
			}
		})
	}
}
