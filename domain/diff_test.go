package domain

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/idledger/idledger/domain/scim"
)

const (
	entURN    = scim.SchemaEnterpriseUser
	customURN = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"
)

// grace is a user as Entra provisions it, with both extensions.
const grace = `{
 "externalId":"grace","userName":"Grace.Hopper@contoso.com","active":true,
 "displayName":"Grace Hopper",
 "emails":[{"primary":true,"type":"work","value":"grace@contoso.com"}],
 "phoneNumbers":[{"type":"mobile","value":"+1 555 0100"}],
 "name":{"formatted":"Grace Hopper","familyName":"Hopper","givenName":"Grace"},
 "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"1906","department":"Navy"},
 "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User":{"costCode":"N-42"}}`

// ada is a minimal user without extensions.
const ada = `{"userName":"Ada.Lovelace@contoso.com","active":true}`

// patchBodies are PATCH requests Entra sends, applied to grace to make diff pairs.
var patchBodies = []string{
	`{"Operations":[{"op":"Replace","path":"displayName","value":"G. Hopper"}]}`,
	`{"Operations":[{"op":"replace","path":"emails[type eq \"work\"].value","value":"g@contoso.com"}]}`,
	`{"Operations":[{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"m-1"}]}`,
	`{"Operations":[{"op":"remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}]}`,
	`{"Operations":[{"op":"replace","value":{"name.givenName":"Amazing","active":false,"title":"RADM"}}]}`,
	`{"Operations":[{"op":"remove","path":"name.familyName"},{"op":"add","path":"phoneNumbers[type eq \"work\"].value","value":"+1 555 0101"}]}`,
	`{"Operations":[{"op":"add","path":"urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:costCode","value":"N-43"}]}`,
}

func decodeObject(tb testing.TB, s string) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		tb.Fatalf("bad test JSON %s: %v", s, err)
	}
	return m
}

// canonical returns a test user in canonical form and its schemas.
func canonical(tb testing.TB, s string) (map[string]any, []string) {
	tb.Helper()
	res, schemas, err := scim.CanonicalUser(decodeObject(tb, s))
	if err != nil {
		tb.Fatalf("CanonicalUser(%s): %v", s, err)
	}
	return res, schemas
}

// patch applies a PATCH request body to a canonical user.
func patch(tb testing.TB, res map[string]any, schemas []string, body string) map[string]any {
	tb.Helper()
	ops, err := scim.ParsePatchRequest(decodeObject(tb, body))
	if err != nil {
		tb.Fatalf("ParsePatchRequest(%s): %v", body, err)
	}
	got, _, err := scim.PatchUser(res, schemas, ops)
	if err != nil {
		tb.Fatalf("PatchUser(%s): %v", body, err)
	}
	return got
}

func dump(v any) string {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func TestDiffResource(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		old, new string
		want     []Change
	}{
		{name: "equal resources give no change", old: grace, new: grace},
		{name: "simple attribute",
			old: `{"userName":"a","displayName":"A"}`, new: `{"userName":"a","displayName":"B","title":"T"}`,
			want: []Change{{Path: "displayName", Old: "A", New: "B"}, {Path: "title", New: "T"}}},
		{name: "complex attribute by sub-attribute",
			old: `{"name":{"givenName":"Grace","familyName":"Hopper"}}`, new: `{"name":{"givenName":"Grace","familyName":"Murray","formatted":"G M"}}`,
			want: []Change{{Path: "name.familyName", Old: "Hopper", New: "Murray"}, {Path: "name.formatted", New: "G M"}}},
		{name: "complex attribute removed",
			old: `{"name":{"givenName":"Grace"}}`, new: `{}`,
			want: []Change{{Path: "name.givenName", Old: "Grace"}}},
		{name: "multi-valued attribute whole",
			old:  `{"emails":[{"type":"work","value":"a@x"}]}`,
			new:  `{"emails":[{"type":"work","value":"b@x"}]}`,
			want: []Change{{Path: "emails", Old: []any{map[string]any{"type": "work", "value": "a@x"}}, New: []any{map[string]any{"type": "work", "value": "b@x"}}}}},
		{name: "enterprise attribute and manager sub-attribute",
			old: `{"` + entURN + `":{"department":"Navy","manager":{"value":"m1"}}}`,
			new: `{"` + entURN + `":{"department":"Research","manager":{"value":"m2","$ref":"r"}}}`,
			want: []Change{
				{Path: entURN + ":department", Old: "Navy", New: "Research"},
				{Path: entURN + ":manager.$ref", New: "r"},
				{Path: entURN + ":manager.value", Old: "m1", New: "m2"}}},
		{name: "custom extension whole",
			old:  `{"` + customURN + `":{"costCode":"N-42","x":1}}`,
			new:  `{"` + customURN + `":{"costCode":"N-43","x":1}}`,
			want: []Change{{Path: customURN, Old: map[string]any{"costCode": "N-42", "x": 1.0}, New: map[string]any{"costCode": "N-43", "x": 1.0}}}},
		{name: "boolean false is a value", old: `{"active":true}`, new: `{"active":false}`,
			want: []Change{{Path: "active", Old: true, New: false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			old, new := decodeObject(t, tt.old), decodeObject(t, tt.new)
			got := DiffResource(old, new)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DiffResource = %s, want %s", dump(got), dump(tt.want))
			}
			if back := ApplyChanges(old, got); !reflect.DeepEqual(back, new) {
				t.Errorf("ApplyChanges(old, diff) = %s, want %s", dump(back), dump(new))
			}
		})
	}
}

