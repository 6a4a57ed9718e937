package scim

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// PatchUser applies the operations of one SCIM PATCH request (RFC 7644 §3.5.2, with both of
// Entra's dialects) to a user resource in the canonical form of [CanonicalUser] and returns the new resource, again canonical, and the new schemas list:
// schemas starts from the given one, an extension URN is added when its extension gains values
// and removed when it becomes empty. res is not modified. The operations apply atomically: on
// error there is no result.
//
// Paths may be simple ("title"), sub-attributes ("name.givenName", case-insensitive), filtered
// multi-valued paths ("emails[type eq \"work\"].value"; add and replace create the element when
// the filter matches none), enterprise or custom extension paths
// ("urn:…:enterprise:2.0:User:department", also the legacy "…:2.0:User.manager"), a bare
// "manager" (the enterprise one), or absent, in which case Value is an object whose keys are
// such paths or bare extension URNs. Unknown attributes are ignored, as by CanonicalUser; an
// empty string or null value clears the target.
//
// PatchUser returns an error wrapping ErrInvalidPath for a path it cannot resolve (a filter on
// a single-valued attribute other than manager, a sub-attribute of a simple attribute, a
// filtered path as a value key, a filter on a custom extension attribute), ErrMutability for
// an operation on id, meta, schemas or groups (a "schemas" key of a no-path value is skipped),
// ErrNoTarget for remove without a path, ErrInvalid for a value of the wrong type, several
// primary values or an empty userName, and ErrInvalidSyntax for an unknown op.
func PatchUser(res map[string]any, schemas []string, ops []PatchOp) (map[string]any, []string, error) {
	work := cloneMap(res)
	if work == nil {
		work = make(map[string]any)
	}
	for i, op := range ops {
		if err := applyUserOp(work, schemas, op); err != nil {
			return nil, nil, wrapOpErr(i, err)
		}
	}
	out, _, err := CanonicalUser(work)
	if err != nil {
		return nil, nil, err
	}
	if !hasActive(work) {
		// CanonicalUser gives a new user "active": true; a PATCH that removed or cleared
		// active leaves it unassigned (RFC 7644 §3.5.2.2), which reads as inactive, so that a
		// removal never re-activates a deactivated user.
		delete(out, "active")
	}
	return out, userSchemas(schemas, out), nil
}

// hasActive reports whether a user's attributes, in any key case, assign active.
func hasActive(work map[string]any) bool {
	for k, v := range work {
		if v != nil && strings.EqualFold(k, "active") {
			return true
		}
	}
	return false
}

// wrapOpErr prefixes a domain error's detail with the operation's position, keeping its kind,
// so a client can tell which operation of a request failed.
func wrapOpErr(i int, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return &Error{Kind: e.Kind, Detail: fmt.Sprintf("operation %d: %s", i+1, e.Detail)}
	}
	return err
}

// userSchemas returns the schemas of a patched user: the core schema first, then the old
// list's extension URNs that still have values, then extensions that gained values, sorted.
func userSchemas(old []string, res map[string]any) []string {
	out := []string{SchemaUser}
	has := func(s string) bool {
		return slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, s) })
	}
	for _, s := range old {
		if has(s) {
			continue
		}
		if _, ok := res[keyFold(res, s)]; ok && hasPrefixFold(s, "urn:") {
			out = append(out, s)
		}
	}
	for _, k := range sortedKeys(res) {
		if hasPrefixFold(k, "urn:") && !has(k) {
			out = append(out, k)
		}
	}
	return out
}

// externalIDAttr describes externalId, a common attribute (RFC 7643 §3.1) that UserAttributes
// leaves out.
var externalIDAttr = Attribute{Name: "externalId", Type: TypeString, CaseExact: true}

// typeUnique names the multi-valued attributes in which a "type" occurs at most once, as
// Entra maps them (one work email, one mobile number, …). roles, entitlements and x509Certificates are not among them: Entra
// sends every app role with type "WindowsAzureActiveDirectoryRole".
var typeUnique = map[string]bool{"emails": true, "phoneNumbers": true, "ims": true, "photos": true, "addresses": true}

