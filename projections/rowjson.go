package projections

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/jsonenc"
	"github.com/idledger/idledger/domain/scim"
)

// This file encodes and decodes the user, group and login rows, which every event of a user or
// group reads and rewrites, without encoding/json's reflection. Encoding produces exactly the bytes
// json.Marshal does (the dumps of two files compare bytes, and a read model must not depend on
// which code wrote it); decoding produces exactly the value json.Unmarshal does. Each handles
// the common case only and says so otherwise: a value of a type JSON decoding does not produce
// (anything but nil, bool, float64, string, []any and map[string]any), a time json.Marshal
// refuses, a row not in the form encoding writes (keys in another letter case, a key twice,
// unknown keys, a null where a value is expected, escapes of surrogates, bytes that are not
// UTF-8, numbers out of range, nesting deeper than maxDepth) are left to encoding/json, so
// results and errors stay encoding/json's.
//
// The field lists mirror domain.User, domain.Group and domain.LoginEntry;
// TestRowJSON_field_lists fails when those structs change.

// maxDepth is the deepest nesting of arrays and objects the decoder handles itself.
const maxDepth = 64

// marshalUser appends json.Marshal(u) to dst.
func marshalUser(dst []byte, u domain.User) ([]byte, error) {
	if b, ok := appendUser(dst, &u); ok {
		return b, nil
	}
	raw, err := json.Marshal(u)
	return append(dst, raw...), err
}

// marshalGroup appends json.Marshal(g) to dst.
func marshalGroup(dst []byte, g domain.Group) ([]byte, error) {
	if b, ok := appendGroup(dst, &g); ok {
		return b, nil
	}
	raw, err := json.Marshal(g)
	return append(dst, raw...), err
}

// unmarshalUser is json.Unmarshal(data, u) for a zero u.
func unmarshalUser(data []byte, u *domain.User) error {
	if decodeRow(data, userFields, u) {
		return nil
	}
	*u = domain.User{}
	return json.Unmarshal(data, u)
}

// marshalLogin appends json.Marshal(e) to dst.
func marshalLogin(dst []byte, e domain.LoginEntry) ([]byte, error) {
	b := append(dst, `{"user":`...)
	b = jsonenc.AppendString(b, string(e.User))
	b = append(b, `,"active":`...)
	b = strconv.AppendBool(b, e.Active)
	return append(b, '}'), nil
}

// unmarshalLogin is json.Unmarshal(data, e) for a zero e.
func unmarshalLogin(data []byte, e *domain.LoginEntry) error {
	if decodeRow(data, loginFields, e) {
		return nil
	}
	*e = domain.LoginEntry{}
	return json.Unmarshal(data, e)
}

// unmarshalGroup is json.Unmarshal(data, g) for a zero g.
func unmarshalGroup(data []byte, g *domain.Group) error {
	if decodeRow(data, groupFields, g) {
		return nil
	}
	*g = domain.Group{}
	return json.Unmarshal(data, g)
}

func appendUser(b []byte, u *domain.User) ([]byte, bool) {
	ok := true
	b = append(b, `{"id":`...)
	b = jsonenc.AppendString(b, string(u.ID))
	b = append(b, `,"tenant":`...)
	b = jsonenc.AppendString(b, string(u.Tenant))
	b = appendSchemas(b, u.Schemas)
	b = append(b, `,"resource":`...)
	b, ok = jsonenc.Append(b, u.Resource)
	if !ok {
		return nil, false
	}
	if b, ok = appendTimes(b, u.Created, u.Modified); !ok {
		return nil, false
	}
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, uint64(u.Version), 10)
	if u.Deleted {
		b = append(b, `,"deleted":true`...)
	}
	if u.Local {
		b = append(b, `,"local":true`...)
	}
	return append(b, '}'), true
}

