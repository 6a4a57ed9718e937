package eventstore

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/idledger/idledger/domain"
)

// goldenSubject returns a subject for a golden event of the given type: its kind is the
// type's first dotted part ("user.created" → idl.t1.user.a1), a tenant's has no id.
func goldenSubject(typ string) string {
	kind, _, _ := strings.Cut(typ, ".")
	if kind == string(domain.KindTenant) {
		return "idl.t1.tenant"
	}
	return "idl.t1." + kind + ".a1"
}

// FuzzDecodeEvent feeds decode what a log (or anyone with write access to the stream) could
// hold: any subject, type, schema, occurred time and payload. decode must never panic; every
// failure must be errUndecodable (which the projector reports with the position, never a
// crash); and a decoded domain event must survive encode and decode unchanged, as the
// projector and the audit tools rely on. Seeded with testdata/events.
func FuzzDecodeEvent(f *testing.F) {
	files, err := filepath.Glob("../testdata/events/*.jsonl")
	if err != nil || len(files) == 0 {
		f.Fatalf("no golden events: %v", err)
	}
	for _, file := range files {
		fh, err := os.Open(file)
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line struct {
				Type   string          `json:"type"`
				Schema int             `json:"schema"`
				Data   json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				f.Fatalf("%s: %v", file, err)
			}
			f.Add(goldenSubject(line.Type), line.Type, strconv.Itoa(line.Schema), "2026-11-20T09:00:00.000000005Z", []byte(line.Data))
		}
		fh.Close()
	}
	f.Add("idl.t1.uname.abc", typeClaimed, "1", "", []byte(`{"holder":"u1"}`))
	f.Add("idl.t1.guard", typeGuard, "1", "", []byte(`{}`))
	f.Add("idl.t1.user.u1.x", domain.EventUserCreated, "1", "yesterday", []byte(`{"attributes":{}}`))
	f.Add("idl.t1.user.u1", domain.EventUserCreated, "99", "", []byte(`{"attributes":"ada"}`))
	f.Add("idl.t1.group.g1", domain.EventGroupMembersAdded, "1", "2026-11-20T10:00:00+01:00", []byte(`{"members":[{"value":"u1"}]}`))
	f.Add("idl..user.", "user.from_the_future", "-1", "", []byte(`null`))

	f.Fuzz(func(t *testing.T, subj, typ, schema, occurred string, data []byte) {
		h := nats.Header{}
		h.Set(hdrType, typ)
		h.Set(hdrSchema, schema)
		h.Set(hdrMsgID, "e1")
		h.Set(hdrActor, "scim:abc")
		h.Set(hdrOccurred, occurred)
		e, err := decode(subj, h, data, 42, codecStored)
		if err != nil {
			if !errors.Is(err, errUndecodable) {
				t.Fatalf("decode: %v is not errUndecodable", err)
			}
			if !strings.Contains(err.Error(), "seq 42") {
				t.Fatalf("decode error %q does not name the position", err)
			}
			return
		}
		if e.Version != 42 || e.Type != typ || !strings.HasPrefix(subj, "idl."+string(e.Tenant)+"."+string(e.Kind)) {
			t.Fatalf("decode(%q) = %+v: envelope does not match the message", subj, e)
		}
		if e.Data == nil || e.Kind == guardKind || isClaimKind(string(e.Kind)) {
			return // index records and unknown types carry no payload to round-trip
		}
		m, err := encode(e)
		if err != nil {
			// Subjects decode accepts but encode refuses (a wildcard or space in a token)
			// cannot be written by idledger; the payload itself must still encode.
			if _, derr := domain.EncodeData(e.Data); derr != nil && !errors.Is(derr, domain.ErrInvalid) {
				t.Fatalf("EncodeData(%T): %v", e.Data, derr)
			}
			return
		}
		again, err := decode(m.Subject, m.Header, m.Data, 42, codecStored)
		if err != nil {
			t.Fatalf("decode(encode(e)): %v", err)
		}
		if !again.At.Equal(e.At) {
			t.Fatalf("At %v became %v", e.At, again.At)
		}
		again.At = e.At
		if !reflect.DeepEqual(again, e) {
			t.Fatalf("decode(encode(e)) =\n%#v\nwant\n%#v", again, e)
		}
	})
}
