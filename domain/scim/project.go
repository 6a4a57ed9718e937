package scim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Projection and sorting shape rendered SCIM resources for the query parameters attributes,
// excludedAttributes (RFC 7644 §3.4.2.5, §3.9), sortBy and sortOrder (§3.4.2.3). A rendered
// resource is a map with the keys schemas, id, externalId, meta, the core attributes, and one
// object per extension under its schema URN.
//
// Attribute paths are read leniently, as entra-md §6 asks: names compare
// case-insensitively; a path is attr, attr.sub, URN:attr, URN:attr.sub, or a bare URN (the whole
// extension, or all core attributes for a core schema URN); a value filter such as
// emails[type eq "work"].value is read as emails.value; anything else is ignored, never an
// error.

// attrNode is a set of selected attribute paths, keyed by lower-cased name at each level. The
// root's children are top-level keys: core attribute names and extension URNs.
type attrNode struct {
	whole   bool // the attribute and everything under it
	allCore bool // root only: every core (non-URN) attribute
	kids    map[string]*attrNode
}

// add selects the path segs below n.
func (n *attrNode) add(segs []string) {
	for _, s := range segs {
		if n.whole {
			return
		}
		if n.kids == nil {
			n.kids = make(map[string]*attrNode)
		}
		k := n.kids[s]
		if k == nil {
			k = &attrNode{}
			n.kids[s] = k
		}
		n = k
	}
	n.whole, n.kids = true, nil
}

// child returns the node for the key k, compared case-insensitively, or nil.
func (n *attrNode) child(k string) *attrNode {
	return n.kids[strings.ToLower(k)]
}

// empty reports whether nothing is selected.
func (n *attrNode) empty() bool {
	return !n.whole && !n.allCore && len(n.kids) == 0
}

// parseAttrList parses a comma-separated attributes or excludedAttributes value into a
// selection, dropping the items it does not understand. urns are the extension URNs the
// resource may carry.
func parseAttrList(list string, urns []string) *attrNode {
	root := &attrNode{}
	for _, item := range splitAttrList(list) {
		if item == "" {
			continue
		}
		if isCoreSchema(item) {
			root.allCore = true
			continue
		}
		if segs, ok := projectionPath(item, urns); ok {
			root.add(segs)
		}
	}
	return root
}

// splitAttrList splits at commas outside value filters and quoted strings, trimming spaces.
func splitAttrList(list string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(list); i++ {
		switch c := list[i]; {
		case c == '"' && (i == 0 || list[i-1] != '\\'):
			quoted = !quoted
		case quoted:
		case c == '[':
			depth++
		case c == ']' && depth > 0:
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(list[start:i]))
			start = i + 1
		}
	}
	return append(out, strings.TrimSpace(list[start:]))
}

// isCoreSchema reports whether s names one of idledger's core schemas.
func isCoreSchema(s string) bool {
	return strings.EqualFold(s, SchemaUser) || strings.EqualFold(s, SchemaGroup)
}

// extensionURNs returns the enterprise extension URN and every URN key of the resources.
func extensionURNs(resources ...map[string]any) []string {
	urns := []string{SchemaEnterpriseUser}
	for _, r := range resources {
		for k := range r {
			if len(k) > 4 && strings.EqualFold(k[:4], "urn:") {
				urns = append(urns, k)
			}
		}
	}
	return urns
}

// projectionPath turns one attribute path into lower-cased segments: [attr] or [attr, sub] for
// a core attribute, [urn], [urn, attr] or [urn, attr, sub] for an extension. urns are the known
// extension URNs; the longest one that prefixes item wins, so a bare extension URN is not
// mistaken for an attribute of a shorter URN. An unknown URN prefix ends at the last colon,
// since attribute names cannot contain one. It reports false for anything that is not a path.
func projectionPath(item string, urns []string) ([]string, bool) {
	item = stripValueFilter(strings.TrimSpace(item))
	var segs []string
	if len(item) > 4 && strings.EqualFold(item[:4], "urn:") {
		urn := ""
		for _, u := range append([]string{SchemaUser, SchemaGroup}, urns...) {
			if len(u) > len(urn) && len(item) >= len(u) && strings.EqualFold(item[:len(u)], u) &&
				(len(item) == len(u) || item[len(u)] == ':') {
				urn = u
			}
		}
		if urn == "" {
			urn = item[:strings.LastIndexByte(item, ':')]
		}
		if len(item) == len(urn) {
			return []string{strings.ToLower(urn)}, true // a whole extension
		}
		if !isCoreSchema(urn) {
			segs = append(segs, strings.ToLower(urn))
		}
		item = item[len(urn)+1:]
	}
	names := strings.Split(item, ".")
	if len(names) > 2 {
		return nil, false
	}
	for _, n := range names {
		if !isAttrName(n) || (n[0] == '$' && n != "$ref") {
			return nil, false
		}
		segs = append(segs, strings.ToLower(n))
	}
	return segs, true
}

