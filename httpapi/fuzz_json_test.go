package httpapi

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/scim"
)

// scimBodies returns every request body of the SCIM scenarios in testdata/scim: objects as
// JSON, strings verbatim (the malformed ones).
func scimBodies(tb testing.TB) [][]byte {
	tb.Helper()
	files, err := filepath.Glob("../testdata/scim/*.json")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no SCIM scenarios: %v", err)
	}
	var out [][]byte
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if k == "body" {
					if s, ok := e.(string); ok {
						out = append(out, []byte(s))
					} else if b, err := json.Marshal(e); err == nil {
						out = append(out, b)
					}
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(raw, &doc); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		walk(doc)
	}
	return out
}

// clientErrors are the kinds a request body may fail with: each maps to a 4xx (errors.go).
var clientErrors = []error{
	domain.ErrInvalid, domain.ErrInvalidSyntax, domain.ErrInvalidPath, domain.ErrInvalidFilter,
	domain.ErrNoTarget, domain.ErrMutability, domain.ErrTooMany,
}

func checkClientError(t *testing.T, what string, err error) {
	t.Helper()
	for _, k := range clientErrors {
		if errors.Is(err, k) {
			detail := domain.ErrorDetail(err)
			if detail == "" {
				t.Fatalf("%s: %v has no detail for the client", what, err)
			}
			for _, internal := range []string{"Go value", "interface {}", "json: ", "map["} {
				if strings.Contains(detail, internal) {
					t.Fatalf("%s: detail %q shows the decoder's internals", what, detail)
				}
			}
			return
		}
	}
	t.Fatalf("%s: error %v is not a client error: it would answer 500", what, err)
}

// FuzzSCIMBody drives a request body through what a SCIM write does with it before anything
// is appended: decodeObject (readObject without HTTP), then CanonicalUser, CanonicalGroup and
// the PATCH request parser. None may panic, every failure must be a client error with a
// detail, and a canonical user or group must be stable: canonicalising it again (after the
// JSON round trip of the event log) changes nothing.
func FuzzSCIMBody(f *testing.F) {
	for _, b := range scimBodies(f) {
		f.Add(b)
	}
	for _, s := range []string{
		`{"userName":"a","x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
		"{\"userName\":\"\xff\"}", `{"userName":"a\u0000"}`, `{"userName":1e999}`, `[]`, `null`, ` `,
		`{"userName":"a","emails":"a@b"}`, `{"userName":"a","urn:x:User":{"a":{"b":[{"c":null}]}}}`,
		`{"displayName":"g","members":"u1"}`, `{"Operations":[{"op":"Add","path":"members","value":[{"value":"u1"}]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := decodeObject(body)
		if err != nil {
			checkClientError(t, "decodeObject", err)
			return
		}
		if m == nil {
			t.Fatal("decodeObject returned a nil object without an error")
		}
		if u, _, err := scim.CanonicalUser(m); err != nil {
			checkClientError(t, "CanonicalUser", err)
		} else {
			again, _, err := scim.CanonicalUser(roundTrip(t, u))
			if err != nil || !reflect.DeepEqual(roundTrip(t, again), roundTrip(t, u)) {
				t.Fatalf("CanonicalUser is not stable:\n%v\n%v\nerr %v", u, again, err)
			}
			if _, err := domain.EncodeData(domain.UserCreated{Attributes: u}); err != nil && !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("EncodeData: %v", err)
			}
		}
		if g, members, _, err := scim.CanonicalGroup(m); err != nil {
			checkClientError(t, "CanonicalGroup", err)
		} else {
			again, againMembers, _, err := scim.CanonicalGroup(roundTrip(t, g))
			if err != nil || !reflect.DeepEqual(roundTrip(t, again), roundTrip(t, g)) || len(againMembers) != 0 {
				t.Fatalf("CanonicalGroup is not stable:\n%v\n%v\nerr %v", g, again, err)
			}
			for _, mb := range members {
				if strings.TrimSpace(mb.Value) == "" {
					t.Fatalf("member without a value: %+v", members)
				}
			}
		}
		if ops, err := scim.ParsePatchRequest(m); err != nil {
			checkClientError(t, "ParsePatchRequest", err)
		} else if len(ops) > scim.MaxPatchOps {
			t.Fatalf("%d operations passed the limit of %d", len(ops), scim.MaxPatchOps)
		}
	})
}

// roundTrip returns v as the event log gives it back: JSON-encoded and decoded.
func roundTrip(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %v: %v", v, err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
