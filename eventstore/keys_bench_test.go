package eventstore

import (
	"context"
	"crypto/rand"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nuid"

	"github.com/idledger/idledger/domain"
)

// benchSealStore returns a store whose keyring holds one data key, linked to user u1, without
// a NATS server: enough to measure sealing and opening alone.
func benchSealStore(tb testing.TB) *Store {
	tb.Helper()
	raw := make([]byte, MasterKeySize)
	rand.Read(raw)
	master, err := NewMasterKey(raw)
	if err != nil {
		tb.Fatal(err)
	}
	aead, err := newGCM(raw)
	if err != nil {
		tb.Fatal(err)
	}
	s := &Store{log: slog.New(slog.DiscardHandler)}
	s.kr.master = master
	k := &dataKey{id: nuid.Next(), aead: aead}
	s.kr.keys = map[string]*dataKey{k.id: k}
	s.kr.users = map[string]string{userRef("t1", "u1"): k.id}
	return s
}

// benchUserCreated is a user.created event shaped like an Entra user.
func benchUserCreated() domain.Event {
	return domain.Event{
		ID: nuid.Next(), Tenant: "t1", Kind: domain.KindUser, AggregateID: "u1",
		Type: domain.EventUserCreated, Schema: 1, At: time.Now(), Actor: "scim:tok1", Correlation: "req-2",
		Data: domain.UserCreated{
			Schemas: []string{"urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"},
			Attributes: map[string]any{
				"userName":    "ada.lovelace@example.com",
				"externalId":  "5b8e0c1a-58d2-4b8c-9d54-0c2e0d7f6a11",
				"active":      true,
				"displayName": "Ada Lovelace",
				"name":        map[string]any{"formatted": "Ada Lovelace", "givenName": "Ada", "familyName": "Lovelace"},
				"emails":      []any{map[string]any{"value": "ada.lovelace@example.com", "type": "work", "primary": true}},
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": map[string]any{"department": "Engineering", "employeeNumber": "100001"},
			},
		},
	}
}

func benchEncodeSeal(b *testing.B, s *Store, e domain.Event) {
	if _, err := s.encodeSealed(context.Background(), e, false, map[string]string{}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAppendEncode compares what an append costs in this process for a user's creation
// in clear and sealed (crypto.go): the encoding and, sealed, the sealing of each value.
func BenchmarkAppendEncode(b *testing.B) {
	e := benchUserCreated()
	b.Run("plain", func(b *testing.B) {
		s := &Store{}
		for b.Loop() {
			benchEncodeSeal(b, s, e)
		}
	})
	b.Run("sealed", func(b *testing.B) {
		s := benchSealStore(b)
		for b.Loop() {
			benchEncodeSeal(b, s, e)
		}
	})
}

// BenchmarkDecodeOpen compares what reading a user's creation back costs (the projector and
// every other reader decode each event so).
func BenchmarkDecodeOpen(b *testing.B) {
	e := benchUserCreated()
	for _, c := range []struct {
		name string
		s    *Store
	}{{"plain", &Store{}}, {"sealed", benchSealStore(b)}} {
		b.Run(c.name, func(b *testing.B) {
			m, err := c.s.encodeSealed(context.Background(), e, false, map[string]string{})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := c.s.decodeOpen(context.Background(), m.Subject, m.Header, m.Data, 7, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(m.Data)), "bytes/event")
		})
	}
}