func appendGroup(b []byte, g *domain.Group) ([]byte, bool) {
	ok := true
	b = append(b, `{"id":`...)
	b = jsonenc.AppendString(b, string(g.ID))
	b = append(b, `,"tenant":`...)
	b = jsonenc.AppendString(b, string(g.Tenant))
	b = appendSchemas(b, g.Schemas)
	b = append(b, `,"resource":`...)
	b, ok = jsonenc.Append(b, g.Resource)
	if !ok {
		return nil, false
	}
	b = append(b, `,"members":`...)
	b = strconv.AppendInt(b, int64(g.Members), 10)
	if b, ok = appendTimes(b, g.Created, g.Modified); !ok {
		return nil, false
	}
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, uint64(g.Version), 10)
	if g.Deleted {
		b = append(b, `,"deleted":true`...)
	}
	return append(b, '}'), true
}

// appendSchemas appends the schemas field, left out when empty (omitempty).
func appendSchemas(b []byte, schemas []string) []byte {
	if len(schemas) == 0 {
		return b
	}
	b = append(b, `,"schemas":[`...)
	for i, s := range schemas {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonenc.AppendString(b, s)
	}
	return append(b, ']')
}

// appendTimes appends the created and modified fields as time.Time's MarshalJSON writes them.
func appendTimes(b []byte, created, modified time.Time) ([]byte, bool) {
	var err error
	b = append(b, `,"created":"`...)
	if b, err = created.AppendText(b); err != nil {
		return nil, false
	}
	b = append(b, `","modified":"`...)
	if b, err = modified.AppendText(b); err != nil {
		return nil, false
	}
	return append(b, '"'), true
}

// A rowField is one field of a row struct: its JSON name and how to decode its value.
type rowField[T any] struct {
	name string
	// decode decodes the value at d into the field of row; false leaves the row to
	// encoding/json.
	decode func(d *decoder, row *T) bool
}

var userFields = []rowField[domain.User]{
	{"id", func(d *decoder, u *domain.User) bool { s, ok := d.str(); u.ID = domain.UserID(s); return ok }},
	{"tenant", func(d *decoder, u *domain.User) bool { s, ok := d.str(); u.Tenant = domain.TenantID(s); return ok }},
	{"schemas", func(d *decoder, u *domain.User) bool { var ok bool; u.Schemas, ok = d.strings(); return ok }},
	{"resource", func(d *decoder, u *domain.User) bool { var ok bool; u.Resource, ok = d.object(); return ok }},
	{"created", func(d *decoder, u *domain.User) bool { return d.time(&u.Created) }},
	{"modified", func(d *decoder, u *domain.User) bool { return d.time(&u.Modified) }},
	{"version", func(d *decoder, u *domain.User) bool { n, ok := d.uint(); u.Version = domain.Version(n); return ok }},
	{"deleted", func(d *decoder, u *domain.User) bool { var ok bool; u.Deleted, ok = d.bool(); return ok }},
	{"local", func(d *decoder, u *domain.User) bool { var ok bool; u.Local, ok = d.bool(); return ok }},
}

var groupFields = []rowField[domain.Group]{
	{"id", func(d *decoder, g *domain.Group) bool { s, ok := d.str(); g.ID = domain.GroupID(s); return ok }},
	{"tenant", func(d *decoder, g *domain.Group) bool { s, ok := d.str(); g.Tenant = domain.TenantID(s); return ok }},
	{"schemas", func(d *decoder, g *domain.Group) bool { var ok bool; g.Schemas, ok = d.strings(); return ok }},
	{"resource", func(d *decoder, g *domain.Group) bool { var ok bool; g.Resource, ok = d.object(); return ok }},
	{"members", func(d *decoder, g *domain.Group) bool { n, ok := d.int(); g.Members = n; return ok }},
	{"created", func(d *decoder, g *domain.Group) bool { return d.time(&g.Created) }},
	{"modified", func(d *decoder, g *domain.Group) bool { return d.time(&g.Modified) }},
	{"version", func(d *decoder, g *domain.Group) bool { n, ok := d.uint(); g.Version = domain.Version(n); return ok }},
	{"deleted", func(d *decoder, g *domain.Group) bool { var ok bool; g.Deleted, ok = d.bool(); return ok }},
}

var loginFields = []rowField[domain.LoginEntry]{
	{"user", func(d *decoder, e *domain.LoginEntry) bool { s, ok := d.str(); e.User = domain.UserID(s); return ok }},
	{"active", func(d *decoder, e *domain.LoginEntry) bool { var ok bool; e.Active, ok = d.bool(); return ok }},
}

