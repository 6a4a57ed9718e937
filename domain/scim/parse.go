package scim

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The parser of SCIM filters and PATCH paths (RFC 7644 §3.4.2.2, §3.5.2), hand-written
// recursive descent over the text, with what Entra ID sends on top of the RFC grammar:
//
//   - a value filter "attr[...]" may hold any and/or/not combination, and
//     `emails[type eq "work"].value eq "x"` (a sub-attribute after the brackets, which the RFC
//     filter grammar lacks) means emails[type eq "work" and value eq "x"];
//   - a bare word as a comparison value (externalId eq ada) is a string;
//   - string literals may use any JSON escape;
//   - "urn:…:2.0:User.manager" (a dot after the schema) means "urn:…:2.0:User:manager".
//
// Operators and the literals true, false and null are read in any case; attribute names keep
// the case they are written in (Match ignores it). Tokens are separated by spaces (U+0020
// only). Every node's String method renders text that parses back to an equal tree.

// Limits of the filter and PATCH parsers.
const (
	// maxFilterLen bounds the filter and path text; Entra's filters are far shorter.
	maxFilterLen = 8 << 10
	// maxFilterDepth bounds the nesting of parentheses and brackets. Entra nests nothing, and
	// a filter a person or a query builder writes rarely nests more than three or four levels.
	maxFilterDepth = 16
	// maxFilterTerms bounds the comparisons (attribute op value, attribute pr) of one filter,
	// those inside value filters' brackets included. A list request that no index answers
	// evaluates every comparison on every resource of the company, so the terms multiply the
	// cost of a scan: 333 of them took 1.2 CPU-seconds on 10,000 users. Entra sends one (or
	// two joined by and); 50 leaves room for clients that look up a page of ids or userNames
	// in one "or" chain.
	maxFilterTerms = 50
	// MaxPatchOps bounds the operations of one PATCH request.
	MaxPatchOps = 1000
	// schemaPatchOp is the PATCH request message schema (RFC 7644 §3.5.2).
	schemaPatchOp = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// ParseFilter parses a SCIM filter (the "filter" query parameter, already URL-decoded). It
// returns an error wrapping ErrInvalidFilter, with a detail for the client, if raw is not a
// filter idledger can evaluate; it never panics.
//
// Numbers become float64, true/false/null (any case) bool and nil, strings are JSON-decoded.
// A core User or Group URN prefix is dropped; an extension URN is kept in AttrPath.URN, the
// enterprise one in its canonical spelling. Ordering operators (gt ge lt le) and co/sw/ew
// reject boolean and null values (RFC 7644 §3.4.2.2 makes gt on a boolean an invalidFilter).
// Parentheses and brackets nest at most 16 deep, and a filter holds at most 50 comparisons.
func ParseFilter(raw string) (Filter, error) {
	if !utf8.ValidString(raw) {
		return nil, errorf(ErrInvalidFilter, "filter is not valid UTF-8")
	}
	if len(raw) > maxFilterLen {
		return nil, errorf(ErrInvalidFilter, "filter is longer than %d bytes", maxFilterLen)
	}
	return parseFilterText(raw, false, maxFilterDepth, new(int))
}

// filterParser reads one filter: the whole text, or the inside of one value filter's brackets.
type filterParser struct {
	s      string
	i      int
	depth  int  // parentheses open around position i
	budget int  // the depth s may use
	nested bool // inside a value filter, where brackets cannot nest
	terms  *int // comparisons read so far in the whole filter, value filters included
}

// parseFilterText parses s; nested is set inside a value filter; budget is the nesting depth
// s may still use; terms counts the comparisons of the whole filter (maxFilterTerms).
func parseFilterText(s string, nested bool, budget int, terms *int) (Filter, error) {
	s = strings.Trim(s, " ")
	if s == "" {
		if nested {
			return nil, errorf(ErrInvalidFilter, "value filter [] is empty")
		}
		return nil, errorf(ErrInvalidFilter, "filter is empty")
	}
	p := filterParser{s: s, budget: budget, nested: nested, terms: terms}
	f, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.i != len(s) {
		return nil, p.syntaxError()
	}
	return f, nil
}

// syntaxError is the error for text that does not follow the grammar.
func (p *filterParser) syntaxError() error {
	if p.i < len(p.s) {
		switch p.s[p.i] {
		case ']':
			return errorf(ErrInvalidFilter, "filter has a ']' without '['")
		case '[':
			return errorf(ErrInvalidFilter, "a value filter '[' must follow an attribute name")
		}
	}
	return errorf(ErrInvalidFilter,
		"filter %s is not valid: expected attribute operator value (userName eq \"bjensen\"), "+
			"attribute pr, and/or/not (…) combinations or attribute[…] (RFC 7644 §3.4.2.2)", clip(p.s))
}

// or parses FILTER *(SP+ "or" SP+ FILTER), grouping from the left.
func (p *filterParser) or() (Filter, error) {
	f, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		f = LogicalFilter{Op: "or", Left: f, Right: r}
	}
	return f, nil
}

