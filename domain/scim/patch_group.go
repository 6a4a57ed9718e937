package scim

import (
	"strings"
)

// A Member is one member of a group as a client sends it: a user id and an optional display
// name and type.
type Member struct {
	Value   string
	Display string
	Type    string
}

// Kinds of MemberOp.
const (
	MembersAdd       = "add"
	MembersRemove    = "remove"
	MembersRemoveAll = "removeAll"
	MembersReplace   = "replace"
)

// A MemberOp is what a group PATCH asks of the member list; the caller decides against the
// current membership which members are actually new or present.
type MemberOp struct {
	Kind    string
	Members []Member
}

// CanonicalGroup validates a client's Group representation (a POST or PUT body) and returns
// the attributes to store (displayName, externalId and extension objects under their URN keys;
// id, meta, schemas and unknown attributes dropped), the members, and the schemas to echo: the
// core Group schema, then the extension URNs that have values, sorted. Members with the same
// value are kept once (the first). It returns an error wrapping ErrInvalid when displayName is
// missing or empty, a value has the wrong type, or a member has no value.
func CanonicalGroup(in map[string]any) (map[string]any, []Member, []string, error) {
	out := make(map[string]any)
	var members []Member
	for _, k := range sortedKeys(in) {
		v := in[k]
		if v == nil {
			continue
		}
		lk := strings.ToLower(k)
		switch {
		case lk == "displayname", lk == "externalid":
			s, err := asString(v, k)
			if err != nil {
				return nil, nil, nil, err
			}
			if s != "" {
				out[groupAttrName(lk)] = s
			}
		case lk == "members":
			ms, err := parseMembers(v)
			if err != nil {
				return nil, nil, nil, err
			}
			members = ms
		case strings.HasPrefix(lk, "urn:"):
			// An extension: kept as sent, like a user's custom extension.
			if obj, ok := v.(map[string]any); ok && len(obj) > 0 {
				out[k] = cloneMap(obj)
			}
		}
	}
	if name, _ := out["displayName"].(string); strings.TrimSpace(name) == "" {
		return nil, nil, nil, errorf(ErrInvalid, "displayName is required")
	}
	return out, members, groupSchemas(out), nil
}

// groupSchemas returns the core Group schema followed by the extension URNs of res, sorted.
func groupSchemas(res map[string]any) []string {
	out := []string{SchemaGroup}
	for _, k := range sortedKeys(res) {
		if hasPrefixFold(k, "urn:") {
			out = append(out, k)
		}
	}
	return out
}

func groupAttrName(lower string) string {
	if lower == "displayname" {
		return "displayName"
	}
	return "externalId"
}

// PatchGroup applies the operations of one SCIM PATCH request to a group. res holds the group's
// attributes without members (displayName, externalId, extension objects) and is not modified;
// PatchGroup returns the new attributes and, in request order, what the request asks of the
// member list. It understands both of Entra's dialects:
//
//	add members [{"value": id}, …]          → MembersAdd
//	remove members [{"value": id}, …]       → MembersRemove of exactly those (not all)
//	remove members[value eq "id"]           → MembersRemove (also several joined by "or")
//	remove members (no value)               → MembersRemoveAll
//	replace members [{"value": id}, …]      → MembersReplace
//
// and no-path add or replace whose value object has displayName, externalId, members or
// extension URN keys. A member is an object with "value" (and optional "display" or
// "displayName", "type", "$ref") or a bare id string.
//
// PatchGroup returns an error wrapping ErrInvalid if displayName would become empty or a member
// value is not a non-empty string, ErrInvalidPath for a target it cannot resolve (a members
// filter other than value eq, a sub-attribute of displayName), ErrMutability for id, meta or
// schemas, ErrNoTarget for remove without a path, and ErrInvalidSyntax for an unknown op.
// Unknown attributes are ignored.
func PatchGroup(res map[string]any, ops []PatchOp) (map[string]any, []MemberOp, error) {
	work := cloneMap(res)
	if work == nil {
		work = make(map[string]any)
	}
	var mops []MemberOp
	for i, op := range ops {
		got, err := applyGroupOp(work, op)
		if err != nil {
			return nil, nil, wrapOpErr(i, err)
		}
		mops = append(mops, got...)
	}
	return work, mops, nil
}