// A userTarget is a PATCH target resolved against the User schemas.
type userTarget struct {
	path string // the path as written, for error details
	// ext is "" for a core attribute, SchemaEnterpriseUser, or a custom extension's key.
	ext string
	// attr describes a core or enterprise attribute; nil for a custom extension (kept raw).
	attr *Attribute
	// name is the attribute's name as stored; "" targets the whole extension object.
	name string
	// sub is the sub-attribute after a dot ("givenName" in name.givenName).
	sub string
	// filter and elemSub come from a value filter path: emails[filter].elemSub.
	filter  Filter
	elemSub string
	// ignore marks an unknown attribute: add and replace do nothing, remove too.
	ignore bool
}

// applyUserOp applies one operation to work in place.
func applyUserOp(work map[string]any, schemas []string, op PatchOp) error {
	op.Op = strings.ToLower(op.Op) // the parser lower-cases; this guards other callers
	switch op.Op {
	case PatchAdd, PatchReplace, PatchRemove:
	default:
		return errorf(ErrInvalidSyntax, "unknown op %q", op.Op)
	}
	if op.Path == nil {
		if op.Op == PatchRemove {
			return errorf(ErrNoTarget, "remove needs a path")
		}
		v, err := unwrapSingle(op.Value, "value")
		if err != nil {
			return err
		}
		obj, ok := v.(map[string]any)
		if !ok {
			if v == nil {
				return nil
			}
			return errorf(ErrInvalid, "value must be an object when path is omitted")
		}
		for _, k := range sortedKeys(obj) {
			if strings.EqualFold(k, "schemas") {
				continue // the schemas list follows from the attributes
			}
			if strings.ContainsAny(k, "[]") {
				return errorf(ErrInvalidPath, "%q: a filtered path must be an operation's path", k)
			}
			t, err := resolveUserKey(work, schemas, k)
			if err != nil {
				return err
			}
			if err := applyUserTarget(work, schemas, op.Op, t, obj[k]); err != nil {
				return err
			}
		}
		return nil
	}
	t, err := resolveUserPath(work, schemas, op.Path.Path, op.Path.Path.String())
	if err != nil {
		return err
	}
	if op.Path.Filter != nil {
		if t.sub != "" || (t.attr == nil && !t.ignore) {
			return errorf(ErrInvalidPath, "%q: a value filter needs a multi-valued attribute", t.path)
		}
		t.filter, t.elemSub = op.Path.Filter, op.Path.ElemSub
	} else if op.Path.ElemSub != "" {
		return errorf(ErrInvalidPath, "%q: a sub-attribute after a filter needs a filter", t.path)
	}
	return applyUserTarget(work, schemas, op.Op, t, op.Value)
}

// resolveUserKey resolves a key of a no-path operation's value object, an attribute path
// written as text: "userName", "name.givenName", "urn:…:core:2.0:User:userName",
// "urn:…:enterprise:2.0:User:manager" (or "….User.manager"), a custom
// "urn:…:<Name>:2.0:User:<attr>", or a bare extension URN. A key that is no attribute path
// ("1st", "a$", "urn:…:User:1st") is split at its dot (and last colon) and resolved like one:
// an unknown attribute is ignored like CanonicalUser ignores it.
func resolveUserKey(work map[string]any, schemas []string, key string) (userTarget, error) {
	s := strings.TrimSpace(key)
	if strings.ContainsAny(s, "[] \"") || s == "" {
		return userTarget{path: s}, errorf(ErrInvalidPath, "invalid path %q", key)
	}
	p, ok, err := parseAttrPath(s, true)
	switch {
	case !hasPrefixFold(s, "urn:") && (err != nil || !ok):
		name, sub, valid := splitKey(s)
		if !valid {
			return userTarget{path: s}, errorf(ErrInvalidPath, "invalid path %q", key)
		}
		return resolveAttr(userTarget{path: s}, "", UserAttributes, name, sub)
	case err != nil:
		return userTarget{path: s}, errorf(ErrInvalidPath, "invalid path %q: %s", key, err.Error())
	case !ok:
		if p, err = looseURNKey(s); err != nil {
			return userTarget{path: s}, err
		}
	}
	return resolveUserPath(work, schemas, p, s)
}

