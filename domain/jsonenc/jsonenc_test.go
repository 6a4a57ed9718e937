package jsonenc

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"
)

// checkAppend fails unless Append encodes v byte for byte as json.Marshal does.
func checkAppend(t *testing.T, v any) {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal(%#v): %v", v, err)
	}
	got, ok := Append(nil, v)
	if !ok || string(got) != string(want) {
		t.Fatalf("Append(%#v) = %s, %v\n json.Marshal gives %s", v, got, ok, want)
	}
}

func TestAppend(t *testing.T) {
	t.Parallel()
	many := map[string]any{}
	for i := range 40 {
		many[fmt.Sprintf("k%02d", 39-i)] = float64(i)
	}
	values := []any{
		nil, true, false, "", "plain", 0, -7, 1 << 40,
		0.0, math.Copysign(0, -1), 1.0, -1.5, 123456789.0, 1e20, 1e21, 1e-6, 1e-7, 0.000001234, 1.5e300,
		5e-324, math.MaxFloat64, -1e-9, 12345678901234567890.0, 0.1, 2.5e-8,
		"<script>&amp;</script>", `quote " backslash \ slash /`, "\b\f\n\r\t\x00\x01\x1f\x7f",
		"é ü 日本 😀", "line\u2028sep\u2029para", "bad \xff utf8 \xc3", "\xed\xa0\x80 surrogate",
		[]any{}, []any(nil), []string{}, []string(nil), []string{"a", "<b>"},
		map[string]any{}, map[string]any(nil), many,
		map[string]any{"b": 1.0, "a": []any{"x", 2.0, nil, true, map[string]any{"Z": "z", "A": "a"}}, "<k>": "v", "é": "e", "": ""},
		map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:ListResponse"}, "totalResults": 2, "startIndex": 1,
			"itemsPerPage": 1, "Resources": []any{map[string]any{"id": "1", "meta": map[string]any{"version": `W/"3"`}}}},
	}
	// RFC 7643 §8.2's full User representation, trimmed.
	var user map[string]any
	if err := json.Unmarshal([]byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"id":"2819c223-7f76-453a-919d-413861904646",
		"userName":"bjensen@example.com","name":{"formatted":"Ms. Barbara J Jensen, III","familyName":"Jensen"},
		"emails":[{"value":"bjensen@example.com","type":"work","primary":true}],"active":true,
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"701984",
		"manager":{"value":"26118915-6090-4610-87e4-49d8ca9f808d","$ref":"../Users/26118915","displayName":"John Smith"}},
		"meta":{"resourceType":"User","created":"2010-01-23T04:56:22Z","version":"W/\"3694e05e9dff591\""}}`), &user); err != nil {
		t.Fatal(err)
	}
	values = append(values, user)
	for _, v := range values {
		checkAppend(t, v)
	}

	// Types it does not handle, and values json.Marshal refuses, are left to json.Marshal.
	for _, v := range []any{
		math.NaN(), math.Inf(1), map[string]any{"a": math.Inf(-1)}, json.Number("1"), time.Time{},
		map[string]string{"a": "b"}, []int{1}, struct{ A int }{1}, map[string]any{"a": []any{int64(1)}},
	} {
		if b, ok := Append(nil, v); ok {
			t.Errorf("Append(%#v) = %s, want it to decline", v, b)
		}
	}
	deep := any("x")
	for range MaxDepth + 2 {
		deep = []any{deep}
	}
	if _, ok := Append(nil, deep); ok {
		t.Error("Append encoded a value deeper than MaxDepth")
	}
}

// FuzzAppendJSON compares Append with json.Marshal on decoded JSON documents and on
// arbitrary strings as keys and values.
func FuzzAppendJSON(f *testing.F) {
	f.Add([]byte(`{"a":[1,2.5e-9,"x<y",null,true,{"b":{}}],"é":"\u2028"}`), "k\xff")
	f.Add([]byte(`[1e21, 1e20, 0.000001, 1e-7, -0]`), "<&>")
	f.Fuzz(func(t *testing.T, doc []byte, s string) {
		var v any
		if json.Unmarshal(doc, &v) == nil {
			checkAppend(t, v)
		}
		checkAppend(t, map[string]any{s: s, "list": []any{s}, "strings": []string{s}})
	})
}

// BenchmarkAppend compares Append with json.Marshal on a SCIM user as the store keeps it (the
// body of a GET /Users/{id} answer and the resource of a projection row).
func BenchmarkAppend(b *testing.B) {
	var user map[string]any
	if err := json.Unmarshal([]byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"id":"2819c223-7f76-453a-919d-413861904646",
		"externalId":"701984","userName":"bjensen@example.com","displayName":"Babs Jensen","title":"Tour Guide",
		"name":{"formatted":"Ms. Barbara J Jensen, III","familyName":"Jensen","givenName":"Barbara"},
		"emails":[{"value":"bjensen@example.com","type":"work","primary":true},{"value":"babs@jensen.org","type":"home"}],
		"active":true,"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"701984",
		"department":"Tour Operations","manager":{"value":"26118915-6090-4610-87e4-49d8ca9f808d"}},
		"meta":{"resourceType":"User","created":"2010-01-23T04:56:22Z","lastModified":"2011-05-13T04:42:34Z",
		"location":"https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646","version":"W/\"3694\""}}`), &user); err != nil {
		b.Fatal(err)
	}
	b.Run("Append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			var ok bool
			if buf, ok = Append(buf[:0], user); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(user); err != nil {
				b.Fatal(err)
			}
		}
	})
}
