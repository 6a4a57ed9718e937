package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/eventlogtest"
	"github.com/idledger/idledger/domain/scim"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/projections"
)

// logShape sizes the log richLog writes.
type logShape struct {
	users, groups, membersAvg int
	workers                   int // concurrent commands (1: a deterministic log)
}

// richLog writes an Entra-like provisioning history through the command service, the way the
// server does (bench_scim.go's cycles): a company whose users are created, get a manager, are
// put into groups in chunks, then an incremental cycle (attribute changes, deactivations,
// renames, member changes, deletes), plus a second company with locally invited users that
// SCIM adopts, admins and shared emails, and a token rotation. The live projector it needs
// (group commands decide against the read model) projects into a file of its own. It returns
// the number of messages in the log.
func richLog(tb testing.TB, store *eventstore.Store, shape logShape) domain.Version {
	tb.Helper()
	ctx := domain.WithRequest(tb.Context(), domain.Request{Actor: domain.ActorSCIMPrefix + "bench", Correlation: "bench"})
	db := MustOpenDB(tb)
	live := startProjector(tb, db, store)
	var n atomic.Uint64
	clock := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	svc := &domain.Service{
		Log: store, Read: db, Sync: live.WaitFor,
		Now:   func() time.Time { return clock.Add(time.Duration(n.Load()) * time.Millisecond) },
		NewID: func() string { return fmt.Sprintf("%032x", 0x0192_0000_0000+n.Add(1)) },
	}
	if shape.workers < 1 {
		shape.workers = 1
	}
	svc.Random = &lockedReader{r: rand.NewChaCha8([32]byte{7})}
	parallel := func(count int, job func(i int) error) {
		tb.Helper()
		var wg sync.WaitGroup
		var failed atomic.Pointer[error]
		next := make(chan int)
		for range shape.workers {
			wg.Go(func() {
				for i := range next {
					if failed.Load() != nil {
						continue
					}
					if err := job(i); err != nil {
						failed.CompareAndSwap(nil, &err)
					}
				}
			})
		}
		for i := range count {
			next <- i
		}
		close(next)
		wg.Wait()
		if err := failed.Load(); err != nil {
			tb.Fatal(*err)
		}
	}
	given := []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Niklaus"}
	family := []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Wirth"}
	depts := []string{"Research", "Sales", "Finance", "Legal", "Support", "Marketing", "Operations", "Engineering"}
	const entSchema = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

	tenant, _, err := svc.CreateTenant(ctx, "Contoso")
	if err != nil {
		tb.Fatal(err)
	}
	userName := func(i int) string {
		return fmt.Sprintf("%s.%s%07d@Contoso.example", given[i%len(given)], family[(i/len(given))%len(family)], i)
	}
	ids := make([]domain.UserID, shape.users)
	parallel(shape.users, func(i int) error {
		g, f := given[i%len(given)], family[(i/len(given))%len(family)]
		in := map[string]any{
			"schemas":    []any{"urn:ietf:params:scim:schemas:core:2.0:User", entSchema},
			"externalId": fmt.Sprintf("%s%07d", strings.ToLower(g), i), "userName": userName(i), "active": true,
			"displayName": g + " " + f, "title": nil,
			"emails": []any{map[string]any{"primary": true, "type": "work", "value": strings.ToLower(userName(i))}},
			"name":   map[string]any{"formatted": g + " " + f, "familyName": f, "givenName": g},
			"meta":   map[string]any{"resourceType": "User"}, "roles": []any{},
			entSchema: map[string]any{"department": depts[i%len(depts)], "employeeNumber": fmt.Sprint(100000 + i)},
		}
		if i%97 == 3 {
			in["roles"] = []any{map[string]any{"value": "admin", "primary": true}}
		}
		u, err := svc.CreateUser(ctx, domain.OriginSCIM, tenant.ID, in)
		ids[i] = u.ID
		return err
	})
	rng := rand.New(rand.NewPCG(20261126, 7))
	groups := make([]domain.GroupID, shape.groups)
	members := make([][]map[string]any, shape.groups)
	for g := range groups {
		seen := map[int]bool{}
		for size := min(1+(g*7919)%max(2*shape.membersAvg-1, 1), shape.users); len(members[g]) < size; {
			if i := rng.IntN(shape.users); !seen[i] {
				seen[i] = true
				members[g] = append(members[g], map[string]any{"value": string(ids[i])})
			}
		}
	}
	parallel(shape.groups, func(g int) error {
		grp, _, _, err := svc.CreateGroup(ctx, domain.OriginSCIM, tenant.ID, map[string]any{"displayName": fmt.Sprintf("Team %05d", g),
			"externalId": fmt.Sprintf("grp-%05d", g), "members": []any{}})
		groups[g] = grp.ID
		if err != nil {
			return err
		}
		for start := 0; start < len(members[g]); start += 25 {
			var chunk []any
			for _, m := range members[g][start:min(start+25, len(members[g]))] {
				chunk = append(chunk, m)
			}
			op := scim.PatchOp{Op: scim.PatchAdd, Value: map[string]any{"members": chunk}}
			if _, err := svc.PatchGroup(ctx, domain.OriginSCIM, tenant.ID, grp.ID, []scim.PatchOp{op}, nil); err != nil {
				return err
			}
		}
		return nil
	})
	patch := func(id domain.UserID, value map[string]any) error {
		_, _, err := svc.PatchUser(ctx, domain.OriginSCIM, tenant.ID, id, []scim.PatchOp{{Op: scim.PatchReplace, Value: value}}, nil, nil)
		return err
	}
	parallel(shape.users, func(i int) error {
		if i < 10 {
			return nil
		}
		mgr := string(ids[i/10])
		if i%2 == 0 {
			return patch(ids[i], map[string]any{entSchema + ":manager": mgr})
		}
		return patch(ids[i], map[string]any{entSchema + ":manager": map[string]any{"value": mgr}})
	})
	// The incremental cycle.
	parallel(shape.users, func(i int) error {
		switch {
		case i%20 == 1:
			return patch(ids[i], map[string]any{"title": "Engineer", entSchema + ":department": depts[(i+1)%len(depts)]})
		case i%50 == 2:
			return patch(ids[i], map[string]any{"active": false})
		case i%100 == 5:
			return patch(ids[i], map[string]any{"userName": "renamed." + userName(i)})
		case i%100 == 7:
			return patch(ids[i], map[string]any{"emails": []any{map[string]any{"value": strings.ToLower(userName(i - 1)), "type": "work"}}})
		case i%150 == 9:
			_, err := svc.DeleteUser(ctx, domain.OriginSCIM, tenant.ID, ids[i], nil)
			return err
		}
		return nil
	})
	parallel(shape.groups, func(g int) error {
		if g%10 != 0 {
			return nil
		}
		if g%30 == 0 {
			_, err := svc.DeleteGroup(ctx, domain.OriginSCIM, tenant.ID, groups[g], nil)
			return err
		}
		var add []any
		for k := range 3 {
			add = append(add, map[string]any{"value": string(ids[(g*131+k*17)%shape.users])})
		}
		ops := []scim.PatchOp{
			{Op: scim.PatchAdd, Value: map[string]any{"members": add}},
			{Op: scim.PatchReplace, Value: map[string]any{"displayName": fmt.Sprintf("Squad %05d", g)}},
		}
		if _, err := svc.PatchGroup(ctx, domain.OriginSCIM, tenant.ID, groups[g], ops, nil); err != nil {
			return err
		}
		// Replacing the member list removes the first two.
		keep := add
		for _, m := range members[g][min(2, len(members[g])):] {
			keep = append(keep, m)
		}
		_, err := svc.ReplaceGroup(ctx, domain.OriginSCIM, tenant.ID, groups[g], map[string]any{"displayName": fmt.Sprintf("Squad %05d", g),
			"members": keep}, nil)
		return err
	})

	// A second company run by hand first: invited users, an admin, shared emails; then SCIM
	// adopts some of them, and the token is rotated.
	local := domain.WithRequest(tb.Context(), domain.Request{Actor: domain.ActorAPIPrefix + "hand"})
	other, _, err := svc.CreateTenant(local, "Fabrikam")
	if err != nil {
		tb.Fatal(err)
	}
	var invited []domain.User
	for i := range 20 {
		u, err := svc.InviteUser(local, domain.OriginCompanyAPI, other.ID, fmt.Sprintf("person%d@fabrikam.example", i), fmt.Sprintf("Person %d", i))
		if err != nil {
			tb.Fatal(err)
		}
		invited = append(invited, u)
	}
	admin, yes, no := true, true, false
	shared := "shared@fabrikam.example"
	for i, u := range invited {
		var edit domain.LocalUserEdit
		switch i % 4 {
		case 0:
			edit.Admin = &admin
		case 1:
			edit.Active = &no
		case 2:
			edit.Email = &shared
		case 3:
			edit.Active = &yes
		}
		if i%4 == 2 && i > 2 {
			continue // one user holds the shared address as its userName
		}
		if _, err := svc.EditUserLocally(local, domain.OriginCompanyAPI, other.ID, u.ID, edit); err != nil {
			tb.Fatal(err)
		}
	}
	for i := range 10 {
		in := map[string]any{"userName": fmt.Sprintf("person%d@fabrikam.example", i), "active": true,
			"emails": []any{map[string]any{"value": shared, "type": "other"}, map[string]any{"value": fmt.Sprintf("p%d@fabrikam.example", i), "primary": true}}}
		if _, err := svc.CreateUser(ctx, domain.OriginSCIM, other.ID, in); err != nil {
			tb.Fatal(err)
		}
	}
	if _, _, err := svc.RotateSCIMToken(local, other.ID); err != nil {
		tb.Fatal(err)
	}
	if _, err := svc.DeleteUser(ctx, domain.OriginSCIM, other.ID, invited[5].ID, nil); err != nil {
		tb.Fatal(err)
	}
	h := head(tb, store)
	live.waitFor(tb, h)
	return h
}

