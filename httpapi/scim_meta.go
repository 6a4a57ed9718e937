package httpapi

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/domain/scim"
)

// Discovery (RFC 7643 §5–7, RFC 7644 §4; docs/entra-scim.md §3).
//
// The discovery endpoints sit behind requireSCIMToken like the rest of /scim/v2. RFC 7644 §4
// lets a service provider answer them anonymously, but Entra always sends the tenant's bearer
// token, and answering only authenticated clients keeps one rule for the whole /scim/v2 tree
// (and keeps a 401 on a wrong token, which Test Connection relies on). Nothing here is tenant
// specific.
//
// RFC 7644 §4 says the query parameters of §3.4.2 (filter, sort, paging, attributes) are
// ignored on these endpoints and that a filter SHOULD be answered with 403, so that a client
// never assumes its filter was applied; we follow both.

// SCIM schema URNs of the discovery resources (RFC 7643 §8.7.2).
const (
	schemaServiceProviderConfig = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	schemaResourceType          = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	schemaSchema                = "urn:ietf:params:scim:schemas:core:2.0:Schema"
)

// scimDocumentationURL is ServiceProviderConfig.documentationUri: where a human finds how
// idledger speaks SCIM.
const scimDocumentationURL = "https://github.com/idledger/idledger#scim"

// Attribute characteristic defaults of RFC 7643 §2.2, applied when domain leaves them zero.
const (
	defaultMutability = "readWrite"
	defaultReturned   = "default"
	defaultUniqueness = "none"
)

// discoveryMeta is the meta of a discovery resource.
type discoveryMeta struct {
	ResourceType string `json:"resourceType"`
	Location     string `json:"location"`
}

// supported is a ServiceProviderConfig feature with no parameters.
type supported struct {
	Supported bool `json:"supported"`
}

// serviceProviderConfig is the RFC 7643 §5 resource.
type serviceProviderConfig struct {
	Schemas               []string      `json:"schemas"`
	DocumentationURI      string        `json:"documentationUri,omitempty"`
	Patch                 supported     `json:"patch"`
	Bulk                  bulkConfig    `json:"bulk"`
	Filter                filterConfig  `json:"filter"`
	ChangePassword        supported     `json:"changePassword"`
	Sort                  supported     `json:"sort"`
	ETag                  supported     `json:"etag"`
	AuthenticationSchemes []authScheme  `json:"authenticationSchemes"`
	Meta                  discoveryMeta `json:"meta"`
}

// bulkConfig is ServiceProviderConfig.bulk.
type bulkConfig struct {
	Supported      bool `json:"supported"`
	MaxOperations  int  `json:"maxOperations"`
	MaxPayloadSize int  `json:"maxPayloadSize"`
}

// filterConfig is ServiceProviderConfig.filter.
type filterConfig struct {
	Supported  bool `json:"supported"`
	MaxResults int  `json:"maxResults"`
}

// authScheme is one entry of ServiceProviderConfig.authenticationSchemes.
type authScheme struct {
	Type        string `json:"type"`
	Name        string `json:"name"`
	Description string `json:"description"`
	SpecURI     string `json:"specUri,omitempty"`
	Primary     bool   `json:"primary"`
}

// resourceType is the RFC 7643 §6 resource.
type resourceType struct {
	Schemas          []string          `json:"schemas"`
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	Description      string            `json:"description,omitempty"`
	Endpoint         string            `json:"endpoint"`
	Schema           string            `json:"schema"`
	SchemaExtensions []schemaExtension `json:"schemaExtensions,omitempty"`
	Meta             discoveryMeta     `json:"meta"`
}

// schemaExtension is one entry of ResourceType.schemaExtensions.
type schemaExtension struct {
	Schema   string `json:"schema"`
	Required bool   `json:"required"`
}

// schemaResource is the RFC 7643 §7 resource.
type schemaResource struct {
	Schemas     []string          `json:"schemas"`
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Attributes  []schemaAttribute `json:"attributes"`
	Meta        discoveryMeta     `json:"meta"`
}

