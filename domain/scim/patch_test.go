package scim

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// The cases are written as the JSON Entra sends, and parsed by ParsePatchPath.

const (
	entURN    = SchemaEnterpriseUser
	customURN = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"
	mgrID     = "5e0c1a2b-7d34-4f0e-9a61-2b8c3d4e5f60"
	mgrRef    = "https://idledger.example/scim/v2/Users/" + mgrID
)

// grace is a user as Entra provisions it, after CanonicalUser.
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

func decodeTestJSON(tb testing.TB, s string) any {
	tb.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		tb.Fatalf("bad test JSON %s: %v", s, err)
	}
	return v
}

func decodeObject(tb testing.TB, s string) map[string]any {
	tb.Helper()
	m, ok := decodeTestJSON(tb, s).(map[string]any)
	if !ok {
		tb.Fatalf("test JSON is not an object: %s", s)
	}
	return m
}

// canonical returns a test user in canonical form and its schemas.
func canonical(tb testing.TB, s string) (map[string]any, []string) {
	tb.Helper()
	res, schemas, err := CanonicalUser(decodeObject(tb, s))
	if err != nil {
		tb.Fatalf("CanonicalUser(%s): %v", s, err)
	}
	return res, sortSchemas(schemas)
}

// sortSchemas puts CanonicalUser's schemas (whose extensions come in map order) in the order
// PatchUser keeps: core first, extensions sorted.
func sortSchemas(s []string) []string {
	out := []string{s[0]}
	rest := append([]string(nil), s[1:]...)
	for i := range rest {
		for j := i + 1; j < len(rest); j++ {
			if rest[j] < rest[i] {
				rest[i], rest[j] = rest[j], rest[i]
			}
		}
	}
	return append(out, rest...)
}

// parseOps reads a PatchOp request body, or just its Operations array, the way a server does:
// op lower-cased, path parsed, unknown members ignored.
func parseOps(tb testing.TB, body string) []PatchOp {
	tb.Helper()
	ops, err := opsFromJSON([]byte(body))
	if err != nil {
		tb.Fatalf("bad test ops %s: %v", body, err)
	}
	return ops
}

