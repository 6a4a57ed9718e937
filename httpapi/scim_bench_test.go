package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/idledger/idledger/domain"
)

// The SCIM benchmarks go through the real HTTP server, a durable embedded JetStream (fsync
// before every acknowledgement) and the bbolt projections; each write also waits until it is
// visible in the read models, as the handlers do for Entra's read-back.

func BenchmarkSCIM(b *testing.B) {
	e := newDurableTestEnv(b)
	tenantID, token := e.tenant(b, "Bench")
	var seq atomic.Int64
	createUser := func(tb testing.TB) string {
		n := seq.Add(1)
		res := e.do(tb, token, "POST", "/scim/v2/Users", fmt.Sprintf(
			`{"userName":"user%d@bench.example","externalId":"u%d","active":true,"displayName":"User %d",`+
				`"name":{"givenName":"User","familyName":"%d"},"emails":[{"value":"user%d@bench.example","type":"work","primary":true}]}`,
			n, n, n, n, n))
		if res.Status != http.StatusCreated {
			tb.Fatalf("create: %d %s", res.Status, res.Body)
		}
		return res.JSON(tb)["id"].(string)
	}

	b.Run("CreateUser", func(b *testing.B) {
		for b.Loop() {
			createUser(b)
		}
	})

	b.Run("PatchUser", func(b *testing.B) {
		id := createUser(b)
		i := 0
		for b.Loop() {
			i++
			res := e.do(b, token, "PATCH", "/scim/v2/Users/"+id, fmt.Sprintf(
				`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[`+
					`{"op":"Replace","path":"title","value":"Title %d"},`+
					`{"op":"Replace","path":"emails[type eq \"work\"].value","value":"x%d@bench.example"}]}`, i, i))
			if res.Status != http.StatusNoContent {
				b.Fatalf("patch: %d %s", res.Status, res.Body)
			}
		}
	})

	b.Run("FilterUserName", func(b *testing.B) {
		for range 200 {
			createUser(b)
		}
		path := "/scim/v2/Users?filter=" + url.QueryEscape(`userName eq "USER7@bench.example"`)
		for b.Loop() {
			res := e.do(b, token, "GET", path, "")
			if res.Status != http.StatusOK || !strings.Contains(string(res.Body), `"totalResults":1`) {
				b.Fatalf("filter: %d %s", res.Status, res.Body)
			}
		}
	})

	// Adding one member must cost the same whatever the group's size (event-model.md §2.4):
	// the group is never replayed or rewritten, only the delta is appended and projected.
	for _, size := range []int{100_000, 10} {
		group := fillGroup(b, e, domain.TenantID(tenantID), size)
		b.Run(fmt.Sprintf("AddMember/group=%d", size), func(b *testing.B) {
			ids := bulkUsers(b, e, domain.TenantID(tenantID), b.N, fmt.Sprintf("new%d-%d", size, seq.Add(1)))
			b.ResetTimer()
			for i := range b.N {
				id := ids[i]
				res := e.do(b, token, "PATCH", "/scim/v2/Groups/"+group, fmt.Sprintf(
					`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[`+
						`{"op":"Add","path":"members","value":[{"value":%q}]}]}`, id))
				if res.Status != http.StatusNoContent {
					b.Fatalf("add member: %d %s", res.Status, res.Body)
				}
			}
		})
	}
}

// bulkUsers creates n users with few appends (500 users and their userName claims per atomic
// batch) and waits until they are visible: setup, not measured.
func bulkUsers(tb testing.TB, e *testEnv, tenant domain.TenantID, n int, prefix string) []string {
	ctx := context.Background()
	ids := make([]string, 0, n)
	for start := 0; start < n; start += 500 {
		b := domain.Batch{Tenant: tenant}
		for i := start; i < min(start+500, n); i++ {
			id := uuid.Must(uuid.NewV7()).String()
			name := fmt.Sprintf("%s-%d@bench.example", prefix, i)
			b.Writes = append(b.Writes, domain.Write{Event: domain.Event{
				ID: uuid.NewString(), Tenant: tenant, Kind: domain.KindUser, AggregateID: id,
				Type: domain.EventUserCreated, Schema: domain.SchemaOf(domain.EventUserCreated),
				At: e.Clock.Now(), Actor: "bench",
				Data: domain.UserCreated{Attributes: map[string]any{"userName": name, "active": true}},
			}})
			b.Unique = append(b.Unique, domain.UniqueOp{Field: "userName", Value: domain.FoldUserName(name), Holder: id})
			ids = append(ids, id)
		}
		v, err := e.Store.Append(ctx, b)
		if err != nil {
			tb.Fatal(err)
		}
		if err := e.Projector.WaitFor(ctx, v); err != nil {
			tb.Fatal(err)
		}
	}
	return ids
}

// fillGroup creates a group with size members.
func fillGroup(tb testing.TB, e *testEnv, tenant domain.TenantID, size int) string {
	ctx := context.Background()
	g, _, _, err := e.Service.CreateGroup(ctx, tenant, map[string]any{"displayName": fmt.Sprintf("Group of %d", size)})
	if err != nil {
		tb.Fatal(err)
	}
	ids := bulkUsers(tb, e, tenant, size, fmt.Sprintf("g%d", size))
	for start := 0; start < size; start += 5000 {
		var members []any
		for _, id := range ids[start:min(start+5000, size)] {
			members = append(members, map[string]any{"value": id})
		}
		r, err := e.Service.PatchGroup(ctx, tenant, g.ID, []domain.PatchOp{{Op: domain.PatchAdd,
			Path: &domain.PatchPath{Path: domain.AttrPath{Attr: "members"}}, Value: members}}, nil)
		if err != nil {
			tb.Fatal(err)
		}
		if err := e.Projector.WaitFor(ctx, r.Group.Version); err != nil {
			tb.Fatal(err)
		}
	}
	got, err := e.DB.FindGroup(ctx, tenant, g.ID)
	if err != nil || got.Members != size {
		tb.Fatalf("group has %d members (err %v), want %d", got.Members, err, size)
	}
	return string(g.ID)
}
