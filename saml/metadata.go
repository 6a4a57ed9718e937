package saml

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"

	csaml "github.com/crewjam/saml"

	"github.com/idledger/idledger/domain"
)

// Namespaces and values of SAML 2.0 metadata.
const (
	nsMetadata    = "urn:oasis:names:tc:SAML:2.0:metadata"
	protocolSAML2 = "urn:oasis:names:tc:SAML:2.0:protocol"
)

// ParseIDPMetadata reads an IdP's SAML metadata as an admin uploads it, for example Entra ID's
// Federation Metadata XML as downloaded: signed, with WS-Federation RoleDescriptor elements
// (skipped: they are not SAML), and one or more signing certificates. It returns what the
// tenant.idp_metadata_set event records, or an error wrapping domain.ErrInvalid that says why
// the document cannot be used.
//
// The document's own signature is not checked: nothing pins a key to check it against, and a
// signature by a certificate inside the same file proves nothing. Trust comes from the
// company's admin uploading it with the company's token. Nor is it validated against the
// metadata XSD, which Entra's WS-Federation elements do not satisfy.
func ParseIDPMetadata(raw []byte) (domain.IDPMetadataSet, error) {
	entity, err := parseEntity(raw)
	if err != nil {
		return domain.IDPMetadataSet{}, err
	}
	md := domain.IDPMetadataSet{Metadata: string(raw), EntityID: entity.EntityID}
	md.SSOURL, err = ssoURL(entity)
	if err != nil {
		return domain.IDPMetadataSet{}, err
	}
	certs, err := signingCertificates(entity)
	if err != nil {
		return domain.IDPMetadataSet{}, err
	}
	for _, c := range certs {
		md.Certificates = append(md.Certificates, describe(c))
	}
	return md, nil
}

// parseEntity parses metadata into the EntityDescriptor of its one IdP and checks what crewjam
// needs of it: an entityID, an IDPSSODescriptor for SAML 2.0 and parseable signing
// certificates.
func parseEntity(raw []byte) (*csaml.EntityDescriptor, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, invalid("the metadata is empty")
	}
	if len(raw) > domain.MaxIDPMetadataSize {
		return nil, invalid("the metadata is larger than %d KiB; IdP metadata is a few tens of KB", domain.MaxIDPMetadataSize>>10)
	}
	root, err := checkXML(raw)
	if err != nil {
		return nil, err
	}
	var entity *csaml.EntityDescriptor
	switch {
	case root.Space == nsMetadata && root.Local == "EntityDescriptor":
		entity = &csaml.EntityDescriptor{}
		if err := xml.Unmarshal(raw, entity); err != nil {
			return nil, invalid("the metadata cannot be read: %v", err)
		}
	case root.Space == nsMetadata && root.Local == "EntitiesDescriptor":
		var all csaml.EntitiesDescriptor
		if err := xml.Unmarshal(raw, &all); err != nil {
			return nil, invalid("the metadata cannot be read: %v", err)
		}
		idps := idpEntities(&all)
		if len(idps) != 1 {
			return nil, invalid("the metadata holds %d identity providers, want exactly one", len(idps))
		}
		entity = idps[0]
	default:
		return nil, invalid("the document is a <%s> element, not SAML metadata (an EntityDescriptor in namespace %s)", root.Local, nsMetadata)
	}
	if strings.TrimSpace(entity.EntityID) == "" {
		return nil, invalid("the EntityDescriptor has no entityID")
	}
	if len(entity.EntityID) > 1024 {
		return nil, invalid("the entityID is longer than 1024 characters")
	}
	if len(entity.IDPSSODescriptors) == 0 {
		if len(entity.SPSSODescriptors) > 0 {
			return nil, invalid("this is service provider metadata (SPSSODescriptor); upload the identity provider's metadata (Entra: Federation Metadata XML)")
		}
		return nil, invalid("the metadata has no IDPSSODescriptor, so it describes no SAML identity provider")
	}
	for _, d := range entity.IDPSSODescriptors {
		if !slices.Contains(strings.Fields(d.ProtocolSupportEnumeration), protocolSAML2) {
			return nil, invalid("the IDPSSODescriptor does not support the SAML 2.0 protocol (protocolSupportEnumeration %q)", d.ProtocolSupportEnumeration)
		}
	}
	if _, err := ssoURL(entity); err != nil {
		return nil, err
	}
	if _, err := signingCertificates(entity); err != nil {
		return nil, err
	}
	return entity, nil
}

// checkXML reads the whole document once: it must be well-formed, without a DTD, and its root
// element is returned.
func checkXML(raw []byte) (xml.Name, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	var root xml.Name
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return xml.Name{}, invalid("the metadata is not well-formed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && root.Local != "" {
				return xml.Name{}, invalid("the metadata has more than one root element")
			}
			if depth == 0 {
				root = t.Name
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.Directive:
			return xml.Name{}, invalid("the metadata contains a DTD or other directive, which is not allowed")
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				if root.Local == "" {
					return xml.Name{}, invalid("the metadata is not XML: it does not start with an element")
				}
				return xml.Name{}, invalid("the metadata has text after its root element")
			}
		}
	}
	if root.Local == "" {
		return xml.Name{}, invalid("the metadata is not XML: no root element")
	}
	return root, nil
}

