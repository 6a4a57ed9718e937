package domain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// KindSignIn is the aggregate kind of the login history: one subject per user
// (idl.<tenant>.signin.<userID>), and SignInNoUser for attempts that matched no user.
// Sign-in events are appended without a version check, so they never conflict with SCIM
// writes, and no fold reads them; they exist for the audit history.
const KindSignIn Kind = "signin"

// SignInNoUser is the aggregate id of sign-in attempts that matched no user.
const SignInNoUser = "unknown"

// MaxIDPMetadataSize is the largest IdP metadata document accepted, in bytes. Entra's
// Federation Metadata XML is a few tens of KB; the event carrying it must fit a log message.
const MaxIDPMetadataSize = 256 << 10

// SSOConfig is a company's SAML single sign-on state, folded from its tenant events.
type SSOConfig struct {
	// IDPMetadataSHA256 is the hex SHA-256 of the uploaded IdP metadata document; empty while
	// SSO is off. The document itself is kept whole in its tenant.idp_metadata_set event (it is
	// public data, and a parser upgrade then applies to old uploads too), not in this state:
	// read models decode a tenant on every request, and a metadata file is tens of KB.
	IDPMetadataSHA256 string `json:"idpMetadataSha256,omitempty"`
	// IDPEntityID is the IdP's entityID, compared byte for byte with a response Issuer.
	IDPEntityID string `json:"idpEntityId,omitempty"`
	// IDPSSOURL is the IdP's HTTP-Redirect SingleSignOnService location.
	IDPSSOURL string `json:"idpSsoUrl,omitempty"`
	// Certificates are the IdP's trusted signing certificates.
	Certificates []IDPCertificate `json:"certificates,omitempty"`
	// MetadataSet is when the current metadata was uploaded.
	MetadataSet time.Time `json:"metadataSet,omitzero"`
	// AllowIDPInitiated accepts unsolicited (IdP-initiated) responses; off by default.
	AllowIDPInitiated bool `json:"allowIdpInitiated,omitempty"`
}

// Enabled reports whether the company has IdP metadata, so that its users can sign in.
func (c SSOConfig) Enabled() bool { return c.IDPMetadataSHA256 != "" }

// MetadataSHA256 returns the hex SHA-256 of an IdP metadata document, as SSOConfig keeps it.
func MetadataSHA256(doc string) string {
	sum := sha256.Sum256([]byte(doc))
	return hex.EncodeToString(sum[:])
}