// stripValueFilter removes value filters: emails[type eq "work"].value becomes emails.value.
func stripValueFilter(s string) string {
	for {
		i := strings.IndexByte(s, '[')
		if i < 0 {
			return s
		}
		j := strings.LastIndexByte(s, ']')
		if j < i {
			return s
		}
		s = s[:i] + s[j+1:]
	}
}

// Project returns the representation of res that attributes or excludedAttributes ask for
// (RFC 7644 §3.4.2.5, §3.9). Both are comma-separated attribute paths, read leniently: names
// compare case-insensitively; a path is attr, attr.sub, URN:attr, URN:attr.sub, or a bare URN
// (the whole extension, or all core attributes for a core schema URN); a value filter such as
// emails[type eq "work"].value is read as emails.value; anything else is ignored, never an
// error. If attributes names at least one path it wins and
// excludedAttributes is ignored (the RFC does not define both at once); if neither selects
// anything the full resource comes back. schemas, id and meta.resourceType are always
// returned; an extension or complex value left empty is dropped, while the schemas list keeps
// naming the extensions the resource has. res is not modified, and the result shares no maps
// or slices with it.
func Project(res map[string]any, attributes, excludedAttributes string) map[string]any {
	urns := extensionURNs(res)
	if sel := parseAttrList(attributes, urns); !sel.empty() {
		return includeAttributes(res, sel)
	}
	if sel := parseAttrList(excludedAttributes, urns); !sel.empty() {
		return excludeAttributes(res, sel)
	}
	return cloneMap(res)
}

// includeAttributes keeps the always-returned keys and the selected ones.
func includeAttributes(res map[string]any, sel *attrNode) map[string]any {
	out := make(map[string]any)
	for k, v := range res {
		lk := strings.ToLower(k)
		switch {
		case lk == "schemas" || lk == "id":
			out[k] = cloneValue(v)
		case lk == "meta":
			meta := map[string]any{}
			if n := sel.child(k); n != nil {
				if m, ok := pickValue(v, n); ok {
					meta, _ = m.(map[string]any)
				}
			}
			keepResourceType(meta, v)
			if len(meta) > 0 {
				out[k] = meta
			}
		case sel.allCore && !strings.HasPrefix(lk, "urn:"):
			out[k] = cloneValue(v)
		default:
			if n := sel.child(k); n != nil {
				if pv, ok := pickValue(v, n); ok {
					out[k] = pv
				}
			}
		}
	}
	return out
}

// excludeAttributes drops the selected keys, except the always-returned ones.
func excludeAttributes(res map[string]any, sel *attrNode) map[string]any {
	out := make(map[string]any)
	for k, v := range res {
		lk := strings.ToLower(k)
		switch {
		case lk == "schemas" || lk == "id":
			out[k] = cloneValue(v)
		case lk == "meta":
			meta := map[string]any{}
			if m, ok := dropValue(v, sel.child(k)); ok {
				meta, _ = m.(map[string]any)
			}
			keepResourceType(meta, v)
			if len(meta) > 0 {
				out[k] = meta
			}
		case sel.allCore && !strings.HasPrefix(lk, "urn:"):
		default:
			if dv, ok := dropValue(v, sel.child(k)); ok {
				out[k] = dv
			}
		}
	}
	return out
}

// keepResourceType copies meta.resourceType from the original meta into meta.
func keepResourceType(meta map[string]any, orig any) {
	if m, ok := orig.(map[string]any); ok && meta != nil {
		if rt, ok := m["resourceType"]; ok {
			meta["resourceType"] = rt
		}
	}
}

