package httpapi

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	filter "github.com/scim2/filter-parser/v2"

	"github.com/idledger/idledger/domain"
)

// SCIM filters and PATCH requests (RFC 7644 §3.4.2.2, §3.5.2) are parsed here into the domain
// types. The grammar is github.com/scim2/filter-parser's; a small pre-pass over the text adds
// what it lacks and what Entra ID sends (entra-scim.md §4.1, §4.4, §6):
//
//   - value filters are cut out and parsed as full filters, so "attr[...]" may hold any
//     and/or/not combination, and "emails[type eq \"work\"].value eq \"x\"" (a sub-attribute
//     after the brackets, which the RFC grammar lacks) means
//     emails[type eq "work" and value eq "x"];
//   - a bare word as a comparison value (externalId eq ada) is a string;
//   - string literals may use any JSON escape (the library accepts only upper-case \u hex);
//   - "urn:…:2.0:User.manager" (a dot after the schema) means "urn:…:2.0:User:manager".
//
// The domain AST is the contract: every node's String method renders text that parses back
// to an equal tree (FuzzParseFilter checks it).

// Limits and names of the SCIM filter and PATCH parsers.
const (
	// maxFilterLen bounds the filter and path text; Entra's filters are far shorter.
	maxFilterLen = 8 << 10
	// maxFilterDepth bounds the nesting of parentheses and brackets.
	maxFilterDepth = 64
	// maxPatchOps bounds the operations of one PATCH request.
	maxPatchOps = 1000
	// schemaPatchOp is the PATCH request message schema (RFC 7644 §3.5.2).
	schemaPatchOp = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// parseFilter parses a SCIM filter (the "filter" query parameter, already URL-decoded). It
// returns an error wrapping domain.ErrInvalidFilter, with a detail for the client, if raw is
// not a filter idledger can evaluate; it never panics.
//
// Numbers become float64, true/false/null (any case) bool and nil, strings are JSON-decoded.
// Attribute names keep the case they are written in (Match ignores it). A core User or Group
// URN prefix is dropped; an extension URN is kept in AttrPath.URN, the enterprise one in its
// canonical spelling. Ordering operators (gt ge lt le) and co/sw/ew reject boolean and null
// values (RFC 7644 §3.4.2.2 makes gt on a boolean an invalidFilter).
func parseFilter(raw string) (domain.Filter, error) {
	if !utf8.ValidString(raw) {
		return nil, domain.Errorf(domain.ErrInvalidFilter, "filter is not valid UTF-8")
	}
	if len(raw) > maxFilterLen {
		return nil, domain.Errorf(domain.ErrInvalidFilter, "filter is longer than %d bytes", maxFilterLen)
	}
	if f, ok := simpleEq(raw); ok {
		return f, nil
	}
	return parseFilterText(raw, false, maxFilterDepth)
}

// simpleEq parses the filter almost every Entra request carries, `attr eq "value"` or
// `attr.sub eq "value"` (no URN, no brackets), without the general parser, which dominates the
// cost of a match query. It gives exactly what parseFilterText gives for these filters
// (TestSimpleEqMatchesParser) and declines everything else. The text it accepts is what the
// regular expression
//
//	^ *([A-Za-z][A-Za-z0-9_-]*)(?:\.([A-Za-z$][A-Za-z0-9_$-]*))? +(?i:eq) +("(?:[^"\\]|\\.)*") *$
//
// matches (FuzzSimpleEq checks it), scanned by hand because the match query runs thousands of
// times a second.
func simpleEq(raw string) (domain.Filter, bool) {
	i := skipSpaces(raw, 0)
	attr, i := scanName(raw, i, false)
	if attr == "" {
		return nil, false
	}
	sub := ""
	if i < len(raw) && raw[i] == '.' {
		if sub, i = scanName(raw, i+1, true); sub == "" {
			return nil, false
		}
	}
	j := skipSpaces(raw, i)
	if j == i || j+2 > len(raw) || raw[j]|0x20 != 'e' || raw[j+1]|0x20 != 'q' {
		return nil, false
	}
	i = skipSpaces(raw, j+2)
	if i == j+2 || i >= len(raw) || raw[i] != '"' {
		return nil, false
	}
	end, escaped := i+1, false
	for ; end < len(raw) && raw[end] != '"'; end++ {
		if raw[end] == '\\' {
			if end++; end >= len(raw) || raw[end] == '\n' {
				return nil, false
			}
			escaped = true
		}
	}
	if end >= len(raw) || skipSpaces(raw, end+1) != len(raw) {
		return nil, false
	}
	switch strings.ToLower(attr) {
	case "and", "or", "not":
		return nil, false
	}
	lit := raw[i : end+1]
	v := lit[1 : len(lit)-1]
	if escaped || !plainJSONString(v) {
		if err := json.Unmarshal([]byte(lit), &v); err != nil {
			return nil, false
		}
	}
	return domain.CompareFilter{Path: domain.AttrPath{Attr: attr, Sub: sub}, Op: domain.OpEq, Value: v}, true
}

// skipSpaces returns the position of the first byte at or after i in s that is not a space.
func skipSpaces(s string, i int) int {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}

// scanName returns the attribute name at position i of s ([A-Za-z][A-Za-z0-9_-]*, with '$'
// allowed everywhere when sub is set) and the position after it; "" if there is none.
func scanName(s string, i int, sub bool) (string, int) {
	start := i
	for ; i < len(s); i++ {
		c := s[i]
		letter := 'a' <= c|0x20 && c|0x20 <= 'z'
		if !letter && (i == start || !('0' <= c && c <= '9' || c == '_' || c == '-')) && !(sub && c == '$') {
			break
		}
	}
	return s[start:i], i
}

// plainJSONString reports whether the JSON string literal "s" (s without escapes) decodes to
// s itself: valid UTF-8 without control characters.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 {
			return false
		}
	}
	return utf8.ValidString(s)
}