// and parses value *(SP+ "and" SP+ value), grouping from the left.
func (p *filterParser) and() (Filter, error) {
	f, err := p.value()
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		r, err := p.value()
		if err != nil {
			return nil, err
		}
		f = LogicalFilter{Op: "and", Left: f, Right: r}
	}
	return f, nil
}

// keyword consumes SP+ kw SP+ (kw in any case) and reports whether it was there.
func (p *filterParser) keyword(kw string) bool {
	j := skipSpaces(p.s, p.i)
	if j == p.i || len(p.s)-j < len(kw)+1 || !strings.EqualFold(p.s[j:j+len(kw)], kw) || p.s[j+len(kw)] != ' ' {
		return false
	}
	p.i = skipSpaces(p.s, j+len(kw))
	return true
}

// value parses a comparison, a value filter, "not (…)" or "(…)".
func (p *filterParser) value() (Filter, error) {
	if p.i < len(p.s) && p.s[p.i] == '(' {
		return p.parens()
	}
	word := p.word()
	if word == "" {
		return nil, p.syntaxError()
	}
	next := skipSpaces(p.s, p.i)
	if next < len(p.s) {
		switch {
		case p.s[next] == '(' && strings.EqualFold(word, "not"):
			p.i = next
			f, err := p.parens()
			if err != nil {
				return nil, err
			}
			return NotFilter{Filter: f}, nil
		case p.s[next] == '[':
			if isLogicalWord(word) {
				return nil, errorf(ErrInvalidFilter, "a value filter '[' must follow an attribute name")
			}
			p.i = next
			return p.valuePath(word)
		}
	}
	path, ok, err := parseAttrPath(word, false)
	if err != nil {
		return nil, errorf(ErrInvalidFilter, "%s", err.Error())
	}
	if !ok {
		return nil, p.syntaxError()
	}
	return p.comparison(path, !isLogicalWord(word))
}

// parens parses "(" SP* FILTER SP* ")".
func (p *filterParser) parens() (Filter, error) {
	if p.depth++; p.depth > p.budget {
		return nil, errorf(ErrInvalidFilter, "filter nests parentheses deeper than %d levels", maxFilterDepth)
	}
	p.i = skipSpaces(p.s, p.i+1)
	f, err := p.or()
	if err != nil {
		return nil, err
	}
	p.i = skipSpaces(p.s, p.i)
	if p.i >= len(p.s) || p.s[p.i] != ')' {
		return nil, p.syntaxError()
	}
	p.i++
	p.depth--
	return f, nil
}

