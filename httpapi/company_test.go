package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/idledger/idledger/eventstore"
)

func streamCount(tb testing.TB, e *testEnv) uint64 {
	tb.Helper()
	n, err := e.Store.Messages(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func provisioning(tb testing.TB, e *testEnv, token string) map[string]any {
	tb.Helper()
	res := e.do(tb, token, "GET", "/api/v1/provisioning", "")
	if res.Status != http.StatusOK {
		tb.Fatalf("GET /api/v1/provisioning: %d %s", res.Status, res.Body)
	}
	return res.JSON(tb)
}

// TestProvisioningLock walks the management shift of issue #4: manual → managed by the first
// SCIM write → local API refused (nothing appended) → deactivated → manual again.
func TestProvisioningLock(t *testing.T) {
	e := newTestEnv(t)
	_, token, key := e.tenantWithKey(t, "Acme")

	if p := provisioning(t, e, key); p["mode"] != "manual" || p["since"] != nil {
		t.Fatalf("new company: %v", p)
	}
	res := e.do(t, key, "POST", "/api/v1/users", `{"email":"ada@acme.example","name":"Ada","admin":true}`)
	if res.Status != http.StatusCreated {
		t.Fatalf("local invite: %d %s", res.Status, res.Body)
	}
	invited := res.JSON(t)
	if invited["managedBy"] != "local" || invited["admin"] != true {
		t.Errorf("invited = %v", invited)
	}
	res = e.do(t, key, "PATCH", "/api/v1/users/"+invited["id"].(string), `{"name":"Ada Lovelace"}`)
	if res.Status != http.StatusOK || res.JSON(t)["name"] != "Ada Lovelace" {
		t.Fatalf("local edit: %d %s", res.Status, res.Body)
	}
	p := provisioning(t, e, key)
	if counts := p["counts"].(map[string]any); counts["users"] != float64(1) || counts["localUsers"] != float64(1) || p["adminPresent"] != true {
		t.Errorf("counts after invite: %v", p)
	}

	// The first SCIM write switches the company to managed.
	res = e.do(t, token, "POST", "/scim/v2/Users", `{"userName":"grace@acme.example","active":true}`)
	if res.Status != http.StatusCreated {
		t.Fatalf("SCIM create: %d %s", res.Status, res.Body)
	}
	scimUser := res.JSON(t)["id"].(string)
	p = provisioning(t, e, key)
	if p["mode"] != "managed" || p["since"] == nil || p["causedByRequest"] == "" || p["lastScimWrite"] == nil {
		t.Fatalf("after SCIM write: %v", p)
	}

	before := streamCount(t, e)
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/api/v1/users", `{"email":"eve@acme.example"}`},
		{"PATCH", "/api/v1/users/" + invited["id"].(string), `{"name":"x"}`},
		{"PATCH", "/api/v1/users/" + scimUser, `{"active":false}`},
		{"DELETE", "/api/v1/users/" + scimUser, ""},
	} {
		res := e.do(t, key, r.method, r.path, r.body)
		if res.Status != http.StatusConflict {
			t.Errorf("%s %s while managed: %d %s, want 409", r.method, r.path, res.Status, res.Body)
			continue
		}
		if m := res.JSON(t); m["code"] == "" || m["error"] == "" {
			t.Errorf("409 body = %s", res.Body)
		}
	}
	if after := streamCount(t, e); after != before {
		t.Errorf("refused local writes appended %d messages", after-before)
	}
	// SCIM keeps working while managed.
	if res := e.do(t, token, "PATCH", "/scim/v2/Users/"+scimUser,
		`{"Operations":[{"op":"Replace","path":"active","value":"False"}]}`); res.Status != http.StatusNoContent {
		t.Errorf("SCIM PATCH while managed: %d %s", res.Status, res.Body)
	}

	res = e.do(t, key, "POST", "/api/v1/provisioning/deactivate", "")
	if res.Status != http.StatusOK || res.JSON(t)["mode"] != "manual" {
		t.Fatalf("deactivate: %d %s", res.Status, res.Body)
	}
	if res := e.do(t, key, "POST", "/api/v1/users", `{"email":"eve@acme.example"}`); res.Status != http.StatusCreated {
		t.Errorf("invite after deactivate: %d %s", res.Status, res.Body)
	}
	if res := e.do(t, key, "DELETE", "/api/v1/users/"+scimUser, ""); res.Status != http.StatusNoContent {
		t.Errorf("local delete after deactivate: %d %s", res.Status, res.Body)
	}
}

// TestProvisioningAdoption: a user invited locally before provisioning is taken over by SCIM,
// by PATCH after Entra's match query and by POST of the same userName; the id stays.
func TestProvisioningAdoption(t *testing.T) {
	e := newTestEnv(t)
	_, token, key := e.tenantWithKey(t, "Acme")
	ada := e.do(t, key, "POST", "/api/v1/users", `{"email":"ada@acme.example","name":"Ada"}`).JSON(t)["id"].(string)
	bob := e.do(t, key, "POST", "/api/v1/users", `{"email":"bob@acme.example","name":"Bob"}`).JSON(t)["id"].(string)

	// Entra's match query finds the local user; its PATCH adopts it.
	list := e.do(t, token, "GET", `/scim/v2/Users?filter=userName+eq+%22ADA@acme.example%22`, "").JSON(t)
	if list["totalResults"] != float64(1) {
		t.Fatalf("match query: %v", list)
	}
	if res := e.do(t, token, "PATCH", "/scim/v2/Users/"+ada,
		`{"Operations":[{"op":"Replace","path":"displayName","value":"Ada Lovelace"}]}`); res.Status != http.StatusNoContent {
		t.Fatalf("adopting PATCH: %d %s", res.Status, res.Body)
	}
	// A POST of a locally invited userName adopts it too, keeping its id.
	res := e.do(t, token, "POST", "/scim/v2/Users", `{"userName":"Bob@acme.example","displayName":"Bob B","active":true}`)
	if res.Status != http.StatusCreated || res.JSON(t)["id"] != bob {
		t.Fatalf("adopting POST: %d %s (want id %s)", res.Status, res.Body, bob)
	}
	if p := provisioning(t, e, key); p["counts"].(map[string]any)["localUsers"] != float64(0) {
		t.Errorf("local users after adoption: %v", p)
	}
	types := eventTypes(t, e)
	if types["user.adopted"] != 2 {
		t.Errorf("user.adopted events = %d, want 2 (all: %v)", types["user.adopted"], types)
	}
}

func eventTypes(tb testing.TB, e *testEnv) map[string]int {
	tb.Helper()
	ctx := context.Background()
	js, err := jetstream.New(rawConn(tb, e.Store))
	if err != nil {
		tb.Fatal(err)
	}
	st, err := js.Stream(ctx, eventstore.StreamName)
	if err != nil {
		tb.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			tb.Fatal(err)
		}
		out[m.Header.Get("Idl-Type")]++
	}
	return out
}