// parseFilterText parses s. nested is set inside a value filter, where brackets cannot
// nest; budget is the nesting depth s may still use.
func parseFilterText(s string, nested bool, budget int) (domain.Filter, error) {
	s = strings.Trim(s, " ")
	if s == "" {
		if nested {
			return nil, domain.Errorf(domain.ErrInvalidFilter, "value filter [] is empty")
		}
		return nil, domain.Errorf(domain.ErrInvalidFilter, "filter is empty")
	}
	toks, err := lexFilter(s, budget)
	if err != nil {
		return nil, err
	}
	c := filterConv{groups: map[string]domain.ValuePathFilter{}, prefix: placeholderPrefix(s)}
	if toks, err = c.cutValuePaths(toks, nested, budget); err != nil {
		return nil, err
	}
	markBareValues(toks)
	var text strings.Builder
	for _, t := range toks {
		text.WriteString(t.text)
	}
	expr, err := libParseFilter(text.String())
	if err != nil {
		return nil, domain.Errorf(domain.ErrInvalidFilter,
			"filter %s is not valid: expected attribute operator value (userName eq \"bjensen\"), "+
				"attribute pr, and/or/not (…) combinations or attribute[…] (RFC 7644 §3.4.2.2)", clip(s))
	}
	return c.expr(expr)
}

// A filterToken is a piece of filter text: a run of spaces (' '), a string literal ('"'),
// a bracket or parenthesis, or any other word ('w').
type filterToken struct {
	kind  byte
	text  string
	depth int // nesting of parentheses around the token
}

