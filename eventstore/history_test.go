package eventstore_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
	"github.com/idledger/idledger/eventstore"
)

// The store is the audit's log and request log.
var (
	_ audit.History    = (*eventstore.Store)(nil)
	_ audit.RequestLog = (*eventstore.Store)(nil)
)

// history appends a company and one user with n events (created, then n-1 changes, one a
// minute from t0) and returns the user's version.
func history(tb testing.TB, s *eventstore.Store, tenant domain.TenantID, user string, n int) domain.Version {
	tb.Helper()
	ctx := context.Background()
	seq := idSeq()
	newID := func() string { return string(tenant) + "-" + seq() }
	if _, err := s.Append(ctx, domain.Batch{Tenant: tenant, Writes: []domain.Write{{Event: tenantCreated(tenant, string(tenant)+"-e0")}}}); err != nil {
		tb.Fatal(err)
	}
	created := userCreated(tenant, user, newID(), "ada@example.com")
	v, err := s.Append(ctx, domain.Batch{Tenant: tenant, Writes: []domain.Write{{Event: created}},
		Unique: []domain.UniqueOp{{Field: "userName", Value: "ada@example.com", Holder: user}}})
	if err != nil {
		tb.Fatal(err)
	}
	for i := 1; i < n; i++ {
		e := domain.Event{ID: newID(), Tenant: tenant, Kind: domain.KindUser, AggregateID: user,
			Type: domain.EventUserAttributesChanged, Schema: 1, At: t0.Add(time.Duration(i) * time.Minute),
			Actor: "scim:tok1", Correlation: fmt.Sprintf("req-%d", i), UserAgent: "Microsoft.Identity.ProvisioningService/1.0",
			Source: "203.0.113.7",
			Data: domain.UserChanged{Method: "PATCH", Changes: []domain.Change{
				{Path: "displayName", Old: fmt.Sprintf("Ada %d", i-1), New: fmt.Sprintf("Ada %d", i)},
				{Path: "title", Old: "Countess", New: "Countess of Lovelace"},
			}}}
		if v, err = s.Append(ctx, domain.Batch{Tenant: tenant, Writes: []domain.Write{{Event: e, Expected: v}}}); err != nil {
			tb.Fatal(err)
		}
	}
	return v
}

func TestHistory_Events(t *testing.T) {
	t.Parallel()
	s := MustOpenStore(t)
	v := history(t, s, "t1", "u1", 10)
	all, err := s.Events(t.Context(), "t1", domain.KindUser, "u1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 10 || all[9].Version != v {
		t.Fatalf("Events = %d events, last %d; want 10, last %d", len(all), all[len(all)-1].Version, v)
	}
	if e := all[3]; e.UserAgent != "Microsoft.Identity.ProvisioningService/1.0" || e.Source != "203.0.113.7" || e.Correlation != "req-3" {
		t.Errorf("client metadata did not survive the log: %+v", e)
	}
	page, err := s.Events(t.Context(), "t1", domain.KindUser, "u1", all[2].Version, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 4 || page[0].Version != all[3].Version || page[3].Version != all[6].Version {
		t.Errorf("page after %d = %d events starting %d", all[2].Version, len(page), page[0].Version)
	}
	none, err := s.Events(t.Context(), "t1", domain.KindUser, "nobody", 0, 0)
	if err != nil || len(none) != 0 {
		t.Errorf("unknown user: %d events, %v", len(none), err)
	}
}

func TestHistory_Holders(t *testing.T) {
	t.Parallel()
	s := MustOpenStore(t)
	ctx := t.Context()
	history(t, s, "t1", "u1", 1)
	// u1 is renamed away, u2 takes the name, is deleted (releasing it), u3 takes it.
	v1, _ := s.Version(ctx, "t1", domain.KindUser, "u1")
	rename := domain.Event{ID: "r1", Tenant: "t1", Kind: domain.KindUser, AggregateID: "u1", Type: domain.EventUserAttributesChanged,
		Schema: 1, At: t0, Actor: "scim:tok1", Data: domain.UserChanged{Changes: []domain.Change{{Path: "userName", Old: "ada@example.com", New: "ada.l@example.com"}}}}
	if _, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: rename, Expected: v1}}, Unique: []domain.UniqueOp{
		{Field: "userName", Value: "ada@example.com", Holder: "u1", Release: true},
		{Field: "userName", Value: "ada.l@example.com", Holder: "u1"},
	}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"u2", "u3"} {
		v, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: userCreated("t1", id, "c-"+id, "ADA@example.com")}},
			Unique: []domain.UniqueOp{{Field: "userName", Value: "ada@example.com", Holder: id}}})
		if err != nil {
			t.Fatal(err)
		}
		if id == "u2" {
			del := domain.Event{ID: "d-u2", Tenant: "t1", Kind: domain.KindUser, AggregateID: "u2", Type: domain.EventUserDeleted,
				Schema: 1, At: t0, Actor: "scim:tok1", Data: domain.UserDeleted{}}
			if _, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: del, Expected: v}},
				Unique: []domain.UniqueOp{{Field: "userName", Value: "ada@example.com", Holder: "u2", Release: true}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := s.Holders(ctx, "t1", "userName", "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range got {
		ids = append(ids, fmt.Sprintf("%s released=%v", h.ID, h.Released != 0))
	}
	want := []string{"u1 released=true", "u2 released=true", "u3 released=false"}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("Holders = %v, want %v", ids, want)
	}
	if got, _ := s.Holders(ctx, "t1", "userName", "nobody@example.com"); len(got) != 0 {
		t.Errorf("never claimed: %v", got)
	}
	if got, _ := s.Holders(ctx, "t-unknown", "userName", "ada@example.com"); len(got) != 0 {
		t.Errorf("company without a key: %v", got)
	}
}

