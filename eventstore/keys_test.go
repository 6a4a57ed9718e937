package eventstore_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/eventstore"
)

// filesContaining returns the files under dir that hold b.
func filesContaining(tb testing.TB, dir string, b []byte) []string {
	tb.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, b) {
			hits = append(hits, path)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return hits
}

// wrappedKey returns the stored (base64) wrapped form of the data key named by the user's first event.
func wrappedKey(tb testing.TB, s *eventstore.Store, tenant, user string) []byte {
	tb.Helper()
	js, st := rawStream(tb, s)
	first, err := st.GetMsg(tb.Context(), 1, jetstream.WithGetMsgSubject("idl."+tenant+".user."+user))
	if err != nil {
		tb.Fatal(err)
	}
	id := first.Header.Get("Idl-Key")
	if id == "" {
		tb.Fatal("the user's first event names no data key")
	}
	ks, err := js.Stream(tb.Context(), eventstore.KeyStreamName)
	if err != nil {
		tb.Fatal(err)
	}
	m, err := ks.GetLastMsgForSubject(tb.Context(), "idlk."+id)
	if err != nil {
		tb.Fatal(err)
	}
	var rec struct{ Key json.RawMessage }
	if err := json.Unmarshal(m.Data, &rec); err != nil {
		tb.Fatal(err)
	}
	return bytes.Trim(rec.Key, `"`) // base64, as stored
}

func newMasterKey(tb testing.TB, dir, name string) (*eventstore.MasterKey, string) {
	tb.Helper()
	path := filepath.Join(dir, name)
	k, err := eventstore.WriteNewMasterKeyFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return k, path
}

// TestKeys_SealEraseRotate: personal values are stored sealed and read back in clear; erasing
// the key overwrites it on disk (its wrapped bytes are in no file any more) and the values
// then read "erased" while the chain still verifies; a rotation re-wraps the other keys under
// a new master key and leaves no copy under the old one; the old key is then refused.
func TestKeys_SealEraseRotate(t *testing.T) {
	dir := t.TempDir()
	keyA, _ := newMasterKey(t, t.TempDir(), "a.key")
	s := mustOpen(t, eventstore.Config{Dir: dir, NoSync: true, MasterKey: keyA})
	ctx := t.Context()
	ids := idSeq()
	const tenant = "t1"
	if _, err := s.Append(ctx, domain.Batch{Tenant: tenant, Writes: []domain.Write{{Event: tenantCreated(tenant, ids())}}}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"u1", "u2"} {
		if _, err := s.Append(ctx, domain.Batch{Tenant: tenant, Writes: []domain.Write{{Event: userCreated(tenant, u, ids(), "grace-"+u+"@hopper.example")}}}); err != nil {
			t.Fatal(err)
		}
	}
	_, st := rawStream(t, s)
	raw, err := st.GetMsg(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw.Data, []byte("grace-u1")) || !bytes.Contains(raw.Data, []byte(`"userName":"idl:sealed:1:`)) {
		t.Fatalf("stored body is not sealed: %s", raw.Data)
	}
	events, _, err := s.Load(ctx, tenant, domain.KindUser, "u1")
	if err != nil || len(events) != 1 || events[0].Data.(domain.UserCreated).Attributes["userName"] != "grace-u1@hopper.example" {
		t.Fatalf("load: %v %+v", err, events)
	}

	wrapped := wrappedKey(t, s, tenant, "u1")
	if len(filesContaining(t, dir, wrapped)) == 0 {
		t.Fatal("the wrapped key is in no file: the scan cannot fail")
	}
	had, err := s.EraseUserKey(ctx, tenant, "u1")
	if err != nil || !had {
		t.Fatalf("erase: %v %v", had, err)
	}
	if again, err := s.EraseUserKey(ctx, tenant, "u1"); err != nil || !again {
		t.Fatalf("erase again: %v %v", again, err)
	}
	events, _, err = s.Load(ctx, tenant, domain.KindUser, "u1")
	if err != nil {
		t.Fatal(err)
	}
	attrs := events[0].Data.(domain.UserCreated).Attributes
	if attrs["userName"] != domain.ErasedValue || attrs["name"] != domain.ErasedValue || attrs["emails"] != domain.ErasedValue {
		t.Fatalf("after erasure: %v", attrs)
	}
	if rep, err := s.Verify(ctx, nil); err != nil || len(rep.Breaks) > 0 {
		t.Fatalf("verify after erasure: %v %v", err, rep.Breaks)
	}
	wrapped2 := wrappedKey(t, s, tenant, "u2")
	s.Close()
	if hits := filesContaining(t, dir, wrapped); len(hits) > 0 {
		t.Fatalf("the erased key's bytes are still in %v", hits)
	}

	// Rotation to B.
	keyB, _ := newMasterKey(t, t.TempDir(), "b.key")
	s = mustOpen(t, eventstore.Config{Dir: dir, NoSync: true, MasterKey: keyA, NextMasterKey: keyB})
	n, err := s.RotateMasterKey(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 { // u2's key and the unused keys made in advance
		t.Fatalf("rotated %d keys", n)
	}
	s.Close()
	if hits := filesContaining(t, dir, wrapped2); len(hits) > 0 {
		t.Fatalf("the key wrapped under the old master key is still in %v", hits)
	}
	if _, err := eventstore.Open(ctx, eventstore.Config{Dir: dir, NoSync: true, MasterKey: keyA}); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("open with the old master key after rotation: %v", err)
	}
	s = mustOpen(t, eventstore.Config{Dir: dir, NoSync: true, MasterKey: keyB})
	events, _, err = s.Load(ctx, tenant, domain.KindUser, "u2")
	if err != nil || events[0].Data.(domain.UserCreated).Attributes["userName"] != "grace-u2@hopper.example" {
		t.Fatalf("load under the new master key: %v %+v", err, events)
	}
}