func opsFromJSON(b []byte) ([]PatchOp, error) {
	var raw []struct {
		Op    string  `json:"op"`
		Path  *string `json:"path"`
		Value any     `json:"value"`
	}
	var msg struct {
		Operations json.RawMessage `json:"Operations"`
	}
	if err := json.Unmarshal(b, &msg); err == nil && msg.Operations != nil {
		b = msg.Operations
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	ops := make([]PatchOp, 0, len(raw))
	for _, r := range raw {
		op := PatchOp{Op: strings.ToLower(r.Op), Value: r.Value}
		if r.Path != nil {
			p, err := ParsePatchPath(*r.Path)
			if err != nil {
				return nil, err
			}
			op.Path = p
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// mergePatch applies an RFC 7386 JSON merge patch (null deletes), to write expectations as
// "given, plus these differences".
func mergePatch(target map[string]any, patch map[string]any) map[string]any {
	out := cloneMap(target)
	if out == nil {
		out = make(map[string]any)
	}
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			old, _ := out[k].(map[string]any)
			out[k] = mergePatch(old, pv)
			if len(out[k].(map[string]any)) == 0 {
				delete(out, k)
			}
		default:
			out[k] = v
		}
	}
	return out
}

func dump(v any) string {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// A patchUserTest is one given/when/then case of PatchUser: given a user, when the operations
// are applied, then the user is given plus the changes in want, or the error is wantErr.
type patchUserTest struct {
	name  string
	given string // canonical user JSON; grace when empty
	ops   string // PatchOp body or Operations array
	// want is a JSON merge patch over given; wantSchemas nil means given's schemas.
	want        string
	wantSchemas []string
	wantErr     error
}

// patchUserTests cover the PATCH requests Entra sends (every rule and example); the fuzz tests
// use them as seeds.
var patchUserTests = []patchUserTest{
	// §4.4 examples.
	{
		name: "§4.4 default dialect example",
		ops: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			 "Operations":[
			  {"op":"Replace","path":"emails[type eq \"work\"].value","value":"grace.h@contoso.com"},
			  {"op":"Replace","path":"name.familyName","value":"Hopper-Murray"},
			  {"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Research"}]}`,
		want: `{"emails":[{"primary":true,"type":"work","value":"grace.h@contoso.com"}],
			 "name":{"familyName":"Hopper-Murray"},
			 "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Research"}}`,
	},
	{
		name: "§4.4 flag dialect example with rename",
		ops: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			 "Operations":[
			  {"op":"replace","path":"emails[type eq \"work\"].value","value":"grace.h@contoso.com"},
			  {"op":"replace","value":{"userName":"G.Hopper@contoso.com","name.familyName":"Hopper-Murray",
			     "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"Research"}}]}`,
		want: `{"userName":"G.Hopper@contoso.com",
			 "emails":[{"primary":true,"type":"work","value":"grace.h@contoso.com"}],
			 "name":{"familyName":"Hopper-Murray"},
			 "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Research"}}`,
	},
	// §4.4 rule 1: op casing.
	{name: "rule 1 op in any casing", ops: `[{"op":"REPLACE","path":"title","value":"Rear Admiral"}]`, want: `{"title":"Rear Admiral"}`},
	// §4.4 rule 2: simple paths.
	{name: "rule 2 simple userName", ops: `[{"op":"Replace","path":"userName","value":"GH@contoso.com"}]`, want: `{"userName":"GH@contoso.com"}`},
	{name: "rule 2 simple displayName", ops: `[{"op":"Replace","path":"displayName","value":"Amazing Grace"}]`, want: `{"displayName":"Amazing Grace"}`},
	{name: "rule 2 simple title", ops: `[{"op":"Add","path":"title","value":"Rear Admiral"}]`, want: `{"title":"Rear Admiral"}`},
	{name: "rule 2 simple active", ops: `[{"op":"Replace","path":"active","value":false}]`, want: `{"active":false}`},
	{name: "rule 2 simple externalId", ops: `[{"op":"Replace","path":"externalId","value":"ghopper"}]`, want: `{"externalId":"ghopper"}`},
	{name: "rule 2 simple nickName", ops: `[{"op":"Add","path":"nickName","value":"Amazing Grace"}]`, want: `{"nickName":"Amazing Grace"}`},
	{name: "rule 2 simple preferredLanguage", ops: `[{"op":"Add","path":"preferredLanguage","value":"en-US"}]`, want: `{"preferredLanguage":"en-US"}`},
	{name: "rule 2 simple locale", ops: `[{"op":"Add","path":"locale","value":"en-US"}]`, want: `{"locale":"en-US"}`},
	{name: "rule 2 simple userType", ops: `[{"op":"Add","path":"userType","value":"Member"}]`, want: `{"userType":"Member"}`},
	{name: "rule 2 attribute names are case-insensitive", ops: `[{"op":"Replace","path":"DISPLAYNAME","value":"G"}]`, want: `{"displayName":"G"}`},
	// §4.4 rule 2: sub-attributes.
	{name: "rule 2 sub name.givenName", ops: `[{"op":"Replace","path":"name.givenName","value":"Grace Brewster"}]`, want: `{"name":{"givenName":"Grace Brewster"}}`},
	{name: "rule 2 sub name.familyName", ops: `[{"op":"Replace","path":"name.familyName","value":"Murray"}]`, want: `{"name":{"familyName":"Murray"}}`},
	{name: "rule 2 sub name.Formatted case-insensitive", ops: `[{"op":"Replace","path":"name.Formatted","value":"Grace B. Hopper"}]`, want: `{"name":{"formatted":"Grace B. Hopper"}}`},
	{name: "rule 2 sub creates the complex attribute", given: ada, ops: `[{"op":"Add","path":"Name.GivenName","value":"Ada"}]`, want: `{"name":{"givenName":"Ada"}}`},
	// §4.4 rule 2 and 3: filtered multi-valued paths.
	{name: "rule 2 filtered emails work value", ops: `[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"g@contoso.com"}]`,
		want: `{"emails":[{"primary":true,"type":"work","value":"g@contoso.com"}]}`},
	{name: "rule 2 filtered phoneNumbers mobile value", ops: `[{"op":"Replace","path":"phoneNumbers[type eq \"mobile\"].value","value":"+1 555 0199"}]`,
		want: `{"phoneNumbers":[{"type":"mobile","value":"+1 555 0199"}]}`},
	{name: "rule 3 filtered phoneNumbers fax creates the element", ops: `[{"op":"Add","path":"phoneNumbers[type eq \"fax\"].value","value":"+1 555 0101"}]`,
		want: `{"phoneNumbers":[{"type":"mobile","value":"+1 555 0100"},{"type":"fax","value":"+1 555 0101"}]}`},
	{name: "rule 3 filtered emails other creates the element", ops: `[{"op":"Replace","path":"emails[type eq \"other\"].value","value":"grace@navy.mil"}]`,
		want: `{"emails":[{"primary":true,"type":"work","value":"grace@contoso.com"},{"type":"other","value":"grace@navy.mil"}]}`},
	{name: "rule 3 first work email on a user without emails", given: ada, ops: `[{"op":"Add","path":"emails[type eq \"work\"].value","value":"ada@contoso.com"}]`,
		want: `{"emails":[{"type":"work","value":"ada@contoso.com"}]}`},
	{
		name:  "rule 2 filtered addresses work, every sub-attribute",
		given: ada,
		ops: `[{"op":"Add","path":"addresses[type eq \"work\"].streetAddress","value":"1 Microsoft Way"},
			 {"op":"Add","path":"addresses[type eq \"work\"].locality","value":"Redmond"},
			 {"op":"Add","path":"addresses[type eq \"work\"].region","value":"WA"},
			 {"op":"Add","path":"addresses[type eq \"work\"].postalCode","value":"98052"},
			 {"op":"Add","path":"addresses[type eq \"work\"].country","value":"US"},
			 {"op":"Add","path":"addresses[type eq \"work\"].formatted","value":"1 Microsoft Way, Redmond"},
			 {"op":"Add","path":"addresses[type eq \"other\"].formatted","value":"Elsewhere"}]`,
		want: `{"addresses":[{"type":"work","streetAddress":"1 Microsoft Way","locality":"Redmond","region":"WA",
			  "postalCode":"98052","country":"US","formatted":"1 Microsoft Way, Redmond"},
			 {"type":"other","formatted":"Elsewhere"}]}`,
	},
	{name: `rule 2 filtered roles[primary eq "True"].value creates a primary role`, given: ada,
		ops:  `[{"op":"Add","path":"roles[primary eq \"True\"].value","value":"Admin"}]`,
		want: `{"roles":[{"primary":true,"value":"Admin"}]}`},
	{name: `rule 2 filtered roles[primary eq "True"].value replaces the primary role`,
		given: `{"userName":"a","roles":[{"primary":true,"value":"User"},{"value":"Reader"}]}`,
		ops:   `[{"op":"Replace","path":"roles[primary eq \"True\"].value","value":"Admin"}]`,
		want:  `{"roles":[{"primary":true,"value":"Admin"},{"value":"Reader"}]}`},
	{name: "filtered path without sub-attribute replaces the element", ops: `[{"op":"replace","path":"emails[type eq \"work\"]","value":{"value":"x@contoso.com"}}]`,
		want: `{"emails":[{"type":"work","value":"x@contoso.com"}]}`},
	{name: "filtered path without sub-attribute adds to the element", ops: `[{"op":"add","path":"emails[type eq \"work\"]","value":{"display":"Work"}}]`,
		want: `{"emails":[{"primary":true,"type":"work","value":"grace@contoso.com","display":"Work"}]}`},
	{name: "filtered add of a primary clears the other primary", ops: `[{"op":"add","path":"emails[type eq \"home\"]","value":{"value":"g@home.example","primary":"True"}}]`,
		want: `{"emails":[{"primary":false,"type":"work","value":"grace@contoso.com"},{"primary":true,"type":"home","value":"g@home.example"}]}`},
	{name: "filter on a non-multi-valued attribute is an invalid path", ops: `[{"op":"replace","path":"userName[value eq \"x\"]","value":"y"}]`, wantErr: ErrInvalidPath},
	{name: "filter on name is an invalid path", ops: `[{"op":"remove","path":"name[givenName eq \"Grace\"]"}]`, wantErr: ErrInvalidPath},
	{name: "sub-attribute of a simple attribute is an invalid path", ops: `[{"op":"replace","path":"userName.value","value":"y"}]`, wantErr: ErrInvalidPath},
	// §4.4 rule 2: extension paths.
	{name: "rule 2 extension employeeNumber", ops: `[{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"1907"}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"1907"}}`},
	{name: "rule 2 extension department", ops: `[{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Research"}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Research"}}`},
	{name: "rule 2 extension costCenter organization division", ops: `[
			 {"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter","value":"CC-1"},
			 {"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:organization","value":"US Navy"},
			 {"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:Division","value":"Computing"}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"costCenter":"CC-1","organization":"US Navy","division":"Computing"}}`},
	{name: "rule 2 extension URN case-insensitive", ops: `[{"op":"Replace","path":"URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:Department","value":"R"}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"R"}}`},
	{name: "rule 2 extension on a user without one adds the schema", given: ada,
		ops:         `[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Math"}]`,
		want:        `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Math"}}`,
		wantSchemas: []string{SchemaUser, entURN}},
	{name: "rule 2 extension emptied removes the schema",
		ops: `[{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"},
			 {"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":""}]`,
		want:        `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":null}`,
		wantSchemas: []string{SchemaUser, customURN}},
	{name: "rule 2 custom extension attribute", ops: `[{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:costCode","value":"N-43"}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User":{"costCode":"N-43"}}`},
	{name: "rule 2 custom extension new on the user", given: ada,
		ops:         `[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:Acme:2.0:User:badge","value":"B-7"}]`,
		want:        `{"urn:ietf:params:scim:schemas:extension:Acme:2.0:User":{"badge":"B-7"}}`,
		wantSchemas: []string{SchemaUser, "urn:ietf:params:scim:schemas:extension:Acme:2.0:User"}},
	{name: "rule 2 custom extension removed", ops: `[{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:costCode"}]`,
		want:        `{"urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User":null}`,
		wantSchemas: []string{SchemaUser, entURN}},
	{name: "rule 2 core URN prefix", ops: `[{"op":"Replace","path":"urn:ietf:params:scim:schemas:core:2.0:User:displayName","value":"GH"}]`,
		want: `{"displayName":"GH"}`},
	// Manager in all six shapes (§4.4).
	{name: "manager set: docs example array with $ref", given: ada,
		ops:         `[{"op":"Add","path":"manager","value":[{"$ref":"` + mgrRef + `","value":"` + mgrID + `"}]}]`,
		want:        `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"$ref":"` + mgrRef + `","value":"` + mgrID + `"}}}`,
		wantSchemas: []string{SchemaUser, entURN}},
	{name: "manager set: bare string",
		ops:  `[{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"` + mgrID + `"}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"` + mgrID + `"}}}`},
	{name: "manager set: object", given: `{"userName":"a","` + entURN + `":{"manager":{"value":"old","$ref":"https://x/old"}}}`,
		ops:  `[{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":{"value":"` + mgrID + `"}}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"` + mgrID + `","$ref":null}}}`},
	{name: "remove active leaves it unassigned", given: `{"userName":"a","active":false}`,
		ops: `[{"op":"remove","path":"active"}]`, want: `{"active":null}`},
	{name: "remove active of an active user", given: `{"userName":"a","active":true}`,
		ops: `[{"op":"Remove","path":"Active"},{"op":"replace","path":"displayName","value":"A"}]`, want: `{"active":null,"displayName":"A"}`},
	{name: "replace active with null clears it", given: `{"userName":"a","active":false}`,
		ops: `[{"op":"replace","value":{"active":null}}]`, want: `{"active":null}`},
	{name: "remove then add active", given: `{"userName":"a","active":false}`,
		ops: `[{"op":"remove","path":"active"},{"op":"add","path":"active","value":"True"}]`, want: `{"active":true}`},
	{name: "manager clear: remove", given: `{"userName":"a","` + entURN + `":{"department":"D","manager":{"value":"` + mgrID + `"}}}`,
		ops:  `[{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":null}}`},
	{name: "manager clear: filtered remove", given: `{"userName":"a","` + entURN + `":{"manager":{"value":"` + mgrID + `"}}}`,
		ops:         `[{"op":"remove","path":"manager[value eq \"` + mgrID + `\"]"}]`,
		want:        `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":null}`,
		wantSchemas: []string{SchemaUser}},
	{name: "manager filtered remove of another manager is a no-op", given: `{"userName":"a","` + entURN + `":{"manager":{"value":"` + mgrID + `"}}}`,
		ops: `[{"op":"remove","path":"manager[value eq \"someone-else\"]"}]`, want: `{}`},
	{name: "manager clear: replace with empty string", given: `{"userName":"a","` + entURN + `":{"department":"D","manager":{"value":"` + mgrID + `"}}}`,
		ops:  `[{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":""}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":null}}`},
	{name: "manager legacy dotted path", given: ada,
		ops:         `[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.manager","value":"` + mgrID + `"}]`,
		want:        `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"` + mgrID + `"}}}`,
		wantSchemas: []string{SchemaUser, entURN}},
	{name: "manager.value sub-path", given: ada,
		ops:         `[{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.Value","value":"` + mgrID + `"}]`,
		want:        `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"` + mgrID + `"}}}`,
		wantSchemas: []string{SchemaUser, entURN}},
	// §4.4 rule 4: no path.
	{name: "rule 4 no path dotted and URN keys", ops: `[{"op":"replace","value":{
			 "name.givenName":"G","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"7",
			 "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.manager":"` + mgrID + `",
			 "active":"False","unknownThing":1}}]`,
		want: `{"name":{"givenName":"G"},"active":false,
			 "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"7","manager":{"value":"` + mgrID + `"}}}`},
	{name: "rule 4 no path bare extension URN", ops: `[{"op":"replace","value":{
			 "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"Department":"Research","manager":{"value":"` + mgrID + `"}},
			 "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User":{"costCode":"N-43","level":3}}}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Research","manager":{"value":"` + mgrID + `"}},
			 "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User":{"costCode":"N-43","level":3}}`},
	{name: "rule 4 no path complex attribute merges sub-attributes", ops: `[{"op":"replace","value":{"name":{"givenName":"G"}}}]`,
		want: `{"name":{"givenName":"G"}}`},
	{name: "rule 4 no path add appends to multi-valued", ops: `[{"op":"add","value":{"emails":[{"type":"home","value":"g@home.example"}]}}]`,
		want: `{"emails":[{"primary":true,"type":"work","value":"grace@contoso.com"},{"type":"home","value":"g@home.example"}]}`},
	{name: "rule 4 no path replace replaces multi-valued", ops: `[{"op":"replace","value":{"emails":[{"type":"home","value":"g@home.example"}]}}]`,
		want: `{"emails":[{"type":"home","value":"g@home.example"}]}`},
	{name: "rule 4 no path with a filtered key is an invalid path", ops: `[{"op":"replace","value":{"emails[type eq \"work\"].value":"x"}}]`, wantErr: ErrInvalidPath},
	{name: "rule 4 no path value must be an object", ops: `[{"op":"replace","value":"x"}]`, wantErr: ErrInvalid},
	// §4.4 rule 5: value shapes.
	{name: "rule 5 boolean as string", ops: `[{"op":"Replace","path":"active","value":"FALSE"}]`, want: `{"active":false}`},
	{name: "rule 5 one-element array for a single-valued attribute", ops: `[{"op":"Replace","path":"displayName","value":["GH"]}]`, want: `{"displayName":"GH"}`},
	{name: "rule 5 several values for a single-valued attribute", ops: `[{"op":"Replace","path":"displayName","value":["a","b"]}]`, wantErr: ErrInvalid},
	{name: "rule 5 object for a sub-attribute path", ops: `[{"op":"Replace","path":"name","value":{"familyName":"H"}}]`, want: `{"name":{"familyName":"H"}}`},
	{name: "rule 5 wrong type", ops: `[{"op":"Replace","path":"active","value":"maybe"}]`, wantErr: ErrInvalid},
	// §4.4 rule 6: clearing.
	{name: "rule 6 empty string clears", ops: `[{"op":"Replace","path":"displayName","value":""},{"op":"Replace","path":"name.givenName","value":""}]`,
		want: `{"displayName":null,"name":{"givenName":null}}`},
	{name: "rule 6 null clears", ops: `[{"op":"Replace","path":"displayName","value":null},{"op":"Add","path":"emails[type eq \"work\"].value","value":null}]`,
		want: `{"displayName":null,"emails":null}`},
	{name: "rule 6 remove without value clears", ops: `[{"op":"Remove","path":"name"},{"op":"Remove","path":"phoneNumbers"},{"op":"Remove","path":"externalId"}]`,
		want: `{"name":null,"phoneNumbers":null,"externalId":null}`},
	{name: "rule 6 no path empty and null values clear", ops: `[{"op":"replace","value":{"displayName":"","title":null,"name.formatted":""}}]`,
		want: `{"displayName":null,"name":{"formatted":null}}`},
	{name: "rule 6 clearing userName is invalid", ops: `[{"op":"Replace","path":"userName","value":""}]`, wantErr: ErrInvalid},
	// §4.4 rule 7 and unknown attributes.
	{name: "rule 7 unknown attribute add is ignored", ops: `[{"op":"Add","path":"favouriteColour","value":"blue"}]`, want: `{}`},
	{name: "rule 7 unknown attribute remove is a no-op", ops: `[{"op":"Remove","path":"favouriteColour"}]`, want: `{}`},
	{name: "unknown enterprise attribute is ignored", ops: `[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:shoeSize","value":"9"}]`, want: `{}`},
	{name: "password is write-only and never stored", ops: `[{"op":"Replace","path":"password","value":"hunter2"}]`, want: `{}`},
	// Roles (§4.4).
	{name: "roles add with a JSON string value, stored as received", given: ada,
		ops:  `[{"op":"Add","path":"roles","value":[{"value":"{\"id\":\"r1\",\"value\":\"Admin\",\"displayName\":\"Admin\"}"}]}]`,
		want: `{"roles":[{"value":"{\"id\":\"r1\",\"value\":\"Admin\",\"displayName\":\"Admin\"}"}]}`},
	{name: "roles add keeps several roles of one type and does not duplicate",
		given: `{"userName":"a","roles":[{"primary":false,"type":"WindowsAzureActiveDirectoryRole","display":"Role1","value":"role1"}]}`,
		ops: `[{"op":"add","path":"roles","value":[{"primary":false,"type":"WindowsAzureActiveDirectoryRole","display":"Role1","value":"role1"},
			 {"primary":false,"type":"WindowsAzureActiveDirectoryRole","display":"Role2","value":"role2"}]}]`,
		want: `{"roles":[{"primary":false,"type":"WindowsAzureActiveDirectoryRole","display":"Role1","value":"role1"},
			 {"primary":false,"type":"WindowsAzureActiveDirectoryRole","display":"Role2","value":"role2"}]}`},
	{name: "roles replace replaces the set",
		given: `{"userName":"a","roles":[{"value":"role1"},{"value":"role2"}]}`,
		ops:   `[{"op":"Replace","path":"roles","value":[{"primary":true,"type":"WindowsAzureActiveDirectoryRole","value":"Admin"}]}]`,
		want:  `{"roles":[{"primary":true,"type":"WindowsAzureActiveDirectoryRole","value":"Admin"}]}`},
	{name: "roles remove by value list",
		given: `{"userName":"a","roles":[{"value":"role1"},{"value":"role2"}]}`,
		ops:   `[{"op":"Remove","path":"roles","value":[{"value":"role1"}]}]`,
		want:  `{"roles":[{"value":"role2"}]}`},
	{name: "roles remove by a single value object",
		given: `{"userName":"a","roles":[{"value":"role1"},{"value":"role2"}]}`,
		ops:   `[{"op":"Remove","path":"roles","value":{"value":"role2"}}]`,
		want:  `{"roles":[{"value":"role1"}]}`},
	{name: "roles remove with an empty list removes nothing",
		given: `{"userName":"a","roles":[{"value":"role1"}]}`,
		ops:   `[{"op":"Remove","path":"roles","value":[]}]`, want: `{}`},
	{name: "roles remove by filter",
		given: `{"userName":"a","roles":[{"value":"role1"},{"value":"role2"}]}`,
		ops:   `[{"op":"remove","path":"roles[value eq \"role1\"]"}]`,
		want:  `{"roles":[{"value":"role2"}]}`},
	// Multi-valued add (RFC 7644 §3.5.2.1).
	{name: "add to multi-valued appends",
		ops:  `[{"op":"Add","path":"emails","value":[{"type":"home","value":"g@home.example"}]}]`,
		want: `{"emails":[{"primary":true,"type":"work","value":"grace@contoso.com"},{"type":"home","value":"g@home.example"}]}`},
	{name: "add to multi-valued replaces the element of the same type",
		ops:  `[{"op":"Add","path":"emails","value":[{"type":"Work","value":"new@contoso.com","primary":true}]}]`,
		want: `{"emails":[{"primary":true,"type":"Work","value":"new@contoso.com"}]}`},
	{name: "add of a new primary clears the others",
		ops:  `[{"op":"Add","path":"emails","value":{"type":"home","value":"g@home.example","Primary":"True"}}]`,
		want: `{"emails":[{"primary":false,"type":"work","value":"grace@contoso.com"},{"primary":true,"type":"home","value":"g@home.example"}]}`},
	{name: "replace with two primaries is invalid",
		ops: `[{"op":"Replace","path":"emails","value":[{"value":"a@x","primary":true},{"value":"b@x","primary":true}]}]`, wantErr: ErrInvalid},
	// Remove with filters.
	{name: "remove with filter removes the matching elements",
		ops:  `[{"op":"Remove","path":"emails[type eq \"work\"]"}]`,
		want: `{"emails":null}`},
	{name: "remove of a filtered sub-attribute",
		given: `{"userName":"a","addresses":[{"type":"work","locality":"Redmond","region":"WA"}]}`,
		ops:   `[{"op":"Remove","path":"addresses[type eq \"work\"].region"}]`,
		want:  `{"addresses":[{"type":"work","locality":"Redmond"}]}`},
	{name: "clearing an element's value drops the element",
		ops:  `[{"op":"Replace","path":"phoneNumbers[type eq \"mobile\"].value","value":""}]`,
		want: `{"phoneNumbers":null}`},
	{name: "remove with a filter matching nothing succeeds", ops: `[{"op":"Remove","path":"emails[type eq \"home\"]"}]`, want: `{}`},
	{name: "remove of an absent attribute succeeds", given: ada, ops: `[{"op":"Remove","path":"title"},{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}]`, want: `{}`},
	// §4.5 disable and re-enable.
	{name: "§4.5 disable default dialect",
		ops: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`, want: `{"active":false}`},
	{name: "§4.5 disable flag dialect", ops: `[{"op":"replace","path":"active","value":false}]`, want: `{"active":false}`},
	{name: "§4.5 re-enable default dialect", given: `{"userName":"a","active":false}`, ops: `[{"op":"Replace","path":"active","value":"True"}]`, want: `{"active":true}`},
	{name: "§4.5 re-enable flag dialect", given: `{"userName":"a","active":false}`, ops: `[{"op":"replace","path":"active","value":true}]`, want: `{"active":true}`},
	{name: "§4.5 re-enable without path", given: `{"userName":"a","active":false}`, ops: `[{"op":"replace","value":{"active":true}}]`, want: `{"active":true}`},
	// Errors and atomicity.
	{name: "read-only groups", ops: `[{"op":"Add","path":"groups","value":[{"value":"g1"}]}]`, wantErr: ErrMutability},
	{name: "read-only id", ops: `[{"op":"Replace","path":"id","value":"x"}]`, wantErr: ErrMutability},
	{name: "read-only meta", ops: `[{"op":"Replace","value":{"meta":{"created":"x"}}}]`, wantErr: ErrMutability},
	{name: "remove without path", ops: `[{"op":"Remove"}]`, wantErr: ErrNoTarget},
	{name: "unknown op", ops: `[{"op":"move","path":"title","value":"x"}]`, wantErr: ErrInvalidSyntax},
	{name: "atomic: a failing operation applies nothing",
		ops: `[{"op":"Replace","path":"displayName","value":"changed"},{"op":"Replace","path":"groups","value":"x"}]`, wantErr: ErrMutability},
	{name: "a PATCH that changes nothing", ops: `[{"op":"Replace","path":"displayName","value":"Grace Hopper"},{"op":"Add","path":"emails","value":[{"primary":true,"type":"work","value":"grace@contoso.com"}]}]`, want: `{}`},
}

func (tt patchUserTest) givenJSON() string {
	if tt.given == "" {
		return grace
	}
	return tt.given
}

func TestPatchUser(t *testing.T) {
	t.Parallel()
	for _, tt := range patchUserTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			given, schemas := canonical(t, tt.givenJSON())
			before := cloneMap(given)
			got, gotSchemas, err := PatchUser(given, schemas, parseOps(t, tt.ops))
			if !reflect.DeepEqual(given, before) {
				t.Errorf("PatchUser modified its input:\n%s", dump(given))
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if got != nil || gotSchemas != nil {
					t.Errorf("got a result with an error: %s", dump(got))
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			want := mergePatch(given, decodeObject(t, tt.want))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("resource =\n%s\nwant\n%s", dump(got), dump(want))
			}
			wantSchemas := tt.wantSchemas
			if wantSchemas == nil {
				wantSchemas = schemas
			}
			if !reflect.DeepEqual(gotSchemas, wantSchemas) {
				t.Errorf("schemas = %q, want %q", gotSchemas, wantSchemas)
			}
		})
	}
}

func TestPatchGroup(t *testing.T) {
	t.Parallel()
	const (
		u1 = "5e0c1a2b-7d34-4f0e-9a61-2b8c3d4e5f60"
		u2 = "8a7b6c5d-2222-4e3f-9a0b-abcdefabcdef"
	)
	payroll := `{"displayName":"Payroll Admins","externalId":"0d9f6a4e-3c21-4b77-9e0a-5f1c2b3d4e5f"}`
	tests := []struct {
		name      string
		given     string // group attributes; payroll when empty
		ops       string
		want      string // JSON merge patch over given
		wantOps   []MemberOp
		wantErr   error
		wantNoOps bool
	}{
		{name: "§5 rename",
			ops:  `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"displayName","value":"Payroll Administrators"}]}`,
			want: `{"displayName":"Payroll Administrators"}`},
		{name: "no-path id is read-only", ops: `[{"op":"replace","value":{"id":"x","displayName":"Payroll Administrators","externalId":"x"}}]`,
			wantErr: ErrMutability},
		{name: "§5 rename without path, flag dialect", ops: `[{"op":"replace","value":{"displayName":"Payroll Administrators","externalId":"x","schemas":["s"]}}]`,
			want: `{"displayName":"Payroll Administrators","externalId":"x"}`},
		{name: "§5 add members, $ref null",
			ops: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			 "Operations":[{"op":"Add","path":"members","value":[
			   {"$ref":null,"value":"` + u1 + `"},
			   {"value":"` + u2 + `"}]}]}`,
			wantOps: []MemberOp{{Kind: MembersAdd, Members: []Member{{Value: u1}, {Value: u2}}}}},
		{name: "§5 multiple memberships in a single PATCH",
			ops: `[{"op":"Add","path":"members","value":[{"value":"` + u1 + `","display":"Ada"}]},
			 {"op":"Add","path":"members","value":[{"value":"` + u2 + `","displayName":"Grace","type":"User"}]}]`,
			wantOps: []MemberOp{
				{Kind: MembersAdd, Members: []Member{{Value: u1, Display: "Ada"}}},
				{Kind: MembersAdd, Members: []Member{{Value: u2, Display: "Grace", Type: "User"}}}}},
		{name: "§5 add member as a bare string", ops: `[{"op":"add","path":"members","value":["` + u1 + `"]}]`,
			wantOps: []MemberOp{{Kind: MembersAdd, Members: []Member{{Value: u1}}}}},
		{name: "§5 add the same member twice in one op",
			ops:     `[{"op":"add","path":"members","value":[{"value":"` + u1 + `"},{"value":"` + u1 + `"}]}]`,
			wantOps: []MemberOp{{Kind: MembersAdd, Members: []Member{{Value: u1}}}}},
		{name: "§5 remove members, default dialect, removes only those listed",
			ops:     `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Remove","path":"members","value":[{"value":"` + u2 + `"}]}]}`,
			wantOps: []MemberOp{{Kind: MembersRemove, Members: []Member{{Value: u2}}}}},
		{name: "§5 remove members, flag dialect",
			ops:     `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"` + u2 + `\"]"}]}`,
			wantOps: []MemberOp{{Kind: MembersRemove, Members: []Member{{Value: u2}}}}},
		{name: "§5 remove members, filter with or",
			ops:     `[{"op":"remove","path":"members[value eq \"` + u1 + `\" or value eq \"` + u2 + `\"]"}]`,
			wantOps: []MemberOp{{Kind: MembersRemove, Members: []Member{{Value: u1}, {Value: u2}}}}},
		{name: "§5 remove all members (no value)", ops: `[{"op":"remove","path":"members"}]`,
			wantOps: []MemberOp{{Kind: MembersRemoveAll}}},
		{name: "§5 remove with an empty list removes nobody", ops: `[{"op":"remove","path":"members","value":[]}]`, wantNoOps: true},
		{name: "§5 replace members",
			ops:     `[{"op":"replace","path":"members","value":[{"value":"` + u1 + `"}]}]`,
			wantOps: []MemberOp{{Kind: MembersReplace, Members: []Member{{Value: u1}}}}},
		{name: "§5 replace members with none", ops: `[{"op":"replace","path":"members","value":[]}]`,
			wantOps: []MemberOp{{Kind: MembersReplace, Members: []Member{}}}},
		{name: "§5 no-path add of members",
			ops:     `[{"op":"add","value":{"members":[{"value":"` + u1 + `"}]}}]`,
			wantOps: []MemberOp{{Kind: MembersAdd, Members: []Member{{Value: u1}}}}},
		{name: "§5 no-path replace of members and displayName",
			ops:     `[{"op":"replace","value":{"displayName":"P","members":[{"value":"` + u1 + `"}]}}]`,
			want:    `{"displayName":"P"}`,
			wantOps: []MemberOp{{Kind: MembersReplace, Members: []Member{{Value: u1}}}}},
		{name: "§5 members ops keep request order",
			ops: `[{"op":"Remove","path":"members","value":[{"value":"` + u1 + `"}]},{"op":"Add","path":"members","value":[{"value":"` + u1 + `"}]}]`,
			wantOps: []MemberOp{
				{Kind: MembersRemove, Members: []Member{{Value: u1}}},
				{Kind: MembersAdd, Members: []Member{{Value: u1}}}}},
		{name: "externalId cleared", ops: `[{"op":"replace","path":"externalId","value":""}]`, want: `{"externalId":null}`},
		{name: "group extension attribute", ops: `[{"op":"add","path":"urn:example:params:scim:schemas:extension:Acme:2.0:Group:costCode","value":"C-1"}]`,
			want: `{"urn:example:params:scim:schemas:extension:Acme:2.0:Group":{"costCode":"C-1"}}`},
		{name: "unknown attribute ignored", ops: `[{"op":"add","path":"description","value":"x"}]`},
		{name: "displayName may not become empty", ops: `[{"op":"replace","path":"displayName","value":""}]`, wantErr: ErrInvalid},
		{name: "displayName may not be removed", ops: `[{"op":"remove","path":"displayName"}]`, wantErr: ErrInvalid},
		{name: "member without value", ops: `[{"op":"add","path":"members","value":[{"display":"x"}]}]`, wantErr: ErrInvalid},
		{name: "member with an empty value", ops: `[{"op":"add","path":"members","value":[{"value":""}]}]`, wantErr: ErrInvalid},
		{name: "member value not a string", ops: `[{"op":"add","path":"members","value":[{"value":7}]}]`, wantErr: ErrInvalid},
		{name: "members filter other than value eq", ops: `[{"op":"remove","path":"members[display eq \"x\"]"}]`, wantErr: ErrInvalidPath},
		{name: "members filter in add", ops: `[{"op":"add","path":"members[value eq \"x\"]","value":"y"}]`, wantErr: ErrInvalidPath},
		{name: "remove without path", ops: `[{"op":"remove"}]`, wantErr: ErrNoTarget},
		{name: "atomic: an invalid member fails the request",
			ops: `[{"op":"replace","path":"displayName","value":"X"},{"op":"add","path":"members","value":[{"value":null}]}]`, wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			givenJSON := tt.given
			if givenJSON == "" {
				givenJSON = payroll
			}
			given := decodeObject(t, givenJSON)
			before := cloneMap(given)
			got, gotOps, err := PatchGroup(given, parseOps(t, tt.ops))
			if !reflect.DeepEqual(given, before) {
				t.Errorf("PatchGroup modified its input")
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if got != nil || gotOps != nil {
					t.Errorf("got a result with an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			patch := "{}"
			if tt.want != "" {
				patch = tt.want
			}
			if want := mergePatch(given, decodeObject(t, patch)); !reflect.DeepEqual(got, want) {
				t.Errorf("attributes = %s, want %s", dump(got), dump(want))
			}
			if !reflect.DeepEqual(gotOps, tt.wantOps) {
				t.Errorf("member ops = %s, want %s", dump(gotOps), dump(tt.wantOps))
			}
		})
	}
}