func TestDiffResource_NoChangeFromEmptyPatch(t *testing.T) {
	t.Parallel()
	res, schemas := canonical(t, grace)
	got := patch(t, res, schemas, `{"Operations":[{"op":"replace","value":{"displayName":"Grace Hopper","active":"True"}}]}`)
	if changes := DiffResource(res, got); len(changes) != 0 {
		t.Errorf("changes = %s, want none", dump(changes))
	}
}

// diffPairs returns Entra-shaped (old, new) pairs as JSON: grace before and after each of
// patchBodies, plus hand-written pairs that add, drop and swap whole extensions.
func diffPairs(tb testing.TB) [][2]string {
	tb.Helper()
	pairs := [][2]string{
		{grace, ada},
		{ada, grace},
		{`{"userName":"a","` + entURN + `":{"manager":{"value":"m"}}}`, `{"userName":"a","` + customURN + `":{"manager":{"value":"m"}}}`},
		{`{"userName":"a","name":{"givenName":"A"},"emails":[{"value":"a@x"}]}`, `{"userName":"b","roles":[{"value":"{\"id\":1}"}],"active":false}`},
		// A custom extension whose key begins like an enterprise attribute path.
		{`{"userName":"a","` + entURN + `":{"department":"D"}}`, `{"userName":"a","` + entURN + `:department":{"x":"y"}}`},
		{`{"userName":"a","` + entURN + `:department":{"x":"y"}}`, `{"userName":"a","` + entURN + `":{"department":"D"}}`},
	}
	given, schemas := canonical(tb, grace)
	for _, body := range patchBodies {
		got := patch(tb, given, schemas, body)
		pairs = append(pairs, [2]string{dump(given), dump(got)}, [2]string{dump(got), dump(given)})
	}
	return pairs
}

// checkDiffApply checks ApplyChanges(old, DiffResource(old, new)) == new and that neither
// function modifies its inputs.
func checkDiffApply(tb testing.TB, old, new map[string]any) {
	tb.Helper()
	oldCopy, newCopy := scim.Clone(old), scim.Clone(new)
	changes := DiffResource(old, new)
	got := ApplyChanges(old, changes)
	if !reflect.DeepEqual(got, new) {
		tb.Errorf("ApplyChanges(old, DiffResource(old, new)) =\n%s\nwant\n%s\nchanges %s", dump(got), dump(new), dump(changes))
	}
	if !reflect.DeepEqual(old, oldCopy) || !reflect.DeepEqual(new, newCopy) {
		tb.Errorf("DiffResource or ApplyChanges modified an input")
	}
	// Changes survive the event log's JSON round trip.
	b, err := json.Marshal(changes)
	if err != nil {
		tb.Fatal(err)
	}
	var decoded []Change
	if err := json.Unmarshal(b, &decoded); err != nil {
		tb.Fatal(err)
	}
	if got := ApplyChanges(old, decoded); !reflect.DeepEqual(got, new) {
		tb.Errorf("after a JSON round trip, ApplyChanges = %s, want %s", dump(got), dump(new))
	}
}

func TestApplyChanges_InvertsDiffResource(t *testing.T) {
	t.Parallel()
	for _, p := range diffPairs(t) {
		old, _ := canonical(t, p[0])
		new, _ := canonical(t, p[1])
		checkDiffApply(t, old, new)
	}
}

func TestApplyChanges(t *testing.T) {
	t.Parallel()
	res := decodeObject(t, `{"userName":"a","name":{"givenName":"A"},"`+entURN+`":{"manager":{"value":"m"}}}`)
	got := ApplyChanges(res, []Change{
		{Path: "name.givenName", Old: "A"},
		{Path: entURN + ":manager.value", Old: "m"},
		{Path: "title", New: "T"},
	})
	want := decodeObject(t, `{"userName":"a","title":"T"}`)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ApplyChanges = %s, want %s (empty parents removed)", dump(got), dump(want))
	}
	if ApplyChanges(nil, nil) == nil {
		t.Errorf("ApplyChanges(nil, nil) = nil, want an empty resource")
	}
}

func FuzzDiffApply(f *testing.F) {
	for _, p := range diffPairs(f) {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, oldJSON, newJSON string) {
		var oldIn, newIn map[string]any
		if json.Unmarshal([]byte(oldJSON), &oldIn) != nil || json.Unmarshal([]byte(newJSON), &newIn) != nil {
			t.Skip()
		}
		old, _, err1 := scim.CanonicalUser(oldIn)
		new, _, err2 := scim.CanonicalUser(newIn)
		if err1 != nil || err2 != nil {
			t.Skip()
		}
		checkDiffApply(t, old, new)
	})
}