// lexFilter splits s into tokens, re-quoting string literals in the library's dialect and
// checking the nesting depth against budget.
func lexFilter(s string, budget int) ([]filterToken, error) {
	var toks []filterToken
	depth := 0
	for i := 0; i < len(s); {
		switch c := s[i]; c {
		case ' ':
			j := i
			for j < len(s) && s[j] == ' ' {
				j++
			}
			toks = append(toks, filterToken{' ', s[i:j], depth})
			i = j
		case '(', ')', '[', ']':
			if c == ')' && depth > 0 {
				depth--
			}
			toks = append(toks, filterToken{c, s[i : i+1], depth})
			if c == '(' {
				if depth++; depth > budget {
					return nil, domain.Errorf(domain.ErrInvalidFilter, "filter nests parentheses deeper than %d levels", maxFilterDepth)
				}
			}
			i++
		case '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' {
					j++
				}
			}
			if j >= len(s) {
				return nil, domain.Errorf(domain.ErrInvalidFilter, "filter has an unterminated string at offset %d", i)
			}
			var v string
			if err := json.Unmarshal([]byte(s[i:j+1]), &v); err != nil {
				return nil, domain.Errorf(domain.ErrInvalidFilter, "filter has an invalid string literal %s", clip(s[i:j+1]))
			}
			toks = append(toks, filterToken{'"', quoteFilterValue(v), depth})
			i = j + 1
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(` ()[]"`, rune(s[j])) {
				j++
			}
			toks = append(toks, filterToken{'w', s[i:j], depth})
			i = j
		}
	}
	return toks, nil
}

// filterConv converts the library's AST into the domain's. groups maps the placeholder
// attribute names that stand for cut-out value filters to those filters.
type filterConv struct {
	groups map[string]domain.ValuePathFilter
	prefix string
}

// placeholderPrefix returns an attribute name prefix that s does not contain.
func placeholderPrefix(s string) string {
	p := "idlvp"
	for strings.Contains(strings.ToLower(s), p) {
		p += "x"
	}
	return p
}

// cutValuePaths replaces each "attr[filter]" by "P pr" and each "attr[filter].sub" by
// "P.sub", where P is a fresh placeholder name, and parses the filters in brackets.
func (c *filterConv) cutValuePaths(toks []filterToken, nested bool, budget int) ([]filterToken, error) {
	out := make([]filterToken, 0, len(toks))
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch t.kind {
		case ']':
			return nil, domain.Errorf(domain.ErrInvalidFilter, "filter has a ']' without '['")
		case '[':
			if nested {
				return nil, domain.Errorf(domain.ErrInvalidFilter, "value filters cannot be nested")
			}
			k := len(out) - 1
			for k >= 0 && out[k].kind == ' ' {
				k--
			}
			if k < 0 || out[k].kind != 'w' || isLogicalWord(out[k].text) {
				return nil, domain.Errorf(domain.ErrInvalidFilter, "a value filter '[' must follow an attribute name")
			}
			attrText := out[k].text
			out = out[:k]
			j := i + 1
			for j < len(toks) && toks[j].kind != ']' {
				if toks[j].kind == '[' {
					return nil, domain.Errorf(domain.ErrInvalidFilter, "value filters cannot be nested")
				}
				j++
			}
			if j == len(toks) {
				return nil, domain.Errorf(domain.ErrInvalidFilter, "value filter after %s has no closing ']'", clip(attrText))
			}
			var inner strings.Builder
			for _, it := range toks[i+1 : j] {
				inner.WriteString(it.text)
			}
			sub := ""
			if j+1 < len(toks) && toks[j+1].kind == 'w' && strings.HasPrefix(toks[j+1].text, ".") {
				sub = toks[j+1].text[1:]
				if !isFilterAttrName(sub) {
					return nil, domain.Errorf(domain.ErrInvalidFilter, "%q after a value filter is not a sub-attribute name", toks[j+1].text)
				}
				j++
			}
			vp, err := parseValuePath(attrText, inner.String(), sub != "", budget-t.depth)
			if err != nil {
				return nil, err
			}
			name := c.prefix + strconv.Itoa(len(c.groups))
			c.groups[name] = vp
			text := name + " pr"
			if sub != "" {
				text = name + "." + sub
			}
			out = append(out, filterToken{'w', text, t.depth})
			i = j
		default:
			out = append(out, t)
		}
	}
	return out, nil
}

