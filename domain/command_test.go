package domain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/idledger/idledger/domain/scim"
)

// Given/when/then tests of every user, group and tenant command (harness in
// command_harness_test.go): given these events, when this command runs with this origin, then
// these events and claims are appended, or this error is returned and nothing is.

// A cmdCase is one given/when/then case.
type cmdCase struct {
	name  string
	given []given
	when  func(env *cmdEnv) error
	// then lists what is appended (see cmdEnv.appended); err is the kind of error expected.
	then []string
	err  error
}

func runCmdCases(t *testing.T, cases []cmdCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newCmdEnv(t, tc.given...)
			err := tc.when(env)
			if (tc.err == nil) != (err == nil) || !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			env.then(tc.then...)
		})
	}
}

const (
	coreUser = `"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]`
	lockReq1 = `tenant/t1 tenant.provisioning_locked {"request":"req-1","method":"POST","path":"/scim/v2/Users"}`
)

func createUser(o Origin, in map[string]any) func(env *cmdEnv) error {
	return func(env *cmdEnv) error {
		_, err := env.svc.CreateUser(env.ctx, o, "t1", in)
		return err
	}
}

func TestCommand_CreateUser(t *testing.T) {
	t.Parallel()
	runCmdCases(t, []cmdCase{
		{name: "SCIM create locks a company in manual mode", given: []given{gAcme},
			when: createUser(OriginSCIM, map[string]any{"userName": "Ada@Acme.test"}),
			then: []string{
				lockReq1,
				`user/id1 user.created {` + coreUser + `,"attributes":{"active":true,"userName":"Ada@Acme.test"}}`,
				`claim userName ada@acme.test id1`,
			}},
		{name: "SCIM create in a managed company", given: []given{gAcme, gManaged},
			when: createUser(OriginSCIM, map[string]any{"userName": "dan@acme.test", "active": false}),
			then: []string{
				`user/id1 user.created {` + coreUser + `,"attributes":{"active":false,"userName":"dan@acme.test"}}`,
				`claim userName dan@acme.test id1`,
			}},
		{name: "system create follows no management rules", given: []given{gAcme},
			when: createUser(OriginSystem, map[string]any{"userName": "dan@acme.test"}),
			then: []string{
				`user/id1 user.created {` + coreUser + `,"attributes":{"active":true,"userName":"dan@acme.test"}}`,
				`claim userName dan@acme.test id1`,
			}},
		{name: "a userName held in another case", given: []given{gAcme, gManaged, gAda},
			when: createUser(OriginSCIM, map[string]any{"userName": "ADA@acme.test"}), err: ErrUniqueness},
		{name: "SCIM adopts a user invited locally", given: []given{gAcme, gCarol},
			when: createUser(OriginSCIM, map[string]any{"userName": "carol@acme.test", "displayName": "Carol"}),
			then: []string{
				lockReq1,
				`user/u3 user.adopted {"changes":[{"path":"displayName","new":"Carol"},{"path":"emails","old":[{"primary":true,"type":"work","value":"carol@acme.test"}]}],"method":"PUT"}`,
			}},
		{name: "the company API does not adopt", given: []given{gAcme, gCarol},
			when: createUser(OriginCompanyAPI, map[string]any{"userName": "carol@acme.test"}), err: ErrUniqueness},
		{name: "without userName", given: []given{gAcme},
			when: createUser(OriginSCIM, map[string]any{"displayName": "Nobody"}), err: ErrInvalid},
	})
}

func replaceUser(o Origin, id UserID, in map[string]any, ifMatch *Version) func(env *cmdEnv) error {
	return func(env *cmdEnv) error {
		_, _, err := env.svc.ReplaceUser(env.ctx, o, "t1", id, in, env.resolve(KindUser, string(id), ifMatch))
		return err
	}
}