// looseURNKey reads a key that begins with "urn:" but is no attribute path (its attribute
// name breaks the grammar, "urn:acme:2.0:User:1st"): the URN ends at the last colon, and what
// follows is attr or attr.sub, kept as written. Custom extensions keep such names; the schema
// attributes have none, so a core or enterprise one is ignored as unknown.
func looseURNKey(s string) (AttrPath, error) {
	i := strings.LastIndexByte(s, ':')
	name, sub, dotted := strings.Cut(s[i+1:], ".")
	if i <= len("urn:") || name == "" || (dotted && sub == "") {
		return AttrPath{}, errorf(ErrInvalidPath, "invalid path %q", s)
	}
	urn := s[:i]
	switch {
	case strings.EqualFold(urn, SchemaUser) || strings.EqualFold(urn, SchemaGroup):
		urn = ""
	case strings.EqualFold(urn, SchemaEnterpriseUser):
		urn = SchemaEnterpriseUser
	}
	return AttrPath{URN: urn, Attr: name, Sub: sub}, nil
}

// resolveUserPath resolves a parsed attribute path against the User schemas: a core attribute
// (the parser has dropped the core URN), an enterprise attribute or the whole enterprise
// extension, or a custom extension's attribute or whole object. text is the path as the
// client wrote it, for error details.
func resolveUserPath(work map[string]any, schemas []string, p AttrPath, text string) (userTarget, error) {
	t := userTarget{path: text}
	switch p.URN {
	case "":
		return resolveAttr(t, "", UserAttributes, p.Attr, p.Sub)
	case SchemaEnterpriseUser:
		t.ext = SchemaEnterpriseUser
		if p.Attr == "" {
			return t, nil
		}
		return resolveAttr(t, SchemaEnterpriseUser, EnterpriseUserAttributes, p.Attr, p.Sub)
	}
	return extensionTarget(t, work, append(sortedKeys(work), schemas...), "User", p), nil
}

// extensionTarget resolves p into a custom extension of a resource ("User" or "Group"), kept
// without a schema. known are the extension URNs the resource has (stored keys, listed
// schemas), matched in any case. The parser ends a URN at its last colon (or after a version
// segment and the resource name), so the URN is taken one segment further when the parser
// took that segment for the attribute and it is a known URN's last or names the resource
// ("urn:acme:ext" or "urn:acme:ext.attr" with "urn:acme:ext" known, "urn:acme:User.attr").
func extensionTarget(t userTarget, work map[string]any, known []string, resource string, p AttrPath) userTarget {
	t.ext, t.name, t.sub = p.URN, p.Attr, p.Sub
	if p.Attr != "" {
		longer := p.URN + ":" + p.Attr
		if k, ok := findFold(known, longer); ok {
			t.ext, t.name, t.sub = k, p.Sub, ""
		} else if strings.EqualFold(p.Attr, resource) {
			t.ext, t.name, t.sub = longer, p.Sub, ""
		}
	}
	if k, ok := findFold(known, t.ext); ok {
		t.ext = k
	}
	t.ext = keyFold(work, t.ext)
	return t
}

// findFold returns the first of list that equals s ignoring case.
func findFold(list []string, s string) (string, bool) {
	for _, k := range list {
		if strings.EqualFold(k, s) {
			return k, true
		}
	}
	return "", false
}

// splitKey splits "attr" or "attr.sub" (a key of an object in a PATCH value); valid is false
// for an empty name or sub-attribute, a second dot or a colon in the name.
func splitKey(k string) (name, sub string, valid bool) {
	name, sub, dotted := strings.Cut(k, ".")
	valid = name != "" && !(dotted && (sub == "" || strings.Contains(sub, "."))) && !strings.Contains(name, ":")
	return name, sub, valid
}

