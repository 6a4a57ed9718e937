package scim

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestCanonicalUser_Limits: values past the limits are ErrInvalid with a detail naming the
// attribute; values at the limits are kept.
func TestCanonicalUser_Limits(t *testing.T) {
	t.Parallel()
	list := func(n int, el any) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = el
		}
		return out
	}
	emails := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = map[string]any{"value": fmt.Sprintf("u%d@example.com", i)}
		}
		return out
	}
	deep := func(n int) any {
		var v any = "x"
		for range n {
			v = map[string]any{"a": v}
		}
		return v
	}
	tests := []struct {
		name   string
		in     map[string]any
		detail string // "" = accepted
	}{
		{"userName at the limit", map[string]any{"userName": strings.Repeat("u", MaxIdentifierLen)}, ""},
		{"userName over the limit", map[string]any{"userName": strings.Repeat("u", MaxIdentifierLen+1)}, "userName is 4097 bytes long"},
		{"userName with a NUL", map[string]any{"userName": "a\x00b"}, "userName contains a control character"},
		{"userName with a line break", map[string]any{"userName": "a\nb"}, "control character"},
		{"externalId over the limit", map[string]any{"userName": "a", "externalId": strings.Repeat("x", MaxIdentifierLen+1)}, "externalId is"},
		{"email over the limit", map[string]any{"userName": "a", "emails": []any{map[string]any{"value": strings.Repeat("e", MaxIdentifierLen+1)}}}, "emails.value is"},
		{"title at the limit", map[string]any{"userName": "a", "title": strings.Repeat("t", MaxAttributeLen)}, ""},
		{"title over the limit", map[string]any{"userName": "a", "title": strings.Repeat("t", MaxAttributeLen+1)}, "title is 65537 bytes long"},
		{"tab in a title is data", map[string]any{"userName": "a", "title": "a\tb"}, ""},
		{"enterprise value over the limit", map[string]any{"userName": "a", SchemaEnterpriseUser: map[string]any{"department": strings.Repeat("d", MaxAttributeLen+1)}}, "department is"},
		{"emails at the limit", map[string]any{"userName": "a", "emails": emails(MaxValues)}, ""},
		{"emails over the limit", map[string]any{"userName": "a", "emails": emails(MaxValues + 1)}, "emails has 1001 values"},
		{"roles over the limit", map[string]any{"userName": "a", "roles": list(MaxValues+1, map[string]any{"value": "r"})}, "roles has 1001 values"},
		{"extension list over the limit", map[string]any{"userName": "a", "urn:x:1.0:User": map[string]any{"tags": list(MaxValues+1, "t")}}, "urn:x:1.0:User.tags has 1001 values"},
		{"extension string over the limit", map[string]any{"userName": "a", "urn:x:1.0:User": map[string]any{"note": strings.Repeat("n", MaxAttributeLen+1)}}, "urn:x:1.0:User.note is"},
		{"extension key over the limit", map[string]any{"userName": "a", "urn:x:1.0:User": map[string]any{strings.Repeat("k", MaxAttributeLen+1): 1}}, "urn:x:1.0:User is"},
		{"extension nesting at the limit", map[string]any{"userName": "a", "urn:x:1.0:User": deep(maxExtensionDepth)}, ""},
		{"extension nesting over the limit", map[string]any{"userName": "a", "urn:x:1.0:User": deep(maxExtensionDepth + 2)}, "nests deeper than 16 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := CanonicalUser(tt.in)
			if tt.detail == "" {
				if err != nil {
					t.Fatalf("CanonicalUser: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(errorDetail(err), tt.detail) {
				t.Errorf("err = %v, want ErrInvalid with %q", err, tt.detail)
			}
		})
	}
}

func TestCanonicalGroup_Limits(t *testing.T) {
	t.Parallel()
	if _, _, _, err := CanonicalGroup(map[string]any{"displayName": strings.Repeat("g", MaxIdentifierLen+1)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("long displayName: err = %v, want ErrInvalid", err)
	}
	if _, _, err := PatchGroup(map[string]any{"displayName": "g"}, []PatchOp{{Op: PatchReplace, Value: map[string]any{"externalId": strings.Repeat("x", MaxIdentifierLen+1)}}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("long externalId by PATCH: err = %v, want ErrInvalid", err)
	}
}
