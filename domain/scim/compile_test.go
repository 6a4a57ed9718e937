package scim_test

import (
	"strings"
	"testing"

	"github.com/idledger/idledger/domain/scim"
)

// TestCompile_agrees_with_Match: a compiled filter answers what Match answers, for every kind
// of node and attribute, on a resource and on elements, with and without a userName fold.
func TestCompile_agrees_with_Match(t *testing.T) {
	t.Parallel()
	resources := matchResources(t)
	for _, m := range []scim.Matcher{{}, {UserName: func(s string) string { return strings.ToLower(strings.TrimSpace(s)) }}} {
		for _, text := range matchFilters {
			f, err := scim.ParseFilter(text)
			if err != nil {
				t.Fatalf("%s: %v", text, err)
			}
			compiled := m.Compile(f)
			for i, res := range resources {
				if got, want := compiled(res), m.Match(f, res); got != want {
					t.Errorf("%s on resource %d (fold %v): compiled %v, Match %v", text, i, m.UserName != nil, got, want)
				}
			}
		}
	}
}

// matchFilters have every kind of node and attribute Match reads.
var matchFilters = []string{
	`userName eq "ADA.LOVELACE@contoso.com"`, `USERNAME Eq "ada.lovelace@contoso.com "`, `userName co "LOVE"`,
	`userName sw "ada."`, `userName ew "@Contoso.com"`, `userName ne "x"`, `userName ne 5`, `userName gt "a"`,
	`nickName ne "x"`, `nickName eq null`, `title pr`, `title eq null`, `title ne null`, `active eq true`,
	`active eq "TRUE"`, `active ne false`, `id eq "5E0C1A2B-7D34-4F0E-9A61-2B8C3D4E5F60"`,
	`id eq "5e0c1a2b-7d34-4f0e-9a61-2b8c3d4e5f60"`, `externalId eq "ada"`, `externalId eq "Ada"`,
	`emails[type eq "work" and value co "CONTOSO"]`, `emails[primary eq true]`, `emails.value ew ".com"`,
	`emails co "ada"`, `emails pr`, `emails[not (type eq "home")]`, `photos.value eq "https://example.com/ada.png"`,
	`meta.created gt "2020-01-01T00:00:00Z"`, `meta.lastModified le "2030-01-01T00:00:00.5+02:00"`,
	`meta.created eq "2024-05-06T07:08:09Z"`, `meta.location ew "/users/5e0c"`, `meta.resourceType eq "user"`,
	`name.givenName sw "a" or name.familyName eq "x"`, `not (name.givenName pr)`, `(title pr or active eq true) and not (userName co "z")`,
	`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984"`,
	`employeeNumber eq "701984"`, `department co "ENG"`, `manager.value pr`, `groups[display sw "a"]`,
	`x509Certificates.value sw "miid"`, `addresses[type eq "work" and postalCode pr]`, `phoneNumbers.value eq 5`,
}

// matchResources are a full user, an empty resource, one with values of the wrong types, and
// an element of a multi-valued attribute.
func matchResources(t testing.TB) []map[string]any {
	return []map[string]any{decode(t, matchUser), {}, {"userName": "ADA.lovelace@CONTOSO.com", "emails": "ada@x.com", "active": "true"},
		{"value": "8a7b6c5d", "type": "Work", "primary": true, "$ref": "https://x/Users/1"}}
}