func TestPatchGroup_PointerFilterNodes(t *testing.T) {
	t.Parallel()
	f := &LogicalFilter{Op: "OR",
		Left:  &CompareFilter{Path: AttrPath{Attr: "Value"}, Op: "EQ", Value: "u1"},
		Right: CompareFilter{Path: AttrPath{Attr: "value"}, Op: "eq", Value: "u2"}}
	_, got, err := PatchGroup(map[string]any{"displayName": "G"},
		[]PatchOp{{Op: PatchRemove, Path: &PatchPath{Path: AttrPath{Attr: "members"}, Filter: f}}})
	want := []MemberOp{{Kind: MembersRemove, Members: []Member{{Value: "u1"}, {Value: "u2"}}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("PatchGroup = %v, %v; want %v", got, err, want)
	}
}

func TestCanonicalGroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		in          string
		want        string
		wantMembers []Member
		wantSchemas []string
		wantErr     error
	}{
		{name: "§5 create example",
			in: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group",
			 "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
			 "externalId":"0d9f6a4e-3c21-4b77-9e0a-5f1c2b3d4e5f","displayName":"Payroll Admins",
			 "members":[],"meta":{"resourceType":"Group"}}`,
			want:        `{"externalId":"0d9f6a4e-3c21-4b77-9e0a-5f1c2b3d4e5f","displayName":"Payroll Admins"}`,
			wantMembers: []Member{},
			wantSchemas: []string{SchemaGroup}},
		{name: "members, extension, unknown and id",
			in: `{"id":"client-id","DisplayName":"G","description":"ignored","members":[{"value":"u1","display":"Ada","$ref":null},"u2",{"value":"u1"}],
			 "urn:example:Acme:2.0:Group":{"costCode":"C-1"},"urn:example:Empty:2.0:Group":{}}`,
			want:        `{"displayName":"G","urn:example:Acme:2.0:Group":{"costCode":"C-1"}}`,
			wantMembers: []Member{{Value: "u1", Display: "Ada"}, {Value: "u2"}},
			wantSchemas: []string{SchemaGroup, "urn:example:Acme:2.0:Group"}},
		{name: "members null", in: `{"displayName":"G","members":null,"externalId":null}`, want: `{"displayName":"G"}`, wantSchemas: []string{SchemaGroup}},
		{name: "displayName required", in: `{"externalId":"x"}`, wantErr: ErrInvalid},
		{name: "displayName blank", in: `{"displayName":"  "}`, wantErr: ErrInvalid},
		{name: "displayName not a string", in: `{"displayName":{"a":1}}`, wantErr: ErrInvalid},
		{name: "member without value", in: `{"displayName":"G","members":[{"display":"x"}]}`, wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, members, schemas, err := CanonicalGroup(decodeObject(t, tt.in))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if want := decodeObject(t, tt.want); !reflect.DeepEqual(got, want) {
				t.Errorf("attributes = %s, want %s", dump(got), dump(want))
			}
			if !reflect.DeepEqual(members, tt.wantMembers) {
				t.Errorf("members = %s, want %s", dump(members), dump(tt.wantMembers))
			}
			if !reflect.DeepEqual(schemas, tt.wantSchemas) {
				t.Errorf("schemas = %q, want %q", schemas, tt.wantSchemas)
			}
		})
	}
}

func FuzzPatchUser(f *testing.F) {
	for _, tt := range patchUserTests {
		f.Add(tt.givenJSON(), tt.ops)
	}
	f.Fuzz(func(t *testing.T, resJSON, opsJSON string) {
		var in map[string]any
		if json.Unmarshal([]byte(resJSON), &in) != nil {
			t.Skip()
		}
		ops, err := opsFromJSON([]byte(opsJSON))
		if err != nil {
			t.Skip()
		}
		// PatchGroup sees the same operations; neither may panic.
		group := cloneMap(in)
		if _, _, err := PatchGroup(group, ops); err == nil && !reflect.DeepEqual(group, in) {
			t.Errorf("PatchGroup modified its input")
		}
		res, schemas, err := CanonicalUser(in)
		if err != nil {
			t.Skip()
		}
		before := cloneMap(res)
		got, gotSchemas, err := PatchUser(res, schemas, ops)
		if !reflect.DeepEqual(res, before) {
			t.Fatalf("PatchUser modified its input")
		}
		if err != nil {
			if got != nil || gotSchemas != nil {
				t.Errorf("result with error %v", err)
			}
			return
		}
		again, _, err := CanonicalUser(got)
		if _, ok := got["active"]; !ok && err == nil {
			delete(again, "active") // the default of a new user; PATCH leaves active unassigned
		}
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("result is not canonical (%v):\n%s\nvs\n%s", err, dump(got), dump(again))
		}
		if len(gotSchemas) == 0 || gotSchemas[0] != SchemaUser {
			t.Errorf("schemas = %q", gotSchemas)
		}
	})
}
