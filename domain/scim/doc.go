// Package scim is idledger's SCIM 2.0 protocol machinery (RFC 7643, RFC 7644), free of any
// event, store or HTTP concern: what a SCIM request means for a resource.
//
//   - Filters: [ParseFilter] reads the "filter" query parameter into a [Filter] tree, which
//     [Match] evaluates against a resource's JSON representation; [EqualityLookups] tells a
//     read model which index can narrow the candidates.
//   - PATCH: [ParsePatchRequest] reads a request body into [PatchOp] values whose path is
//     parsed once, into a typed [PatchPath] (attribute path, optional value filter, optional
//     sub-attribute); [PatchUser] and [PatchGroup] apply them, resolving each path against
//     the schemas.
//   - Schemas: the User, enterprise User and Group attributes ([UserAttributes],
//     [EnterpriseUserAttributes], [GroupAttributes]) and the canonical form a resource is kept
//     in ([CanonicalUser], [CanonicalGroup]), with the limits on values.
//
// Errors are [*Error] values whose Kind ([ErrInvalidFilter], [ErrInvalidPath], …) maps to a
// SCIM scimType and whose Detail is safe to show a client. Package domain, which records what
// these functions decide as events, imports scim; scim imports only the standard library.
//
// The parsers read Entra ID's dialects on top of the RFC grammar; see ParseFilter and
// ParsePatchPath.
package scim