func TestCommand_ReplaceUser(t *testing.T) {
	t.Parallel()
	runCmdCases(t, []cmdCase{
		{name: "changed attributes", given: []given{gAcme, gManaged, gAda},
			when: replaceUser(OriginSCIM, "u1", map[string]any{"userName": "ada@acme.test", "title": "CFO"}, nil),
			then: []string{`user/u1 user.attributes_changed {"changes":[{"path":"title","new":"CFO"}],"method":"PUT"}`}},
		{name: "the same representation appends nothing", given: []given{gAcme, gManaged, gAda},
			when: replaceUser(OriginSCIM, "u1", map[string]any{"userName": "ada@acme.test"}, nil)},
		{name: "active false deactivates", given: []given{gAcme, gManaged, gAda},
			when: replaceUser(OriginSCIM, "u1", map[string]any{"userName": "ada@acme.test", "active": false}, nil),
			then: []string{`user/u1 user.deactivated {"changes":[{"path":"active","old":true,"new":false}],"method":"PUT"}`}},
		{name: "a new userName moves the claim", given: []given{gAcme, gManaged, gAda},
			when: replaceUser(OriginSCIM, "u1", map[string]any{"userName": "ada.l@acme.test"}, atHead),
			then: []string{
				`user/u1 user.attributes_changed {"changes":[{"path":"userName","old":"ada@acme.test","new":"ada.l@acme.test"}],"method":"PUT"}`,
				`release userName ada@acme.test u1`,
				`claim userName ada.l@acme.test u1`,
			}},
		{name: "a userName held by another user", given: []given{gAcme, gManaged, gAda, gBob},
			when: replaceUser(OriginSCIM, "u1", map[string]any{"userName": "Bob@acme.test"}, nil), err: ErrUniqueness},
		{name: "If-Match of another version", given: []given{gAcme, gManaged, gAda},
			when: replaceUser(OriginSCIM, "u1", map[string]any{"userName": "ada@acme.test", "title": "CFO"}, versionOf(2)),
			err:  ErrPrecondition},
		{name: "unknown user", given: []given{gAcme, gManaged},
			when: replaceUser(OriginSCIM, "u9", map[string]any{"userName": "x"}, nil), err: ErrNotFound},
		{name: "deleted user", given: []given{gAcme, gManaged, gAda, `user/u1 user.deleted`},
			when: replaceUser(OriginSCIM, "u1", map[string]any{"userName": "ada@acme.test"}, nil), err: ErrNotFound},
		{name: "invalid representation", given: []given{gAcme, gManaged, gAda},
			when: replaceUser(OriginSCIM, "u1", map[string]any{"userName": 7}, nil), err: ErrInvalid},
	})
}

func TestCommand_PatchUser(t *testing.T) {
	t.Parallel()
	patch := func(o Origin, id UserID, value map[string]any, ifMatch *Version) func(env *cmdEnv) error {
		return func(env *cmdEnv) error {
			ops := []scim.PatchOp{{Op: scim.PatchReplace, Value: value}}
			_, _, err := env.svc.PatchUser(env.ctx, o, "t1", id, ops, []any{"as received"}, env.resolve(KindUser, string(id), ifMatch))
			return err
		}
	}
	runCmdCases(t, []cmdCase{
		{name: "replace keeps the operations as received", given: []given{gAcme, gManaged, gAda},
			when: patch(OriginSCIM, "u1", map[string]any{"displayName": "Ada"}, nil),
			then: []string{`user/u1 user.attributes_changed {"changes":[{"path":"displayName","new":"Ada"}],"method":"PATCH","operations":["as received"]}`}},
		{name: "reactivate", given: []given{gAcme, gManaged, gAda, `user/u1 user.deactivated {"changes":[{"path":"active","old":true,"new":false}]}`},
			when: patch(OriginSCIM, "u1", map[string]any{"active": true}, atHead),
			then: []string{`user/u1 user.reactivated {"changes":[{"path":"active","old":false,"new":true}],"method":"PATCH","operations":["as received"]}`}},
		{name: "a change that changes nothing", given: []given{gAcme, gManaged, gAda},
			when: patch(OriginSCIM, "u1", map[string]any{"active": true}, nil)},
		{name: "SCIM adopts an invited user even without a change", given: []given{gAcme, gManaged, gCarol},
			when: patch(OriginSCIM, "u3", map[string]any{"active": true}, nil),
			then: []string{`user/u3 user.adopted {"changes":null,"method":"PATCH","operations":["as received"]}`}},
		{name: "read-only attribute", given: []given{gAcme, gManaged, gAda},
			when: patch(OriginSCIM, "u1", map[string]any{"id": "other"}, nil), err: ErrMutability},
	})
}

