package scim_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/idledger/idledger/domain/scim"
)

func cmpF(path scim.AttrPath, op string, v any) scim.CompareFilter {
	return scim.CompareFilter{Path: path, Op: op, Value: v}
}

func attr(name string) scim.AttrPath { return scim.AttrPath{Attr: name} }

func sub(name, s string) scim.AttrPath { return scim.AttrPath{Attr: name, Sub: s} }

func and(l, r scim.Filter) scim.LogicalFilter {
	return scim.LogicalFilter{Op: "and", Left: l, Right: r}
}

func or(l, r scim.Filter) scim.LogicalFilter {
	return scim.LogicalFilter{Op: "or", Left: l, Right: r}
}

func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

const matchUser = `{
	"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
	"id": "5e0c1a2b-7d34-4f0e-9a61-2b8c3d4e5f60", "externalId": "Ada",
	"userName": "Ada.Lovelace@contoso.com", "active": true, "title": "",
	"name": {"givenName": "Ada", "familyName": "Lovelace"},
	"emails": [{"value": "ada@contoso.com", "type": "work", "primary": true},
		{"value": "ada@home.example", "type": "home"}],
	"photos": [{"value": "https://example.com/Ada.png"}],
	"x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAw"}],
	"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
		"department": "Research", "manager": {"value": "m-1", "$ref": "https://x/Users/m-1"}},
	"urn:example:ext:1.0:User": {"level": 7, "tags": ["a", "B"]},
	"meta": {"resourceType": "User", "created": "2026-11-20T09:15:00Z",
		"lastModified": "2026-11-20T09:15:00.1234567Z", "location": "https://idledger.example/Users/5e0c"}}`

