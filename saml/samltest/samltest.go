// Package samltest is a test identity provider for idledger's SAML tests: crewjam/saml's own
// IdentityProvider, run in-process, with the Entra-shaped metadata and test-only keys of its
// testdata directory (embedded). It signs real responses; options make the broken and hostile ones the ACS must
// refuse (unsigned, SHA-1, wrapped, wrong audience, ...), always by changing what crewjam
// builds rather than by writing assertion XML by hand.
//
// It is for tests only: its keys are public.
package samltest

import (
	"crypto/rsa"
	"crypto/x509"
	"embed"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	csaml "github.com/crewjam/saml"
	"github.com/jonboulle/clockwork"
	dsig "github.com/russellhaering/goxmldsig"
)

// files holds the test-only key pairs and Entra-shaped metadata, which saml's
// TestGenerateTestdata writes (go test ./saml -run TestGenerateTestdata -regen). They are
// compiled in, so the package works outside a source checkout.
//
//go:embed testdata
var files embed.FS

// Read returns a file of the test data (testdata/ of this package).
func Read(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := files.ReadFile("testdata/" + name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Path writes a file of the test data into a temporary directory of tb and returns its path,
// for code that takes file names (the SP key pair flags).
func Path(tb testing.TB, name string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, Read(tb, name), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// IdPs of the test data.
const (
	// Entra is a company's Entra tenant in a certificate rollover: its metadata lists two
	// signing certificates, and it signs with entra-idp-1 unless told otherwise.
	Entra = "entra"
	// Other is another company's Entra tenant, with its own key.
	Other = "other"
)

var idpTenants = map[string]string{
	Entra: "8c3a9b2e-4f1d-4e6a-9b7c-2d5e8f1a3c4b",
	Other: "2f1e7d6c-5b4a-4392-8817-0a9b8c7d6e5f",
}

var idpKeys = map[string][]string{
	Entra: {"entra-idp-1", "entra-idp-2"},
	Other: {"other-idp"},
}

// An IDP is a test identity provider. Its clock is the test's clock.
type IDP struct {
	// EntityID is the Issuer (https://sts.windows.net/<tenant>/), SSOURL where /login sends
	// browsers, Metadata the Federation Metadata XML to upload.
	EntityID string
	SSOURL   string
	Metadata []byte

	keys  []*rsa.PrivateKey
	certs []*x509.Certificate
	now   func() time.Time
}

// New loads one of the test IdPs (Entra or Other); now is its clock.
func New(tb testing.TB, name string, now func() time.Time) *IDP {
	tb.Helper()
	tid, ok := idpTenants[name]
	if !ok {
		tb.Fatalf("no test IdP %q", name)
	}
	p := &IDP{
		EntityID: "https://sts.windows.net/" + tid + "/",
		SSOURL:   "https://login.microsoftonline.com/" + tid + "/saml2",
		Metadata: Read(tb, name+"-metadata.xml"),
		now:      now,
	}
	for _, k := range idpKeys[name] {
		key, cert := KeyPair(tb, k)
		p.keys = append(p.keys, key)
		p.certs = append(p.certs, cert)
	}
	return p
}

// KeyPair returns the test key pair testdata/<name>.key and .crt.
func KeyPair(tb testing.TB, name string) (*rsa.PrivateKey, *x509.Certificate) {
	tb.Helper()
	kb, _ := pem.Decode(Read(tb, name+".key"))
	if kb == nil {
		tb.Fatalf("%s.key is not PEM", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	cb, _ := pem.Decode(Read(tb, name+".crt"))
	if cb == nil {
		tb.Fatalf("%s.crt is not PEM", name)
	}
	c, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return k.(*rsa.PrivateKey), c
}

// Signing says what the IdP signs, as Entra's "Signing Option" does.
type Signing int

// Entra's signing options, and none.
const (
	SignAssertion Signing = iota // Entra's default
	SignResponse
	SignBoth
	SignNothing
)

// An Option changes one response.
type Option func(*options)

type options struct {
	signing      Signing
	sha1         bool
	keyIndex     int
	audience     *string
	recipient    *string
	destination  *string
	inResponseTo *string
	issuer       *string
	encrypt      bool
	wrap         string
	wrapMode     string
	tamper       string
	status       string
	foreign      bool
}

// WithSigning chooses what is signed (default SignAssertion).
func WithSigning(s Signing) Option { return func(o *options) { o.signing = s } }

// WithSHA1 signs with RSA-SHA1.
func WithSHA1() Option { return func(o *options) { o.sha1 = true } }

// WithKey signs with the IdP's i-th key (0 is the active one; 1 the rollover one of Entra).
func WithKey(i int) Option { return func(o *options) { o.keyIndex = i } }

// WithAudience sets the AudienceRestriction.
func WithAudience(a string) Option { return func(o *options) { o.audience = &a } }

// WithRecipient sets the SubjectConfirmationData Recipient.
func WithRecipient(r string) Option { return func(o *options) { o.recipient = &r } }

// WithDestination sets the Response Destination.
func WithDestination(d string) Option { return func(o *options) { o.destination = &d } }

// WithInResponseTo sets InResponseTo on the Response and the SubjectConfirmationData.
func WithInResponseTo(id string) Option { return func(o *options) { o.inResponseTo = &id } }

// WithIssuer sets the Issuer of the Response and the Assertion.
func WithIssuer(iss string) Option { return func(o *options) { o.issuer = &iss } }

// WithEncryption encrypts the assertion to the SP's certificate from its metadata.
func WithEncryption() Option { return func(o *options) { o.encrypt = true } }

// WithStatus sets a non-success top-level status code (the assertion is left in).
func WithStatus(code string) Option { return func(o *options) { o.status = code } }

// WithWrapping adds an unsigned assertion for victim to a response whose signed assertion names
// the logged-in user (signature wrapping). mode is "second-assertion" (the forged assertion
// first, the signed one after, in an unsigned Response), "extensions" (the signed assertion
// hidden in the Response's Extensions, the forged one in its place) or "signed-response" (the
// forged assertion inserted into a signed Response).
func WithWrapping(mode, victim string) Option {
	return func(o *options) { o.wrapMode, o.wrap = mode, victim }
}

// WithForeignRequest lets the IdP answer an AuthnRequest that was sent to another IdP, as an
// attacker's IdP that got hold of it would.
func WithForeignRequest() Option { return func(o *options) { o.foreign = true } }

// WithTamperedNameID changes the NameID inside the signed assertion after signing.
func WithTamperedNameID(nameID string) Option { return func(o *options) { o.tamper = nameID } }

// Response is what the browser posts to the ACS.
type Response struct {
	ACSURL      string
	Form        url.Values
	AssertionID string
}

// Login answers the AuthnRequest that idledger's /login redirected the browser to (loginURL),
// for the SP whose metadata is spMetadata, signing in nameID.
func (p *IDP) Login(tb testing.TB, loginURL string, spMetadata []byte, nameID string, opts ...Option) Response {
	tb.Helper()
	o := collect(opts)
	if !o.foreign && !strings.HasPrefix(loginURL, p.SSOURL+"?") {
		tb.Fatalf("login went to %q, want the IdP's SSO URL %s", loginURL, p.SSOURL)
	}
	idp := p.provider(tb, spMetadata, o)
	if o.foreign {
		u, _ := url.Parse(loginURL)
		u.RawQuery = ""
		idp.SSOURL = *u
	}
	r := httptest.NewRequest(http.MethodGet, loginURL, nil)
	req, err := csaml.NewIdpAuthnRequest(idp, r)
	if err != nil {
		tb.Fatalf("IdP: %v", err)
	}
	if err := req.Validate(); err != nil {
		tb.Fatalf("IdP refused the AuthnRequest: %v", err)
	}
	return p.respond(tb, req, nameID, o)
}

// Unsolicited makes an IdP-initiated response for the SP (no InResponseTo), as Entra posts
// when a user opens the app from My Apps without a Sign on URL.
func (p *IDP) Unsolicited(tb testing.TB, spMetadata []byte, nameID, relayState string, opts ...Option) Response {
	tb.Helper()
	o := collect(opts)
	idp := p.provider(tb, spMetadata, o)
	var md csaml.EntityDescriptor
	if err := xml.Unmarshal(spMetadata, &md); err != nil {
		tb.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, p.SSOURL, nil)
	req, err := idp.NewIdpInitiatedRequest(r, md.EntityID, relayState)
	if err != nil {
		tb.Fatalf("IdP: %v", err)
	}
	return p.respond(tb, req, nameID, o)
}

func collect(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	return o
}

// provider returns a crewjam IdentityProvider signing with the chosen key, serving spMetadata
// (without its encryption key unless asked, as Entra's token encryption is off by default).
func (p *IDP) provider(tb testing.TB, spMetadata []byte, o options) *csaml.IdentityProvider {
	tb.Helper()
	var md csaml.EntityDescriptor
	if err := xml.Unmarshal(spMetadata, &md); err != nil {
		tb.Fatalf("SP metadata: %v", err)
	}
	if !o.encrypt {
		for i := range md.SPSSODescriptors {
			var kds []csaml.KeyDescriptor
			for _, kd := range md.SPSSODescriptors[i].KeyDescriptors {
				if kd.Use != "encryption" {
					kds = append(kds, kd)
				}
			}
			md.SPSSODescriptors[i].KeyDescriptors = kds
		}
	}
	metadataURL, _ := url.Parse(p.EntityID)
	ssoURL, _ := url.Parse(p.SSOURL)
	idp := &csaml.IdentityProvider{
		Key:                     p.keys[o.keyIndex],
		Certificate:             p.certs[o.keyIndex],
		MetadataURL:             *metadataURL,
		SSOURL:                  *ssoURL,
		ServiceProviderProvider: staticSP{&md},
		EnforceNameIDPolicy:     true, // a transient NameIDPolicy would be refused
		Clock:                   dsig.NewFakeClock(funcClock{Clock: clockwork.NewRealClock(), now: p.now}),
	}
	if o.sha1 {
		idp.SignatureMethod = dsig.RSASHA1SignatureMethod
	}
	return idp
}

type staticSP struct{ md *csaml.EntityDescriptor }

func (s staticSP) GetServiceProvider(_ *http.Request, id string) (*csaml.EntityDescriptor, error) {
	if id != s.md.EntityID {
		return nil, os.ErrNotExist
	}
	return s.md, nil
}

func (p *IDP) respond(tb testing.TB, req *csaml.IdpAuthnRequest, nameID string, o options) Response {
	tb.Helper()
	now := p.now()
	session := &csaml.Session{
		ID: "session-1", CreateTime: now.Add(-time.Minute), ExpireTime: now.Add(time.Hour), Index: "idx-1",
		NameID: nameID, NameIDFormat: string(csaml.EmailAddressNameIDFormat), UserName: nameID, UserEmail: nameID,
	}
	if err := (csaml.DefaultAssertionMaker{}).MakeAssertion(req, session); err != nil {
		tb.Fatalf("IdP: make assertion: %v", err)
	}
	a := req.Assertion
	if o.audience != nil {
		a.Conditions.AudienceRestrictions[0].Audience.Value = *o.audience
	}
	if o.recipient != nil {
		a.Subject.SubjectConfirmations[0].SubjectConfirmationData.Recipient = *o.recipient
	}
	if o.inResponseTo != nil {
		a.Subject.SubjectConfirmations[0].SubjectConfirmationData.InResponseTo = *o.inResponseTo
		req.Request.ID = *o.inResponseTo
	}
	if o.issuer != nil {
		a.Issuer.Value = *o.issuer
	}
	destination := req.ACSEndpoint.Location
	if o.destination != nil {
		destination = *o.destination
	}
	acsURL := req.ACSEndpoint.Location

	var assertionEl *etree.Element
	switch o.signing {
	case SignAssertion, SignBoth:
		if err := req.MakeAssertionEl(); err != nil {
			tb.Fatalf("IdP: sign assertion: %v", err)
		}
		assertionEl = req.AssertionEl
	default:
		assertionEl = a.Element()
	}
	if o.tamper != "" {
		for _, el := range assertionEl.FindElements(".//NameID") {
			el.SetText(o.tamper)
		}
	}
	issuer := p.EntityID
	if o.issuer != nil {
		issuer = *o.issuer
	}
	status := csaml.StatusSuccess
	if o.status != "" {
		status = o.status
	}
	resp := &csaml.Response{
		Destination: destination, ID: fmt.Sprintf("_%x", now.UnixNano()), InResponseTo: req.Request.ID,
		IssueInstant: now, Version: "2.0",
		Issuer: &csaml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: issuer},
		Status: csaml.Status{StatusCode: csaml.StatusCode{Value: status}},
	}
	var forged *etree.Element
	if o.wrap != "" {
		f := *a
		f.ID = a.ID + "-forged"
		subject := *a.Subject
		nid := *subject.NameID
		nid.Value = o.wrap
		subject.NameID = &nid
		f.Subject = &subject
		f.Signature = nil
		forged = f.Element()
	}
	responseEl := resp.Element()
	switch {
	case o.wrapMode == "second-assertion":
		responseEl.AddChild(forged)
		responseEl.AddChild(assertionEl)
	case o.wrapMode == "extensions":
		ext := responseEl.CreateElement("samlp:Extensions")
		ext.AddChild(assertionEl)
		responseEl.AddChild(forged)
	default:
		responseEl.AddChild(assertionEl)
	}
	if o.signing == SignResponse || o.signing == SignBoth || o.wrapMode == "signed-response" {
		sc, err := signingContext(p.keys[o.keyIndex], p.certs[o.keyIndex], o.sha1)
		if err != nil {
			tb.Fatal(err)
		}
		signed, err := sc.SignEnveloped(responseEl)
		if err != nil {
			tb.Fatalf("IdP: sign response: %v", err)
		}
		// As crewjam and Entra do: the Signature right after the Issuer.
		sig := signed.ChildElements()[len(signed.ChildElements())-1]
		resp.Signature = sig
		responseEl = resp.Element()
		responseEl.AddChild(assertionEl)
		if o.wrapMode == "signed-response" {
			responseEl.InsertChildAt(len(responseEl.Child)-1, forged)
		}
	}
	doc := etree.NewDocument()
	doc.SetRoot(responseEl)
	b, err := doc.WriteToBytes()
	if err != nil {
		tb.Fatal(err)
	}
	form := url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString(b)}}
	if req.RelayState != "" {
		form.Set("RelayState", req.RelayState)
	}
	return Response{ACSURL: acsURL, Form: form, AssertionID: a.ID}
}

func signingContext(key *rsa.PrivateKey, cert *x509.Certificate, sha1 bool) (*dsig.SigningContext, error) {
	sc, err := dsig.NewSigningContext(key, [][]byte{cert.Raw})
	if err != nil {
		return nil, err
	}
	sc.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	method := dsig.RSASHA256SignatureMethod
	if sha1 {
		method = dsig.RSASHA1SignatureMethod
	}
	if err := sc.SetSignatureMethod(method); err != nil {
		return nil, err
	}
	return sc, nil
}

// funcClock is a clockwork.Clock whose time is the test's clock.
type funcClock struct {
	clockwork.Clock
	now func() time.Time
}

func (c funcClock) Now() time.Time                  { return c.now() }
func (c funcClock) Since(t time.Time) time.Duration { return c.now().Sub(t) }
func (c funcClock) Until(t time.Time) time.Duration { return t.Sub(c.now()) }
