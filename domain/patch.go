package domain

import "github.com/idledger/idledger/domain/scim"

// A Change is one attribute's difference between two states of a resource, as recorded in
// events for auditors: Path is an attribute path ("displayName", "name.givenName",
// "emails", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"); Old
// and New are the values before and after (nil = absent).
type Change struct {
	Path string `json:"path"`
	Old  any    `json:"old,omitempty"`
	New  any    `json:"new,omitempty"`
}

// A Member is one member of a group: a user id of the same tenant and an optional display
// name as the client sent it.
type Member struct {
	Value   string `json:"value"`
	Display string `json:"display,omitempty"`
	Type    string `json:"type,omitempty"`
}

// Kinds of MemberOp.
const (
	MembersAdd       = scim.MembersAdd
	MembersRemove    = scim.MembersRemove
	MembersRemoveAll = scim.MembersRemoveAll
	MembersReplace   = scim.MembersReplace
)

// A MemberOp is what a group PATCH asks of the member list; the decision (which members are
// actually new or present) is taken against the current membership.
type MemberOp struct {
	Kind    string
	Members []Member
}

// canonicalGroup is [scim.CanonicalGroup] with the members as event data.
func canonicalGroup(in map[string]any) (map[string]any, []Member, []string, error) {
	attrs, members, schemas, err := scim.CanonicalGroup(in)
	return attrs, fromSCIMMembers(members), schemas, err
}

// patchGroup is [scim.PatchGroup] with the member operations in event data.
func patchGroup(res map[string]any, ops []scim.PatchOp) (map[string]any, []MemberOp, error) {
	attrs, sops, err := scim.PatchGroup(res, ops)
	if err != nil {
		return nil, nil, err
	}
	mops := make([]MemberOp, len(sops))
	for i, op := range sops {
		mops[i] = MemberOp{Kind: op.Kind, Members: fromSCIMMembers(op.Members)}
	}
	return attrs, mops, nil
}

func fromSCIMMembers(ms []scim.Member) []Member {
	if ms == nil {
		return nil
	}
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = Member(m)
	}
	return out
}

// checkLen is [scim.CheckString]: the limits of a resource's values.
func checkLen(s, path string) error { return scim.CheckString(s, path) }
