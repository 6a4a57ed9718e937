package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
	"github.com/idledger/idledger/httpapi"
)

var _ httpapi.Auditor = (*audit.Service)(nil)

// newAuditEnv is newTestEnv with the audit wired as cmd wires it: cycles, request records and
// the audit routes, on the test clock.
func newAuditEnv(tb testing.TB) *testEnv {
	tb.Helper()
	return buildTestEnv(tb, envOptions{noSync: true, configure: func(_ testing.TB, _ context.Context, cfg *httpapi.Config, e *testEnv) {
		cfg.Audit = &audit.Service{Log: e.Store, History: e.Store, Requests: e.Store, Now: e.Clock.Now, NewID: e.Service.NewID}
	}})
}

const entraUA = "Microsoft.Identity.ProvisioningService/1.0 (test)"

// entra sends a SCIM request as Entra would (its User-Agent, a request id) and returns the
// status and decoded body.
func entra(tb testing.TB, e *testEnv, token, method, path, requestID string, body any) (int, map[string]any) {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", entraUA)
	if requestID != "" {
		req.Header.Set("X-Request-Id", requestID)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var m map[string]any
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &m)
	}
	return res.StatusCode, m
}

// get reads a company API route and decodes the JSON answer.
func get(tb testing.TB, e *testEnv, token, path string, wantStatus int, v any) {
	tb.Helper()
	res := e.do(tb, token, "GET", path, "")
	if res.Status != wantStatus {
		tb.Fatalf("GET %s = %d %s, want %d", path, res.Status, res.Body, wantStatus)
	}
	if v != nil {
		if err := json.Unmarshal(res.Body, v); err != nil {
			tb.Fatalf("GET %s: %v in %s", path, err, res.Body)
		}
	}
}

// must returns a checker of a (status, body) pair that wants the given status.
func must(tb testing.TB, want int, what string) func(int, map[string]any) map[string]any {
	return func(status int, body map[string]any) map[string]any {
		tb.Helper()
		if status != want {
			tb.Fatalf("%s = %d, want %d: %v", what, status, want, body)
		}
		return body
	}
}

