package scim

// ReadAttributes returns the keys of a resource's attributes that Match(f, …) reads at its top
// level (domain.ListQuery.Reads): for each attribute path, its attribute name, or the schema URN
// of an extension attribute; and "urn:", standing for every extension, when a path without a
// URN names no core attribute (Match then looks for it in the extensions too). Match given a
// resource that holds only those keys (as the resource has them) gives what it gives on the
// whole resource. It returns nil, meaning every key, for a tree with a node it does not know.
func ReadAttributes(f Filter) []string {
	out := []string{}
	if !appendReads(&out, f) {
		return nil
	}
	return out
}

// appendReads appends to *out the keys f reads, reporting false for a node it does not know.
func appendReads(out *[]string, f Filter) bool {
	switch x := derefFilter(f).(type) {
	case LogicalFilter:
		return appendReads(out, x.Left) && appendReads(out, x.Right)
	case NotFilter:
		return appendReads(out, x.Filter)
	case ValuePathFilter:
		appendPathReads(out, x.Path) // the inner filter reads elements of that attribute only
		return true
	case CompareFilter:
		appendPathReads(out, x.Path)
		return true
	case *preparedCompare:
		appendPathReads(out, x.Path)
		return true
	}
	return false
}

// appendPathReads appends the keys appendPathNodes reads for p at a resource's top level.
func appendPathReads(out *[]string, p AttrPath) {
	if p.URN != "" && !isCoreSchemaURN(p.URN) {
		*out = append(*out, p.URN)
		return
	}
	*out = append(*out, p.Attr)
	if p.URN == "" && !isCoreAttrName(p.Attr) {
		*out = append(*out, "urn:")
	}
}

// Attribute returns the key of the top-level attribute the Ranking reads (in lower case), for
// domain.ListQuery.Reads.
func (r *Ranking) Attribute() string { return r.segs[0] }