// pickValue returns the parts of v selected by n, and false if nothing is left. The selection
// of a multi-valued attribute applies to each of its values.
func pickValue(v any, n *attrNode) (any, bool) {
	if n.whole {
		return cloneValue(v), true
	}
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any)
		for k, sv := range v {
			if c := n.child(k); c != nil {
				if pv, ok := pickValue(sv, c); ok {
					out[k] = pv
				}
			}
		}
		return out, len(out) > 0
	case []any:
		var out []any
		for _, e := range v {
			if pe, ok := pickValue(e, n); ok {
				out = append(out, pe)
			}
		}
		return out, len(out) > 0
	}
	return nil, false // a sub-attribute of a simple value does not exist
}

// dropValue returns v without the parts selected by n (nil selects nothing), and false if
// nothing is left.
func dropValue(v any, n *attrNode) (any, bool) {
	switch {
	case n == nil:
		return cloneValue(v), true
	case n.whole:
		return nil, false
	}
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any)
		for k, sv := range v {
			if dv, ok := dropValue(sv, n.child(k)); ok {
				out[k] = dv
			}
		}
		return out, len(out) > 0
	case []any:
		var out []any
		for _, e := range v {
			if de, ok := dropValue(e, n); ok {
				out = append(out, de)
			}
		}
		return out, len(out) > 0
	}
	return cloneValue(v), true
}

// descending parses a sortOrder: "ascending" (the default) or "descending", in any case; any
// other value is an error wrapping [ErrInvalid].
func descending(sortOrder string) (bool, error) {
	switch {
	case sortOrder == "" || strings.EqualFold(sortOrder, "ascending"):
		return false, nil
	case strings.EqualFold(sortOrder, "descending"):
		return true, nil
	}
	return false, errorf(ErrInvalid, "sortOrder %q must be ascending or descending", sortOrder)
}

// SortResources sorts rendered resources by sortBy in sortOrder (RFC 7644 §3.4.2.3). The sort
// is stable, so resources with equal values keep their order (creation order from the read
// model). Strings compare case-insensitively unless the attribute is caseExact (id,
// externalId); dateTime values compare as instants; a multi-valued attribute sorts by its
// primary value, else its first. Resources without a value sort last when ascending and first
// when descending. sortOrder is "ascending" (the default) or "descending", in any case; any
// other value is an error wrapping [ErrInvalid]. An empty or unreadable sortBy leaves the
// list as it is.
func SortResources(list []map[string]any, sortBy, sortOrder string) error {
	desc, err := descending(sortOrder)
	if err != nil {
		return err
	}
	segs, ok := projectionPath(sortBy, extensionURNs(list...))
	if strings.TrimSpace(sortBy) == "" || !ok {
		return nil
	}
	def := sortAttribute(segs)
	type keyed struct {
		res map[string]any
		key sortKey
	}
	keyedList := make([]keyed, len(list))
	for i, r := range list {
		keyedList[i] = keyed{r, newSortKey(sortValue(r, segs), def)}
	}
	slices.SortStableFunc(keyedList, func(a, b keyed) int {
		c := a.key.compare(b.key)
		if desc {
			c = -c
		}
		return c
	})
	for i, k := range keyedList {
		list[i] = k.res
	}
	return nil
}

// sortValue finds the value at segs in res (names compare case-insensitively). A list yields
// its primary element, else its first; a complex value yields its "value" sub-attribute.
func sortValue(res map[string]any, segs []string) any {
	var v any = res
	for _, s := range segs {
		v = lookupKey(primaryOf(v), s)
		if v == nil {
			return nil
		}
	}
	v = primaryOf(v)
	if m, ok := v.(map[string]any); ok {
		v = primaryOf(lookupKey(m, "value"))
	}
	switch v.(type) {
	case map[string]any, []any:
		return nil
	}
	return v
}

// lookupKey returns m's value for the key k compared case-insensitively, or nil when v is not
// an object or has no such key.
func lookupKey(v any, k string) any {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	if e, ok := m[k]; ok {
		return e
	}
	for mk, e := range m {
		if strings.EqualFold(mk, k) {
			return e
		}
	}
	return nil
}

// primaryOf returns the primary element of a multi-valued value (RFC 7643 §2.4), else its first;
// other values come back unchanged.
func primaryOf(v any) any {
	list, ok := v.([]any)
	if !ok {
		return v
	}
	for _, e := range list {
		if m, ok := e.(map[string]any); ok && m["primary"] == true {
			return e
		}
	}
	if len(list) == 0 {
		return nil
	}
	return list[0]
}

