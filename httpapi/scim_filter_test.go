package httpapi

import (
	"testing"

	"github.com/idledger/idledger/domain/scim"
	"github.com/idledger/idledger/domain/scim/scimtest"
)

// TestReadsStoredOnly checks the condition under which a list query matches on a resource's
// stored attributes instead of its representation: for every filter it admits, Match gives the
// same on both, and filters on schemas, id, meta or a URN are not admitted.
func TestReadsStoredOnly(t *testing.T) {
	t.Parallel()
	admitted := 0
	for _, tt := range scimtest.FilterCases() {
		f, err := scim.ParseFilter(tt.Filter)
		if err != nil {
			continue
		}
		if !readsStoredOnly(f) {
			continue
		}
		admitted++
		for name := range scimtest.Resources() {
			rep := scimtest.Resource(t, name)
			stored := scimtest.Resource(t, name)
			delete(stored, "schemas")
			delete(stored, "id")
			delete(stored, "meta")
			if a, b := scim.Match(f, rep), scim.Match(f, stored); a != b {
				t.Errorf("%s on %s: representation %v, stored attributes %v", tt.Filter, name, a, b)
			}
		}
	}
	if admitted < 20 {
		t.Errorf("only %d filters admitted", admitted)
	}
	for _, raw := range []string{`id eq "x"`, `ID eq "x"`, `meta.created gt "2026-01-01T00:00:00Z"`, `Schemas eq "x"`,
		`userName eq "a" and id eq "x"`, `not (meta.resourceType eq "User")`, `META[resourceType eq "User"]`,
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "x"`} {
		f, err := scim.ParseFilter(raw)
		if err != nil {
			t.Fatalf("scim.ParseFilter(%q): %v", raw, err)
		}
		if readsStoredOnly(f) {
			t.Errorf("readsStoredOnly(%s) = true", raw)
		}
	}
	if readsStoredOnly(&scim.CompareFilter{Path: scim.AttrPath{Attr: "userName"}, Op: scim.OpEq, Value: "x"}) {
		t.Error("readsStoredOnly admits a pointer node")
	}
}
