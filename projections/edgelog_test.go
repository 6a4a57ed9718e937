package projections_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/scim"
	"github.com/idledger/idledger/eventstore"
	"github.com/idledger/idledger/projections"
)

// edgeLog appends, straight to the log and past the command rules, the histories that make
// the read models' bookkeeping hard: users sharing emails, userNames, externalIds and group
// names (which the claims prevent, but a projection must still fold deterministically), an
// entry taken over and then taken back by an unchanged write, a userName whose key looks like
// an email's, users and groups deleted with their memberships and created again under the same
// id, members naming no user, the same aggregates changed many times in a row, token
// rotations and events the projection does not keep. It returns the log head.
func edgeLog(tb testing.TB, store *eventstore.Store) domain.Version {
	tb.Helper()
	at := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	seq := 0
	id := func() string { seq++; return fmt.Sprintf("0193%028x", seq) }
	var batch []domain.Write
	var tenant domain.TenantID
	flush := func() {
		if len(batch) > 0 {
			if _, err := store.Append(tb.Context(), domain.Batch{Tenant: tenant, Writes: batch}); err != nil {
				tb.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	actor := domain.ActorSCIMPrefix + "edge"
	add := func(kind domain.Kind, agg, typ string, data any) {
		at = at.Add(time.Millisecond)
		batch = append(batch, domain.Write{NoExpect: true, Event: domain.Event{
			ID: id(), Tenant: tenant, Kind: kind, AggregateID: agg, Type: typ, Schema: domain.SchemaOf(typ),
			At: at, Actor: actor, Correlation: "edge", Data: data,
		}})
		if len(batch) == 1000 {
			flush()
		}
	}
	email := func(vs ...string) []any {
		var out []any
		for _, v := range vs {
			out = append(out, map[string]any{"value": v, "type": "work"})
		}
		return out
	}
	user := func(agg string, attrs map[string]any) {
		add(domain.KindUser, agg, domain.EventUserCreated, domain.UserCreated{Schemas: []string{scim.SchemaUser}, Attributes: attrs})
	}
	change := func(agg, typ string, changes ...domain.Change) {
		add(domain.KindUser, agg, typ, domain.UserChanged{Changes: changes})
	}
	members := func(ids ...string) []domain.Member {
		var out []domain.Member
		for _, m := range ids {
			out = append(out, domain.Member{Value: m, Display: "d<" + m[len(m)-2:] + ">"})
		}
		return out
	}

	for c := range 2 {
		tenant = domain.TenantID(id())
		actor = domain.ActorSCIMPrefix + "edge"
		add(domain.KindTenant, string(tenant), domain.EventTenantCreated,
			domain.TenantCreated{Name: fmt.Sprintf("Edge %d", c), SCIMTokenHash: domain.HashToken(fmt.Sprintf("t-%d", c))})
		u := make([]string, 12)
		for i := range u {
			u[i] = id()
		}
		// Shared addresses and names, in every letter case and with spaces.
		user(u[0], map[string]any{"userName": "Ann@X.example", "emails": email("shared@x.example", "ann@x.example"), "externalId": "ext", "active": true})
		user(u[1], map[string]any{"userName": " BOB@x.example ", "emails": email("SHARED@x.example", "shared@x.example", ""), "externalId": "ext"})
		user(u[2], map[string]any{"userName": "ann@x.example", "emails": email("bob@x.example"), "active": false,
			"roles": []any{map[string]any{"value": "admin"}}})
		user(u[3], map[string]any{"userName": "a/e/b", "emails": email("a/e/b", "Ünïcode@X.example"), "externalId": "e<&>"})
		user(u[4], map[string]any{"userName": "\tTab\nName ", "emails": []any{"not an object", map[string]any{"value": 7}}})
		user(u[5], map[string]any{"userName": "", "emails": email("empty@x.example")})
		user(u[6], map[string]any{"displayName": "no userName"})
		for i := 7; i < 12; i++ {
			user(u[i], map[string]any{"userName": fmt.Sprintf("user%d@x.example", i), "emails": email(fmt.Sprintf("user%d@x.example", i))})
		}
		// Unchanged and changed writes in a row: entries taken back, names swapped.
		for round := range 3 {
			change(u[0], domain.EventUserAttributesChanged, domain.Change{Path: "title", New: fmt.Sprint("t", round)})
			change(u[2], domain.EventUserAttributesChanged, domain.Change{Path: "title", New: fmt.Sprint("t", round)})
			change(u[1], domain.EventUserDeactivated, domain.Change{Path: "active", Old: true, New: false})
			change(u[1], domain.EventUserReactivated, domain.Change{Path: "active", Old: false, New: true})
		}
		change(u[7], domain.EventUserAttributesChanged, domain.Change{Path: "userName", New: "user8@x.example"})
		change(u[8], domain.EventUserAttributesChanged, domain.Change{Path: "userName", New: "user7@x.example"},
			domain.Change{Path: "emails", New: email("shared@x.example")})
		change(u[7], domain.EventUserAttributesChanged, domain.Change{Path: "externalId", New: "ext"})
		change(u[9], domain.EventUserAttributesChanged, domain.Change{Path: "emails", New: nil}, domain.Change{Path: "externalId", New: "x9"})
		change(u[3], domain.EventUserAttributesChanged, domain.Change{Path: "roles", New: []any{map[string]any{"value": "admin"}}})
		change(u[5], domain.EventUserAttributesChanged, domain.Change{Path: "userName", New: "five@x.example"})
		change(u[6], domain.EventUserAdopted, domain.Change{Path: "active", New: false})
		// Groups: members naming no user, added twice, removed; names taken over.
		g := make([]string, 6)
		for i := range g {
			g[i] = id()
			add(domain.KindGroup, g[i], domain.EventGroupCreated, domain.GroupCreated{
				Attributes: map[string]any{"displayName": fmt.Sprintf("Team %d", i%4), "externalId": fmt.Sprintf("gx%d", i%2)},
				Members:    members(u[i], u[(i+1)%12], u[(i+5)%12], "0193nobody"+fmt.Sprint(i))})
		}
		add(domain.KindGroup, g[0], domain.EventGroupMembersAdded, domain.GroupMembersAdded{Members: members(u[0], u[9], u[10], u[11])})
		add(domain.KindGroup, g[0], domain.EventGroupMembersAdded, domain.GroupMembersAdded{Members: members(u[9])})
		add(domain.KindGroup, g[1], domain.EventGroupMembersRemoved, domain.GroupMembersRemoved{Members: []domain.UserID{domain.UserID(u[1]), "0193nobody"}})
		add(domain.KindGroup, g[2], domain.EventGroupRenamed, domain.GroupChanged{Changes: []domain.Change{{Path: "displayName", New: "Team 3"}}})
		add(domain.KindGroup, g[3], domain.EventGroupAttributesChanged, domain.GroupChanged{Changes: []domain.Change{{Path: "externalId", New: nil}}})
		add(domain.KindGroup, g[2], domain.EventGroupAttributesChanged, domain.GroupChanged{Changes: []domain.Change{{Path: "externalId", New: "gx0"}}})
		// Deletes, with memberships, and the same ids created again.
		add(domain.KindUser, u[9], domain.EventUserDeleted, domain.UserDeleted{})
		add(domain.KindGroup, g[0], domain.EventGroupMembersAdded, domain.GroupMembersAdded{Members: members(u[9], u[10])})
		add(domain.KindGroup, g[4], domain.EventGroupDeleted, domain.GroupDeleted{})
		add(domain.KindGroup, g[4], domain.EventGroupMembersAdded, domain.GroupMembersAdded{Members: members(u[10])})
		user(u[9], map[string]any{"userName": "again@x.example", "emails": email("shared@x.example")})
		add(domain.KindGroup, g[4], domain.EventGroupCreated, domain.GroupCreated{Attributes: map[string]any{"displayName": "Team 0"}, Members: members(u[9])})
		change(u[0], domain.EventUserAttributesChanged, domain.Change{Path: "emails", New: email("ann@x.example")})
		add(domain.KindUser, u[1], domain.EventUserDeleted, domain.UserDeleted{})
		change(u[1], domain.EventUserAttributesChanged, domain.Change{Path: "title", New: "gone"})
		add(domain.KindUser, u[0], domain.EventUserDeleted, domain.UserDeleted{})
		// The company: token rotations, a lock and unlock by hand, events the projection skips.
		add(domain.KindTenant, string(tenant), domain.EventTenantSCIMTokenRotated, domain.SCIMTokenRotated{SCIMTokenHash: domain.HashToken(fmt.Sprint("r", c))})
		actor = "admin"
		add(domain.KindTenant, string(tenant), domain.EventTenantProvisioningUnlocked, domain.ProvisioningUnlocked{Reason: "edge"})
		add(domain.KindTenant, string(tenant), domain.EventTenantSCIMTokenRotated, domain.SCIMTokenRotated{SCIMTokenHash: domain.HashToken(fmt.Sprint("s", c))})
		user(id(), map[string]any{"userName": "by hand", "emails": email("SHARED@x.example")})
		add(domain.KindSignIn, id(), domain.EventSignInFailed, domain.SignInRecorded{})
		actor = domain.ActorSCIMPrefix + "edge"
		add(domain.KindTenant, string(tenant), domain.EventTenantProvisioningLocked, domain.ProvisioningLocked{Method: "POST"})
		// Many events of one user and one group in a row, then bulk users.
		for i := range 300 {
			change(u[10], domain.EventUserAttributesChanged, domain.Change{Path: "displayName", New: strings.Repeat("x", i%7)})
			add(domain.KindGroup, g[5], domain.EventGroupMembersAdded, domain.GroupMembersAdded{Members: members(u[i%12])})
			if i%3 == 0 {
				add(domain.KindGroup, g[5], domain.EventGroupMembersRemoved, domain.GroupMembersRemoved{Members: []domain.UserID{domain.UserID(u[(i+4)%12])}})
			}
		}
		for i := range 700 {
			user(id(), map[string]any{"userName": fmt.Sprintf("bulk%d@x.example", i%650), "emails": email(fmt.Sprintf("bulk%d@x.example", i%97)),
				"externalId": fmt.Sprint(i % 13), "active": i%5 != 0})
		}
		flush()
	}
	return head(tb, store)
}

// TestReplay_edge_cases_do_not_depend_on_batching folds edgeLog one event per commit, in the
// projector's batches and in a rebuild's, and wants byte-identical dumps.
func TestReplay_edge_cases_do_not_depend_on_batching(t *testing.T) {
	t.Parallel()
	store := mustOpenStore(t)
	h := edgeLog(t, store)
	single := MustOpenDB(t)
	if err := projections.Replay(t.Context(), single, oneByOne{store}, h, nil); err != nil {
		t.Fatal(err)
	}
	live := MustOpenDB(t)
	startProjector(t, live, store).waitFor(t, h)
	rebuilt := MustOpenDB(t)
	if err := projections.NewProjector(rebuilt, store, projections.ProjectorConfig{Logger: quiet}).Rebuild(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	want := dump(t, single)
	for name, db := range map[string]*projections.DB{"live": live, "rebuilt": rebuilt, "replayed": replayed(t, store, h)} {
		if got := dump(t, db); got != want {
			diffs, n, err := projections.Diff(single, db, 5)
			t.Errorf("%s: the dump differs from one event per commit in %d rows (%v): %+v", name, n, err, diffs)
		}
	}
	for _, s := range []string{`/u/a/e/b"`, `"group_members"`, `"tenant_tokens"`} {
		if !strings.Contains(want, s) {
			t.Errorf("the log does not exercise %s", s)
		}
	}
}
