package scim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// SCIM schema URNs (RFC 7643 §8.7).
const (
	SchemaUser           = "urn:ietf:params:scim:schemas:core:2.0:User"
	SchemaGroup          = "urn:ietf:params:scim:schemas:core:2.0:Group"
	SchemaEnterpriseUser = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
)

// Attribute types of RFC 7643 §2.3.
const (
	TypeString    = "string"
	TypeBoolean   = "boolean"
	TypeComplex   = "complex"
	TypeReference = "reference"
	TypeDateTime  = "dateTime"
	TypeDecimal   = "decimal"
	TypeInteger   = "integer"
	TypeBinary    = "binary"
)

// Limits on a resource's values. A value past them is ErrInvalid: no identity attribute comes
// near them, and a resource must stay well inside one log message and its identifiers inside a
// read-model index key (bbolt keys end at 32 KiB, and case folding can grow a string by half).
const (
	// MaxAttributeLen is the longest string value accepted, in bytes.
	MaxAttributeLen = 64 << 10
	// MaxIdentifierLen is the longest userName, externalId, email address or group
	// displayName accepted, in bytes: these are indexed. Entra's are at most 256 characters.
	MaxIdentifierLen = 4 << 10
	// MaxValues is the most values a multi-valued attribute (emails, roles, an extension's
	// list) may hold. Group members are not attributes in this sense: the body limit bounds them.
	MaxValues = 1000
	// maxExtensionDepth bounds the nesting of a custom extension kept as sent.
	maxExtensionDepth = 16
)

// identifierPaths are the attribute paths (lower case) capped at MaxIdentifierLen.
var identifierPaths = map[string]bool{
	"username": true, "externalid": true, "displayname": true, "emails.value": true,
}

// CheckString returns ErrInvalid if s is too long for the attribute at path, or is an identifier
// with a control character (a NUL or line break in a userName is never data, and would
// mislead every log and admin screen that shows it).
func CheckString(s, path string) error {
	limit := MaxAttributeLen
	ident := identifierPaths[strings.ToLower(path)]
	if ident {
		limit = MaxIdentifierLen
	}
	if len(s) > limit {
		return errorf(ErrInvalid, "%s is %d bytes long; at most %d are accepted", path, len(s), limit)
	}
	if ident && strings.ContainsFunc(s, unicode.IsControl) {
		return errorf(ErrInvalid, "%s contains a control character", path)
	}
	return nil
}