// An IDPCertificate describes one trusted IdP signing certificate.
type IDPCertificate struct {
	// SHA256 is the certificate's SHA-256 fingerprint as upper-case hex pairs separated by
	// colons (the form `openssl x509 -fingerprint -sha256` prints).
	SHA256    string    `json:"sha256"`
	Subject   string    `json:"subject,omitempty"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
}

// IDPMetadataSet records an upload of IdP metadata (tenant.idp_metadata_set). The raw document
// is kept with what was read from it, so the audit trail shows which keys were trusted when.
type IDPMetadataSet struct {
	Metadata     string           `json:"metadata"`
	EntityID     string           `json:"entityId"`
	SSOURL       string           `json:"ssoUrl"`
	Certificates []IDPCertificate `json:"certificates"`
}

// SSODisabled records that a company turned single sign-on off (tenant.sso_disabled). The IdP
// is no longer trusted; the settings are kept.
type SSODisabled struct{}

// SSOSettingsChanged records a change of the SSO settings (tenant.sso_settings_changed); nil
// fields are unchanged.
type SSOSettingsChanged struct {
	AllowIDPInitiated *bool `json:"allowIdpInitiated,omitempty"`
}

// apply folds the SSO events into c.
func (c *SSOConfig) apply(e Event) {
	switch d := e.Data.(type) {
	case IDPMetadataSet:
		c.IDPMetadataSHA256 = MetadataSHA256(d.Metadata)
		c.IDPEntityID = d.EntityID
		c.IDPSSOURL = d.SSOURL
		c.Certificates = append([]IDPCertificate(nil), d.Certificates...)
		c.MetadataSet = e.At
	case SSODisabled:
		allow := c.AllowIDPInitiated
		*c = SSOConfig{AllowIDPInitiated: allow}
	case SSOSettingsChanged:
		if d.AllowIDPInitiated != nil {
			c.AllowIDPInitiated = *d.AllowIDPInitiated
		}
	}
}

// Reasons of a sign-in attempt, recorded in the login history (SignInRecorded.Reason). A code
// never changes meaning once written.
const (
	SignInOK                 = "ok"
	SignInSSONotConfigured   = "sso_not_configured"
	SignInMalformed          = "malformed_response"
	SignInInvalidSignature   = "invalid_signature"
	SignInWeakSignature      = "weak_signature"
	SignInCertificateExpired = "certificate_expired"
	SignInWrongIssuer        = "wrong_issuer"
	SignInWrongAudience      = "wrong_audience"
	SignInWrongDestination   = "wrong_destination"
	SignInExpired            = "expired"
	SignInReplayed           = "replayed"
	SignInRequestMismatch    = "request_mismatch"
	SignInIDPError           = "idp_error"
	SignInInvalidResponse    = "invalid_response"
	SignInUnknownUser        = "unknown_user"
	SignInInactiveUser       = "inactive_user"
)

// Sign-in flows.
const (
	FlowSPInitiated  = "sp_initiated"
	FlowIDPInitiated = "idp_initiated"
)

// SignInRecorded is one entry of the login history (signin.succeeded or signin.failed). The
// event's time, tenant and aggregate (the user id, or SignInNoUser) complete it. It holds
// no NameID: a name that matched no user is personal data of someone who was never
// provisioned, and the log cannot forget it; the server log has it instead.
type SignInRecorded struct {
	User   UserID `json:"userId,omitempty"`
	Reason string `json:"reason"`
	// Detail is the private cause of a refusal, for auditors; never shown to the browser.
	Detail string `json:"detail,omitempty"`
	// Source is the network address the browser connected from.
	Source string `json:"source,omitempty"`
	Flow   string `json:"flow,omitempty"`
}

// SignInResult is a successful SAML sign-in: the user (active, from the read model), where to
// send the browser, and the flow.
type SignInResult struct {
	User     UserID
	ReturnTo string
	Flow     string
}

// A SignInError is a refused sign-in. Reason is the code recorded in the login history, Err the
// private cause for the log. The browser only ever sees a generic refusal. It matches
// ErrForbidden.
type SignInError struct {
	Reason string
	// User is set when the NameID matched a user (for example an inactive one).
	User UserID
	// NameID is the asserted name when one was verified; for the server log only.
	NameID string
	Flow   string
	Err    error
}

// Error returns the reason and the private cause.
func (e *SignInError) Error() string {
	if e.Err == nil {
		return "sign-in refused: " + e.Reason
	}
	return "sign-in refused: " + e.Reason + ": " + e.Err.Error()
}

// Unwrap returns ErrForbidden and the private cause.
func (e *SignInError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrForbidden}
	}
	return []error{ErrForbidden, e.Err}
}

// changeTenant runs a tenant command through the command skeleton ([run]): decide returns the
// payload of the one event to append, of type typ, or nil for no change.
func (s *Service) changeTenant(ctx context.Context, tenant TenantID, typ string, decide func(t Tenant) (any, error)) (Tenant, error) {
	t, _, err := run(ctx, s, tenantKind, target{tenant: tenant, id: string(tenant)}, func(t Tenant) (decision, error) {
		data, err := decide(t)
		if err != nil || data == nil {
			return decision{}, err
		}
		return decision{events: []Event{s.newEvent(ctx, tenant, KindTenant, string(tenant), typ, data)}}, nil
	})
	return t, err
}

// SetIDPMetadata trusts a company's IdP: md is what the SAML adapter read from the uploaded
// document (see saml.ParseIDPMetadata). Uploading the metadata already in force changes
// nothing. It returns ErrNotFound for an unknown tenant and ErrInvalid for incomplete metadata.
func (s *Service) SetIDPMetadata(ctx context.Context, tenant TenantID, md IDPMetadataSet) (Tenant, error) {
	if err := md.validate(); err != nil {
		return Tenant{}, err
	}
	return s.changeTenant(ctx, tenant, EventTenantIDPMetadataSet, func(t Tenant) (any, error) {
		if t.SSO.IDPMetadataSHA256 == MetadataSHA256(md.Metadata) {
			return nil, nil
		}
		return md, nil
	})
}

func (md IDPMetadataSet) validate() error {
	switch {
	case strings.TrimSpace(md.Metadata) == "":
		return Errorf(ErrInvalid, "the metadata is empty")
	case len(md.Metadata) > MaxIDPMetadataSize:
		return Errorf(ErrInvalid, "the metadata is larger than %d KiB", MaxIDPMetadataSize>>10)
	case md.EntityID == "":
		return Errorf(ErrInvalid, "the metadata has no entityID")
	case md.SSOURL == "":
		return Errorf(ErrInvalid, "the metadata has no single sign-on URL")
	case len(md.Certificates) == 0:
		return Errorf(ErrInvalid, "the metadata has no signing certificate")
	}
	// The event must fit one log message (1 MB by default) after JSON escaping.
	if b, err := json.Marshal(md); err != nil || len(b) > 900<<10 {
		return Errorf(ErrInvalid, "the metadata is too large")
	}
	return nil
}

// DisableSSO stops trusting the company's IdP; sign-ins are refused until metadata is uploaded
// again. Disabling SSO that is off changes nothing. It returns ErrNotFound for an unknown tenant.
func (s *Service) DisableSSO(ctx context.Context, tenant TenantID) (Tenant, error) {
	return s.changeTenant(ctx, tenant, EventTenantSSODisabled, func(t Tenant) (any, error) {
		if !t.SSO.Enabled() {
			return nil, nil
		}
		return SSODisabled{}, nil
	})
}

// SetSSOSettings changes the SSO settings (nil = unchanged). It returns ErrNotFound for an
// unknown tenant.
func (s *Service) SetSSOSettings(ctx context.Context, tenant TenantID, allowIDPInitiated *bool) (Tenant, error) {
	return s.changeTenant(ctx, tenant, EventTenantSSOSettingsChanged, func(t Tenant) (any, error) {
		if allowIDPInitiated == nil || *allowIDPInitiated == t.SSO.AllowIDPInitiated {
			return nil, nil
		}
		return SSOSettingsChanged{AllowIDPInitiated: allowIDPInitiated}, nil
	})
}

// maxSignInDetail bounds the private cause kept in the log; it may quote attacker input.
const maxSignInDetail = 300

// RecordSignIn appends one entry to the login history: signin.succeeded when r.Reason is
// SignInOK, signin.failed otherwise, on the user's sign-in subject (or SignInNoUser). It
// appends without a version check, so it never conflicts with other writes. It returns
// ErrNotFound for an unknown tenant, so that anonymous requests cannot create subjects for
// made-up companies.
func (s *Service) RecordSignIn(ctx context.Context, tenant TenantID, r SignInRecorded) (Version, error) {
	if r.Reason == "" {
		return 0, Errorf(ErrInvalid, "a sign-in needs a reason")
	}
	v, err := s.Log.Version(ctx, tenant, KindTenant, string(tenant))
	if err != nil {
		return 0, err
	}
	if v == 0 {
		return 0, Errorf(ErrNotFound, "tenant %s not found", tenant)
	}
	if len(r.Detail) > maxSignInDetail {
		r.Detail = strings.ToValidUTF8(r.Detail[:maxSignInDetail], "") + "…"
	}
	typ := EventSignInFailed
	if r.Reason == SignInOK {
		typ = EventSignInSucceeded
	}
	id := string(r.User)
	if id == "" {
		id = SignInNoUser
	}
	e := s.newEvent(ctx, tenant, KindSignIn, id, typ, r)
	v, err = s.Log.Append(ctx, Batch{Tenant: tenant, Writes: []Write{{Event: e, NoExpect: true}}})
	if err != nil {
		return 0, fmt.Errorf("record sign-in: %w", err)
	}
	return v, nil
}