func TestMatch(t *testing.T) {
	t.Parallel()
	ent := scim.SchemaEnterpriseUser
	tests := []struct {
		name string
		f    scim.Filter
		want bool
	}{
		{"EqFolded", cmpF(attr("USERNAME"), "eq", "ada.lovelace@CONTOSO.com"), true},
		{"OpInAnyCase", cmpF(attr("userName"), "EQ", "ada.lovelace@contoso.com"), true},
		{"IDCaseExact", cmpF(attr("id"), "eq", "5E0C1A2B-7D34-4F0E-9A61-2B8C3D4E5F60"), false},
		{"ExternalIDCaseExact", cmpF(attr("externalId"), "eq", "ada"), false},
		{"ExternalIDExact", cmpF(attr("externalid"), "eq", "Ada"), true},
		{"ReferenceCaseExact", cmpF(sub("photos", "value"), "eq", "https://example.com/ada.png"), false},
		{"BinaryCaseExact", cmpF(sub("x509Certificates", "value"), "sw", "miid"), false},
		{"MetaLocationCaseExact", cmpF(sub("meta", "location"), "ew", "/users/5e0c"), false},
		{"Co", cmpF(attr("userName"), "co", "LOVELACE"), true},
		{"Sw", cmpF(attr("userName"), "sw", "ada."), true},
		{"Ew", cmpF(attr("userName"), "ew", "@Contoso.com"), true},
		{"NeOnValue", cmpF(attr("userName"), "ne", "x"), true},
		{"NeAbsent", cmpF(attr("nickName"), "ne", "x"), true},
		{"NeSame", cmpF(attr("userName"), "ne", "ADA.LOVELACE@contoso.com"), false},
		{"NeMismatchedType", cmpF(attr("userName"), "ne", 5.0), false},
		{"PrEmptyString", cmpF(attr("title"), "pr", nil), false},
		{"PrComplex", cmpF(attr("name"), "pr", nil), true},
		{"PrMulti", cmpF(attr("emails"), "pr", nil), true},
		{"EqNullAbsent", cmpF(attr("nickName"), "eq", nil), true},
		{"EqNullEmpty", cmpF(attr("title"), "eq", nil), true},
		{"EqNullPresent", cmpF(attr("userName"), "eq", nil), false},
		{"NeNull", cmpF(attr("userName"), "ne", nil), true},
		{"GtNull", cmpF(attr("userName"), "gt", nil), false},
		{"MultiAnyElement", cmpF(sub("emails", "value"), "eq", "ADA@home.example"), true},
		{"MultiWithoutSub", cmpF(attr("emails"), "ew", "@home.example"), true},
		{"MultiType", cmpF(sub("emails", "type"), "eq", "home"), true},
		{"BoolTrue", cmpF(attr("active"), "eq", true), true},
		{"BoolString", cmpF(attr("active"), "eq", "TRUE"), true},
		{"BoolNe", cmpF(attr("active"), "ne", "false"), true},
		{"BoolGt", cmpF(attr("active"), "gt", false), false},
		{"BoolOtherString", cmpF(attr("active"), "eq", "yes"), false},
		{"StringVsBool", cmpF(sub("emails", "type"), "eq", true), false},
		{"ValuePath", scim.ValuePathFilter{Path: attr("emails"),
			Filter: and(cmpF(attr("type"), "eq", "work"), cmpF(attr("primary"), "eq", "True"))}, true},
		{"ValuePathNoElement", scim.ValuePathFilter{Path: attr("emails"),
			Filter: and(cmpF(attr("type"), "eq", "home"), cmpF(attr("primary"), "eq", true))}, false},
		{"ValuePathOnComplex", scim.ValuePathFilter{Path: attr("name"), Filter: cmpF(attr("givenName"), "eq", "ada")}, true},
		{"ExtensionURN", cmpF(scim.AttrPath{URN: ent, Attr: "department"}, "eq", "research"), true},
		{"ExtensionURNAnyCase", cmpF(scim.AttrPath{URN: "URN:IETF:params:scim:schemas:extension:enterprise:2.0:user", Attr: "Department"}, "eq", "research"), true},
		{"CoreURN", cmpF(scim.AttrPath{URN: scim.SchemaUser, Attr: "userName"}, "sw", "ada"), true},
		{"UnqualifiedExtensionAttribute", cmpF(attr("department"), "eq", "Research"), true},
		{"CoreNameNotLookedUpInExtension", cmpF(attr("displayName"), "pr", nil), false},
		{"ManagerEq", cmpF(attr("manager"), "eq", "M-1"), true},
		{"ManagerRefCaseExact", cmpF(scim.AttrPath{URN: ent, Attr: "manager", Sub: "$ref"}, "eq", "https://x/users/m-1"), false},
		{"NumberGt", cmpF(scim.AttrPath{URN: "urn:example:ext:1.0:User", Attr: "level"}, "gt", 6.5), true},
		{"NumberLe", cmpF(attr("level"), "le", 7.0), true},
		{"NumberLt", cmpF(attr("level"), "lt", 7.0), false},
		{"NumberVsString", cmpF(attr("level"), "eq", "7"), false},
		{"IntValueInFilter", cmpF(attr("level"), "eq", 7), true},
		{"StringListFolded", cmpF(attr("tags"), "eq", "b"), true},
		{"StringOrdering", cmpF(attr("userName"), "gt", "ADA"), true},
		{"StringOrderingLe", cmpF(attr("userName"), "le", "ADA"), false},
		{"TimestampGe7Digits", cmpF(sub("meta", "lastModified"), "ge", "2026-11-20T09:15:00.1234567Z"), true},
		{"TimestampGt9Digits", cmpF(sub("meta", "lastModified"), "gt", "2026-11-20T09:15:00.123456701Z"), false},
		{"TimestampOffset", cmpF(sub("meta", "created"), "eq", "2026-11-20T10:15:00+01:00"), true},
		{"TimestampLowerCase", cmpF(sub("meta", "created"), "eq", "2026-11-20t09:15:00z"), true},
		{"TimestampNotParsable", cmpF(sub("meta", "created"), "gt", "yesterday"), false},
		{"TimestampVsNumber", cmpF(sub("meta", "created"), "gt", 5.0), false},
		{"And", and(cmpF(attr("active"), "eq", true), cmpF(attr("userName"), "sw", "x")), false},
		{"Or", or(cmpF(attr("active"), "eq", false), cmpF(attr("userName"), "sw", "ada")), true},
		{"Not", scim.NotFilter{Filter: cmpF(attr("active"), "eq", true)}, false},
		{"Pointers", &scim.LogicalFilter{Op: "and", Left: &scim.CompareFilter{Path: attr("active"), Op: "eq", Value: true},
			Right: &scim.NotFilter{Filter: &scim.ValuePathFilter{Path: attr("emails"), Filter: cmpF(attr("type"), "eq", "fax")}}}, true},
		{"NilFilter", nil, false},
		{"NilPointer", (*scim.CompareFilter)(nil), false},
		{"NotNil", scim.NotFilter{}, false},
		{"UnknownOp", cmpF(attr("userName"), "xx", "a"), false},
		{"UnknownLogicalOp", scim.LogicalFilter{Op: "xor", Left: cmpF(attr("active"), "pr", nil), Right: cmpF(attr("active"), "pr", nil)}, false},
		{"ObjectValue", cmpF(attr("name"), "eq", map[string]any{"givenName": "Ada"}), false},
	}
	res := decode(t, matchUser)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scim.Match(tt.f, res); got != tt.want {
				t.Errorf("Match(%v) = %v, want %v", tt.f, got, tt.want)
			}
		})
	}
}