// TestMigrateEncrypt: a log written in clear is copied into a new one with the same
// sequences, subjects and ids, its personal values sealed, a chain that verifies, the claim
// keys (userName uniqueness holds on), and the same events read back.
func TestMigrateEncrypt(t *testing.T) {
	ctx := t.Context()
	src := mustOpen(t, eventstore.Config{Dir: t.TempDir(), NoSync: true})
	ids := idSeq()
	const tenant = "t1"
	if _, err := src.Append(ctx, domain.Batch{Tenant: tenant, Writes: []domain.Write{{Event: tenantCreated(tenant, ids())}}}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"u1", "u2"} {
		e := userCreated(tenant, u, ids(), "grace-"+u+"@hopper.example")
		if _, err := src.Append(ctx, domain.Batch{Tenant: tenant, Writes: []domain.Write{{Event: e}},
			Unique: []domain.UniqueOp{{Field: "userName", Value: "grace-" + u + "@hopper.example", Holder: u}}}); err != nil {
			t.Fatal(err)
		}
	}
	key, _ := newMasterKey(t, t.TempDir(), "m.key")
	dir := t.TempDir()
	dst := mustOpen(t, eventstore.Config{Dir: dir, NoSync: true, MasterKey: key})
	st, err := dst.MigrateEncrypt(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != messages(t, src) || st.LastSeq != st.Messages || st.Sealed != 2 {
		t.Fatalf("stats %+v, source has %d messages", st, messages(t, src))
	}
	if rep, err := dst.Verify(ctx, nil); err != nil || len(rep.Breaks) > 0 || rep.Messages != st.Messages {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	for _, u := range []string{"u1", "u2"} {
		a, va, err := src.Load(ctx, tenant, domain.KindUser, u)
		if err != nil {
			t.Fatal(err)
		}
		b, vb, err := dst.Load(ctx, tenant, domain.KindUser, u)
		if err != nil {
			t.Fatal(err)
		}
		if va != vb || len(a) != len(b) || a[0].ID != b[0].ID || !reflect.DeepEqual(a[0].Data, b[0].Data) {
			t.Fatalf("%s differs after migration:\n%+v\n%+v", u, a, b)
		}
	}
	// The claim keys came along: the name is still taken.
	e := userCreated(tenant, "u3", ids(), "x")
	_, err = dst.Append(ctx, domain.Batch{Tenant: tenant, Writes: []domain.Write{{Event: e}},
		Unique: []domain.UniqueOp{{Field: "userName", Value: "grace-u1@hopper.example", Holder: "u3"}}})
	if !errors.Is(err, domain.ErrUniqueness) {
		t.Fatalf("claim after migration: %v", err)
	}
	// Erasable now.
	if had, err := dst.EraseUserKey(ctx, tenant, "u1"); err != nil || !had {
		t.Fatalf("erase after migration: %v %v", had, err)
	}
	dst.Close()
	if hits := filesContaining(t, dir, []byte("grace-u1")); len(hits) > 0 {
		t.Fatalf("plain userName in the new log: %v", hits)
	}
}

// TestPersonalValues: the values that name a person, from creation and changes, without the
// words that name no one (types of emails, booleans).
func TestPersonalValues(t *testing.T) {
	key, _ := newMasterKey(t, t.TempDir(), "m.key")
	s := mustOpen(t, eventstore.Config{Dir: t.TempDir(), NoSync: true, MasterKey: key})
	ctx := t.Context()
	ids := idSeq()
	v, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: userCreated("t1", "u1", ids(), "grace@hopper.example")}}})
	if err != nil {
		t.Fatal(err)
	}
	ch := userCreated("t1", "u1", ids(), "")
	ch.Type, ch.Data = domain.EventUserAttributesChanged, domain.UserChanged{Changes: []domain.Change{
		{Path: "userName", Old: "grace@hopper.example", New: "g.hopper@hopper.example"},
		{Path: "title", New: "Rear Admiral"},
	}}
	if _, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: ch, Expected: v}}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.PersonalValues(ctx, "t1", "u1")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := []string{"Ada", "Lovelace", "ada@example.com", "g.hopper@hopper.example", "grace@hopper.example"}
	if !slices.Equal(got, want) {
		t.Fatalf("values %q, want %q", got, want)
	}
}

