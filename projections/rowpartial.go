package projections

import (
	"bytes"
	"slices"

	"github.com/idledger/idledger/domain"
)

// This file decodes a row's resource in part (domain.ListQuery.Reads): a scan of a large
// company matches its filter against every user, and decoding every user whole (its names,
// addresses, phone numbers, extensions…) made most of a busy server's garbage, which the
// collector's pauses then charged to every request. The keys a query reads are decoded as
// decodeRow decodes them; the others are stepped over without building anything.

// attrSet is a ListQuery's Reads, ready for the decoder: names compared ignoring case, and
// prefixes (names ending in ':').
type attrSet struct {
	names, prefixes [][]byte
}

// newAttrSet returns the set of reads.
func newAttrSet(reads []string) *attrSet {
	s := &attrSet{}
	for _, r := range reads {
		if len(r) > 0 && r[len(r)-1] == ':' {
			s.prefixes = append(s.prefixes, []byte(r))
		} else {
			s.names = append(s.names, []byte(r))
		}
	}
	return s
}

// has reports whether key is one of the set's names or begins with one of its prefixes.
func (s *attrSet) has(key []byte) bool {
	for _, n := range s.names {
		if bytes.EqualFold(key, n) {
			return true
		}
	}
	for _, p := range s.prefixes {
		if len(key) >= len(p) && bytes.EqualFold(key[:len(p)], p) {
			return true
		}
	}
	return false
}

// partialDecoder returns a decoder of rows that holds only the keys of keep in the resource
// (resource returns the row's), or decodes the row with whole when it cannot (a row the
// partial decoder refuses is whatever whole makes of it).
func partialDecoder[T any](fields []rowField[T], resource func(row *T) *map[string]any,
	whole func([]byte, *T) error, keep *attrSet) func([]byte, *T) error {
	fields = slices.Clone(fields)
	for i, f := range fields {
		if f.name == "resource" {
			fields[i].decode = func(d *decoder, row *T) bool {
				m, ok := d.objectOf(keep)
				*resource(row) = m
				return ok
			}
		}
	}
	return func(data []byte, row *T) error {
		if decodeRow(data, fields, row) {
			return nil
		}
		*row = *new(T)
		return whole(data, row)
	}
}

// userPartial and groupPartial decode a row with only the keys of keep in its resource.
func userPartial(keep *attrSet) func(data []byte, u *domain.User) error {
	return partialDecoder(userFields, func(u *domain.User) *map[string]any { return &u.Resource }, unmarshalUser, keep)
}

func groupPartial(keep *attrSet) func(data []byte, g *domain.Group) error {
	return partialDecoder(groupFields, func(g *domain.Group) *map[string]any { return &g.Resource }, unmarshalGroup, keep)
}

// objectOf decodes an object into a map (null into a nil map), holding only the keys keep
// has (every key with a nil keep); the values of the others are stepped over (skip), not
// built.
func (d *decoder) objectOf(keep *attrSet) (map[string]any, bool) {
	d.skipSpace()
	if d.literal("null") {
		return nil, true
	}
	if d.off >= len(d.data) || d.data[d.off] != '{' {
		return nil, false
	}
	return d.members(keep)
}

// members decodes the object at d.off into a map, as value does, holding only the keys keep
// has (all of them with a nil keep).
func (d *decoder) members(keep *attrSet) (map[string]any, bool) {
	if d.depth++; d.depth > maxDepth {
		return nil, false
	}
	d.off++
	m := make(map[string]any)
	if d.consume('}') {
		d.depth--
		return m, true
	}
	for {
		k, wanted, ok := d.memberKey(keep)
		if !ok || !d.consume(':') {
			return nil, false
		}
		if wanted {
			v, ok := d.value()
			if !ok {
				return nil, false
			}
			m[k] = v // a key twice: the last one wins, as with encoding/json
		} else if !d.skip() {
			return nil, false
		}
		if d.consume(',') {
			continue
		}
		if !d.consume('}') {
			return nil, false
		}
		d.depth--
		return m, true
	}
}

// memberKey decodes an object's key as key does and reports whether keep has it (a nil keep
// has every key); a key keep does not have is only stepped over when it holds no escape.
func (d *decoder) memberKey(keep *attrSet) (k string, wanted, ok bool) {
	if keep == nil {
		k, ok = d.key()
		return k, true, ok
	}
	d.skipSpace()
	start := d.off
	raw, plain := d.plainString()
	if plain && !keep.has(raw) {
		return "", false, true
	}
	d.off = start // decode it as key does (escapes, known keys)
	k, ok = d.key()
	return k, ok && (plain || keep.has([]byte(k))), ok
}

// plainString returns the bytes of the string at d.off and moves past it if it holds no
// escape and no control character; otherwise it reports false and leaves d.off.
func (d *decoder) plainString() ([]byte, bool) {
	if d.off >= len(d.data) || d.data[d.off] != '"' {
		return nil, false
	}
	for i := d.off + 1; i < len(d.data); i++ {
		switch c := d.data[i]; {
		case c == '"':
			s := d.data[d.off+1 : i]
			d.off = i + 1
			return s, true
		case c == '\\' || c < ' ':
			return nil, false
		}
	}
	return nil, false
}

// skip steps over one JSON value, checking its structure (strings end, brackets match,
// literals and numbers are made of their characters) but not what a skipped value holds.
func (d *decoder) skip() bool {
	d.skipSpace()
	if d.off >= len(d.data) {
		return false
	}
	switch c := d.data[d.off]; {
	case c == '"':
		for i := d.off + 1; i < len(d.data); i++ {
			switch d.data[i] {
			case '"':
				d.off = i + 1
				return true
			case '\\':
				i++
			}
		}
		return false
	case c == '{' || c == '[':
		if d.depth++; d.depth > maxDepth {
			return false
		}
		d.off++
		closing := byte(']')
		if c == '{' {
			closing = '}'
		}
		if d.consume(closing) {
			d.depth--
			return true
		}
		for {
			if c == '{' && (!d.skip() || !d.consume(':')) {
				return false
			}
			if !d.skip() {
				return false
			}
			if d.consume(',') {
				continue
			}
			d.depth--
			return d.consume(closing)
		}
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		i := d.off
		for i < len(d.data) && numberByte(d.data[i]) {
			i++
		}
		d.off = i
		return true
	}
	return false
}

// numberByte reports whether c may be part of a JSON number.
func numberByte(c byte) bool {
	switch c {
	case '+', '-', '.', 'e', 'E':
		return true
	}
	return c >= '0' && c <= '9'
}
