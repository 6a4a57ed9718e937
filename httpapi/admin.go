package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// tenantCreated is the answer to POST /admin/v1/tenants (README, "What a company gets").
type tenantCreated struct {
	ID          domain.TenantID `json:"id"`
	Name        string          `json:"name"`
	SCIMToken   string          `json:"scimToken"`
	SCIMBaseURL string          `json:"scimBaseUrl"`
	SAML        samlURLs        `json:"saml"`
}

type samlURLs struct {
	EntityID    string `json:"entityId"`
	ACSURL      string `json:"acsUrl"`
	MetadataURL string `json:"metadataUrl"`
	LoginURL    string `json:"loginUrl"`
}

func (s *Server) handleCreateTenant(c echo.Context) error {
	body, err := readObject(c)
	if err != nil {
		return err
	}
	name, _ := body["name"].(string)
	t, token, err := s.svc.CreateTenant(c.Request().Context(), name)
	if err != nil {
		return err
	}
	s.waitVisible(c, t.Version)
	return c.JSON(http.StatusCreated, s.TenantCreatedResponse(t, token))
}

// TenantCreatedResponse returns what a new company's admin needs: its SCIM base URL and
// token (shown this once) and its SAML URLs.
func (s *Server) TenantCreatedResponse(t domain.Tenant, token string) any {
	samlBase := s.cfg.BaseURL + "/saml/" + string(t.ID)
	return tenantCreated{
		ID: t.ID, Name: t.Name, SCIMToken: token, SCIMBaseURL: s.cfg.BaseURL + "/scim/v2",
		SAML: samlURLs{
			EntityID: samlBase + "/metadata", ACSURL: samlBase + "/acs",
			MetadataURL: samlBase + "/metadata", LoginURL: samlBase + "/login",
		},
	}
}