// TestMatch_Element covers the PATCH engine's use: a filter matched against one element of a
// multi-valued attribute.
func TestMatch_Element(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		f    scim.Filter
		el   map[string]any
		want bool
	}{
		{"Type", cmpF(attr("type"), "eq", "work"), map[string]any{"type": "Work", "value": "a@b"}, true},
		{"PrimaryStringTrue", cmpF(attr("primary"), "eq", "True"), map[string]any{"primary": true}, true},
		{"PrimaryStringFalse", cmpF(attr("primary"), "eq", "True"), map[string]any{"primary": false}, false},
		{"PrimaryAbsent", cmpF(attr("primary"), "eq", "True"), map[string]any{"value": "x"}, false},
		{"MemberValue", cmpF(attr("value"), "eq", "8a7b6c5d"), map[string]any{"value": "8a7b6c5d", "display": "Ada"}, true},
		{"RefCaseExact", cmpF(attr("$ref"), "eq", "https://x/users/1"), map[string]any{"$ref": "https://x/Users/1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scim.Match(tt.f, tt.el); got != tt.want {
				t.Errorf("Match(%v, %v) = %v, want %v", tt.f, tt.el, got, tt.want)
			}
		})
	}
}

// TestMatch_GoValues checks that a representation built from Go values (named string types,
// []string, integers, time.Time, structs) matches like its JSON form.
func TestMatch_GoValues(t *testing.T) {
	t.Parallel()
	type (
		userID  string
		version uint64
	)
	type member struct {
		Value   string `json:"value"`
		Display string `json:"display,omitempty"`
	}
	res := map[string]any{
		"id":      userID("u-1"),
		"schemas": []string{scim.SchemaGroup},
		"members": []member{{Value: "m-1", Display: "Ada"}},
		"count":   int64(3),
		"version": version(9),
		"meta":    map[string]any{"created": time.Date(2026, 11, 20, 9, 15, 0, 0, time.UTC)},
		"nested":  map[string]string{"k": "V"},
		"number":  json.Number("2.5"),
	}
	tests := []struct {
		f    scim.Filter
		want bool
	}{
		{cmpF(attr("id"), "eq", "u-1"), true},
		{cmpF(attr("schemas"), "eq", scim.SchemaGroup), true},
		{cmpF(attr("members"), "eq", "m-1"), true},
		{scim.ValuePathFilter{Path: attr("members"), Filter: cmpF(attr("display"), "eq", "ada")}, true},
		{cmpF(attr("count"), "ge", 3.0), true},
		{cmpF(attr("version"), "eq", 9.0), true},
		{cmpF(sub("meta", "created"), "eq", "2026-11-20T09:15:00.000Z"), true},
		{cmpF(sub("nested", "k"), "eq", "v"), true},
		{cmpF(attr("number"), "gt", 2.0), true},
	}
	for _, tt := range tests {
		if got := scim.Match(tt.f, res); got != tt.want {
			t.Errorf("Match(%v) = %v, want %v", tt.f, got, tt.want)
		}
	}
}

