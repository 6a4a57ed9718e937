package domain

import (
	"slices"
	"strings"
)

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

// isEmptyValue reports whether a PATCH value means "clear the attribute": null or "" (entra-scim.md
// §4.4 rule 6).
func isEmptyValue(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	}
	return false
}

// unwrapSingle returns the value meant for a single-valued target: a one-element array stands
// for its element and an empty array for null (entra-scim.md §4.4 rule 5). It returns an error
// wrapping ErrInvalid for an array of several values.
func unwrapSingle(v any, path string) (any, error) {
	list, ok := v.([]any)
	if !ok {
		return v, nil
	}
	switch len(list) {
	case 0:
		return nil, nil
	case 1:
		return list[0], nil
	}
	return nil, Errorf(ErrInvalid, "%s is single-valued but got %d values", path, len(list))
}

// attrPathText renders p so that it can be resolved again. Unlike [AttrPath.String] it copes
// with a parser that split a URN-prefixed or legacy dotted path
// ("urn:…:enterprise:2.0:User.manager") at an unexpected place: the text is the same.
func attrPathText(p AttrPath) string {
	s := p.Attr
	switch {
	case p.URN != "" && s == "":
		s = p.URN
	case p.URN != "":
		s = p.URN + ":" + s
	}
	if p.Sub != "" {
		s += "." + p.Sub
	}
	return s
}

// hasPrefixFold reports whether s begins with prefix, ignoring case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// keyFold returns the key of m equal to name ignoring case (name itself if m has none), so an
// attribute is updated under the spelling it is stored with.
func keyFold(m map[string]any, name string) string {
	if _, ok := m[name]; ok {
		return name
	}
	var found string
	for k := range m {
		// The smallest matching key wins, so the choice does not depend on map order.
		if strings.EqualFold(k, name) && (found == "" || k < found) {
			found = k
		}
	}
	if found == "" {
		return name
	}
	return found
}

// childMap returns m[key] as an object. With create it makes (or, over a non-object, replaces)
// one; without, it returns nil when there is none.
func childMap(m map[string]any, key string, create bool) map[string]any {
	if c, ok := m[key].(map[string]any); ok {
		return c
	}
	if !create {
		return nil
	}
	c := make(map[string]any)
	m[key] = c
	return c
}

// sortedKeys returns m's keys in order, so that applying an object's keys is deterministic.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
