package scim

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/idledger/idledger/domain/scim/scimtest"
)

func TestParseFilter_Match(t *testing.T) {
	t.Parallel()
	for _, tt := range scimtest.FilterCases() {
		t.Run(tt.Filter, func(t *testing.T) {
			f, err := ParseFilter(tt.Filter)
			if tt.Want == nil {
				if err == nil {
					t.Fatalf("parseFilter = %v, want an error", f)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFilter: %v", err)
			}
			for name, want := range tt.Want {
				if got := Match(f, scimtest.Resource(t, name)); got != want {
					t.Errorf("Match(%s, %s) = %v, want %v", f, name, got, want)
				}
			}
		})
	}
}

func TestParseFilter_String(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`externalId eq ada`, `externalId eq "ada"`},
		{`USERNAME Eq "x"`, `USERNAME eq "x"`},
		{`emails[type eq "work"].value eq "a@b"`, `emails[type eq "work" and value eq "a@b"]`},
		{`emails[type eq "work" or primary eq true].value pr`, `emails[(type eq "work" or primary eq true) and value pr]`},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"`, `userName sw "J"`},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.manager eq "m"`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "m"`},
		{`urn:ietf:params:scim:schemas:extension:ENTERPRISE:2.0:User:department eq "r"`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "r"`},
		{`a eq 1 and (b eq 2 and c eq 3)`, `a eq 1 and (b eq 2 and c eq 3)`},
		{`a eq 1 and b eq 2 and c eq 3`, `a eq 1 and b eq 2 and c eq 3`},
		{`(a eq 1 or b eq 2) and c eq 3`, `(a eq 1 or b eq 2) and c eq 3`},
		{`a eq 1 or b eq 2 and c eq 3`, `a eq 1 or b eq 2 and c eq 3`},
		{`((a eq 1))`, `a eq 1`},
		{`not(a pr)`, `not (a pr)`},
		{`a eq -10.0e+01 or a eq 1E21 or a eq 0.5`, `a eq -100 or a eq 1e+21 or a eq 0.5`},
		{`a eq "q\"b\\s\/\n\u00e9\u001f"`, `a eq "q\"b\\s/\né\u001F"`},
		{`a eq NULL`, `a eq null`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			f, err := ParseFilter(tt.in)
			if err != nil {
				t.Fatalf("parseFilter: %v", err)
			}
			if got := fmt.Sprint(f); got != tt.want {
				t.Errorf("String() = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseFilter_RoundTrip(t *testing.T) {
	t.Parallel()
	for _, tt := range scimtest.FilterCases() {
		if tt.Want != nil {
			checkFilterRoundTrip(t, tt.Filter)
		}
	}
}

// checkFilterRoundTrip checks that a filter that parses renders to text that parses to an
// equal tree.
func checkFilterRoundTrip(t *testing.T, raw string) {
	t.Helper()
	f, err := ParseFilter(raw)
	if err != nil {
		return
	}
	text := fmt.Sprint(f)
	g, err := ParseFilter(text)
	if err != nil {
		t.Fatalf("ParseFilter(%q) = %s, which does not parse: %v", raw, text, err)
	}
	if !reflect.DeepEqual(f, g) {
		t.Fatalf("ParseFilter(%q) = %#v\nparseFilter(%q) = %#v", raw, f, text, g)
	}
}

var invalidFilters = []string{
	``,
	`   `,
	`userName`,
	`userName eq`,
	`userName xx "a"`,
	`userName eq "a`,
	`userName eq "a\x"`,
	`userName eq "a" and`,
	`and`,
	`(userName eq "a"`,
	`userName eq "a")`,
	`not userName eq "a"`,
	`emails[type eq "work"`,
	`emails]`,
	`[type eq "work"]`,
	`emails[]`,
	`emails[type eq "work"][value eq "x"]`,
	`emails[type eq "work"] eq "x"`,
	`emails[type eq "work"].value`,
	`emails[type eq "work"].1x eq "a"`,
	`a[b[c eq 1]]`,
	`name.givenName[value eq "a"]`,
	`active gt true`,
	`userName co null`,
	`foo:bar eq 1`,
	`urn:ietf:params:scim:schemas:core:2.0:User pr`,
	`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User pr`,
	`a eq 1e999`,
	`userName eq "a` + "\xff" + `"`,
	"userName\teq \"a\"",
	strings.Repeat("(", 100) + `a eq 1` + strings.Repeat(")", 100),
	`a eq "` + strings.Repeat("x", maxFilterLen) + `"`,
	`emails[type eq "work"] and idlvp0 pr`,
}

func TestParseFilter_Invalid(t *testing.T) {
	t.Parallel()
	for _, raw := range invalidFilters {
		t.Run(raw, func(t *testing.T) {
			f, err := ParseFilter(raw)
			if raw == `emails[type eq "work"] and idlvp0 pr` {
				// A user's attribute that looks like the placeholder is just an attribute.
				if err != nil || fmt.Sprint(f) != `emails[type eq "work"] and idlvp0 pr` {
					t.Fatalf("parseFilter = %v, %v", f, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidFilter) {
				t.Fatalf("parseFilter = %v, %v; want ErrInvalidFilter", f, err)
			}
			if errorDetail(err) == "" {
				t.Errorf("error %v has no detail", err)
			}
		})
	}
}

func TestParseFilter_Depth(t *testing.T) {
	t.Parallel()
	ok := strings.Repeat("(", maxFilterDepth) + `a eq 1` + strings.Repeat(")", maxFilterDepth)
	if _, err := ParseFilter(ok); err != nil {
		t.Errorf("depth %d: %v", maxFilterDepth, err)
	}
	deep := "(" + ok + ")"
	if _, err := ParseFilter(deep); !errors.Is(err, ErrInvalidFilter) {
		t.Errorf("depth %d: err = %v, want ErrInvalidFilter", maxFilterDepth+1, err)
	}
}

func TestParseFilter_Terms(t *testing.T) {
	t.Parallel()
	orChain := func(n int) string {
		terms := make([]string, n)
		for i := range terms {
			terms[i] = fmt.Sprintf(`userName eq "u%d@x"`, i) // 333 of them fit in 8 KB, as in the issue
		}
		return strings.Join(terms, " or ")
	}
	// Comparisons inside brackets count, and so does the one after them.
	bracketed := func(n int) string {
		return `emails[` + strings.Repeat(`type eq "work" or `, n-2) + `type eq "home"].value eq "a@b"`
	}
	for _, tt := range []struct {
		name   string
		filter string
		ok     bool
	}{
		{"Entra's match query", `userName eq "ada@contoso.com"`, true},
		{"Entra's and", `userName eq "a" and externalId eq "b"`, true},
		{"at the limit", orChain(maxFilterTerms), true},
		{"one over", orChain(maxFilterTerms + 1), false},
		{"the issue's 333", orChain(333), false},
		{"brackets at the limit", bracketed(maxFilterTerms), true},
		{"brackets one over", bracketed(maxFilterTerms + 1), false},
		{"pr counts", orChain(maxFilterTerms) + " or title pr", false},
		{"not counts what it holds", "not (" + orChain(maxFilterTerms) + ") and title pr", false},
	} {
		f, err := ParseFilter(tt.filter)
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.ok && countTerms(f) > maxFilterTerms:
			t.Errorf("%s: %d comparisons accepted", tt.name, countTerms(f))
		case !tt.ok && !errors.Is(err, ErrInvalidFilter):
			t.Errorf("%s: err = %v, want ErrInvalidFilter", tt.name, err)
		case !tt.ok && !strings.Contains(errorDetail(err), "more than 50 comparisons"):
			t.Errorf("%s: detail %q does not name the limit", tt.name, errorDetail(err))
		}
	}
	// A PATCH path's value filter has the same limit, as ErrInvalidPath.
	if _, err := ParsePatchPath(`emails[` + orChain(maxFilterTerms+1) + `]`); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("PATCH path over the limit: err = %v, want ErrInvalidPath", err)
	}
	if _, err := ParsePatchPath(`emails[` + strings.Repeat(`type eq "x" or `, maxFilterTerms-1) + `type eq "y"]`); err != nil {
		t.Errorf("PATCH path at the limit: %v", err)
	}
}

func TestEqualityLookups_Parsed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		filter string
		want   []Lookup
	}{
		{`userName eq "Ada"`, []Lookup{{Attr: "userName", Value: "Ada"}}},
		{`externalId eq ada`, []Lookup{{Attr: "externalId", Value: "ada"}}},
		{`emails[type eq "work"].value eq "a@b"`, []Lookup{{Attr: "emails.value", Value: "a@b"}}},
		{`emails[value eq "a@b"]`, []Lookup{{Attr: "emails.value", Value: "a@b"}}},
		{`urn:ietf:params:scim:schemas:core:2.0:User:emails.value eq "a@b"`, []Lookup{{Attr: "emails.value", Value: "a@b"}}},
		{`id eq "g" and members eq "u"`, []Lookup{{Attr: "id", Value: "g"}}},
		{`displayName eq "P" and id eq "g"`, []Lookup{{Attr: "id", Value: "g"}, {Attr: "displayName", Value: "P"}}},
		{`userName eq "a" or userName eq "b"`, nil},
		{`not (userName eq "a")`, nil},
		{`userName sw "a"`, nil},
		{`active eq true`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			f, err := ParseFilter(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if got := EqualityLookups(f); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("EqualityLookups = %v, want %v", got, tt.want)
			}
		})
	}
}