// applyGroupOp applies one operation to work and returns the member operations it asks for.
func applyGroupOp(work map[string]any, op PatchOp) ([]MemberOp, error) {
	op.Op = strings.ToLower(op.Op) // the parser lower-cases; this guards other callers
	switch op.Op {
	case PatchAdd, PatchReplace, PatchRemove:
	default:
		return nil, errorf(ErrInvalidSyntax, "unknown op %q", op.Op)
	}
	if op.Path == nil {
		if op.Op == PatchRemove {
			return nil, errorf(ErrNoTarget, "remove needs a path")
		}
		v, err := unwrapSingle(op.Value, "value")
		if err != nil {
			return nil, err
		}
		obj, ok := v.(map[string]any)
		if !ok {
			if v == nil {
				return nil, nil
			}
			return nil, errorf(ErrInvalid, "value must be an object when path is omitted")
		}
		var mops []MemberOp
		for _, k := range sortedKeys(obj) {
			if strings.EqualFold(k, "schemas") {
				continue
			}
			if strings.ContainsAny(k, "[]") {
				return nil, errorf(ErrInvalidPath, "%q: a filtered path must be an operation's path", k)
			}
			p, err := parseGroupKey(k)
			if err != nil {
				return nil, err
			}
			got, err := applyGroupPath(work, op.Op, p, k, nil, "", obj[k])
			if err != nil {
				return nil, err
			}
			mops = append(mops, got...)
		}
		return mops, nil
	}
	return applyGroupPath(work, op.Op, op.Path.Path, op.Path.Path.String(), op.Path.Filter, op.Path.ElemSub, op.Value)
}

// parseGroupKey parses a key of a no-path operation's value object as an attribute path. A
// key that is no attribute path ("1st", "a:b", "urn:…:Group:1st") is split at its dot (and
// after "urn:" at its last colon) and resolved like one: an unknown attribute is ignored.
func parseGroupKey(key string) (AttrPath, error) {
	s := strings.TrimSpace(key)
	if strings.ContainsAny(s, "[] \"") || s == "" {
		return AttrPath{}, errorf(ErrInvalidPath, "invalid path %q", key)
	}
	p, ok, err := parseAttrPath(s, true)
	switch {
	case !hasPrefixFold(s, "urn:") && (err != nil || !ok):
		name, sub, _ := strings.Cut(s, ".")
		return AttrPath{Attr: name, Sub: sub}, nil
	case err != nil:
		return AttrPath{}, errorf(ErrInvalidPath, "invalid path %q: %s", key, err.Error())
	case !ok:
		return looseURNKey(s)
	}
	return p, nil
}

// applyGroupPath applies one operation on path p (with an optional value filter); text is the
// path as written, for error details.
func applyGroupPath(work map[string]any, op string, p AttrPath, text string, f Filter, elemSub string, value any) ([]MemberOp, error) {
	if p.URN != "" {
		t := extensionTarget(userTarget{path: text, filter: f}, work, sortedKeys(work), "Group", p)
		return nil, applyRaw(work, op, t, value)
	}
	name, sub := p.Attr, p.Sub
	switch strings.ToLower(name) {
	case "id", "meta", "schemas":
		return nil, errorf(ErrMutability, "%s is read-only", name)
	case "members":
		if sub != "" {
			return nil, errorf(ErrInvalidPath, "%q: members sub-attributes cannot be patched", text)
		}
		return membersOp(op, f, elemSub, value)
	case "displayname", "externalid":
		if sub != "" || f != nil {
			return nil, errorf(ErrInvalidPath, "%s has no sub-attributes", name)
		}
		return nil, setGroupString(work, op, groupAttrName(strings.ToLower(name)), value)
	}
	return nil, nil // unknown attributes are ignored
}