// idpEntities returns the entities of an aggregate that have an IDPSSODescriptor.
func idpEntities(all *csaml.EntitiesDescriptor) []*csaml.EntityDescriptor {
	var out []*csaml.EntityDescriptor
	for i := range all.EntityDescriptors {
		if len(all.EntityDescriptors[i].IDPSSODescriptors) > 0 {
			out = append(out, &all.EntityDescriptors[i])
		}
	}
	for i := range all.EntitiesDescriptors {
		out = append(out, idpEntities(&all.EntitiesDescriptors[i])...)
	}
	return out
}

// ssoURL returns the IdP's HTTP-Redirect SingleSignOnService location, which /login sends
// browsers to; it must be an absolute https URL (http only on a loopback host).
func ssoURL(entity *csaml.EntityDescriptor) (string, error) {
	for _, d := range entity.IDPSSODescriptors {
		for _, sso := range d.SingleSignOnServices {
			if sso.Binding != csaml.HTTPRedirectBinding {
				continue
			}
			u, err := url.Parse(sso.Location)
			if err != nil || u.Host == "" || u.User != nil || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname()))) {
				return "", invalid("the HTTP-Redirect SingleSignOnService location %q is not an https URL", clip(sso.Location))
			}
			return sso.Location, nil
		}
	}
	return "", invalid("the IDPSSODescriptor has no SingleSignOnService with the HTTP-Redirect binding")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// signingCertificates returns the certificates crewjam trusts for this IdP: those of the
// IDPSSODescriptor KeyDescriptors whose use is "signing" or missing (the WS-Fed
// RoleDescriptors repeat them and are ignored), without duplicates. Every one must parse, or
// crewjam would refuse every response.
func signingCertificates(entity *csaml.EntityDescriptor) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	seen := make(map[[32]byte]bool)
	n := 0
	for _, d := range entity.IDPSSODescriptors {
		for _, kd := range d.KeyDescriptors {
			if kd.Use != "" && kd.Use != "signing" {
				continue
			}
			for _, c := range kd.KeyInfo.X509Data.X509Certificates {
				n++
				der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(c.Data), ""))
				if err != nil {
					return nil, invalid("signing certificate %d is not base64: %v", n, err)
				}
				cert, err := x509.ParseCertificate(der)
				if err != nil {
					return nil, invalid("signing certificate %d cannot be parsed: %v", n, err)
				}
				switch cert.PublicKey.(type) {
				case *rsa.PublicKey, *ecdsa.PublicKey:
				default:
					return nil, invalid("signing certificate %d has a %s key; RSA or ECDSA is required", n, cert.PublicKeyAlgorithm)
				}
				if sum := sha256.Sum256(cert.Raw); !seen[sum] {
					seen[sum] = true
					certs = append(certs, cert)
				}
			}
		}
	}
	if len(certs) == 0 {
		return nil, invalid("the IDPSSODescriptor has no signing certificate (KeyDescriptor use=\"signing\" with an X509Certificate)")
	}
	return certs, nil
}

// describe returns what the event and GET /api/v1/sso show of a certificate.
func describe(c *x509.Certificate) domain.IDPCertificate {
	return domain.IDPCertificate{
		SHA256:    Fingerprint(c.Raw),
		Subject:   c.Subject.String(),
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
	}
}

// Fingerprint returns the SHA-256 fingerprint of a DER certificate as upper-case hex pairs
// separated by colons.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// CheckIDPMetadata is ParseIDPMetadata for an upload now: it also refuses metadata whose every
// signing certificate has expired or is not yet valid, since no response could be verified.
func (s *Service) CheckIDPMetadata(raw []byte) (domain.IDPMetadataSet, error) {
	md, err := ParseIDPMetadata(raw)
	if err != nil {
		return md, err
	}
	now := s.now()
	for _, c := range md.Certificates {
		if !now.Before(c.NotBefore) && now.Before(c.NotAfter) {
			return md, nil
		}
	}
	return domain.IDPMetadataSet{}, invalid("no signing certificate is valid now (the IdP certificate expired? upload metadata with a current one)")
}

// SPMetadata returns the company's SP metadata document: entity ID (its URL), the ACS with the
// HTTP-POST binding, NameID format emailAddress and the SP certificate. It returns an error
// wrapping domain.ErrNotFound for an unknown company; a company without IdP metadata has SP
// metadata too.
func (s *Service) SPMetadata(ctx context.Context, tenant domain.TenantID) ([]byte, error) {
	t, err := s.tenant(ctx, tenant)
	if err != nil {
		return nil, err
	}
	sp := s.provider(t.ID, t.SSO, nil, nil)
	b, err := xml.MarshalIndent(sp.Metadata(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("saml: marshal SP metadata: %w", err)
	}
	return append([]byte(xml.Header), b...), nil
}

func invalid(format string, args ...any) error {
	return domain.Errorf(domain.ErrInvalid, "unusable IdP metadata: "+format, args...)
}

// clip shortens an echoed value for an error message.
func clip(s string) string {
	if len(s) > 100 {
		return strings.ToValidUTF8(s[:100], "") + "…"
	}
	return s
}