func deleteUser(o Origin, id UserID, ifMatch *Version) func(env *cmdEnv) error {
	return func(env *cmdEnv) error {
		_, err := env.svc.DeleteUser(env.ctx, o, "t1", id, env.resolve(KindUser, string(id), ifMatch))
		return err
	}
}

func TestCommand_DeleteUser(t *testing.T) {
	t.Parallel()
	runCmdCases(t, []cmdCase{
		{name: "the user leaves its groups in the same append", given: []given{gAcme, gManaged, gAda, gBob, gFinance, gSales},
			when: deleteUser(OriginSCIM, "u1", nil),
			then: []string{
				`user/u1 user.deleted {"groups":["g1","g2"]}`,
				`group/g1 group.members_removed {"members":["u1"],"cause":"user.deleted"}`,
				`group/g2 group.members_removed {"members":["u1"],"cause":"user.deleted"}`,
				`release userName ada@acme.test u1`,
			}},
		{name: "If-Match", given: []given{gAcme, gManaged, gAda},
			when: deleteUser(OriginSCIM, "u1", atHead),
			then: []string{`user/u1 user.deleted {}`, `release userName ada@acme.test u1`}},
		{name: "If-Match of another version", given: []given{gAcme, gManaged, gAda},
			when: deleteUser(OriginSCIM, "u1", versionOf(1)), err: ErrPrecondition},
		{name: "twice", given: []given{gAcme, gManaged, gAda, `user/u1 user.deleted`},
			when: deleteUser(OriginSCIM, "u1", nil), err: ErrNotFound},
		{name: "the company API in manual mode is guarded", given: []given{gAcme, gCarol},
			when: deleteUser(OriginCompanyAPI, "u3", nil),
			then: []string{`user/u3 user.deleted {}`, `release userName carol@acme.test u3`, `guard tenant at 1`}},
		{name: "the company API is refused while provisioning manages the company", given: []given{gAcme, gManaged, gCarol},
			when: deleteUser(OriginCompanyAPI, "u3", nil), err: ErrLocked},
	})
}

func TestCommand_InviteUser(t *testing.T) {
	t.Parallel()
	invite := func(email, name string) func(env *cmdEnv) error {
		return func(env *cmdEnv) error {
			_, err := env.svc.InviteUser(env.ctx, OriginCompanyAPI, "t1", email, name)
			return err
		}
	}
	runCmdCases(t, []cmdCase{
		{name: "manual mode", given: []given{gAcme},
			when: invite(" dan@acme.test ", "Dan"),
			then: []string{
				`user/id1 user.invited {` + coreUser + `,"attributes":{"active":true,"displayName":"Dan","emails":[{"primary":true,"type":"work","value":"dan@acme.test"}],"userName":"dan@acme.test"}}`,
				`claim userName dan@acme.test id1`,
				`guard tenant at 1`,
			}},
		{name: "managed mode", given: []given{gAcme, gManaged}, when: invite("dan@acme.test", ""), err: ErrLocked},
		{name: "an email held by another user", given: []given{gAcme, gAda}, when: invite("ADA@acme.test", ""), err: ErrUniqueness},
		{name: "not an address", given: []given{gAcme}, when: invite("dan", ""), err: ErrInvalid},
	})
}

