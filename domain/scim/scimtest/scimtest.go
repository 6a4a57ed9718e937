// Package scimtest holds the SCIM resources, filters and helpers that the tests of the filter
// parser (domain/scim), of the list handlers (httpapi) and of the read models (projections)
// share. Only tests import it.
package scimtest

import (
	"encoding/json"
	"strings"
	"testing"
)

// Resources returns SCIM representations, by name, as a list handler hands them to Match.
func Resources() map[string]string {
	return map[string]string{
		// RFC 7643 §8.2, trimmed.
		"bjensen": `{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
		"id": "2819c223-7f76-453a-919d-413861904646", "externalId": "701984",
		"userName": "bjensen@example.com",
		"name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara"},
		"displayName": "Babs Jensen", "title": "Tour Guide", "userType": "Employee", "active": true,
		"emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
			{"value": "babs@jensen.org", "type": "home"}],
		"ims": [{"value": "someaimhandle", "type": "aim"}],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
			"employeeNumber": "701984", "department": "Tour Operations",
			"manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d"}},
		"meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z",
			"lastModified": "2011-05-13T04:42:34Z", "version": "W/\"3694e05e9dff591\"",
			"location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646"}}`,
		// An Entra user, with a manager, a role and a custom extension.
		"ada": `{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
		"id": "5e0c1a2b-7d34-4f0e-9a61-2b8c3d4e5f60", "externalId": "ada",
		"userName": "Ada.Lovelace@contoso.com", "active": true,
		"name": {"givenName": "Ada", "familyName": "Lovelace"},
		"emails": [{"value": "ada@contoso.com", "type": "work", "primary": true}],
		"roles": [{"primary": true, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
			"department": "Research", "manager": {"value": "8a7b6c5d-2222-4e3f-9a0b-abcdefabcdef"}},
		"urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User": {"costCode": "CC-7", "level": 7},
		"meta": {"resourceType": "User", "created": "2026-11-20T09:15:00Z",
			"lastModified": "2026-11-20T09:15:00.5Z"}}`,
		// An Entra group.
		"group": `{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
		"id": "c1d2e3f4-1111-4abc-8def-0123456789ab", "externalId": "0d9f6a4e-3c21-4b77-9e0a-5f1c2b3d4e5f",
		"displayName": "Payroll Admins",
		"members": [{"value": "5e0c1a2b-7d34-4f0e-9a61-2b8c3d4e5f60", "display": "Ada"},
			{"value": "8a7b6c5d-2222-4e3f-9a0b-abcdefabcdef"}],
		"meta": {"resourceType": "Group", "created": "2026-11-20T09:20:00Z", "lastModified": "2026-11-20T09:20:00Z"}}`,
	}
}

// Resource decodes the resource of that name (see Resources).
func Resource(tb testing.TB, name string) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(Resources()[name]), &m); err != nil {
		tb.Fatalf("resource %s: %v", name, err)
	}
	return m
}

// A FilterCase is a filter with the resources it matches (true) or does not (false); a nil
// Want means the filter must be refused.
type FilterCase struct {
	Filter string
	Want   map[string]bool
}