// TestScanSealed: Scan opens the personal values (strings with and without escapes, non-ASCII
// text, objects and lists come back as they were given); ScanSealed leaves them sealed.
func TestScanSealed(t *testing.T) {
	key, _ := newMasterKey(t, t.TempDir(), "m.key")
	s := mustOpen(t, eventstore.Config{Dir: t.TempDir(), NoSync: true, MasterKey: key})
	ctx := t.Context()
	ids := idSeq()
	e := userCreated("t1", "u1", ids(), "grâce@hopper.example")
	attrs := e.Data.(domain.UserCreated).Attributes
	attrs["displayName"] = `Grace "Amazing" <Hopper> & co\` + "\u2028"
	attrs["title"] = "Rear Admiral"
	if _, err := s.Append(ctx, domain.Batch{Tenant: "t1", Writes: []domain.Write{{Event: e}}}); err != nil {
		t.Fatal(err)
	}
	var opened, sealed map[string]any
	if err := s.Scan(ctx, "t1", 0, 0, func(e domain.Event) bool {
		opened = e.Data.(domain.UserCreated).Attributes
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(opened, attrs) {
		t.Fatalf("Scan: %#v, want %#v", opened, attrs)
	}
	if err := s.ScanSealed(ctx, "t1", 0, 0, func(e domain.Event) bool {
		sealed = e.Data.(domain.UserCreated).Attributes
		return true
	}); err != nil {
		t.Fatal(err)
	}
	for k, v := range sealed {
		if s, _ := v.(string); !strings.HasPrefix(s, "idl:sealed:1:") {
			t.Errorf("ScanSealed: %s = %#v, want a sealed value", k, v)
		}
	}
	if len(sealed) != len(attrs) {
		t.Fatalf("ScanSealed: %d attributes, want %d", len(sealed), len(attrs))
	}
}
