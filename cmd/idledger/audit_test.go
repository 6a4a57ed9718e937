package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idledger/idledger/cmd/internal/app"
	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
	"github.com/idledger/idledger/projections"
)

// auditClock is the injected clock of TestAudit_CLI.
type auditClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *auditClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *auditClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// runCLI runs idledger with args and returns stdout and stderr.
func runCLI(tb testing.TB, args ...string) (string, string, error) {
	tb.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func dump(tb testing.TB, path string) []byte {
	tb.Helper()
	db, err := projections.Open(path, projections.Options{Inspect: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var b bytes.Buffer
	if err := db.Dump(&b); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// TestAudit_CLI provisions a company through a running server in two sync cycles, stops it,
// and asks the offline audit commands; then exports the company and imports it into an empty
// data dir, which must end up with the same read models and a log that verifies.
func TestAudit_CLI(t *testing.T) {
	dir := t.TempDir()
	clock := &auditClock{now: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
	m, err := app.Start(t.Context(), app.Config{DataDir: dir, Listen: "127.0.0.1:0", AdminToken: adminToken, NoSync: true, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	waitReady(t, m)
	base := "http://" + m.Addr()
	tenant, token := createTenant(t, base, "Acme")
	c := client{t, base, token}
	ada := c.do("POST", "/scim/v2/Users", `{"userName":"ada@acme.test","displayName":"Ada","active":true}`).json(t)["id"].(string)
	grace := c.do("POST", "/scim/v2/Users", `{"userName":"grace@acme.test","active":true}`).json(t)["id"].(string)
	group := c.do("POST", "/scim/v2/Groups", `{"displayName":"Finance","members":[{"value":"`+ada+`"}]}`).json(t)["id"].(string)
	if res := c.do("POST", "/scim/v2/Users", `{"userName":"ADA@acme.test"}`); res.status != http.StatusConflict {
		t.Fatalf("duplicate: %d", res.status)
	}
	clock.Advance(time.Hour)
	patch := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Ada L."}]}`
	if res := c.do("PATCH", "/scim/v2/Users/"+ada, patch); res.status >= 300 {
		t.Fatalf("patch: %d %s", res.status, res.body)
	}
	afterPatch := clock.Now()
	clock.Advance(time.Minute)
	if res := c.do("DELETE", "/scim/v2/Users/"+grace, ""); res.status != http.StatusNoContent {
		t.Fatalf("delete: %d", res.status)
	}
	head, err := m.Store.Head(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Projector.WaitFor(t.Context(), head); err != nil {
		t.Fatal(err)
	}

	t.Run("RefusedWhileServerRuns", func(t *testing.T) {
		_, _, err := runCLI(t, "audit", "timeline", "--data", dir, "--tenant", tenant, "--user", ada)
		if !errors.Is(err, errServerRunning) {
			t.Errorf("audit timeline on a running server's dir: %v", err)
		}
	})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	t.Run("Timeline", func(t *testing.T) {
		out, _, err := runCLI(t, "audit", "timeline", "--data", dir, "--tenant", tenant, "--user-name", "Grace@acme.test")
		if err != nil {
			t.Fatal(err)
		}
		var tl audit.Timeline
		if err := json.Unmarshal([]byte(out), &tl); err != nil {
			t.Fatalf("%v in %s", err, out)
		}
		if len(tl.Entries) != 2 || tl.Entries[1].Type != domain.EventUserDeleted || tl.Entries[1].Cycle != 2 || tl.Entries[0].Cycle != 1 {
			t.Errorf("grace's timeline: %s", out)
		}
	})
	t.Run("State", func(t *testing.T) {
		out, _, err := runCLI(t, "audit", "state", "--data", dir, "--tenant", tenant, "--user", ada, "--as-of", afterPatch.Add(-time.Hour).Format(time.RFC3339))
		if err != nil {
			t.Fatal(err)
		}
		var snap audit.UserSnapshot
		if err := json.Unmarshal([]byte(out), &snap); err != nil || snap.User.Resource["displayName"] != "Ada" {
			t.Errorf("ada an hour before the patch: %s (%v)", out, err)
		}
		out, _, err = runCLI(t, "audit", "state", "--data", dir, "--tenant", tenant, "--group", group, "--as-of", afterPatch.Format(time.RFC3339))
		if err != nil || !strings.Contains(out, ada) {
			t.Errorf("members: %s (%v)", out, err)
		}
	})
	t.Run("Cycles", func(t *testing.T) {
		out, _, err := runCLI(t, "audit", "cycles", "--data", dir, "--tenant", tenant)
		if err != nil {
			t.Fatal(err)
		}
		var page struct{ Cycles []audit.CycleSummary }
		if err := json.Unmarshal([]byte(out), &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Cycles) != 2 || page.Cycles[0].Requests != 2 || page.Cycles[1].Requests != 4 || page.Cycles[1].Failures["409"] != 1 {
			t.Errorf("cycles: %s", out)
		}
		out, _, err = runCLI(t, "audit", "cycles", "--data", dir, "--tenant", tenant, "--cycle", "1")
		if err != nil || !strings.Contains(out, `"failedRequests"`) || !strings.Contains(out, "uniqueness") {
			t.Errorf("cycle 1: %s (%v)", out, err)
		}
	})

	t.Run("ExportImportRoundTrip", func(t *testing.T) {
		out, errOut, err := runCLI(t, "audit", "export", "--data", dir, "--tenant", tenant)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(errOut, "export [") || !strings.Contains(errOut, "exported ") {
			t.Errorf("stderr has no progress bar and summary: %q", errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if !strings.Contains(lines[0], `"format":"idledger-export/1"`) || !strings.HasPrefix(lines[len(lines)-1], `{"end":`) {
			t.Fatalf("export framing: %s … %s", lines[0], lines[len(lines)-1])
		}
		file := filepath.Join(t.TempDir(), "acme.jsonl")
		if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		fresh := filepath.Join(t.TempDir(), "restored")
		out, _, err = runCLI(t, "audit", "import", "--data", fresh, file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, fmt.Sprintf("imported %d messages of company %s", len(lines)-2, tenant)) {
			t.Errorf("import said %q", out)
		}
		if a, b := dump(t, filepath.Join(dir, "projections.db")), dump(t, filepath.Join(fresh, "projections.db")); !bytes.Equal(a, b) {
			t.Errorf("read models differ after import:\n%s\n---\n%s", a, b)
		}
		out, _, err = runCLI(t, "audit", "verify", "--data", fresh)
		if err != nil {
			t.Errorf("verify of the imported log: %v\n%s", err, out)
		}
		// The restored dir answers like the original.
		a, _, _ := runCLI(t, "audit", "timeline", "--data", dir, "--tenant", tenant, "--group", group)
		b, _, _ := runCLI(t, "audit", "timeline", "--data", fresh, "--tenant", tenant, "--group", group)
		if a != b || a == "" {
			t.Errorf("group timeline differs after import:\n%s\n%s", a, b)
		}
		if _, _, err := runCLI(t, "audit", "import", "--data", fresh, file); err == nil || !strings.Contains(err.Error(), "already holds") {
			t.Errorf("second import: %v", err)
		}
	})
}
