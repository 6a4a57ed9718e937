package saml_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	csaml "github.com/crewjam/saml"

	"github.com/idledger/idledger/domain"
	"github.com/idledger/idledger/saml"
	"github.com/idledger/idledger/saml/samltest"
)

func TestParseIDPMetadata(t *testing.T) {
	t.Parallel()
	entra := samltest.Read(t, "entra-metadata.xml")
	md, err := saml.ParseIDPMetadata(entra)
	if err != nil {
		t.Fatal(err)
	}
	_, c1 := samltest.KeyPair(t, "entra-idp-1")
	_, c2 := samltest.KeyPair(t, "entra-idp-2")
	if md.EntityID != "https://sts.windows.net/8c3a9b2e-4f1d-4e6a-9b7c-2d5e8f1a3c4b/" {
		t.Errorf("entityID = %q (the trailing slash must stay)", md.EntityID)
	}
	if md.SSOURL != "https://login.microsoftonline.com/8c3a9b2e-4f1d-4e6a-9b7c-2d5e8f1a3c4b/saml2" {
		t.Errorf("SSO URL = %q", md.SSOURL)
	}
	if md.Metadata != string(entra) {
		t.Error("the raw document is not kept as received")
	}
	// The RoleDescriptors repeat both certificates: only the IDPSSODescriptor's count, once.
	if len(md.Certificates) != 2 || md.Certificates[0].SHA256 != saml.Fingerprint(c2.Raw) || md.Certificates[1].SHA256 != saml.Fingerprint(c1.Raw) {
		t.Fatalf("certificates = %+v", md.Certificates)
	}
	if c := md.Certificates[1]; !c.NotAfter.Equal(c1.NotAfter) || !c.NotBefore.Equal(c1.NotBefore) || !strings.Contains(c.Subject, "Microsoft Azure Federated SSO Certificate") {
		t.Errorf("certificate = %+v", c)
	}
	if fp := md.Certificates[0].SHA256; len(fp) != 95 || strings.ToUpper(fp) != fp {
		t.Errorf("fingerprint %q is not upper-case hex pairs with colons", fp)
	}

	replace := func(old, new string) []byte { return bytes.Replace(entra, []byte(old), []byte(new), -1) }
	idpPart := func(old, new string) []byte {
		i := bytes.Index(entra, []byte("<IDPSSODescriptor"))
		return append(append([]byte{}, entra[:i]...), bytes.ReplaceAll(entra[i:], []byte(old), []byte(new))...)
	}
	sp := []byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://sp.example/"><SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://sp.example/acs" index="1"/></SPSSODescriptor></EntityDescriptor>`)
	aggregate := []byte(`<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">` +
		string(bytes.TrimPrefix(entra, []byte(`<?xml version="1.0" encoding="utf-8"?>`))) +
		strings.Replace(string(bytes.TrimPrefix(entra, []byte(`<?xml version="1.0" encoding="utf-8"?>`))), "8c3a9b2e", "9c3a9b2e", -1) +
		`</EntitiesDescriptor>`)
	refusals := []struct {
		name string
		raw  []byte
		want string
	}{
		{"Empty", nil, "empty"},
		{"Garbage", []byte("this is not metadata"), "not XML"},
		{"Binary", []byte("PK\x03\x04\x00\x00"), "not well-formed"},
		{"JSON", []byte(`{"entityId":"x"}`), "not XML"},
		{"Truncated", entra[:len(entra)/2], "not well-formed"},
		{"HTML", []byte(`<html><body>Sign in</body></html>`), "not SAML metadata"},
		{"DTD", append([]byte(`<!DOCTYPE x [<!ENTITY a "b">]>`), entra...), "DTD"},
		{"SPDescriptor", sp, "service provider metadata"},
		{"NoEntityID", replace(`entityID="https://sts.windows.net/8c3a9b2e-4f1d-4e6a-9b7c-2d5e8f1a3c4b/"`, ""), "no entityID"},
		{"NoCertificate", replace(`<KeyDescriptor use="signing">`, `<KeyDescriptor use="encryption">`), "no signing certificate"},
		{"BadCertificate", idpPart("<X509Certificate>MII", "<X509Certificate>MIA"), "cannot be parsed"},
		{"CertificateNotBase64", idpPart("<X509Certificate>MII", "<X509Certificate>*"), "not base64"},
		{"NoRedirectBinding", idpPart("bindings:HTTP-Redirect", "bindings:SOAP"), "HTTP-Redirect"},
		{"JavascriptLocation", idpPart(`Location="https://login.microsoftonline.com`, `Location="javascript://login.microsoftonline.com`), "javascript"},
		{"HTTPLocation", idpPart(`Location="https://`, `Location="http://`), "not an https URL"},
		{"NotSAML2", idpPart("urn:oasis:names:tc:SAML:2.0:protocol", "urn:oasis:names:tc:SAML:1.1:protocol"), "SAML 2.0"},
		{"TwoIdPs", aggregate, "2 identity providers"},
		{"TooLarge", append(bytes.Repeat([]byte(" "), domain.MaxIDPMetadataSize), entra...), "larger than"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := saml.ParseIDPMetadata(tt.raw)
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(domain.ErrorDetail(err), tt.want) {
				t.Errorf("detail %q does not say %q", domain.ErrorDetail(err), tt.want)
			}
		})
	}

	t.Run("Aggregate", func(t *testing.T) {
		one := []byte(`<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">` +
			string(bytes.TrimPrefix(entra, []byte(`<?xml version="1.0" encoding="utf-8"?>`))) + `</EntitiesDescriptor>`)
		md, err := saml.ParseIDPMetadata(one)
		if err != nil || md.EntityID != "https://sts.windows.net/8c3a9b2e-4f1d-4e6a-9b7c-2d5e8f1a3c4b/" {
			t.Fatalf("md = %+v, err = %v", md.EntityID, err)
		}
	})
	t.Run("LoopbackHTTP", func(t *testing.T) {
		raw := idpPart("https://login.microsoftonline.com", "http://127.0.0.1:9000")
		if _, err := saml.ParseIDPMetadata(raw); err != nil {
			t.Fatalf("a local test IdP over http: %v", err)
		}
	})
}

