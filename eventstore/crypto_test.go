package eventstore

import (
	"encoding/json"
	"testing"
)

// TestValueJSON: the fast path writes what encoding/json writes, and is taken back as it is.
func TestValueJSON(t *testing.T) {
	for _, s := range []string{"", "ada@example.com", "Grâce Hopper", "日本語", "a\"b", `a\b`, "a<b", "a&b", "tab\there", "\u2028", "bad \xff utf-8"} {
		got, err := valueJSON(s)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(s)
		if string(got) != string(want) {
			t.Errorf("valueJSON(%q) = %s, want %s", s, got, want)
		}
	}
	for _, v := range []any{true, 3.5, map[string]any{"givenName": "Ada"}, []any{"x"}} {
		got, err := valueJSON(v)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(v)
		if string(got) != string(want) {
			t.Errorf("valueJSON(%#v) = %s, want %s", v, got, want)
		}
	}
}
