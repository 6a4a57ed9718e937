package scim

import "strings"

// Compile returns a predicate that reports what m.Match(f, res) reports, with what depends on
// f alone (operators, the case-exactness and type of each attribute, the filter's values and
// their userName fold) worked out once instead of for every resource: a read that matches one
// filter against every user of a company calls it for each.
func (m Matcher) Compile(f Filter) func(res map[string]any) bool {
	p := m.prepare(f, "")
	return func(res map[string]any) bool { return m.matchIn(p, res, "") }
}

// preparedCompare is a CompareFilter with what matchCompare works out from it alone. It is a
// node of prepared trees only (Compile), never of a tree a caller sees.
type preparedCompare struct {
	CompareFilter
	op        string // Op in lower case
	want      any    // Value normalised (and folded, for a userName), nil for pr and null
	exact     bool   // strings compare case-sensitively
	dateTime  bool   // meta.created or meta.lastModified of a resource
	foldNodes bool   // the resource's values go through the Matcher's UserName fold
	wantLower bool   // want is a string in lower case, for a comparison that is not exact
}

func (*preparedCompare) filterNode() {}

// prepareCompare works out c's comparison for a node under parent (see matchIn).
func (m Matcher) prepareCompare(c CompareFilter, parent string) preparedCompare {
	pc := preparedCompare{CompareFilter: c, op: strings.ToLower(c.Op)}
	if pc.op == OpPr {
		return pc
	}
	if pc.want = normValue(c.Value); pc.want == nil {
		return pc
	}
	pc.exact = caseExactPath(c.Path, parent)
	pc.dateTime = parent == "" && isDateTimePath(c.Path)
	if w, ok := pc.want.(string); ok && m.UserName != nil && parent == "" && isUserNamePath(c.Path) {
		pc.want, pc.exact, pc.foldNodes = m.UserName(w), true, true
	}
	return pc
}

// prepare returns f with its comparisons prepared for nodes under parent; matchIn evaluates
// the result as it evaluates f.
func (m Matcher) prepare(f Filter, parent string) Filter {
	switch x := derefFilter(f).(type) {
	case LogicalFilter:
		return LogicalFilter{Op: x.Op, Left: m.prepare(x.Left, parent), Right: m.prepare(x.Right, parent)}
	case NotFilter:
		return NotFilter{Filter: m.prepare(x.Filter, parent)}
	case ValuePathFilter:
		return ValuePathFilter{Path: x.Path, Filter: m.prepare(x.Filter, x.Path.Attr)}
	case CompareFilter:
		pc := m.prepareCompare(x, parent)
		if w, ok := pc.want.(string); ok && !pc.exact {
			pc.want, pc.wantLower = strings.ToLower(w), true // compareStrings lowers it otherwise
		}
		return &pc
	}
	return f
}