// resolveAttr resolves attribute name (and sub-attribute sub, if not "") among attrs (core or
// enterprise).
func resolveAttr(t userTarget, ext string, attrs []Attribute, name, sub string) (userTarget, error) {
	t.ext, t.sub = ext, sub
	var a Attribute
	var ok bool
	if ext == "" {
		switch strings.ToLower(name) {
		case "id", "meta", "schemas":
			return t, errorf(ErrMutability, "%s is read-only", name)
		case "externalid":
			a, ok = externalIDAttr, true
		case "manager":
			// A bare "manager" is the enterprise extension's, as Entra sends it.
			t.ext = SchemaEnterpriseUser
			a, ok = findAttr(EnterpriseUserAttributes, name)
		default:
			a, ok = findAttr(attrs, name)
		}
	} else {
		a, ok = findAttr(attrs, name)
	}
	switch {
	case !ok || a.Mutability == "writeOnly":
		t.ignore = true // unknown attributes are ignored, like CanonicalUser does
		return t, nil
	case a.Mutability == "readOnly":
		return t, errorf(ErrMutability, "%s is read-only", a.Name)
	case sub != "" && a.Type != TypeComplex:
		return t, errorf(ErrInvalidPath, "%s has no sub-attributes", a.Name)
	}
	t.attr, t.name = &a, a.Name
	return t, nil
}

// applyUserTarget applies one operation to a resolved target.
func applyUserTarget(work map[string]any, schemas []string, op string, t userTarget, value any) error {
	if t.ignore {
		return nil
	}
	if t.attr == nil {
		if t.ext == SchemaEnterpriseUser {
			return applyWholeEnterprise(work, schemas, op, t, value)
		}
		return applyRaw(work, op, t, value)
	}
	c := work
	if t.ext != "" {
		c = childMap(work, t.ext, op != PatchRemove)
		if c == nil {
			return nil // removing from an absent extension
		}
		defer func() {
			if len(c) == 0 {
				delete(work, t.ext)
			}
		}()
	}
	a := *t.attr
	switch {
	case t.filter != nil:
		return applyFiltered(c, a, op, t, value)
	case t.sub != "":
		return applySub(c, a, op, t, value)
	default:
		return applyWhole(c, a, op, t, value)
	}
}

// applyWholeEnterprise applies an operation whose target is the enterprise extension itself:
// remove drops it, add and replace apply each key of the value object to it.
func applyWholeEnterprise(work map[string]any, schemas []string, op string, t userTarget, value any) error {
	if op == PatchRemove {
		delete(work, SchemaEnterpriseUser)
		return nil
	}
	v, err := unwrapSingle(value, t.path)
	if err != nil {
		return err
	}
	if isEmptyValue(v) {
		delete(work, SchemaEnterpriseUser)
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return errorf(ErrInvalid, "%s must be an object", SchemaEnterpriseUser)
	}
	for _, k := range sortedKeys(obj) {
		at := userTarget{path: SchemaEnterpriseUser + ":" + k}
		name, sub, valid := splitKey(k)
		if !valid {
			return errorf(ErrInvalidPath, "invalid path %q", at.path)
		}
		at, err := resolveAttr(at, SchemaEnterpriseUser, EnterpriseUserAttributes, name, sub)
		if err != nil {
			return err
		}
		if err := applyUserTarget(work, schemas, op, at, obj[k]); err != nil {
			return err
		}
	}
	return nil
}