// TestTestdataMetadataSigned checks that the Entra-shaped fixtures carry a valid enveloped
// signature by the active certificate, as Entra's do (idledger does not rely on it).
func TestTestdataMetadataSigned(t *testing.T) {
	t.Parallel()
	for name, cert := range map[string]string{"entra-metadata.xml": "entra-idp-1", "other-metadata.xml": "other-idp"} {
		_, c := samltest.KeyPair(t, cert)
		if _, err := csaml.VerifyMetadataSignature(samltest.Read(t, name), []*x509.Certificate{c}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestService_CheckIDPMetadata(t *testing.T) {
	t.Parallel()
	at := func(now time.Time) *saml.Service {
		s, err := saml.New(saml.Config{BaseURL: "https://idl.example", KeyPair: spKeyPair(t), Reader: nopReader{}, Log: nopReader{},
			Requests: nopRecords{}, Assertions: nopRecords{}, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	other := samltest.Read(t, "other-metadata.xml")
	if _, err := at(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)).CheckIDPMetadata(other); err != nil {
		t.Fatal(err)
	}
	_, err := at(time.Date(2028, 3, 2, 0, 0, 0, 0, time.UTC)).CheckIDPMetadata(other)
	if !errors.Is(err, domain.ErrInvalid) || !strings.Contains(domain.ErrorDetail(err), "expired") {
		t.Fatalf("metadata whose only certificate expired: err = %v", err)
	}
	// During a rollover one valid certificate is enough.
	if _, err := at(time.Date(2028, 3, 2, 0, 0, 0, 0, time.UTC)).CheckIDPMetadata(samltest.Read(t, "entra-metadata.xml")); err != nil {
		t.Fatalf("rollover metadata with one current certificate: %v", err)
	}
}

// FuzzParseIDPMetadata checks that no uploaded document makes the parser panic, and that
// whatever it accepts is complete: an entity ID, an SSO URL and certificates.
func FuzzParseIDPMetadata(f *testing.F) {
	for _, name := range []string{"entra-metadata.xml", "other-metadata.xml"} {
		f.Add(samltest.Read(f, name))
	}
	f.Add([]byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"><IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"/></EntityDescriptor>`))
	f.Add([]byte(`<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata"><EntitiesDescriptor/></EntitiesDescriptor>`))
	f.Add([]byte(`<?xml version="1.0"?><x:EntityDescriptor xmlns:x="urn:oasis:names:tc:SAML:2.0:metadata"/>`))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, raw []byte) {
		md, err := saml.ParseIDPMetadata(raw)
		if err != nil {
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			return
		}
		if md.EntityID == "" || md.SSOURL == "" || len(md.Certificates) == 0 || md.Metadata != string(raw) {
			t.Fatalf("accepted incomplete metadata: %+v", md)
		}
		// What is accepted once is accepted again (logins re-parse the stored document).
		if again, err := saml.ParseIDPMetadata([]byte(md.Metadata)); err != nil || again.EntityID != md.EntityID {
			t.Fatalf("re-parse: %v", err)
		}
	})
}
