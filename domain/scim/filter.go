package scim

import (
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A Filter is a parsed SCIM filter (RFC 7644 §3.4.2.2), as [ParseFilter] returns it: one of
// CompareFilter, LogicalFilter, NotFilter and ValuePathFilter (or a pointer to one, in a tree
// built by hand).
//
// Every node type has a String method rendering canonical filter syntax (fmt.Sprint(f) works
// on any Filter): parsing that text again gives an equal tree.
type Filter interface {
	filterNode()
}

// An AttrPath names an attribute: an optional schema URN, an attribute and an optional
// sub-attribute ("name.givenName", "urn:…:enterprise:2.0:User:manager.value"). URN is set
// only for extension schemas; a core User or Group URN prefix is dropped by the parser. In a
// PATCH path, an AttrPath with a URN and no Attr names a whole extension object.
type AttrPath struct {
	URN  string
	Attr string
	Sub  string
}

// String renders the path in SCIM syntax.
func (p AttrPath) String() string {
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

// Comparison operators of RFC 7644 §3.4.2.2.
const (
	OpEq = "eq"
	OpNe = "ne"
	OpCo = "co"
	OpSw = "sw"
	OpEw = "ew"
	OpPr = "pr"
	OpGt = "gt"
	OpGe = "ge"
	OpLt = "lt"
	OpLe = "le"
)

// CompareFilter is "path op value" (or "path pr").
type CompareFilter struct {
	Path  AttrPath
	Op    string
	Value any // string, bool, float64, nil (for pr and "eq null")
}

// LogicalFilter is "left and right" or "left or right".
type LogicalFilter struct {
	Op          string // "and" or "or"
	Left, Right Filter
}

// NotFilter is "not (filter)".
type NotFilter struct {
	Filter Filter
}

// ValuePathFilter is "attr[filter]": true if any element of the multi-valued attribute
// matches the inner filter (whose paths are relative to the element).
type ValuePathFilter struct {
	Path   AttrPath
	Filter Filter
}

func (CompareFilter) filterNode()   {}
func (LogicalFilter) filterNode()   {}
func (NotFilter) filterNode()       {}
func (ValuePathFilter) filterNode() {}

// A PatchPath is the target of a PATCH operation (RFC 7644 §3.5.2): an attribute, optionally
// narrowed to the elements of a multi-valued attribute matching Filter, optionally a
// sub-attribute of those elements ("emails[type eq \"work\"].value").
type PatchPath struct {
	Path   AttrPath
	Filter Filter // nil without a value filter
	// ElemSub is the sub-attribute after a value filter ("value" in emails[...].value).
	ElemSub string
}

// String renders the path in SCIM syntax: attr, attr.sub, attr[filter] or attr[filter].sub.
func (p PatchPath) String() string {
	s := p.Path.String()
	if p.Filter != nil {
		s += "[" + filterText(p.Filter) + "]"
	}
	if p.ElemSub != "" {
		s += "." + p.ElemSub
	}
	return s
}

// String renders the comparison in SCIM filter syntax; a string value is quoted with JSON
// escapes, a number in its shortest form.
func (f CompareFilter) String() string {
	op := strings.ToLower(f.Op)
	if op == OpPr {
		return f.Path.String() + " pr"
	}
	return f.Path.String() + " " + op + " " + filterLiteral(f.Value)
}

// String renders "left op right", parenthesising an operand only where precedence ("and"
// binds tighter than "or") or the left-to-right grouping of the parser requires it, so the
// text parses back to the same tree.
func (f LogicalFilter) String() string {
	op := strings.ToLower(f.Op)
	l, r := filterText(f.Left), filterText(f.Right)
	if x, ok := derefFilter(f.Left).(LogicalFilter); ok && op == "and" && strings.EqualFold(x.Op, "or") {
		l = "(" + l + ")"
	}
	if x, ok := derefFilter(f.Right).(LogicalFilter); ok && (op == "and" || strings.EqualFold(x.Op, "or")) {
		r = "(" + r + ")"
	}
	return l + " " + op + " " + r
}

// String renders "not (filter)".
func (f NotFilter) String() string { return "not (" + filterText(f.Filter) + ")" }

// String renders "attr[filter]".
func (f ValuePathFilter) String() string {
	return f.Path.String() + "[" + filterText(f.Filter) + "]"
}

// filterText renders any filter node; "" for nil.
func filterText(f Filter) string {
	if s, ok := derefFilter(f).(fmt.Stringer); ok {
		return s.String()
	}
	return ""
}

// derefFilter turns a pointer to a node into the node, so hand-built trees with pointers
// behave like the value trees the parser builds. It returns nil for a nil pointer.
func derefFilter(f Filter) Filter {
	switch x := f.(type) {
	case *CompareFilter:
		if x != nil {
			return *x
		}
	case *LogicalFilter:
		if x != nil {
			return *x
		}
	case *NotFilter:
		if x != nil {
			return *x
		}
	case *ValuePathFilter:
		if x != nil {
			return *x
		}
	default:
		return f
	}
	return nil
}

// filterLiteral renders a comparison value as a SCIM filter literal.
func filterLiteral(v any) string {
	switch x := normValue(v).(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return quoteFilterString(strconv.FormatFloat(x, 'g', -1, 64))
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		return quoteFilterString(x)
	default:
		return quoteFilterString(fmt.Sprint(x))
	}
}

// quoteFilterString quotes s as a JSON string that the SCIM filter grammar accepts: '"', '\'
// and control characters escaped (\u escapes with upper-case hex), everything else literal.
func quoteFilterString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s { // invalid UTF-8 becomes U+FFFD, as encoding/json decodes it
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Match reports whether the SCIM representation res matches f (RFC 7644 §3.4.2.2). res is a
// resource as encoding/json decodes it, with "id", "externalId", "schemas" and a "meta" object
// ("created" and "lastModified" as RFC 3339 strings), or one element of a multi-valued
// attribute (the PATCH engine matches `type eq "work"` against each element). Go values such
// as named string types, []string, integers and time.Time are accepted too. Match never panics
// and returns no error: a comparison it cannot make is false.
//
//   - Attribute names and schema URNs compare case-insensitively. An extension URN prefix
//     looks inside that extension object. An unqualified name that neither the core User nor
//     the core Group schema defines ("manager", "department") is also looked for in the
//     resource's extension objects.
//   - Strings compare case-insensitively, except caseExact attributes (RFC 7643 §2.2): id,
//     externalId, meta.location, meta.version, references ($ref, profileUrl, photos.value)
//     and binary values (x509Certificates.value).
//   - A multi-valued attribute matches if any element does. Compared without a
//     sub-attribute, a complex attribute compares its "value" sub-attribute: "emails eq",
//     "members eq" and "manager eq" compare emails.value, members.value and manager.value.
//   - gt, ge, lt and le order numbers numerically and strings lexicographically; when both
//     strings parse as RFC 3339 timestamps (fractional seconds and offsets allowed) they
//     compare chronologically. eq and ne compare meta.created and meta.lastModified
//     chronologically too.
//   - A boolean compares with a boolean or with the string "true" or "false" in any case
//     (`primary eq "True"`), for eq and ne only.
//   - pr matches a value that is not null, "", [] or an object without such a value.
//     "eq null" matches when pr would not, "ne null" when it would; other operators never
//     match null.
//   - ne matches an absent attribute; otherwise it needs a value of the same type that
//     differs. Values of different types never match (5 is not "5").
//
// Match is the authority on filtering: a read model may narrow the candidates with
// [EqualityLookups] but must still run Match on each of them.
func Match(f Filter, res map[string]any) bool {
	return Matcher{}.Match(f, res)
}

// A Matcher evaluates filters like [Match], with the userName rule of the server: userName
// values compare through UserName (the fold that uniqueness and the indexes use, so that a
// filter finds exactly the user a create would collide with) instead of by lower-casing.
type Matcher struct {
	// UserName folds userNames; nil compares them like other strings.
	UserName func(string) string
}

// Match reports whether the resource res matches f; see [Match].
func (m Matcher) Match(f Filter, res map[string]any) bool {
	return m.matchIn(f, res, "")
}

// matchIn evaluates f against obj. parent is the multi-valued attribute whose element obj is
// ("" for a resource), which decides caseExact sub-attributes.
func (m Matcher) matchIn(f Filter, obj map[string]any, parent string) bool {
	switch x := derefFilter(f).(type) {
	case LogicalFilter:
		switch strings.ToLower(x.Op) {
		case "and":
			return m.matchIn(x.Left, obj, parent) && m.matchIn(x.Right, obj, parent)
		case "or":
			return m.matchIn(x.Left, obj, parent) || m.matchIn(x.Right, obj, parent)
		}
	case NotFilter:
		return derefFilter(x.Filter) != nil && !m.matchIn(x.Filter, obj, parent)
	case ValuePathFilter:
		for _, n := range attrNodes(obj, x.Path, parent == "") {
			el, ok := n.(map[string]any)
			if !ok {
				el = map[string]any{"value": n} // a bare value stands for {"value": v}
			}
			if m.matchIn(x.Filter, el, x.Path.Attr) {
				return true
			}
		}
	case CompareFilter:
		return m.matchCompare(x, obj, parent)
	case *preparedCompare:
		return m.matchPrepared(x, obj, parent == "")
	}
	return false
}

func (m Matcher) matchCompare(c CompareFilter, obj map[string]any, parent string) bool {
	pc := m.prepareCompare(c, parent)
	return m.matchPrepared(&pc, obj, parent == "")
}

// matchPrepared evaluates a prepared comparison against obj; top is true for a resource (not
// an element of a multi-valued attribute).
func (m Matcher) matchPrepared(pc *preparedCompare, obj map[string]any, top bool) bool {
	var buf [4]any
	nodes := appendAttrNodes(buf[:0], obj, pc.Path, top)
	if pc.op == OpPr {
		return slices.ContainsFunc(nodes, present)
	}
	if pc.want == nil {
		switch pc.op {
		case OpEq:
			return !slices.ContainsFunc(nodes, present)
		case OpNe:
			return slices.ContainsFunc(nodes, present)
		}
		return false
	}
	if pc.foldNodes {
		for i, n := range nodes {
			if h, ok := n.(string); ok {
				nodes[i] = m.UserName(h)
			}
		}
	}
	compared := false
	for _, n := range nodes {
		if m, ok := n.(map[string]any); ok {
			n = normValue(getFold(m, "value"))
		}
		switch n.(type) {
		case string, bool, float64:
		default:
			continue // null, or an object or list that has no comparable value
		}
		compared = true
		if compareValue(pc.op, n, pc.want, pc.exact, pc.dateTime, pc.wantLower) {
			return true
		}
	}
	return pc.op == OpNe && !compared
}

// attrNodes returns the non-null values at p in obj, with the elements of multi-valued
// attributes listed one by one. top allows the fallback into extension objects.
func attrNodes(obj map[string]any, p AttrPath, top bool) []any {
	return appendAttrNodes(nil, obj, p, top)
}

// appendAttrNodes appends attrNodes(obj, p, top) to dst.
func appendAttrNodes(dst []any, obj map[string]any, p AttrPath, top bool) []any {
	if p.Sub == "" {
		return appendPathNodes(dst, obj, p, top)
	}
	var buf [4]any
	for _, v := range appendPathNodes(buf[:0], obj, p, top) {
		if m, ok := v.(map[string]any); ok {
			dst = appendNodes(dst, getFold(m, p.Sub))
		} else if strings.EqualFold(p.Sub, "value") {
			dst = append(dst, v) // a bare value stands for {"value": v}
		}
	}
	return dst
}

// appendPathNodes appends the non-null values of p's attribute (not its sub-attribute) in obj.
func appendPathNodes(vals []any, obj map[string]any, p AttrPath, top bool) []any {
	if p.URN == "" || isCoreSchemaURN(p.URN) {
		n := len(vals)
		vals = appendNodes(vals, getFold(obj, p.Attr))
		if len(vals) == n && top && p.URN == "" && !isCoreAttrName(p.Attr) {
			for k, v := range obj {
				if hasURNPrefix(k) {
					if ext, ok := normValue(v).(map[string]any); ok {
						vals = appendNodes(vals, getFold(ext, p.Attr))
					}
				}
			}
		}
	} else if ext, ok := normValue(getFold(obj, p.URN)).(map[string]any); ok {
		vals = appendNodes(vals, getFold(ext, p.Attr))
	}
	return vals
}

// appendNodes appends v, or the elements of v if it is a list, leaving out nulls.
func appendNodes(out []any, v any) []any {
	v = normValue(v)
	if list, ok := v.([]any); ok {
		for _, e := range list {
			if e = normValue(e); e != nil {
				out = append(out, e)
			}
		}
		return out
	}
	if v != nil {
		out = append(out, v)
	}
	return out
}

// present reports whether v counts for "pr": not null, "", [] or {} (RFC 7644 §3.4.2.2).
func present(v any) bool {
	switch x := normValue(v).(type) {
	case nil:
		return false
	case string:
		return x != ""
	case []any:
		return slices.ContainsFunc(x, present)
	case map[string]any:
		for _, e := range x {
			if present(e) {
				return true
			}
		}
		return false
	}
	return true
}

// compareValue applies op to one attribute value and the filter's value, both normalised.
// wantLower says that want, if a string, is in lower case already (when not exact).
func compareValue(op string, have, want any, exact, dateTime, wantLower bool) bool {
	switch h := have.(type) {
	case string:
		switch w := want.(type) {
		case string:
			return compareStrings(op, h, w, exact, dateTime, wantLower)
		case bool:
			hb, ok := parseBoolText(h)
			return ok && compareBools(op, hb, w)
		}
	case bool:
		switch w := want.(type) {
		case bool:
			return compareBools(op, h, w)
		case string:
			wb, ok := parseBoolText(w)
			return ok && compareBools(op, h, wb)
		}
	case float64:
		if w, ok := want.(float64); ok {
			switch {
			case h < w:
				return ordered(op, -1)
			case h > w:
				return ordered(op, 1)
			case h == w:
				return ordered(op, 0)
			}
		}
	}
	return false
}

func compareStrings(op, h, w string, exact, dateTime, wLower bool) bool {
	switch op {
	case OpGt, OpGe, OpLt, OpLe:
		dateTime = true
	case OpEq, OpNe:
	default:
		dateTime = false
	}
	if dateTime {
		if th, ok := parseTimestamp(h); ok {
			if tw, ok := parseTimestamp(w); ok {
				return ordered(op, th.Compare(tw))
			}
		}
	}
	if !exact {
		h = strings.ToLower(h)
		if !wLower {
			w = strings.ToLower(w)
		}
	}
	switch op {
	case OpCo:
		return strings.Contains(h, w)
	case OpSw:
		return strings.HasPrefix(h, w)
	case OpEw:
		return strings.HasSuffix(h, w)
	}
	return ordered(op, strings.Compare(h, w))
}

func compareBools(op string, h, w bool) bool {
	switch op {
	case OpEq:
		return h == w
	case OpNe:
		return h != w
	}
	return false
}

// ordered turns a three-way comparison into the result of op.
func ordered(op string, c int) bool {
	switch op {
	case OpEq:
		return c == 0
	case OpNe:
		return c != 0
	case OpGt:
		return c > 0
	case OpGe:
		return c >= 0
	case OpLt:
		return c < 0
	case OpLe:
		return c <= 0
	}
	return false
}

func parseBoolText(s string) (bool, bool) {
	switch {
	case strings.EqualFold(s, "true"):
		return true, true
	case strings.EqualFold(s, "false"):
		return false, true
	}
	return false, false
}

// parseTimestamp parses an RFC 3339 date-time with up to 9 fractional digits and any offset.
func parseTimestamp(s string) (time.Time, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
	return t, err == nil
}

// isDateTimePath reports whether p is meta.created or meta.lastModified.
func isDateTimePath(p AttrPath) bool {
	return (p.URN == "" || isCoreSchemaURN(p.URN)) && strings.EqualFold(p.Attr, "meta") &&
		(strings.EqualFold(p.Sub, "created") || strings.EqualFold(p.Sub, "lastModified"))
}

// caseExactPath reports whether string values at p compare case-sensitively (RFC 7643 §2.2
// caseExact, §2.3.6 binary, §2.3.7 reference). parent names the multi-valued attribute when
// p is relative to one of its elements.
func caseExactPath(p AttrPath, parent string) bool {
	name, sub := p.Attr, p.Sub
	if parent != "" {
		if sub != "" {
			return strings.EqualFold(sub, "$ref")
		}
		name, sub = parent, p.Attr
	} else if p.URN == "" || isCoreSchemaURN(p.URN) {
		if sub == "" && (strings.EqualFold(name, "id") || strings.EqualFold(name, "externalId")) {
			return true
		}
		if strings.EqualFold(name, "meta") {
			return strings.EqualFold(sub, "location") || strings.EqualFold(sub, "version")
		}
	}
	if strings.EqualFold(name, "$ref") || strings.EqualFold(sub, "$ref") {
		return true
	}
	var schemas [][]Attribute
	switch {
	case parent != "" || p.URN == "":
		schemas = [][]Attribute{UserAttributes, GroupAttributes, EnterpriseUserAttributes}
	case isCoreSchemaURN(p.URN):
		schemas = [][]Attribute{UserAttributes, GroupAttributes}
	case strings.EqualFold(p.URN, SchemaEnterpriseUser):
		schemas = [][]Attribute{EnterpriseUserAttributes}
	}
	for _, attrs := range schemas {
		a, ok := findAttr(attrs, name)
		if !ok {
			continue
		}
		if sub == "" && a.Type == TypeComplex {
			sub = "value"
		}
		if sub != "" {
			if a, ok = findAttr(a.SubAttributes, sub); !ok {
				return false
			}
		}
		return a.CaseExact || a.Type == TypeReference || a.Type == TypeBinary
	}
	return false
}

// isCoreAttrName reports whether the core User or Group schema, or the common attributes,
// define name, so that an unqualified name is not looked for in extensions.
func isCoreAttrName(name string) bool {
	switch strings.ToLower(name) {
	case "id", "externalid", "meta", "schemas":
		return true
	}
	_, user := findAttr(UserAttributes, name)
	_, group := findAttr(GroupAttributes, name)
	return user || group
}

func isCoreSchemaURN(urn string) bool {
	return strings.EqualFold(urn, SchemaUser) || strings.EqualFold(urn, SchemaGroup)
}

func hasURNPrefix(s string) bool {
	return len(s) >= 4 && strings.EqualFold(s[:4], "urn:")
}

// getFold returns m[name] with a case-insensitive key match; of several keys that differ
// only in case, the smallest wins, so the result does not depend on map order.
func getFold(m map[string]any, name string) any {
	if v, ok := m[name]; ok {
		return v
	}
	found, ok := "", false
	for k := range m {
		if strings.EqualFold(k, name) && (!ok || k < found) {
			found, ok = k, true
		}
	}
	if !ok {
		return nil
	}
	return m[found]
}

// normValue returns v as encoding/json would decode it, shallowly: string, bool, float64,
// map[string]any, []any or nil. Named types, integers, []string and the like are converted;
// anything else goes through encoding/json.
func normValue(v any) any {
	switch x := v.(type) {
	case nil, string, bool, float64, map[string]any, []any:
		return v
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return f
		}
		return string(x)
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, m := range x {
			out[i] = m
		}
		return out
	case json.Marshaler, encoding.TextMarshaler:
		return viaJSON(v)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return rv.String()
	case reflect.Bool:
		return rv.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return float64(rv.Uint())
	case reflect.Float32, reflect.Float64:
		return rv.Float()
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
		return normValue(rv.Elem().Interface())
	case reflect.Slice:
		if rv.IsNil() {
			return nil
		}
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return viaJSON(v) // []byte is base64 text in JSON
		}
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = rv.Index(i).Interface()
		}
		return out
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return viaJSON(v)
		}
		if rv.IsNil() {
			return nil
		}
		out := make(map[string]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			out[it.Key().String()] = it.Value().Interface()
		}
		return out
	}
	return viaJSON(v)
}

