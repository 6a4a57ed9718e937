package scim

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

// isEmptyValue reports whether a PATCH value means "clear the attribute": null or "", both of
// which Entra sends to clear one.
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
// for its element and an empty array for null (Entra wraps single values in arrays). It
// returns an error wrapping ErrInvalid for an array of several values.
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
	return nil, errorf(ErrInvalid, "%s is single-valued but got %d values", path, len(list))
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

// Clone deep-copies a resource (a JSON-shaped value tree), so that a change of the copy never
// reaches the original.
func Clone(m map[string]any) map[string]any { return cloneMap(m) }

// CloneValue deep-copies one JSON-shaped value (see [Clone]).
func CloneValue(v any) any { return cloneValue(v) }

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return cloneMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneValue(e)
		}
		return out
	case []string:
		return slices.Clone(x)
	default:
		return v
	}
}