// parseValuePath parses "attr[inner]". budget counts the bracket as a level, and one more
// when a sub-attribute follows: String renders attr[inner].sub op v as attr[(inner) and
// sub op v], which may add parentheses.
func parseValuePath(attrText, inner string, hasSub bool, budget int) (domain.ValuePathFilter, error) {
	budget--
	if hasSub {
		budget--
	}
	ap, err := libParseAttrPath(legacyExtensionPath(attrText))
	if err != nil {
		return domain.ValuePathFilter{}, domain.Errorf(domain.ErrInvalidFilter, "%s is not an attribute name", clip(attrText))
	}
	path, err := convertAttrPath(ap, false)
	if err != nil {
		return domain.ValuePathFilter{}, err
	}
	if path.Sub != "" {
		return domain.ValuePathFilter{}, domain.Errorf(domain.ErrInvalidFilter, "a value filter needs a multi-valued attribute, not %q", path.String())
	}
	if budget < 0 {
		return domain.ValuePathFilter{}, domain.Errorf(domain.ErrInvalidFilter, "filter nests parentheses deeper than %d levels", maxFilterDepth)
	}
	f, err := parseFilterText(inner, true, budget)
	if err != nil {
		return domain.ValuePathFilter{}, err
	}
	return domain.ValuePathFilter{Path: path, Filter: f}, nil
}

var compareOps = []string{"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"}

// markBareValues quotes a word in value position (after "attribute op") that is not a JSON
// literal: Microsoft documents `externalId eq ada` (entra-scim.md §4.1). Other words that
// start with a schema URN get the legacy "…:User.attr" form rewritten.
func markBareValues(toks []filterToken) {
	prev := func(k int) int {
		for k--; k >= 0 && toks[k].kind == ' '; k-- {
		}
		return k
	}
	for i := range toks {
		if toks[i].kind != 'w' {
			continue
		}
		p1 := prev(i)
		p2 := prev(p1)
		if p1 >= 0 && p2 >= 0 && toks[p1].kind == 'w' && toks[p2].kind == 'w' &&
			isCompareWord(toks[p1].text) && !isLogicalWord(toks[p2].text) {
			if !isJSONLiteral(toks[i].text) {
				toks[i].text = quoteFilterValue(toks[i].text)
			}
			continue
		}
		toks[i].text = legacyExtensionPath(toks[i].text)
	}
}

func isCompareWord(s string) bool {
	for _, op := range compareOps {
		if strings.EqualFold(s, op) {
			return true
		}
	}
	return false
}

func isLogicalWord(s string) bool {
	return strings.EqualFold(s, "and") || strings.EqualFold(s, "or") || strings.EqualFold(s, "not")
}

var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

func isJSONLiteral(s string) bool {
	return strings.EqualFold(s, "true") || strings.EqualFold(s, "false") || strings.EqualFold(s, "null") ||
		jsonNumber.MatchString(s)
}

var filterAttrName = regexp.MustCompile(`^\$?[A-Za-z][A-Za-z0-9_-]*$`)

// isFilterAttrName reports whether s is an ATTRNAME of RFC 7644 §3.4.2.2 (with the "$ref"
// form of RFC 7643).
func isFilterAttrName(s string) bool { return filterAttrName.MatchString(s) }

// quoteFilterValue quotes s as a string literal in the dialect the library accepts:
// JSON, with '"', '\' and control characters escaped and \u hex in upper case.
func quoteFilterValue(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// legacyExtensionPath rewrites "urn:…:2.0:User.attr" (a dot after the schema name, which
// Entra has sent for the manager) to "urn:…:2.0:User:attr".
func legacyExtensionPath(s string) string {
	if len(s) < 4 || !strings.EqualFold(s[:4], "urn:") {
		return s
	}
	i := strings.LastIndexByte(s, ':')
	head, tail := s[:i], s[i+1:]
	if !isSchemaVersion(head[strings.LastIndexByte(head, ':')+1:]) {
		return s
	}
	for _, kind := range []string{"User.", "Group."} {
		if len(tail) > len(kind) && strings.EqualFold(tail[:len(kind)], kind) {
			return head + ":" + tail[:len(kind)-1] + ":" + tail[len(kind):]
		}
	}
	return s
}

// isSchemaVersion reports whether a URN segment is a version such as "2.0".
func isSchemaVersion(seg string) bool {
	if seg == "" || seg[0] < '0' || seg[0] > '9' {
		return false
	}
	return strings.Trim(seg, "0123456789.") == ""
}

// libParseFilter runs the library's filter parser, turning a panic into an error.
func libParseFilter(text string) (e filter.Expression, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, err = nil, fmt.Errorf("filter parser: %v", r)
		}
	}()
	return filter.ParseFilterNumber([]byte(text))
}