func TestCommand_EditUserLocally(t *testing.T) {
	t.Parallel()
	edit := func(id UserID, e LocalUserEdit) func(env *cmdEnv) error {
		return func(env *cmdEnv) error {
			_, err := env.svc.EditUserLocally(env.ctx, OriginCompanyAPI, "t1", id, e)
			return err
		}
	}
	yes, no := true, false
	email, blank, bad := "carol.c@acme.test", "", "carol"
	runCmdCases(t, []cmdCase{
		{name: "make admin and deactivate", given: []given{gAcme, gCarol},
			when: edit("u3", LocalUserEdit{Admin: &yes, Active: &no, Name: &blank}),
			then: []string{
				`user/u3 user.deactivated {"changes":[{"path":"active","old":true,"new":false},{"path":"roles","new":[{"value":"admin"}]}],"method":"API"}`,
				`guard tenant at 1`,
			}},
		{name: "new email moves the claim", given: []given{gAcme, gCarol},
			when: edit("u3", LocalUserEdit{Email: &email, Admin: &no}),
			then: []string{
				`user/u3 user.attributes_changed {"changes":[{"path":"emails","old":[{"primary":true,"type":"work","value":"carol@acme.test"}],"new":[{"primary":true,"type":"work","value":"carol.c@acme.test"}]},{"path":"userName","old":"carol@acme.test","new":"carol.c@acme.test"}],"method":"API"}`,
				`release userName carol@acme.test u3`,
				`claim userName carol.c@acme.test u3`,
				`guard tenant at 1`,
			}},
		{name: "not an address", given: []given{gAcme, gCarol}, when: edit("u3", LocalUserEdit{Email: &bad}), err: ErrInvalid},
		{name: "managed mode", given: []given{gAcme, gManaged, gCarol}, when: edit("u3", LocalUserEdit{Active: &no}), err: ErrLocked},
	})
}

func TestCommand_CreateGroup(t *testing.T) {
	t.Parallel()
	create := func(in map[string]any) func(env *cmdEnv) error {
		return func(env *cmdEnv) error {
			_, _, _, err := env.svc.CreateGroup(env.ctx, OriginSCIM, "t1", in)
			return err
		}
	}
	runCmdCases(t, []cmdCase{
		{name: "members naming no user are skipped", given: []given{gAcme, gManaged, gAda},
			when: create(map[string]any{"displayName": "Ops", "members": []any{
				map[string]any{"value": "u1"}, map[string]any{"value": "u1"}, map[string]any{"value": "nobody"}}}),
			then: []string{
				`group/id1 group.created {"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"attributes":{"displayName":"Ops"},"members":[{"value":"u1"}],"skipped":["nobody"]}`,
				`claim displayName ops id1`,
			}},
		{name: "SCIM create locks a company in manual mode", given: []given{gAcme},
			when: create(map[string]any{"displayName": "Ops"}),
			then: []string{
				lockReq1,
				`group/id1 group.created {"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"attributes":{"displayName":"Ops"}}`,
				`claim displayName ops id1`,
			}},
		{name: "a displayName held in another case", given: []given{gAcme, gManaged, gAda, gBob, gFinance},
			when: create(map[string]any{"displayName": "FINANCE"}), err: ErrUniqueness},
		{name: "without displayName", given: []given{gAcme, gManaged},
			when: create(map[string]any{}), err: ErrInvalid},
	})
}

func TestCommand_PatchGroup(t *testing.T) {
	t.Parallel()
	patch := func(ifMatch *Version, ops ...scim.PatchOp) func(env *cmdEnv) error {
		return func(env *cmdEnv) error {
			_, err := env.svc.PatchGroup(env.ctx, OriginSCIM, "t1", "g1", ops, env.resolve(KindGroup, "g1", ifMatch))
			return err
		}
	}
	members := func(ids ...string) map[string]any {
		var list []any
		for _, id := range ids {
			list = append(list, map[string]any{"value": id})
		}
		return map[string]any{"members": list}
	}
	base := []given{gAcme, gManaged, gAda, gBob, gCarol, gFinance}
	runCmdCases(t, []cmdCase{
		{name: "add: only new members are recorded", given: base,
			when: patch(nil, scim.PatchOp{Op: scim.PatchAdd, Value: members("u1", "u3", "nobody")}),
			then: []string{`group/g1 group.members_added {"members":[{"value":"u3"}],"skipped":["nobody"]}`}},
		{name: "adding present members appends nothing", given: base,
			when: patch(nil, scim.PatchOp{Op: scim.PatchAdd, Value: members("u1", "u2")})},
		{name: "rename with If-Match moves the claim", given: base,
			when: patch(atHead, scim.PatchOp{Op: scim.PatchReplace, Value: map[string]any{"displayName": "Treasury"}}),
			then: []string{
				`group/g1 group.renamed {"changes":[{"path":"displayName","old":"Finance","new":"Treasury"}],"method":"PATCH"}`,
				`release displayName finance g1`,
				`claim displayName treasury g1`,
			}},
		{name: "another attribute", given: base,
			when: patch(nil, scim.PatchOp{Op: scim.PatchAdd, Value: map[string]any{"externalId": "fin"}}),
			then: []string{`group/g1 group.attributes_changed {"changes":[{"path":"externalId","new":"fin"}],"method":"PATCH"}`}},
		{name: "If-Match of another version", given: base,
			when: patch(versionOf(5), scim.PatchOp{Op: scim.PatchAdd, Value: members("u3")}), err: ErrPrecondition},
		{name: "unknown group", given: []given{gAcme, gManaged},
			when: patch(nil, scim.PatchOp{Op: scim.PatchAdd, Value: members("u3")}), err: ErrNotFound},
		{name: "a displayName held by another group", given: append(base, gSales),
			when: patch(nil, scim.PatchOp{Op: scim.PatchReplace, Value: map[string]any{"displayName": "sales"}}), err: ErrUniqueness},
	})
}

