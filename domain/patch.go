package domain

// Patch operations of RFC 7644 §3.5.2, lower-cased ("Add", "REPLACE" … are accepted by the
// parser and normalised).
const (
	PatchAdd     = "add"
	PatchReplace = "replace"
	PatchRemove  = "remove"
)

// A PatchOp is one operation of a SCIM PATCH request. Path is nil when the request has no
// "path" (then Value is an object whose keys are attribute paths or extension URNs).
type PatchOp struct {
	Op    string
	Path  *PatchPath
	Value any
}

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
	MembersAdd       = "add"
	MembersRemove    = "remove"
	MembersRemoveAll = "removeAll"
	MembersReplace   = "replace"
)

// A MemberOp is what a group PATCH asks of the member list; the decision (which members are
// actually new or present) is taken against the current membership.
type MemberOp struct {
	Kind    string
	Members []Member
}
