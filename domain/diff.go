package domain

import (
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/idledger/idledger/domain/scim"
)

// DiffResource returns what changed between two states of a canonical user or group resource
// (as produced by [scim.CanonicalUser], [scim.PatchUser], [scim.CanonicalGroup] or
// [scim.PatchGroup]), sorted by path, one [Change] per changed attribute:
//
//	displayName                                                       a simple attribute
//	name.givenName                                                    a sub-attribute of a complex one
//	emails                                                            a multi-valued attribute, whole
//	urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department
//	urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value
//	urn:ietf:params:scim:schemas:extension:Acme:2.0:User              a custom extension, whole
//
// Old and New are copies; nil means absent. Equal states give no changes, so a PATCH that
// changes nothing records nothing. [ApplyChanges] is the inverse: ApplyChanges(old,
// DiffResource(old, new)) equals new.
func DiffResource(old, new map[string]any) []Change {
	var out []Change
	for _, k := range unionKeys(old, new) {
		ov, nv := old[k], new[k]
		switch {
		case k == scim.SchemaEnterpriseUser:
			out = diffObject(out, k, ":", ov, nv)
		case isURN(k):
			out = diffValue(out, k, ov, nv)
		default:
			out = diffObject(out, k, ".", ov, nv)
		}
	}
	slices.SortFunc(out, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// diffObject compares a value that may be an object: two objects (or an object and nothing)
// are compared key by key under path+sep+key, one level deep for sep "." and two for ":" (the
// enterprise extension, whose manager is itself an object); anything else is compared whole.
func diffObject(out []Change, path, sep string, o, n any) []Change {
	om, oIsMap := o.(map[string]any)
	nm, nIsMap := n.(map[string]any)
	if !(oIsMap || nIsMap) || (!oIsMap && o != nil) || (!nIsMap && n != nil) {
		return diffValue(out, path, o, n)
	}
	before := len(out)
	for _, k := range unionKeys(om, nm) {
		if sep == ":" {
			out = diffObject(out, path+sep+k, ".", om[k], nm[k])
		} else {
			out = diffValue(out, path+sep+k, om[k], nm[k])
		}
	}
	if len(out) == before && !reflect.DeepEqual(o, n) {
		// Only an empty object against none (or nil members) differ; record the object whole.
		out = diffValue(out, path, o, n)
	}
	return out
}

func diffValue(out []Change, path string, o, n any) []Change {
	if reflect.DeepEqual(o, n) {
		return out
	}
	return append(out, Change{Path: path, Old: scim.CloneValue(o), New: scim.CloneValue(n)})
}

// unionKeys returns the keys of a and b, sorted.
func unionKeys(a, b map[string]any) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// ApplyChanges returns a copy of res with each change's New value set at its Path, in order,
// as [DiffResource] writes paths: New nil removes the attribute, and an object left empty by
// that is removed too. It is the fold's way of replaying recorded changes; res is not
// modified.
func ApplyChanges(res map[string]any, changes []Change) map[string]any {
	out := scim.Clone(res)
	if out == nil {
		out = make(map[string]any)
	}
	for _, c := range changes {
		nv := scim.CloneValue(c.New)
		_, oldObj := c.Old.(map[string]any)
		_, newObj := c.New.(map[string]any)
		switch {
		case strings.HasPrefix(c.Path, scim.SchemaEnterpriseUser+":") && !oldObj && !newObj:
			// An enterprise attribute. (A custom extension whose key merely begins like this
			// carries an object, and is set whole below.)
			ent, _ := out[scim.SchemaEnterpriseUser].(map[string]any)
			if ent == nil && nv == nil {
				continue
			}
			if ent == nil {
				ent = make(map[string]any)
				out[scim.SchemaEnterpriseUser] = ent
			}
			setPath(ent, c.Path[len(scim.SchemaEnterpriseUser)+1:], nv)
			if len(ent) == 0 {
				delete(out, scim.SchemaEnterpriseUser)
			}
		case isURN(c.Path):
			setOrDelete(out, c.Path, nv)
		default:
			setPath(out, c.Path, nv)
		}
	}
	return out
}

// setPath sets "attr" or "attr.sub" in m to v (nil deletes), creating or removing the
// intermediate object as needed.
func setPath(m map[string]any, path string, v any) {
	attr, sub, dotted := strings.Cut(path, ".")
	if !dotted {
		setOrDelete(m, attr, v)
		return
	}
	child, _ := m[attr].(map[string]any)
	if child == nil {
		if v == nil {
			return
		}
		child = make(map[string]any)
		m[attr] = child
	}
	setOrDelete(child, sub, v)
	if len(child) == 0 {
		delete(m, attr)
	}
}

// setOrDelete sets m[name] to v, or deletes it for nil.
func setOrDelete(m map[string]any, name string, v any) {
	if v == nil {
		delete(m, name)
		return
	}
	m[name] = v
}

// isURN reports whether an attribute key is an extension URN ("urn:" in any case).
func isURN(s string) bool { return len(s) >= 4 && strings.EqualFold(s[:4], "urn:") }