func TestCommand_ReplaceGroup(t *testing.T) {
	t.Parallel()
	replace := func(in map[string]any) func(env *cmdEnv) error {
		return func(env *cmdEnv) error {
			_, err := env.svc.ReplaceGroup(env.ctx, OriginSCIM, "t1", "g1", in, nil)
			return err
		}
	}
	base := []given{gAcme, gManaged, gAda, gBob, gCarol, gFinance}
	runCmdCases(t, []cmdCase{
		{name: "the member list is replaced", given: base,
			when: replace(map[string]any{"displayName": "Finance", "members": []any{map[string]any{"value": "u2"}, map[string]any{"value": "u3"}}}),
			then: []string{
				`group/g1 group.attributes_changed {"changes":null,"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"method":"PUT"}`,
				`group/g1 group.members_added {"members":[{"value":"u3"}]}`,
				`group/g1 group.members_removed {"members":["u1"]}`,
			}},
		{name: "invalid representation", given: base,
			when: replace(map[string]any{"displayName": 7}), err: ErrInvalid},
	})
}

func TestCommand_DeleteGroup(t *testing.T) {
	t.Parallel()
	del := func(o Origin, ifMatch *Version) func(env *cmdEnv) error {
		return func(env *cmdEnv) error {
			_, err := env.svc.DeleteGroup(env.ctx, o, "t1", "g1", env.resolve(KindGroup, "g1", ifMatch))
			return err
		}
	}
	base := []given{gAcme, gManaged, gAda, gBob, gFinance}
	runCmdCases(t, []cmdCase{
		{name: "releases the displayName", given: base, when: del(OriginSCIM, atHead),
			then: []string{`group/g1 group.deleted {}`, `release displayName finance g1`}},
		{name: "If-Match of another version", given: base, when: del(OriginSCIM, versionOf(4)), err: ErrPrecondition},
		{name: "twice", given: append(base, `group/g1 group.deleted`), when: del(OriginSCIM, nil), err: ErrNotFound},
		{name: "the company API while managed", given: base, when: del(OriginCompanyAPI, nil), err: ErrLocked},
	})
}

func TestCommand_CreateTenant(t *testing.T) {
	t.Parallel()
	create := func(name string) func(env *cmdEnv) error {
		return func(env *cmdEnv) error {
			_, token, err := env.svc.CreateTenant(env.ctx, name)
			if err == nil && token == "" {
				t.Error("no token")
			}
			return err
		}
	}
	long := string(make([]byte, 201))
	runCmdCases(t, []cmdCase{
		{name: "keeps the token's hash only", when: create(" Fabrikam "),
			then: []string{`tenant/id1 tenant.created {"name":"Fabrikam","scimTokenHash":"` + HashToken("idl_scim_a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s") + `"}`}},
		{name: "a name is required", when: create("  "), err: ErrInvalid},
		{name: "a long name", when: create(long), err: ErrInvalid},
	})
}

