package scim_test

import (
	"slices"
	"testing"

	"github.com/idledger/idledger/domain/scim"
	"github.com/idledger/idledger/domain/scim/scimtest"
)

// TestReadAttributes_are_what_Match_reads: Match on a resource holding only the keys
// ReadAttributes names answers what it answers on the whole resource, for every filter kind,
// extension attributes with and without their URN, and keys in another case than the filter's.
func TestReadAttributes_are_what_Match_reads(t *testing.T) {
	t.Parallel()
	filters := append(slices.Clone(matchFilters),
		`level eq 7`, `tags eq "b"`, `urn:example:ext:1.0:User:level gt 5`, `URN:EXAMPLE:EXT:1.0:USER:tags co "a"`,
		`urn:ietf:params:scim:schemas:core:2.0:User:userName sw "ada"`, `username pr and not (level lt 3)`,
		`emails[value ew "example" or type eq "work"].value pr`, `nickName pr or tags pr`)
	resources := append(matchResources(t),
		map[string]any{"USERNAME": "ada@x", "Urn:Example:Ext:1.0:User": map[string]any{"LEVEL": 9.0, "tags": []any{"B"}}},
		map[string]any{"userName": "ada", "urn:other:ext": map[string]any{"level": 7.0}, "level": 1.0})
	var m scim.Matcher
	for _, text := range filters {
		f, err := scim.ParseFilter(text)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		reads := scim.ReadAttributes(f)
		if reads == nil {
			t.Fatalf("ReadAttributes(%s) = nil (every key), want the keys it reads", text)
		}
		for i, res := range resources {
			want := m.Match(f, res)
			if got := m.Match(f, scimtest.Restrict(res, reads)); got != want {
				t.Errorf("%s on resource %d holding only %q: %v, on the whole resource %v", text, i, reads, got, want)
			}
		}
	}
	// The keys are those of the paths, not every key.
	f, err := scim.ParseFilter(`userName eq "a" or emails[type eq "work"] or urn:example:ext:1.0:User:level pr`)
	if err != nil {
		t.Fatal(err)
	}
	if got := scim.ReadAttributes(f); !slices.Equal(got, []string{"userName", "emails", "urn:example:ext:1.0:User"}) {
		t.Errorf("ReadAttributes = %q", got)
	}
}

// TestRanking_Attribute_is_what_it_reads: a Ranking of resources holding only its Attribute
// keeps what it keeps of the whole resources.
func TestRanking_Attribute_is_what_it_reads(t *testing.T) {
	t.Parallel()
	list := []map[string]any{
		{"userName": "b", "DisplayName": "Zed", "name": map[string]any{"familyName": "K"}, "emails": []any{map[string]any{"value": "q@x"}}},
		{"userName": "a", "displayName": "amy", "name": map[string]any{"familyName": "B"}, "emails": []any{map[string]any{"value": "c@x", "primary": true}, map[string]any{"value": "a@x"}}},
		{"userName": "c", "title": "x"},
		{"USERNAME": "0", "displayName": "Bob", "name": map[string]any{"givenName": "A"}, "emails": "z@x"},
	}
	for _, sortBy := range []string{"displayName", "EMAILS.value", "name.familyName", "userName", "title"} {
		whole, err := scim.NewRanking(sortBy, "descending", 3)
		if err != nil || whole == nil {
			t.Fatalf("NewRanking(%q) = %v, %v", sortBy, whole, err)
		}
		part, _ := scim.NewRanking(sortBy, "descending", 3)
		for i, res := range list {
			whole.Add(res, i)
			part.Add(scimtest.Restrict(res, []string{part.Attribute()}), i)
		}
		if got, want := part.Items(), whole.Items(); !slices.Equal(got, want) {
			t.Errorf("sortBy %q on resources holding only %q: %v, on whole resources %v", sortBy, part.Attribute(), got, want)
		}
	}
}

// FuzzReadAttributes: for any filter, Match on the keys ReadAttributes names answers what it
// answers on the whole resource.
func FuzzReadAttributes(f *testing.F) {
	for _, text := range matchFilters {
		f.Add(text)
	}
	resources := append(matchResources(f), map[string]any{"Level": 7.0, "urn:x:Y": map[string]any{"level": "7", "A": []any{"b"}}})
	f.Fuzz(func(t *testing.T, text string) {
		flt, err := scim.ParseFilter(text)
		if err != nil {
			return
		}
		reads := scim.ReadAttributes(flt)
		if reads == nil {
			return // every key: nothing to compare
		}
		var m scim.Matcher
		for i, res := range resources {
			if got, want := m.Match(flt, scimtest.Restrict(res, reads)), m.Match(flt, res); got != want {
				t.Fatalf("%s on resource %d holding only %q: %v, on the whole resource %v", text, i, reads, got, want)
			}
		}
	})
}