// comparison parses what follows an attribute path: SP+ "pr" or SP+ op SP+ value. bare
// allows a bare word as a string value.
func (p *filterParser) comparison(path AttrPath, bare bool) (Filter, error) {
	if *p.terms++; *p.terms > maxFilterTerms {
		return nil, errorf(ErrInvalidFilter,
			"filter has more than %d comparisons; split it into several requests", maxFilterTerms)
	}
	j := skipSpaces(p.s, p.i)
	if j == p.i {
		return nil, p.syntaxError()
	}
	p.i = j
	op := lowerOp(p.word())
	if op == OpPr {
		return CompareFilter{Path: path, Op: OpPr}, nil
	}
	if op == "" {
		return nil, p.syntaxError()
	}
	if j = skipSpaces(p.s, p.i); j == p.i || j == len(p.s) {
		return nil, p.syntaxError()
	}
	p.i = j
	var value any
	if p.s[j] == '"' {
		v, err := p.stringLiteral()
		if err != nil {
			return nil, err
		}
		value = v
	} else {
		w := p.word()
		switch {
		case w == "":
			return nil, p.syntaxError()
		case strings.EqualFold(w, "true"):
			value = true
		case strings.EqualFold(w, "false"):
			value = false
		case strings.EqualFold(w, "null"):
			value = nil
		case isJSONNumber(w):
			f, err := strconv.ParseFloat(w, 64)
			if err != nil {
				return nil, errorf(ErrInvalidFilter, "number %s in filter is out of range", clip(w))
			}
			value = f
		case bare:
			value = w
		default:
			return nil, p.syntaxError()
		}
	}
	switch op {
	case OpGt, OpGe, OpLt, OpLe, OpCo, OpSw, OpEw:
		switch value.(type) {
		case bool, nil:
			return nil, errorf(ErrInvalidFilter, "%s %s cannot compare %s; use eq or ne", path, op, filterLiteral(value))
		}
	}
	return CompareFilter{Path: path, Op: op, Value: value}, nil
}

// valuePath parses "[inner]" after the attribute word, and an optional ".sub op value".
func (p *filterParser) valuePath(word string) (Filter, error) {
	if p.nested {
		return nil, errorf(ErrInvalidFilter, "value filters cannot be nested")
	}
	open := p.i
	closing, err := closingBracket(p.s, open)
	if err != nil {
		return nil, err
	}
	if closing < 0 {
		return nil, errorf(ErrInvalidFilter, "value filter after %s has no closing ']'", clip(word))
	}
	p.i = closing + 1
	sub := ""
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		w := p.word()
		if !isAttrName(w) {
			return nil, errorf(ErrInvalidFilter, "%q after a value filter is not a sub-attribute name", "."+w)
		}
		sub = w
	}
	path, ok, err := parseAttrPath(word, false)
	switch {
	case err != nil:
		return nil, errorf(ErrInvalidFilter, "%s", err.Error())
	case !ok:
		return nil, errorf(ErrInvalidFilter, "%s is not an attribute name", clip(word))
	case path.Sub != "":
		return nil, errorf(ErrInvalidFilter, "a value filter needs a multi-valued attribute, not %q", path.String())
	}
	// The brackets count as a level, and one more with a sub-attribute: String renders
	// attr[inner].sub op v as attr[(inner) and sub op v].
	budget := p.budget - p.depth - 1
	if sub != "" {
		budget--
	}
	if budget < 0 {
		return nil, errorf(ErrInvalidFilter, "filter nests parentheses deeper than %d levels", maxFilterDepth)
	}
	inner, err := parseFilterText(p.s[open+1:closing], true, budget, p.terms)
	if err != nil {
		return nil, err
	}
	if sub == "" {
		return ValuePathFilter{Path: path, Filter: inner}, nil
	}
	cmp, err := p.comparison(AttrPath{Attr: sub}, true)
	if err != nil {
		return nil, err
	}
	return ValuePathFilter{Path: path, Filter: LogicalFilter{Op: "and", Left: inner, Right: cmp}}, nil
}