// viaJSON returns v as encoding/json renders and decodes it; nil if it cannot.
func viaJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}

// A Lookup is an equality that a read model can answer from an index: the resources whose
// attribute Attr equals Value. Attr is one of "id", "userName", "externalId", "displayName"
// and "emails.value"; Value is the filter's string as written. userName, displayName and
// emails.value compare case-insensitively ([Match] lower-cases both sides; an index keyed by
// the same fold finds a superset), id and externalId exactly.
type Lookup struct{ Attr, Value string }

// EqualityLookups returns the index look-ups that f implies: `X eq "v"` on an indexable
// attribute X (id, userName, externalId, displayName, emails.value), or such a comparison on
// either side of an "and", recursively. A value filter on emails counts too:
// `emails[type eq "work"].value eq "v"` and `emails[value eq "v"]` give emails.value, as do
// `emails eq "v"` and `emails.value eq "v"`. Every resource that f matches satisfies every
// returned Lookup, so a read model may take the candidates of any one it indexes; they come
// most selective first (id, userName, externalId, displayName, emails.value), but not every
// read model indexes every attribute (users have no displayName index, groups no userName),
// so a caller picks the first one its index supports.
//
// Match remains the authority: the candidates an index yields are a superset, and Match must
// run on each. EqualityLookups returns nil when no index applies (no such "eq", or one under
// "or" or "not", or with a non-string value).
func EqualityLookups(f Filter) []Lookup {
	var out []Lookup
	collectLookups(f, &out)
	slices.SortStableFunc(out, func(a, b Lookup) int {
		return lookupRank(a.Attr) - lookupRank(b.Attr)
	})
	return out
}