// TestAudit_EntraCycles drives three Entra-like sync cycles with quiet gaps between them (on
// the injected clock), with failures, and checks timelines, as-of answers and the cycle list.
func TestAudit_EntraCycles(t *testing.T) {
	e := newAuditEnv(t)
	_, token, key := e.tenantWithKey(t, "Acme")
	t0 := e.Clock.Now()
	user := func(name string) map[string]any {
		return map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
			"userName": name, "displayName": strings.Split(name, "@")[0], "active": true}
	}
	call := func(method, path, requestID string, body any, want int) map[string]any {
		t.Helper()
		return must(t, want, method+" "+path)(entra(t, e, token, method, path, requestID, body))
	}
	patch := func(ops ...map[string]any) map[string]any {
		return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops}
	}

	// Cycle 1: match queries, two creates, a group filled by PATCH; a duplicate and a PATCH of
	// an unknown user fail. 8 requests, 2 failures.
	filter := "/scim/v2/Users?filter=" + url.QueryEscape(`userName eq "alice@acme.test"`)
	call("GET", filter, "c1-1", nil, 200)
	alice := call("POST", "/scim/v2/Users", "c1-2", user("alice@acme.test"), 201)["id"].(string)
	bob := call("POST", "/scim/v2/Users", "c1-3", user("bob@acme.test"), 201)["id"].(string)
	call("POST", "/scim/v2/Users", "c1-4", user("ALICE@acme.test"), 409)
	group := call("POST", "/scim/v2/Groups", "c1-5",
		map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Finance"}, 201)["id"].(string)
	call("PATCH", "/scim/v2/Groups/"+group, "c1-6",
		patch(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": alice}}}), 204)
	call("PATCH", "/scim/v2/Users/"+uuid.NewString(), "c1-7",
		patch(map[string]any{"op": "replace", "path": "displayName", "value": "x"}), 404)
	call("GET", "/scim/v2/Users/"+alice, "c1-8", nil, 200)
	inCycle1 := e.Clock.Now()

	// Cycle 2, 40 minutes later: two PATCHes of alice a minute apart, alice leaves Finance, a
	// malformed request fails. 5 requests, 1 failure.
	e.Clock.Advance(40 * time.Minute)
	call("PATCH", "/scim/v2/Users/"+alice, "c2-1",
		patch(map[string]any{"op": "replace", "path": "displayName", "value": "Alice One"}), 204)
	_, between := entra(t, e, token, "GET", "/scim/v2/Users/"+alice, "c2-2", nil) // the state then
	betweenAt := e.Clock.Now().Add(30 * time.Second)
	e.Clock.Advance(time.Minute)
	call("PATCH", "/scim/v2/Users/"+alice, "c2-3",
		patch(map[string]any{"op": "replace", "path": "displayName", "value": "Alice Two"}), 204)
	call("PATCH", "/scim/v2/Groups/"+group, "c2-4",
		patch(map[string]any{"op": "remove", "path": fmt.Sprintf("members[value eq %q]", alice)}), 204)
	call("POST", "/scim/v2/Users", "c2-5", map[string]any{"displayName": "no userName"}, 400)

	// Cycle 3, after another gap: bob is deleted. 1 request.
	e.Clock.Advance(45 * time.Minute)
	call("DELETE", "/scim/v2/Users/"+bob, "c3-1", nil, 204)

	t.Run("AsOfBetweenPatches", func(t *testing.T) {
		var snap audit.UserSnapshot
		get(t, e, key, "/api/v1/audit/users/"+alice+"/state?asOf="+betweenAt.Format(time.RFC3339Nano), 200, &snap)
		meta := between["meta"].(map[string]any)
		if got := snap.User.Resource["displayName"]; got != "Alice One" || got != between["displayName"] {
			t.Errorf("displayName as of %s = %v, the state then was %v", betweenAt, got, between["displayName"])
		}
		// The SCIM tag of a user in groups adds a fingerprint of them: W/"<version>-<groups>".
		if v, tag := fmt.Sprintf(`W/"%d`, snap.User.Version), meta["version"].(string); tag != v+`"` && !strings.HasPrefix(tag, v+"-") {
			t.Errorf("version as of = %s\", the state then was %v", v, meta["version"])
		}
		for _, k := range []string{"userName", "active"} {
			if snap.User.Resource[k] != between[k] {
				t.Errorf("%s as of = %v, then %v", k, snap.User.Resource[k], between[k])
			}
		}
		get(t, e, key, "/api/v1/audit/users/"+alice+"/state", 200, &snap)
		if snap.User.Resource["displayName"] != "Alice Two" {
			t.Errorf("now: displayName = %v", snap.User.Resource["displayName"])
		}
		get(t, e, key, "/api/v1/audit/users/"+alice+"/state?asOf="+t0.Add(-time.Hour).Format(time.RFC3339), 404, nil)
		get(t, e, key, "/api/v1/audit/users/"+bob+"/state", 200, &snap)
		if !snap.User.Deleted || snap.User.UserName() != "bob@acme.test" {
			t.Errorf("deleted bob now: %+v", snap.User)
		}
	})

	t.Run("MemberAddedThenRemovedWithCycles", func(t *testing.T) {
		var tl audit.Timeline
		get(t, e, key, "/api/v1/audit/groups/"+group, 200, &tl)
		var got []string
		for _, en := range tl.Entries {
			got = append(got, fmt.Sprintf("%s cycle %d added %v removed %v", en.Type, en.Cycle, en.MembersAdded, en.MembersRemoved))
		}
		want := []string{
			"group.created cycle 1 added [] removed []",
			fmt.Sprintf("group.members_added cycle 1 added [%s] removed []", alice),
			fmt.Sprintf("group.members_removed cycle 2 added [] removed [%s]", alice),
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("group timeline:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if en := tl.Entries[1]; en.RequestID != "c1-6" || en.UserAgent != entraUA || en.Source != "127.0.0.1" || !strings.HasPrefix(en.Actor, "scim:") {
			t.Errorf("members_added entry: %+v", en)
		}
		var m audit.MembersSnapshot
		get(t, e, key, "/api/v1/audit/groups/"+group+"/members?asOf="+inCycle1.Format(time.RFC3339), 200, &m)
		if m.Count != 1 || m.Members[0].Value != alice || m.DisplayName != "Finance" {
			t.Errorf("members in cycle 1: %+v", m)
		}
		get(t, e, key, "/api/v1/audit/groups/"+group+"/members", 200, &m)
		if m.Count != 0 || len(m.Members) != 0 {
			t.Errorf("members now: %+v", m)
		}
	})

	t.Run("CycleList", func(t *testing.T) {
		var page struct {
			Cycles []audit.CycleSummary `json:"cycles"`
		}
		get(t, e, key, "/api/v1/provisioning/cycles", 200, &page)
		type row struct {
			n, requests int
			changes     map[string]int
			failures    map[string]int
		}
		want := []row{
			{3, 1, map[string]int{"user.deleted": 1}, map[string]int{}},
			{2, 5, map[string]int{"user.attributes_changed": 2, "group.members_removed": 1}, map[string]int{"400": 1}},
			{1, 8, map[string]int{"tenant.provisioning_locked": 1, "user.created": 2, "group.created": 1, "group.members_added": 1},
				map[string]int{"404": 1, "409": 1}},
		}
		if len(page.Cycles) != len(want) {
			t.Fatalf("%d cycles, want %d: %+v", len(page.Cycles), len(want), page.Cycles)
		}
		for i, w := range want {
			c := page.Cycles[i]
			if c.Number != w.n || c.Requests != w.requests || c.RequestsExpired ||
				fmt.Sprint(c.Changes) != fmt.Sprint(w.changes) || fmt.Sprint(c.Failures) != fmt.Sprint(w.failures) {
				t.Errorf("cycle %d = %+v\nwant %+v", i, c, w)
			}
		}
		if c := page.Cycles[1]; !c.Start.Equal(t0.Add(40*time.Minute)) || !c.End.Equal(t0.Add(41*time.Minute)) {
			t.Errorf("cycle 2 runs %s – %s", c.Start, c.End)
		}
		var older struct {
			Cycles     []audit.CycleSummary `json:"cycles"`
			NextBefore int                  `json:"nextBefore"`
		}
		get(t, e, key, "/api/v1/provisioning/cycles?limit=1&before=3", 200, &older)
		if len(older.Cycles) != 1 || older.Cycles[0].Number != 2 || older.NextBefore != 2 {
			t.Errorf("page before 3: %+v", older)
		}
		var status map[string]any
		get(t, e, key, "/api/v1/provisioning", 200, &status)
		if last, _ := status["lastSyncCycle"].(map[string]any); last == nil || last["number"] != float64(3) {
			t.Errorf("lastSyncCycle = %v", status["lastSyncCycle"])
		}
	})

	t.Run("CycleDetail", func(t *testing.T) {
		var d audit.CycleDetail
		get(t, e, key, "/api/v1/provisioning/cycles/1", 200, &d)
		var types []string
		for _, en := range d.Events {
			types = append(types, en.Type)
			if en.Cycle != 1 {
				t.Errorf("event %s in cycle 1 says cycle %d", en.Type, en.Cycle)
			}
		}
		if got := strings.Join(types, ","); got != "tenant.provisioning_locked,user.created,user.created,group.created,group.members_added" {
			t.Errorf("cycle 1 events = %s", got)
		}
		var failed []string
		for _, r := range d.FailedRequests {
			failed = append(failed, fmt.Sprintf("%s %s %d %s %s", r.RequestID, r.Method, r.Status, r.SCIMType, r.UserAgent))
		}
		want := []string{"c1-4 POST 409 uniqueness " + entraUA, "c1-7 PATCH 404  " + entraUA}
		if strings.Join(failed, "\n") != strings.Join(want, "\n") {
			t.Errorf("failed requests:\n%s\nwant\n%s", strings.Join(failed, "\n"), strings.Join(want, "\n"))
		}
		if d := d.FailedRequests[0].Detail; !strings.Contains(d, "ALICE@acme.test") {
			t.Errorf("409 detail = %q", d)
		}
		var first, rest audit.CycleDetail
		get(t, e, key, "/api/v1/provisioning/cycles/1?limit=2", 200, &first)
		get(t, e, key, fmt.Sprintf("/api/v1/provisioning/cycles/1?after=%d", first.Next), 200, &rest)
		if len(first.Events) != 2 || first.Next != first.Events[1].Seq || len(rest.Events) != 3 || rest.Next != 0 ||
			rest.Events[1].Type != "group.created" || len(rest.FailedRequests) != 2 {
			t.Errorf("paged cycle 1: %d events next %d, then %d events next %d", len(first.Events), first.Next, len(rest.Events), rest.Next)
		}
		get(t, e, key, "/api/v1/provisioning/cycles/9", 404, nil)
		get(t, e, key, "/api/v1/provisioning/cycles/x", 404, nil)
	})

	t.Run("DeletedUserTimelineByIDAndName", func(t *testing.T) {
		var byID, byName audit.Timeline
		get(t, e, key, "/api/v1/audit/users/"+bob, 200, &byID)
		get(t, e, key, "/api/v1/audit/users?userName="+url.QueryEscape("BOB@acme.test"), 200, &byName)
		if len(byID.Entries) != 2 || byID.Entries[1].Type != domain.EventUserDeleted || byID.Entries[1].Cycle != 3 {
			t.Fatalf("bob's timeline: %+v", byID.Entries)
		}
		if len(byName.Holders) != 1 || byName.Holders[0].ID != bob || byName.Holders[0].Released == 0 ||
			fmt.Sprint(byName.Entries) != fmt.Sprint(byID.Entries) {
			t.Errorf("by name: holders %+v, %d entries", byName.Holders, len(byName.Entries))
		}
		created := byID.Entries[0]
		if created.RequestID != "c1-3" || created.UserAgent != entraUA || len(created.Changes) == 0 {
			t.Errorf("created entry: %+v", created)
		}
		var tl audit.Timeline
		get(t, e, key, "/api/v1/audit/users/"+alice+"?limit=2", 200, &tl)
		if len(tl.Entries) != 2 || tl.Next == 0 {
			t.Fatalf("first page: %+v", tl)
		}
		next := tl.Next
		tl = audit.Timeline{}
		get(t, e, key, fmt.Sprintf("/api/v1/audit/users/%s?after=%d", alice, next), 200, &tl)
		if len(tl.Entries) != 1 || tl.Entries[0].Changes[0].New != "Alice Two" || tl.Next != 0 {
			t.Errorf("second page: %+v", tl)
		}
		get(t, e, key, "/api/v1/audit/groups?displayName=finance", 200, &tl)
		if len(tl.Entries) != 3 {
			t.Errorf("group by name: %d entries", len(tl.Entries))
		}
	})

	t.Run("Errors", func(t *testing.T) {
		get(t, e, key, "/api/v1/audit/users/"+alice+"/state?asOf=yesterday", 400, nil)
		get(t, e, key, "/api/v1/audit/users/"+uuid.NewString(), 404, nil)
		get(t, e, key, "/api/v1/audit/users/a.b.>", 404, nil)
		get(t, e, key, "/api/v1/audit/users?userName=nobody", 404, nil)
		get(t, e, key, "/api/v1/audit/users", 400, nil)
		get(t, e, key, "/api/v1/audit/users/"+alice+"?limit=x", 400, nil)
		get(t, e, "wrong", "/api/v1/audit/users/"+alice, 401, nil)
		_, _, other := e.tenantWithKey(t, "Globex")
		get(t, e, other, "/api/v1/audit/users/"+alice, 404, nil)
		var page struct {
			Cycles []audit.CycleSummary `json:"cycles"`
		}
		get(t, e, other, "/api/v1/provisioning/cycles", 200, &page)
		if page.Cycles == nil || len(page.Cycles) != 0 {
			t.Errorf("cycles of a company without provisioning: %+v", page.Cycles)
		}
	})
}

// BenchmarkAudit_SCIMRequestOverhead measures what cycle tracking and request recording add to
// a SCIM request (a GET of one user).
func BenchmarkAudit_SCIMRequestOverhead(b *testing.B) {
	for _, tc := range []struct {
		name string
		env  func(testing.TB) *testEnv
	}{{"off", newTestEnv}, {"on", newAuditEnv}} {
		b.Run(tc.name, func(b *testing.B) {
			e := tc.env(b)
			_, token := e.tenant(b, "Acme")
			res := e.do(b, token, "POST", "/scim/v2/Users", `{"userName":"ada@acme.test"}`)
			id := res.JSON(b)["id"].(string)
			for b.Loop() {
				if res := e.do(b, token, "GET", "/scim/v2/Users/"+id, ""); res.Status != 200 {
					b.Fatal(res.Status)
				}
			}
		})
	}
}

func TestAudit_TimelineIncludesSignIns(t *testing.T) {
	e := newAuditEnv(t)
	tenant, token, key := e.tenantWithKey(t, "Acme")
	res := e.do(t, token, "POST", "/scim/v2/Users", `{"userName":"ada@acme.test"}`)
	id := res.JSON(t)["id"].(string)
	ctx := domain.WithRequest(context.Background(), domain.Request{Actor: "saml", Correlation: "login-1",
		UserAgent: "Mozilla/5.0", Source: "198.51.100.4"})
	if _, err := e.Service.RecordSignIn(ctx, domain.TenantID(tenant), domain.SignInRecorded{User: domain.UserID(id),
		Reason: domain.SignInOK, Source: "198.51.100.4"}); err != nil {
		t.Fatal(err)
	}
	var tl audit.Timeline
	get(t, e, key, "/api/v1/audit/users/"+id, 200, &tl)
	if len(tl.Entries) != 2 {
		t.Fatalf("entries: %+v", tl.Entries)
	}
	s := tl.Entries[1]
	if s.Kind != domain.KindSignIn || s.Type != domain.EventSignInSucceeded || s.Detail["reason"] != domain.SignInOK ||
		s.Cycle != 0 || s.UserAgent != "" || s.Source != "" {
		t.Errorf("sign-in entry: %+v (a browser's address belongs in the payload, not the headers)", s)
	}
}