// closingBracket returns the position of the ']' that closes the '[' at open, skipping string
// literals; -1 if there is none. A second '[' first is an error: value filters do not nest.
func closingBracket(s string, open int) (int, error) {
	for i := open + 1; i < len(s); i++ {
		switch s[i] {
		case ']':
			return i, nil
		case '[':
			return 0, errorf(ErrInvalidFilter, "value filters cannot be nested")
		case '"':
			end := stringEnd(s, i)
			if end < 0 {
				return 0, errorf(ErrInvalidFilter, "filter has an unterminated string at offset %d", i)
			}
			i = end
		}
	}
	return -1, nil
}

// stringEnd returns the position of the '"' that ends the string literal starting at i; -1 if
// it is unterminated.
func stringEnd(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '"':
			return j
		case '\\':
			j++
		}
	}
	return -1
}

// stringLiteral reads the JSON string literal at p.i and returns its value.
func (p *filterParser) stringLiteral() (string, error) {
	end := stringEnd(p.s, p.i)
	if end < 0 {
		return "", errorf(ErrInvalidFilter, "filter has an unterminated string at offset %d", p.i)
	}
	lit := p.s[p.i : end+1]
	p.i = end + 1
	if v := lit[1 : len(lit)-1]; plainJSONString(v) {
		return v, nil
	}
	var v string
	if err := json.Unmarshal([]byte(lit), &v); err != nil {
		return "", errorf(ErrInvalidFilter, "filter has an invalid string literal %s", clip(lit))
	}
	return v, nil
}

// plainJSONString reports whether the JSON string literal "s" decodes to s itself: no escapes
// and no control characters (the filter text is valid UTF-8).
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == '\\' {
			return false
		}
	}
	return true
}

// word reads the run of bytes at p.i up to a space, parenthesis, bracket or quote.
func (p *filterParser) word() string {
	start := p.i
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '(', ')', '[', ']', '"':
			return p.s[start:p.i]
		}
		p.i++
	}
	return p.s[start:p.i]
}

// lowerOp returns the comparison operator w names in any case, or "".
func lowerOp(w string) string {
	if len(w) != 2 {
		return ""
	}
	switch strings.ToLower(w) {
	case OpEq:
		return OpEq
	case OpNe:
		return OpNe
	case OpCo:
		return OpCo
	case OpSw:
		return OpSw
	case OpEw:
		return OpEw
	case OpPr:
		return OpPr
	case OpGt:
		return OpGt
	case OpGe:
		return OpGe
	case OpLt:
		return OpLt
	case OpLe:
		return OpLe
	}
	return ""
}

// skipSpaces returns the position of the first byte at or after i in s that is not a space.
func skipSpaces(s string, i int) int {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}

func isLogicalWord(s string) bool {
	return strings.EqualFold(s, "and") || strings.EqualFold(s, "or") || strings.EqualFold(s, "not")
}