// sortCommonAttributes describes the common attributes (RFC 7643 §3.1) for sorting.
var sortCommonAttributes = []Attribute{
	{Name: "id", Type: TypeString, CaseExact: true},
	externalIDAttr,
	{Name: "meta", Type: TypeComplex, SubAttributes: []Attribute{
		{Name: "resourceType", Type: TypeString, CaseExact: true},
		{Name: "created", Type: TypeDateTime},
		{Name: "lastModified", Type: TypeDateTime},
		{Name: "location", Type: TypeReference, CaseExact: true},
		{Name: "version", Type: TypeString, CaseExact: true},
	}},
}

// sortAttribute returns the definition of the attribute at segs, searching the common, User
// and Group attributes or the enterprise extension; the zero Attribute (a case-insensitive
// string) if it is unknown. A complex attribute stands for its "value" sub-attribute.
func sortAttribute(segs []string) Attribute {
	var attrs [][]Attribute
	if strings.HasPrefix(segs[0], "urn:") {
		if !strings.EqualFold(segs[0], SchemaEnterpriseUser) {
			return Attribute{}
		}
		attrs, segs = [][]Attribute{EnterpriseUserAttributes}, segs[1:]
	} else {
		attrs = [][]Attribute{sortCommonAttributes, UserAttributes, GroupAttributes}
	}
	for _, set := range attrs {
		if a, ok := findAttribute(set, segs); ok {
			return a
		}
	}
	return Attribute{}
}

// findAttribute walks segs through attrs.
func findAttribute(attrs []Attribute, segs []string) (Attribute, bool) {
	var a Attribute
	for i, s := range segs {
		j := slices.IndexFunc(attrs, func(x Attribute) bool { return strings.EqualFold(x.Name, s) })
		if j < 0 {
			return Attribute{}, false
		}
		a = attrs[j]
		if i < len(segs)-1 {
			attrs = a.SubAttributes
		}
	}
	if a.Type == TypeComplex {
		return findAttribute(a.SubAttributes, []string{"value"})
	}
	return a, true
}

// A sortKey is a comparable form of one resource's sort value.
type sortKey struct {
	kind int // 0 number, 1 boolean, 2 time, 3 string, 4 missing
	num  float64
	t    time.Time
	str  string
}

// newSortKey makes the key of v, an attribute of definition def.
func newSortKey(v any, def Attribute) sortKey {
	switch v := v.(type) {
	case nil:
		return sortKey{kind: 4}
	case float64:
		return sortKey{kind: 0, num: v}
	case int:
		return sortKey{kind: 0, num: float64(v)}
	case json.Number:
		if f, err := v.Float64(); err == nil {
			return sortKey{kind: 0, num: f}
		}
	case bool:
		if v {
			return sortKey{kind: 1, num: 1}
		}
		return sortKey{kind: 1}
	case string:
		if def.Type == TypeDateTime {
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				return sortKey{kind: 2, t: t}
			}
		}
		if !def.CaseExact {
			v = strings.ToLower(v)
		}
		return sortKey{kind: 3, str: v}
	}
	return sortKey{kind: 3, str: fmt.Sprint(v)}
}

// compare orders keys ascending: by kind (so a missing value is last), then by value.
func (k sortKey) compare(o sortKey) int {
	if c := cmp.Compare(k.kind, o.kind); c != 0 {
		return c
	}
	switch k.kind {
	case 0, 1:
		return cmp.Compare(k.num, o.num)
	case 2:
		return k.t.Compare(o.t)
	case 3:
		return strings.Compare(k.str, o.str)
	}
	return 0
}

// ReturnsAttribute reports whether a representation projected by attributes and
// excludedAttributes (see [Project]) keeps any part of the core attribute name, so that an
// attribute that costs a read is computed only when it is returned.
func ReturnsAttribute(name, attributes, excludedAttributes string) bool {
	urns := []string{SchemaEnterpriseUser}
	if sel := parseAttrList(attributes, urns); !sel.empty() {
		return sel.allCore || sel.child(name) != nil
	}
	if sel := parseAttrList(excludedAttributes, urns); !sel.empty() {
		n := sel.child(name)
		return !sel.allCore && (n == nil || !n.whole)
	}
	return true
}
