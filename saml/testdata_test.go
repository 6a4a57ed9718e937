package saml_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

var regen = flag.Bool("regen", false, "regenerate the test-only IdP keys and metadata in samltest/testdata")

// testdataDir holds the test-only key pairs and Entra-shaped metadata. None of it is secret:
// the keys sign nothing outside tests.
const testdataDir = "samltest/testdata"

// testIdPs describes the identity providers of the tests: "entra" plays a company's Entra
// tenant during a certificate rollover (two signing certificates: the new, inactive one is
// listed first, the active one second, as the metadata shows them then), "other" plays another
// company's Entra tenant.
var testIdPs = []struct {
	name, tenantID string
	certs          []certSpec
}{
	{"entra", "8c3a9b2e-4f1d-4e6a-9b7c-2d5e8f1a3c4b", []certSpec{
		{"entra-idp-2", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2029, 6, 1, 0, 0, 0, 0, time.UTC)},
		{"entra-idp-1", time.Date(2025, 1, 15, 0, 0, 0, 0, time.UTC), time.Date(2028, 1, 15, 0, 0, 0, 0, time.UTC)},
	}},
	{"other", "2f1e7d6c-5b4a-4392-8817-0a9b8c7d6e5f", []certSpec{
		{"other-idp", time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2028, 3, 1, 0, 0, 0, 0, time.UTC)},
	}},
}

type certSpec struct {
	file      string
	notBefore time.Time
	notAfter  time.Time
}