// setGroupString sets or clears displayName or externalId.
func setGroupString(work map[string]any, op, name string, value any) error {
	var v any
	if op != PatchRemove {
		var err error
		if v, err = unwrapSingle(value, name); err != nil {
			return err
		}
	}
	if isEmptyValue(v) {
		if name == "displayName" {
			return errorf(ErrInvalid, "displayName may not be empty")
		}
		delete(work, name)
		return nil
	}
	s, err := asString(v, name)
	if err != nil {
		return err
	}
	if name == "displayName" && strings.TrimSpace(s) == "" {
		return errorf(ErrInvalid, "displayName may not be empty")
	}
	work[name] = s
	return nil
}

// membersOp turns an operation on "members" into a MemberOp.
func membersOp(op string, f Filter, elemSub string, value any) ([]MemberOp, error) {
	if f != nil {
		ids, ok := memberFilterValues(f)
		if op != PatchRemove || !ok || (elemSub != "" && !strings.EqualFold(elemSub, "value")) {
			return nil, errorf(ErrInvalidPath, `members filters are supported only in remove, as value eq "id" joined by or`)
		}
		ms := make([]Member, 0, len(ids))
		seen := make(map[string]bool, len(ids))
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				ms = append(ms, Member{Value: id})
			}
		}
		return []MemberOp{{Kind: MembersRemove, Members: ms}}, nil
	}
	if op == PatchRemove && value == nil {
		return []MemberOp{{Kind: MembersRemoveAll}}, nil
	}
	ms, err := parseMembers(value)
	if err != nil {
		return nil, err
	}
	switch op {
	case PatchReplace:
		return []MemberOp{{Kind: MembersReplace, Members: ms}}, nil
	case PatchRemove:
		// Entra's default dialect lists the members to remove in value; an
		// empty list removes nobody.
		if len(ms) == 0 {
			return nil, nil
		}
		return []MemberOp{{Kind: MembersRemove, Members: ms}}, nil
	}
	if len(ms) == 0 {
		return nil, nil
	}
	return []MemberOp{{Kind: MembersAdd, Members: ms}}, nil
}

// memberFilterValues returns the ids of a filter made of `value eq "id"` comparisons joined by
// "or", and false for any other filter.
func memberFilterValues(f Filter) ([]string, bool) {
	switch x := derefFilter(f).(type) {
	case CompareFilter:
		id, ok := x.Value.(string)
		if !strings.EqualFold(x.Op, OpEq) || x.Path.URN != "" || x.Path.Sub != "" || !strings.EqualFold(x.Path.Attr, "value") ||
			!ok || strings.TrimSpace(id) == "" {
			return nil, false
		}
		return []string{id}, true
	case LogicalFilter:
		if !strings.EqualFold(x.Op, "or") {
			return nil, false
		}
		l, ok1 := memberFilterValues(x.Left)
		r, ok2 := memberFilterValues(x.Right)
		return append(l, r...), ok1 && ok2
	}
	return nil, false
}

// parseMembers reads a members value: a list (or a single element) of objects with "value"
// and optional "display"/"displayName" and "type", or bare id strings. null elements are
// skipped and repeated values kept once.
func parseMembers(v any) ([]Member, error) {
	list, ok := v.([]any)
	if !ok {
		if v == nil {
			return nil, nil
		}
		list = []any{v}
	}
	out := make([]Member, 0, len(list))
	seen := make(map[string]bool, len(list))
	for _, e := range list {
		var m Member
		switch x := e.(type) {
		case nil:
			continue
		case string:
			m.Value = x
		case map[string]any:
			m.Value, _ = getFold(x, "value").(string)
			if d, ok := getFold(x, "display").(string); ok {
				m.Display = d
			} else if d, ok := getFold(x, "displayName").(string); ok {
				m.Display = d
			}
			m.Type, _ = getFold(x, "type").(string)
		default:
			return nil, errorf(ErrInvalid, "members: each member must be an object with a value")
		}
		if strings.TrimSpace(m.Value) == "" {
			return nil, errorf(ErrInvalid, "members: each member needs a non-empty string value")
		}
		if !seen[m.Value] {
			seen[m.Value] = true
			out = append(out, m)
		}
	}
	return out, nil
}