// decodeRow decodes the JSON object data into the zero row with fields, reporting false if it
// leaves data to encoding/json (row is then partly set).
func decodeRow[T any](data []byte, fields []rowField[T], row *T) bool {
	d := decoder{data: data}
	var seen uint64 // bit i: fields[i] was decoded
	if !d.consume('{') {
		return false
	}
	if d.consume('}') {
		return d.end()
	}
	for {
		key, ok := d.key()
		if !ok || !d.consume(':') {
			return false
		}
		i := slices.IndexFunc(fields, func(f rowField[T]) bool { return f.name == key })
		if i < 0 || seen&(1<<i) != 0 || !fields[i].decode(&d, row) {
			return false // an unknown key, one in another case, or a key twice
		}
		seen |= 1 << i
		if d.consume(',') {
			continue
		}
		return d.consume('}') && d.end()
	}
}

// A decoder reads JSON from data at off. Each method reports false if what is there is not
// what it handles, leaving the input to encoding/json.
type decoder struct {
	data  []byte
	off   int
	depth int
}

func (d *decoder) skipSpace() {
	for d.off < len(d.data) {
		switch d.data[d.off] {
		case ' ', '\t', '\n', '\r':
			d.off++
		default:
			return
		}
	}
}

// consume skips white space and c, reporting whether c was there.
func (d *decoder) consume(c byte) bool {
	d.skipSpace()
	if d.off < len(d.data) && d.data[d.off] == c {
		d.off++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (d *decoder) end() bool {
	d.skipSpace()
	return d.off == len(d.data)
}

// literal consumes the literal lit (true, false or null).
func (d *decoder) literal(lit string) bool {
	if len(d.data)-d.off < len(lit) || string(d.data[d.off:d.off+len(lit)]) != lit {
		return false
	}
	d.off += len(lit)
	return true
}

func (d *decoder) bool() (bool, bool) {
	d.skipSpace()
	switch {
	case d.literal("true"):
		return true, true
	case d.literal("false"):
		return false, true
	}
	return false, false
}

// str decodes a string.
func (d *decoder) str() (string, bool) { return d.string(false) }

// key decodes an object's key: a usual attribute name comes without an allocation.
func (d *decoder) key() (string, bool) { return d.string(true) }

func (d *decoder) string(key bool) (string, bool) {
	d.skipSpace()
	if d.off >= len(d.data) || d.data[d.off] != '"' {
		return "", false
	}
	d.off++
	start := d.off
	for i := start; i < len(d.data); {
		c := d.data[i]
		switch {
		case c == '"':
			d.off = i + 1
			if key {
				if s, ok := knownKey(d.data[start:i]); ok {
					return s, true
				}
			}
			return string(d.data[start:i]), true
		case c == '\\':
			return d.escapedStr(start)
		case c < ' ':
			return "", false
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(d.data[i:])
			if r == utf8.RuneError && size == 1 {
				return "", false
			}
			i += size
		}
	}
	return "", false
}

// knownKey returns the constant string equal to b if b is one of the names rows hold most
// often (their fields, and SCIM attributes).
func knownKey(b []byte) (string, bool) {
	switch string(b) {
	case "id":
		return "id", true
	case "tenant":
		return "tenant", true
	case "schemas":
		return "schemas", true
	case "resource":
		return "resource", true
	case "created":
		return "created", true
	case "modified":
		return "modified", true
	case "version":
		return "version", true
	case "deleted":
		return "deleted", true
	case "local":
		return "local", true
	case "members":
		return "members", true
	case "user":
		return "user", true
	case "active":
		return "active", true
	case "userName":
		return "userName", true
	case "displayName":
		return "displayName", true
	case "externalId":
		return "externalId", true
	case "name":
		return "name", true
	case "givenName":
		return "givenName", true
	case "familyName":
		return "familyName", true
	case "formatted":
		return "formatted", true
	case "emails":
		return "emails", true
	case "value":
		return "value", true
	case "type":
		return "type", true
	case "primary":
		return "primary", true
	case "display":
		return "display", true
	case "roles":
		return "roles", true
	case "title":
		return "title", true
	case "manager":
		return "manager", true
	case "department":
		return "department", true
	case "employeeNumber":
		return "employeeNumber", true
	case "$ref":
		return "$ref", true
	case scim.SchemaEnterpriseUser:
		return scim.SchemaEnterpriseUser, true
	}
	return "", false
}

// escapedStr decodes the string starting at start, which holds escapes.
func (d *decoder) escapedStr(start int) (string, bool) {
	out := make([]byte, 0, min(len(d.data)-start, 64))
	for i := start; i < len(d.data); {
		c := d.data[i]
		switch {
		case c == '"':
			d.off = i + 1
			return string(out), true
		case c == '\\':
			if i+1 >= len(d.data) {
				return "", false
			}
			switch e := d.data[i+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				if i+6 > len(d.data) {
					return "", false
				}
				r, err := strconv.ParseUint(string(d.data[i+2:i+6]), 16, 16)
				if err != nil || (r >= 0xD800 && r < 0xE000) { // surrogates are left to encoding/json
					return "", false
				}
				out = utf8.AppendRune(out, rune(r))
				i += 6
				continue
			default:
				return "", false
			}
			i += 2
		case c < ' ':
			return "", false
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(d.data[i:])
			if r == utf8.RuneError && size == 1 {
				return "", false
			}
			out = append(out, d.data[i:i+size]...)
			i += size
		}
	}
	return "", false
}

// strings decodes an array of strings.
func (d *decoder) strings() ([]string, bool) {
	if !d.consume('[') {
		return nil, false
	}
	out := []string{}
	if d.consume(']') {
		return out, true
	}
	for {
		s, ok := d.str()
		if !ok {
			return nil, false
		}
		out = append(out, s)
		if d.consume(',') {
			continue
		}
		return out, d.consume(']')
	}
}

// number returns the text of a number, checked against JSON's grammar.
func (d *decoder) number() (string, bool) {
	d.skipSpace()
	data, i := d.data, d.off
	digits := func() bool {
		start := i
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case !digits():
		return "", false
	}
	if i < len(data) && data[i] == '.' {
		i++
		if !digits() {
			return "", false
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if !digits() {
			return "", false
		}
	}
	s := string(data[d.off:i])
	d.off = i
	return s, true
}

// uint decodes a number into an unsigned integer field.
func (d *decoder) uint() (uint64, bool) {
	s, ok := d.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// int decodes a number into an int field.
func (d *decoder) int() (int, bool) {
	s, ok := d.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, strconv.IntSize)
	return int(n), err == nil
}

// time decodes a string into a time.Time field with its UnmarshalJSON, as encoding/json does.
func (d *decoder) time(t *time.Time) bool {
	d.skipSpace()
	start := d.off
	if _, ok := d.str(); !ok {
		return false
	}
	return t.UnmarshalJSON(d.data[start:d.off]) == nil
}

// object decodes an object into a map (null into a nil map).
func (d *decoder) object() (map[string]any, bool) { return d.objectOf(nil) }

// value decodes any JSON value as encoding/json does into an any.
func (d *decoder) value() (any, bool) {
	d.skipSpace()
	if d.off >= len(d.data) {
		return nil, false
	}
	switch c := d.data[d.off]; {
	case c == '"':
		return d.str()
	case c == '{':
		m, ok := d.members(nil) // rowpartial.go
		if !ok {
			return nil, false // an untyped nil, as the other failures return
		}
		return m, true
	case c == '[':
		if d.depth++; d.depth > maxDepth {
			return nil, false
		}
		d.off++
		a := []any{}
		if d.consume(']') {
			d.depth--
			return a, true
		}
		for {
			v, ok := d.value()
			if !ok {
				return nil, false
			}
			a = append(a, v)
			if d.consume(',') {
				continue
			}
			if !d.consume(']') {
				return nil, false
			}
			d.depth--
			return a, true
		}
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		s, ok := d.number()
		if !ok {
			return nil, false
		}
		f, err := strconv.ParseFloat(s, 64)
		return f, err == nil
	}
	return nil, false
}