// libParseAttrPath runs the library's attribute path parser, turning a panic into an error.
func libParseAttrPath(text string) (p filter.AttributePath, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = filter.AttributePath{}, fmt.Errorf("filter parser: %v", r)
		}
	}()
	if text == "" {
		return p, fmt.Errorf("empty attribute path")
	}
	if p, ok := simpleAttrPath(text); ok {
		return p, nil
	}
	return filter.ParseAttrPath([]byte(text))
}

// simpleAttrPath parses the attribute paths Entra sends ("active", "name.givenName",
// "urn:…:enterprise:2.0:User:manager") without the library, whose parser allocates a few
// kilobytes per path: it was a tenth of all allocation in a provisioning cycle. It returns
// false for anything else, which goes to the library; FuzzSimpleAttrPath checks that both
// agree wherever it answers.
func simpleAttrPath(text string) (filter.AttributePath, bool) {
	var p filter.AttributePath
	rest := text
	if i := strings.LastIndexByte(text, ':'); i >= 0 {
		uri := text[:i]
		if !isSimpleURN(uri) {
			return p, false
		}
		p.URIPrefix, rest = &uri, text[i+1:]
	}
	name, sub, hasSub := strings.Cut(rest, ".")
	if !isSimpleAttrName(name) || (hasSub && !isSimpleAttrName(sub)) {
		return p, false
	}
	p.AttributeName = name
	if hasSub {
		p.SubAttribute = &sub
	}
	return p, true
}

// isSimpleAttrName reports whether s is an ATTRNAME of RFC 7644 (isAttrName); "$ref" is left
// to the library, which reads it its own way.
func isSimpleAttrName(s string) bool { return s != "$ref" && isAttrName(s) }

// isSimpleURN reports whether s is "urn:" followed by colon-separated segments of letters,
// digits, '.' and '-', none empty (the library's URI grammar, with the "urn:" required).
func isSimpleURN(s string) bool {
	if len(s) < 5 || !strings.EqualFold(s[:4], "urn:") {
		return false
	}
	for seg := range strings.SplitSeq(s[4:], ":") {
		if seg == "" {
			return false
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; !isAlpha(c) && !(c >= '0' && c <= '9') && c != '.' && c != '-' {
				return false
			}
		}
	}
	return true
}

// expr converts one node of the library's AST.
func (c *filterConv) expr(e filter.Expression) (domain.Filter, error) {
	switch x := e.(type) {
	case *filter.AttributeExpression:
		return c.attrExp(x)
	case *filter.LogicalExpression:
		l, err := c.expr(x.Left)
		if err != nil {
			return nil, err
		}
		r, err := c.expr(x.Right)
		if err != nil {
			return nil, err
		}
		return domain.LogicalFilter{Op: strings.ToLower(string(x.Operator)), Left: l, Right: r}, nil
	case *filter.NotExpression:
		f, err := c.expr(x.Expression)
		if err != nil {
			return nil, err
		}
		return domain.NotFilter{Filter: f}, nil
	case *filter.ValuePath:
		// Not produced (brackets are cut out before the library sees them); kept faithful.
		path, err := convertAttrPath(x.AttributePath, false)
		if err != nil {
			return nil, err
		}
		f, err := c.expr(x.ValueFilter)
		if err != nil {
			return nil, err
		}
		return domain.ValuePathFilter{Path: path, Filter: f}, nil
	}
	return nil, domain.Errorf(domain.ErrInvalidFilter, "unsupported filter expression")
}

