package eventstore_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
	"github.com/idledger/idledger/eventstore"
)

// TestRequests_ReadAfterAsyncRecord checks that records published asynchronously are visible to
// the readers as soon as RecordRequest has returned: LastRequest and Requests wait for the
// records still in flight, also while other goroutines keep recording.
func TestRequests_ReadAfterAsyncRecord(t *testing.T) {
	t.Parallel()
	s := MustOpenStore(t)
	ctx := t.Context()
	const writers, each = 16, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r := audit.RequestRecord{Tenant: "t1", At: t0.Add(time.Duration(i) * time.Second), Cycle: 1,
					Method: "GET", Path: "/scim/v2/Users", Status: 200, RequestID: fmt.Sprintf("w%d-%d", w, i)}
				if err := s.RecordRequest(ctx, r); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// A reader among the writers finds a record or none, and does not wait for ever.
	if _, err := s.LastRequest(ctx, "t1"); err != nil && !errors.Is(err, domain.ErrNotFound) {
		t.Fatal(err)
	}
	wg.Wait()

	// Once flushed, the stream holds every record sent (read without the readers' own wait).
	if err := s.FlushRequests(ctx); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(rawConn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, eventstore.RequestStreamName)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := st.Info(ctx); err != nil || info.State.Msgs != writers*each {
		t.Fatalf("after FlushRequests the stream holds %v records (%v), want %d", info, err, writers*each)
	}

	// Sequential: each record is the last one the moment RecordRequest returns.
	for i := range 20 {
		id := fmt.Sprintf("seq-%d", i)
		if err := s.RecordRequest(ctx, audit.RequestRecord{Tenant: "t1", At: t0.Add(time.Hour), Cycle: 2,
			Method: "POST", Path: "/scim/v2/Users", Status: 201, RequestID: id}); err != nil {
			t.Fatal(err)
		}
		last, err := s.LastRequest(ctx, "t1")
		if err != nil || last.RequestID != id {
			t.Fatalf("LastRequest after recording %s = %+v, %v", id, last, err)
		}
	}
	n := 0
	if err := s.Requests(ctx, "t1", 1, 0, func(audit.RequestRecord) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	if want := writers*each + 20; n != want {
		t.Fatalf("Requests = %d records, want %d", n, want)
	}
}

// TestRequests_InvalidTenant checks that a record of a tenant that cannot be a subject token is
// refused at once, not lost in the background.
func TestRequests_InvalidTenant(t *testing.T) {
	t.Parallel()
	s := MustOpenStore(t)
	if err := s.RecordRequest(t.Context(), audit.RequestRecord{Tenant: "a.b"}); err == nil {
		t.Fatal("RecordRequest accepted tenant \"a.b\"")
	}
}

// TestRequests_RecordEncoding fills every field of a request record, with strings that need
// escaping, and reads it back: the record read is the record json.Marshal and json.Unmarshal
// would give. The stored bytes of a plain record are exactly json.Marshal's. A field added to
// audit.RequestRecord without being written by RecordRequest fails this test.
func TestRequests_RecordEncoding(t *testing.T) {
	t.Parallel()
	s := MustOpenStore(t)
	ctx := t.Context()
	fill := func(text string, ms float64) audit.RequestRecord {
		var r audit.RequestRecord
		v := reflect.ValueOf(&r).Elem()
		for i := range v.NumField() {
			f, name := v.Field(i), v.Type().Field(i).Name
			switch {
			case name == "Tenant":
				f.SetString("t1")
			case name == "Seq":
			case f.Type() == reflect.TypeFor[time.Time]():
				f.Set(reflect.ValueOf(t0.Add(time.Duration(ms))))
			case f.Kind() == reflect.String:
				f.SetString(name + text)
			case f.Kind() == reflect.Int:
				f.SetInt(int64(400 + i))
			case f.Kind() == reflect.Float64:
				f.SetFloat(ms)
			case f.Kind() == reflect.Bool:
				f.SetBool(true)
			default:
				t.Fatalf("RequestRecord.%s has a kind (%s) this test does not fill", name, f.Kind())
			}
		}
		return r
	}
	roundTrip := func(r audit.RequestRecord) audit.RequestRecord {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var out audit.RequestRecord
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, c := range []struct {
		text string
		ms   float64
	}{
		{"", 0}, {" plain", 1.25}, {` "quoted" \ <b>&amp; é 日本 \u2028 tab	nl` + "\n\x01 bad\xff", 3e-7},
		{"x", 1e21}, {"y", 123456.789}, {"z", -0.5},
	} {
		r := fill(c.text, c.ms)
		if err := s.RecordRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, err := s.LastRequest(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		want := roundTrip(r)
		want.Seq = got.Seq
		if !reflect.DeepEqual(got, want) {
			t.Errorf("record read back:\n got %+v\nwant %+v", got, want)
		}
	}

	// The stored bytes of plain records (all fields, and only the required ones), and of one
	// on a non-UTC clock (encoded by json.Marshal itself), are json.Marshal's.
	js, err := jetstream.New(rawConn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, eventstore.RequestStreamName)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []audit.RequestRecord{
		fill(" plain/path", 12.5),
		{Tenant: "t1", At: t0, Method: "GET", Path: "/p", Status: 200, RequestID: "r", Actor: "a"},
		{Tenant: "t1", At: t0.In(time.FixedZone("X", 3600)), Method: "GET", Path: "/p", Status: 200},
	} {
		if err := s.RecordRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
		if _, err := s.LastRequest(ctx, "t1"); err != nil { // waits for the record
			t.Fatal(err)
		}
		m, err := st.GetLastMsgForSubject(ctx, "idlr.t1")
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(r)
		if string(m.Data) != string(want) {
			t.Errorf("stored record:\n got %s\nwant %s", m.Data, want)
		}
	}
}