// schemaAttribute is one attribute definition of a schema resource (RFC 7643 §7). Absent
// optional properties are omitted rather than sent as null (docs/entra-scim.md §3).
type schemaAttribute struct {
	Name            string            `json:"name"`
	Type            string            `json:"type"`
	MultiValued     bool              `json:"multiValued"`
	Description     string            `json:"description,omitempty"`
	Required        bool              `json:"required"`
	CaseExact       bool              `json:"caseExact"`
	CanonicalValues []string          `json:"canonicalValues,omitempty"`
	Mutability      string            `json:"mutability"`
	Returned        string            `json:"returned"`
	Uniqueness      string            `json:"uniqueness"`
	ReferenceTypes  []string          `json:"referenceTypes,omitempty"`
	SubAttributes   []schemaAttribute `json:"subAttributes,omitempty"`
}

// externalIDAttribute describes the common attribute externalId (RFC 7643 §3.1). Common
// attributes belong to no schema, but Entra maps objectId to externalId for users and groups,
// and Microsoft's validation flattens /Schemas to check that every mapped attribute exists, so
// the User and Group schemas list it. id and meta are server-assigned, never mapped, and stay
// out, as in the RFC's own schema representations.
var externalIDAttribute = scim.Attribute{
	Name: "externalId", Type: scim.TypeString, CaseExact: true,
	Description: "An identifier for the resource as defined by the provisioning client.",
}

// discoverySchemas are the schemas /Schemas lists, in order: User, Group, EnterpriseUser.
var discoverySchemas = []struct {
	id, name, description string
	attrs                 []scim.Attribute
}{
	{scim.SchemaUser, "User", "User Account", append(append([]scim.Attribute(nil), scim.UserAttributes...), externalIDAttribute)},
	{scim.SchemaGroup, "Group", "Group", append(append([]scim.Attribute(nil), scim.GroupAttributes...), externalIDAttribute)},
	{scim.SchemaEnterpriseUser, "EnterpriseUser", "Enterprise User", scim.EnterpriseUserAttributes},
}

// rejectDiscoveryFilter answers a filter on a discovery endpoint with 403 (RFC 7644 §4).
func rejectDiscoveryFilter(c echo.Context) error {
	if c.QueryParams().Has("filter") {
		return domain.Errorf(domain.ErrForbidden, "filtering is not supported on %s", c.Request().URL.Path)
	}
	return nil
}

// discoveryLocation returns the meta.location of a discovery resource under /scim/v2.
func (s *Server) discoveryLocation(parts ...string) string {
	return s.cfg.BaseURL + "/scim/v2/" + strings.Join(parts, "/")
}

// handleServiceProviderConfig serves GET /scim/v2/ServiceProviderConfig (RFC 7643 §5).
func (s *Server) handleServiceProviderConfig(c echo.Context) error {
	if err := rejectDiscoveryFilter(c); err != nil {
		return err
	}
	return s.writeSCIM(c, http.StatusOK, serviceProviderConfig{
		Schemas:          []string{schemaServiceProviderConfig},
		DocumentationURI: scimDocumentationURL,
		Patch:            supported{true},
		Bulk:             bulkConfig{},
		Filter:           filterConfig{Supported: true, MaxResults: maxResults},
		ChangePassword:   supported{false},
		Sort:             supported{true},
		ETag:             supported{true},
		AuthenticationSchemes: []authScheme{{
			Type:        "oauthbearertoken",
			Name:        "OAuth Bearer Token",
			Description: "Per-tenant SCIM secret sent as a bearer token",
			SpecURI:     "https://www.rfc-editor.org/info/rfc6750",
			Primary:     true,
		}},
		Meta: discoveryMeta{ResourceType: "ServiceProviderConfig", Location: s.discoveryLocation("ServiceProviderConfig")},
	})
}

// resourceTypes returns the resource types, User first (docs/entra-scim.md §3).
func (s *Server) resourceTypes() []resourceType {
	return []resourceType{
		{
			Schemas: []string{schemaResourceType}, ID: "User", Name: "User", Description: "User Account",
			Endpoint: "/Users", Schema: scim.SchemaUser,
			SchemaExtensions: []schemaExtension{{Schema: scim.SchemaEnterpriseUser, Required: false}},
			Meta:             discoveryMeta{ResourceType: "ResourceType", Location: s.discoveryLocation("ResourceTypes", "User")},
		},
		{
			Schemas: []string{schemaResourceType}, ID: "Group", Name: "Group", Description: "Group",
			Endpoint: "/Groups", Schema: scim.SchemaGroup,
			Meta: discoveryMeta{ResourceType: "ResourceType", Location: s.discoveryLocation("ResourceTypes", "Group")},
		},
	}
}

