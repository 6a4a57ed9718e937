package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/audit"
	"github.com/idledger/idledger/domain/scim"
	"github.com/idledger/idledger/httpapi"
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

	// Adding one member must cost the same whatever the group's size (docs/event-model.md §2.4):
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
			b.Unique = append(b.Unique, domain.UniqueOp{Field: "userName", Value: domain.FoldCase(name), Holder: id})
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
	g, _, _, err := e.Service.CreateGroup(ctx, domain.OriginSystem, tenant, map[string]any{"displayName": fmt.Sprintf("Group of %d", size)})
	if err != nil {
		tb.Fatal(err)
	}
	ids := bulkUsers(tb, e, tenant, size, fmt.Sprintf("g%d", size))
	for start := 0; start < size; start += 5000 {
		var members []any
		for _, id := range ids[start:min(start+5000, size)] {
			members = append(members, map[string]any{"value": id})
		}
		r, err := e.Service.PatchGroup(ctx, domain.OriginSystem, tenant, g.ID, []scim.PatchOp{{Op: scim.PatchAdd,
			Path: &scim.PatchPath{Path: scim.AttrPath{Attr: "members"}}, Value: members}}, nil)
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

// BenchmarkSCIMFilterParallel is Entra's match query (GET /Users?filter=userName eq "…", in
// another case than stored) from about 32 concurrent clients on keep-alive connections, each
// finding its user, as the reads of `idledger-bench` do. The server is wired as `idledger
// serve` wires it: durable log, audit with SCIM request records, a logger that drops the
// access log (level error); the users have the attributes Entra provisions. Besides ns/op it
// reports the CPU time per request (server, embedded NATS and client) and the p50 and p99
// latency.
func BenchmarkSCIMFilterParallel(b *testing.B) {
	e := buildTestEnv(b, envOptions{
		logger: slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError})),
		configure: func(_ testing.TB, _ context.Context, cfg *httpapi.Config, e *testEnv) {
			cfg.Audit = &audit.Service{Log: e.Store, History: e.Store, Requests: e.Store, Now: e.Clock.Now, NewID: e.Service.NewID}
		},
	})
	tenantID, token := e.tenant(b, "Bench")
	const users = 2000
	entraUsers(b, e, domain.TenantID(tenantID), users)
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 128, MaxIdleConnsPerHost: 128}}
	defer client.CloseIdleConnections()
	var n atomic.Int64
	b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	var mu sync.Mutex
	var latencies []time.Duration // of every request, for p50 and p99
	defer func() {
		// CPU time per request is steadier than ns/op on a shared machine.
		b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		slices.Sort(latencies)
		if len(latencies) > 0 {
			b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds()), "p99-µs")
		}
	}()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		defer func() {
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
		for pb.Next() {
			i := n.Add(1) * 7919 % users
			filter := fmt.Sprintf(`userName eq "ENTRA-%d@BENCH.EXAMPLE"`, i)
			req, err := http.NewRequest("GET", e.URL+"/scim/v2/Users?filter="+url.QueryEscape(filter), nil)
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("User-Agent", "Microsoft.Identity.ProvisioningService/1.0 (bench)")
			start := time.Now()
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			mine = append(mine, time.Since(start))
			if err != nil || res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"totalResults":1`) {
				b.Errorf("%s: %d %s %v", filter, res.StatusCode, body, err)
				return
			}
		}
	})
}

// entraUsers creates n users shaped as Entra provisions them (entra-user-<i>@bench.example),
// 500 per atomic batch, and waits until they are visible: setup, not measured.
func entraUsers(tb testing.TB, e *testEnv, tenant domain.TenantID, n int) {
	ctx := context.Background()
	for start := 0; start < n; start += 500 {
		b := domain.Batch{Tenant: tenant}
		for i := start; i < min(start+500, n); i++ {
			id := uuid.Must(uuid.NewV7()).String()
			name := fmt.Sprintf("entra-%d@bench.example", i)
			given, family := fmt.Sprintf("Given%d", i), fmt.Sprintf("Family%d", i)
			b.Writes = append(b.Writes, domain.Write{Event: domain.Event{
				ID: uuid.NewString(), Tenant: tenant, Kind: domain.KindUser, AggregateID: id,
				Type: domain.EventUserCreated, Schema: domain.SchemaOf(domain.EventUserCreated),
				At: e.Clock.Now(), Actor: "bench",
				Data: domain.UserCreated{Schemas: []string{scim.SchemaUser, scim.SchemaEnterpriseUser}, Attributes: map[string]any{
					"userName": name, "externalId": fmt.Sprintf("ext-%d", i), "active": true,
					"displayName": given + " " + family, "roles": []any{},
					"name":   map[string]any{"formatted": given + " " + family, "givenName": given, "familyName": family},
					"emails": []any{map[string]any{"primary": true, "type": "work", "value": name}},
					scim.SchemaEnterpriseUser: map[string]any{"department": "Dept " + strconv.Itoa(i%20),
						"employeeNumber": strconv.Itoa(100000 + i)},
				}},
			}})
			b.Unique = append(b.Unique, domain.UniqueOp{Field: "userName", Value: domain.FoldCase(name), Holder: id})
		}
		v, err := e.Store.Append(ctx, b)
		if err != nil {
			tb.Fatal(err)
		}
		if err := e.Projector.WaitFor(ctx, v); err != nil {
			tb.Fatal(err)
		}
	}
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