func TestFilter_String(t *testing.T) {
	t.Parallel()
	a, b, c := cmpF(attr("a"), "eq", 1.0), cmpF(attr("b"), "pr", nil), cmpF(attr("c"), "ne", "x")
	tests := []struct {
		f    fmt.Stringer
		want string
	}{
		{cmpF(attr("userName"), "EQ", "bjensen"), `userName eq "bjensen"`},
		{cmpF(attr("title"), "pr", nil), `title pr`},
		{cmpF(attr("a"), "eq", nil), `a eq null`},
		{cmpF(attr("a"), "eq", false), `a eq false`},
		{cmpF(attr("a"), "gt", 1e21), `a gt 1e+21`},
		{cmpF(attr("a"), "lt", -0.5), `a lt -0.5`},
		{cmpF(attr("a"), "eq", 7), `a eq 7`},
		{cmpF(attr("a"), "eq", "q\"\\\n\t\x01é"), `a eq "q\"\\\n\t\u0001é"`},
		{cmpF(scim.AttrPath{URN: scim.SchemaEnterpriseUser, Attr: "manager", Sub: "value"}, "eq", "m"),
			`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m"`},
		{and(and(a, b), c), `a eq 1 and b pr and c ne "x"`},
		{and(a, and(b, c)), `a eq 1 and (b pr and c ne "x")`},
		{or(or(a, b), c), `a eq 1 or b pr or c ne "x"`},
		{or(a, or(b, c)), `a eq 1 or (b pr or c ne "x")`},
		{and(or(a, b), c), `(a eq 1 or b pr) and c ne "x"`},
		{and(a, or(b, c)), `a eq 1 and (b pr or c ne "x")`},
		{or(and(a, b), c), `a eq 1 and b pr or c ne "x"`},
		{or(a, and(b, c)), `a eq 1 or b pr and c ne "x"`},
		{scim.NotFilter{Filter: or(a, b)}, `not (a eq 1 or b pr)`},
		{scim.ValuePathFilter{Path: attr("emails"), Filter: and(cmpF(attr("type"), "eq", "work"), cmpF(attr("value"), "co", "@x"))},
			`emails[type eq "work" and value co "@x"]`},
		{&scim.LogicalFilter{Op: "and", Left: &a, Right: &scim.LogicalFilter{Op: "or", Left: b, Right: c}}, `a eq 1 and (b pr or c ne "x")`},
		{scim.PatchPath{Path: attr("emails"), Filter: cmpF(attr("type"), "eq", "work"), ElemSub: "value"}, `emails[type eq "work"].value`},
		{scim.PatchPath{Path: scim.AttrPath{URN: scim.SchemaEnterpriseUser}}, scim.SchemaEnterpriseUser},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(tt.f); got != tt.want {
			t.Errorf("String() = %s, want %s", got, tt.want)
		}
	}
}