// checkRaw applies the value limits to a custom extension's value, which is kept as sent.
func checkRaw(v any, path string, depth int) error {
	if depth > maxExtensionDepth {
		return errorf(ErrInvalid, "%s nests deeper than %d levels", path, maxExtensionDepth)
	}
	switch x := v.(type) {
	case string:
		return CheckString(x, path)
	case []any:
		if len(x) > MaxValues {
			return errorf(ErrInvalid, "%s has %d values; at most %d are accepted", path, len(x), MaxValues)
		}
		for _, e := range x {
			if err := checkRaw(e, path, depth+1); err != nil {
				return err
			}
		}
	case map[string]any:
		for k, e := range x {
			if err := CheckString(k, path); err != nil {
				return err
			}
			if err := checkRaw(e, path+"."+k, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// An Attribute describes one SCIM attribute (RFC 7643 §7). The zero Mutability is readWrite,
// the zero Returned is default.
type Attribute struct {
	Name          string
	Type          string
	MultiValued   bool
	Required      bool
	CaseExact     bool
	Mutability    string
	Returned      string
	Uniqueness    string
	Description   string
	SubAttributes []Attribute
	Canonical     []string
	References    []string
}

func str(name, desc string) Attribute {
	return Attribute{Name: name, Type: TypeString, Description: desc}
}

// multi returns the sub-attributes shared by most multi-valued attributes (RFC 7643 §2.4).
func multi(valueType string, canonical ...string) []Attribute {
	return []Attribute{
		{Name: "value", Type: valueType, Description: "The attribute's significant value."},
		str("display", "A human-readable name, primarily used for display purposes."),
		{Name: "type", Type: TypeString, Canonical: canonical, Description: "A label indicating the attribute's function."},
		{Name: "primary", Type: TypeBoolean, Description: "Indicates the 'primary' or preferred attribute value."},
	}
}

// UserAttributes are the core User schema's attributes (RFC 7643 §4.1), without the common
// attributes id, externalId and meta which every resource has.
var UserAttributes = []Attribute{
	{Name: "userName", Type: TypeString, Required: true, Uniqueness: "server",
		Description: "Unique identifier for the User, typically used by the user to directly authenticate to the service provider."},
	{Name: "name", Type: TypeComplex, Description: "The components of the user's real name.", SubAttributes: []Attribute{
		str("formatted", "The full name, including all middle names, titles, and suffixes as appropriate, formatted for display."),
		str("familyName", "The family name of the User."),
		str("givenName", "The given name of the User."),
		str("middleName", "The middle name(s) of the User."),
		str("honorificPrefix", "The honorific prefix(es) of the User."),
		str("honorificSuffix", "The honorific suffix(es) of the User."),
	}},
	str("displayName", "The name of the User, suitable for display to end-users."),
	str("nickName", "The casual way to address the user in real life."),
	{Name: "profileUrl", Type: TypeReference, References: []string{"external"}, Description: "A fully qualified URL pointing to a page representing the User's online profile."},
	str("title", "The user's title, such as \"Vice President\"."),
	str("userType", "Used to identify the relationship between the organization and the user."),
	str("preferredLanguage", "Indicates the User's preferred written or spoken language."),
	str("locale", "Used to indicate the User's default location for purposes of localizing items."),
	str("timezone", "The User's time zone in the 'Olson' time zone database format."),
	{Name: "active", Type: TypeBoolean, Description: "A Boolean value indicating the User's administrative status."},
	{Name: "password", Type: TypeString, Mutability: "writeOnly", Returned: "never", Description: "The User's cleartext password; idledger never stores it."},
	{Name: "emails", Type: TypeComplex, MultiValued: true, Description: "Email addresses for the user.", SubAttributes: multi(TypeString, "work", "home", "other")},
	{Name: "phoneNumbers", Type: TypeComplex, MultiValued: true, Description: "Phone numbers for the User.", SubAttributes: multi(TypeString, "work", "home", "mobile", "fax", "pager", "other")},
	{Name: "ims", Type: TypeComplex, MultiValued: true, Description: "Instant messaging addresses for the User.", SubAttributes: multi(TypeString)},
	{Name: "photos", Type: TypeComplex, MultiValued: true, Description: "URLs of photos of the User.", SubAttributes: multi(TypeReference, "photo", "thumbnail")},
	{Name: "addresses", Type: TypeComplex, MultiValued: true, Description: "A physical mailing address for this User.", SubAttributes: []Attribute{
		str("formatted", "The full mailing address, formatted for display or use with a mailing label."),
		str("streetAddress", "The full street address component."),
		str("locality", "The city or locality component."),
		str("region", "The state or region component."),
		str("postalCode", "The zip code or postal code component."),
		str("country", "The country name component."),
		{Name: "type", Type: TypeString, Canonical: []string{"work", "home", "other"}, Description: "A label indicating the attribute's function."},
		{Name: "primary", Type: TypeBoolean, Description: "Indicates the 'primary' or preferred attribute value."},
	}},
	{Name: "groups", Type: TypeComplex, MultiValued: true, Mutability: "readOnly", Description: "A list of groups to which the user belongs.", SubAttributes: []Attribute{
		{Name: "value", Type: TypeString, Mutability: "readOnly", Description: "The identifier of the User's group."},
		{Name: "$ref", Type: TypeReference, Mutability: "readOnly", References: []string{"Group"}, Description: "The URI of the corresponding 'Group' resource to which the user belongs."},
		{Name: "display", Type: TypeString, Mutability: "readOnly", Description: "A human-readable name, primarily used for display purposes."},
		{Name: "type", Type: TypeString, Mutability: "readOnly", Canonical: []string{"direct", "indirect"}, Description: "A label indicating the attribute's function, e.g., 'direct' or 'indirect'."},
	}},
	{Name: "entitlements", Type: TypeComplex, MultiValued: true, Description: "A list of entitlements for the User.", SubAttributes: multi(TypeString)},
	{Name: "roles", Type: TypeComplex, MultiValued: true, Description: "A list of roles for the User.", SubAttributes: multi(TypeString)},
	{Name: "x509Certificates", Type: TypeComplex, MultiValued: true, Description: "A list of certificates issued to the User.", SubAttributes: multi(TypeBinary)},
}

// EnterpriseUserAttributes are the enterprise User extension's attributes (RFC 7643 §4.3).
var EnterpriseUserAttributes = []Attribute{
	str("employeeNumber", "Numeric or alphanumeric identifier assigned to a person."),
	str("costCenter", "Identifies the name of a cost center."),
	str("organization", "Identifies the name of an organization."),
	str("division", "Identifies the name of a division."),
	str("department", "Identifies the name of a department."),
	{Name: "manager", Type: TypeComplex, Description: "The User's manager.", SubAttributes: []Attribute{
		{Name: "value", Type: TypeString, Description: "The id of the SCIM resource representing the User's manager."},
		{Name: "$ref", Type: TypeReference, References: []string{"User"}, Description: "The URI of the SCIM resource representing the User's manager."},
		{Name: "displayName", Type: TypeString, Mutability: "readOnly", Description: "The displayName of the User's manager."},
	}},
}

// findAttr looks an attribute up by name, case-insensitively (RFC 7643 §2.1).
func findAttr(attrs []Attribute, name string) (Attribute, bool) {
	for _, a := range attrs {
		if strings.EqualFold(a.Name, name) {
			return a, true
		}
	}
	return Attribute{}, false
}

// CanonicalUser validates a client's User representation and returns the attributes to store:
// canonical attribute names, booleans sent as strings coerced, nulls and empty lists dropped,
// unknown and read-only attributes ignored, the enterprise extension and any other
// extension object (a key that is a URN) kept. It also returns the schemas to echo.
// It returns an error wrapping ErrInvalid when a value has the wrong type or userName is missing.
func CanonicalUser(in map[string]any) (map[string]any, []string, error) {
	out := make(map[string]any)
	schemas := []string{SchemaUser}
	for k, v := range in {
		if v == nil {
			continue
		}
		lk := strings.ToLower(k)
		switch {
		case lk == "id" || lk == "meta" || lk == "schemas":
			continue
		case lk == "externalid":
			s, err := asString(v, "externalId")
			if err != nil {
				return nil, nil, err
			}
			if s != "" {
				out["externalId"] = s
			}
		case strings.EqualFold(k, SchemaEnterpriseUser):
			obj, ok := v.(map[string]any)
			if !ok {
				return nil, nil, errorf(ErrInvalid, "%s must be an object", SchemaEnterpriseUser)
			}
			ext, err := canonicalObject(EnterpriseUserAttributes, obj, SchemaEnterpriseUser)
			if err != nil {
				return nil, nil, err
			}
			if len(ext) > 0 {
				out[SchemaEnterpriseUser] = ext
				schemas = append(schemas, SchemaEnterpriseUser)
			}
		case strings.HasPrefix(lk, "urn:"):
			// A custom extension: kept as sent, without interpretation, within the limits.
			if obj, ok := v.(map[string]any); ok && len(obj) > 0 {
				if err := checkRaw(obj, k, 0); err != nil {
					return nil, nil, err
				}
				out[k] = cloneMap(obj)
				schemas = append(schemas, k)
			}
		default:
			a, ok := findAttr(UserAttributes, k)
			if !ok || a.Mutability == "readOnly" || a.Mutability == "writeOnly" {
				continue // unknown attributes are ignored, as Entra expects
			}
			cv, err := canonicalValue(a, v, a.Name)
			if err != nil {
				return nil, nil, err
			}
			if cv != nil {
				out[a.Name] = cv
			}
		}
	}
	slices.Sort(schemas[1:]) // core first, extensions in a stable order
	name, _ := out["userName"].(string)
	if strings.TrimSpace(name) == "" {
		return nil, nil, errorf(ErrInvalid, "userName is required")
	}
	if _, ok := out["active"]; !ok {
		out["active"] = true
	}
	return out, schemas, nil
}

func canonicalObject(attrs []Attribute, obj map[string]any, path string) (map[string]any, error) {
	out := make(map[string]any)
	for k, v := range obj {
		if v == nil {
			continue
		}
		a, ok := findAttr(attrs, k)
		if !ok || a.Mutability == "readOnly" {
			continue
		}
		cv, err := canonicalValue(a, v, path+"."+a.Name)
		if err != nil {
			return nil, err
		}
		if cv != nil {
			out[a.Name] = cv
		}
	}
	return out, nil
}

// canonicalValue checks and normalises one attribute value; nil means "absent".
func canonicalValue(a Attribute, v any, path string) (any, error) {
	if v == nil {
		return nil, nil
	}
	if a.MultiValued {
		list, ok := v.([]any)
		if !ok {
			list = []any{v}
		}
		if len(list) > MaxValues {
			return nil, errorf(ErrInvalid, "%s has %d values; at most %d are accepted", path, len(list), MaxValues)
		}
		var out []any
		primaries := 0
		for _, e := range list {
			single := a
			single.MultiValued = false
			ce, err := canonicalValue(single, e, path)
			if err != nil {
				return nil, err
			}
			if ce == nil {
				continue
			}
			if m, ok := ce.(map[string]any); ok && m["primary"] == true {
				primaries++
			}
			out = append(out, ce)
		}
		if primaries > 1 {
			return nil, errorf(ErrInvalid, "%s: at most one value may be primary", path)
		}
		if len(out) == 0 {
			return nil, nil
		}
		return out, nil
	}
	switch a.Type {
	case TypeComplex:
		obj, ok := v.(map[string]any)
		if !ok {
			// A bare value stands for {"value": v} (e.g. Entra's manager as a plain id).
			if _, hasValue := findAttr(a.SubAttributes, "value"); hasValue {
				obj = map[string]any{"value": v}
			} else {
				return nil, errorf(ErrInvalid, "%s must be an object", path)
			}
		}
		m, err := canonicalObject(a.SubAttributes, obj, path)
		if err != nil || len(m) == 0 {
			return nil, err
		}
		return m, nil
	case TypeBoolean:
		b, err := asBool(v, path)
		if err != nil {
			return nil, err
		}
		return b, nil
	case TypeInteger, TypeDecimal:
		switch n := v.(type) {
		case float64, json.Number:
			return n, nil
		}
		return nil, errorf(ErrInvalid, "%s must be a number", path)
	default:
		s, err := asString(v, path)
		if err != nil || s == "" {
			return nil, err
		}
		return s, nil
	}
}

func asString(v any, path string) (string, error) {
	switch s := v.(type) {
	case string:
		if err := CheckString(s, path); err != nil {
			return "", err
		}
		return s, nil
	case json.Number:
		return s.String(), nil
	case float64:
		return fmt.Sprint(s), nil
	case bool:
		return fmt.Sprint(s), nil
	}
	return "", errorf(ErrInvalid, "%s must be a string", path)
}

func asBool(v any, path string) (bool, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(b)) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, errorf(ErrInvalid, "%s must be a boolean", path)
}

// GroupAttributes are the core Group schema's attributes (RFC 7643 §4.2), without id,
// externalId and meta.
var GroupAttributes = []Attribute{
	{Name: "displayName", Type: TypeString, Required: true, Uniqueness: "server",
		Description: "A human-readable name for the Group."},
	{Name: "members", Type: TypeComplex, MultiValued: true, Description: "A list of members of the Group.", SubAttributes: []Attribute{
		{Name: "value", Type: TypeString, Mutability: "immutable", Description: "Identifier of the member of this Group."},
		{Name: "$ref", Type: TypeReference, Mutability: "immutable", References: []string{"User", "Group"}, Description: "The URI corresponding to a SCIM resource that is a member of this Group."},
		{Name: "display", Type: TypeString, Description: "A human-readable name for the member."},
		{Name: "type", Type: TypeString, Mutability: "immutable", Canonical: []string{"User", "Group"}, Description: "A label indicating the type of resource."},
	}},
}