var lookupAttrs = []string{"id", "userName", "externalId", "displayName", "emails.value"}

func lookupRank(attr string) int { return slices.Index(lookupAttrs, attr) }

func collectLookups(f Filter, out *[]Lookup) {
	switch x := derefFilter(f).(type) {
	case LogicalFilter:
		if strings.EqualFold(x.Op, "and") {
			collectLookups(x.Left, out)
			collectLookups(x.Right, out)
		}
	case CompareFilter:
		v, ok := x.Value.(string)
		if !ok || !strings.EqualFold(x.Op, OpEq) || (x.Path.URN != "" && !isCoreSchemaURN(x.Path.URN)) {
			return
		}
		attr := x.Path.Attr
		if x.Path.Sub != "" {
			attr += "." + x.Path.Sub
		}
		for _, a := range lookupAttrs {
			if strings.EqualFold(attr, a) {
				*out = append(*out, Lookup{Attr: a, Value: v})
				return
			}
		}
		if strings.EqualFold(attr, "emails") {
			*out = append(*out, Lookup{Attr: "emails.value", Value: v})
		}
	case ValuePathFilter:
		p := x.Path
		if (p.URN == "" || isCoreSchemaURN(p.URN)) && p.Sub == "" && strings.EqualFold(p.Attr, "emails") {
			collectElementLookups(x.Filter, out)
		}
	}
}

// collectElementLookups adds emails.value look-ups for `value eq "v"` inside emails[...].
func collectElementLookups(f Filter, out *[]Lookup) {
	switch x := derefFilter(f).(type) {
	case LogicalFilter:
		if strings.EqualFold(x.Op, "and") {
			collectElementLookups(x.Left, out)
			collectElementLookups(x.Right, out)
		}
	case CompareFilter:
		v, ok := x.Value.(string)
		if ok && strings.EqualFold(x.Op, OpEq) && x.Path.URN == "" && x.Path.Sub == "" && strings.EqualFold(x.Path.Attr, "value") {
			*out = append(*out, Lookup{Attr: "emails.value", Value: v})
		}
	}
}

// isUserNamePath reports whether p names the core User's userName.
func isUserNamePath(p AttrPath) bool {
	return (p.URN == "" || strings.EqualFold(p.URN, SchemaUser)) && p.Sub == "" && strings.EqualFold(p.Attr, "userName")
}