// handleListResourceTypes serves GET /scim/v2/ResourceTypes as a ListResponse (RFC 7644 §4).
func (s *Server) handleListResourceTypes(c echo.Context) error {
	if err := rejectDiscoveryFilter(c); err != nil {
		return err
	}
	types := s.resourceTypes()
	list := make([]any, len(types))
	for i, t := range types {
		list[i] = t
	}
	return s.writeSCIM(c, http.StatusOK, listResponse(len(list), 1, list))
}

// handleGetResourceType serves GET /scim/v2/ResourceTypes/{id}; the id is matched
// case-insensitively and an unknown one is a SCIM 404.
func (s *Server) handleGetResourceType(c echo.Context) error {
	if err := rejectDiscoveryFilter(c); err != nil {
		return err
	}
	id := c.Param("id")
	for _, t := range s.resourceTypes() {
		if strings.EqualFold(t.ID, id) {
			return s.writeSCIM(c, http.StatusOK, t)
		}
	}
	return domain.Errorf(domain.ErrNotFound, "resource type %q not found", id)
}

// schemas renders the schemas of discoverySchemas.
func (s *Server) schemas() []schemaResource {
	out := make([]schemaResource, len(discoverySchemas))
	for i, d := range discoverySchemas {
		out[i] = schemaResource{
			Schemas:     []string{schemaSchema},
			ID:          d.id,
			Name:        d.name,
			Description: d.description,
			Attributes:  renderAttributes(d.attrs, ""),
			Meta:        discoveryMeta{ResourceType: "Schema", Location: s.discoveryLocation("Schemas", d.id)},
		}
	}
	return out
}

// handleListSchemas serves GET /scim/v2/Schemas as a ListResponse (RFC 7644 §4).
func (s *Server) handleListSchemas(c echo.Context) error {
	if err := rejectDiscoveryFilter(c); err != nil {
		return err
	}
	schemas := s.schemas()
	list := make([]any, len(schemas))
	for i, sc := range schemas {
		list[i] = sc
	}
	return s.writeSCIM(c, http.StatusOK, listResponse(len(list), 1, list))
}

// handleGetSchema serves GET /scim/v2/Schemas/{urn}. URNs compare case-insensitively, like
// attribute names (RFC 7643 §2.1); an unknown one is a SCIM 404.
func (s *Server) handleGetSchema(c echo.Context) error {
	if err := rejectDiscoveryFilter(c); err != nil {
		return err
	}
	id := c.Param("id")
	for _, sc := range s.schemas() {
		if strings.EqualFold(sc.ID, id) {
			return s.writeSCIM(c, http.StatusOK, sc)
		}
	}
	return domain.Errorf(domain.ErrNotFound, "schema %q not found", id)
}

// renderAttributes renders domain attribute definitions for /Schemas. parentMutability is the
// enclosing attribute's rendered mutability ("" at the top level).
func renderAttributes(attrs []scim.Attribute, parentMutability string) []schemaAttribute {
	if len(attrs) == 0 {
		return nil
	}
	out := make([]schemaAttribute, len(attrs))
	for i, a := range attrs {
		out[i] = renderAttribute(a, parentMutability)
	}
	return out
}

// renderAttribute renders one attribute with the RFC 7643 §2.2 defaults for characteristics
// domain leaves zero. A sub-attribute without its own mutability inherits readOnly from its
// parent (a client cannot write part of a read-only attribute), and a reference without
// reference types is "external" (RFC 7643 §2.3.7).
func renderAttribute(a scim.Attribute, parentMutability string) schemaAttribute {
	mutability := a.Mutability
	if mutability == "" {
		mutability = defaultMutability
		if parentMutability == "readOnly" {
			mutability = parentMutability
		}
	}
	returned := a.Returned
	if returned == "" {
		returned = defaultReturned
	}
	uniqueness := a.Uniqueness
	if uniqueness == "" {
		uniqueness = defaultUniqueness
	}
	var refs []string
	if a.Type == scim.TypeReference {
		refs = a.References
		if len(refs) == 0 {
			refs = []string{"external"}
		}
	}
	return schemaAttribute{
		Name:            a.Name,
		Type:            a.Type,
		MultiValued:     a.MultiValued,
		Description:     a.Description,
		Required:        a.Required,
		CaseExact:       a.CaseExact,
		CanonicalValues: a.Canonical,
		Mutability:      mutability,
		Returned:        returned,
		Uniqueness:      uniqueness,
		ReferenceTypes:  refs,
		SubAttributes:   renderAttributes(a.SubAttributes, mutability),
	}
}