// TestGenerateTestdata rewrites samltest/testdata when run with -regen:
//
//	go test ./saml -run TestGenerateTestdata -regen
//
// It makes a key pair for each IdP certificate and for the SP, and each IdP's Federation
// Metadata XML in Entra's shape: a default namespace, an enveloped RSA-SHA256 signature first,
// two WS-Federation RoleDescriptors, then the IDPSSODescriptor with the signing certificates
// and the SAML endpoints.
func TestGenerateTestdata(t *testing.T) {
	if !*regen {
		t.Skip("run with -regen to rewrite samltest/testdata")
	}
	if err := os.MkdirAll(testdataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeKeyPair(t, "sp", "idledger test SP", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, idp := range testIdPs {
		var certs []string
		var signKey *rsa.PrivateKey
		var signCert *x509.Certificate
		for i, c := range idp.certs {
			key, cert := writeKeyPair(t, c.file, "Microsoft Azure Federated SSO Certificate", c.notBefore, c.notAfter)
			certs = append(certs, base64.StdEncoding.EncodeToString(cert.Raw))
			if i == len(idp.certs)-1 { // the active certificate is listed last
				signKey, signCert = key, cert
			}
		}
		doc := etree.NewDocument()
		if err := doc.ReadFromString(entraMetadata(idp.tenantID, certs)); err != nil {
			t.Fatal(err)
		}
		ctx := dsig.NewDefaultSigningContext(dsig.TLSCertKeyStore(tls.Certificate{
			Certificate: [][]byte{signCert.Raw}, PrivateKey: signKey, Leaf: signCert,
		}))
		ctx.Prefix = "" // Entra: <Signature xmlns="http://www.w3.org/2000/09/xmldsig#">
		ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
		if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
			t.Fatal(err)
		}
		signed, err := ctx.SignEnveloped(doc.Root().Copy())
		if err != nil {
			t.Fatal(err)
		}
		// SignEnveloped returns a canonical copy; keep the document as written (Entra declares
		// xmlns:fed on each RoleDescriptor) and put the Signature first, where Entra has it.
		// The enveloped transform does not care where it sits.
		sig := signed.ChildElements()[len(signed.ChildElements())-1]
		fresh := etree.NewDocument()
		if err := fresh.ReadFromString(entraMetadata(idp.tenantID, certs)); err != nil {
			t.Fatal(err)
		}
		root := fresh.Root()
		root.InsertChildAt(0, sig)
		out := etree.NewDocument()
		out.CreateProcInst("xml", `version="1.0" encoding="utf-8"`)
		out.SetRoot(root)
		b, err := out.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(testdataDir, idp.name+"-metadata.xml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func writeKeyPair(t *testing.T, name, cn string, notBefore, notAfter time.Time) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(filepath.Join(testdataDir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(testdataDir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// entraMetadata returns unsigned Federation Metadata XML shaped like the file Entra ID offers
// for an Enterprise application ("Federation Metadata XML").
func entraMetadata(tenantID string, certs []string) string {
	keys := ""
	for _, c := range certs {
		keys += `<KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>` + c + `</X509Certificate></X509Data></KeyInfo></KeyDescriptor>`
	}
	login := "https://login.microsoftonline.com/" + tenantID
	sts := "https://sts.windows.net/" + tenantID + "/"
	epr := func(addr string) string {
		return `<wsa:EndpointReference xmlns:wsa="http://www.w3.org/2005/08/addressing"><wsa:Address>` + addr + `</wsa:Address></wsa:EndpointReference>`
	}
	claims := ""
	for _, c := range []struct{ uri, name string }{
		{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "Name"},
		{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname", "Given Name"},
		{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname", "Surname"},
		{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "Email"},
		{"http://schemas.microsoft.com/identity/claims/objectidentifier", "Object Identifier"},
		{"http://schemas.microsoft.com/identity/claims/tenantid", "Tenant Identifier"},
	} {
		claims += `<auth:ClaimType xmlns:auth="http://docs.oasis-open.org/wsfed/authorization/200706" Uri="` + c.uri + `"><auth:DisplayName>` + c.name + `</auth:DisplayName></auth:ClaimType>`
	}
	var b strings.Builder
	b.WriteString(`<EntityDescriptor ID="_0f3e9d1c-7b2a-4c5d-8e6f-1a2b3c4d5e6f" entityID="` + sts + `" xmlns="urn:oasis:names:tc:SAML:2.0:metadata">`)
	b.WriteString(`<RoleDescriptor xsi:type="fed:SecurityTokenServiceType" protocolSupportEnumeration="http://docs.oasis-open.org/wsfed/federation/200706" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:fed="http://docs.oasis-open.org/wsfed/federation/200706">`)
	b.WriteString(keys)
	b.WriteString(`<fed:ClaimTypesOffered>` + claims + `</fed:ClaimTypesOffered>`)
	b.WriteString(`<fed:SecurityTokenServiceEndpoint>` + epr(login+"/wsfed") + `</fed:SecurityTokenServiceEndpoint>`)
	b.WriteString(`<fed:PassiveRequestorEndpoint>` + epr(login+"/wsfed") + `</fed:PassiveRequestorEndpoint>`)
	b.WriteString(`</RoleDescriptor>`)
	b.WriteString(`<RoleDescriptor xsi:type="fed:ApplicationServiceType" protocolSupportEnumeration="http://docs.oasis-open.org/wsfed/federation/200706" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:fed="http://docs.oasis-open.org/wsfed/federation/200706">`)
	b.WriteString(keys)
	b.WriteString(`<fed:TargetScopes>` + epr(sts) + `</fed:TargetScopes>`)
	b.WriteString(`<fed:ApplicationServiceEndpoint>` + epr(login+"/wsfed") + `</fed:ApplicationServiceEndpoint>`)
	b.WriteString(`<fed:PassiveRequestorEndpoint>` + epr(login+"/wsfed") + `</fed:PassiveRequestorEndpoint>`)
	b.WriteString(`</RoleDescriptor>`)
	b.WriteString(`<IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">`)
	b.WriteString(keys)
	b.WriteString(`<SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="` + login + `/saml2"/>`)
	b.WriteString(`<SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="` + login + `/saml2"/>`)
	b.WriteString(`<SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="` + login + `/saml2"/>`)
	b.WriteString(`</IDPSSODescriptor></EntityDescriptor>`)
	return b.String()
}