// lockedReader serialises reads of r.
type lockedReader struct {
	mu sync.Mutex
	r  *rand.ChaCha8
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

// oneByOne delivers its log one event per batch, so that every event commits alone.
type oneByOne struct{ *eventstore.Store }

func (o oneByOne) Subscribe(ctx context.Context, after domain.Version) (domain.Subscription, error) {
	sub, err := o.Store.Subscribe(ctx, after)
	if err != nil {
		return nil, err
	}
	return oneSub{sub}, nil
}

type oneSub struct{ domain.Subscription }

func (s oneSub) Next(ctx context.Context, _ int) ([]domain.Event, error) {
	return s.Subscription.Next(ctx, 1)
}

// TestReplay_batching_does_not_change_the_read_models checks, on a log with every kind of
// change, that the read models do not depend on how events are cut into transactions: one
// event per commit, the projector's batches, and a rebuild's give byte-identical dumps.
func TestReplay_batching_does_not_change_the_read_models(t *testing.T) {
	t.Parallel()
	store := mustOpenStore(t)
	h := richLog(t, store, logShape{users: 600, groups: 40, membersAvg: 12, workers: 4})

	single := MustOpenDB(t)
	if err := projections.Replay(t.Context(), single, oneByOne{store}, h, nil); err != nil {
		t.Fatal(err)
	}
	batched := replayed(t, store, h)
	rebuilt := MustOpenDB(t)
	if err := projections.NewProjector(rebuilt, store, projections.ProjectorConfig{Logger: quiet}).Rebuild(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	want := dump(t, single)
	for name, db := range map[string]*projections.DB{"batched": batched, "rebuilt": rebuilt} {
		if got := dump(t, db); got != want {
			diffs, n, err := projections.Diff(single, db, 5)
			t.Errorf("%s: the dump differs from one event per commit in %d rows (%v): %+v", name, n, err, diffs)
		}
	}
	for _, s := range []string{`"group_members"`, `"login_index"`, `"activeAdmins":`, `"localUsers":`, `"lastScimWrite":`} {
		if !strings.Contains(want, s) {
			t.Errorf("the log does not exercise %s", s)
		}
	}
}

// BenchmarkReplay measures building the read models from sequence 1 on an Entra-like log of
// 10k users and 32k messages, like `idledger-bench -short`'s, on the embedded JetStream:
//
//   - Rebuild: Projector.Rebuild, offline (a second file, swapped in), as the bench measures it.
//   - Replay: Replay into a fresh file (`idledger projections check`).
//   - Run: the live projector catching up from an empty file, in its own batches.
//   - Read: reading the log as those do, without applying it: their ceiling.
//   - Memory: Rebuild from the events read into memory once: applying them alone.
//
// Besides events/s each reports the process's CPU time per event, which a shared machine
// disturbs less than wall time. Writing the log takes half a minute: with
// IDLEDGER_BENCH_LOG=DIR it is kept in DIR and reused by the next run.
func BenchmarkReplay(b *testing.B) {
	dir := os.Getenv("IDLEDGER_BENCH_LOG")
	if dir == "" {
		dir = b.TempDir()
	}
	store, err := eventstore.Open(b.Context(), eventstore.Config{Dir: dir, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	h := head(b, store)
	if h == 0 {
		start := time.Now()
		h = richLog(b, store, logShape{users: 10_000, groups: 200, membersAvg: 20, workers: 8})
		b.Logf("log: %d events written in %s", h, time.Since(start).Round(time.Millisecond))
	}

	// measure runs run in b's loop and reports events/s and CPU time per event.
	measure := func(b *testing.B, run func()) {
		b.Helper()
		cpu0 := cpuTime(b)
		for b.Loop() {
			run()
		}
		b.ReportMetric(float64(h)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(h)/float64(b.N), "cpu-µs/event")
	}
	b.Run("Replay", func(b *testing.B) {
		measure(b, func() {
			b.StopTimer()
			db := MustOpenDB(b)
			b.StartTimer()
			if err := projections.Replay(b.Context(), db, store, h, nil); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			db.Close()
			b.StartTimer()
		})
	})
	b.Run("Rebuild", func(b *testing.B) {
		db := MustOpenDB(b)
		p := projections.NewProjector(db, store, projections.ProjectorConfig{Logger: quiet})
		measure(b, func() {
			if err := p.Rebuild(b.Context(), nil); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("Read", func(b *testing.B) {
		measure(b, func() {
			sub, err := store.Subscribe(b.Context(), 0)
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close()
			for n := domain.Version(0); n < h; {
				events, err := sub.Next(b.Context(), 500)
				if err != nil {
					b.Fatal(err)
				}
				n = events[len(events)-1].Version
			}
		})
	})
	b.Run("Memory", func(b *testing.B) {
		mem := readAll(b, store)
		db := MustOpenDB(b)
		p := projections.NewProjector(db, mem, projections.ProjectorConfig{Logger: quiet})
		measure(b, func() {
			if err := p.Rebuild(b.Context(), nil); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("Run", func(b *testing.B) {
		measure(b, func() {
			b.StopTimer()
			db := MustOpenDB(b)
			b.StartTimer()
			r := startProjector(b, db, store)
			ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
			defer cancel()
			if err := r.WaitFor(ctx, h); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			r.Stop()
			db.Close()
			b.StartTimer()
		})
	})
}

// memLog is a log read into memory: an EventSource that delivers it as a subscription to the
// log does, without the cost of reading it. TestMemLogConformance holds it to the contract.
type memLog []domain.Event

// TestMemLogConformance runs the EventSource conformance suite on memLog, read from a real
// store holding the suite's log.
func TestMemLogConformance(t *testing.T) {
	t.Parallel()
	eventlogtest.RunSource(t, func(t *testing.T, batches []domain.Batch) domain.EventSource {
		store := mustOpenStore(t)
		for _, b := range batches {
			if _, err := store.Append(t.Context(), b); err != nil {
				t.Fatal(err)
			}
		}
		return readAll(t, store)
	})
}

func readAll(tb testing.TB, store *eventstore.Store) memLog {
	tb.Helper()
	h := head(tb, store)
	if h == 0 {
		return nil
	}
	sub, err := store.Subscribe(tb.Context(), 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer sub.Close()
	var out memLog
	for len(out) == 0 || out[len(out)-1].Version < h {
		events, err := sub.Next(tb.Context(), 1000)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, events...)
	}
	return out
}

func (m memLog) Head(context.Context) (domain.Version, error) {
	if len(m) == 0 {
		return 0, nil
	}
	return m[len(m)-1].Version, nil
}

func (m memLog) Subscribe(_ context.Context, after domain.Version) (domain.Subscription, error) {
	i := 0
	for i < len(m) && m[i].Version <= after {
		i++
	}
	return &memSub{rest: m[i:]}, nil
}

type memSub struct{ rest []domain.Event }

func (s *memSub) Next(ctx context.Context, max int) ([]domain.Event, error) {
	if len(s.rest) == 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	n := min(max, len(s.rest), 1024) // as much as the log's subscription buffers
	out := s.rest[:n:n]
	s.rest = s.rest[n:]
	return out, nil
}

func (s *memSub) Close() error { return nil }