// TestProvisioningLockRace: local invites racing the first SCIM write never land after the
// lock: each either lands before the lock event in the log or is refused with 409.
func TestProvisioningLockRace(t *testing.T) {
	e := newTestEnv(t)
	_, token, key := e.tenantWithKey(t, "Acme")
	const n = 30
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.do(t, key, "POST", "/api/v1/users", fmt.Sprintf(`{"email":"u%d@acme.example"}`, i)).Status
		}()
	}
	if res := e.do(t, token, "POST", "/scim/v2/Users", `{"userName":"entra@acme.example"}`); res.Status != http.StatusCreated {
		t.Fatalf("SCIM create: %d %s", res.Status, res.Body)
	}
	wg.Wait()
	created := 0
	for _, s := range statuses {
		switch s {
		case http.StatusCreated:
			created++
		case http.StatusConflict:
		default:
			t.Errorf("local invite status %d", s)
		}
	}
	// In the log, every user.invited precedes the lock.
	ctx := context.Background()
	js, _ := jetstream.New(rawConn(t, e.Store))
	st, err := js.Stream(ctx, eventstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	lockSeq, invited := uint64(0), 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		switch m.Header.Get("Idl-Type") {
		case "tenant.provisioning_locked":
			lockSeq = seq
		case "user.invited":
			invited++
			if lockSeq != 0 {
				t.Errorf("user.invited at seq %d after the lock at %d", seq, lockSeq)
			}
		}
	}
	if lockSeq == 0 || invited != created {
		t.Errorf("lock at %d, %d invited events, %d created responses", lockSeq, invited, created)
	}
	t.Logf("%d local invites landed before the lock, %d refused", created, n-created)
}