func TestHistory_Scan(t *testing.T) {
	t.Parallel()
	s := MustOpenStore(t)
	history(t, s, "t1", "u1", 5)
	history(t, s, "t2", "u9", 3)
	var seqs []domain.Version
	var kinds []domain.Kind
	err := s.Scan(t.Context(), "t1", 0, 0, func(e domain.Event) bool {
		seqs = append(seqs, e.Version)
		kinds = append(kinds, e.Kind)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	// tenant.created, uname claim, user.created, 4 changes
	if len(seqs) != 7 || kinds[1] != "uname" {
		t.Fatalf("Scan t1 = %v %v", seqs, kinds)
	}
	var part []domain.Version
	if err := s.Scan(t.Context(), "t1", seqs[2], seqs[4], func(e domain.Event) bool { part = append(part, e.Version); return true }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(part, seqs[3:5]) {
		t.Errorf("Scan (%d, %d] = %v, want %v", seqs[2], seqs[4], part, seqs[3:5])
	}
	n := 0
	if err := s.Scan(t.Context(), "t-none", 0, 0, func(domain.Event) bool { n++; return true }); err != nil || n != 0 {
		t.Errorf("unknown company: %d events, %v", n, err)
	}
}

func TestRequests_Records(t *testing.T) {
	t.Parallel()
	s := MustOpenStore(t)
	ctx := t.Context()
	if _, err := s.LastRequest(ctx, "t1"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("LastRequest without records: %v", err)
	}
	for cycle := 1; cycle <= 4; cycle++ {
		for i := range 3 {
			for _, tenant := range []domain.TenantID{"t1", "t2"} {
				r := audit.RequestRecord{Tenant: tenant, At: t0.Add(time.Duration(cycle) * time.Hour), Cycle: cycle,
					Method: "POST", Path: "/scim/v2/Users", Status: 201 + 208*(i%2), RequestID: fmt.Sprintf("c%d-%d", cycle, i)}
				if err := s.RecordRequest(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	last, err := s.LastRequest(ctx, "t1")
	if err != nil || last.Cycle != 4 || last.RequestID != "c4-2" || last.Seq == 0 {
		t.Fatalf("LastRequest = %+v, %v", last, err)
	}
	for _, c := range []struct{ from, through, want int }{{1, 0, 12}, {2, 3, 6}, {4, 4, 3}, {5, 0, 0}, {3, 0, 6}} {
		n := 0
		err := s.Requests(ctx, "t1", c.from, c.through, func(r audit.RequestRecord) bool {
			if r.Tenant != "t1" || r.Cycle < c.from || (c.through > 0 && r.Cycle > c.through) {
				t.Errorf("cycles %d..%d: got %+v", c.from, c.through, r)
			}
			n++
			return true
		})
		if err != nil || n != c.want {
			t.Errorf("Requests(%d, %d) = %d records, %v; want %d", c.from, c.through, n, err, c.want)
		}
	}

	t.Run("StreamRetention", func(t *testing.T) {
		js, _ := rawStream(t, s)
		st, err := js.Stream(ctx, eventstore.RequestStreamName)
		if err != nil {
			t.Fatal(err)
		}
		c := st.CachedInfo().Config
		if c.MaxAge != eventstore.DefaultRequestRetention || c.Discard != jetstream.DiscardOld || c.MaxBytes != eventstore.DefaultRequestMaxBytes ||
			c.MaxMsgsPerSubject <= 0 || c.DenyDelete || c.Subjects[0] != "idlr.>" {
			t.Errorf("IDL_REQUESTS config = %+v", c)
		}
	})
}

// exportOf exports a company and returns the lines.
func exportOf(tb testing.TB, s *eventstore.Store, tenant domain.TenantID, opt eventstore.ExportOptions) []map[string]any {
	tb.Helper()
	var buf bytes.Buffer
	st, err := s.Export(context.Background(), tenant, &buf, opt)
	if err != nil {
		tb.Fatal(err)
	}
	if st.Bytes != int64(buf.Len()) {
		tb.Errorf("stats say %d bytes, wrote %d", st.Bytes, buf.Len())
	}
	var lines []map[string]any
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			tb.Fatalf("export line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

func TestExport_ImportRoundTrip(t *testing.T) {
	t.Parallel()
	src := MustOpenStore(t)
	history(t, src, "t1", "u1", 20)
	history(t, src, "t2", "u2", 3) // another company, not exported
	var buf bytes.Buffer
	var progressed bool
	st, err := src.Export(t.Context(), "t1", &buf, eventstore.ExportOptions{Progress: func(done, total uint64) { progressed = done == total }})
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 22 || !progressed {
		t.Fatalf("exported %d messages (progress done %v), want 22", st.Messages, progressed)
	}
	file := t.TempDir() + "/t1.jsonl"
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	dst := MustOpenStore(t)
	in, err := dst.Import(t.Context(), f, eventstore.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if in.Tenant != "t1" || in.Messages != 22 {
		t.Fatalf("Import = %+v", in)
	}
	// The imported slice exports the same, positions and stored times apart.
	norm := func(lines []map[string]any) []map[string]any {
		for _, l := range lines {
			delete(l, "time")
			delete(l, "seq")
			delete(l, "exportedAt")
			delete(l, "end")
			if h, ok := l["headers"].(map[string]any); ok {
				for k := range h {
					if strings.HasPrefix(k, "Nats-") && k != "Nats-Msg-Id" {
						delete(h, k)
					}
				}
			}
		}
		return lines
	}
	a, b := norm(exportOf(t, src, "t1", eventstore.ExportOptions{})), norm(exportOf(t, dst, "t1", eventstore.ExportOptions{}))
	if !reflect.DeepEqual(a, b) {
		t.Errorf("re-export differs:\n%v\n%v", a, b)
	}
	events, _, err := dst.Load(t.Context(), "t1", domain.KindUser, "u1")
	if err != nil || len(events) != 20 || !events[19].At.Equal(t0.Add(19*time.Minute)) {
		t.Fatalf("imported user: %d events, %v", len(events), err)
	}
	// The claim key came along: the name is still taken, and found by name.
	if h, err := dst.Holders(t.Context(), "t1", "userName", "ada@example.com"); err != nil || len(h) != 1 || h[0].ID != "u1" {
		t.Errorf("Holders after import = %v, %v", h, err)
	}
	_, err = dst.Append(t.Context(), domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: userCreated("t1", "u3", "x3", "ada@example.com")}},
		Unique: []domain.UniqueOp{{Field: "userName", Value: "ada@example.com", Holder: "u3"}}})
	if !errors.Is(err, domain.ErrUniqueness) {
		t.Errorf("creating a taken userName after import: %v, want ErrUniqueness", err)
	}

	t.Run("RefusesCompanyAlreadyThere", func(t *testing.T) {
		if _, err := dst.Import(t.Context(), f, eventstore.ImportOptions{}); !errors.Is(err, domain.ErrUniqueness) {
			t.Errorf("second import: %v", err)
		}
	})
	t.Run("RefusesTruncated", func(t *testing.T) {
		lines := bytes.SplitAfter(buf.Bytes(), []byte("\n"))
		cut := bytes.Join(lines[:len(lines)-3], nil)
		if _, err := MustOpenStore(t).Import(t.Context(), bytes.NewReader(cut), eventstore.ImportOptions{}); !errors.Is(err, domain.ErrInvalid) ||
			!strings.Contains(err.Error(), "truncated") {
			t.Errorf("truncated import: %v", err)
		}
	})
	t.Run("RefusesSince", func(t *testing.T) {
		var part bytes.Buffer
		if _, err := src.Export(t.Context(), "t1", &part, eventstore.ExportOptions{Since: t0.Add(5 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if _, err := MustOpenStore(t).Import(t.Context(), bytes.NewReader(part.Bytes()), eventstore.ImportOptions{}); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("import of a since export: %v", err)
		}
	})
}

func TestExport_TimeRange(t *testing.T) {
	t.Parallel()
	s := MustOpenStore(t)
	history(t, s, "t1", "u1", 10) // user.created at t0+1s (with its claim), changes at t0+1m … t0+9m
	count := func(opt eventstore.ExportOptions) (msgs int, claims int) {
		lines := exportOf(t, s, "t1", opt)
		for _, l := range lines[1 : len(lines)-1] {
			msgs++
			if h := l["headers"].(map[string]any); h["Idl-Type"] == "uname.claimed" {
				claims++
			}
		}
		if lines[0]["format"] != eventstore.ExportFormat || lines[len(lines)-1]["end"] == nil {
			t.Errorf("header %v, end %v", lines[0], lines[len(lines)-1])
		}
		return msgs, claims
	}
	if n, c := count(eventstore.ExportOptions{}); n != 12 || c != 1 {
		t.Errorf("all: %d messages, %d claims; want 12, 1", n, c)
	}
	// The claim goes with user.created, which happened at t0+1s.
	if n, c := count(eventstore.ExportOptions{Since: t0.Add(time.Second), Until: t0.Add(3 * time.Minute)}); n != 5 || c != 1 {
		t.Errorf("[t0+1s, t0+3m]: %d messages, %d claims; want 5, 1", n, c)
	}
	if n, c := count(eventstore.ExportOptions{Since: t0.Add(2 * time.Minute)}); n != 8 || c != 0 {
		t.Errorf("since t0+2m: %d messages, %d claims; want 8, 0", n, c)
	}
}

// BenchmarkExport compares Export with the raw rate at which an ordered consumer reads the same
// company from the log, on a user with 1,000 events, and fails if Export is slower than half of
// it.
func BenchmarkExport(b *testing.B) {
	s := mustOpen(b, eventstore.Config{Dir: b.TempDir(), NoSync: true})
	history(b, s, "t1", "u1", 1000)
	history(b, s, "t2", "u2", 50)
	ctx := context.Background()
	js, _ := rawStream(b, s)
	raw := func() int {
		cons, err := js.OrderedConsumer(ctx, eventstore.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"idl.t1.>"}})
		if err != nil {
			b.Fatal(err)
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(2048))
		if err != nil {
			b.Fatal(err)
		}
		defer it.Stop()
		n := 0
		for {
			m, err := it.Next()
			if err != nil {
				b.Fatal(err)
			}
			n++
			md, _ := m.Metadata()
			if md.NumPending == 0 {
				return n
			}
		}
	}
	export := func() int {
		st, err := s.Export(ctx, "t1", io.Discard, eventstore.ExportOptions{})
		if err != nil {
			b.Fatal(err)
		}
		return int(st.Messages)
	}
	// Each round reads the company once raw and exports it once, so that both rates are
	// measured under the same load.
	var rawTime, exportTime time.Duration
	var rawMsgs, msgs int
	for b.Loop() {
		start := time.Now()
		rawMsgs += raw()
		mid := time.Now()
		msgs += export()
		rawTime, exportTime = rawTime+mid.Sub(start), exportTime+time.Since(mid)
	}
	rawRate := float64(rawMsgs) / rawTime.Seconds()
	exportRate := float64(msgs) / exportTime.Seconds()
	b.ReportMetric(rawRate, "raw-msgs/s")
	b.ReportMetric(exportRate, "export-msgs/s")
	b.ReportMetric(exportRate/rawRate, "export/raw")
	if exportRate < rawRate/2 {
		b.Errorf("export streams %.0f msgs/s, below half the raw consume rate %.0f msgs/s", exportRate, rawRate)
	}
}

// BenchmarkAsOf folds a user with 1,000 events as of the middle of its history: read its
// subject from the log, then StateAt.
func BenchmarkAsOf(b *testing.B) {
	s := mustOpen(b, eventstore.Config{Dir: b.TempDir(), NoSync: true})
	history(b, s, "t1", "u1", 1000)
	a := &audit.Service{Log: s, History: s}
	at := t0.Add(500 * time.Minute)
	ctx := context.Background()
	for b.Loop() {
		snap, err := a.UserAt(ctx, "t1", "u1", at)
		if err != nil {
			b.Fatal(err)
		}
		if snap.User.Resource["displayName"] != "Ada 500" {
			b.Fatalf("displayName = %v", snap.User.Resource["displayName"])
		}
	}
}
