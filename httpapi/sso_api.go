package httpapi

import (
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/idledger/idledger/domain"
)

// ssoStatus is the answer to GET /api/v1/sso.
type ssoStatus struct {
	Enabled           bool             `json:"enabled"`
	SPEntityID        string           `json:"spEntityId"`
	ACSURL            string           `json:"acsUrl"`
	MetadataURL       string           `json:"metadataUrl"`
	LoginURL          string           `json:"loginUrl"`
	IDPEntityID       string           `json:"idpEntityId,omitempty"`
	IDPSSOURL         string           `json:"idpSsoUrl,omitempty"`
	Fingerprints      []string         `json:"fingerprints"`
	Certificates      []ssoCertificate `json:"certificates"`
	MetadataUpdated   *time.Time       `json:"metadataUpdated,omitempty"`
	AllowIDPInitiated bool             `json:"allowIdpInitiated"`
}

type ssoCertificate struct {
	SHA256    string    `json:"sha256"`
	Subject   string    `json:"subject,omitempty"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	// Expired is true once NotAfter has passed: responses it signs are refused.
	Expired bool `json:"expired"`
}

// ssoStatusOf renders a company's SSO state; the SP URLs come from the base URL.
func (s *Server) ssoStatusOf(t domain.Tenant) ssoStatus {
	base := s.cfg.BaseURL + "/saml/" + string(t.ID)
	st := ssoStatus{
		Enabled: t.SSO.Enabled(), SPEntityID: base + "/metadata", ACSURL: base + "/acs",
		MetadataURL: base + "/metadata", LoginURL: base + "/login",
		IDPEntityID: t.SSO.IDPEntityID, IDPSSOURL: t.SSO.IDPSSOURL,
		Fingerprints: []string{}, Certificates: []ssoCertificate{},
		AllowIDPInitiated: t.SSO.AllowIDPInitiated,
	}
	if s.sso != nil {
		st.SPEntityID, st.ACSURL = s.sso.SAML.EntityID(t.ID), s.sso.SAML.ACSURL(t.ID)
	}
	now := time.Now()
	if s.sso != nil {
		now = s.sso.Now()
	}
	for _, c := range t.SSO.Certificates {
		st.Fingerprints = append(st.Fingerprints, c.SHA256)
		st.Certificates = append(st.Certificates, ssoCertificate{
			SHA256: c.SHA256, Subject: c.Subject, NotBefore: c.NotBefore, NotAfter: c.NotAfter,
			Expired: !now.Before(c.NotAfter),
		})
	}
	if !t.SSO.MetadataSet.IsZero() {
		at := t.SSO.MetadataSet
		st.MetadataUpdated = &at
	}
	return st
}

// handleGetSSO serves GET /api/v1/sso.
func (s *Server) handleGetSSO(c echo.Context) error {
	t, err := s.read.FindTenant(c.Request().Context(), tenantOf(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.ssoStatusOf(t))
}

// handlePutIDPMetadata serves PUT /api/v1/sso/idp-metadata: the body is the IdP's metadata XML
// as downloaded (Entra: Federation Metadata XML). 204, or 400 saying why it is unusable.
func (s *Server) handlePutIDPMetadata(c echo.Context) error {
	if s.sso == nil {
		return s.ssoOff()
	}
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return bodyError(err) // over the body limit: echo's 413; unreadable: 400
	}
	md, err := s.sso.SAML.CheckIDPMetadata(body)
	if err != nil {
		return err
	}
	t, err := s.svc.SetIDPMetadata(c.Request().Context(), tenantOf(c), md)
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, t.Version); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// handleDeleteSSO serves DELETE /api/v1/sso: the IdP is no longer trusted. 204.
func (s *Server) handleDeleteSSO(c echo.Context) error {
	t, err := s.svc.DisableSSO(c.Request().Context(), tenantOf(c))
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, t.Version); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// handlePutSSOSettings serves PUT /api/v1/sso/settings {"allowIdpInitiated":true}.
func (s *Server) handlePutSSOSettings(c echo.Context) error {
	body, err := readObject(c)
	if err != nil {
		return err
	}
	var allow *bool
	for k, v := range body {
		if !strings.EqualFold(k, "allowIdpInitiated") {
			return domain.Errorf(domain.ErrInvalid, "unknown setting %q; the settings are: allowIdpInitiated", k)
		}
		b, ok := v.(bool)
		if !ok {
			return domain.Errorf(domain.ErrInvalid, "allowIdpInitiated must be true or false")
		}
		allow = &b
	}
	t, err := s.svc.SetSSOSettings(c.Request().Context(), tenantOf(c), allow)
	if err != nil {
		return err
	}
	if err := s.awaitVisible(c, t.Version); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.ssoStatusOf(t))
}
