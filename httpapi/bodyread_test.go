package httpapi_test

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// rawRequest sends req as written over a TCP connection of its own to the test server and
// returns the response; the server may close the connection after it.
func (e *testEnv) rawRequest(tb testing.TB, req string) (*http.Response, []byte) {
	tb.Helper()
	u, err := url.Parse(e.URL)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		tb.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return res, body
}

// TestMalformedChunkedBody: a request body whose chunked encoding is broken is the client's
// mistake: 400 in the route's error form (SCIM invalidSyntax on /scim/v2, {"error","code"} on
// the company API), counted as a 400 in the metrics and not logged as a failure.
func TestMalformedChunkedBody(t *testing.T) {
	logs := &syncBuffer{}
	e := buildTestEnv(t, envOptions{noSync: true, logger: slog.New(slog.NewJSONHandler(logs, nil))})
	tenant, token := e.tenant(t, "Acme")
	key := e.apiKey(t, tenant)

	for _, tt := range []struct {
		name, path, chunks string
	}{
		{"bad_chunk_size", "/scim/v2/Users", "zz\r\n{}\r\n0\r\n\r\n"},
		{"chunk_longer_than_announced", "/scim/v2/Users", "2\r\n{\"userName\":\"a@b\"}\r\n0\r\n\r\n"},
		{"company_api", "/api/v1/users", "zz\r\n{}\r\n0\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cred := token // the SCIM token on /scim/v2, an API key on /api/v1
			if strings.HasPrefix(tt.path, "/api/") {
				cred = key
			}
			res, body := e.rawRequest(t, "POST "+tt.path+" HTTP/1.1\r\nHost: idledger.test\r\n"+
				"Authorization: Bearer "+cred+"\r\nContent-Type: application/scim+json\r\n"+
				"Transfer-Encoding: chunked\r\n\r\n"+tt.chunks)
			if res.StatusCode != http.StatusBadRequest {
				t.Fatalf("status = %d %s, want 400", res.StatusCode, body)
			}
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if strings.HasPrefix(tt.path, "/scim/") {
				if m["status"] != "400" || m["scimType"] != "invalidSyntax" || m["detail"] == "" ||
					!strings.Contains(res.Header.Get("Content-Type"), "application/scim+json") {
					t.Errorf("SCIM error = %s (%s), want status 400, scimType invalidSyntax", body, res.Header.Get("Content-Type"))
				}
				if s, _ := m["schemas"].([]any); len(s) != 1 || s[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
					t.Errorf("schemas = %v", m["schemas"])
				}
			} else if m["code"] != "invalidSyntax" || m["error"] == "" {
				t.Errorf("error = %s, want code invalidSyntax", body)
			}
		})
	}

	families := e.scrape(t)
	if m := metric(families, "idledger_http_requests_total", map[string]string{"route": "/scim/v2/Users", "method": "POST", "status": "400"}); m == nil || m.GetCounter().GetValue() != 2 {
		t.Errorf("POST /scim/v2/Users 400s counted: %v, want 2", m)
	}
	for _, route := range []string{"/scim/v2/Users", "/api/v1/users"} {
		if m := metric(families, "idledger_http_requests_total", map[string]string{"route": route, "status": "500"}); m != nil {
			t.Errorf("%s counted as a 500: %v", route, m)
		}
	}
	if l := logs.String(); strings.Contains(l, `"level":"ERROR"`) {
		t.Errorf("a client's malformed body was logged as a failure:\n%s", l)
	}
}
