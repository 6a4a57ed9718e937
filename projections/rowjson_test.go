package projections

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/scim"
)

// The row codec (rowjson.go) hardcodes the fields of the rows it writes: a field added to one
// of these structs must be added there too.
func TestRowJSON_field_lists(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		v    any
		want string
	}{
		{domain.User{}, "ID id,Tenant tenant,Schemas schemas,omitempty,Resource resource,Created created,Modified modified,Version version,Deleted deleted,omitempty,Local local,omitempty"},
		{domain.Group{}, "ID id,Tenant tenant,Schemas schemas,omitempty,Resource resource,Members members,Created created,Modified modified,Version version,Deleted deleted,omitempty"},
		{domain.LoginEntry{}, "User user,Active active"},
	} {
		rt := reflect.TypeOf(tt.v)
		var fields []string
		for f := range rt.Fields() {
			fields = append(fields, f.Name+" "+f.Tag.Get("json"))
		}
		if got := strings.Join(fields, ","); got != tt.want {
			t.Errorf("%s has fields %s; rowjson.go encodes %s: update it", rt, got, tt.want)
		}
	}
}

// rowGen makes random rows whose values cover what JSON can hold and what encoding/json
// escapes or refuses.
type rowGen struct{ r *rand.Rand }

var genRunes = []string{"a", "Z", "0", " ", `"`, `\`, "/", "<", ">", "&", "\b", "\f", "\n", "\r", "\t", "\x00", "\x1f",
	"\x7f", "é", "€", "\u2028", "\u2029", "😀", "\xff", "\xc3", "\ufffd", "ß", ":", "urn:ietf:params"}

func (g rowGen) str() string {
	var b strings.Builder
	for range g.r.IntN(12) {
		b.WriteString(genRunes[g.r.IntN(len(genRunes))])
	}
	return b.String()
}

var genFloats = []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1e-7, 1e-6, 9.99e-7, 1e20, 1e21, 123456789.123,
	1.5e300, 5e-324, math.MaxFloat64, -2.5e-10, 100000, 1e100}

func (g rowGen) float() float64 {
	if g.r.IntN(2) == 0 {
		return genFloats[g.r.IntN(len(genFloats))]
	}
	for {
		if f := math.Float64frombits(g.r.Uint64()); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
	}
}

func (g rowGen) value(depth int) any {
	n := 6
	if depth < 4 {
		n = 10
	}
	switch g.r.IntN(n) {
	case 0:
		return nil
	case 1:
		return g.r.IntN(2) == 0
	case 2, 3:
		return g.str()
	case 4, 5:
		return g.float()
	case 6:
		if g.r.IntN(8) == 0 {
			return []any(nil)
		}
		a := []any{}
		for range g.r.IntN(4) {
			a = append(a, g.value(depth+1))
		}
		return a
	default:
		return g.object(depth + 1)
	}
}

func (g rowGen) object(depth int) map[string]any {
	if g.r.IntN(10) == 0 {
		return nil
	}
	m := map[string]any{}
	for range g.r.IntN(6) {
		m[g.str()] = g.value(depth)
	}
	return m
}

func (g rowGen) time() time.Time {
	locs := []*time.Location{time.UTC, time.FixedZone("", 5*3600+1800), time.FixedZone("X", -7*3600), time.Local}
	sec := g.r.Int64N(253402300799) // years 1970..9999
	if g.r.IntN(20) == 0 {
		sec = -62135596800 - g.r.Int64N(1e9) // before year 1: refused by MarshalJSON
	}
	return time.Unix(sec, g.r.Int64N(1e9)).In(locs[g.r.IntN(len(locs))])
}

func (g rowGen) schemas() []string {
	switch g.r.IntN(3) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	return []string{g.str(), scim.SchemaUser}
}

func (g rowGen) user() domain.User {
	return domain.User{ID: domain.UserID(g.str()), Tenant: domain.TenantID(g.str()), Schemas: g.schemas(),
		Resource: g.object(0), Created: g.time(), Modified: g.time(), Version: domain.Version(g.r.Uint64() >> g.r.IntN(64)),
		Deleted: g.r.IntN(2) == 0, Local: g.r.IntN(2) == 0}
}

func (g rowGen) group() domain.Group {
	return domain.Group{ID: domain.GroupID(g.str()), Tenant: domain.TenantID(g.str()), Schemas: g.schemas(),
		Resource: g.object(0), Members: int(g.r.Int64()) >> g.r.IntN(64), Created: g.time(), Modified: g.time(),
		Version: domain.Version(g.r.Uint64()), Deleted: g.r.IntN(2) == 0}
}

// checkCodec checks that marshal and unmarshal agree with encoding/json on v, and on the
// encoding of v decoded again.
func checkCodec[T any](t *testing.T, v T, marshal func([]byte, T) ([]byte, error), unmarshal func([]byte, *T) error) {
	t.Helper()
	want, wantErr := json.Marshal(v)
	prefix := []byte("prefix")
	got, err := marshal(prefix, v)
	if err == nil {
		if !bytes.HasPrefix(got, prefix) {
			t.Fatalf("marshal(%#v) lost what it appends to: %q", v, got)
		}
		got = got[len(prefix):]
	}
	if (err != nil) != (wantErr != nil) || (err == nil && !bytes.Equal(got, want)) {
		t.Fatalf("marshal(%#v) =\n%s, %v; encoding/json:\n%s, %v", v, got, err, want, wantErr)
	}
	if wantErr != nil {
		return
	}
	checkDecode(t, want, unmarshal)
}

// checkDecode checks that unmarshal decodes data as encoding/json does.
func checkDecode[T any](t *testing.T, data []byte, unmarshal func([]byte, *T) error) {
	t.Helper()
	var want, got T
	wantErr := json.Unmarshal(data, &want)
	err := unmarshal(data, &got)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("unmarshal(%q) error %v; encoding/json: %v", data, err, wantErr)
	}
	if wantErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("unmarshal(%q) =\n%#v; encoding/json:\n%#v", data, got, want)
	}
}

func TestRowJSON_matches_encoding_json(t *testing.T) {
	t.Parallel()
	g := rowGen{rand.New(rand.NewPCG(1, 2))}
	fast := 0
	for range 20000 {
		u := g.user()
		if _, ok := appendUser(nil, &u); ok {
			fast++
		}
		checkCodec(t, u, marshalUser, unmarshalUser)
		checkCodec(t, g.group(), marshalGroup, unmarshalGroup)
		checkCodec(t, domain.LoginEntry{User: domain.UserID(g.str()), Active: g.r.IntN(2) == 0}, marshalLogin, unmarshalLogin)
	}
	if fast < 15000 {
		t.Errorf("only %d of 20000 users took the fast path", fast)
	}
	// Rows encoding/json decodes differently, or refuses, are left to it.
	for _, s := range rowJSONEdgeCases {
		checkDecode(t, []byte(s), unmarshalUser)
		checkDecode(t, []byte(s), unmarshalGroup)
		checkDecode(t, []byte(s), unmarshalLogin)
	}
}

var rowJSONEdgeCases = []string{
	``, ` `, `null`, `{}`, ` { } `, `[]`, `"x"`, `{"id":"a"}x`, `{"id":"a",}`, `{"id":"a"`, `{"id" "a"}`,
	`{"ID":"a"}`, `{"Id":"a","id":"b"}`, `{"id":"a","id":"b"}`, `{"unknown":1,"id":"a"}`, `{"id":null}`,
	`{"id":1}`, `{"schemas":null}`, `{"schemas":[]}`, `{"schemas":["a",null]}`, `{"schemas":["a",1]}`,
	`{"resource":null}`, `{"resource":[]}`, `{"resource":{"a":{"b":[1,2,{"c":null}]}}}`, `{"resource":{"a":1,"a":2}}`,
	`{"resource":{"n":-0,"m":1E400,"k":1e-400,"j":01,"i":1.,"h":.5,"g":-,"f":1e+5,"e":0.5e-3}}`,
	`{"resource":{"s":"\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t"}}`, `{"resource":{"s":"\ud83d"}}`, `{"resource":{"s":"\x"}}`,
	"{\"resource\":{\"s\":\"\xff\"}}", "{\"resource\":{\"s\":\"a\x01\"}}", `{"resource":{"s":"\u00"}}`,
	`{"resource":{"t":true,"f":false,"n":null,"x":tru}}`, `{"resource":{` + strings.Repeat(`"a":[`, 70) + strings.Repeat(`]`, 70) + `}}`,
	`{"created":"2026-11-20T09:00:00Z","modified":"2026-11-20T09:00:00.123456789+05:30"}`, `{"created":null}`,
	`{"created":"2026-11-20"}`, `{"created":"2026-11-20T09:00:00\u005a"}`, `{"created":1}`,
	`{"version":18446744073709551615}`, `{"version":18446744073709551616}`, `{"version":1.0}`, `{"version":-1}`,
	`{"version":1e3}`, `{"members":-5}`, `{"members":9223372036854775808}`, `{"deleted":true,"local":false}`,
	`{"deleted":null}`, `{"deleted":"true"}`, `{"user":"u","active":true}`, `{"user":"u","active":1}`,
	"\t{\"id\" : \"a\" ,\n\"version\" :\r 3 }\n",
}

func FuzzRowJSON(f *testing.F) {
	g := rowGen{rand.New(rand.NewPCG(3, 4))}
	for range 20 {
		if b, err := json.Marshal(g.user()); err == nil {
			f.Add(b)
		}
		if b, err := json.Marshal(g.group()); err == nil {
			f.Add(b)
		}
	}
	for _, s := range rowJSONEdgeCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data, unmarshalUser)
		checkDecode(t, data, unmarshalGroup)
		checkDecode(t, data, unmarshalLogin)
	})
}

func BenchmarkRowJSON(b *testing.B) {
	u := domain.User{ID: "0192000000000000000000000000000a", Tenant: "01920000000000000000000000000001",
		Schemas: []string{scim.SchemaUser, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"},
		Created: time.Date(2026, 11, 20, 9, 0, 0, 6e6, time.UTC), Modified: time.Date(2026, 11, 20, 9, 1, 0, 0, time.UTC), Version: 12}
	if err := json.Unmarshal([]byte(`{"active":true,"displayName":"Edsger Lovelace","emails":[{"primary":true,"type":"work","value":"edsger.lovelace0000003@contoso.example"}],"externalId":"edsger0000003","name":{"familyName":"Lovelace","formatted":"Edsger Lovelace","givenName":"Edsger"},"roles":[{"primary":true,"value":"admin"}],"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Legal","employeeNumber":"100003","manager":{"value":"01920000000000000000000000000002"}},"userName":"Edsger.Lovelace0000003@Contoso.example"}`), &u.Resource); err != nil {
		b.Fatal(err)
	}
	raw, _ := json.Marshal(u)
	for _, c := range []struct {
		name string
		fn   func() error
	}{
		{"encoding_json/Marshal", func() error { _, err := json.Marshal(u); return err }},
		{"rowjson/Marshal", func() error { _, err := marshalUser(nil, u); return err }},
		{"encoding_json/Unmarshal", func() error { var v domain.User; return json.Unmarshal(raw, &v) }},
		{"rowjson/Unmarshal", func() error { var v domain.User; return unmarshalUser(raw, &v) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