// applyWhole applies an operation to a whole core or enterprise attribute.
func applyWhole(c map[string]any, a Attribute, op string, t userTarget, value any) error {
	if op == PatchRemove {
		if a.MultiValued && !isEmptyValue(value) {
			// Remove only the listed values, as Entra's default dialect does for group
			// members; an empty list removes nothing.
			list, ok := value.([]any)
			if !ok {
				list = []any{value}
			}
			return removeListed(c, a, t, list)
		}
		delete(c, a.Name)
		return nil
	}
	if a.MultiValued {
		if isEmptyValue(value) {
			delete(c, a.Name)
			return nil
		}
		nv, err := canonicalValue(a, value, t.path)
		if err != nil {
			return err
		}
		newList, _ := nv.([]any)
		if op == PatchReplace {
			setOrDelete(c, a.Name, nv)
			return nil
		}
		list := elements(c[a.Name])
		for _, e := range newList {
			list = mergeElement(a, list, e)
		}
		setList(c, a.Name, list)
		return nil
	}
	v, err := unwrapSingle(value, t.path)
	if err != nil {
		return err
	}
	if isEmptyValue(v) {
		delete(c, a.Name)
		return nil
	}
	obj, isObj := v.(map[string]any)
	if _, isRef := findAttr(a.SubAttributes, "value"); a.Type != TypeComplex || !isObj || isRef {
		// Simple attributes and references such as manager are set whole, so a new manager
		// keeps no $ref of the old one.
		cv, err := canonicalValue(a, v, t.path)
		if err != nil {
			return err
		}
		setOrDelete(c, a.Name, cv)
		return nil
	}
	// A complex attribute: the value's sub-attributes replace or add to the existing ones and
	// the others stay (RFC 7644 §3.5.2.1, §3.5.2.3).
	m := childMap(c, a.Name, true)
	for _, k := range sortedKeys(obj) {
		sa, ok := findAttr(a.SubAttributes, k)
		if !ok || sa.Mutability == "readOnly" {
			continue
		}
		cv, err := canonicalValue(sa, obj[k], t.path+"."+sa.Name)
		if err != nil {
			return err
		}
		setOrDelete(m, sa.Name, cv)
	}
	if len(m) == 0 {
		delete(c, a.Name)
	}
	return nil
}

// applySub applies an operation to a sub-attribute without a filter: "name.givenName",
// "manager.value", or "emails.value" (every element).
func applySub(c map[string]any, a Attribute, op string, t userTarget, value any) error {
	sa, ok := findAttr(a.SubAttributes, t.sub)
	if !ok || sa.Mutability == "readOnly" {
		return nil
	}
	var cv any
	if op != PatchRemove {
		v, err := unwrapSingle(value, t.path)
		if err != nil {
			return err
		}
		if !isEmptyValue(v) {
			if cv, err = canonicalValue(sa, v, t.path); err != nil {
				return err
			}
		}
	}
	if !a.MultiValued {
		m := childMap(c, a.Name, cv != nil)
		if m == nil {
			return nil
		}
		setOrDelete(m, sa.Name, cv)
		if len(m) == 0 {
			delete(c, a.Name)
		}
		return nil
	}
	list := elements(c[a.Name])
	if cv != nil && len(list) == 0 {
		list = []any{map[string]any{}}
	}
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			setOrDelete(m, sa.Name, cv)
		}
	}
	setList(c, a.Name, pruneElements(list))
	return nil
}

// applyFiltered applies an operation to the elements of a multi-valued attribute that match
// t.filter (or to their t.elemSub). add and replace create a missing element from the filter's
// eq-constants; remove of nothing succeeds.
func applyFiltered(c map[string]any, a Attribute, op string, t userTarget, value any) error {
	if !a.MultiValued {
		// Entra removes the manager with "manager[value eq \"…\"]"; the
		// single manager object is then filtered like a one-element list.
		m, isObj := c[a.Name].(map[string]any)
		if op != PatchRemove || a.Name != "manager" {
			return errorf(ErrInvalidPath, "%q: a value filter needs a multi-valued attribute", t.path)
		}
		if isObj && Match(t.filter, m) {
			if t.elemSub == "" {
				delete(c, a.Name)
			} else {
				delete(m, keyFold(m, t.elemSub))
				if len(m) == 0 {
					delete(c, a.Name)
				}
			}
		}
		return nil
	}
	var sa Attribute
	if t.elemSub != "" {
		var ok bool
		if sa, ok = findAttr(a.SubAttributes, t.elemSub); !ok || sa.Mutability == "readOnly" {
			return nil
		}
	}
	list := elements(c[a.Name])
	var hits []int
	for i, e := range list {
		if m, ok := e.(map[string]any); ok && Match(t.filter, m) {
			hits = append(hits, i)
		}
	}
	var v any
	if op != PatchRemove {
		var err error
		if v, err = unwrapSingle(value, t.path); err != nil {
			return err
		}
	}
	if op == PatchRemove || isEmptyValue(v) {
		for _, i := range hits {
			if t.elemSub == "" {
				list[i] = nil
			} else {
				delete(list[i].(map[string]any), sa.Name)
			}
		}
		setList(c, a.Name, pruneElements(list))
		return nil
	}
	var upd map[string]any // the sub-attributes to set on each hit
	if t.elemSub != "" {
		cv, err := canonicalValue(sa, v, t.path)
		if err != nil {
			return err
		}
		if cv == nil {
			return applyFiltered(c, a, PatchRemove, t, nil)
		}
		upd = map[string]any{sa.Name: cv}
	} else {
		single := a
		single.MultiValued = false
		cv, err := canonicalValue(single, v, t.path)
		if err != nil {
			return err
		}
		if upd, _ = cv.(map[string]any); upd == nil {
			return applyFiltered(c, a, PatchRemove, t, nil)
		}
	}
	if len(hits) == 0 {
		list = append(list, map[string]any{})
		hits = []int{len(list) - 1}
	}
	consts := filterConstants(t.filter, a)
	for _, i := range hits {
		m := list[i].(map[string]any)
		if op == PatchReplace && t.elemSub == "" {
			// Replacing a whole element keeps what the filter selected it by.
			clear(m)
			maps.Copy(m, consts)
		} else if len(m) == 0 {
			maps.Copy(m, consts)
		}
		maps.Copy(m, cloneMap(upd))
		if m["primary"] == true {
			clearPrimary(list, i)
		}
	}
	setList(c, a.Name, pruneElements(list))
	return nil
}