var patchPathTests = []struct {
	raw     string
	path    AttrPath
	filter  string // String() of the value filter, "" for none
	elemSub string
}{
	{raw: `userName`, path: AttrPath{Attr: "userName"}},
	{raw: ` active `, path: AttrPath{Attr: "active"}},
	{raw: `name.givenName`, path: AttrPath{Attr: "name", Sub: "givenName"}},
	{raw: `name.Formatted`, path: AttrPath{Attr: "name", Sub: "Formatted"}},
	{raw: `urn:ietf:params:scim:schemas:core:2.0:User:name.familyName`, path: AttrPath{Attr: "name", Sub: "familyName"}},
	{raw: `emails[type eq "work"].value`, path: AttrPath{Attr: "emails"}, filter: `type eq "work"`, elemSub: "value"},
	{raw: `emails[type eq "work"].Value`, path: AttrPath{Attr: "emails"}, filter: `type eq "work"`, elemSub: "Value"},
	{raw: `phoneNumbers[type eq "mobile"].value`, path: AttrPath{Attr: "phoneNumbers"}, filter: `type eq "mobile"`, elemSub: "value"},
	{raw: `addresses[type eq "work"].streetAddress`, path: AttrPath{Attr: "addresses"}, filter: `type eq "work"`, elemSub: "streetAddress"},
	{raw: `roles[primary eq "True"].value`, path: AttrPath{Attr: "roles"}, filter: `primary eq "True"`, elemSub: "value"},
	{raw: `emails[type eq "work" and primary eq true]`, path: AttrPath{Attr: "emails"}, filter: `type eq "work" and primary eq true`},
	{raw: `emails[type eq work]`, path: AttrPath{Attr: "emails"}, filter: `type eq "work"`},
	{raw: `members`, path: AttrPath{Attr: "members"}},
	{raw: `members[value eq "8a7b6c5d-2222-4e3f-9a0b-abcdefabcdef"]`, path: AttrPath{Attr: "members"}, filter: `value eq "8a7b6c5d-2222-4e3f-9a0b-abcdefabcdef"`},
	{raw: `members[value eq "a"].display`, path: AttrPath{Attr: "members"}, filter: `value eq "a"`, elemSub: "display"},
	{raw: `manager`, path: AttrPath{Attr: "manager"}},
	{raw: `manager[value eq "5e0c1a2b-7d34-4f0e-9a61-2b8c3d4e5f60"]`, path: AttrPath{Attr: "manager"}, filter: `value eq "5e0c1a2b-7d34-4f0e-9a61-2b8c3d4e5f60"`},
	{raw: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`, path: AttrPath{URN: SchemaEnterpriseUser, Attr: "department"}},
	{raw: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`, path: AttrPath{URN: SchemaEnterpriseUser, Attr: "employeeNumber"}},
	{raw: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`, path: AttrPath{URN: SchemaEnterpriseUser, Attr: "manager"}},
	{raw: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`, path: AttrPath{URN: SchemaEnterpriseUser, Attr: "manager", Sub: "value"}},
	{raw: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.manager`, path: AttrPath{URN: SchemaEnterpriseUser, Attr: "manager"}},
	{raw: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.manager.value`, path: AttrPath{URN: SchemaEnterpriseUser, Attr: "manager", Sub: "value"}},
	{raw: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[value eq "m"]`, path: AttrPath{URN: SchemaEnterpriseUser, Attr: "manager"}, filter: `value eq "m"`},
	{raw: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`, path: AttrPath{URN: SchemaEnterpriseUser}},
	{raw: `urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:costCode`, path: AttrPath{URN: "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User", Attr: "costCode"}},
	{raw: `urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User`, path: AttrPath{URN: "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"}},
	{raw: `$ref`, path: AttrPath{Attr: "$ref"}},
}

