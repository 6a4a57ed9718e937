package httpapi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestHostileRequests_PanicIsAnInternalError: a handler's panic answers 500 "internal error" in
// the route's error format; the panic value and the stack reach the log only.
func TestHostileRequests_PanicIsAnInternalError(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s := New(Config{}, nil, nil, nil, slog.New(slog.NewJSONHandler(&logs, nil)))
	boom := func(echo.Context) error { panic("secret: bbolt page 42 is corrupt") }
	s.echo.GET("/boom", boom)
	s.echo.GET("/scim/v2/Boom", boom)
	s.echo.GET("/aborted", func(echo.Context) error { panic(http.ErrAbortHandler) })

	for _, path := range []string{"/boom", "/scim/v2/Boom"} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusInternalServerError {
			t.Errorf("%s: status = %d, want 500", path, rec.Code)
		}
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: body %q: %v", path, rec.Body, err)
		}
		detail := body["error"]
		if strings.HasPrefix(path, "/scim/") {
			detail = body["detail"]
			if body["status"] != "500" {
				t.Errorf("%s: SCIM status = %v", path, body["status"])
			}
		}
		if detail != "internal error" || strings.Contains(rec.Body.String(), "secret") || strings.Contains(rec.Body.String(), "goroutine") {
			t.Errorf("%s: body = %s, want only \"internal error\"", path, rec.Body)
		}
	}
	if l := logs.String(); !strings.Contains(l, "secret: bbolt page 42 is corrupt") || !strings.Contains(l, "recover_test.go") {
		t.Errorf("the log lacks the panic and its stack:\n%s", l)
	}

	// http.ErrAbortHandler keeps its meaning: the connection is dropped, nothing is logged as
	// a failure of ours.
	func() {
		defer func() {
			if r := recover(); r != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler re-panicked", r)
			}
		}()
		s.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/aborted", nil))
	}()
}

func TestHostileRequests_JSONDepth(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want int
	}{
		{`{}`, 1}, {`{"a":[1,{"b":2}]}`, 3}, {`"[[[["`, 0}, {`{"a":"\"[[[\\"}`, 1},
		{`[[[]]]`, 3}, {`]]]`, 0}, {``, 0},
	} {
		if got := jsonDepth([]byte(tt.in)); got != tt.want {
			t.Errorf("jsonDepth(%s) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