// filterConstants returns the sub-attribute values a filter fixes with "eq", joined by "and"
// ({"type": "work"} for type eq "work"), canonicalised; the rest of a filter fixes nothing.
func filterConstants(f Filter, a Attribute) map[string]any {
	out := make(map[string]any)
	var walk func(Filter)
	walk = func(f Filter) {
		switch x := derefFilter(f).(type) {
		case CompareFilter:
			if !strings.EqualFold(x.Op, OpEq) || x.Path.URN != "" || x.Path.Sub != "" || x.Value == nil {
				return
			}
			sa, ok := findAttr(a.SubAttributes, x.Path.Attr)
			if !ok || sa.Type == TypeComplex {
				return
			}
			if cv, err := canonicalValue(sa, x.Value, sa.Name); err == nil && cv != nil {
				out[sa.Name] = cv
			}
		case LogicalFilter:
			if strings.EqualFold(x.Op, "and") {
				walk(x.Left)
				walk(x.Right)
			}
		}
	}
	walk(f)
	return out
}

// removeListed removes the elements matching one of the listed values, where a listed value
// matches an element that has all its sub-attributes with equal values (the way Entra removes
// a group member or a role by value).
func removeListed(c map[string]any, a Attribute, t userTarget, listed []any) error {
	rm, err := canonicalValue(a, listed, t.path)
	if err != nil {
		return err
	}
	want, _ := rm.([]any)
	list := elements(c[a.Name])
	for i, e := range list {
		for _, w := range want {
			if subsetOf(w, e) {
				list[i] = nil
				break
			}
		}
	}
	setList(c, a.Name, pruneElements(list))
	return nil
}

// subsetOf reports whether every entry of the object small is in big with an equal value.
func subsetOf(small, big any) bool {
	s, ok1 := small.(map[string]any)
	b, ok2 := big.(map[string]any)
	if !ok1 || !ok2 {
		return reflect.DeepEqual(small, big)
	}
	if len(s) == 0 {
		return false
	}
	for k, v := range s {
		if !reflect.DeepEqual(b[k], v) {
			return false
		}
	}
	return true
}

// mergeElement adds e to a multi-valued attribute (RFC 7644 §3.5.2.1): an element with the
// same type (for attributes whose types are unique) or else the same value is replaced instead
// of duplicated, and a new primary clears the others.
func mergeElement(a Attribute, list []any, e any) []any {
	m, isObj := e.(map[string]any)
	at := -1
	if isObj {
		typ, _ := m["type"].(string)
		for i, old := range list {
			om, ok := old.(map[string]any)
			if !ok {
				continue
			}
			ot, _ := om["type"].(string)
			if typeUnique[a.Name] && typ != "" {
				if strings.EqualFold(ot, typ) {
					at = i
					break
				}
				continue
			}
			if v, ok := m["value"]; ok && reflect.DeepEqual(om["value"], v) && (typeUnique[a.Name] || strings.EqualFold(ot, typ)) {
				at = i
				break
			}
		}
	} else {
		at = slices.IndexFunc(list, func(old any) bool { return reflect.DeepEqual(old, e) })
	}
	if at >= 0 {
		list[at] = e
	} else {
		list = append(list, e)
		at = len(list) - 1
	}
	if isObj && m["primary"] == true {
		clearPrimary(list, at)
	}
	return list
}