func (c *filterConv) attrExp(x *filter.AttributeExpression) (domain.Filter, error) {
	if x.AttributePath.URIPrefix == nil {
		if vp, ok := c.groups[x.AttributePath.AttributeName]; ok {
			if x.AttributePath.SubAttribute == nil {
				if x.Operator != filter.PR {
					return nil, domain.Errorf(domain.ErrInvalidFilter, "a value filter %s[…] cannot be compared", vp.Path)
				}
				return vp, nil
			}
			cmp, err := compareFilter(domain.AttrPath{Attr: *x.AttributePath.SubAttribute}, x.Operator, x.CompareValue)
			if err != nil {
				return nil, err
			}
			vp.Filter = domain.LogicalFilter{Op: "and", Left: vp.Filter, Right: cmp}
			return vp, nil
		}
	}
	path, err := convertAttrPath(x.AttributePath, false)
	if err != nil {
		return nil, err
	}
	return compareFilter(path, x.Operator, x.CompareValue)
}

// compareFilter builds a comparison, converting the library's value: json.Number to
// float64, the still-escaped string contents to a string.
func compareFilter(path domain.AttrPath, op filter.CompareOperator, v any) (domain.Filter, error) {
	o := strings.ToLower(string(op))
	if o == domain.OpPr {
		return domain.CompareFilter{Path: path, Op: o}, nil
	}
	var value any
	switch x := v.(type) {
	case nil, bool:
		value = x
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, domain.Errorf(domain.ErrInvalidFilter, "number %s in filter is out of range", clip(string(x)))
		}
		value = f
	case string:
		var s string
		if err := json.Unmarshal([]byte(`"`+x+`"`), &s); err != nil {
			return nil, domain.Errorf(domain.ErrInvalidFilter, "invalid string literal %s in filter", clip(`"`+x+`"`))
		}
		value = s
	default:
		return nil, domain.Errorf(domain.ErrInvalidFilter, "unsupported value in filter")
	}
	switch o {
	case domain.OpGt, domain.OpGe, domain.OpLt, domain.OpLe, domain.OpCo, domain.OpSw, domain.OpEw:
		switch value.(type) {
		case bool, nil:
			return nil, domain.Errorf(domain.ErrInvalidFilter, "%s %s cannot compare %s; use eq or ne", path, o, filterValueText(value))
		}
	}
	return domain.CompareFilter{Path: path, Op: o, Value: value}, nil
}

func filterValueText(v any) string {
	if v == nil {
		return "null"
	}
	return fmt.Sprint(v)
}

// convertAttrPath converts the library's attribute path. A schema prefix must be a URN; a
// core User or Group URN is dropped, the enterprise URN spelled canonically. "urn:…:2.0:User"
// followed by ".attr" is the legacy form of "urn:…:2.0:User:attr"; without an attribute it
// names the whole extension object, which only a PATCH path (schemaOnly) may do.
func convertAttrPath(p filter.AttributePath, schemaOnly bool) (domain.AttrPath, error) {
	out := domain.AttrPath{Attr: p.AttributeName, Sub: p.SubAttributeName()}
	if p.URIPrefix == nil {
		return out, nil
	}
	urn := *p.URIPrefix
	if len(urn) < 4 || !strings.EqualFold(urn[:4], "urn:") {
		return out, domain.Errorf(domain.ErrInvalidFilter, "%q: an attribute prefix must be a schema URN", p.String())
	}
	if (strings.EqualFold(out.Attr, "User") || strings.EqualFold(out.Attr, "Group")) &&
		isSchemaVersion(urn[strings.LastIndexByte(urn, ':')+1:]) {
		urn += ":" + out.Attr
		out.Attr, out.Sub = out.Sub, ""
	}
	switch {
	case strings.EqualFold(urn, domain.SchemaUser) || strings.EqualFold(urn, domain.SchemaGroup):
		urn = ""
	case strings.EqualFold(urn, domain.SchemaEnterpriseUser):
		urn = domain.SchemaEnterpriseUser
	}
	out.URN = urn
	if out.Attr == "" && (urn == "" || !schemaOnly) {
		return out, domain.Errorf(domain.ErrInvalidFilter, "%q names a schema, not an attribute", p.String())
	}
	return out, nil
}