func TestEqualityLookups(t *testing.T) {
	t.Parallel()
	emailsWork := scim.ValuePathFilter{Path: attr("emails"), Filter: and(cmpF(attr("type"), "eq", "work"), cmpF(attr("value"), "eq", "a@b"))}
	tests := []struct {
		name string
		f    scim.Filter
		want []scim.Lookup
	}{
		{"ID", cmpF(attr("id"), "eq", "u"), []scim.Lookup{{Attr: "id", Value: "u"}}},
		{"UserNameAnyCase", cmpF(attr("USERNAME"), "EQ", "Ada"), []scim.Lookup{{Attr: "userName", Value: "Ada"}}},
		{"CoreURN", cmpF(scim.AttrPath{URN: scim.SchemaUser, Attr: "externalId"}, "eq", "x"), []scim.Lookup{{Attr: "externalId", Value: "x"}}},
		{"DisplayName", cmpF(attr("displayName"), "eq", "P"), []scim.Lookup{{Attr: "displayName", Value: "P"}}},
		{"EmailsValue", cmpF(sub("emails", "value"), "eq", "a@b"), []scim.Lookup{{Attr: "emails.value", Value: "a@b"}}},
		{"Emails", cmpF(attr("emails"), "eq", "a@b"), []scim.Lookup{{Attr: "emails.value", Value: "a@b"}}},
		{"EmailsWork", emailsWork, []scim.Lookup{{Attr: "emails.value", Value: "a@b"}}},
		{"EmailsValueFilter", scim.ValuePathFilter{Path: attr("emails"), Filter: cmpF(attr("value"), "eq", "a@b")}, []scim.Lookup{{Attr: "emails.value", Value: "a@b"}}},
		{"EmailsOr", scim.ValuePathFilter{Path: attr("emails"), Filter: or(cmpF(attr("type"), "eq", "work"), cmpF(attr("value"), "eq", "a@b"))}, nil},
		{"AndBothSidesSorted", and(cmpF(attr("userName"), "eq", "a"), and(cmpF(attr("active"), "eq", true), cmpF(attr("id"), "eq", "u"))),
			[]scim.Lookup{{Attr: "id", Value: "u"}, {Attr: "userName", Value: "a"}}},
		{"Or", or(cmpF(attr("userName"), "eq", "a"), cmpF(attr("userName"), "eq", "b")), nil},
		{"Not", scim.NotFilter{Filter: cmpF(attr("userName"), "eq", "a")}, nil},
		{"OtherOp", cmpF(attr("userName"), "sw", "a"), nil},
		{"NotIndexed", cmpF(attr("title"), "eq", "a"), nil},
		{"NonString", cmpF(attr("id"), "eq", 5.0), nil},
		{"ExtensionURN", cmpF(scim.AttrPath{URN: scim.SchemaEnterpriseUser, Attr: "userName"}, "eq", "a"), nil},
		{"OtherValuePath", scim.ValuePathFilter{Path: attr("members"), Filter: cmpF(attr("value"), "eq", "m")}, nil},
		{"Pointer", &scim.CompareFilter{Path: attr("id"), Op: "eq", Value: "u"}, []scim.Lookup{{Attr: "id", Value: "u"}}},
		{"Nil", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scim.EqualityLookups(tt.f); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("EqualityLookups(%v) = %v, want %v", tt.f, got, tt.want)
			}
		})
	}
}

func ExampleMatch() {
	user := map[string]any{
		"userName": "Ada.Lovelace@contoso.com",
		"emails":   []any{map[string]any{"type": "work", "value": "ada@contoso.com"}},
	}
	// emails[type eq "work"].value eq "ADA@contoso.com", as httpapi parses it.
	f := scim.ValuePathFilter{
		Path: scim.AttrPath{Attr: "emails"},
		Filter: scim.LogicalFilter{Op: "and",
			Left:  scim.CompareFilter{Path: scim.AttrPath{Attr: "type"}, Op: scim.OpEq, Value: "work"},
			Right: scim.CompareFilter{Path: scim.AttrPath{Attr: "value"}, Op: scim.OpEq, Value: "ADA@contoso.com"},
		},
	}
	fmt.Println(f)
	fmt.Println(scim.Match(f, user))
	fmt.Println(scim.EqualityLookups(f))
	// Output:
	// emails[type eq "work" and value eq "ADA@contoso.com"]
	// true
	// [{emails.value ADA@contoso.com}]
}