// clearPrimary sets primary to false on every element of list but list[keep]: at most one
// value of a multi-valued attribute is primary (RFC 7643 §2.4).
func clearPrimary(list []any, keep int) {
	for i, e := range list {
		if m, ok := e.(map[string]any); ok && i != keep && m["primary"] == true {
			m["primary"] = false
		}
	}
}

// elements returns a multi-valued attribute's elements as a fresh slice.
func elements(v any) []any {
	list, _ := v.([]any)
	return slices.Clone(list)
}

// pruneElements drops removed (nil) elements and elements left with nothing but type, primary
// and display, which say nothing on their own (an email whose value was cleared).
func pruneElements(list []any) []any {
	return slices.DeleteFunc(list, func(e any) bool {
		if e == nil {
			return true
		}
		m, ok := e.(map[string]any)
		if !ok {
			return false
		}
		for k := range m {
			switch k {
			case "type", "primary", "display":
			default:
				return false
			}
		}
		return true
	})
}

// setList stores a multi-valued attribute, dropping it when empty.
func setList(c map[string]any, name string, list []any) {
	if len(list) == 0 {
		delete(c, name)
		return
	}
	c[name] = list
}

// setOrDelete sets c[name] = v, or deletes it for a nil v.
func setOrDelete(c map[string]any, name string, v any) {
	if v == nil {
		delete(c, name)
		return
	}
	c[name] = v
}

// applyRaw applies an operation to a custom extension, stored without schema: its attributes
// are set, merged and removed as sent.
func applyRaw(work map[string]any, op string, t userTarget, value any) error {
	if t.filter != nil {
		return errorf(ErrInvalidPath, "%q: value filters on custom extension attributes are not supported", t.path)
	}
	if t.name == "" {
		if op == PatchRemove {
			delete(work, t.ext)
			return nil
		}
		v, err := unwrapSingle(value, t.path)
		if err != nil {
			return err
		}
		if isEmptyValue(v) {
			delete(work, t.ext)
			return nil
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return errorf(ErrInvalid, "%s must be an object", t.ext)
		}
		c := childMap(work, t.ext, true)
		for _, k := range sortedKeys(obj) {
			setRaw(c, keyFold(c, k), op, obj[k])
		}
		if len(c) == 0 {
			delete(work, t.ext)
		}
		return nil
	}
	c := childMap(work, t.ext, op != PatchRemove)
	if c == nil {
		return nil
	}
	key := keyFold(c, t.name)
	if t.sub == "" {
		if op == PatchRemove {
			delete(c, key)
		} else {
			setRaw(c, key, op, value)
		}
	} else {
		m := childMap(c, key, op != PatchRemove)
		if m != nil {
			if op == PatchRemove {
				delete(m, keyFold(m, t.sub))
			} else {
				setRaw(m, keyFold(m, t.sub), op, value)
			}
			if len(m) == 0 {
				delete(c, key)
			}
		}
	}
	if len(c) == 0 {
		delete(work, t.ext)
	}
	return nil
}

// setRaw sets a schema-less attribute: null or "" clears it, add appends to an existing list
// (without duplicates), anything else is stored as sent.
func setRaw(c map[string]any, key, op string, v any) {
	if isEmptyValue(v) {
		delete(c, key)
		return
	}
	old, oldList := c[key].([]any)
	add, addList := v.([]any)
	if op == PatchAdd && oldList && addList {
		out := slices.Clone(old)
		for _, e := range add {
			if !slices.ContainsFunc(out, func(o any) bool { return reflect.DeepEqual(o, e) }) {
				out = append(out, cloneValue(e))
			}
		}
		c[key] = out
		return
	}
	c[key] = cloneValue(v)
}
