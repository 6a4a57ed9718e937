package eventstore_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/eventstore"
)

// TestGroupCommitIsolation: concurrent appends are combined, yet each keeps its own outcome —
// the racing claims of one userName give one winner, and everything acknowledged is stored
// with the sequence reported.
func TestGroupCommitIsolation(t *testing.T) {
	s := MustOpenStore(t)
	ctx := t.Context()
	tenant := domain.TenantID(uuid.NewString())
	const n = 64
	var wg sync.WaitGroup
	var wins, dups atomic.Int32
	seqs := make([]domain.Version, n)
	ids := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := uuid.NewString()
			name := fmt.Sprintf("u%d@x", i)
			if i%8 == 0 {
				name = "same@x" // 8 requests race for one userName
			}
			v, err := s.Append(ctx, domain.Batch{Tenant: tenant,
				Writes: []domain.Write{{Event: userCreated(tenant, id, uuid.NewString(), name)}},
				Unique: []domain.UniqueOp{{Field: "userName", Value: name, Holder: id}}})
			switch {
			case err == nil:
				wins.Add(1)
				seqs[i], ids[i] = v, id
			case i%8 == 0:
				dups.Add(1)
			default:
				t.Errorf("append %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != n-7 || dups.Load() != 7 {
		t.Fatalf("wins %d dups %d, want %d and 7", wins.Load(), dups.Load(), n-7)
	}
	_, st := rawStream(t, s)
	for i, v := range seqs {
		if v == 0 {
			continue
		}
		m, err := st.GetMsg(ctx, uint64(v))
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "idl."+string(tenant)+".user."+ids[i] {
			t.Errorf("seq %d holds %s, want user %s", v, m.Subject, ids[i])
		}
	}
	if got := messages(t, s); got != uint64(2*(n-7)) {
		t.Errorf("stream holds %d messages, want %d", got, 2*(n-7))
	}
}

// BenchmarkAppend compares, with fsync before every acknowledgement, 32 concurrent Appends
// (group commit) with 32 concurrent raw publishes of the same messages.
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []string{"raw-publish", "store-append"} {
		b.Run(mode+"/c=32", func(b *testing.B) {
			s, err := eventstore.Open(b.Context(), eventstore.Config{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			js, _ := rawStream(b, s)
			tenant := domain.TenantID(uuid.NewString())
			body := make([]byte, 1024)
			b.SetParallelism(16) // 2 cores × 16 = 32 goroutines
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := uuid.NewString()
					if mode == "raw-publish" {
						m := nats.NewMsg("idl." + string(tenant) + ".user." + id)
						m.Data = body
						m.Header.Set("Nats-Expected-Last-Subject-Sequence", "0")
						if _, err := js.PublishMsg(b.Context(), m); err != nil {
							b.Error(err)
						}
						continue
					}
					e := userCreated(tenant, id, uuid.NewString(), "x")
					if _, err := s.Append(b.Context(), domain.Batch{Tenant: tenant, Writes: []domain.Write{{Event: e}}}); err != nil {
						b.Error(err)
					}
				}
			})
		})
	}
}