func TestParsePatchPath(t *testing.T) {
	t.Parallel()
	for _, tt := range patchPathTests {
		t.Run(tt.raw, func(t *testing.T) {
			p, err := ParsePatchPath(tt.raw)
			if err != nil {
				t.Fatalf("parsePatchPath: %v", err)
			}
			if p.Path != tt.path {
				t.Errorf("Path = %#v, want %#v", p.Path, tt.path)
			}
			if got := filterString(p.Filter); got != tt.filter {
				t.Errorf("Filter = %s, want %s", got, tt.filter)
			}
			if p.ElemSub != tt.elemSub {
				t.Errorf("ElemSub = %q, want %q", p.ElemSub, tt.elemSub)
			}
			checkPatchPathRoundTrip(t, tt.raw)
		})
	}
}

func filterString(f Filter) string {
	if f == nil {
		return ""
	}
	return fmt.Sprint(f)
}

func checkPatchPathRoundTrip(t *testing.T, raw string) {
	t.Helper()
	p, err := ParsePatchPath(raw)
	if err != nil {
		return
	}
	q, err := ParsePatchPath(p.String())
	if err != nil {
		t.Fatalf("ParsePatchPath(%q) = %s, which does not parse: %v", raw, p, err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("ParsePatchPath(%q) = %#v\nparsePatchPath(%q) = %#v", raw, p, p.String(), q)
	}
}

var invalidPatchPaths = []string{
	``,
	` `,
	`name.givenName.x`,
	`name givenName`,
	`"userName"`,
	`emails[type eq "work"`,
	`emails[type eq "work"]value`,
	`emails[type eq "work"].value.x`,
	`emails[type eq "work"].value[x eq 1]`,
	`emails[]`,
	`emails[type xx "work"]`,
	`[type eq "work"]`,
	`a[b[c eq 1]]`,
	`name.givenName[value eq "a"]`,
	`urn:ietf:params:scim:schemas:core:2.0:User`,
	`foo:bar`,
	`1abc`,
	`user-` + "\xff",
	`emails[type eq "work"].value eq "x"`,
}

func TestParsePatchPath_Invalid(t *testing.T) {
	t.Parallel()
	for _, raw := range invalidPatchPaths {
		t.Run(raw, func(t *testing.T) {
			p, err := ParsePatchPath(raw)
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("parsePatchPath = %v, %v; want ErrInvalidPath", p, err)
			}
		})
	}
}