// clip quotes s for an error detail, shortened if long.
func clip(s string) string {
	if len(s) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strconv.Quote(s)
}

// parsePatchPath parses the "path" of a PATCH operation (RFC 7644 §3.5.2): attr, attr.sub,
// urn:…:attr, attr[filter] or attr[filter].sub, plus the legacy "urn:…:2.0:User.attr" form
// and a bare extension URN (the whole extension object: AttrPath.URN set, Attr empty). The
// filter in brackets is any filter parseFilter accepts, except another value filter. Like
// parseFilter it drops a core schema URN and keeps an extension URN. A bare "manager" stays
// unqualified: resolving it to the enterprise extension is the PATCH engine's business.
// It returns an error wrapping domain.ErrInvalidPath if raw is not such a path.
func parsePatchPath(raw string) (*domain.PatchPath, error) {
	s := strings.Trim(raw, " ")
	invalid := func(why string) error {
		return domain.Errorf(domain.ErrInvalidPath, "invalid path %s: %s", clip(raw), why)
	}
	switch {
	case s == "":
		return nil, invalid("empty")
	case !utf8.ValidString(s):
		return nil, invalid("not valid UTF-8")
	case len(s) > maxFilterLen:
		return nil, invalid(fmt.Sprintf("longer than %d bytes", maxFilterLen))
	}
	attrText, inner, sub, hasFilter := s, "", "", false
	if strings.ContainsAny(s, `[]"() `) {
		toks, err := lexFilter(s, maxFilterDepth)
		if err != nil {
			return nil, invalid(domain.ErrorDetail(err))
		}
		open := 0
		for open < len(toks) && toks[open].kind != '[' {
			open++
		}
		head := toks[:open]
		for len(head) > 0 && head[len(head)-1].kind == ' ' {
			head = head[:len(head)-1]
		}
		if open == len(toks) || len(head) != 1 || head[0].kind != 'w' {
			return nil, invalid("expected attribute, attribute.subAttribute or attribute[filter]")
		}
		closing := open + 1
		for closing < len(toks) && toks[closing].kind != ']' {
			if toks[closing].kind == '[' {
				return nil, invalid("value filters cannot be nested")
			}
			closing++
		}
		if closing == len(toks) {
			return nil, invalid("missing ']'")
		}
		var b strings.Builder
		for _, t := range toks[open+1 : closing] {
			b.WriteString(t.text)
		}
		rest := toks[closing+1:]
		switch {
		case len(rest) == 0:
		case len(rest) == 1 && rest[0].kind == 'w' && strings.HasPrefix(rest[0].text, ".") && isFilterAttrName(rest[0].text[1:]):
			sub = rest[0].text[1:]
		default:
			return nil, invalid("only .subAttribute may follow a value filter")
		}
		attrText, inner, hasFilter = head[0].text, b.String(), true
	}
	ap, err := libParseAttrPath(legacyExtensionPath(attrText))
	if err != nil {
		return nil, invalid("expected attribute, attribute.subAttribute or attribute[filter]")
	}
	path, err := convertAttrPath(ap, true)
	if err != nil {
		return nil, invalid(domain.ErrorDetail(err))
	}
	pp := &domain.PatchPath{Path: path, ElemSub: sub}
	if hasFilter {
		if path.Sub != "" || path.Attr == "" {
			return nil, invalid(fmt.Sprintf("a value filter needs a multi-valued attribute, not %q", path.String()))
		}
		// One level for the brackets, as in a filter.
		if pp.Filter, err = parseFilterText(inner, true, maxFilterDepth-1); err != nil {
			return nil, invalid(domain.ErrorDetail(err))
		}
	}
	return pp, nil
}