func TestCommand_SetFeatures(t *testing.T) {
	t.Parallel()
	set := func(groups *bool) func(env *cmdEnv) error {
		return func(env *cmdEnv) error {
			_, err := env.svc.SetFeatures(env.ctx, "t1", groups)
			return err
		}
	}
	yes, no := true, false
	runCmdCases(t, []cmdCase{
		{name: "groups off", given: []given{gAcme}, when: set(&no), then: []string{`tenant/t1 tenant.features_changed {"groups":false}`}},
		{name: "groups on when on", given: []given{gAcme}, when: set(&yes)},
		{name: "nothing", given: []given{gAcme}, when: set(nil)},
		{name: "groups on again", given: []given{gAcme, `tenant/t1 tenant.features_changed {"groups":false}`}, when: set(&yes),
			then: []string{`tenant/t1 tenant.features_changed {"groups":true}`}},
		{name: "unknown tenant", when: set(&no), err: ErrNotFound},
	})
}

func TestCommand_DeactivateProvisioning(t *testing.T) {
	t.Parallel()
	deactivate := func(env *cmdEnv) error {
		_, err := env.svc.DeactivateProvisioning(env.ctx, "t1", "by hand")
		return err
	}
	runCmdCases(t, []cmdCase{
		{name: "managed", given: []given{gAcme, gManaged}, when: deactivate,
			then: []string{`tenant/t1 tenant.provisioning_unlocked {"reason":"by hand"}`}},
		{name: "already manual", given: []given{gAcme}, when: deactivate},
		{name: "unknown tenant", when: deactivate, err: ErrNotFound},
	})
}

// lagging makes env's read model stay at the log's current head until Sync is called, and
// counts the calls of Sync.
func lagging(env *cmdEnv) *int {
	head := env.log.head
	syncs := 0
	read := memRead{log: env.log, lag: &head}
	env.svc.Read = read
	env.svc.Sync = func(_ context.Context, v Version) error {
		syncs++
		*read.lag = v
		return nil
	}
	return &syncs
}

func TestCommand_conflicts(t *testing.T) {
	t.Parallel()
	t.Run("a stale user row loses the race, the retry replays the log", func(t *testing.T) {
		t.Parallel()
		env := newCmdEnv(t, gAcme, gManaged, gAda)
		lagging(env)
		// A change the read model has not applied yet.
		if _, _, err := env.svc.ReplaceUser(env.ctx, OriginSCIM, "t1", "u1", map[string]any{"userName": "ada@acme.test", "title": "CFO"}, nil); err != nil {
			t.Fatal(err)
		}
		env.start = len(env.log.batches)
		u, changed, err := env.svc.ReplaceUser(env.ctx, OriginSCIM, "t1", "u1", map[string]any{"userName": "ada@acme.test", "title": "CEO"}, nil)
		if err != nil || !changed || u.Version != *env.resolve(KindUser, "u1", atHead) {
			t.Fatalf("user %+v changed %v: %v", u, changed, err)
		}
		env.then(`user/u1 user.attributes_changed {"changes":[{"path":"title","old":"CFO","new":"CEO"}],"method":"PUT"}`)
	})
	t.Run("a stale group row waits for the projector", func(t *testing.T) {
		t.Parallel()
		env := newCmdEnv(t, gAcme, gManaged, gAda, gBob, gCarol, gFinance)
		syncs := lagging(env)
		if _, err := env.svc.PatchGroup(env.ctx, OriginSCIM, "t1", "g1", []scim.PatchOp{{Op: scim.PatchAdd, Value: map[string]any{"externalId": "fin"}}}, nil); err != nil {
			t.Fatal(err)
		}
		env.start = len(env.log.batches)
		// With If-Match the command decides on the log's version: the row waits for it.
		r, err := env.svc.PatchGroup(env.ctx, OriginSCIM, "t1", "g1", []scim.PatchOp{{Op: scim.PatchReplace, Value: map[string]any{"externalId": "fin2"}}}, env.resolve(KindGroup, "g1", atHead))
		if err != nil || !r.Changed || r.Group.Version != *env.resolve(KindGroup, "g1", atHead) || r.Group.Members != 2 {
			t.Fatalf("result %+v: %v", r, err)
		}
		if *syncs != 1 {
			t.Errorf("Sync called %d times, want 1", *syncs)
		}
		env.then(`group/g1 group.attributes_changed {"changes":[{"path":"externalId","old":"fin","new":"fin2"}],"method":"PATCH"}`)
	})
	t.Run("lost races are decided again", func(t *testing.T) {
		t.Parallel()
		env := newCmdEnv(t, gAcme, gManaged, gAda)
		env.log.conflicts = maxConflictRetries - 1
		if _, err := env.svc.DeleteUser(env.ctx, OriginSCIM, "t1", "u1", nil); err != nil {
			t.Fatal(err)
		}
		env.then(`user/u1 user.deleted {}`, `release userName ada@acme.test u1`)
	})
	t.Run("too many lost races", func(t *testing.T) {
		t.Parallel()
		env := newCmdEnv(t, gAcme, gManaged, gAda)
		env.log.conflicts = maxConflictRetries
		if _, err := env.svc.DeleteUser(env.ctx, OriginSCIM, "t1", "u1", nil); !errors.Is(err, ErrConflict) {
			t.Fatalf("err = %v, want ErrConflict", err)
		}
		env.then()
	})
	t.Run("a lost race with If-Match fails the precondition", func(t *testing.T) {
		t.Parallel()
		env := newCmdEnv(t, gAcme, gManaged, gAda)
		env.log.conflicts = 1
		if _, err := env.svc.DeleteUser(env.ctx, OriginSCIM, "t1", "u1", versionOf(3)); !errors.Is(err, ErrPrecondition) {
			t.Fatalf("err = %v, want ErrPrecondition", err)
		}
		env.then()
	})
	t.Run("a company locked after the decision fails the guarded local write", func(t *testing.T) {
		t.Parallel()
		env := newCmdEnv(t, gAcme, gCarol)
		no := false
		// The lock lands between decision and append: the first append sees it first.
		env.svc.Log = lockFirst{env.log, gManaged.event(t)}
		_, err := env.svc.EditUserLocally(env.ctx, OriginCompanyAPI, "t1", "u3", LocalUserEdit{Active: &no})
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("err = %v, want ErrLocked", err)
		}
	})
}