func TestParsePatchRequest(t *testing.T) {
	t.Parallel()
	type op struct {
		Op, Path string
		Value    any
	}
	tests := []struct {
		name    string
		body    string
		want    []op
		wantErr error
	}{
		{name: "DefaultDialect", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[
			{"op":"Replace","path":"emails[type eq \"work\"].value","value":"grace.h@contoso.com"},
			{"op":"Replace","path":"name.familyName","value":"Hopper-Murray"},
			{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Research"}]}`,
			want: []op{
				{"replace", `emails[type eq "work"].value`, "grace.h@contoso.com"},
				{"replace", "name.familyName", "Hopper-Murray"},
				{"add", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "Research"},
			}},
		{name: "FlagDialect", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"replace","value":{"userName":"G.Hopper@contoso.com","name.familyName":"Hopper-Murray"}}]}`,
			want: []op{{"replace", "", map[string]any{"userName": "G.Hopper@contoso.com", "name.familyName": "Hopper-Murray"}}}},
		{name: "Disable", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
			want: []op{{"replace", "active", "False"}}},
		{name: "RemoveMembersDefault", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"Remove","path":"members","value":[{"value":"8a7b6c5d-2222-4e3f-9a0b-abcdefabcdef"}]}]}`,
			want: []op{{"remove", "members", []any{map[string]any{"value": "8a7b6c5d-2222-4e3f-9a0b-abcdefabcdef"}}}}},
		{name: "RemoveMemberFlag", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations":[{"op":"remove","path":"members[value eq \"8a7b6c5d-2222-4e3f-9a0b-abcdefabcdef\"]"}]}`,
			want: []op{{"remove", `members[value eq "8a7b6c5d-2222-4e3f-9a0b-abcdefabcdef"]`, nil}}},
		{name: "ManagerLegacyAndNull", body: `{"Operations":[
			{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.manager","value":"m"},
			{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":null}]}`,
			want: []op{
				{"add", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "m"},
				{"replace", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", nil},
			}},
		{name: "KeysInAnyCaseUnknownMembersIgnored", body: `{"id":"x","SCHEMAS":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"operations":[{"OP":"REPLACE","Path":"displayName","Value":"P","name":"ignored"}]}`,
			want: []op{{"replace", "displayName", "P"}}},
		{name: "EmptyPathIsNoPath", body: `{"Operations":[{"op":"add","path":"","value":{"title":"t"}}]}`,
			want: []op{{"add", "", map[string]any{"title": "t"}}}},
		{name: "SchemasWithoutPatchOp", body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"Operations":[{"op":"add","path":"title","value":"t"}]}`,
			wantErr: ErrInvalidSyntax},
		{name: "NoOperations", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}`, wantErr: ErrInvalidSyntax},
		{name: "EmptyOperations", body: `{"Operations":[]}`, wantErr: ErrInvalidSyntax},
		{name: "OperationsNotArray", body: `{"Operations":{"op":"add"}}`, wantErr: ErrInvalidSyntax},
		{name: "OperationNotObject", body: `{"Operations":["add"]}`, wantErr: ErrInvalidSyntax},
		{name: "UnknownOp", body: `{"Operations":[{"op":"Move","path":"title"}]}`, wantErr: ErrInvalidSyntax},
		{name: "MissingOp", body: `{"Operations":[{"path":"title","value":"t"}]}`, wantErr: ErrInvalidSyntax},
		{name: "BadPath", body: `{"Operations":[{"op":"add","path":"emails[type eq","value":"t"}]}`, wantErr: ErrInvalidPath},
		{name: "PathNotString", body: `{"Operations":[{"op":"add","path":5,"value":"t"}]}`, wantErr: ErrInvalidPath},
		{name: "RemoveWithoutPath", body: `{"Operations":[{"op":"Remove","value":{"title":"t"}}]}`, wantErr: ErrNoTarget},
		{name: "TooMany", body: `{"Operations":[` + strings.Repeat(`{"op":"add","path":"title","value":"t"},`, MaxPatchOps) + `{"op":"add","path":"title","value":"t"}]}`,
			wantErr: ErrTooMany},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body map[string]any
			if err := json.Unmarshal([]byte(tt.body), &body); err != nil {
				t.Fatal(err)
			}
			ops, err := ParsePatchRequest(body)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("parsePatchRequest = %v, %v; want %v", ops, err, tt.wantErr)
				}
				if errorDetail(err) == "" {
					t.Errorf("error %v has no detail", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parsePatchRequest: %v", err)
			}
			got := make([]op, len(ops))
			for i, o := range ops {
				got[i] = op{Op: o.Op, Value: o.Value}
				if o.Path != nil {
					got[i].Path = o.Path.String()
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parsePatchRequest =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

func TestParsePatchRequest_UnknownOpDetail(t *testing.T) {
	t.Parallel()
	_, err := ParsePatchRequest(map[string]any{"Operations": []any{map[string]any{"op": "Move"}}})
	if d := errorDetail(err); !strings.Contains(d, `"Move"`) {
		t.Errorf("detail = %q, want it to name the op", d)
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, tt := range scimtest.FilterCases() {
		f.Add(tt.Filter)
	}
	for _, raw := range invalidFilters {
		if len(raw) < 1000 {
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw string) {
		checkFilterOracle(t, raw)
		fl, err := ParseFilter(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalidFilter) {
				t.Fatalf("ParseFilter(%q): error %v does not wrap ErrInvalidFilter", raw, err)
			}
			return
		}
		for _, name := range []string{"ada", "group"} {
			Match(fl, scimtest.Resource(t, name))
		}
		EqualityLookups(fl)
		if len(raw) > maxFilterLen/2 {
			return // String() may be longer than the input (quoted bare words)
		}
		checkFilterRoundTrip(t, raw)
	})
}

func FuzzParsePatchPath(f *testing.F) {
	for _, tt := range patchPathTests {
		f.Add(tt.raw)
	}
	for _, raw := range invalidPatchPaths {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		checkPatchPathOracle(t, raw)
		if _, err := ParsePatchPath(raw); err != nil {
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("ParsePatchPath(%q): error %v does not wrap ErrInvalidPath", raw, err)
			}
			return
		}
		if len(raw) > maxFilterLen/2 {
			return
		}
		checkPatchPathRoundTrip(t, raw)
	})
}