// parsePatchRequest parses a PATCH request body (RFC 7644 §3.5.2) into its operations.
//
//   - "schemas" may be missing (lenient: some clients omit it), but if present it must
//     contain the PatchOp URN; anything else (such as a User representation sent to PATCH by
//     mistake) is ErrInvalidSyntax.
//   - "Operations" (key in any case) must be a non-empty array of objects, else
//     ErrInvalidSyntax; more than 1000 is ErrTooMany.
//   - "op" is add, replace or remove in any case, lower-cased into PatchOp.Op; anything else
//     is ErrInvalidSyntax naming the op.
//   - "path" is optional; an empty string counts as missing. A path parsePatchPath rejects
//     is ErrInvalidPath, and remove without a path is ErrNoTarget (RFC 7644 §3.5.2.2).
//   - "value" is kept as decoded, null included; checking it is the PATCH engine's job.
//   - Other members of an operation ("name", …) and of the body (a stray "id") are ignored.
func parsePatchRequest(body map[string]any) ([]domain.PatchOp, error) {
	if v, ok := memberFold(body, "schemas"); ok && v != nil && !hasPatchOpSchema(v) {
		return nil, domain.Errorf(domain.ErrInvalidSyntax, "schemas must contain %q", schemaPatchOp)
	}
	raw, _ := memberFold(body, "Operations")
	list, ok := raw.([]any)
	switch {
	case raw == nil:
		return nil, domain.Errorf(domain.ErrInvalidSyntax, "Operations is required")
	case !ok:
		return nil, domain.Errorf(domain.ErrInvalidSyntax, "Operations must be an array")
	case len(list) == 0:
		return nil, domain.Errorf(domain.ErrInvalidSyntax, "Operations must not be empty")
	case len(list) > maxPatchOps:
		return nil, domain.Errorf(domain.ErrTooMany, "a PATCH request may have at most %d operations, got %d", maxPatchOps, len(list))
	}
	ops := make([]domain.PatchOp, 0, len(list))
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, domain.Errorf(domain.ErrInvalidSyntax, "Operations[%d] must be an object", i)
		}
		opv, _ := memberFold(m, "op")
		opText, ok := opv.(string)
		if !ok {
			return nil, domain.Errorf(domain.ErrInvalidSyntax, "Operations[%d]: op must be add, replace or remove", i)
		}
		op := domain.PatchOp{Op: strings.ToLower(strings.TrimSpace(opText))}
		switch op.Op {
		case domain.PatchAdd, domain.PatchReplace, domain.PatchRemove:
		default:
			return nil, domain.Errorf(domain.ErrInvalidSyntax, "Operations[%d]: unsupported op %q; use add, replace or remove", i, opText)
		}
		if pv, _ := memberFold(m, "path"); pv != nil {
			ps, ok := pv.(string)
			if !ok {
				return nil, domain.Errorf(domain.ErrInvalidPath, "Operations[%d]: path must be a string", i)
			}
			if strings.TrimSpace(ps) != "" {
				p, err := parsePatchPath(ps)
				if err != nil {
					return nil, domain.Errorf(domain.ErrInvalidPath, "Operations[%d]: %s", i, domain.ErrorDetail(err))
				}
				op.Path = p
			}
		}
		if op.Path == nil && op.Op == domain.PatchRemove {
			return nil, domain.Errorf(domain.ErrNoTarget, "Operations[%d]: remove needs a path (RFC 7644 §3.5.2.2)", i)
		}
		op.Value, _ = memberFold(m, "value")
		ops = append(ops, op)
	}
	return ops, nil
}

// hasPatchOpSchema reports whether a "schemas" value (a list, or leniently one string)
// contains the PatchOp URN.
func hasPatchOpSchema(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.EqualFold(strings.TrimSpace(x), schemaPatchOp)
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok && strings.EqualFold(strings.TrimSpace(s), schemaPatchOp) {
				return true
			}
		}
	}
	return false
}

// memberFold returns the member of a JSON object named name in any case: the exact spelling
// if present, else the smallest matching key, so the choice does not depend on map order.
func memberFold(m map[string]any, name string) (any, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	found, ok := "", false
	for k := range m {
		if strings.EqualFold(k, name) && (!ok || k < found) {
			found, ok = k, true
		}
	}
	if !ok {
		return nil, false
	}
	return m[found], true
}