// lockFirst locks the company just before the first append of a user event, as a racing SCIM
// request would.
type lockFirst struct {
	*recLog
	lock Event
}

func (l lockFirst) Append(ctx context.Context, b Batch) (Version, error) {
	if v, _ := l.recLog.Version(ctx, b.Tenant, KindTenant, string(b.Tenant)); v == 1 {
		if _, err := l.recLog.Append(ctx, Batch{Tenant: b.Tenant, Writes: []Write{{Event: l.lock, NoExpect: true}}}); err != nil {
			return 0, err
		}
	}
	return l.recLog.Append(ctx, b)
}

// The domain knows no limit of the log's batches: a user in more groups than one atomic batch
// of the log holds leaves every one of them (the eventstore appends what does not fit right
// after the rest).
func TestCommand_DeleteUser_in_many_groups(t *testing.T) {
	t.Parallel()
	const groups = 1200
	givens := []given{gAcme, gManaged, gAda}
	for i := range groups {
		givens = append(givens, given(fmt.Sprintf(`group/g%04d group.created {"attributes":{"displayName":"G%d"},"members":[{"value":"u1"}]}`, i, i)))
	}
	env := newCmdEnv(t, givens...)
	if _, err := env.svc.DeleteUser(env.ctx, OriginSCIM, "t1", "u1", nil); err != nil {
		t.Fatal(err)
	}
	got := env.appended()
	if len(got) != 1+groups+1 {
		t.Fatalf("appended %d lines, want %d", len(got), groups+2)
	}
	for i, line := range got[1 : groups+1] {
		if want := fmt.Sprintf(`group/g%04d group.members_removed {"members":["u1"],"cause":"user.deleted"}`, i); line != want {
			t.Fatalf("line %d: %s, want %s", i+1, line, want)
		}
	}
	var d UserDeleted
	if err := json.Unmarshal([]byte(strings.TrimPrefix(got[0], "user/u1 user.deleted ")), &d); err != nil || len(d.Groups) != groups {
		t.Errorf("user.deleted lists %d groups (%v), want %d", len(d.Groups), err, groups)
	}
}
