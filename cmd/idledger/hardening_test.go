package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHostileRequests_HTTPServer checks the limits of the real http.Server: every phase of a
// connection is bounded, and an oversized header block is refused before routing.
func TestHostileRequests_HTTPServer(t *testing.T) {
	m := startMain(t, t.TempDir())
	if m.http.ReadTimeout == 0 || m.http.WriteTimeout == 0 || m.http.IdleTimeout == 0 || m.http.ReadHeaderTimeout == 0 {
		t.Errorf("unbounded timeouts: %+v", m.http)
	}
	if m.http.WriteTimeout <= 60*time.Second {
		t.Errorf("WriteTimeout %v ends before Entra's own 60 s", m.http.WriteTimeout)
	}

	req, _ := http.NewRequest("GET", "http://"+m.Addr()+"/healthz", nil)
	req.Header.Set("X-Padding", strings.Repeat("a", 200<<10))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("200 KiB of headers = %d, want 431", res.StatusCode)
	}
}