// isJSONNumber reports whether s is a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = digits(s, i)
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		j := digits(s, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digits(s, i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(s)
}

// digits returns the position after the run of ASCII digits at i.
func digits(s string, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// isAttrName reports whether s is an ATTRNAME of RFC 7644 §3.4.2.2, with the "$ref" form of
// RFC 7643 ('$' before the first letter).
func isAttrName(s string) bool {
	if s != "" && s[0] == '$' {
		s = s[1:]
	}
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlpha(c) && !(c >= '0' && c <= '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// parseAttrPath parses an attribute path, [URN ":"] ATTRNAME ["." ATTRNAME], where the URN is
// colon-separated segments of letters, digits, '.' and '-' and ends at the last colon. ok is
// false if text does not follow that grammar; err (a plain error whose text is a client
// detail) if it does but names no attribute the parsers accept: a prefix that is not a
// "urn:", or a schema without an attribute unless schemaOnly is set (a PATCH path may name a
// whole extension object). "urn:…:2.0:User.attr" is read as "urn:…:2.0:User:attr"; a core
// User or Group URN is dropped, the enterprise URN spelled canonically.
func parseAttrPath(text string, schemaOnly bool) (AttrPath, bool, error) {
	text = legacyExtensionPath(text)
	// The URN: as many "segment:" as there are.
	start := 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == ':':
			if i == start {
				return AttrPath{}, false, nil
			}
			start = i + 1
		case isAlpha(c), c >= '0' && c <= '9', c == '.', c == '-':
		default:
			i = len(text)
		}
	}
	out := AttrPath{}
	rest := text[start:]
	var attr, sub string
	if i := strings.IndexByte(rest, '.'); i >= 0 {
		attr, sub = rest[:i], rest[i+1:]
		if !isAttrName(sub) {
			return AttrPath{}, false, nil
		}
	} else {
		attr = rest
	}
	if !isAttrName(attr) {
		return AttrPath{}, false, nil
	}
	out.Attr, out.Sub = attr, sub
	if start == 0 {
		return out, true, nil
	}
	urn := text[:start-1]
	if !hasPrefixFold(urn, "urn:") {
		return out, true, fmt.Errorf("%q: an attribute prefix must be a schema URN", text)
	}
	if (strings.EqualFold(out.Attr, "User") || strings.EqualFold(out.Attr, "Group")) &&
		isSchemaVersion(urn[strings.LastIndexByte(urn, ':')+1:]) {
		urn += ":" + out.Attr
		out.Attr, out.Sub = out.Sub, ""
	}
	switch {
	case strings.EqualFold(urn, SchemaUser) || strings.EqualFold(urn, SchemaGroup):
		urn = ""
	case strings.EqualFold(urn, SchemaEnterpriseUser):
		urn = SchemaEnterpriseUser
	}
	out.URN = urn
	if out.Attr == "" && (urn == "" || !schemaOnly) {
		return out, true, fmt.Errorf("%q names a schema, not an attribute", text)
	}
	return out, true, nil
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
	for _, kind := range [...]string{"User.", "Group."} {
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

// ParsePatchPath parses the "path" of a PATCH operation (RFC 7644 §3.5.2): attr, attr.sub,
// urn:…:attr, attr[filter] or attr[filter].sub, plus the legacy "urn:…:2.0:User.attr" form
// and a bare extension URN (the whole extension object: AttrPath.URN set, Attr empty). The
// filter in brackets is any filter ParseFilter accepts, except another value filter. Like
// ParseFilter it drops a core schema URN and keeps an extension URN. A bare "manager" stays
// unqualified: resolving it to the enterprise extension is the appliers' business. It returns
// an error wrapping ErrInvalidPath if raw is not such a path.
func ParsePatchPath(raw string) (*PatchPath, error) {
	s := strings.Trim(raw, " ")
	invalid := func(why string) error {
		return errorf(ErrInvalidPath, "invalid path %s: %s", clip(raw), why)
	}
	const expected = "expected attribute, attribute.subAttribute or attribute[filter]"
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
		p := filterParser{s: s}
		attrText = p.word()
		open := skipSpaces(s, p.i)
		if attrText == "" || open == len(s) || s[open] != '[' {
			if i := strings.IndexByte(s, '"'); i >= 0 && stringEnd(s, i) < 0 {
				return nil, invalid(fmt.Sprintf("filter has an unterminated string at offset %d", i))
			}
			return nil, invalid(expected)
		}
		closing, err := closingBracket(s, open)
		if err != nil {
			return nil, invalid(errorDetail(err))
		}
		if closing < 0 {
			return nil, invalid("missing ']'")
		}
		switch rest := s[closing+1:]; {
		case rest == "":
		case rest[0] == '.' && isAttrName(rest[1:]):
			sub = rest[1:]
		default:
			if i := strings.IndexByte(rest, '"'); i >= 0 && stringEnd(rest, i) < 0 {
				return nil, invalid(fmt.Sprintf("filter has an unterminated string at offset %d", closing+1+i))
			}
			return nil, invalid("only .subAttribute may follow a value filter")
		}
		inner, hasFilter = s[open+1:closing], true
	}
	path, ok, err := parseAttrPath(attrText, true)
	if !ok {
		return nil, invalid(expected)
	}
	if err != nil {
		return nil, invalid(err.Error())
	}
	pp := &PatchPath{Path: path, ElemSub: sub}
	if hasFilter {
		if path.Sub != "" || path.Attr == "" {
			return nil, invalid(fmt.Sprintf("a value filter needs a multi-valued attribute, not %q", path.String()))
		}
		// One level for the brackets, as in a filter.
		if pp.Filter, err = parseFilterText(inner, true, maxFilterDepth-1, new(int)); err != nil {
			return nil, invalid(errorDetail(err))
		}
	}
	return pp, nil
}

// ParsePatchRequest parses a PATCH request body (RFC 7644 §3.5.2), as encoding/json decodes
// it, into its operations, each path parsed by [ParsePatchPath].
//
//   - "schemas" may be missing (lenient: some clients omit it), but if present it must
//     contain the PatchOp URN; anything else (such as a User representation sent to PATCH by
//     mistake) is ErrInvalidSyntax.
//   - "Operations" (key in any case) must be a non-empty array of objects, else
//     ErrInvalidSyntax; more than 1000 is ErrTooMany.
//   - "op" is add, replace or remove in any case, lower-cased into PatchOp.Op; anything else
//     is ErrInvalidSyntax naming the op.
//   - "path" is optional; an empty string counts as missing. A path ParsePatchPath rejects
//     is ErrInvalidPath, and remove without a path is ErrNoTarget (RFC 7644 §3.5.2.2).
//   - "value" is kept as decoded, null included; checking it is the appliers' job.
//   - Other members of an operation ("name", …) and of the body (a stray "id") are ignored.
func ParsePatchRequest(body map[string]any) ([]PatchOp, error) {
	if v, ok := memberFold(body, "schemas"); ok && v != nil && !hasPatchOpSchema(v) {
		return nil, errorf(ErrInvalidSyntax, "schemas must contain %q", schemaPatchOp)
	}
	raw, _ := memberFold(body, "Operations")
	list, ok := raw.([]any)
	switch {
	case raw == nil:
		return nil, errorf(ErrInvalidSyntax, "Operations is required")
	case !ok:
		return nil, errorf(ErrInvalidSyntax, "Operations must be an array")
	case len(list) == 0:
		return nil, errorf(ErrInvalidSyntax, "Operations must not be empty")
	case len(list) > MaxPatchOps:
		return nil, errorf(ErrTooMany, "a PATCH request may have at most %d operations, got %d", MaxPatchOps, len(list))
	}
	ops := make([]PatchOp, 0, len(list))
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, errorf(ErrInvalidSyntax, "Operations[%d] must be an object", i)
		}
		opv, _ := memberFold(m, "op")
		opText, ok := opv.(string)
		if !ok {
			return nil, errorf(ErrInvalidSyntax, "Operations[%d]: op must be add, replace or remove", i)
		}
		op := PatchOp{Op: strings.ToLower(strings.TrimSpace(opText))}
		switch op.Op {
		case PatchAdd, PatchReplace, PatchRemove:
		default:
			return nil, errorf(ErrInvalidSyntax, "Operations[%d]: unsupported op %q; use add, replace or remove", i, opText)
		}
		if pv, _ := memberFold(m, "path"); pv != nil {
			ps, ok := pv.(string)
			if !ok {
				return nil, errorf(ErrInvalidPath, "Operations[%d]: path must be a string", i)
			}
			if strings.TrimSpace(ps) != "" {
				p, err := ParsePatchPath(ps)
				if err != nil {
					return nil, errorf(ErrInvalidPath, "Operations[%d]: %s", i, errorDetail(err))
				}
				op.Path = p
			}
		}
		if op.Path == nil && op.Op == PatchRemove {
			return nil, errorf(ErrNoTarget, "Operations[%d]: remove needs a path (RFC 7644 §3.5.2.2)", i)
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
