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
	if m.HTTP.ReadTimeout == 0 || m.HTTP.WriteTimeout == 0 || m.HTTP.IdleTimeout == 0 || m.HTTP.ReadHeaderTimeout == 0 {
		t.Errorf("unbounded timeouts: %+v", m.HTTP)
	}
	if m.HTTP.WriteTimeout <= 60*time.Second {
		t.Errorf("WriteTimeout %v ends before Entra's own 60 s", m.HTTP.WriteTimeout)
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
