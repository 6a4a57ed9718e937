package domain

import (
	"strings"
)

// A Filter is a parsed SCIM filter (RFC 7644 §3.4.2.2). httpapi parses the text with a
// well-kept parser and converts it to these types, so the domain stays free of dependencies.
type Filter interface {
	filterNode()
}

// An AttrPath names an attribute: an optional schema URN, an attribute and an optional
// sub-attribute ("name.givenName", "urn:…:enterprise:2.0:User:manager.value").
type AttrPath struct {
	URN  string
	Attr string
	Sub  string
}

// String renders the path in SCIM syntax.
func (p AttrPath) String() string {
	s := p.Attr
	if p.URN != "" {
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

// Match reports whether a SCIM representation matches f. Attribute names compare
// case-insensitively; string values compare case-insensitively unless the attribute is
// caseExact (id, externalId compare exactly); a multi-valued attribute matches if any element
// does.
//
// TODO(#3): this first version handles eq/ne/co/sw/ew/pr with and/or/not and value paths;
// ordering operators and dateTime comparison come with the full filter support.
func Match(f Filter, res map[string]any) bool {
	switch x := f.(type) {
	case LogicalFilter:
		if x.Op == "or" {
			return Match(x.Left, res) || Match(x.Right, res)
		}
		return Match(x.Left, res) && Match(x.Right, res)
	case NotFilter:
		return !Match(x.Filter, res)
	case ValuePathFilter:
		for _, el := range lookupAll(res, AttrPath{URN: x.Path.URN, Attr: x.Path.Attr}) {
			if m, ok := el.(map[string]any); ok && Match(x.Filter, m) {
				return true
			}
		}
		return false
	case CompareFilter:
		vals := lookupAll(res, x.Path)
		if x.Op == OpPr {
			return len(vals) > 0
		}
		exact := x.Path.URN == "" && x.Path.Sub == "" && (x.Path.Attr == "id" || strings.EqualFold(x.Path.Attr, "externalId"))
		for _, v := range vals {
			if compare(x.Op, v, x.Value, exact) {
				return true
			}
		}
		return x.Op == OpNe && len(vals) == 0
	}
	return false
}

// lookupAll returns the values at path, flattening multi-valued attributes.
func lookupAll(res map[string]any, p AttrPath) []any {
	var v any = res
	if p.URN != "" {
		v = getFold(res, p.URN)
	}
	v = getFoldAny(v, p.Attr)
	if p.Sub != "" {
		if list, ok := v.([]any); ok {
			var out []any
			for _, el := range list {
				if s := getFoldAny(el, p.Sub); s != nil {
					out = append(out, s)
				}
			}
			return out
		}
		v = getFoldAny(v, p.Sub)
	}
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		// A multi-valued attribute compared without a sub-attribute compares its values.
		var out []any
		for _, el := range x {
			if m, ok := el.(map[string]any); ok {
				if val := getFold(m, "value"); val != nil {
					out = append(out, val)
				}
				continue
			}
			out = append(out, el)
		}
		return out
	default:
		return []any{x}
	}
}

func getFoldAny(v any, name string) any {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	return getFold(m, name)
}

// getFold returns m[name] with a case-insensitive key match.
func getFold(m map[string]any, name string) any {
	if v, ok := m[name]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

func compare(op string, have, want any, exact bool) bool {
	switch h := have.(type) {
	case string:
		w, ok := want.(string)
		if !ok {
			if b, isBool := want.(bool); isBool {
				w, ok = map[bool]string{true: "true", false: "false"}[b], true
				h = strings.ToLower(h)
			}
			if !ok {
				return false
			}
		}
		if !exact {
			h, w = strings.ToLower(h), strings.ToLower(w)
		}
		switch op {
		case OpEq:
			return h == w
		case OpNe:
			return h != w
		case OpCo:
			return strings.Contains(h, w)
		case OpSw:
			return strings.HasPrefix(h, w)
		case OpEw:
			return strings.HasSuffix(h, w)
		}
	case bool:
		w, ok := want.(bool)
		if s, isStr := want.(string); isStr {
			w, ok = strings.EqualFold(s, "true"), strings.EqualFold(s, "true") || strings.EqualFold(s, "false")
		}
		if !ok {
			return false
		}
		switch op {
		case OpEq:
			return h == w
		case OpNe:
			return h != w
		}
	case float64:
		w, ok := want.(float64)
		if !ok {
			return false
		}
		switch op {
		case OpEq:
			return h == w
		case OpNe:
			return h != w
		}
	}
	return false
}