// FilterCases returns filters with the resources they match, a corpus of RFC 7644 §3.4.2.2
// and of what Entra sends.
func FilterCases() []FilterCase {
	return []FilterCase{
		// RFC 7644 §3.4.2.2.
		{`userName eq "bjensen@example.com"`, map[string]bool{"bjensen": true, "ada": false}},
		{`name.familyName co "O'Malley"`, map[string]bool{"bjensen": false}},
		{`name.familyName co "ENS"`, map[string]bool{"bjensen": true}},
		{`userName sw "J"`, map[string]bool{"bjensen": false}},
		{`userName sw "B"`, map[string]bool{"bjensen": true, "ada": false}},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName sw "B"`, map[string]bool{"bjensen": true}},
		{`title pr`, map[string]bool{"bjensen": true, "ada": false}},
		{`meta.lastModified gt "2011-05-13T04:42:34Z"`, map[string]bool{"bjensen": false, "ada": true}},
		{`meta.lastModified ge "2011-05-13T04:42:34Z"`, map[string]bool{"bjensen": true}},
		{`meta.lastModified lt "2011-05-13T04:42:34Z"`, map[string]bool{"bjensen": false, "ada": false}},
		{`meta.lastModified le "2011-05-13T04:42:34Z"`, map[string]bool{"bjensen": true}},
		{`title pr and userType eq "Employee"`, map[string]bool{"bjensen": true, "ada": false}},
		{`title pr or userType eq "Intern"`, map[string]bool{"bjensen": true, "ada": false}},
		{`schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"`, map[string]bool{"bjensen": true, "ada": false}},
		{`userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")`, map[string]bool{"bjensen": true}},
		{`userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")`, map[string]bool{"bjensen": false, "ada": true}},
		{`userType eq "Employee" and (emails.type eq "work")`, map[string]bool{"bjensen": true}},
		{`userType eq "Employee" and emails[type eq "work" and value co "@example.com"]`, map[string]bool{"bjensen": true, "ada": false}},
		{`emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]`, map[string]bool{"bjensen": true, "ada": false}},
		{`emails[type eq "home" and value co "@example.com"]`, map[string]bool{"bjensen": false}},

		// Entra's match queries.
		{`userName eq "Ada.Lovelace@contoso.com"`, map[string]bool{"ada": true, "bjensen": false}},
		{`userName eq "ada.lovelace@CONTOSO.com"`, map[string]bool{"ada": true}},
		{`USERNAME Eq "ada.lovelace@contoso.com"`, map[string]bool{"ada": true}},
		{`externalId eq "ada"`, map[string]bool{"ada": true, "bjensen": false}},
		{`externalId eq "ADA"`, map[string]bool{"ada": false}},
		{`externalId eq ada`, map[string]bool{"ada": true}},
		{`externalid eq ada and active eq true`, map[string]bool{"ada": true}},
		{`emails[type eq "work"].value eq "ada@contoso.com"`, map[string]bool{"ada": true, "bjensen": false}},
		{`emails[type eq "home"].value eq "ada@contoso.com"`, map[string]bool{"ada": false}},
		{`emails[type eq "work" or type eq "home"].value eq "babs@jensen.org"`, map[string]bool{"bjensen": true}},
		{`emails.value eq "ADA@contoso.com"`, map[string]bool{"ada": true}},
		{`emails eq "ada@contoso.com"`, map[string]bool{"ada": true}},
		{`displayName eq "Babs Jensen"`, map[string]bool{"bjensen": true}},
		{`active eq true`, map[string]bool{"ada": true}},
		{`active eq "True"`, map[string]bool{"ada": true}},
		{`active eq FALSE`, map[string]bool{"ada": false}},
		{`active ne false`, map[string]bool{"ada": true}},
		{`id eq "5e0c1a2b-7d34-4f0e-9a61-2b8c3d4e5f60"`, map[string]bool{"ada": true, "group": false}},
		{`id eq "5E0C1A2B-7D34-4F0E-9A61-2B8C3D4E5F60"`, map[string]bool{"ada": false}},

		// Entra's reference probe for the manager, and extension paths.
		{`id eq "5e0c1a2b-7d34-4f0e-9a61-2b8c3d4e5f60" and manager eq "8a7b6c5d-2222-4e3f-9a0b-abcdefabcdef"`, map[string]bool{"ada": true}},
		{`id eq "5e0c1a2b-7d34-4f0e-9a61-2b8c3d4e5f60" and manager eq "26118915-6090-4610-87e4-49d8ca9f808d"`, map[string]bool{"ada": false}},
		{`manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d"`, map[string]bool{"bjensen": true}},
		{`manager[value eq "26118915-6090-4610-87e4-49d8ca9f808d"]`, map[string]bool{"bjensen": true}},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "8a7b6c5d-2222-4e3f-9a0b-abcdefabcdef"`, map[string]bool{"ada": true}},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.manager eq "8a7b6c5d-2222-4e3f-9a0b-abcdefabcdef"`, map[string]bool{"ada": true}},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "research"`, map[string]bool{"ada": true, "bjensen": false}},
		{`URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:Department eq "research"`, map[string]bool{"ada": true}},
		{`department eq "Research"`, map[string]bool{"ada": true}},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.$ref eq "../users/26118915-6090-4610-87e4-49d8ca9f808d"`, map[string]bool{"bjensen": false}},
		{`roles[primary eq "True"].value eq "admin"`, map[string]bool{"ada": true}},
		{`roles[primary eq "False"]`, map[string]bool{"ada": false}},
		{`urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:costCode eq "cc-7"`, map[string]bool{"ada": true}},
		{`urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:level gt 5`, map[string]bool{"ada": true}},
		{`level ge 7.0 and level le 7e0`, map[string]bool{"ada": true}},
		{`level lt -1`, map[string]bool{"ada": false}},
		{`level eq "7"`, map[string]bool{"ada": false}},
		{`costCode eq 7`, map[string]bool{"ada": false}},

		// Entra's group queries.
		{`displayName eq "Payroll Admins"`, map[string]bool{"group": true, "ada": false}},
		{`displayName eq "payroll admins"`, map[string]bool{"group": true}},
		{`externalId eq "0d9f6a4e-3c21-4b77-9e0a-5f1c2b3d4e5f"`, map[string]bool{"group": true}},
		{`id eq "c1d2e3f4-1111-4abc-8def-0123456789ab" and members eq "8a7b6c5d-2222-4e3f-9a0b-abcdefabcdef"`, map[string]bool{"group": true}},
		{`id eq "c1d2e3f4-1111-4abc-8def-0123456789ab" and members eq "2819c223-7f76-453a-919d-413861904646"`, map[string]bool{"group": false}},
		{`members.value eq "5e0c1a2b-7d34-4f0e-9a61-2b8c3d4e5f60"`, map[string]bool{"group": true}},
		{`members[value eq "5e0c1a2b-7d34-4f0e-9a61-2b8c3d4e5f60"]`, map[string]bool{"group": true}},
		{`members[value eq 5e0c1a2b-7d34-4f0e-9a61-2b8c3d4e5f60]`, map[string]bool{"group": true}},
		{`members pr`, map[string]bool{"group": true, "ada": false}},

		// Timestamps, null, pr, ordering.
		{`meta.lastModified ge "2026-11-20T09:15:00.1234567Z"`, map[string]bool{"ada": true, "group": true, "bjensen": false}},
		{`meta.lastModified ge "2026-11-20T09:15:00.500000001Z"`, map[string]bool{"ada": false}},
		{`meta.lastModified eq "2026-11-20T10:15:00.500+01:00"`, map[string]bool{"ada": true}},
		{`meta.created lt "2026-11-20T10:15:00+01:00"`, map[string]bool{"ada": false}},
		{`meta.created le "2026-11-20T10:15:00+01:00"`, map[string]bool{"ada": true}},
		{`active eq true and (meta.lastModified ge "2026-11-20T00:00:00Z" and meta.lastModified le "2026-11-21T00:00:00Z")`, map[string]bool{"ada": true, "bjensen": false}},
		{`title eq null`, map[string]bool{"ada": true, "bjensen": false}},
		{`title ne null`, map[string]bool{"ada": false, "bjensen": true}},
		{`title ne "Tour Guide"`, map[string]bool{"ada": true, "bjensen": false}},
		{`userName gt "a"`, map[string]bool{"ada": true, "bjensen": true}},
		{`userName lt "B"`, map[string]bool{"ada": true, "bjensen": false}},
		{`name.givenName ew "DA"`, map[string]bool{"ada": true}},
		{`meta.resourceType eq "user"`, map[string]bool{"ada": true, "group": false}},
		{`meta.location eq "https://example.com/v2/users/2819c223-7f76-453a-919d-413861904646"`, map[string]bool{"bjensen": false}},
		{`not (userName eq "Ada.Lovelace@contoso.com") and (displayName pr or title pr)`, map[string]bool{"ada": false, "bjensen": true}},
		{`userName eq "x" or userName eq "y" or externalId eq "ada"`, map[string]bool{"ada": true}},
		{`userName eq "x" or (userName eq "y" or externalId eq "ada")`, map[string]bool{"ada": true}},
		{`userName   eq   "ada.lovelace@contoso.com"`, map[string]bool{"ada": true}},
		{`userName eq "\u0041da.Lovelace@contoso.com"`, map[string]bool{"ada": true}},
		{`userName eq "A\u0064a.Lovelace@contoso.com"`, map[string]bool{"ada": true}},
		{`emails [ type eq "work" ] . value eq "ada@contoso.com"`, nil},
	}
}

// Restrict returns the keys of res that reads names, ignoring case, or whose first bytes are
// one of its prefixes (names ending in ':'), ignoring case: what a read model given
// domain.ListQuery.Reads may hand a filter. A nil res stays nil.
func Restrict(res map[string]any, reads []string) map[string]any {
	if res == nil {
		return nil
	}
	out := map[string]any{}
	for k, v := range res {
		for _, r := range reads {
			prefix := strings.HasSuffix(r, ":")
			if prefix && len(k) >= len(r) && strings.EqualFold(k[:len(r)], r) || !prefix && strings.EqualFold(k, r) {
				out[k] = v
				break
			}
		}
	}
	return out
}
